"""Typed run records of a comparison: one :class:`ComparisonRun` per (method, seed), one row of runs.csv.

:meth:`ComparisonRun.from_row` is the one place runs.csv text becomes typed values and
:meth:`ComparisonRun.to_row` the one place typed values become that text, so a file written, read
back and written again is byte-identical. A missing number is NaN (a missing count, finetuning step
count, accuracy list or policy is None) and an empty cell in the file.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: A mixed-precision policy: per layer, its bit widths (weight bits, activation bits).
Policy = tuple[tuple[int, ...], ...]


class RecordError(ValueError):
    """A run record that cannot be read; the message names where (file and line) and the column."""


class _RunRow:
    """What both records do with their fields (a dataclass's fields are its runs.csv columns, in order)."""

    status: str  # each record's field ("ok" or "failed")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def _columns(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self))  # type: ignore[arg-type]  # only dataclasses inherit it

    def to_row(self) -> dict[str, str]:
        """The runs.csv row: every column, in order, as text (missing: empty)."""
        return {name: _text(getattr(self, name)) for name in self._columns()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (the form of a Ray trial's record file): numbers as numbers, lists and
        the policy as their runs.csv text, missing values empty (JSON has no NaN)."""
        row = self.to_row()
        return {name: row[name] if row[name] == "" or isinstance(getattr(self, name), (str, tuple))
                else getattr(self, name) for name in self._columns()}

    def __getitem__(self, name: str) -> Any:
        """Read-only ``record["seed"]`` for code written against the dict rows of earlier versions."""
        if name not in self._columns():
            raise KeyError(name)
        return getattr(self, name)


@dataclass(frozen=True)
class ComparisonRun(_RunRow):
    """One (method, seed) of a comparison: searched, then finally evaluated; a failed run has its error.

    The fields are the columns of runs.csv, in order (:data:`RUN_FIELDS`).
    """

    method: str
    kind: str  # "agent" or "baseline"
    seed: int
    status: str = "ok"  # "ok" or "failed"
    val_accuracy: float = math.nan  # the searched policy's validation accuracy (the search's reward)
    test_accuracy: float = math.nan
    final_test_accuracy: float = math.nan  # mean of final_test_accuracies
    final_test_accuracies: tuple[float, ...] | None = None  # one per retraining seed, rounded to 6 digits
    final_finetune_steps: int | None = None
    budget_used: float = math.nan
    reward_evaluations: int | None = None
    wall_time_s: float = math.nan
    policy: Policy | None = None
    error: str = ""

    # ---------------------------------------------------------------------------- CSV and JSON
    @classmethod
    def from_row(cls, row: Mapping[Any, Any], where: str = "runs.csv") -> ComparisonRun:
        """The record of one runs.csv row (``csv.DictReader``'s dict of text); ``where`` (file and line)
        names the row in a :class:`RecordError`. Empty or absent cells are missing values (files from
        before a column existed still load); ``method``, ``kind`` and ``seed`` are required.

        Typed values (a record's :meth:`to_dict`, a Ray trial's JSON record, numpy numbers) are
        checked and converted to the fields' plain types the same way.
        """
        return cls(**_read_row(row, where, _PARSERS))

    #: Mappings of typed values (a Ray trial's record, an older caller's dict) read the same way.
    from_dict = from_row


@dataclass(frozen=True)
class ObjectiveRun(_RunRow):
    """One (method, seed) of a comparison on a problem scored by one objective in its own unit
    (SQNR in dB, training time in s, energy ratio E/E*): a row of such a comparison's runs.csv.

    An agent's ``objective`` is that of its best episode (training episodes and one final
    deterministic episode); a solver's is its answer's. The fields are the columns
    (:data:`OBJECTIVE_RUN_FIELDS`), in order.
    """

    method: str
    kind: str  # "agent" or "baseline"
    seed: int
    status: str = "ok"  # "ok" or "failed"
    objective: float = math.nan  # in ``unit``
    unit: str = ""
    evaluations: int | None = None  # objective evaluations: an agent's episodes, a solver's nfev
    timesteps: int | None = None  # an agent's environment steps (None for a solver)
    wall_time_s: float = math.nan
    solution: tuple[float, ...] | None = None  # the best answer's numbers, flattened (where known)
    error: str = ""

    @classmethod
    def from_row(cls, row: Mapping[Any, Any], where: str = "runs.csv") -> ObjectiveRun:
        """The record of one runs.csv row (text) or of a mapping of typed values (as ComparisonRun's)."""
        return cls(**_read_row(row, where, _OBJECTIVE_PARSERS))

    from_dict = from_row


#: Either record of a comparison: mixed precision's (accuracies, policies) or an objective's.
RunRecord = ComparisonRun | ObjectiveRun


def as_run(run: ComparisonRun | Mapping[str, Any]) -> ComparisonRun:
    """``run`` as a record (a mapping of typed values or runs.csv text is read with ``from_row``)."""
    return run if isinstance(run, ComparisonRun) else ComparisonRun.from_row(run, "a run record")


def check_number_field(name: str, argument: str) -> None:
    """Raise ValueError naming ``argument`` unless ``name`` is a number field of the records (a score)."""
    if name not in NUMBER_FIELDS:
        raise ValueError(f"{argument}={name!r} is not allowed; expected one of: {', '.join(NUMBER_FIELDS)}")


# ------------------------------------------------------------------------------ parsing and text
def _read_row(row: Mapping[Any, Any], where: str, parsers: Mapping[str, Any]) -> dict[str, Any]:
    """Typed values of ``row`` by ``parsers`` (absent or empty: left out); ``method``, ``kind`` and
    ``seed`` are required. A bad cell is a :class:`RecordError` naming ``where`` and the column."""
    values: dict[str, Any] = {}
    for name, parse in parsers.items():
        raw = row.get(name)
        if raw is None or raw == "":
            if name in _REQUIRED:
                raise RecordError(f"{where}: column {name!r} is missing; expected {_EXPECTED_BY_PARSER[parse]}")
            continue
        try:
            values[name] = parse(raw)
        except (TypeError, ValueError) as exc:
            raise RecordError(f"{where}, column {name!r}: {raw!r} is not {_EXPECTED_BY_PARSER[parse]} ({exc})") from None
    return values


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("a bool is not a count")
    if isinstance(value, str):
        number = float(value)  # "5.0" too: older files held counts as floats
        if not number.is_integer():
            raise ValueError("not a whole number")
        return int(number)
    if isinstance(value, numbers.Integral):
        return int(value)
    raise TypeError(f"a {type(value).__name__} is not an integer")


def _real(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError("a bool is not a number")
    return float(value)


def _text_field(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"a {type(value).__name__} is not text")
    return value


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _numbers(value: Any) -> tuple[float, ...]:
    items = _json(value)
    if not isinstance(items, (list, tuple)):
        raise TypeError("expected a list")
    return tuple(_real(a) for a in items)


def _accuracies(value: Any) -> tuple[float, ...]:
    return _numbers(value)  # its own parser: a bad cell's message says "a JSON list of accuracies"


def _policy(value: Any) -> Policy:
    layers = _json(value)
    if not isinstance(layers, (list, tuple)) or not all(isinstance(layer, (list, tuple)) for layer in layers):
        raise TypeError("expected a list of per-layer bit lists")
    return tuple(tuple(_bits(b) for b in layer) for layer in layers)


def _bits(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"bit width {value!r} is not an integer")
    return int(value)


def _text(value: Any) -> str:
    """A value as runs.csv has always held it (the csv module's float repr, JSON lists)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    if isinstance(value, tuple):
        return json.dumps(value)
    return str(value)


#: How each column's text (or typed value) is read, in the order of the record's fields.
_PARSERS = {"method": _text_field, "kind": _text_field, "seed": _integer, "status": _text_field,
            "val_accuracy": _real, "test_accuracy": _real, "final_test_accuracy": _real,
            "final_test_accuracies": _accuracies, "final_finetune_steps": _integer, "budget_used": _real,
            "reward_evaluations": _integer, "wall_time_s": _real, "policy": _policy, "error": _text_field}
_EXPECTED_BY_PARSER = {_text_field: "text", _integer: "an integer", _real: "a number",
                       _accuracies: "a JSON list of accuracies", _policy: "a JSON policy [[w_bits, a_bits], ...]",
                       _numbers: "a JSON list of numbers"}
_REQUIRED = ("method", "kind", "seed")

#: The columns of runs.csv, in order (saved files keep it): the record's fields.
RUN_FIELDS = tuple(f.name for f in dataclasses.fields(ComparisonRun))
#: The fields that hold a float (NaN when missing): what summaries and figures can score runs by.
NUMBER_FIELDS = tuple(name for name, parse in _PARSERS.items() if parse is _real)
if tuple(_PARSERS) != RUN_FIELDS:  # a field added to the record needs its parser here
    raise ImportError(f"agents.records: parsers {tuple(_PARSERS)} do not match the fields {RUN_FIELDS}")

_OBJECTIVE_PARSERS = {"method": _text_field, "kind": _text_field, "seed": _integer, "status": _text_field,
                      "objective": _real, "unit": _text_field, "evaluations": _integer, "timesteps": _integer,
                      "wall_time_s": _real, "solution": _numbers, "error": _text_field}
#: The columns of an objective comparison's runs.csv, in order: :class:`ObjectiveRun`'s fields.
OBJECTIVE_RUN_FIELDS = tuple(f.name for f in dataclasses.fields(ObjectiveRun))
if tuple(_OBJECTIVE_PARSERS) != OBJECTIVE_RUN_FIELDS:
    raise ImportError(f"agents.records: parsers {tuple(_OBJECTIVE_PARSERS)} do not match {OBJECTIVE_RUN_FIELDS}")
