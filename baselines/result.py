"""One result type and one options check for every solver of the four problems.

Every ``baselines.<problem>.solve(problem, method, **options)`` returns a :class:`SolveResult`: the
vocabulary of :class:`scipy.optimize.OptimizeResult` (it is one: a dict with attribute access) plus
named, problem-specific extras::

    x            the answer (a policy, generators, levels, thresholds)
    fun          the objective at ``x``, in the problem's own sense and unit (``objective`` says which)
    success      whether the method met its own stopping rule (False: allowance or iterations ran out)
    status       0 success, 1 iteration / allowance limit, 2 time limit, 3 other failure
    message      one line saying why the method stopped
    nit          iterations of the method (its own unit: Lloyd steps, AO rounds, search steps, ...)
    nfev         objective evaluations (the costly kind for that problem)
    method       the method's name in the problem's ``METHODS``
    wall_time_s  wall-clock time of the call (s)

A problem's subclass names its extras and keeps its older field names as aliases
(``CVTResult.generators`` is ``x``), so code written against the earlier result types keeps working.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np
from scipy.optimize import OptimizeResult

from quant_envs.atomic_io import json_ready
from quant_envs.checks import check_choice

__all__ = ["STATUS", "SolveResult", "Solver", "UnknownOptionError", "check_options", "registered"]

# status codes, shared by every solver (scipy's own solvers use 0 for success and small positive codes)
STATUS = {0: "success", 1: "iteration or evaluation limit reached", 2: "time limit reached", 3: "failed"}

CORE_FIELDS = ("x", "fun", "success", "status", "message", "nit", "nfev", "method", "wall_time_s")


class SolveResult(OptimizeResult):
    """A solver's answer in scipy.optimize's vocabulary, with named problem-specific extras.

    Subclasses set ``aliases`` (older field name -> core field) and ``objective`` (what ``fun``
    measures, with its unit and sense, e.g. ``"distortion (MSE), minimised"``).
    """

    aliases: ClassVar[Mapping[str, str]] = {}
    objective: ClassVar[str] = "objective"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        data = dict(*args, **kwargs)
        for old, new in self.aliases.items():
            if old in data:
                value = data.pop(old)
                if new in data and not _same(data[new], value):
                    raise TypeError(f"{type(self).__name__}: {old!r} is an alias of {new!r}; give one of them")
                data[new] = value
        data.setdefault("status", 0 if data.get("success", True) else 1)
        data.setdefault("success", data["status"] == 0)
        data.setdefault("message", STATUS.get(int(data["status"]), ""))
        super().__init__(data)

    def __getattr__(self, name: str) -> Any:
        target = type(self).aliases.get(name)
        try:
            return self[target if target is not None else name]
        except KeyError as e:
            raise AttributeError(name) from e

    def __setattr__(self, name: str, value: Any) -> None:
        self[type(self).aliases.get(name, name)] = value

    def __delattr__(self, name: str) -> None:
        del self[type(self).aliases.get(name, name)]

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self.keys()) | set(type(self).aliases))

    def __reduce__(self) -> tuple[Callable[..., SolveResult], tuple[dict[str, Any]]]:
        return (type(self), (dict(self),))  # pickles by value (Ray trials, process pools)

    def __repr__(self) -> str:
        # core fields first, in the order above, then the extras alphabetically; arrays shortened
        keys = [k for k in CORE_FIELDS if k in self] + sorted(k for k in self if k not in CORE_FIELDS)
        width = max(map(len, keys)) if keys else 0
        lines = [f"{k.rjust(width)}: {_short(self[k])}" for k in keys]
        return f"{type(self).__name__}(\n" + "\n".join(f"  {line}" for line in lines) + "\n)"

    __str__ = __repr__

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of every field (arrays as lists): JSON-ready."""
        return {k: json_ready(v) for k, v in self.items()}


class UnknownOptionError(TypeError, ValueError):
    """A solver was given an option its method does not take; the message lists the ones it does.

    A TypeError (as Python raises for an unexpected keyword argument) and a ValueError (as the
    solvers raised before this type existed), so callers catching either keep working.
    """


def check_options(method: str, options: Mapping[str, Any], allowed: Iterable[str]) -> dict[str, Any]:
    """``options`` as a dict if every key is one ``method`` takes; else :class:`UnknownOptionError`."""
    allowed = sorted(allowed)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        takes = f"takes only {', '.join(map(repr, allowed))}" if allowed else "takes no options"
        raise UnknownOptionError(f"method={method!r} {takes}; got unknown option(s) {', '.join(map(repr, unknown))}")
    return dict(options)


@dataclass(frozen=True)
class Solver:
    """One entry of a problem's ``SOLVERS`` registry: the function that runs the method and the
    options it takes. A problem subclasses it for what else its ``solve`` needs (a default cap, ...)."""

    run: Callable[..., Any]
    options: tuple[str, ...]

    def accepted(self, method: str, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` as a dict if this method takes every one; else :class:`UnknownOptionError`."""
        return check_options(method, options, self.options)


SolverT = TypeVar("SolverT", bound=Solver)


def registered(method: str, solvers: Mapping[str, SolverT]) -> SolverT:
    """The entry of ``method`` in ``solvers``; a ValueError naming the registered methods otherwise."""
    check_choice("method", method, tuple(solvers))
    return solvers[method]


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(np.array_equal(a, b))
    except Exception:  # noqa: BLE001 - incomparable objects are simply not the same
        return a is b


def _short(value: Any) -> str:
    if isinstance(value, np.ndarray):
        text = np.array2string(value, precision=6, threshold=8, edgeitems=3, separator=", ")
        return text.replace("\n", " ") if value.ndim <= 1 else f"array(shape={value.shape}, dtype={value.dtype})"
    if isinstance(value, (list, tuple)) and len(value) > 8:
        return f"{type(value).__name__} of {len(value)} items"
    if isinstance(value, float):
        return f"{value:.6g}"
    text = repr(value)
    return text if len(text) <= 100 else text[:97] + "..."
