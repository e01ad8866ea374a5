"""Execution backends of a comparison: each takes the same run specs and yields the same run records.

* :class:`SerialBackend`: one run after the other, in this process;
* :class:`ProcessPoolBackend`: ``jobs`` worker processes (spawned: a parent that already ran torch
  must not fork its thread pool);
* :class:`RayBackend`: Ray Tune, one trial per run (:mod:`agents.ray_backend`), on the cluster
  ``RAY_ADDRESS`` names or a local Ray instance with ``jobs`` CPUs (needs the ``ray`` extra).

Every backend calls :func:`execute_run` (a top-level function, so workers can import it) and hands
each record to ``on_record`` as it finishes, on the calling process.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Protocol

import quant_envs  # noqa: F401  (a fresh worker registers the ids on import)
from agents.compare_adapters import adapter_named
from agents.compare_plan import BACKENDS, RunSpec
from agents.ray_backend import run_trials

#: Called with each finished run's record (a typed record; the Ray backend's are read back into one).
OnRecord = Callable[[Any], None]


def execute_run(problem: str, kind: str, method: str, seed: int, settings: Mapping[str, Any]) -> Any:
    """Run one spec with its problem's adapter; the record (a failure is a record, not a raise)."""
    return adapter_named(problem).run(kind, method, seed, settings)


def _execute(spec: RunSpec) -> Any:
    return execute_run(**spec.as_trial())


class Backend(Protocol):
    """Runs specs and reports each record as it finishes (order of completion, not of ``runs``)."""

    def execute(self, runs: Sequence[RunSpec], on_record: OnRecord) -> None: ...


class SerialBackend:
    """Every run in this process, in order."""

    def execute(self, runs: Sequence[RunSpec], on_record: OnRecord) -> None:
        for spec in runs:
            on_record(_execute(spec))


class ProcessPoolBackend:
    """``jobs`` spawned worker processes."""

    def __init__(self, jobs: int) -> None:
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise ValueError(f"jobs={jobs!r} is not allowed; expected an integer >= 1")
        self.jobs = jobs

    def execute(self, runs: Sequence[RunSpec], on_record: OnRecord) -> None:
        with ProcessPoolExecutor(self.jobs, mp_context=mp.get_context("spawn")) as pool:
            futures = [pool.submit(_execute, spec) for spec in runs]
            for future in as_completed(futures):
                on_record(future.result())


class RayBackend:
    """Ray Tune trials (:func:`agents.ray_backend.run_trials`), their files under ``out``."""

    def __init__(self, jobs: int, out: str | os.PathLike[str], record_type: Any) -> None:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ValueError("backend='ray' needs the ray extra: pip install -e \".[ray]\" (in its own virtual "
                             "environment: RLlib pins its own gymnasium)") from None
        self.jobs, self.out, self.record_type = jobs, Path(out), record_type

    def execute(self, runs: Sequence[RunSpec], on_record: OnRecord) -> None:
        def typed(record: Mapping[str, Any]) -> None:  # Ray hands back the record's JSON form
            on_record(self.record_type.from_dict(record, "a Ray trial's record"))

        run_trials(execute_run, [spec.as_trial() for spec in runs], self.out, num_cpus=self.jobs, on_record=typed)


def make_backend(name: str, jobs: int = 1, out: str | os.PathLike[str] = ".", record_type: Any = None) -> Backend:
    """The backend called ``name`` ("local": serial for one job, else a process pool; "ray")."""
    if name not in BACKENDS:
        raise ValueError(f"backend={name!r} is not allowed; expected one of: {', '.join(BACKENDS)}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs={jobs!r} is not allowed; expected an integer >= 1")
    if name == "ray":
        return RayBackend(jobs, out, record_type)
    return SerialBackend() if jobs == 1 else ProcessPoolBackend(jobs)
