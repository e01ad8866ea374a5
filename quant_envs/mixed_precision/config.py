"""The mixed-precision problem's configuration: one frozen, validated value per problem.

:class:`ProblemConfig` holds every argument of
:class:`~quant_envs.mixed_precision.problem.MixedPrecisionProblem` (task, accelerator, widths,
budget, retraining, evaluation split and seed, cache). It is checked once, when it is made: a bad
value raises ``ValueError``/``TypeError`` naming the argument before a float model is trained.

Each registered version of the environments has one set of defaults, as a config:
:data:`DEFAULTS_V1` (``MixedPrecision-v1``, ``MixedPrecisionContinuous-v1``) and :data:`DEFAULTS_V0`
(the v0 ids and ``MixedPrecisionMultiHardware-v0``). Environments keep taking plain keyword
arguments (``gym.make(id, **kw)``, RLlib's ``register_env(name, lambda cfg: Env(**cfg))``) and
build a config from them.

This module imports neither torch nor the task code: a task may be given by name (built later,
by the problem) or as a built ``Task``.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

import hw_sim
from hw_sim.metrics import METRICS
from quant_envs.checks import check_bool, check_choice, check_float, check_int, check_mapping

__all__ = ["DEFAULTS", "DEFAULTS_V0", "DEFAULTS_V1", "EVAL_SPLITS", "MAX_BITS", "MIN_BITS", "ProblemConfig",
           "check_bits", "check_hardware", "defaults_for"]

#: The widths a policy may use (the documented 2..8: the fake quantizer needs a sign bit and one more).
MIN_BITS, MAX_BITS = 2, 8

#: The data splits an accuracy can be measured on.
EVAL_SPLITS = ("train", "val", "test")


def check_bits(bits: Iterable[int]) -> tuple[int, ...]:
    """The widths as a sorted tuple; each an integer in 2..8 (the fake quantizer's range)."""
    if isinstance(bits, (str, bytes)) or not isinstance(bits, Iterable):
        raise TypeError(f"bits={bits!r} must be a list of integers in {MIN_BITS}..{MAX_BITS}, "
                        f"got {type(bits).__name__}")
    values = []
    for b in bits:
        try:
            values.append(check_int("bits", b, min_value=MIN_BITS, max_value=MAX_BITS))
        except TypeError:
            raise TypeError(f"bits={bits!r} must be a list of integers in {MIN_BITS}..{MAX_BITS}; "
                            f"{b!r} is a {type(b).__name__}") from None
        except ValueError:
            raise ValueError(f"bits={bits!r} is not allowed: {b} is outside {MIN_BITS}..{MAX_BITS}") from None
    if not values:
        raise ValueError(f"bits={bits!r} is not allowed; expected at least one width in {MIN_BITS}..{MAX_BITS}")
    return tuple(sorted(set(values)))


def check_hardware(hardware: Any) -> Any:
    """An ``hw_sim.Accelerator`` from a profile name, a measured table's name or an instance."""
    if isinstance(hardware, hw_sim.Accelerator):
        return hardware
    names = sorted(hw_sim.PROFILES) + sorted(hw_sim.MEASURED)
    if not isinstance(hardware, str):
        raise TypeError(
            f"hardware={hardware!r} must be a profile name or an hw_sim.Accelerator, got "
            f"{type(hardware).__name__}"
        )
    if hardware not in names:
        raise ValueError(f"hardware={hardware!r} is not allowed; expected an hw_sim.Accelerator or one of: {', '.join(names)}")
    return hw_sim.get_accelerator(hardware)


def _check_device_name(device: Any) -> None:
    """``device`` names a CPU or CUDA device ("cpu", "cuda", "cuda:N" or a ``torch.device``).

    Only its form is checked here, without torch; whether this machine has it is checked by
    ``evaluator.check_device`` when the problem is built (torch is loaded then), before any training.
    """
    if isinstance(device, str):
        if re.fullmatch(r"cpu|cuda(:\d+)?", device) is None:
            raise ValueError(f"device={device!r} is not allowed; expected 'cpu', 'cuda' or 'cuda:N'")
    elif type(device).__name__ != "device":  # a torch.device, without importing torch to ask
        raise TypeError(f"device={device!r} must be a string such as 'cpu' or 'cuda:0', or a torch.device; "
                        f"got {type(device).__name__}")


def _check_task(task: Any) -> Any:
    """A task name (built by the problem) or a built ``Task`` (any non-string must be one)."""
    if isinstance(task, str):
        return task
    # A non-string can only be a built Task, so torch is loaded already when this runs.
    # lazy: the task code brings torch, and quant_envs imports this module without it
    from quant_envs.mixed_precision.tasks import Task

    if not isinstance(task, Task):
        raise TypeError(f"task={task!r} must be a string (a task name) or a built Task, got {type(task).__name__}")
    return task


@dataclasses.dataclass(frozen=True)
class ProblemConfig:
    """Every argument of a mixed-precision problem, validated once (see
    :class:`~quant_envs.mixed_precision.problem.MixedPrecisionProblem` for their meaning).

    The defaults are those of the v1 environments (:data:`DEFAULTS_V1`). ``bits`` is kept as a
    sorted tuple, ``task_kwargs`` as a dict (``None`` -> ``{}``); ``hardware`` as given (a name or
    an ``hw_sim.Accelerator``), after checking that it names one.
    """

    task: Any = "mnist1d-cnn"
    hardware: Any = "bismo-edge"
    bits: Iterable[int] = tuple(range(MIN_BITS, MAX_BITS + 1))  # kept as a sorted tuple
    budget_metric: str = "latency"
    budget_fraction: float | None = None
    budget: float | None = None
    finetune_steps: int | None = None
    keep_first_last_8bit: bool = False
    eval_split: str = "val"
    eval_seed: int = 0
    cache_size: int = 4096
    batch: int | None = None
    task_kwargs: Mapping[str, Any] | None = dataclasses.field(default_factory=dict)  # kept as a dict
    cache_dir: str | os.PathLike[str] | None = None
    device: Any = "cpu"

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        # in the order MixedPrecisionProblem always checked them (the first bad one is reported)
        put("bits", check_bits(self.bits))
        check_choice("budget_metric", self.budget_metric, METRICS)
        if self.finetune_steps is not None:
            put("finetune_steps", check_int("finetune_steps", self.finetune_steps, min_value=0))
        check_choice("eval_split", self.eval_split, EVAL_SPLITS)
        put("eval_seed", check_int("eval_seed", self.eval_seed, min_value=0))
        put("cache_size", check_int("cache_size", self.cache_size, min_value=0))
        put("keep_first_last_8bit", check_bool("keep_first_last_8bit", self.keep_first_last_8bit))
        if self.keep_first_last_8bit and 8 not in self.bits:
            raise ValueError(f"keep_first_last_8bit=True needs 8 among bits, got bits={list(self.bits)}")
        check_hardware(self.hardware)
        _check_device_name(self.device)
        # budget wins over budget_fraction (which is then unused), as the problem documents
        if self.budget is not None:
            put("budget", check_float("budget", self.budget, min_value=0.0, min_inclusive=False))
        elif self.budget_fraction is not None:  # None: the default search, once the costs are known
            put("budget_fraction", check_float("budget_fraction", self.budget_fraction, min_value=0.0,
                                               min_inclusive=False))
        if self.batch is not None:  # None: the accelerator's own
            put("batch", check_int("batch", self.batch, min_value=1))
        put("task_kwargs", check_mapping("task_kwargs", self.task_kwargs))
        if self.cache_dir is not None and not isinstance(self.cache_dir, (str, os.PathLike)):
            raise TypeError(f"cache_dir={self.cache_dir!r} must be a path (str or os.PathLike) or None, "
                            f"got {type(self.cache_dir).__name__}")
        put("task", _check_task(self.task))

    # ------------------------------------------------------------------------------ making
    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_kwargs(cls, defaults: ProblemConfig | None = None, /, **kwargs: Any) -> ProblemConfig:
        """``defaults`` (default :data:`DEFAULTS_V1`) with ``kwargs`` replaced; an unknown name is a
        TypeError listing the allowed ones."""
        unknown = sorted(set(kwargs) - set(cls.field_names()))
        if unknown:
            raise TypeError(f"unknown problem argument(s) {unknown}; expected some of: {', '.join(cls.field_names())}")
        return dataclasses.replace(DEFAULTS_V1 if defaults is None else defaults, **kwargs)

    def replace(self, **changes: Any) -> ProblemConfig:
        """A copy with ``changes`` (validated again)."""
        return ProblemConfig.from_kwargs(self, **changes)

    def as_kwargs(self) -> dict[str, Any]:
        """The fields as keyword arguments of ``MixedPrecisionProblem`` (``task_kwargs`` copied)."""
        out = {name: getattr(self, name) for name in self.field_names()}
        out["task_kwargs"] = dict(self.task_kwargs or {})
        return out

    def changes_from(self, other: ProblemConfig) -> dict[str, Any]:
        """The fields whose value differs from ``other``'s (e.g. a version's registered kwargs)."""
        mine, theirs = self.as_kwargs(), other.as_kwargs()
        return {k: v for k, v in mine.items() if v != theirs[k]}


#: Defaults of ``MixedPrecision-v1`` and ``MixedPrecisionContinuous-v1``: MNIST-1D, the default
#: budget search (>= 1000 feasible policies), the task's retraining recipe.
DEFAULTS_V1 = ProblemConfig()

#: Defaults of ``MixedPrecision-v0``, ``MixedPrecisionContinuous-v0`` and the live
#: ``MixedPrecisionMultiHardware-v0``: 8x8 digits on a MobileNet, budget 0.25 of all-8-bit,
#: 20 retraining mini-batches.
DEFAULTS_V0 = DEFAULTS_V1.replace(task="digits-mbnet", budget_fraction=0.25, finetune_steps=20)

#: The defaults of each version of the live mixed-precision environments.
DEFAULTS: dict[str, ProblemConfig] = {"v0": DEFAULTS_V0, "v1": DEFAULTS_V1}


def defaults_for(env_id: str) -> ProblemConfig:
    """The problem defaults of a registered live mixed-precision id (``...-v0`` or ``...-v1``)."""
    version = env_id.rsplit("-", 1)[-1]
    if version not in DEFAULTS:
        raise ValueError(f"env_id={env_id!r} is not allowed; expected an id ending in one of: "
                         f"{', '.join('-' + v for v in DEFAULTS)}")
    return DEFAULTS[version]
