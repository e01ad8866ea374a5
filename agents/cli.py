"""Command line of ``train.py`` (and the ``quant-envs-train`` console script): ``train`` and ``compare``.

    quant-envs-train --env quant_envs/MixedPrecision-v0 --algo maskable_ppo --timesteps 2000
    quant-envs-train compare --agents maskable_ppo --baselines uniform random --seeds 5
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from agents.comparison import DEFAULT_BASELINES, DEFAULT_COMPARE_ENV, compare
from agents.replay import replay
from agents.runs import DEFAULT_ENV, UsageError, parse_kwargs
from agents.training import run_config, train


def train_parser() -> argparse.ArgumentParser:
    """Flags of ``train.py`` (a single training run)."""
    from agents import AGENTS

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
    p.add_argument("--n-envs", type=int, default=1, help="parallel environment copies (one process)")
    p.add_argument("--no-progress-bar", action="store_true")
    return p


def compare_parser() -> argparse.ArgumentParser:
    """Flags of ``train.py compare``."""
    p = argparse.ArgumentParser(prog="train.py compare", description="Agents against non-RL baselines over seeds.")
    p.add_argument("--env", default=DEFAULT_COMPARE_ENV, help=f"default {DEFAULT_COMPARE_ENV}")
    p.add_argument("--agents", nargs="*", default=["maskable_ppo"])
    p.add_argument("--baselines", nargs="*", default=list(DEFAULT_BASELINES))
    p.add_argument("--seeds", type=int, default=10, help="seeds per method (default 10)")
    p.add_argument("--max-evaluations", type=int, default=200, help="reward evaluations per run (default 200)")
    p.add_argument("--timesteps", type=int, help="cap on agent steps (default: 20 x evaluations x episode length)")
    p.add_argument("--env-kwargs", nargs="*", metavar="KEY=VALUE")
    p.add_argument("--hyperparams", nargs="*", metavar="ALGO.KEY=VALUE", help="e.g. maskable_ppo.learning_rate=1e-3")
    p.add_argument("--out", default="results/compare")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--report-only", action="store_true", help="rebuild the table and figure from OUT/runs.csv")
    p.add_argument("--resume", action="store_true", help="keep OUT/runs.csv's finished runs; run only the rest")
    p.add_argument("--final-finetune-steps", type=int,
                   help="retraining steps of the final evaluation (default: the task's, MNIST-1D 300)")
    return p


def replay_parser() -> argparse.ArgumentParser:
    """Flags of ``train.py replay``."""
    p = argparse.ArgumentParser(prog="train.py replay", description="Run a trained model.zip deterministically.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by train.py (config.json, model.zip)")
    p.add_argument("--episodes", type=int, default=1, help="episodes to run (default 1)")
    p.add_argument("--seed", type=int, default=10_000, help="seed of the first episode (default 10000: held out)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run ``train`` (default) or ``compare`` (first argument); user errors: one line, exit status 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
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
            compare(env_id=a.env, agents=a.agents, baselines=a.baselines, seeds=a.seeds,
                    max_evaluations=a.max_evaluations, timesteps=a.timesteps,
                    env_kwargs=parse_kwargs(a.env_kwargs, "--env-kwargs"), hyperparams=per_algo, out=a.out,
                    jobs=a.jobs, report_only=a.report_only, resume=a.resume,
                    final_finetune_steps=a.final_finetune_steps)
            return 0
        a = train_parser().parse_args(argv)
        given = {"env_id": a.env, "algo": a.algo, "timesteps": a.timesteps, "seed": a.seed,
                 "env_kwargs": parse_kwargs(a.env_kwargs, "--env-kwargs") if a.env_kwargs is not None else None,
                 "hyperparams": parse_kwargs(a.hyperparams, "--hyperparams") if a.hyperparams is not None else None,
                 "max_evaluations": a.max_evaluations}
        config = run_config(given, a.out, a.resume)
        train(**config, out=a.out, resume=a.resume, checkpoint_freq=a.checkpoint_freq, n_envs=a.n_envs,
              progress_bar=not a.no_progress_bar)
        return 0
    except UsageError as exc:
        print(f"train.py: error: {exc}", file=sys.stderr)
        return 2
