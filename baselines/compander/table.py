"""The comparison table (SQNR per method and N), its CSV rows and the SQNR-versus-variance figure."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from baselines.compander.result import QuantizerResult
from baselines.compander.solvers import (
    a_law,
    lloyd_max,
    mu_law,
    optimal_compander,
    panter_dite_sqnr_db,
    spline_compander,
)
from quant_envs.checks import check_int
from quant_envs.compander.sources import Source, get_source
from quant_envs.rendering import new_figure, save_figure
from quant_envs.text_tables import format_table as text_table

__all__ = ["COLUMNS", "comparison_table", "csv_rows", "format_table", "plot_dynamic_range"]

# (row key, column title): the table's columns, in order; the titles are the CSV header.
COLUMNS = (
    ("N", "N"),
    ("lloyd_max_db", "Lloyd-Max [dB]"),
    ("optimal_compander_db", "optimal compander [dB]"),
    ("optimal_compander_xmax", "x_max [sigma]"),
    ("spline2_db", "spline deg 2 [dB]"),
    ("spline2_threshold", "t* [sigma]"),
    ("spline2_unoptimized_db", "deg 2, t = x_max/2 [dB]"),
    ("spline1_db", "spline deg 1 [dB]"),
    ("mu_law_db", "mu-law 255 [dB]"),
    ("a_law_db", "A-law 87.6 [dB]"),
    ("panter_dite_db", "Panter-Dite [dB]"),
)


def comparison_table(
    source: str | Source, levels: Sequence[int], *, segments: int = 2
) -> tuple[list[dict[str, float]], dict[int, dict[str, QuantizerResult]]]:
    """Rows of the comparison table (SQNR in dB per method and N) and the designs behind them."""
    src = get_source(source)
    rows: list[dict[str, float]] = []
    designs: dict[int, dict[str, QuantizerResult]] = {}
    for n in levels:
        n = check_int("levels", n, min_value=2)
        lm = lloyd_max(src, n)
        oc = optimal_compander(src, n)
        s2 = spline_compander(src, n, degree=2, segments=segments, support=oc.support)
        s1 = spline_compander(src, n, degree=1, segments=segments, support=oc.support)
        mu = mu_law(src, n)
        al = a_law(src, n)
        designs[n] = {"Lloyd-Max": lm, "optimal compander": oc, "spline deg 2": s2, "spline deg 1": s1, "mu-law": mu, "A-law": al}
        rows.append(
            {
                "N": n,
                "lloyd_max_db": lm.sqnr_db,
                "optimal_compander_db": oc.sqnr_db,
                "optimal_compander_xmax": float(oc.support),
                "spline2_db": s2.sqnr_db,
                "spline2_threshold": s2.params["segment_thresholds"][0] if segments == 2 else float("nan"),
                "spline2_unoptimized_db": s2.params["unoptimized_sqnr_db"],
                "spline1_db": s1.sqnr_db,
                "mu_law_db": mu.sqnr_db,
                "a_law_db": al.sqnr_db,
                "panter_dite_db": panter_dite_sqnr_db(src, n),
            }
        )
    return rows, designs


def format_table(rows: list[dict[str, float]]) -> str:
    """Markdown table, SQNR in dB with 3 decimals, thresholds in units of sigma."""
    return text_table([title for _, title in COLUMNS], [[int(r["N"]), *(r[key] for key, _ in COLUMNS[1:])] for r in rows],
                      align="right", formats=[None] + [".3f"] * (len(COLUMNS) - 1))


def csv_rows(rows: list[dict[str, float]]) -> list[dict[str, object]]:
    """Rows keyed by column title (the CSV header): N as an integer, every value to 6 decimals."""
    return [{COLUMNS[0][1]: int(r["N"]), **{title: f"{r[key]:.6f}" for key, title in COLUMNS[1:]}} for r in rows]


def plot_dynamic_range(
    curves: dict[str, dict[str, QuantizerResult]], variance_db: np.ndarray, path: Path, levels: int
) -> Path:
    """SQNR against input variance (dB relative to the design variance) per source and method."""
    fig = new_figure(6.0 * len(curves), 4.8, dpi=100)
    axes = fig.subplots(1, len(curves), squeeze=False)
    for ax, (name, designs) in zip(axes[0], curves.items(), strict=True):
        for label, res in designs.items():
            ax.plot(variance_db, res.sqnr_vs_variance(variance_db), label=label)
        ax.set_title(f"{name} source, N = {levels} (designed for unit variance)")
        ax.set_xlabel("input variance relative to design, 10 log10(sigma^2) [dB]")
        ax.set_ylabel("SQNR [dB]")
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0.0, 0.07, 1.0, 1.0))
    save_figure(fig, path)
    return path
