"""Training callbacks: record every finished episode, cap reward evaluations, checkpoint atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from quant_envs._io import atomic_path, atomic_write_csv, atomic_write_json

#: Columns of evaluations.csv (those an environment does not report are left empty).
RECORD_FIELDS = (
    "episode", "timestep", "return", "accuracy", "float_accuracy", "latency_s", "energy_j", "size_bytes",
    "budget_used", "latency_fraction", "energy_fraction", "size_fraction", "cached", "eval_time_s", "policy",
)


def _plain(value: Any) -> Any:
    """JSON-friendly copy of an info value (numpy arrays and scalars to lists and numbers)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


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

    def _on_training_start(self) -> None:
        if self._returns is None or len(self._returns) != self.training_env.num_envs:
            self._returns = np.zeros(self.training_env.num_envs)

    def _on_step(self) -> bool:
        rewards, dones, infos = self.locals["rewards"], self.locals["dones"], self.locals["infos"]
        self._returns += rewards
        for i, done in enumerate(dones):
            if not done:
                continue
            info = infos[i]
            record = {"episode": len(self.records), "timestep": int(self.num_timesteps), "return": float(self._returns[i])}
            for key in RECORD_FIELDS[3:]:
                if key in info:
                    record[key] = _plain(info[key])
            self._returns[i] = 0.0
            self.records.append(record)
            if not record.get("cached", False):
                self.num_evaluations += 1
            if self.best is None or record["return"] > self.best["return"]:
                self.best = {**record, "final_info": {k: _plain(v) for k, v in info.items()
                                                      if k not in ("terminal_observation", "episode", "action_mask")}}
        return self.max_evaluations is None or self.num_evaluations < self.max_evaluations

    # ------------------------------------------------------------------------------ persistence
    def state(self) -> dict[str, Any]:
        return {"records": self.records, "best": self.best, "num_evaluations": self.num_evaluations}

    def load_state(self, state: dict[str, Any]) -> None:
        self.records = list(state.get("records", []))
        self.best = state.get("best")
        self.num_evaluations = int(state.get("num_evaluations", 0))

    def write_csv(self, path: Path) -> None:
        rows = [{**r, "policy": json.dumps(r["policy"]) if "policy" in r else ""} for r in self.records]
        atomic_write_csv(path, rows, RECORD_FIELDS)


class AtomicCheckpoint(BaseCallback):
    """Every ``every`` steps, save the model (+ replay buffer) and the recorder's state atomically.

    Each save writes ``model-<step>.zip`` (and ``replay_buffer-<step>.pkl`` for off-policy agents)
    and then ``state.json``, which names those files; older files are removed only after that. A
    crash at any point therefore leaves ``state.json`` pointing at a complete, consistent set.
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

    def _on_step(self) -> bool:
        if self.num_timesteps - self._last >= self.every:
            self.save()
        return True

    def save(self) -> None:
        self._last = self.num_timesteps = step = int(self.model.num_timesteps)
        self.directory.mkdir(parents=True, exist_ok=True)
        files = {"model": f"model-{step}.zip"}
        with atomic_path(self.directory / files["model"]) as tmp:
            self.model.save(tmp)
        if getattr(self.model, "replay_buffer", None) is not None:
            files["replay_buffer"] = f"replay_buffer-{step}.pkl"
            with atomic_path(self.directory / files["replay_buffer"]) as tmp:
                self.model.save_replay_buffer(tmp)
        atomic_write_json(self.directory / "state.json", {"num_timesteps": step, **files, **self.recorder.state()})
        for old in [*self.directory.glob("model-*.zip"), *self.directory.glob("replay_buffer-*.pkl")]:
            if old.name not in files.values():
                old.unlink(missing_ok=True)
        if self.on_save is not None:
            self.on_save()


def load_checkpoint(directory: Path, algo_class: type, env: Any) -> tuple[Any, dict[str, Any]]:
    """The model and state saved by :class:`AtomicCheckpoint` in ``directory``."""
    state = json.loads((Path(directory) / "state.json").read_text())
    model = algo_class.load(Path(directory) / state["model"], env=env, device="cpu")
    if state.get("replay_buffer"):
        model.load_replay_buffer(Path(directory) / state["replay_buffer"])
    if int(model.num_timesteps) != int(state["num_timesteps"]):
        raise ValueError(f"checkpoint in {directory} is inconsistent: {state['model']} is at step "
                         f"{model.num_timesteps}, state.json at {state['num_timesteps']}")
    return model, state
