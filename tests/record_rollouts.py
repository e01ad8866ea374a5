"""Recorded rollouts: what every registered id did, so that a change of behaviour cannot pass unseen.

For every id in ``quant_envs.ENV_IDS`` (made with ``gym.make`` and the arguments in
:data:`CONTRACT`), two seeds each run a seeded random policy for a few steps: ``reset(seed=s)``,
then actions drawn with ``numpy.random.default_rng(s)`` among the allowed ones (``action_masks()``
where the environment has it), ``reset()`` again whenever an episode ends. What the rollout shows
(observations, rewards, terminations, truncations, ``info``; actions too) is kept as a digest:

* ``exact``: a SHA-256 over everything that is not a float (flags, integers, strings, shapes,
  dtypes, ``info``'s keys, where a float is NaN or infinite). It must be equal.
* ``floats``: per channel (``obs``, ``reward``, each ``info`` key holding floats) the count and
  four sums of its values: plain, absolute, and weighted by cos and sin of the value's position.
  A value may move by ``atol + rtol * |value|`` (:data:`TOLERANCE`; a channel of
  :data:`LOOSE` by its own bound), so a channel's sums by the sum of its values' bounds. That
  holds on every CPU kind; a change of behaviour moves the sums further.

``TOLERANCE``: numpy and float32 round-off differs between CPU kernels by about one float32 unit
in the last place (6e-8 relative); 1e-6 leaves room. The mixed-precision ids retrain a quantized
network for their terminal reward: they run on the digits-cnn table's shipped float network
(``tables.live``), so a retraining lands within ``tables.live.CROSS_CPU_SAMPLES`` validation samples
on any CPU kind, and their accuracy, float accuracy and reward are held to that bound (the
reward is 100 x ``reward_scale`` x the accuracy change). The FEEL training ids train a small
network with torch for a few rounds; over the recorded rounds torch's scalar kernels moved their
values by under 1e-8 relative (measured against AVX-512), well inside ``TOLERANCE``.

Times and cache flags are left out (``eval_time_s``, ``cached``, keys ending in ``_time_s`` or
``wall``): they depend on the machine or on other instances, not on the id's behaviour.

Regenerate (after an intended, documented change of an id that keeps its version, e.g. a new
``info`` key): ``python -m tests.record_rollouts`` from the repository root; it rewrites
:data:`RECORDS` (atomically). A behaviour change of an id otherwise gets a new version.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

RECORDS = Path(__file__).with_name("rollout_records.json")
COMMAND = "python -m tests.record_rollouts"
SEEDS = (0, 1)
STEPS = 12  # steps per seed (an id's own number in CONTRACT when an episode is longer)
FORMAT = 1

#: float channels: a value may move by atol + rtol * |value| across CPU kinds
TOLERANCE = {"rtol": 1e-6, "atol": 1e-12}

_DIGITS_NET = {"from_table": "digits-cnn"}  # replaced by the table's shipped float network
_LIVE_MP = {"task": "digits-cnn", "task_kwargs": {"float_state": _DIGITS_NET}}

#: per id: the arguments of ``gym.make`` (JSON; ``{"from_table": name}`` stands for that table's
#: float network) and the steps per seed; every other id runs with its defaults and STEPS
CONTRACT: dict[str, dict[str, Any]] = {
    "quant_envs/MixedPrecision-v1": {"kwargs": {**_LIVE_MP, "share_problem": False}},
    "quant_envs/MixedPrecisionContinuous-v1": {"kwargs": {**_LIVE_MP, "share_problem": False}},
    "quant_envs/MixedPrecision-v0": {"kwargs": {**_LIVE_MP, "share_problem": False}},
    "quant_envs/MixedPrecisionContinuous-v0": {"kwargs": {**_LIVE_MP, "share_problem": False}},
    "quant_envs/MixedPrecisionMultiHardware-v0": {"kwargs": dict(_LIVE_MP)},
    "quant_envs/MixedPrecisionTable-v0": {"steps": 20},  # hawq-resnet18: 16 steps an episode
    "quant_envs/MixedPrecisionTableContinuous-v0": {"steps": 20},
}

_EXCLUDED = ("eval_time_s", "cached")


def excluded(key: str) -> bool:
    """Keys that depend on the machine or on other instances (wall-clock times, cache flags)."""
    return key in _EXCLUDED or key.endswith("_time_s") or key.endswith("wall")


def _mp_bounds(samples: int, val_size: int, reward_scale: float) -> dict[str, float]:
    acc = samples / val_size + 1e-12
    return {"reward": 100.0 * reward_scale * acc + 1e-12, "info.accuracy": acc, "info.float_accuracy": acc}


def loose_bounds(env_id: str) -> dict[str, dict[str, float]]:
    """Channels whose values depend on training numerics, with their own (atol, rtol)."""
    if env_id.startswith("quant_envs/MixedPrecision") and "Table" not in env_id:
        from quant_envs.datasets import digits_splits
        from quant_envs.mixed_precision.tables.live import CROSS_CPU_SAMPLES

        val = len(digits_splits().val.y)
        return {k: {"atol": v, "rtol": 0.0} for k, v in _mp_bounds(CROSS_CPU_SAMPLES, val, 0.1).items()}
    return {}


def resolve(kwargs: Any) -> Any:
    """``kwargs`` with every ``{"from_table": name}`` replaced by that table's float network."""
    if isinstance(kwargs, dict):
        if set(kwargs) == {"from_table"}:
            from quant_envs.mixed_precision.tables.registry import load_table

            return load_table(kwargs["from_table"]).float_state
        return {k: resolve(v) for k, v in kwargs.items()}
    return kwargs


def random_action(space: Any, rng: np.random.Generator, mask: np.ndarray | None) -> Any:
    """One action of ``space`` drawn with ``rng`` (numpy's own draws, not gymnasium's sampler, whose
    algorithm may change with gymnasium); a Discrete action among ``mask``'s allowed ones."""
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        allowed = np.arange(space.n) if mask is None else np.flatnonzero(mask)
        return int(space.start + allowed[rng.integers(len(allowed))])
    if isinstance(space, spaces.MultiDiscrete):
        return (space.start + rng.integers(0, space.nvec)).astype(space.dtype)
    if isinstance(space, spaces.Box):
        low = np.where(np.isfinite(space.low), space.low, -1.0)
        high = np.where(np.isfinite(space.high), space.high, 1.0)
        return rng.uniform(low, high).astype(space.dtype)
    raise TypeError(f"no random policy for action space {space!r}")


class _Split:
    """Separates a rollout into its exact part (hashed) and its float channels (summed)."""

    def __init__(self) -> None:
        self.exact = hashlib.sha256()
        self.floats: dict[str, list[float]] = {}

    def add(self, channel: str, value: Any) -> None:
        if isinstance(value, dict):
            keys = sorted(k for k in value if not excluded(str(k)))
            self._hash(channel, "keys", keys)
            for k in keys:
                self.add(f"{channel}.{k}", value[k])
            return
        if isinstance(value, (list, tuple)) and not all(isinstance(v, (int, float, np.number, bool, np.bool_)) for v in value):
            self._hash(channel, "len", len(value))
            for i, v in enumerate(value):
                self.add(f"{channel}[{i}]", v)
            return
        if isinstance(value, (str, bytes)) or value is None:
            self._hash(channel, "value", value if not isinstance(value, bytes) else value.hex())
            return
        arr = np.asarray(value)
        if arr.dtype.kind in "biu":
            self._hash(channel, str(arr.dtype.kind), arr.shape, arr.astype(np.int64).ravel().tolist())
        elif arr.dtype.kind == "f":
            flat = arr.astype(np.float64).ravel()
            bad = ~np.isfinite(flat)
            self._hash(channel, "float", arr.shape, np.flatnonzero(bad).tolist(), [str(x) for x in flat[bad]])
            self.floats.setdefault(channel, []).extend(np.where(bad, 0.0, flat).tolist())
        else:
            self._hash(channel, "other", repr(value))

    def _hash(self, *parts: Any) -> None:
        self.exact.update(json.dumps(parts, default=str).encode())
        self.exact.update(b"\n")


def summary(values: Sequence[float]) -> list[float]:
    """[count, sum, sum of |v|, sum of cos(k phi) v, sum of sin(k phi) v] (phi the golden angle):
    linear (or 1-Lipschitz) in the values, so a bound on each value bounds each sum."""
    v = np.asarray(values, dtype=np.float64)
    k = np.arange(1, len(v) + 1) * 2.399963229728653
    return [float(len(v)), float(v.sum()), float(np.abs(v).sum()), float(np.cos(k) @ v), float(np.sin(k) @ v)]


def allowed_change(values: Sequence[float], atol: float, rtol: float) -> float:
    """How far a summary may move when each value may move by ``atol + rtol * |value|``."""
    v = np.asarray(values, dtype=np.float64)
    return float(len(v) * atol + rtol * np.abs(v).sum())


def rollout(env_id: str, seed: int) -> dict[str, Any]:
    """The digest of one seed's rollout of ``env_id`` (see the module docstring), with the raw float
    channels under ``"values"`` (not stored)."""
    import warnings

    import gymnasium as gym
    import torch

    import quant_envs  # noqa: F401  (registers the ids)

    torch.set_num_threads(1)  # what CI's tests run with; a retraining's result does not depend on it
    spec = CONTRACT.get(env_id, {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the v0 ids' deprecation notices
        env = gym.make(env_id, **resolve(spec.get("kwargs", {})))
    rng = np.random.default_rng(seed)
    split = _Split()
    try:
        obs, info = env.reset(seed=seed)
        split.add("obs", obs)
        split.add("info", info)
        for _ in range(spec.get("steps", STEPS)):
            masks = getattr(env.unwrapped, "action_masks", None)
            action = random_action(env.action_space, rng, masks() if masks is not None else None)
            split.add("action", action)
            obs, reward, terminated, truncated, info = env.step(action)
            split.add("obs", obs)
            split.add("reward", float(reward))
            split.add("done", [bool(terminated), bool(truncated)])
            split.add("info", info)
            if terminated or truncated:
                obs, info = env.reset()
                split.add("obs", obs)
                split.add("info", info)
    finally:
        env.close()
    return {"exact": split.exact.hexdigest(), "floats": {c: [float(f"{x:.12g}") for x in summary(v)]
                                                         for c, v in sorted(split.floats.items())},
            "values": split.floats}


def record(env_ids: Sequence[str]) -> dict[str, Any]:
    """The records of ``env_ids`` (every seed), as stored in :data:`RECORDS`."""
    from quant_envs.mixed_precision.tables.numerics import numerics

    out: dict[str, Any] = {}
    for env_id in env_ids:
        spec = CONTRACT.get(env_id, {})
        runs = {str(s): rollout(env_id, s) for s in SEEDS}
        out[env_id] = {"kwargs": spec.get("kwargs", {}), "steps": spec.get("steps", STEPS),
                       "seeds": {s: {k: r[k] for k in ("exact", "floats")} for s, r in runs.items()}}
    return {"format": FORMAT, "command": COMMAND, "tolerance": TOLERANCE, "recorded_with": numerics(), "ids": out}


def next_version(env_id: str) -> str:
    """The id a changed behaviour is registered as: the name's highest registered version plus one."""
    import quant_envs

    name = env_id.rsplit("-v", 1)[0]
    versions = [int(other.rsplit("-v", 1)[1]) for other in quant_envs.ENV_IDS if other.rsplit("-v", 1)[0] == name]
    return f"{name}-v{max(versions) + 1}"


def differences(env_id: str, seed: str, stored: dict[str, Any], fresh: dict[str, Any]) -> list[str]:
    """What of ``fresh`` (a :func:`rollout`) is beyond the tolerance of ``stored`` (its record)."""
    found = []
    if fresh["exact"] != stored["exact"]:
        found.append("exact part (flags, integers, strings, shapes, info keys, actions)")
    loose = loose_bounds(env_id)
    for channel in sorted(set(stored["floats"]) | set(fresh["floats"])):
        if channel not in stored["floats"] or channel not in fresh["floats"]:
            found.append(f"{channel}: present in only one of the record and the rollout")
            continue
        tol = loose.get(channel, TOLERANCE)
        bound = allowed_change(fresh["values"][channel], tol["atol"], tol["rtol"])
        for name, a, b in zip(("count", "sum", "sum|v|", "cos-sum", "sin-sum"), stored["floats"][channel], fresh["floats"][channel]):
            if abs(a - b) > bound + 1e-11 * max(abs(a), 1.0):  # + the record's 12 significant digits
                found.append(f"{channel} {name}: recorded {a!r}, now {b!r} (allowed {bound:.3g})")
                break
    return [f"seed {seed}: {f}" for f in found]


def main(argv: Sequence[str] | None = None) -> int:
    import quant_envs
    from quant_envs.atomic_io import atomic_write_text

    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--id", action="append", dest="ids", metavar="ENV_ID",
                        help="re-record only these ids (repeatable; default: every registered id)")
    parser.add_argument("--out", type=Path, default=RECORDS)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.ids or ()) - set(quant_envs.ENV_IDS))
    if unknown:
        parser.error(f"--id {unknown} is not registered; expected one of {sorted(quant_envs.ENV_IDS)}")
    old = json.loads(args.out.read_text()) if args.ids and args.out.exists() else {"ids": {}}
    new = record(args.ids or list(quant_envs.ENV_IDS))
    new["ids"] = {k: v for k, v in {**old["ids"], **new["ids"]}.items() if k in quant_envs.ENV_IDS}
    # one line per summary: a diff then shows which channel moved
    text = re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]",
                  json.dumps(new, indent=1))
    atomic_write_text(args.out, text + "\n")
    print(f"wrote {args.out} ({len(new['ids'])} ids, seeds {list(SEEDS)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
