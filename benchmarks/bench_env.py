"""Benchmark MixedPrecision-v1 on the default task: step, terminal reward and cache-hit times.

Run:  python benchmarks/bench_env.py  [--repeat N] [--task mnist1d-cnn]

Targets, on 2 cores: a non-terminal step <= 50 us; the terminal reward (fake-quantize,
retrain ``finetune_steps`` mini-batches, evaluate on the validation split) <= 0.5 s with the
default retraining; a cached policy answered in about a non-terminal step's time.
References measured in the same run: Gymnasium's CartPole-v1 step (a minimal environment step),
and one validation pass of the float model (the least an accuracy reward can cost). The terminal
reward is also given in CPU time of this process (``time.process_time``), which a machine shared
with other busy processes inflates less than wall time.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import gymnasium as gym
import numpy as np
import torch
from _timing import best_per_call

import quant_envs  # noqa: F401
from quant_envs.mixed_precision.env import MixedPrecisionEnv
from quant_envs.mixed_precision.tasks import DEFAULT_TASK

STEP_TARGET_S = 50e-6
REWARD_TARGET_S = 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--task", default=DEFAULT_TASK)
    args = parser.parse_args()
    torch.set_num_threads(1)

    env = MixedPrecisionEnv(task=args.task)
    env.reset(seed=0)
    n = env.num_steps
    rng = np.random.default_rng(0)  # random policies for the reward timings

    def non_terminal_steps() -> None:
        env.reset()
        for _ in range(n - 1):
            env.step(0)  # the narrowest width is always allowed (costs grow with bits; exact masks)

    # one call = n - 1 non-terminal steps and a reset; the step computes the next step's mask
    step_s = best_per_call(non_terminal_steps, 100, args.repeat) / (n - 1)
    env.reset()
    masks_s = best_per_call(env.action_masks, 5000, args.repeat)

    cartpole = gym.make("CartPole-v1").unwrapped
    cartpole.reset(seed=0)

    def cartpole_step() -> None:
        _, _, terminated, _, _ = cartpole.step(0)
        if terminated:
            cartpole.reset()

    cartpole_s = best_per_call(cartpole_step, 2000, args.repeat)

    problem = env.problem
    task = problem.task
    float_eval_s = best_per_call(lambda: task.evaluate(task.model, "val"), 5, args.repeat)

    cpu_times: list[float] = []

    def terminal_reward(steps: int) -> list[float]:
        times = []
        cpu_times.clear()
        for _ in range(args.repeat):
            policy = tuple((b, b) for b in rng.integers(2, 9, size=problem.num_layers))  # fresh: no cache
            problem._cache.clear()
            start, cpu = time.perf_counter(), time.process_time()
            problem.evaluate(policy, finetune_steps=steps)
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu)
        return times

    terminal_reward(problem.finetune_steps)  # warm-up: lazy fake-quant model and calibration
    ptq = statistics.median(terminal_reward(0))
    retrain = statistics.median(terminal_reward(problem.finetune_steps))
    retrain_cpu = statistics.median(cpu_times)

    policy = problem.uniform_policy(4)
    problem.evaluate(policy)
    hit_s = best_per_call(lambda: problem.evaluate(policy), 1000, args.repeat)

    print(f"MixedPrecision-v1 on {args.task} ({problem.num_layers} layers, {problem.hardware}), "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads 1")
    print(f"{'quantity':<44}{'time':>12}{'reference':>34}{'ratio':>10}{'target':>12}")
    rows = [
        ("non-terminal step", step_s, "CartPole-v1 step", cartpole_s, STEP_TARGET_S),
        ("action_masks() (what MaskablePPO reads)", masks_s, "CartPole-v1 step", cartpole_s, None),
        ("terminal reward, post-training (0 steps)", ptq, "float-model validation pass", float_eval_s, None),
        (f"terminal reward, {problem.finetune_steps} retraining steps", retrain, "float-model validation pass",
         float_eval_s, REWARD_TARGET_S),
        ("  the same, CPU time of this process", retrain_cpu, "float-model validation pass", float_eval_s,
         REWARD_TARGET_S),
        ("cache hit (policy seen before)", hit_s, "non-terminal step", step_s, None),
    ]
    for name, t, ref_name, ref, target in rows:
        verdict = "" if target is None else (f"<= {_fmt(target)} " + ("met" if t <= target else "MISSED"))
        print(f"{name:<44}{_fmt(t):>12}{ref_name + ' ' + _fmt(ref):>34}{t / ref:>9.2f}x{verdict:>20}")


def _fmt(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


if __name__ == "__main__":
    main()
