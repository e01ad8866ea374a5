"""Validation by replay: recompute what a policy file claims and report every mismatch.

A policy file is the ``best_policy.json`` that ``train.py`` writes (its ``env_id``, ``env_kwargs``
and ``best`` record: policy, return, accuracy, costs, budget use, and the last step's ``info`` in
``best["final_info"]``), or any JSON object with ``policy`` (and optionally ``env_id``,
``env_kwargs`` and the claimed fields at the top level). The policy is replayed step by step on a
fresh environment (CompilerGym-style; on a continuous-action environment each width is sent as
the action that selects it, :func:`~quant_envs.mixed_precision.actions.continuous_action_for`):
every width must be allowed by the environment's exact mask at its step (feasibility), and the claimed return, accuracy, float accuracy, latency, energy, size,
budget use, regret and test accuracy are compared with what the replay gives. A file written on
a table (``table_digest`` in its last step's ``info``) that has since been regenerated is reported
as such, beside the mismatches that follow from it. A file of a table environment that drew its
budget per episode (``budget_range``) is replayed at the budget level its episode drew.

``against``: replay on the environment the file names (``None``, default; a live
``MixedPrecision-v0`` retrains the policy with the same seed), or on a table (``"hawq-resnet18"``,
``"digits-cnn"``, a path): ``MixedPrecisionTable-v0`` with the file's hardware, budget metric and
budget. Command line (``train.py validate`` calls the same)::
    python -m agents.validate runs/MixedPrecisionTable-v0/maskable_ppo-s0/best_policy.json
    python -m agents.validate best_policy.json --against digits-cnn
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import quant_envs  # noqa: F401  (registers the ids)
from quant_envs.mixed_precision.actions import continuous_action_for
from quant_envs.mixed_precision.env import MixedPrecisionEnv
from quant_envs.mixed_precision.problem import METRIC_INFO
from quant_envs.mixed_precision.unwrap import mixed_precision_env

#: Claimed fields recomputed by a replay: (name in the record, name in the last step's info).
CHECKED_FIELDS = ("accuracy", "float_accuracy", *(m.cost_field for m in METRIC_INFO.values()), "budget_used",
                  "regret", "optimum_score")
TABLE_ENV = "quant_envs/MixedPrecisionTable-v0"


@dataclass
class ValidationReport:
    """What the replay found: ``ok`` when every claim matched and every step was allowed."""

    env_id: str
    env_kwargs: dict[str, Any]
    policy: list[list[int]]
    checks: list[dict[str, Any]] = field(default_factory=list)  # name, claimed, replayed, ok
    problems: list[str] = field(default_factory=list)  # infeasible steps, missing data, ...

    @property
    def mismatches(self) -> list[dict[str, Any]]:
        return [c for c in self.checks if not c["ok"]]

    @property
    def ok(self) -> bool:
        return not self.problems and not self.mismatches and bool(self.checks)

    def format(self) -> str:
        lines = [f"replayed on {self.env_id} {self.env_kwargs}: policy {self.policy}"]
        for c in self.checks:
            lines.append(f"  {'ok ' if c['ok'] else 'MISMATCH'} {c['name']}: claimed {c['claimed']!r}, "
                         f"replay {c['replayed']!r}")
        lines += [f"  PROBLEM {p}" for p in self.problems]
        lines.append("valid" if self.ok else f"INVALID: {len(self.mismatches)} mismatch(es), "
                     f"{len(self.problems)} problem(s)")
        return "\n".join(lines)


def load_claim(source: str | os.PathLike[str] | Mapping[str, Any]) -> tuple[str | None, dict[str, Any], dict[str, Any]]:
    """(env_id, env_kwargs, claimed record) of a policy file or its parsed JSON."""
    if isinstance(source, Mapping):
        data = dict(source)
    else:
        path = Path(source)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"policy file {str(path)!r} cannot be read as JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"a policy file holds a JSON object, got {type(data).__name__}")
    best = data.get("best")
    record = best if isinstance(best, dict) else data
    if "policy" not in record:
        raise ValueError("the policy file has no policy (neither best.policy nor policy)")
    claim = {**record.get("final_info", {}), **{k: v for k, v in record.items() if k != "final_info"}}
    if "best_test_accuracy" in data:
        claim["test_accuracy"] = data["best_test_accuracy"]
    return data.get("env_id"), dict(data.get("env_kwargs") or {}), claim


def _table_kwargs(env_kwargs: Mapping[str, Any], table: str, env_id: str | None = None) -> dict[str, Any]:
    """The table environment matching a live environment's hardware, budget metric and budget
    (the live id's defaults, its registered kwargs first, for those the file leaves out, not the table's)."""
    import inspect

    import gymnasium as gym

    defaults = {k: v.default for k, v in inspect.signature(MixedPrecisionEnv.__init__).parameters.items()}
    if env_id is not None and env_id in gym.registry:
        defaults.update(gym.spec(env_id).kwargs)  # e.g. MixedPrecision-v0's budget_fraction 0.25
    out = {"table": table, **{k: env_kwargs.get(k, defaults[k]) for k in ("hardware", "budget_metric")}}
    if env_kwargs.get("budget") is not None:
        out["budget"] = env_kwargs["budget"]
    else:
        out["budget_fraction"] = env_kwargs.get("budget_fraction", defaults["budget_fraction"])
    return out


def _actions(env: Any, policy: Sequence[list[int] | tuple[int, ...] | int]) -> list[int]:
    bits = list(env.bits)
    two = bool(getattr(env, "two_steps_per_layer", False))
    out = []
    for i, pair in enumerate(policy):
        w, a = (int(pair[0]), int(pair[1])) if isinstance(pair, (list, tuple)) else (int(pair), int(pair))
        for b in ((w, a) if two else (w,)):
            if b not in bits:
                raise ValueError(f"policy[{i}]={list(pair) if isinstance(pair, (list, tuple)) else pair} uses {b} "
                                 f"bits; the environment allows {bits}")
        if not two and w != a:
            raise ValueError(f"policy[{i}]=({w}, {a}): the environment takes one width per layer")
        out += [bits.index(w), bits.index(a)] if two else [bits.index(w)]
    return out


def _close(claimed: Any, replayed: Any, rtol: float, atol: float) -> bool:
    if isinstance(claimed, (int, float)) and isinstance(replayed, (int, float)):
        if math.isnan(claimed) and math.isnan(replayed):
            return True
        return math.isclose(float(claimed), float(replayed), rel_tol=rtol, abs_tol=atol)
    return claimed == replayed


def validate(source: str | os.PathLike[str] | Mapping[str, Any], against: str | None = None,
             rtol: float = 1e-6, atol: float = 1e-9) -> ValidationReport:
    """Replay the policy of ``source`` and compare every claim (see the module docstring)."""
    import gymnasium as gym

    env_id, env_kwargs, claim = load_claim(source)
    if env_kwargs.get("budget_range") is not None:  # a budget drawn per episode: replay at the episode's own
        if "budget_level" not in claim:
            raise ValueError("the policy file's environment drew its budget per episode (budget_range) and the "
                             "file does not say which (budget_level): it cannot be replayed")
        env_kwargs = {k: v for k, v in env_kwargs.items() if k not in ("budget_range", "budget_grid")}
        env_kwargs["budget_level"] = claim["budget_level"]
    if against is not None:
        env_kwargs = _table_kwargs(env_kwargs, against, env_id) if env_id != TABLE_ENV else {**env_kwargs, "table": against}
        env_id = TABLE_ENV
    if env_id is None:
        raise ValueError("the policy file names no env_id; pass against=<table> to replay it on a table")
    env = mixed_precision_env(gym.make(env_id, **env_kwargs))
    policy = [list(p) if isinstance(p, (list, tuple)) else p for p in claim["policy"]]
    report = ValidationReport(env_id, env_kwargs, policy)
    try:
        actions = _actions(env, policy)
    except ValueError as exc:
        report.problems.append(str(exc))
        return report
    if len(actions) != env.num_steps:
        report.problems.append(f"the policy has {len(policy)} layers; {env_id} takes {env.num_steps} steps")
        return report
    env.reset(seed=0)
    continuous = isinstance(env.action_space, gym.spaces.Box)
    total = 0.0
    info: dict[str, Any] = {}
    for t, a in enumerate(actions):
        mask = env.action_masks()
        if not mask[a]:
            report.problems.append(f"step {t}: width {env.bits[a]} is masked (over budget); allowed "
                                   f"{[env.bits[k] for k in np.flatnonzero(mask)]}")
            return report
        # a continuous environment (HAQ's Box action) is sent the action that selects this width
        _, reward, _, _, info = env.step(continuous_action_for(a, mask) if continuous else a)
        total += float(reward)
    replayed = {**info, "return": total}
    claimed_version, version = claim.get("table_digest"), replayed.get("table_digest")
    if claimed_version and version and claimed_version != version:
        # the checks below still run, but their mismatches have this cause
        report.problems.append(f"the file was written on another version of table {env_kwargs.get('table')!r} "
                               f"(table_digest {claimed_version}, now {version}): the table was regenerated since")
    if "columns" in info and "test_accuracy" in info["columns"]:
        replayed["test_accuracy"] = info["columns"]["test_accuracy"]
    feasible = replayed.get("budget_used", math.inf) <= 1.0 + 1e-9
    report.checks.append({"name": "feasible", "claimed": True, "replayed": bool(feasible), "ok": bool(feasible)})
    cross = against is not None  # on another environment, its own reward scale and reward
    for name in ("return", *CHECKED_FIELDS, "test_accuracy"):
        if name not in claim or name not in replayed or (cross and name == "return"):
            continue
        ok = _close(claim[name], replayed[name], rtol, atol)
        report.checks.append({"name": name, "claimed": claim[name], "replayed": replayed[name], "ok": ok})
    if not cross and "return" not in claim and "accuracy" not in claim:
        report.problems.append("the file claims neither a return nor an accuracy")
    env.close()
    return report


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="train.py validate", description="Replay a policy file and check its claims.")
    p.add_argument("policy_file")
    p.add_argument("--against", default=None, help="replay on this table instead of the file's environment")
    p.add_argument("--rtol", type=float, default=1e-6)
    p.add_argument("--atol", type=float, default=1e-9)
    a = p.parse_args(argv)
    try:
        report = validate(a.policy_file, a.against, a.rtol, a.atol)
    except (TypeError, ValueError) as exc:
        print(f"train.py validate: error: {exc}", file=sys.stderr)
        return 2
    print(report.format())
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
