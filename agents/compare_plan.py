"""The plan of a comparison: a checked configuration in, the list of runs (method, seed, settings) out.

A comparison is planned, executed and reported in three steps:

* plan (this module): :class:`CompareConfig` (what the caller asked for, validated once) and
  :func:`plan_runs` (the runs, seed-major, as :class:`RunSpec`);
* execute (:mod:`agents.compare_backends`): a backend runs the specs and yields run records;
* report (:mod:`agents.compare_report`): tables, summaries and figures from the records.

The configuration is a small frozen dataclass so that a project-wide typed configuration (the
schema of ``config.json``) can replace or wrap it without touching execution or reporting.
Errors are ``ValueError`` / ``TypeError`` naming the argument (never a command-line flag).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from quant_envs.checks import check_mapping

#: The environment ``compare`` uses by default: the core benchmark (MNIST-1D).
DEFAULT_COMPARE_ENV = "quant_envs/MixedPrecision-v1"
#: Where the runs of a comparison execute (see :mod:`agents.compare_backends`).
BACKENDS = ("local", "ray")
#: The two kinds of run: an RL agent trained on the environment, or a non-RL solver of the problem.
RUN_KINDS = ("agent", "baseline")


def _count(name: str, value: Any, lowest: int, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}={value!r} is not allowed; expected an integer >= {lowest}"
                        + (" or None" if optional else ""))
    if value < lowest:
        raise ValueError(f"{name}={value!r} is not allowed; expected an integer >= {lowest}"
                         + (" or None" if optional else ""))
    return value


def _names(name: str, value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{name}={value!r} is not allowed; expected a list of method names or None")
    return tuple(value)


@dataclass(frozen=True)
class CompareConfig:
    """What a comparison runs, checked on construction (``ValueError`` / ``TypeError`` naming the field).

    ``agents`` / ``baselines`` / ``seeds`` / ``timesteps`` left as None take the problem's defaults
    (see :mod:`agents.compare_adapters`); the method names themselves are checked against the
    problem when the comparison is planned.
    """

    env_id: str = DEFAULT_COMPARE_ENV
    agents: tuple[str, ...] | None = None
    baselines: tuple[str, ...] | None = None
    seeds: int | None = None
    max_evaluations: int = 200
    timesteps: int | None = None
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    hyperparams: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    final_finetune_steps: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.env_id, str):
            raise TypeError(f"env_id={self.env_id!r} is not allowed; expected a registered environment id (str)")
        object.__setattr__(self, "agents", _names("agents", self.agents))
        object.__setattr__(self, "baselines", _names("baselines", self.baselines))
        _count("seeds", self.seeds, 1, optional=True)
        _count("max_evaluations", self.max_evaluations, 1)
        _count("timesteps", self.timesteps, 1, optional=True)
        _count("final_finetune_steps", self.final_finetune_steps, 0, optional=True)
        object.__setattr__(self, "env_kwargs", check_mapping("env_kwargs", self.env_kwargs))
        hyper = check_mapping("hyperparams", self.hyperparams)
        for algo, params in hyper.items():
            check_mapping(f"hyperparams[{algo!r}]", params)
        object.__setattr__(self, "hyperparams", {a: dict(p) for a, p in hyper.items()})


@dataclass(frozen=True)
class RunSpec:
    """One run of a comparison: which method, of which kind, under which seed, with which settings.

    ``problem`` names the adapter that runs it (:func:`agents.compare_adapters.adapter_named`);
    ``settings`` are the plain, JSON-ready values every run of the comparison shares (environment
    id and arguments, budgets, output folder): what a worker process or a Ray trial needs.
    """

    problem: str
    kind: str
    method: str
    seed: int
    settings: Mapping[str, Any]

    def as_trial(self) -> dict[str, Any]:
        """The keyword arguments of :func:`agents.compare_backends.execute_run` (a Ray trial's)."""
        return {"problem": self.problem, "kind": self.kind, "method": self.method, "seed": self.seed,
                "settings": dict(self.settings)}


def plan_runs(problem: str, agents: Sequence[str], baselines: Sequence[str], seeds: int,
              settings: Mapping[str, Any], done: set[tuple[str, int]] | frozenset[tuple[str, int]] = frozenset(),
              ) -> list[RunSpec]:
    """Every (method, seed) not in ``done``, seed-major (an interrupted comparison has every method
    on its first seeds), agents before baselines within a seed."""
    _count("seeds", seeds, 1)
    return [RunSpec(problem, kind, method, seed, settings)
            for seed in range(seeds) for kind, names in (("agent", agents), ("baseline", baselines))
            for method in names if (method, seed) not in done]
