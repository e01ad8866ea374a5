"""Training callbacks: record every finished episode, cap reward evaluations, checkpoint atomically."""

from __future__ import annotations

import dataclasses
import json
import pickle
import random
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from quant_envs.atomic_io import (
    atomic_path,
    atomic_write,
    atomic_write_csv,
    atomic_write_json,
    json_ready,
)
from quant_envs.mixed_precision.problem import Evaluation, MixedPrecisionProblem

if TYPE_CHECKING:
    from sb3_contrib import MaskablePPO

#: Evaluation fields that are settings of the problem, not outcomes (not columns), and the
#: evaluation bookkeeping that comes after the outcomes (in this order: saved files keep it).
_SETTINGS = ("policy", "budget_metric", "budget", "finetune_steps", "split")
_BOOKKEEPING = ("cached", "eval_time_s")
_OUTCOMES = tuple(f.name for f in dataclasses.fields(Evaluation) if f.name not in _SETTINGS + _BOOKKEEPING)

#: Columns of evaluations.csv (those an environment does not report are left empty): the episode,
#: every outcome field of a mixed-precision ``Evaluation`` (accuracy, costs, budget use, fractions),
#: the evaluation's bookkeeping, then the projected actions and the policy.
RECORD_FIELDS = ("episode", "timestep", "return", *_OUTCOMES, *_BOOKKEEPING, "projected_actions", "policy")


class EpisodeRecorder(BaseCallback):
    """Records each finished episode (its return and final ``info``) and keeps the best.

    ``max_evaluations`` stops training once that many reward evaluations ran (episodes whose
    ``info["cached"]`` is False; every episode counts for environments that do not report it).
    """

    def __init__(self, max_evaluations: int | None = None) -> None:
        super().__init__()
        self.max_evaluations = max_evaluations
        self.records: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self.num_evaluations = 0
        self._returns: np.ndarray | None = None
        self._projected: np.ndarray | None = None
        self._timed = False

    def _on_training_start(self) -> None:
        # mixed-precision environments keep their evaluations' wall time out of info, as an attribute
        self._timed = self.training_env.has_attr("last_eval_time_s")
        if self._returns is None or len(self._returns) != self.training_env.num_envs:
            self._returns = np.zeros(self.training_env.num_envs)
        if self._projected is None or len(self._projected) != self.training_env.num_envs:
            self._projected = np.zeros(self.training_env.num_envs, dtype=np.int64)

    def _on_step(self) -> bool:
        rewards, dones, infos = self.locals["rewards"], self.locals["dones"], self.locals["infos"]
        self._returns += rewards
        assert self._projected is not None
        # masked actions the environment replaced (invalid_action="project"): counted, never silent
        self._projected += np.fromiter(("projected_from" in info for info in infos), dtype=np.int64, count=len(infos))
        for i, done in enumerate(dones):
            if not done:
                continue
            info = infos[i]
            record = {"episode": len(self.records), "timestep": int(self.num_timesteps), "return": float(self._returns[i])}
            for key in RECORD_FIELDS[3:]:
                if key in info:
                    record[key] = json_ready(info[key])
            if self._timed and "eval_time_s" not in info:  # wall time is kept out of info (determinism)
                record["eval_time_s"] = float(self.training_env.get_attr("last_eval_time_s", indices=[i])[0])
            record["projected_actions"] = int(self._projected[i])
            self.logger.record_mean("rollout/projected_actions", int(self._projected[i]))
            self._returns[i] = 0.0
            self._projected[i] = 0
            self.records.append(record)
            if not record.get("cached", False):
                self.num_evaluations += 1
            if self.best is None or record["return"] > self.best["return"]:
                self.best = {**record, "final_info": {k: json_ready(v) for k, v in info.items()
                                                      if k not in ("terminal_observation", "episode", "action_mask")}}
        return self.max_evaluations is None or self.num_evaluations < self.max_evaluations

    # ------------------------------------------------------------------------------ persistence
    def state(self) -> dict[str, Any]:
        return {"records": self.records, "best": self.best, "num_evaluations": self.num_evaluations}

    def partial_state(self) -> dict[str, Any]:
        """The returns of the episodes under way (checkpoints fall between rollouts, not episodes)."""
        return {"returns": None if self._returns is None else self._returns.tolist(),
                "projected": None if self._projected is None else self._projected.tolist()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.records = list(state.get("records", []))
        self.best = state.get("best")
        self.num_evaluations = int(state.get("num_evaluations", 0))
        partial = state.get("partial") or {}
        if partial.get("returns") is not None:
            self._returns = np.array(partial["returns"], dtype=float)
        if partial.get("projected") is not None:
            self._projected = np.array(partial["projected"], dtype=np.int64)

    def write_csv(self, path: Path) -> None:
        rows = [{**r, "policy": json.dumps(r["policy"]) if "policy" in r else ""} for r in self.records]
        atomic_write_csv(path, rows, RECORD_FIELDS)


class PeriodicEvaluation(BaseCallback):
    """RL Zoo's evaluation: every ``every`` timesteps, ``episodes`` deterministic episodes on a separate env.

    The evaluation environment is re-seeded with ``seed`` before each evaluation, so every
    evaluation plays the same episodes and its result depends on the policy alone (and a resumed
    run evaluates exactly as an uninterrupted one). The grid is absolute (multiples of ``every``).
    Writes ``evaluations.npz`` (``timesteps``, ``results`` [evaluations x episodes], ``ep_lengths``,
    as SB3's EvalCallback) and ``best_model.zip`` (the policy with the best mean return) atomically
    into ``directory``; the mean return is logged as ``eval/mean_reward``.
    """

    def __init__(self, eval_env: Any, directory: Path, every: int, episodes: int, seed: int, masked: bool) -> None:
        super().__init__()
        if every < 1 or episodes < 1:
            raise ValueError(f"every={every!r} and episodes={episodes!r} are not allowed; expected integers >= 1")
        self.eval_env, self.directory, self.every, self.episodes = eval_env, Path(directory), every, episodes
        self.seed, self.masked = seed, masked
        self.timesteps: list[int] = []
        self.results: list[list[float]] = []
        self.ep_lengths: list[list[int]] = []
        self.best_mean = -np.inf
        self._last = 0

    def load(self, num_timesteps: int) -> None:
        """Continue after a resume: earlier evaluations from ``evaluations.npz``, the grid position."""
        self._last = num_timesteps // self.every
        path = self.directory / "evaluations.npz"
        if path.is_file():
            with np.load(path) as data:
                keep = data["timesteps"] <= num_timesteps  # those after the checkpoint will be redone
                self.timesteps = data["timesteps"][keep].tolist()
                self.results = data["results"][keep].tolist()
                self.ep_lengths = data["ep_lengths"][keep].tolist()
            if self.results:
                self.best_mean = float(np.max(np.mean(self.results, axis=1)))

    def _on_step(self) -> bool:
        k = self.num_timesteps // self.every
        if k <= self._last:
            return True
        self._last = k
        self.eval_env.seed(self.seed)
        if self.masked:  # training.py sets masked only for MaskablePPO
            from sb3_contrib.common.maskable.evaluation import evaluate_policy as evaluate_masked

            returns, lengths = evaluate_masked(cast("MaskablePPO", self.model), self.eval_env,
                                               n_eval_episodes=self.episodes, deterministic=True,
                                               return_episode_rewards=True, warn=False)
        else:
            from stable_baselines3.common.evaluation import evaluate_policy

            returns, lengths = evaluate_policy(self.model, self.eval_env, n_eval_episodes=self.episodes,
                                               deterministic=True, return_episode_rewards=True, warn=False)
        assert isinstance(returns, list) and isinstance(lengths, list)  # per episode (return_episode_rewards)
        self.timesteps.append(int(self.num_timesteps))
        self.results.append([float(r) for r in returns])
        self.ep_lengths.append([int(n) for n in lengths])
        mean = float(np.mean(returns))
        self.logger.record("eval/mean_reward", mean)
        self.logger.record("eval/mean_ep_length", float(np.mean(lengths)))
        atomic_write(self.directory / "evaluations.npz", lambda f: np.savez(
            f, timesteps=np.array(self.timesteps), results=np.array(self.results), ep_lengths=np.array(self.ep_lengths)),
            binary=True)
        if mean > self.best_mean:
            self.best_mean = mean
            with atomic_path(self.directory / "best_model.zip") as tmp:
                self.model.save(tmp)
        return True


class AtomicCheckpoint(BaseCallback):
    """Checkpoints from which a run continues exactly as if it had never stopped.

    A checkpoint is taken at a rollout (on-policy) or collection (off-policy) boundary *after* the
    update that ends it, i.e. at the start of the next collection, once ``num_timesteps`` has passed
    a multiple of ``every`` (the grid is absolute, so a resumed run checkpoints where the
    uninterrupted one does). It holds what the algorithm needs to go on: the model with its optimiser
    state and counters (``model-<step>.zip``), the replay buffer of off-policy agents
    (``replay_buffer-<step>.pkl``), and ``extra-<step>.pkl``: the random states of Python, numpy and
    torch and of the algorithm's own generators, the environments' state (every wrapper's and the
    environment's attributes, and a mixed-precision problem's evaluation cache) and the recorder's
    partial episode returns. ``state.json`` (written last) names those files and holds the episode
    records; older files are removed only after that, so a crash at any point leaves ``state.json``
    pointing at a complete, consistent set.
    """

    def __init__(self, directory: Path, every: int, recorder: EpisodeRecorder, on_save: Any = None) -> None:
        super().__init__()
        self.directory = Path(directory)
        self.every = int(every)
        if self.every < 1:
            raise ValueError(f"every={every!r} is not allowed; expected an integer >= 1")
        self.recorder = recorder
        self.on_save = on_save
        self._last = 0

    def _on_training_start(self) -> None:
        self._last = int(self.model.num_timesteps)

    def _on_rollout_start(self) -> None:
        # after the previous collection's update, before any new step: the exact resume point
        step = int(self.model.num_timesteps)
        if step // self.every > self._last // self.every:
            self.save()

    def _on_step(self) -> bool:
        return True

    def save(self) -> None:
        self._last = step = int(self.model.num_timesteps)
        self.directory.mkdir(parents=True, exist_ok=True)
        files = {"model": f"model-{step}.zip", "extra": f"extra-{step}.pkl"}
        with atomic_path(self.directory / files["model"]) as tmp:
            self.model.save(tmp)
        if isinstance(self.model, OffPolicyAlgorithm) and self.model.replay_buffer is not None:
            files["replay_buffer"] = f"replay_buffer-{step}.pkl"
            with atomic_path(self.directory / files["replay_buffer"]) as tmp:
                self.model.save_replay_buffer(tmp)
        extra = {"rng": rng_state(self.model), "env": env_state(self.model.get_env()),
                 "recorder": self.recorder.partial_state()}
        atomic_write(self.directory / files["extra"], lambda f: pickle.dump(extra, f), binary=True)
        atomic_write_json(self.directory / "state.json", {"num_timesteps": step, **files, **self.recorder.state()})
        for pattern in ("model-*.zip", "replay_buffer-*.pkl", "extra-*.pkl"):
            for old in self.directory.glob(pattern):
                if old.name not in files.values():
                    old.unlink(missing_ok=True)
        if self.on_save is not None:
            self.on_save()


# ------------------------------------------------------------------------------ random and env state
def _generators(model: Any) -> dict[str, np.random.Generator]:
    """The algorithm's own numpy generators (e.g. HAQ's exploration noise), by attribute name."""
    return {k: v for k, v in vars(model).items() if isinstance(v, np.random.Generator)}


def rng_state(model: Any) -> dict[str, Any]:
    """Every random state a training step draws from."""
    import torch

    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "action_space": model.action_space.np_random.bit_generator.state,
            "generators": {k: g.bit_generator.state for k, g in _generators(model).items()}}


def set_rng_state(model: Any, state: dict[str, Any]) -> None:
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    model.action_space.np_random.bit_generator.state = state["action_space"]
    gens = _generators(model)
    for name, s in state["generators"].items():
        gens[name].bit_generator.state = s


#: Attributes never snapshotted: the wrapped environment (walked separately) and the shared,
#: read-only mixed-precision problem (its evaluation cache is saved on its own).
_SKIP = ("env", "envs", "problem")


def _chain(env: Any) -> list[Any]:
    """The wrappers of ``env`` from the outside in, then the environment itself."""
    out = [env]
    while hasattr(out[-1], "env") and out[-1] is not getattr(out[-1], "unwrapped", out[-1]):
        out.append(out[-1].env)
    return out


def env_state(vec_env: Any) -> dict[str, Any] | None:
    """The state of an SB3 ``DummyVecEnv`` and every environment in it (attributes, generators).

    None for other vectorised environments (their environments live in other processes): a resume
    then continues from the checkpoint, but not bit-identically (said once, as a warning).
    """
    from stable_baselines3.common.vec_env import DummyVecEnv

    if not isinstance(vec_env, DummyVecEnv):
        warnings.warn(f"{type(vec_env).__name__}: environment state is not checkpointed, so --resume continues "
                      "from the checkpoint but not bit-identically (use the dummy vec env for exact resume)",
                      stacklevel=2)
        return None
    state = {"vec": {k: v for k, v in vars(vec_env).items() if k not in _SKIP},
             "envs": [[{k: v for k, v in vars(obj).items() if k not in _SKIP} for obj in _chain(e)]
                      for e in vec_env.envs]}
    problem = getattr(vec_env.envs[0].unwrapped, "problem", None)
    if isinstance(problem, MixedPrecisionProblem):
        state["problem"] = problem.cache_state()
    return state


def set_env_state(vec_env: Any, state: dict[str, Any] | None) -> None:
    if state is None:
        return
    if len(state["envs"]) != vec_env.num_envs:
        raise ValueError(f"the checkpoint holds {len(state['envs'])} environments; this run has {vec_env.num_envs} "
                         "(pass the same --n-envs)")
    vars(vec_env).update(state["vec"])
    for e, saved in zip(vec_env.envs, state["envs"]):
        chain = _chain(e)
        if len(chain) != len(saved):
            raise ValueError("the checkpoint's environment wrappers differ from this run's")
        for obj, attrs in zip(chain, saved):
            vars(obj).update(attrs)
    if "problem" in state:
        problem = getattr(vec_env.envs[0].unwrapped, "problem", None)
        if not isinstance(problem, MixedPrecisionProblem):
            raise ValueError("the checkpoint holds a mixed-precision evaluation cache; this run's environment has none")
        problem.load_cache_state(state["problem"])


def read_state(directory: Path) -> dict[str, Any]:
    """``state.json`` of a checkpoint directory; ValueError (one line) when missing or unreadable."""
    path = Path(directory) / "state.json"
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path} is missing: this run has no checkpoint to continue from (start it again without --resume)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is unreadable ({exc}); the checkpoint cannot be trusted") from None
    if not isinstance(state, dict) or not {"num_timesteps", "model"} <= state.keys():
        raise ValueError(f"{path} lacks num_timesteps or model; the checkpoint cannot be trusted")
    return state


def load_checkpoint(directory: Path, algo_class: type[BaseAlgorithm], env: Any) -> tuple[Any, dict[str, Any]]:
    """The model and state saved by :class:`AtomicCheckpoint` in ``directory``, with the random
    states, environment state and replay buffer put back (ValueError when any part is missing)."""
    directory = Path(directory)
    state = read_state(directory)
    for key in ("model", "replay_buffer", "extra"):
        if state.get(key) and not (directory / state[key]).is_file():
            raise ValueError(f"{directory / state[key]} (named in state.json) is missing")
    try:
        model = algo_class.load(directory / state["model"], env=env, device="cpu", force_reset=False)
    except Exception as exc:  # a damaged zip fails in many ways; all mean "cannot continue"
        raise ValueError(f"{directory / state['model']} is unreadable ({type(exc).__name__}: {exc})") from None
    if state.get("replay_buffer"):
        if not isinstance(model, OffPolicyAlgorithm):
            raise ValueError(f"checkpoint in {directory} has a replay buffer, but {algo_class.__name__} "
                             "keeps none (an off-policy algorithm's checkpoint?)")
        model.load_replay_buffer(directory / state["replay_buffer"])
    if int(model.num_timesteps) != int(state["num_timesteps"]):
        raise ValueError(f"checkpoint in {directory} is inconsistent: {state['model']} is at step "
                         f"{model.num_timesteps}, state.json at {state['num_timesteps']}")
    if state.get("extra"):
        try:
            with open(directory / state["extra"], "rb") as f:
                extra = pickle.load(f)
        except Exception as exc:
            raise ValueError(f"{directory / state['extra']} is unreadable ({type(exc).__name__})") from None
        set_env_state(model.get_env(), extra["env"])
        set_rng_state(model, extra["rng"])  # last: loading re-seeded the generators
        state["partial"] = extra["recorder"]
    return model, state
