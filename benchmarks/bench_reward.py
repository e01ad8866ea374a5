"""Benchmark the cost of one mixed-precision reward, evaluate_many, and MaskablePPO with batched envs.

Run:  python benchmarks/bench_reward.py  [--quick] [--repeat 3] [--task mnist1d-cnn]

Measured in one run, one torch thread, CPU time of this process (``time.process_time``; a machine
shared with other busy processes inflates it less than wall time), every figure the median over
``--repeat`` rounds of the ratio to its reference measured beside it:

1. the reward of random mixed-precision policies (``MixedPrecisionProblem.evaluate``, no cache)
   at 0 and at the task's retraining steps, with the fast fake quantizers and with torch's
   fake-quantize ops (``fast_quant.use_impl("torch")``, the former path), against one validation
   pass of the float model; the accuracies of both paths must be equal bit for bit;
2. ``evaluate_many`` of P = 1, 8, 32 policies against ``evaluate`` one by one (per policy);
3. MaskablePPO (sb3-contrib) wall and CPU time per 1000 reward evaluations with N = 1 and
   N = 16 copies (``agents.vec_env.BatchedRewardVecEnv``), every reward a fresh evaluation
   (``cache_size=0``);
4. only where CUDA is available (otherwise it prints that it was skipped and why): the batched
   GPU pass (``device="cuda"``: ``evaluate_many`` stacks the policies' networks and retrains and
   scores 32 at a time) in policies per second of wall time at P = 1, 8, 32, at 0 and at the
   task's steps, against one CPU core scoring the same policies one after another
   (``evaluate``, one thread, wall time), with the largest accuracy difference between the two
   (the GPU sums in another order; see ``policy_batch``). ``--gpu-only`` runs this section alone;
5. the exhaustive table generator's 0-step path: a chunk of 256 grid policies sharing their
   first layers, scored on validation and test by the prefix walk
   (:mod:`quant_envs.mixed_precision.prefix_reuse`), against the same policies one at a time.

Targets: reward at 0 steps <= 2x a float validation pass, at the task's steps (10 on MNIST-1D)
<= 3.5x; accuracies bit-identical to torch's path; evaluate_many never slower per policy than
evaluate (within 5%, timing noise); N = 16 no slower per evaluation than N = 1 (within 5%);
on a GPU, >= 10x the policies per second of one CPU core at P = 32 (the task's steps).
``--quick`` (about a minute and a half): fewer policies and rounds, evaluate_many and PPO at 0
steps; the full run takes several minutes.

Where the 10-step target stands: the fast quantizers leave the retraining itself, and in it
torch's convolution backward (oneDNN; about 10x the forward on these 1-D layers) is most of the
cost; retraining with the same kernels is what keeps the accuracies bit-identical, so with
quantization at zero cost the reward would still be about 3.7x a float validation pass on the
machine this was written on (batch-norm re-estimation 0.27x, 10 steps 2.6x, validation 1.0x).
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from _timing import run_timed

import quant_envs  # noqa: F401
from quant_envs.mixed_precision import fast_quant
from quant_envs.mixed_precision.problem import MixedPrecisionProblem
from quant_envs.mixed_precision.tasks import DEFAULT_TASK

NOISE = 1.05  # timing slack of the "no slower" targets on a shared machine


def cpu_time(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.process_time()
    out = fn()
    return time.process_time() - start, out


def random_policies(problem: MixedPrecisionProblem, count: int, seed: int) -> list[tuple]:
    rng = np.random.default_rng(seed)
    return [tuple((int(w), int(a)) for w, a in rng.integers(2, 9, size=(problem.num_layers, 2))) for _ in range(count)]


def reward_rows(problem: MixedPrecisionProblem, policies: list[tuple], steps_list: list[int],
                repeat: int) -> tuple[list[tuple], bool]:
    task = problem.task
    rows, identical = [], True
    for steps in steps_list:
        fast_r, torch_r, speedup, per_fast, per_torch = [], [], [], [], []
        for _ in range(repeat):
            float_s, _ = cpu_time(lambda: task.evaluate(task.model, "val"))
            out = {}
            for impl in ("torch", "fast"):
                with fast_quant.use_impl(impl):
                    t, accs = cpu_time(lambda s=steps: [problem.evaluate(p, finetune_steps=s).accuracy for p in policies])
                out[impl] = (t / len(policies), accs)
            float_s = min(float_s, cpu_time(lambda: task.evaluate(task.model, "val"))[0])
            identical &= out["fast"][1] == out["torch"][1]
            fast_r.append(out["fast"][0] / float_s)
            torch_r.append(out["torch"][0] / float_s)
            speedup.append(out["torch"][0] / out["fast"][0])
            per_fast.append(out["fast"][0])
            per_torch.append(out["torch"][0])
        rows.append((steps, statistics.median(per_fast), statistics.median(fast_r), statistics.median(per_torch),
                     statistics.median(torch_r), statistics.median(speedup)))
    return rows, identical


def many_rows(problem: MixedPrecisionProblem, policies: list[tuple], steps: int, repeat: int) -> list[tuple]:
    rows = []
    for count in (1, 8, 32):
        ratios, per_many = [], []
        for _ in range(repeat):
            chosen = policies[:count]
            t_one, one = cpu_time(lambda c=chosen: [problem.evaluate(p, finetune_steps=steps) for p in c])
            t_many, many = cpu_time(lambda c=chosen: problem.evaluate_many(c, finetune_steps=steps))
            assert [r.accuracy for r in one] == [r.accuracy for r in many]
            ratios.append(t_many / t_one)
            per_many.append(t_many / count)
        rows.append((count, statistics.median(per_many), statistics.median(ratios)))
    return rows


def prefix_rows(problem: MixedPrecisionProblem, repeat: int) -> tuple[float, float, float, bool]:
    """The exhaustive generator's 0-step path: one chunk of 256 grid policies (one width per layer
    over {2, 3, 4, 8}, the first layers shared, as in the generator's chunks) scored on val and
    test by the prefix walk, against 16 of them scored one at a time; per policy, with the ratio of
    the walk to a float validation + test pass."""
    bits, free = (2, 3, 4, 8), min(4, problem.num_layers)
    head = ((8, 8),) * (problem.num_layers - free)
    block = [head + tuple((b, b) for b in tail) for tail in itertools.product(bits, repeat=free)]
    task = problem.task
    walk, one, ratio, identical = [], [], [], True
    for _ in range(repeat):
        float_s = cpu_time(lambda: (task.evaluate(task.model, "val"), task.evaluate(task.model, "test")))[0]
        t_walk, walked = cpu_time(lambda: problem.evaluate_splits(block, ("val", "test"), finetune_steps=0))
        t_one, singles = cpu_time(lambda: [problem.evaluate_splits([p], ("val", "test"), finetune_steps=0)[0]
                                           for p in block[:16]])
        identical &= all(w[s].accuracy == o[s].accuracy for w, o in zip(walked, singles) for s in ("val", "test"))
        walk.append(t_walk / len(block))
        one.append(t_one / 16)
        ratio.append(t_walk / len(block) / float_s)
    return statistics.median(walk), statistics.median(one), statistics.median(ratio), identical


def ppo_rows(task: str, steps: int, episodes: int, repeat: int) -> list[tuple]:
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.env_util import make_vec_env

    from agents.vec_env import BatchedRewardVecEnv

    kwargs = {"task": task, "finetune_steps": steps, "cache_size": 0}
    results: dict[int, list[tuple[float, float]]] = {1: [], 16: []}
    for r in range(repeat):
        for n in (1, 16):
            env = make_vec_env("quant_envs/MixedPrecision-v1", n_envs=n, seed=r, env_kwargs=kwargs,
                               vec_env_cls=BatchedRewardVecEnv)
            layers = env.get_attr("num_steps")[0]
            rollout = 16 * layers  # the same samples per update for both N: 16 episodes
            model = MaskablePPO("MlpPolicy", env, n_steps=rollout // n, batch_size=rollout // 2, n_epochs=4,
                                seed=r, device="cpu")
            problem = env.get_attr("problem")[0]
            before = problem.num_evaluations
            wall, cpu = time.perf_counter(), time.process_time()
            model.learn(total_timesteps=episodes * layers)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            evaluations = problem.num_evaluations - before
            results[n].append((1000 * wall / evaluations, 1000 * cpu / evaluations))
            env.close()
    rows = []
    for n in (1, 16):
        rows.append((n, statistics.median(w for w, _ in results[n]), statistics.median(c for _, c in results[n])))
    ratio = statistics.median(b[1] / a[1] for a, b in zip(results[1], results[16]))
    return rows + [("ratio", ratio)]


GPU_TARGET = 10.0  # batched GPU pass at P = 32 vs one CPU core, policies per second


def wall_time(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def gpu_rows(task: str, policies: list[tuple], steps_list: list[int], repeat: int) -> list[tuple]:
    """Per (steps, P): GPU policies/s (median), CPU policies/s, their ratio, the largest accuracy
    difference GPU vs CPU. Every pass of the GPU path holds 32 policies (filled up), so P < 32
    pays for 32; fresh problems with ``cache_size=0``: every policy is scored."""
    gpu = MixedPrecisionProblem(task=task, cache_size=0, device="cuda")
    cpu = MixedPrecisionProblem(task=task, cache_size=0)
    n_cpu = 8  # one CPU core, one policy after another: its rate does not depend on P
    rows = []
    for steps in steps_list:
        gpu.evaluate_many(policies, finetune_steps=steps)  # warm-up: calibration, CUDA and cuDNN start-up
        cpu.evaluate_many(policies[:n_cpu], finetune_steps=steps)  # warm-up: calibration
        cpu_s, cpu_acc = statistics.median_low(
            [wall_time(lambda s=steps: [cpu.evaluate(p, finetune_steps=s).accuracy for p in policies[:n_cpu]])
             for _ in range(repeat)])
        cpu_rate = n_cpu / cpu_s
        for count in (1, 8, 32):
            times, accs = [], []
            for _ in range(repeat):
                t, recs = wall_time(lambda c=count, s=steps: gpu.evaluate_many(policies[:c], finetune_steps=s))
                times.append(t)
                accs = [r.accuracy for r in recs]
            gpu_rate = count / statistics.median(times)
            diff = max(abs(a - b) for a, b in zip(accs[:n_cpu], cpu_acc))
            rows.append((steps, count, gpu_rate, cpu_rate, gpu_rate / cpu_rate, diff))
    return rows


def gpu_section(task: str, policies: list[tuple], steps: int, repeat: int) -> tuple[str, bool | None, str]:
    """Print section 4 (or why it was skipped); the target's (name, met or None if skipped, figure)."""
    name = f"batched GPU pass >= {GPU_TARGET:.0f}x the policies per second of one CPU core at P = 32 ({steps} steps)"
    print("\n4. batched GPU pass (device='cuda', evaluate_many) vs one CPU core one policy at a time, wall time")
    if not torch.cuda.is_available():
        print(f"skipped: no CUDA device here (torch.cuda.is_available() is False; torch {torch.__version__}, "
              f"CUDA build {torch.version.cuda or 'none'})")
        return name, None, "skipped: no CUDA device"
    print(f"device: {torch.cuda.get_device_name(0)}")
    rows = gpu_rows(task, policies, sorted({0, steps}), repeat)
    print(f"{'steps':>6}{'P':>5}{'GPU policies/s':>16}{'CPU policies/s':>16}{'GPU / CPU':>11}{'max |acc diff|':>16}")
    for s, count, g, c, ratio, diff in rows:
        print(f"{s:>6}{count:>5}{g:>16.1f}{c:>16.1f}{ratio:>10.1f}x{diff:>16.4f}")
    ratio = next(r for s, count, _, _, r, _ in rows if s == steps and count == 32)
    return name, ratio >= GPU_TARGET, f"{ratio:.1f}x"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer policies and rounds; evaluate_many and PPO at 0 steps")
    parser.add_argument("--repeat", type=int, default=None, help="rounds per figure (default 3, quick 2)")
    parser.add_argument("--task", default=DEFAULT_TASK)
    parser.add_argument("--gpu-only", action="store_true", help="only section 4, the batched GPU pass")
    args = parser.parse_args()
    torch.set_num_threads(1)
    repeat = args.repeat or (2 if args.quick else 3)
    problem = MixedPrecisionProblem(task=args.task, cache_size=0)
    steps = problem.finetune_steps
    policies = random_policies(problem, 32, seed=0)
    if args.gpu_only:
        name, met, figure = gpu_section(args.task, policies, steps, repeat)
        print(f"\ntarget\n  {'skipped' if met is None else 'met    ' if met else 'NOT MET'}  {name} ({figure})")
        return 0 if met is not False else 1
    sample = policies[:4] if args.quick else policies[:8]
    for impl in ("fast", "torch"):  # warm-up: calibration of every (layer, width) the policies use, and retraining
        with fast_quant.use_impl(impl):
            problem.evaluate_many(policies, finetune_steps=0)
            problem.evaluate_many(policies[:2], finetune_steps=steps)

    print(f"MixedPrecision-v1 reward on {args.task} ({problem.num_layers} layers, {steps} retraining steps), "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"({torch.backends.cpu.get_cpu_capability()}), 1 thread; CPU time, medians of {repeat} rounds")
    rows, identical = reward_rows(problem, sample, sorted({0, steps}), repeat)
    print(f"\n1. reward per policy ({len(sample)} random mixed policies) / one float-model validation pass")
    print(f"{'retraining steps':>18}{'fast':>12}{'ratio':>9}{'torch ops':>12}{'ratio':>9}{'speed-up':>10}")
    for s, tf, rf, tt, rt, sp in rows:
        print(f"{s:>18}{tf * 1e3:>9.1f} ms{rf:>8.2f}x{tt * 1e3:>9.1f} ms{rt:>8.2f}x{sp:>9.2f}x")
    print(f"accuracies of the fast path and torch's ops: {'bit-identical' if identical else 'DIFFERENT'}")

    many_steps = 0 if args.quick else steps
    many = many_rows(problem, policies, many_steps, repeat)
    print(f"\n2. evaluate_many vs evaluate one by one ({many_steps} retraining steps), per policy")
    print(f"{'P':>6}{'evaluate_many':>16}{'many / one':>12}")
    for count, per, ratio in many:
        print(f"{count:>6}{per * 1e3:>13.1f} ms{ratio:>11.2f}x")

    episodes = 32 if args.quick else 64
    ppo_steps = 0 if args.quick else steps
    ppo = ppo_rows(args.task, ppo_steps, episodes, 1 if args.quick else 2)
    print(f"\n3. MaskablePPO, {episodes} episodes, {ppo_steps} retraining steps, every reward evaluated (no cache)")
    print(f"{'N envs':>8}{'wall s / 1000 rewards':>24}{'CPU s / 1000 rewards':>24}")
    for n, wall, cpu in ppo[:2]:
        print(f"{n:>8}{wall:>24.1f}{cpu:>24.1f}")
    ppo_ratio = ppo[2][1]
    print(f"N=16 / N=1 (CPU time per evaluation): {ppo_ratio:.2f}x")

    reward_by_steps = {s: rf for s, _, rf, *_ in rows}
    gpu_name, gpu_met, gpu_figure = gpu_section(args.task, policies, steps, repeat)
    walk, single, walk_ratio, walk_identical = prefix_rows(problem, repeat)
    print("\n5. the exhaustive generator at 0 steps: 256 grid policies sharing prefixes, val + test, per policy")
    print(f"   prefix walk {walk * 1e3:.1f} ms ({walk_ratio:.2f}x a float val + test pass), one at a time "
          f"{single * 1e3:.1f} ms: {single / walk:.1f}x faster; "
          f"accuracies {'bit-identical' if walk_identical else 'DIFFERENT'}")
    targets = [
        ("reward at 0 steps <= 2x a float validation pass", reward_by_steps[0] <= 2.0, f"{reward_by_steps[0]:.2f}x"),
        (f"reward at {steps} steps <= 3.5x a float validation pass", reward_by_steps[steps] <= 3.5,
         f"{reward_by_steps[steps]:.2f}x"),
        ("accuracies bit-identical to torch's fake-quantize path", identical, "yes" if identical else "no"),
        ("evaluate_many never slower per policy than evaluate", all(r <= NOISE for _, _, r in many),
         ", ".join(f"P={c}: {r:.2f}x" for c, _, r in many)),
        ("MaskablePPO N=16 no slower per evaluation than N=1", ppo_ratio <= NOISE, f"{ppo_ratio:.2f}x"),
        ("0-step prefix walk bit-identical to one policy at a time", walk_identical,
         "yes" if walk_identical else "no"),
    ]
    print("\ntargets")
    for name, ok, figure in targets:
        print(f"  {'met    ' if ok else 'NOT MET'}  {name} ({figure})")
    print(f"  {'skipped' if gpu_met is None else 'met    ' if gpu_met else 'NOT MET'}  {gpu_name} ({gpu_figure})")
    return 0 if all(ok for _, ok, _ in targets) and gpu_met is not False else 1


if __name__ == "__main__":
    run_timed(main)
