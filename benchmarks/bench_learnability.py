"""Learnability benchmark: can an RL agent trained as a new user would reach the solvers?

For each environment: the uniform random policy, PPO (and SAC where the action space is a Box)
trained with stable-baselines3's default hyperparameters for a fixed number of steps, and the
best non-RL solver, all scored on the same held-out reset seeds (1000, 1001, ...; training uses
the seeds SB3 draws from seed 0, or from each of 0 .. N - 1 with ``--train-seeds N``) in the
objective's own units:

* ``SplineCompander-v1`` (laplacian, N = 32, degree 2, L = 2), and with ``fit="least_squares"``,
  L = 4 (where v0 had its 0 dB cliff): final SQNR in dB against
  ``baselines.compander.spline_compander``; target: within 0.05 dB.
* ``ScalarQuantizer-v0`` (gaussian, N = 8): final SQNR in dB against Lloyd-Max; target: within
  0.05 dB.
* ``FeelAllocation-v1`` (K = 10): the model's total training time T in seconds against the
  paper's AO on the same scenario; target: mean T / T_AO <= 1.10.
* ``FeelAllocation-v2`` (K = 10): the same problem in per-device rows; PPO with the per-row policy
  and the YAML hyperparameters of ``agents/hyperparams/ppo.yml`` (the CVT rows' setting), beside
  a hand-written rule that allocates each device from its own observation row. Both FeelAllocation
  rows give PPO the 50k steps of the other rows (this benchmark's protocol); v2's PPO reaches x1.048 of
  AO (x1.047..x1.050 over training seeds 0..2), x1.136 at 20k steps (x1.135..x1.138).
* ``FeelTraining-v1`` (K = 10, scenario 0): measured time to the target optimality gap in seconds
  (the simulator's, so stochastic) against AO's levels held every round; no numeric target.
* ``CVT1D`` / ``CVT2D``: rows from ``benchmarks/learnability_cvt.py``'s
  ``cvt_learnability_rows(quick=...)`` when that module exists (a list of :class:`Row` or of dicts
  with its field names).

One command, minutes per environment on 2 cores (torch on one thread)::

    python benchmarks/bench_learnability.py                          # everything
    python benchmarks/bench_learnability.py --env FeelAllocation     # one environment
    python benchmarks/bench_learnability.py --quick                  # smoke run: tiny budgets
    python benchmarks/bench_learnability.py --env FeelAllocation --train-seeds 3  # agents from seeds 0, 1, 2

The environments are never tuned for the agent: every id is used with its registered defaults.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import gymnasium as gym
import numpy as np

import quant_envs  # noqa: F401  (registers the ids)
from agents import compare_adapters
from quant_envs.text_tables import format_table as text_table

EVAL_SEED0 = 1000  # held-out reset seeds start here
_SKIP_TRAINING = False  # --skip-training
_ALGOS = ("ppo", "sac")  # --algo
_TRAIN_SEEDS = 1  # --train-seeds: agents trained from seeds 0 .. N - 1


@dataclass(frozen=True)
class Row:
    """One line of the table: a policy's mean objective on the held-out seeds beside the solver's."""

    env: str
    policy: str
    steps: int | None  # training steps (None: no training)
    train_s: float | None  # wall seconds of training
    objective: float  # mean over the held-out seeds, in ``unit``
    spread: float  # standard deviation over the seeds
    unit: str
    solver: float  # the solver's mean objective on the same seeds
    versus: str  # the comparison the target is stated in, e.g. "-0.012 dB" or "x1.043"
    target: str  # e.g. "<= 0.05 dB below" ("" when there is none)
    met: str  # "yes" / "no" / ""
    # Agents trained from several seeds: min..max over training seeds of the held-out mean (the
    # row's objective is then the mean over training seeds, its spread the sd over all episodes).
    seed_range: tuple[float, float] | None = None


@dataclass
class Entry:
    """One environment of the benchmark; ``rows(quick)`` produces its lines of the table."""

    name: str
    rows: Callable[[bool], list[Row]]


# ---------------------------------------------------------------------------------------- scoring
@dataclass
class EnvSpec:
    """How to score one Gymnasium id: the objective of an episode and the solver's for that seed."""

    name: str
    env_id: str
    env_kwargs: dict[str, Any]
    unit: str
    objective: Callable[[dict[str, Any]], float]  # final info -> objective
    solver: Callable[[Any, int], float]  # (unwrapped env just after reset(seed), seed) -> solver objective
    higher_is_better: bool
    compare: Callable[[np.ndarray, np.ndarray], tuple[str, str, str]]  # (agent, solver) per seed -> versus, target, met
    algos: tuple[str, ...]
    steps: dict[str, int]
    quick_steps: dict[str, int]
    seeds: int = 16
    quick_seeds: int = 3
    # Untrained reference policies shown beside the agents: name -> act(obs, rng), or a
    # (env, seed) -> objective scorer like ``solver`` (e.g. a weaker baseline solver).
    references: dict[str, Callable[..., Any]] = field(default_factory=dict)
    # True: the agents take the policy and hyperparameters of agents/hyperparams/<algo>.yml for
    # env_id (e.g. a per-row policy) instead of SB3's defaults with MlpPolicy.
    yaml_agents: bool = False


def run_episode(env: gym.Env, seed: int, act: Callable[[np.ndarray, np.random.Generator], Any], rng: np.random.Generator) -> dict[str, Any]:
    """``compare``'s episode loop with an ``act(obs, rng)`` policy: the final ``info``."""
    return compare_adapters.run_episode(env, seed, lambda obs: act(obs, rng))


def evaluate(spec: EnvSpec, act, seeds: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(policy objective, solver objective) per held-out seed."""
    env = gym.make(spec.env_id, **spec.env_kwargs)
    rng = np.random.default_rng(0)
    mine, ref = [], []
    for s in seeds:
        env.reset(seed=s)
        ref.append(spec.solver(env.unwrapped, s))
        mine.append(spec.objective(run_episode(env, s, act, rng)))
    env.close()
    return np.array(mine), np.array(ref)


def score(spec: EnvSpec, scorer: Callable[[Any, int], float], seeds: list[int]) -> np.ndarray:
    """A solver-like scorer's objective per held-out seed (no episode is played)."""
    env = gym.make(spec.env_id, **spec.env_kwargs)
    out = []
    for s in seeds:
        env.reset(seed=s)
        out.append(scorer(env.unwrapped, s))
    env.close()
    return np.array(out)


def train(spec: EnvSpec, algo: str, steps: int, seed: int = 0):
    from stable_baselines3 import PPO, SAC

    env = gym.make(spec.env_id, **spec.env_kwargs)
    if spec.yaml_agents:
        from agents import make_agent

        model = make_agent(algo, env, env_id=spec.env_id, seed=seed, device="cpu", verbose=0)
    else:
        cls = {"ppo": PPO, "sac": SAC}[algo]
        model = cls("MlpPolicy", env, seed=seed, device="cpu", verbose=0)  # SB3 defaults, as a new user
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps)
    return model, time.perf_counter() - t0


def spec_rows(spec: EnvSpec, quick: bool, log: Callable[[str], None], train_agents: bool = True) -> list[Row]:
    seeds = [EVAL_SEED0 + i for i in range(spec.quick_seeds if quick else spec.seeds)]
    budgets = spec.quick_steps if quick else spec.steps
    rows = []

    def row(policy: str, steps: int | None, wall: float | None, mine: np.ndarray, ref: np.ndarray) -> Row:
        versus, target, met = spec.compare(mine, ref)
        return Row(spec.name, policy, steps, wall, float(mine.mean()), float(mine.std()), spec.unit, float(ref.mean()), versus, target, met)

    def sample(env_space):
        return lambda obs, rng: env_space.sample()

    space = gym.make(spec.env_id, **spec.env_kwargs).action_space
    space.seed(0)
    mine, ref = evaluate(spec, sample(space), seeds)
    rows.append(row("random", None, None, mine, ref))
    log(f"{spec.name}: random {mine.mean():.4g} {spec.unit}, solver {ref.mean():.4g}")
    rows.append(row("solver", None, None, ref, ref))
    for name, ref_policy in spec.references.items():
        if name.startswith("policy:"):
            mine, _ = evaluate(spec, ref_policy, seeds)
        else:
            mine = score(spec, ref_policy, seeds)
        rows.append(row(name.removeprefix("policy:"), None, None, mine, ref))
    for algo in [a for a in spec.algos if a in _ALGOS] if train_agents else ():
        per_seed, walls = [], []
        for train_seed in range(_TRAIN_SEEDS):
            model, wall = train(spec, algo, budgets[algo], train_seed)
            mine, ref = evaluate(spec, lambda obs, rng, m=model: m.predict(obs, deterministic=True)[0], seeds)
            per_seed.append(mine)
            walls.append(wall)
            versus = spec.compare(mine, ref)[0]
            log(f"{spec.name}: {algo} seed {train_seed}, {budgets[algo]} steps in {wall:.0f} s -> {mine.mean():.4g} {spec.unit} ({versus})")
        name = algo.upper() + (" (policy from the YAML)" if spec.yaml_agents else "")
        if _TRAIN_SEEDS == 1:
            rows.append(row(name, budgets[algo], wall, mine, ref))
            continue
        # every held-out seed once per training seed: the mean (and the compare's mean) is over training seeds
        r = row(f"{name}, training seeds 0..{_TRAIN_SEEDS - 1}", budgets[algo], float(np.mean(walls)),
                np.concatenate(per_seed), np.tile(ref, _TRAIN_SEEDS))
        met = [spec.compare(m, ref)[2] for m in per_seed]
        means = [float(m.mean()) for m in per_seed]
        rows.append(replace(r, seed_range=(min(means), max(means)),
                            versus=f"{r.versus} ({', '.join(spec.compare(m, ref)[0] for m in per_seed)})",
                            met=f"{r.met} ({met.count('yes')}/{len(met)} seeds)" if r.met else ""))
    return rows


# ------------------------------------------------------------------------------------ comparisons
def db_within(tol_db: float) -> Callable[[np.ndarray, np.ndarray], tuple[str, str, str]]:
    def compare(mine: np.ndarray, ref: np.ndarray) -> tuple[str, str, str]:
        gap = float(np.mean(mine - ref))
        return f"{gap:+.4f} dB", f">= -{tol_db:g} dB", "yes" if gap >= -tol_db else "no"

    return compare


def time_ratio(limit: float | None) -> Callable[[np.ndarray, np.ndarray], tuple[str, str, str]]:
    def compare(mine: np.ndarray, ref: np.ndarray) -> tuple[str, str, str]:
        r = float(np.mean(mine / ref))
        if limit is None:
            return f"x{r:.3f}", "", ""
        return f"x{r:.3f}", f"<= x{limit:.2f}", "yes" if r <= limit else "no"

    return compare


# ------------------------------------------------------------------------------------- solvers
# The scoring of each problem lives in the library (agents.compare_adapters, which train.py compare
# uses too); these are the benchmark's (env, seed) -> objective forms of it.
def spline_solver(env, seed: int) -> float:
    return compare_adapters.spline_solver(env, seed)


def feel_ao_time(env, seed: int) -> float:
    return compare_adapters.feel_solver_time(env, "ao")


def feel_equal_bandwidth_time(env, seed: int) -> float:
    return compare_adapters.feel_solver_time(env, "equal_bandwidth")


def feel_training_ao_time(env, seed: int, levels: np.ndarray | None = None) -> float:
    """AO's levels (for the scenario's model) held every round, run through the same simulator."""
    from baselines.feel import solve

    if levels is None:
        levels = solve(env.scenario, "ao").levels
    return compare_adapters.feel_training_time(env, seed, levels)


_SQNR = compare_adapters.CompanderAdapter()
_FEEL_ALLOCATION = compare_adapters.FeelAllocationAdapter()


#: FeelAllocation v1 and v2 (one problem, two layouts) share their scoring: training time against AO's.
FEEL_ALLOCATION_SCORING: dict[str, Any] = dict(
    env_kwargs={},
    unit="s",
    objective=lambda info: _FEEL_ALLOCATION.objective(info, {}),
    solver=feel_ao_time,
    higher_is_better=False,
    compare=time_ratio(1.10),
)

#: The SQNR environments (compander, scalar quantizer) share their scoring and training budgets.
SQNR_SCORING: dict[str, Any] = dict(
    unit="dB",
    objective=lambda info: _SQNR.objective(info, {}),
    higher_is_better=_SQNR.higher_is_better,
    compare=db_within(0.05),
    algos=("ppo", "sac"),
    steps={"ppo": 50_000, "sac": 10_000},
    quick_steps={"ppo": 2048, "sac": 300},
)


def feel_row_rule(obs: np.ndarray, level: int = 17, latency: float = 0.95, logit_scale: float = 3.0,
                  max_levels: int = 255) -> np.ndarray:
    """A hand-written FeelAllocation-v2 policy that acts on each device's observation row alone.

    Every device takes QSGD level ``level`` and the band it needs to finish its round in
    ``latency`` x tau_bal (the balanced latency of the row's scale term), computed from its own
    row: computation and reference upload time (over t_ref) and SNR over B / K; band in units of
    B / K, rates per unit band. The softmax of the environment turns these needs into shares. The
    two constants were chosen on reset seeds 0..31, not on the held-out seeds.
    """
    from quant_envs.feel.bandwidth import bandwidth_for_rate
    from quant_envs.feel.model import bits_per_upload
    from quant_envs.feel.reference import REFERENCE_LEVEL

    compute, upload, snr = (obs[:, i].astype(np.float64) for i in range(3))
    snr_lin = 10.0 ** ((100.0 * snr - 20.0) / 10.0)  # receive SNR over B / K (feature: (dB + 20) / 100)
    dim = 650  # the simulator's model size d, which every scenario shares
    bits_ratio = bits_per_upload(level, dim) / bits_per_upload(REFERENCE_LEVEL, dim)
    slack = np.maximum(latency * obs[:, 6] - compute, 1e-9)
    need = bandwidth_for_rate(upload * bits_ratio * np.log2(1.0 + snr_lin) / slack, snr_lin)  # x B / K
    need = np.where(np.isfinite(need), need, 1e3)  # unreachable in time: as much band as the logits give
    level_entry = 2.0 * (np.log2(level + 1.0) - 1.0) / (np.log2(max_levels + 1.0) - 1.0) - 1.0
    logits = np.clip(np.log(need) / logit_scale, -1.0, 1.0)
    return np.stack([np.full(len(obs), level_entry), logits], axis=1).astype(np.float32)


SPECS = [
    EnvSpec(name="SplineCompander-v1", env_id="quant_envs/SplineCompander-v1", env_kwargs={},
            solver=spline_solver, **SQNR_SCORING),
    EnvSpec(  # the formulation whose 0 dB cliff v1 smooths: least-squares fit, 3 thresholds
        name="SplineCompander-v1[least_squares,L=4]", env_id="quant_envs/SplineCompander-v1",
        env_kwargs={"fit": "least_squares", "segments": 4}, solver=spline_solver, **SQNR_SCORING),
    EnvSpec(name="ScalarQuantizer-v0", env_id="quant_envs/ScalarQuantizer-v0", env_kwargs={},
            solver=lambda env, seed: float(10.0 * np.log10(1.0 / env._reference()[2])),  # Lloyd-Max
            **SQNR_SCORING),
    EnvSpec(
        name="FeelAllocation-v1",
        env_id="quant_envs/FeelAllocation-v1",
        **FEEL_ALLOCATION_SCORING,
        algos=("ppo", "sac"),
        steps={"ppo": 50_000, "sac": 5_000},  # PPO: the protocol's 50k steps, as the other rows
        quick_steps={"ppo": 2048, "sac": 300},
        seeds=32,
        references={
            "policy:zero action (equal bandwidth, s = 22)": lambda obs, rng: np.zeros(20, dtype=np.float32),
            "equal bandwidth + SCA levels (baseline solver)": feel_equal_bandwidth_time,
        },
    ),
    EnvSpec(
        name="FeelAllocation-v2",
        env_id="quant_envs/FeelAllocation-v2",
        **FEEL_ALLOCATION_SCORING,
        algos=("ppo",),
        steps={"ppo": 50_000},  # as v1: the same problem gets the same budget
        quick_steps={"ppo": 2048},
        seeds=32,
        references={
            "policy:zero action (equal bandwidth, s = 22)": lambda obs, rng: np.zeros((10, 2), dtype=np.float32),
            "policy:hand-written row rule (s = 17, band to finish in 0.95 tau_bal)": lambda obs, rng: feel_row_rule(obs),
        },
        yaml_agents=True,
    ),
    EnvSpec(
        name="FeelTraining-v1",
        env_id="quant_envs/FeelTraining-v1",
        env_kwargs={},
        unit="s",
        objective=lambda info: float(info["elapsed_time"]) if "elapsed_time" in info else float("nan"),
        solver=feel_training_ao_time,
        higher_is_better=False,
        compare=time_ratio(None),
        algos=("ppo",),
        steps={"ppo": 20_000},
        quick_steps={"ppo": 2048},
        seeds=4,
        quick_seeds=2,
        references={
            "constant 8-bit (s = 127)": lambda env, seed: feel_training_ao_time(env, seed, np.full(env.num_devices, 127)),
        },
    ),
]


def _entries() -> list[Entry]:
    entries = [Entry(spec.name, lambda quick, spec=spec: spec_rows(spec, quick, _log, not _SKIP_TRAINING)) for spec in SPECS]
    try:  # the CVT rows come from benchmarks/learnability_cvt.py, when present
        from learnability_cvt import cvt_learnability_rows
    except ImportError:
        return entries

    def cvt(quick: bool) -> list[Row]:
        # learnability_cvt's rows (env_id, policy, objective = mean E / E*, ...) as this table's Rows
        kwargs: dict[str, Any] = {"timesteps": 0 if _SKIP_TRAINING else (2048 if quick else None),
                                  "n_eval": 2 if quick else 10, "log": _log}
        raw = cvt_learnability_rows(**kwargs)
        solver = {r["env_id"]: r["objective"] for r in raw if r["policy"] == "solver"}
        out = []
        for r in raw:
            best, target = solver[r["env_id"]], r.get("target")
            is_agent = r["policy"] == "ppo"
            out.append(Row(env=r["env_id"], policy=r["policy"], steps=r.get("timesteps"), train_s=r.get("train_wall_s"),
                           objective=r["objective"], spread=r.get("objective_sd", 0.0), unit="E/E*", solver=best,
                           versus=f"x{r['objective'] / best:.3f}",
                           target=f"E/E* <= {target:g}" if is_agent and target else "",
                           met=("yes" if r["objective"] <= target else "no") if is_agent and target else ""))
        return out

    entries.append(Entry("CVT", cvt))
    return entries


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _seed_range(r: Row) -> str:
    return "" if r.seed_range is None else f" [{r.seed_range[0]:.4g}..{r.seed_range[1]:.4g}]"


def format_table(rows: list[Row]) -> str:
    header = ["environment", "policy", "training steps", "training (s)", "objective (held-out mean ± sd)", "solver",
              "vs solver", "target", "met"]
    cells = [[r.env, r.policy, "" if r.steps is None else r.steps, "" if r.train_s is None else r.train_s,
              f"{r.objective:.4g} ± {r.spread:.2g}{_seed_range(r)} {r.unit}", f"{r.solver:.4g} {r.unit}", r.versus, r.target, r.met]
             for r in rows]
    return text_table(header, cells, align=["left", "left"] + ["right"] * 5 + ["left", "left"],
                      formats=[None, None, ",", ".0f", None, None, None, None, None])


def main(argv: list[str] | None = None) -> int:
    global _SKIP_TRAINING, _ALGOS, _TRAIN_SEEDS
    parser = argparse.ArgumentParser(prog="bench_learnability.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", action="append", default=None,
                        help="run only environments whose name contains this (repeatable), e.g. FeelAllocation, CVT")
    parser.add_argument("--quick", action="store_true", help="tiny budgets and 2-3 seeds (smoke run, minutes in all)")
    parser.add_argument("--skip-training", action="store_true", help="only the random, solver and reference rows")
    parser.add_argument("--algo", action="append", choices=("ppo", "sac"), default=None, help="train only this agent (repeatable)")
    parser.add_argument("--train-seeds", type=int, default=1, metavar="N",
                        help="train each agent from seeds 0..N-1; its row shows the mean over training seeds and "
                             "[min..max] of the held-out mean (default 1; not the CVT rows)")
    args = parser.parse_args(argv)
    if args.train_seeds < 1:
        parser.error(f"--train-seeds must be an int >= 1, got {args.train_seeds}")
    _TRAIN_SEEDS = args.train_seeds
    _SKIP_TRAINING = args.skip_training
    _ALGOS = tuple(args.algo) if args.algo else ("ppo", "sac")
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)  # small MLPs: threads only contend on the shared 2 cores
    entries = _entries()
    if args.env:
        entries = [e for e in entries if any(f.lower() in e.name.lower() for f in args.env)]
        if not entries:
            print(f"{parser.prog}: error: --env {args.env} matches none of: {', '.join(e.name for e in _entries())}", file=sys.stderr)
            return 2
    rows: list[Row] = []
    with threadpool_limits(limits=1):
        for e in entries:
            rows += e.rows(args.quick)
            _log("table so far:\n" + format_table(rows))
    print("\n## Learnability: random, PPO / SAC (SB3 defaults unless noted), solver on held-out seeds\n")
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
