"""One formatter for the text tables the project prints and saves: GitHub markdown or plain aligned
columns, with per-column alignment and number formats.

>>> print(format_table(["method", "accuracy"], [["ppo", 0.91234], ["uniform", 0.5]],
...                    align=["left", "right"], formats=[None, ".3f"]))
| method | accuracy |
|---|---:|
| ppo | 0.912 |
| uniform | 0.500 |
>>> print(format_table(["#", "layer"], [[0, "conv1"], [12, "fc"]], align="right", style="plain"))
 #  layer
 0  conv1
12     fc
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

Align = Literal["left", "right", "center"]
#: How a column's cells become text: None (``str``), a format spec such as ``".3f"`` or ``","``
#: (applied to numbers; other values, e.g. ``"-"`` for a missing one, are shown with ``str``),
#: or a callable (value -> text).
CellFormat = str | Callable[[Any], str] | None

ALIGNS = ("left", "right", "center")
STYLES = ("markdown", "plain")
# markdown's rule under each alignment ("---" is GitHub's default, left)
_RULE = {"left": "---", "right": "---:", "center": ":---:"}


def format_cell(value: Any, fmt: CellFormat = None) -> str:
    """``value`` as text under ``fmt`` (see :data:`CellFormat`)."""
    if fmt is None:
        return str(value)
    if callable(fmt):
        return fmt(value)
    is_number = isinstance(value, numbers.Number) and not isinstance(value, bool)  # numpy's bool_ is no Number
    return format(value, fmt) if is_number else str(value)


def _per_column(name: str, value: Any, n: int, single: Callable[[Any], bool]) -> list[Any]:
    """``value`` for every one of ``n`` columns: one setting for all, or a sequence of ``n``."""
    if single(value):
        return [value] * n
    values = list(value)
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} entries, not allowed; expected one per column ({n})")
    return values


def format_table(header: Sequence[str], rows: Iterable[Sequence[Any]], *,
                 align: Align | Sequence[Align] = "left", formats: CellFormat | Sequence[CellFormat] = None,
                 style: Literal["markdown", "plain"] = "markdown", sep: str = "  ") -> str:
    """The table of ``rows`` (sequences, one value per column) under ``header``, no trailing newline.

    Args:
        header: the column titles.
        rows: the rows; each value is formatted by its column's entry of ``formats``.
        align: "left", "right" or "center", for every column or one per column. Markdown shows it
            in the rule under the header (``---``, ``---:``, ``:---:``); plain text pads to it.
        formats: a :data:`CellFormat` for every column or one per column.
        style: "markdown" (GitHub table, cells unpadded) or "plain" (columns padded to their widest
            cell, separated by ``sep``, no rule).
    """
    if style not in STYLES:
        raise ValueError(f"style={style!r} is not allowed; expected one of: {', '.join(map(repr, STYLES))}")
    header = [str(h) for h in header]
    n = len(header)
    aligns = _per_column("align", align, n, lambda v: isinstance(v, str))
    for a in aligns:
        if a not in ALIGNS:
            raise ValueError(f"align={a!r} is not allowed; expected one of: {', '.join(map(repr, ALIGNS))}")
    fmts = _per_column("formats", formats, n, lambda v: v is None or isinstance(v, str) or callable(v))
    body = []
    for i, row in enumerate(rows):
        row = list(row)
        if len(row) != n:
            raise ValueError(f"rows[{i}] has {len(row)} cells, not allowed; expected {n} (one per header column)")
        body.append([format_cell(v, f) for v, f in zip(row, fmts, strict=True)])
    if style == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(_RULE[a] for a in aligns) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines)
    widths = [max(len(c) for c in col) for col in zip(header, *body, strict=True)]
    pad = {"left": str.ljust, "right": str.rjust, "center": str.center}
    return "\n".join(sep.join(pad[a](c, w) for c, a, w in zip(cells, aligns, widths, strict=True))
                     for cells in [header, *body])


def _short_float(value: Any) -> str:
    """Floats to 4 decimals (1 from 10 on); anything else with ``str``."""
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]],
                   floatfmt: Callable[[Any], str] | None = None) -> str:
    """A GitHub markdown table of dict rows, ending in a newline: ``columns`` are (key, header)
    pairs; the first column is left-aligned, the others right-aligned; ``floatfmt`` formats each
    cell (default: floats to 4 decimals, 1 from 10 on); a missing key is an empty cell."""
    return format_table([h for _, h in columns], [[r.get(k, "") for k, _ in columns] for r in rows],
                        align=["left" if i == 0 else "right" for i in range(len(columns))],
                        formats=floatfmt or _short_float) + "\n"
