"""Transfer benchmark: one hardware-conditioned MaskablePPO policy, zero-shot on accelerators it never saw.

Run:  python benchmarks/bench_transfer.py  [--seeds 0 1 2] [--timesteps 20000] [--ablation] [--out DIR]
                                          [--table digits-cnn | mnist1d-cnn-w4]
      python benchmarks/bench_transfer.py --hw-only     (family draw + cost-table build timing only)

Setting: ``quant_envs/MixedPrecisionMultiHardware-v0`` on an exhaustive table (``--table``:
digits-cnn's, 4 layers at 2..8 bits, by default; ``mnist1d-cnn-w4``, 8 layers at {2, 3, 4, 8}; every
policy's validation accuracy retrained once: rewards are look-ups, so a study takes minutes), latency budget at level 0.3 of each accelerator's own range. Accuracy does not
depend on the hardware; costs, masks and the budget do, and so does the best policy.

* training accelerators: the ``bismo-edge``, ``bitfusion`` and ``int8-npu`` profiles and a fresh
  draw from an ``hw_sim.AcceleratorFamily`` around each (every arithmetic kind, batch 1/4/16) on
  every episode that picks a family;
* held-out profiles: ``bismo-cloud`` and ``gpu-int4-int8``; held-out draws: 6 draws from the
  training families with a seed never used in training (``HELDOUT_SEED``).

Per held-out accelerator and seed, regret in accuracy points (``info["regret"]``: the table's
exact optimum at that accelerator's budget minus the policy's validation accuracy) of:

* ``zero-shot``: the trained agent's deterministic episode on the accelerator: 1 reward evaluation
  there (its training evaluations, on other accelerators, are reported in the summary);
* ``random-100``: uniform random masked rollouts until 100 distinct policies were evaluated on
  that accelerator; the best found (also ``random-10``);
* ``ppo-100``: MaskablePPO trained on that accelerator alone for 100 episodes (100 reward
  queries); the best policy it evaluated;
* ``transfer``: the exact optimum of one training accelerator (the 3 profiles and 12 fixed family
  draws, ``TRANSFER_SEED``) replayed on the held-out one (masked widths projected to the nearest
  allowed), 1 reward evaluation: the candidate with the least mean regret over the held-out
  accelerators themselves (``best on held-out``, an oracle choice favouring this baseline), the one
  with the least mean regret over the other training accelerators (``best on training``: what can
  be chosen without the targets), and the average candidate (``mean``);
* the per-accelerator optimum is the table's (regret 0, every policy of the table evaluated).

Targets: zero-shot within 1 accuracy point of random-100 and better than the best transferred policy. With
``--ablation`` the agent is retrained with descriptor groups removed (one seed each, mean
held-out regret). Writes ``transfer.md``, ``transfer.json`` and ``transfer.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import hw_sim

ENV_ID = "quant_envs/MixedPrecisionMultiHardware-v0"
TRAIN_PROFILES = ("bismo-edge", "bitfusion", "int8-npu")
HELDOUT_PROFILES = ("bismo-cloud", "gpu-int4-int8")
FAMILY = dict(arithmetic=tuple(hw_sim.ARITHMETIC), batch=(1, 4, 16))
TRANSFER_SEED = 100  # the fixed training draws whose optima are the transfer baseline's candidates
HELDOUT_SEED = 10_000  # never used for training
ENV_KW = dict(table="digits-cnn", budget_metric="latency", budget_level=0.3)


def families() -> list[hw_sim.AcceleratorFamily]:
    return [hw_sim.AcceleratorFamily(p, **FAMILY) for p in TRAIN_PROFILES]


def heldout() -> list[tuple[str, hw_sim.Accelerator]]:
    draws = hw_sim.sample_accelerators(families(), n=6, seed=HELDOUT_SEED)
    return ([("held-out profile", hw_sim.get_accelerator(p)) for p in HELDOUT_PROFILES]
            + [("held-out draw", a) for a in draws])


def make_env(hardware: Any, **kw: Any):
    import gymnasium as gym

    import quant_envs  # noqa: F401

    return gym.make(ENV_ID, hardware=hardware, **{**ENV_KW, **kw}).unwrapped


def near_optimal(problem, within: float = 1.0) -> int:
    """Feasible policies of an exhaustive table problem whose regret is at most ``within`` (in the
    table's regret unit; on digits-cnn 1 point = three validation images): how flat the top is.
    Counted over the scores the exact optimum's enumeration keeps (``optimum.feasible_scores``)."""
    o = problem.optimum
    return int((problem.table.score_scale * (o.score - o.feasible_scores) <= within + 1e-9).sum())


def episode(env, acc, choose) -> dict[str, Any]:
    """One episode pinned to ``acc``; ``choose(obs, mask, t)`` gives the action."""
    obs, info = env.reset(options={"hardware": acc})
    done, t = False, 0
    while not done:
        obs, _, done, _, info = env.step(choose(obs, env.action_masks(), t))
        t += 1
    return info


# ------------------------------------------------------------------------------------ agents
def train_agent(seed: int, timesteps: int, descriptor: tuple[str, ...] | None = None) -> tuple[Any, int, float]:
    from sb3_contrib import MaskablePPO

    import agents

    kw = {} if descriptor is None else {"descriptor": descriptor}
    env = make_env([*TRAIN_PROFILES, *families()], **kw)
    counter = _counter(env)
    model = MaskablePPO(env=counter, seed=seed, verbose=0, device="cpu",
                        **agents.load_hyperparams("maskable_ppo", ENV_ID))
    t0 = time.perf_counter()
    model.learn(total_timesteps=timesteps)
    return model, counter.evaluations, time.perf_counter() - t0


def _counter(env):
    """``env`` wrapped to record distinct reward evaluations and the best regret of its episodes."""
    import gymnasium as gym

    class Counter(gym.Wrapper):
        evaluations = 0
        best_regret = float("inf")

        def step(self, action):
            out = self.env.step(action)
            if out[2]:
                self.evaluations += not out[4]["cached"]
                self.best_regret = min(self.best_regret, out[4]["regret"])
            return out

        def action_masks(self) -> np.ndarray:
            return self.env.action_masks()

    return Counter(env)


def zero_shot(model, env, acc) -> float:
    def choose(obs, mask, t):
        return int(model.predict(obs, action_masks=mask, deterministic=True)[0])

    return episode(env, acc, choose)["regret"]


def random_search(env, acc, evaluations: int, rng: np.random.Generator) -> dict[int, float]:
    """Best regret after 10 and ``evaluations`` distinct policies of uniform masked rollouts."""
    seen: dict[tuple, float] = {}
    out, best = {}, float("inf")
    for _ in range(50 * evaluations):
        info = episode(env, acc, lambda obs, mask, t: int(rng.choice(np.flatnonzero(mask))))
        key = tuple(map(tuple, info["policy"]))
        if key not in seen:
            seen[key] = info["regret"]
            best = min(best, info["regret"])
            if len(seen) in (10, evaluations):
                out[len(seen)] = best
            if len(seen) == evaluations:
                break
    return out


def ppo_search(acc, episodes: int, seed: int) -> tuple[float, int]:
    """MaskablePPO on ``acc`` alone for ``episodes`` episodes: (best regret evaluated, distinct evaluations)."""
    from sb3_contrib import MaskablePPO

    env = make_env([acc])
    counter = _counter(env)
    steps = episodes * env.num_steps
    model = MaskablePPO("MlpPolicy", counter, n_steps=20 * env.num_steps, batch_size=20,
                        learning_rate=1e-3, gamma=1.0, ent_coef=0.01, seed=seed, verbose=0, device="cpu",
                        policy_kwargs={"net_arch": [64, 64]})
    model.learn(total_timesteps=steps)
    return counter.best_regret, counter.evaluations


def transfer_candidates() -> list[hw_sim.Accelerator]:
    return ([hw_sim.get_accelerator(p) for p in TRAIN_PROFILES]
            + hw_sim.sample_accelerators(families(), n=12, seed=TRANSFER_SEED))


def transfer_regrets(env, targets: list[hw_sim.Accelerator]) -> dict[str, Any]:
    """Every training accelerator's optimum replayed on every target and on the training accelerators.

    Returns per-target regrets of three choices of one transferred policy: ``oracle`` (the candidate
    with the least mean regret over the targets themselves), ``chosen`` (the least mean regret over
    the other training accelerators: what one could pick without seeing the targets) and ``mean``
    (the average candidate).
    """
    cands = transfer_candidates()
    optima = []
    for cand in cands:
        env.reset(options={"hardware": cand})
        optima.append([int(k) for k in env.problem.optimum.index])

    def replay(idx: list[int], acc: hw_sim.Accelerator) -> float:
        return episode(env, acc, lambda obs, mask, k: idx[k])["regret"]

    on_targets = np.array([[replay(idx, t) for t in targets] for idx in optima])  # [cands, targets]
    on_train = np.array([[replay(idx, c) for c in cands] for idx in optima])
    np.fill_diagonal(on_train, np.nan)  # a candidate is not judged on its own accelerator
    oracle = int(np.argmin(on_targets.mean(axis=1)))
    chosen = int(np.nanargmin(np.nanmean(on_train, axis=1)))
    return {"oracle": on_targets[oracle].tolist(), "oracle_source": cands[oracle].name,
            "chosen": on_targets[chosen].tolist(), "chosen_source": cands[chosen].name,
            "mean": on_targets.mean(axis=0).tolist(), "candidates": len(cands)}


# ------------------------------------------------------------------------------------ report
def _ms(xs: list[float]) -> str:
    if not xs:
        return "-"
    return f"{statistics.mean(xs):.2f} ± {statistics.stdev(xs):.2f}" if len(xs) > 1 else f"{xs[0]:.2f}"


def hw_timing(repeat: int = 20) -> None:
    """Family draw and CostTable build times for MobileNetV2 vs the profile's own build (same run).

    Draws keep the profile's arithmetic kind and batch (a draw of another kind builds as fast as
    that kind's profile: Bit Fusion's tiling search is the slow one)."""
    from hw_sim import networks

    layers = networks.mobilenet_v2()
    print(f"{'profile':<16} {'draw (us)':>10} {'build draw (ms)':>16} {'build profile (ms)':>19} {'ratio':>6}")
    from _timing import best_per_call

    for name in hw_sim.PROFILES:
        fam = hw_sim.AcceleratorFamily(name)
        rng = np.random.default_rng(0)
        draws = fam.sample(seed=0, n=repeat)
        draw_s = best_per_call(lambda f=fam, r=rng: f.draw(r), number=repeat, repeat=5)
        it = iter(draws * 1000)
        build = best_per_call(lambda i=it: hw_sim.CostTable(layers, next(i)), number=repeat, repeat=5)
        ref = best_per_call(lambda n=name: hw_sim.CostTable(layers, n), number=repeat, repeat=5)
        print(f"{name:<16} {draw_s * 1e6:>10.1f} {build * 1e3:>16.2f} {ref * 1e3:>19.2f} {build / ref:>6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--timesteps", type=int, default=20_000, help="agent training steps (one per layer: 4 per episode on digits-cnn)")
    parser.add_argument("--search-evals", type=int, default=100, help="per-accelerator search evaluations")
    parser.add_argument("--ablation", action="store_true", help="retrain without each descriptor group")
    parser.add_argument("--hw-only", action="store_true", help="only time family draws and cost-table builds")
    parser.add_argument("--out", default="benchmarks/results/transfer")
    parser.add_argument("--table", default=ENV_KW["table"],
                        help="the exhaustive table (scenario) the environment reads, e.g. mnist1d-cnn-w4")
    args = parser.parse_args()
    ENV_KW["table"] = args.table  # every environment of this run reads it
    print(f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPU(s); "
          f"command: python {' '.join(sys.argv)}")
    if args.hw_only:
        hw_timing()
        return
    import torch

    torch.set_num_threads(1)
    from quant_envs.atomic_io import atomic_write_json, atomic_write_text, check_writable_dir

    out = check_writable_dir(args.out, "--out")
    targets = heldout()
    env = make_env([*TRAIN_PROFILES])
    rows = {acc.name: {"set": kind, "zero-shot": [], "random-10": [], "random-100": [], "ppo-100": [],
                       "ppo-100 evals": [], "feasible": None} for kind, acc in targets}
    for _, acc in targets:
        env.reset(options={"hardware": acc})
        rows[acc.name]["feasible"] = env.problem.optimum.num_feasible
        rows[acc.name]["near"] = near_optimal(env.problem)
        rows[acc.name]["description"] = acc.description or acc.name
    train_evals, train_time = [], []
    for seed in args.seeds:
        model, n_eval, wall = train_agent(seed, args.timesteps)
        train_evals.append(n_eval)
        train_time.append(wall)
        rng = np.random.default_rng(seed)
        for _, acc in targets:
            r = rows[acc.name]
            r["zero-shot"].append(zero_shot(model, env, acc))
            rs = random_search(env, acc, args.search_evals, rng)
            r["random-10"].append(rs[10])
            r["random-100"].append(rs[args.search_evals])
            best, n = ppo_search(acc, args.search_evals, seed)
            r["ppo-100"].append(best)
            r["ppo-100 evals"].append(n)
        print(f"seed {seed}: trained {args.timesteps} steps ({n_eval} distinct evaluations) in {wall:.0f} s; "
              f"zero-shot mean regret {np.mean([rows[a.name]['zero-shot'][-1] for _, a in targets]):.2f} points")
    transfer = transfer_regrets(env, [a for _, a in targets])
    for k, (_, acc) in enumerate(targets):
        for c in ("oracle", "chosen", "mean"):
            rows[acc.name][f"transfer {c}"] = transfer[c][k]

    ablation = {}
    if args.ablation:
        from quant_envs.mixed_precision.multi_hardware import DESCRIPTOR_GROUPS

        variants = {"none": ()} | {f"without {g}": tuple(x for x in DESCRIPTOR_GROUPS if x != g)
                                   for g in DESCRIPTOR_GROUPS} | {"all": DESCRIPTOR_GROUPS}
        for label, groups in variants.items():
            if label == "all":  # the main run's first seed
                ablation[label] = float(np.mean([r["zero-shot"][0] for r in rows.values()]))
                continue
            model, _, _ = train_agent(args.seeds[0], args.timesteps, descriptor=groups)
            ab_env = make_env([*TRAIN_PROFILES], descriptor=groups)
            ablation[label] = float(np.mean([zero_shot(model, ab_env, a) for _, a in targets]))
            print(f"ablation {label}: mean held-out zero-shot regret {ablation[label]:.2f}")

    cols = ["zero-shot", "random-10", "random-100", "ppo-100", "transfer oracle", "transfer chosen", "transfer mean"]
    lines = ["| accelerator | set | feasible policies | within 1 point of the optimum | zero-shot (1 eval) | random-10 | "
             "random-100 | ppo-100 | transfer: best on held-out (1 eval) | transfer: best on training (1 eval) | "
             "transfer: mean |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['set']} | {r['feasible']} | {r['near']} | " + " | ".join(
            _ms(r[c]) if isinstance(r[c], list) else f"{r[c]:.2f}" for c in cols) + " |")
    means = {c: float(np.mean([np.mean(r[c]) for r in rows.values()])) for c in cols}
    lines.append("| **mean** | | | | " + " | ".join(f"**{means[c]:.2f}**" for c in cols) + " |")
    ppo_evals = float(np.mean([np.mean(r["ppo-100 evals"]) for r in rows.values()]))
    summary = [
        f"Regret in accuracy points (table optimum at the accelerator's budget minus the policy's validation "
        f"accuracy), mean ± sd over seeds {args.seeds}; `{ENV_ID}` on {args.table}'s table, latency budget level 0.3.",
        f"Reward evaluations per held-out accelerator: zero-shot 1 (after {np.mean(train_evals):.0f} distinct "
        f"training evaluations on training accelerators, {args.timesteps} steps, {np.mean(train_time):.0f} s), "
        f"random-10 10, random-100 {args.search_evals}, ppo-100 {args.search_evals} episodes "
        f"({ppo_evals:.0f} distinct), transferred 1: the table optimum of one of {transfer['candidates']} training "
        f"accelerators, replayed (best on held-out: `{transfer['oracle_source']}`, an oracle choice; best on the "
        f"other training accelerators: `{transfer['chosen_source']}`; mean: the average candidate), "
        f"table optimum {env.problem.table.score.size} (regret 0).",
        f"Targets: zero-shot within 1 point of random-100: {'met' if means['zero-shot'] <= means['random-100'] + 1 else 'NOT met'} "
        f"({means['zero-shot']:.2f} vs {means['random-100']:.2f}); better than the best transferred policy: "
        f"{'met' if means['zero-shot'] < means['transfer oracle'] else 'NOT met'} against the oracle choice "
        f"({means['zero-shot']:.2f} vs {means['transfer oracle']:.2f}), "
        f"{'met' if means['zero-shot'] < means['transfer chosen'] else 'NOT met'} against the choice made on "
        f"training accelerators ({means['transfer chosen']:.2f}).",
    ]
    if ablation:
        summary.append(f"Descriptor ablation (seed {args.seeds[0]}, mean held-out zero-shot regret): "
                       + "; ".join(f"{k} {v:.2f}" for k, v in ablation.items()) + ".")
    text = "\n".join(lines) + "\n\n" + "\n\n".join(summary) + "\n"
    print(text)
    atomic_write_text(out / "transfer.md", text)
    atomic_write_json(out / "transfer.json", {"rows": rows, "means": means, "transfer": transfer,
                                              "train_evaluations": train_evals, "ablation": ablation,
                                              "seeds": args.seeds, "timesteps": args.timesteps})
    plot(rows, cols, out / "transfer.png")
    print(f"wrote {out / 'transfer.md'}, transfer.json, transfer.png")


def plot(rows: dict[str, dict], cols: list[str], path: Path) -> None:
    from quant_envs.rendering import new_figure, save_figure

    fig = new_figure(9.0, 3.8)
    ax = fig.add_subplot()
    x = np.arange(len(rows))
    width = 0.8 / len(cols)
    for k, c in enumerate(cols):
        vals = [np.mean(r[c]) for r in rows.values()]
        errs = [np.std(r[c]) for r in rows.values()]
        ax.bar(x + (k - (len(cols) - 1) / 2) * width, vals, width, yerr=errs, label=c, capsize=2)
    ax.set_xticks(x, [n.replace("~", "\n~") for n in rows], fontsize=7)
    ax.set_ylabel("regret (accuracy points)")
    ax.set_title("held-out accelerators: zero-shot vs per-accelerator search", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":
    main()
