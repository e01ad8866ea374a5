"""What the evaluation tests compare: an ``Evaluation`` record without its wall-clock field."""

from __future__ import annotations

from typing import Any


def record_fields(record: Any) -> dict[str, Any]:
    """``record.as_dict()`` without ``eval_time_s`` (wall-clock, differs between equal evaluations)."""
    return {k: v for k, v in record.as_dict().items() if k != "eval_time_s"}
