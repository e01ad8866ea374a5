"""Command line of ``train.py`` (and the ``quant-envs-train`` console script): ``train`` and ``compare``.

    quant-envs-train --env quant_envs/MixedPrecision-v0 --algo maskable_ppo --timesteps 2000
    quant-envs-train compare --agents maskable_ppo --baselines uniform random --seeds 5
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from agents import AGENTS, check_hyperparams, hyperparams_for, run_defaults
from agents.comparison import DEFAULT_BASELINES, DEFAULT_COMPARE_ENV, compare, compare_grid
from agents.replay import replay
from agents.runs import DEFAULT_ENV, UsageError, parse_kwargs
from agents.training import run_config, train
from agents.validate import main as validate_main
from quant_envs.atomic_io import check_writable_dir, describe_os_error


def train_parser() -> argparse.ArgumentParser:
    """Flags of ``train.py`` (a single training run)."""
    p = argparse.ArgumentParser(prog="train.py", description="Train an agent on a quant_envs environment "
                                "(or: train.py compare --help, train.py replay --help).")
    # None = not given: a new run takes TRAIN_DEFAULTS, --resume takes the run's own config.json
    p.add_argument("--env", help=f"environment id (default {DEFAULT_ENV})")
    p.add_argument("--algo", choices=list(AGENTS), help="agent (default maskable_ppo)")
    p.add_argument("--timesteps", type=int, help="total environment steps (default 1000)")
    p.add_argument("--seed", type=int, help="default 0")
    p.add_argument("--env-kwargs", nargs="*", metavar="KEY=VALUE", help="environment arguments, values as YAML")
    p.add_argument("--hyperparams", nargs="*", metavar="KEY=VALUE", help="override the YAML hyperparameters")
    p.add_argument("--out", help="run directory (default runs/<env>/<algo>-s<seed>)")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's last checkpoint")
    p.add_argument("--checkpoint-freq", type=int, default=500, help="steps between checkpoints (default 500)")
    p.add_argument("--max-evaluations", type=int, help="stop after this many reward evaluations")
    p.add_argument("--n-envs", type=int, help="parallel environment copies (default: the YAML's n_envs, else 1)")
    p.add_argument("--vec-env", choices=["dummy", "subproc"], default="dummy",
                   help="dummy: copies in this process (default; exact --resume); subproc: a process per copy")
    p.add_argument("--eval-freq", type=int, default=0,
                   help="evaluate the deterministic policy every N timesteps on a separate env (default 0: off)")
    p.add_argument("--eval-episodes", type=int, default=5, help="episodes per evaluation (default 5)")
    p.add_argument("--force", action="store_true", help="replace the run already in --out")
    p.add_argument("--no-progress-bar", action="store_true")
    return p


def compare_parser() -> argparse.ArgumentParser:
    """Flags of ``train.py compare``."""
    p = argparse.ArgumentParser(prog="train.py compare", description="Agents against the problem's non-RL solvers over seeds.")
    p.add_argument("--env", default=DEFAULT_COMPARE_ENV,
                   help=f"any registered id: mixed precision, compander, FEEL or CVT (default {DEFAULT_COMPARE_ENV})")
    p.add_argument("--agents", nargs="*", help="default: maskable_ppo on mixed precision (ddpg_haq on its Continuous ids), ppo on the "
                   "other problems")
    p.add_argument("--baselines", nargs="*", help="the problem's solvers (baselines.<problem>.METHODS); default on "
                   f"mixed precision: {' '.join(DEFAULT_BASELINES)}; elsewhere the problem's usual solvers")
    p.add_argument("--seeds", type=int, help="seeds per method (default 10; 20 on MixedPrecisionTable-v0)")
    p.add_argument("--max-evaluations", type=int, default=200,
                   help="reward evaluations (mixed precision) or episodes (other problems) per agent run (default 200)")
    p.add_argument("--timesteps", type=int, help="cap on agent steps (default: 20 x evaluations x episode length on "
                   "mixed precision, else evaluations x episode length)")
    p.add_argument("--env-kwargs", nargs="*", metavar="KEY=VALUE")
    p.add_argument("--hyperparams", nargs="*", metavar="ALGO.KEY=VALUE", help="e.g. maskable_ppo.learning_rate=1e-3")
    p.add_argument("--out", default="results/compare")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--report-only", action="store_true", help="rebuild the table and figure from OUT/runs.csv")
    p.add_argument("--resume", action="store_true", help="keep OUT/runs.csv's finished runs; run only the rest")
    p.add_argument("--final-finetune-steps", type=int,
                   help="retraining steps of the final evaluation (default: the task's, MNIST-1D 300)")
    p.add_argument("--backend", choices=["local", "ray"], default="local",
                   help="local: --jobs processes here (default); ray: Ray Tune, a trial per run (RAY_ADDRESS for a cluster)")
    p.add_argument("--grid", nargs="*", metavar="KEY=V1,V2",
                   help="one comparison per combination of environment arguments, e.g. budget_fraction=0.3,0.5 "
                        "hardware=bismo-edge,bitfusion (each in OUT/<cell>/; OUT/grid.md has every table)")
    return p


def _as_list(item: str) -> str:
    """``KEY=V1,V2`` -> ``KEY=[V1, V2]`` (YAML), so each value is parsed as YAML on its own."""
    key, sep, values = item.partition("=")
    return f"{key}{sep}[{values}]" if sep else item


def replay_parser() -> argparse.ArgumentParser:
    """Flags of ``train.py replay``."""
    p = argparse.ArgumentParser(prog="train.py replay", description="Run a trained model.zip deterministically.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by train.py (config.json, model.zip)")
    p.add_argument("--episodes", type=int, default=1, help="episodes to run (default 1)")
    p.add_argument("--seed", type=int, default=10_000, help="seed of the first episode (default 10000: held out)")
    return p


def _yaml_n_envs(algo: str, env_id: str) -> int:
    if algo not in AGENTS:
        return 1  # train() names the bad --algo
    try:
        return run_defaults(algo, env_id).get("n_envs", 1)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    """Run ``train`` (default) or ``compare`` (first argument); user errors: one line, exit status 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "validate":
        return validate_main(argv[1:])
    try:
        if argv and argv[0] == "replay":
            a = replay_parser().parse_args(argv[1:])
            replay(a.run_dir, episodes=a.episodes, seed=a.seed)
            return 0
        if argv and argv[0] == "compare":
            a = compare_parser().parse_args(argv[1:])
            per_algo: dict[str, dict[str, Any]] = {}
            for key, value in parse_kwargs(a.hyperparams, "--hyperparams").items():
                algo, dot, name = key.partition(".")
                if not dot:
                    raise UsageError(f"--hyperparams {key!r} is not allowed; expected ALGO.KEY=VALUE")
                per_algo.setdefault(algo, {})[name] = value
            _check_compare_hyperparams(a.env, per_algo)
            if not a.report_only:  # before any run: an unwritable --out fails now, not after hours
                _check_out(a.out)
            settings = dict(env_id=a.env, agents=a.agents, baselines=a.baselines, seeds=a.seeds,
                            max_evaluations=a.max_evaluations, timesteps=a.timesteps,
                            env_kwargs=parse_kwargs(a.env_kwargs, "--env-kwargs"), hyperparams=per_algo, out=a.out,
                            jobs=a.jobs, report_only=a.report_only, resume=a.resume,
                            final_finetune_steps=a.final_finetune_steps, backend=a.backend)
            try:
                if a.grid:
                    grid = parse_kwargs([_as_list(g) for g in a.grid], "--grid")
                    compare_grid(grid, **settings)
                else:
                    compare(**settings)
            except (TypeError, ValueError) as exc:  # the library names its argument; one line here
                raise UsageError(f"compare: {exc}") from None
            return 0
        a = train_parser().parse_args(argv)
        given = {"env_id": a.env, "algo": a.algo, "timesteps": a.timesteps, "seed": a.seed,
                 "env_kwargs": parse_kwargs(a.env_kwargs, "--env-kwargs") if a.env_kwargs is not None else None,
                 "hyperparams": parse_kwargs(a.hyperparams, "--hyperparams") if a.hyperparams is not None else None,
                 "max_evaluations": a.max_evaluations}
        config = run_config(given, a.out, a.resume)
        n_envs = a.n_envs if a.n_envs is not None else _yaml_n_envs(config["algo"], config["env_id"])
        train(**config, out=a.out, resume=a.resume, checkpoint_freq=a.checkpoint_freq, n_envs=n_envs,
              progress_bar=not a.no_progress_bar, eval_freq=a.eval_freq, eval_episodes=a.eval_episodes,
              vec_env=a.vec_env, force=a.force)
        return 0
    except UsageError as exc:
        print(f"train.py: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a write that failed where no narrower handler knew the argument
        print(f"train.py: error: {describe_os_error(exc)}", file=sys.stderr)
        return 2


def _check_compare_hyperparams(env_id: str, per_algo: dict[str, dict[str, Any]]) -> None:
    """Each ALGO.KEY=VALUE of ``compare --hyperparams`` in its documented range, before any run."""
    for algo, overrides in per_algo.items():
        if algo not in AGENTS:
            raise UsageError(f"--hyperparams {algo}.*: {algo!r} is not an agent; expected one of: {', '.join(AGENTS)}")
        try:
            check_hyperparams(algo, hyperparams_for(algo, env_id, overrides))
        except (TypeError, ValueError) as exc:
            raise UsageError(f"--hyperparams {algo}.{exc}") from None


def _check_out(out: str) -> None:
    try:
        check_writable_dir(out, "--out")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
