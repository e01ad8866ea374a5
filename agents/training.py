"""Train one agent on one environment: checkpoints, ``--resume``, episode records, a summary.

``train`` is what ``python train.py`` runs; every file it writes is written atomically.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agents import (
    AGENTS,
    agent_class,
    check_compatible,
    check_hyperparams,
    hyperparams_for,
    make_agent,
    run_defaults,
)
from agents.reporting import run_figure
from agents.run_config import FLAGS, RESUME_KEYS, InvalidSetting, InvalidSettingType, TrainConfig
from agents.runs import (
    DEFAULT_ENV,
    UsageError,
    check_env_id,
    default_run_dir,
    make_vec_env,
    problem_of,
)
from quant_envs.atomic_io import (
    atomic_path,
    atomic_write_json,
    check_writable_dir,
    describe_os_error,
)


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir/.lock`` (an exclusive ``flock``) for the block; a second writer gets a UsageError.

    The kernel drops the lock when the holder dies (even by SIGKILL), so a killed run never
    blocks its ``--resume``.
    """
    path = run_dir / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise UsageError(f"--out {str(run_dir)!r} is in use by another run (pid {holder}); wait for it to end "
                         "or choose another --out") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _remove_stale_temporaries(run_dir: Path) -> None:
    # atomic writes of a killed run leave ".<name>.tmp-*" files; the lock says no one else writes here
    for sub in (run_dir, run_dir / "checkpoints"):
        if sub.is_dir():
            for tmp in sub.glob(".*.tmp-*"):
                tmp.unlink(missing_ok=True)


def _check_config(config: TrainConfig) -> None:
    """What can be checked before an environment is built beyond the config itself: the
    hyperparameters against the agent's ranges, with ``env_id``'s YAML defaults (UsageError, one line)."""
    try:
        check_hyperparams(config.algo, hyperparams_for(config.algo, config.env_id, dict(config.hyperparams or {})))
    except (TypeError, ValueError) as exc:
        raise UsageError(f"--hyperparams {exc}") from None


def make_train_config(**settings: Any) -> TrainConfig:
    """:class:`TrainConfig` from ``train``'s keyword arguments; a bad one is a UsageError naming its flag."""
    if "env_id" in settings:
        check_env_id(settings["env_id"])  # the registered ids listed, as the command line says it
    try:
        return TrainConfig(**settings)
    except (InvalidSetting, InvalidSettingType) as exc:
        raise UsageError(exc.flag_message()) from None


def _check_saved_config(run_dir: Path, config: TrainConfig) -> None:
    """With --resume: the run's config.json exists, is readable and agrees with ``config``."""
    saved = read_saved_config(run_dir)
    for key, value in config.resume_keys().items():
        # compared as config.json holds them (tuples become lists)
        if value != saved.get(key):
            raise UsageError(f"--resume: {FLAGS[key]} {getattr(config, key)!r} differs from the run's "
                             f"{saved.get(key)!r} ({run_dir / 'config.json'})")


def read_saved_config(run_dir: Path) -> dict[str, Any]:
    """The run's ``config.json``; a UsageError (one line) when it is missing or unreadable."""
    path = run_dir / "config.json"
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--resume: {path} is missing: {run_dir} holds no run to continue "
                         "(start it without --resume)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"--resume: {path} is unreadable ({exc}); the run cannot be continued safely") from None
    if not isinstance(saved, dict) or not {"env_id", "algo", "seed", "timesteps"} <= saved.keys():
        raise UsageError(f"--resume: {path} lacks env_id, algo, seed or timesteps; the run cannot be continued safely")
    return saved


def train(
    env_id: str = DEFAULT_ENV,
    algo: str = "maskable_ppo",
    timesteps: int = 1000,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    hyperparams: dict[str, Any] | None = None,
    out: str | os.PathLike[str] | None = None,
    resume: bool = False,
    checkpoint_freq: int = 500,
    max_evaluations: int | None = None,
    n_envs: int = 1,
    progress_bar: bool = True,
    test_best: bool = True,
    verbose: bool = True,
    eval_freq: int = 0,
    eval_episodes: int = 5,
    vec_env: str = "dummy",
    force: bool = False,
) -> dict[str, Any]:
    """Train ``algo`` on ``env_id``; return a summary (best episode, paths, wall time).

    Every argument and the output folder are checked before any work; the folder is locked for
    the run. With ``resume`` the run continues from its last checkpoint and ends exactly as an
    uninterrupted run with the same settings would (see :class:`agents.callbacks.AtomicCheckpoint`).
    A folder that already holds a run is refused unless ``resume`` (continue it) or ``force``
    (replace it); without ``out`` a new run goes to ``runs/<env>/<algo>-s<seed>`` or, when that
    holds a run, the next free ``..._2``, ``..._3`` (as RL Zoo numbers its runs).

    ``eval_freq`` > 0 evaluates the deterministic policy every ``eval_freq`` timesteps on a separate
    environment (``eval_episodes`` episodes from the same seeds each time), writing
    ``evaluations.npz`` and ``best_model.zip`` (:class:`agents.callbacks.PeriodicEvaluation`).
    ``vec_env`` is "dummy" (one process) or "subproc" (a process per copy; exact resume needs "dummy").
    """

    config = make_train_config(env_id=env_id, algo=algo, timesteps=timesteps, seed=seed, env_kwargs=env_kwargs,
                               hyperparams=hyperparams, max_evaluations=max_evaluations, n_envs=n_envs,
                               checkpoint_freq=checkpoint_freq, eval_freq=eval_freq, eval_episodes=eval_episodes,
                               vec_env=vec_env)
    return train_config(config, out=out, resume=resume, progress_bar=progress_bar, test_best=test_best,
                        verbose=verbose, force=force)


def train_config(config: TrainConfig, out: str | os.PathLike[str] | None = None, resume: bool = False,
                 progress_bar: bool = True, test_best: bool = True, verbose: bool = True,
                 force: bool = False) -> dict[str, Any]:
    """:func:`train` with its settings as one validated :class:`TrainConfig`."""
    _check_config(config)
    if out is not None and os.fspath(out) == "":
        raise UsageError("--out '' is not allowed; expected a directory path")
    run_dir = Path(out) if out is not None else default_run_dir(config.env_id, config.algo, config.seed,
                                                                existing=resume)
    if not resume and not force and (run_dir / "config.json").exists():
        raise UsageError(f"--out {str(run_dir)!r} already holds a run; pass --resume to continue it, --force to "
                         "replace it, or choose another --out")
    if resume:
        _check_saved_config(run_dir, config)
    try:
        check_writable_dir(run_dir, "--out")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    with run_lock(run_dir):
        if force and not resume:
            _clear_run(run_dir)
        try:
            return _train_locked(config, run_dir, resume, progress_bar, test_best, verbose)
        except OSError as exc:  # a full disk, a folder made read-only under the run, ...
            where = Path(exc.filename).resolve() if isinstance(exc.filename, (str, os.PathLike)) else None
            if where is None or where.is_relative_to(run_dir.resolve()):
                raise UsageError(f"--out {str(run_dir)!r}: cannot write: {describe_os_error(exc)}") from None
            raise UsageError(f"{describe_os_error(exc)}") from None


#: What a run writes into its folder (``--force`` removes these, and nothing else, before a new run).
RUN_FILES = ("config.json", "best_policy.json", "evaluations.csv", "summary.png", "model.zip", "evaluations.npz",
             "best_model.zip")
RUN_FOLDERS = ("checkpoints", "logs")


def _clear_run(run_dir: Path) -> None:
    import shutil

    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    for name in RUN_FOLDERS:
        shutil.rmtree(run_dir / name, ignore_errors=True)


def _eval_env(env_id: str, env_kwargs: dict[str, Any], seed: int) -> Any:
    """The evaluation environment: its own problem (a mixed-precision evaluation cache of its own, so
    evaluations neither count as the agent's reward evaluations nor answer its episodes)."""
    try:
        return make_vec_env(env_id, 1, seed, {**env_kwargs, "share_problem": False})
    except UsageError:
        return make_vec_env(env_id, 1, seed, env_kwargs)  # environments without a shared problem


def _train_locked(config: TrainConfig, run_dir: Path, resume: bool, progress_bar: bool, test_best: bool,
                  verbose: bool) -> dict[str, Any]:
    import torch
    from stable_baselines3.common.logger import configure

    # lazy: the callbacks import stable-baselines3 and torch; the CLI's --help and errors do not
    from agents.callbacks import (
        AtomicCheckpoint,
        EpisodeRecorder,
        PeriodicEvaluation,
        load_checkpoint,
        read_state,
    )

    env_id, algo, timesteps, seed = config.env_id, config.algo, config.timesteps, config.seed
    env_kwargs, hyperparams = dict(config.env_kwargs or {}), dict(config.hyperparams or {})
    max_evaluations, eval_freq, eval_episodes = config.max_evaluations, config.eval_freq, config.eval_episodes
    _remove_stale_temporaries(run_dir)
    ckpt_dir = run_dir / "checkpoints"
    if resume:
        try:
            read_state(ckpt_dir)  # before building anything: a missing checkpoint is an error, not a restart
        except ValueError as exc:
            raise UsageError(f"--resume: {exc}") from None
    torch.set_num_threads(1)  # small MLP policies and tiny task networks: threads only add contention
    start = time.perf_counter()

    vec_env = make_vec_env(env_id, config.n_envs, seed, env_kwargs, vec_env=config.vec_env)
    try:
        check_compatible(algo, vec_env.action_space)
    except ValueError as exc:
        vec_env.close()
        raise UsageError(f"--algo {algo} on --env {env_id}: {exc}") from None
    from gymnasium import spaces

    masked_env = vec_env.has_attr("action_masks") and isinstance(vec_env.action_space, spaces.Discrete)
    if masked_env and algo != "maskable_ppo":
        warnings.warn(f"{env_id} has action masks but --algo {algo} does not read them: actions the masks forbid "
                      "are replaced by the environment (invalid_action='project'); evaluations.csv counts them "
                      "per episode (projected_actions)", stacklevel=2)
    recorder = EpisodeRecorder(max_evaluations=max_evaluations)
    checkpoint = AtomicCheckpoint(ckpt_dir, config.checkpoint_freq, recorder,
                                  on_save=lambda: recorder.write_csv(run_dir / "evaluations.csv"))
    if resume:
        try:
            model, state = load_checkpoint(ckpt_dir, agent_class(algo), vec_env)
        except (OSError, ValueError, KeyError) as exc:
            raise UsageError(f"--resume: cannot load the checkpoint in {ckpt_dir}: {exc}") from None
        recorder.load_state(state)
        resumed_from = int(model.num_timesteps)
        if verbose:
            print(f"resuming {run_dir} from timestep {resumed_from}")
    else:
        atomic_write_json(run_dir / "config.json", config.to_json())
        try:
            model = make_agent(algo, vec_env, env_id=env_id, seed=seed, verbose=0, **hyperparams)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        resumed_from = 0
        checkpoint.init_callback(model)
        checkpoint.save()  # step 0: a run killed before its first grid checkpoint resumes exactly too
    part = len(list((run_dir / "logs").glob("part-*"))) if (run_dir / "logs").exists() else 0
    model.set_logger(configure(str(run_dir / "logs" / f"part-{part}"), ["csv", "tensorboard"]))
    callbacks: list[Any] = [recorder, checkpoint]
    evaluation = None
    if eval_freq > 0:
        eval_seed = seed + 1_000_003  # held-out episodes: never a training seed
        evaluation = PeriodicEvaluation(_eval_env(env_id, env_kwargs, eval_seed), run_dir, eval_freq, eval_episodes,
                                        eval_seed, masked=masked_env and algo == "maskable_ppo")
        evaluation.load(resumed_from)
        callbacks.append(evaluation)

    remaining = timesteps - resumed_from
    interrupted = False
    if remaining > 0 and (max_evaluations is None or recorder.num_evaluations < max_evaluations):
        try:
            model.learn(remaining, callback=callbacks, reset_num_timesteps=resumed_from == 0,
                        progress_bar=progress_bar)
        except KeyboardInterrupt:
            interrupted = True
    if not interrupted:  # an interrupted rollout is no exact resume point: keep the last grid checkpoint
        checkpoint.init_callback(model)
        checkpoint.save()  # the final state is also a checkpoint: --resume after the end does nothing more
    with atomic_path(run_dir / "model.zip") as tmp:
        model.save(tmp)
    recorder.write_csv(run_dir / "evaluations.csv")

    problem = problem_of(vec_env)
    best = recorder.best
    summary: dict[str, Any] = {
        "env_id": env_id, "algo": algo, "seed": seed, "timesteps": int(model.num_timesteps),
        "episodes": len(recorder.records), "reward_evaluations": recorder.num_evaluations,
        "wall_time_s": time.perf_counter() - start, "resumed_from": resumed_from,
        "interrupted": interrupted, "env_kwargs": env_kwargs, "best": best, "run_dir": str(run_dir),
    }
    if problem is not None and best is not None and "policy" in best:
        table = getattr(problem, "table", None)  # a table without a test column (HAWQ's) has no test split
        if test_best and (table is None or "test_accuracy" in table.columns):
            summary["best_test_accuracy"] = problem.evaluate(best["policy"], split="test").accuracy
        budget_fraction = problem.budget / problem.reference_cost[problem.budget_metric]
        run_figure(recorder.records, best, budget_fraction, [layer.name for layer in problem.layers],
                   run_dir / "summary.png", problem.budget_metric)
    else:
        run_figure(recorder.records, best, None, None, run_dir / "summary.png")
    if evaluation is not None:
        summary["eval_best_mean_return"] = evaluation.best_mean if evaluation.results else None
        evaluation.eval_env.close()
    atomic_write_json(run_dir / "best_policy.json", summary)
    vec_env.close()
    if verbose:
        print_train_summary(summary)
    return summary


def print_train_summary(summary: dict[str, Any]) -> None:
    best = summary["best"] or {}
    run_dir = summary["run_dir"]
    print(f"{summary['algo']} on {summary['env_id']}: {summary['timesteps']} timesteps, {summary['episodes']} episodes, "
          f"{summary['reward_evaluations']} reward evaluations, {summary['wall_time_s']:.1f} s"
          + ("  (interrupted: continue with --resume)" if summary["interrupted"] else ""))
    if "policy" in best:
        print(f"best policy (validation accuracy {best['accuracy']:.4f}, float {best.get('float_accuracy', float('nan')):.4f}, "
              f"{best.get('budget_used', float('nan')):.3f} of the budget): {best['policy']}")
        if "best_test_accuracy" in summary:
            print(f"its test accuracy: {summary['best_test_accuracy']:.4f}")
    elif best:
        print(f"best episode return: {best['return']:.4f}")
    print(f"results in {run_dir}/: best_policy.json, evaluations.csv, summary.png, model.zip, checkpoints/, logs/")


#: The defaults of the settings ``config.json`` always held (:class:`TrainConfig`'s).
TRAIN_DEFAULTS: dict[str, Any] = {k: v for k, v in TrainConfig().to_json().items()
                                  if k in ("env_id", "algo", "timesteps", "seed", *RESUME_KEYS)}
_FLAGS = {k: FLAGS[k] for k in RESUME_KEYS}


def run_config(given: dict[str, Any], out: str | None, resume: bool) -> dict[str, Any]:
    """The run's settings: what was given, else (with --resume) the run's config.json, else defaults.

    Resuming with a setting that differs from the one the run was made with is an error: the
    checkpoint would continue on another problem.
    """
    config = {k: (v if v is not None else TRAIN_DEFAULTS[k]) for k, v in given.items()}
    if given.get("timesteps") is None and config["algo"] in AGENTS:  # the YAML's n_timesteps, RL Zoo's default
        try:
            config["timesteps"] = run_defaults(config["algo"], config["env_id"]).get("n_timesteps", config["timesteps"])
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if not resume:
        return config
    if out is not None and out == "":
        raise UsageError("--out '' is not allowed; expected a directory path")
    run_dir = Path(out) if out is not None else default_run_dir(config["env_id"], config["algo"], config["seed"],
                                                                existing=True)
    saved_file = run_dir / "config.json"
    saved = read_saved_config(run_dir)
    for key, flag in _FLAGS.items():
        if given[key] is not None and given[key] != saved.get(key):
            raise UsageError(f"--resume: {flag} {given[key]!r} differs from the run's {saved.get(key)!r} "
                             f"({saved_file}); pass the same value or leave it out")
        config[key] = saved.get(key, config[key])
    if given["timesteps"] is None:  # a larger --timesteps extends the run
        config["timesteps"] = saved["timesteps"]
    return config

