"""Run a study's trials on Ray Tune: one trial per (method, seed, environment arguments).

Each trial calls ``run(**trial)`` (a top-level, importable function: Tune ships it to the workers by
reference) and reports the record it returns as JSON-ready values (a typed record such as
:class:`agents.records.ComparisonRun` by its ``to_dict()``; its ``from_dict`` reads it back). The
driver writes every finished record at once to ``OUT/trials/<key>.json`` (atomically), so an interrupted study loses only the trials in flight:
``resume=True`` skips the trials whose record exists and runs the rest. A trial that raises is
reported (``status="failed"`` and the error's last line) and does not stop the others.

Point it at an existing cluster with ``RAY_ADDRESS=ray://head:10001`` (or ``auto`` on a node of the
cluster); without it a local Ray instance is started with ``num_cpus`` CPUs.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from quant_envs.atomic_io import atomic_write_json, json_ready

#: A trial's record as the driver sees it and writes it: JSON-ready values by field name.
Record = dict[str, Any]


def trial_key(trial: dict[str, Any]) -> str:
    """A file name for ``trial``: readable method/seed and a hash of everything (env arguments included)."""
    digest = hashlib.sha256(json.dumps(trial, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"{trial.get('method', 'trial')}-s{trial.get('seed', 0)}-{digest}"


def finished_records(out: Path) -> dict[str, Record]:
    """The records already written under ``out/trials``, by trial key."""
    folder = out / "trials"
    if not folder.is_dir():
        return {}
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))}


def run_trials(run: Callable[..., Any], trials: Sequence[dict[str, Any]], out: str | os.PathLike[str], *,
               resume: bool = False, cpus_per_trial: float = 1.0, num_cpus: int | None = None,
               on_record: Callable[[Record], None] | None = None) -> list[Record]:
    """Run ``run(**trial)`` for every trial on Ray Tune; return one record per trial, in ``trials``' order.

    Records of trials that failed carry ``status="failed"`` and ``error``; finished ones ``status="ok"``.
    ``on_record`` is called on the driver as each trial ends (progress lines, a CSV written as runs finish).
    """
    import ray
    from ray import tune

    out_dir = Path(out).resolve()
    keys = [trial_key(t) for t in trials]
    if len(set(keys)) != len(keys):
        raise ValueError("trials contains duplicates; expected distinct (method, seed, arguments) trials")
    done = finished_records(out_dir) if resume else {}
    todo = [(k, t) for k, t in zip(keys, trials) if k not in done]
    failed: dict[str, Record] = {}

    class _WriteRecords(tune.Callback):  # runs on the driver: no shared file system needed
        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            record = {k: v for k, v in result.get("record", {}).items()}
            key = trial.config["key"]
            record.setdefault("status", "ok")  # a runner may report its own failure as a record
            atomic_write_json(out_dir / "trials" / f"{key}.json", record)
            done[key] = record
            if on_record is not None:
                on_record(record)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            key = trial.config["key"]
            error = str(getattr(trial, "error_file", "") or "")
            message = _last_line(Path(error)) if error else "failed"
            failed[key] = {**_plain_fields(dict(todo)[key]), "status": "failed", "error": message}
            if on_record is not None:
                on_record(failed[key])

    if todo:
        if not ray.is_initialized():
            address = os.environ.get("RAY_ADDRESS")
            ray.init(address=address or None, num_cpus=None if address else num_cpus, include_dashboard=False,
                     log_to_driver=False, runtime_env={"worker_process_setup_hook": "quant_envs.register_envs"})

        cases = dict(todo)  # shipped to the workers with the trainable; a trial's config is only its key

        def trainable(config: dict[str, Any]) -> None:
            tune.report({"record": json_ready(run(**cases[config["key"]]))})

        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": cpus_per_trial}),
            param_space={"key": tune.grid_search([k for k, _ in todo])},
            tune_config=tune.TuneConfig(reuse_actors=False),
            run_config=tune.RunConfig(name="study", storage_path=str(out_dir / "ray"), callbacks=[_WriteRecords()],
                                      failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
                                      verbose=0),
        )
        tuner.fit()
    return [done.get(k) or failed.get(k) or {**_plain_fields(t), "status": "failed", "error": "no result"}
            for k, t in zip(keys, trials)]


def _plain_fields(trial: dict[str, Any]) -> dict[str, Any]:
    """A trial's scalar fields (method, seed, ...): what a failure record can say about it."""
    return {k: v for k, v in trial.items() if isinstance(v, (str, int, float, bool))}


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    except OSError:
        return "failed (no error file)"
    return lines[-1] if lines else "failed"
