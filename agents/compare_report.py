"""The report of a comparison, from its run records alone: summary statistics, a table and a figure.

Statistics (:mod:`agents.reporting`): per method the interquartile mean (IQM) over seeds with the
95% percentile bootstrap CI of the IQM, the mean, and the probability of improvement over the best
baseline (and, for mixed precision, over uniform). "Improvement" follows the objective's
direction: a higher accuracy or SQNR, a lower training time or energy ratio.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.records import ComparisonRun, ObjectiveRun, as_run, check_number_field
from agents.reporting import compare_figure, iqm, iqm_ci, probability_of_improvement
from quant_envs.atomic_io import atomic_write_csv, atomic_write_text
from quant_envs.text_tables import markdown_table

#: Columns of a mixed-precision comparison's summary.csv.
SUMMARY_FIELDS = ("method", "kind", "runs", "failed", "iqm", "ci_low", "ci_high", "mean", "val_mean", "p_over_uniform",
                  "best_baseline", "p_over_best_baseline", "evaluations", "wall_time_s")
#: Columns of an objective comparison's summary.csv.
OBJECTIVE_SUMMARY_FIELDS = ("method", "kind", "runs", "failed", "unit", "iqm", "ci_low", "ci_high", "mean", "best",
                            "best_baseline", "p_over_best_baseline", "versus_best_baseline", "evaluations",
                            "wall_time_s")


def summarize(runs: Sequence[ComparisonRun | Mapping[str, Any]], methods: list[str], baselines: list[str],
              value: str = "final_test_accuracy") -> list[dict[str, Any]]:
    """Per method: IQM with the 95% bootstrap CI of the IQM, mean, probabilities of improvement
    over uniform and over the best baseline (by IQM, other than the method itself), evaluations.

    ``value`` names the score (a number column of runs.csv); ``runs`` may also be dicts of run values.
    """
    check_number_field(value, "value")
    records = [as_run(r) for r in runs]
    ok = {m: [r for r in records if r.method == m and r.ok] for m in methods}
    scores: dict[str, list[float]] = {m: [getattr(r, value) for r in ok[m]] for m in methods}
    ranked = sorted((b for b in baselines if scores.get(b)), key=lambda b: iqm(scores[b]), reverse=True)
    rows = []
    for m in methods:
        x = scores[m]
        failed = sum(r.method == m and not r.ok for r in records)
        row: dict[str, Any] = {"method": m, "kind": next((r.kind for r in records if r.method == m), ""),
                               "runs": len(x), "failed": failed}
        if x:
            lo, hi = iqm_ci(x)
            best = next((b for b in ranked if b != m), None)
            row.update({
                "iqm": iqm(x), "ci_low": lo, "ci_high": hi, "mean": float(np.mean(x)),
                "val_mean": float(np.mean([r.val_accuracy for r in ok[m]])),
                "p_over_uniform": probability_of_improvement(x, scores["uniform"])
                if m != "uniform" and scores.get("uniform") else float("nan"),
                "best_baseline": best or "",
                "p_over_best_baseline": probability_of_improvement(x, scores[best]) if best else float("nan"),
                "evaluations": float(np.mean([r.reward_evaluations or 0 for r in ok[m]])),
                "wall_time_s": float(np.mean([r.wall_time_s for r in ok[m]])),
            })
        rows.append(row)
    return rows


def _versus(x: float, reference: float, unit: str) -> str:
    """``x`` against ``reference`` as the problem states it: a difference in dB, else a ratio."""
    if unit == "dB":
        return f"{x - reference:+.4f} dB"
    return f"x{x / reference:.4f}" if reference not in (0.0, math.inf) and math.isfinite(x) else "-"


def summarize_objective(runs: Sequence[ObjectiveRun | Mapping[str, Any]], methods: Sequence[str],
                        baselines: Sequence[str], higher_is_better: bool) -> list[dict[str, Any]]:
    """Per method of an objective comparison: IQM, its 95% bootstrap CI, mean and best over seeds,
    the best baseline (by IQM, other than the method itself), the probability of improving on it
    (in the objective's direction) and the IQM against it (a dB difference or a ratio)."""
    records = [r if isinstance(r, ObjectiveRun) else ObjectiveRun.from_dict(r, "a run record") for r in runs]
    sign = 1.0 if higher_is_better else -1.0
    ok = {m: [r for r in records if r.method == m and r.ok] for m in methods}
    scores = {m: [r.objective for r in ok[m]] for m in methods}
    ranked = sorted((b for b in baselines if scores.get(b)), key=lambda b: sign * iqm(scores[b]), reverse=True)
    rows = []
    for m in methods:
        x = scores[m]
        row: dict[str, Any] = {"method": m, "kind": next((r.kind for r in records if r.method == m), ""),
                               "runs": len(x), "failed": sum(r.method == m and not r.ok for r in records),
                               "unit": next((r.unit for r in records if r.method == m and r.unit), "")}
        if x:
            lo, hi = iqm_ci(x)
            best = next((b for b in ranked if b != m), None)
            centre = iqm(x)
            row.update({
                "iqm": centre, "ci_low": lo, "ci_high": hi, "mean": float(np.mean(x)),
                "best": float(max(x) if higher_is_better else min(x)), "best_baseline": best or "",
                "p_over_best_baseline": probability_of_improvement([sign * v for v in x],
                                                                   [sign * v for v in scores[best]])
                if best else float("nan"),
                "versus_best_baseline": _versus(centre, iqm(scores[best]), row["unit"]) if best else "",
                "evaluations": float(np.mean(counts)) if (counts := [r.evaluations for r in ok[m]
                                                                     if r.evaluations is not None]) else math.nan,
                "wall_time_s": float(np.mean([r.wall_time_s for r in ok[m]])),
            })
        rows.append(row)
    return rows


def mixed_precision_table(rows: list[dict[str, Any]]) -> str:
    """The markdown table of a mixed-precision comparison's summary rows."""
    columns = [("method", "method"), ("kind", "kind"), ("runs", "runs ok"), ("failed", "failed"),
               ("val_mean", "searched val. acc. mean"), ("iqm", "final test acc. IQM"),
               ("ci", "95% CI of IQM"), ("mean", "final test acc. mean"),
               ("p_over_uniform", "P(> uniform)"), ("p_best", "P(> best baseline)"),
               ("evaluations", "reward evaluations"), ("wall_time_s", "wall time [s]")]

    def cell(r: dict[str, Any]) -> dict[str, Any]:
        if not r["runs"]:
            return {**r, "val_mean": "-", "iqm": "-", "ci": "-", "mean": "-", "p_over_uniform": "-", "p_best": "-",
                    "evaluations": "-", "wall_time_s": "-"}
        pu = r["p_over_uniform"]
        return {**r, "ci": f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}]",
                "p_over_uniform": "-" if pu != pu else f"{pu:.2f}",
                "p_best": "-" if not r["best_baseline"] else f"{r['p_over_best_baseline']:.2f} ({r['best_baseline']})",
                "evaluations": f"{r['evaluations']:.1f}", "wall_time_s": f"{r['wall_time_s']:.1f}"}

    return markdown_table([cell(r) for r in rows], columns)


def mixed_precision_header(instance: str, seeds: int, max_evaluations: int, final_steps: int,
                           final_seeds: Sequence[int]) -> str:
    return (f"{instance}; {seeds} seeds, <= {max_evaluations} reward evaluations each. "
            "Accuracies are fractions. Each run searches with the validation accuracy as its reward; its best "
            f"policy is then retrained for {final_steps} steps under retraining seeds {list(final_seeds)} and scored "
            "on the test split (final test acc. = the mean of the three). IQM: interquartile mean over seeds; "
            "CI: 95% percentile bootstrap of the IQM; P(> X): probability that a run of the method beats a run "
            "of X (ties count one half).\n\n")


def _number(value: float) -> str:
    return f"{value:.6g}"


def objective_table(rows: list[dict[str, Any]], label: str, unit: str) -> str:
    """The markdown table of an objective comparison's summary rows (numbers to 6 significant digits)."""
    columns = [("method", "method"), ("kind", "kind"), ("runs", "runs ok"), ("failed", "failed"),
               ("iqm", f"{label} IQM [{unit}]"), ("ci", "95% CI of IQM"), ("mean", f"{label} mean [{unit}]"),
               ("best", f"best run [{unit}]"), ("p_best", "P(better than best baseline)"),
               ("versus", "IQM vs best baseline"), ("evaluations", "evaluations"), ("wall_time_s", "wall time [s]")]

    def cell(r: dict[str, Any]) -> dict[str, Any]:
        if not r["runs"]:
            return {**r, **dict.fromkeys(("iqm", "ci", "mean", "best", "p_best", "versus", "evaluations",
                                          "wall_time_s"), "-")}
        return {**r, "iqm": _number(r["iqm"]), "ci": f"[{_number(r['ci_low'])}, {_number(r['ci_high'])}]",
                "mean": _number(r["mean"]), "best": _number(r["best"]),
                "p_best": "-" if not r["best_baseline"] else f"{r['p_over_best_baseline']:.2f} ({r['best_baseline']})",
                "versus": r["versus_best_baseline"] or "-",
                "evaluations": "-" if math.isnan(r["evaluations"]) else f"{r['evaluations']:.1f}",
                "wall_time_s": f"{r['wall_time_s']:.1f}"}

    return markdown_table([cell(r) for r in rows], columns)


def objective_header(instance: str, seeds: int, max_evaluations: int, timesteps: int, label: str, unit: str,
                     higher_is_better: bool) -> str:
    return (f"{instance}. {seeds} seeds; agents: <= {max_evaluations} episodes or {timesteps} steps each, scored "
            f"by their best episode; solvers: one solve each. {label} in {unit}, "
            f"{'higher' if higher_is_better else 'lower'} is better. IQM: interquartile mean over seeds; CI: 95% "
            "percentile bootstrap of the IQM; P(better than X): probability that a run of the method beats a run "
            "of X (ties count one half); IQM vs best baseline: the difference in dB, else the ratio.\n\n")


def write_report(out: Path, adapter: Any, runs: Sequence[Any], methods: list[str], baselines: list[str],
                 settings: Mapping[str, Any], seeds: int) -> dict[str, Any]:
    """summary.csv, results.md and compare.png of ``runs`` in ``out``; return the rows, table and header."""
    if adapter.record_type is ComparisonRun:
        rows = summarize(runs, methods, baselines)
        fields: Sequence[str] = SUMMARY_FIELDS
        table = mixed_precision_table(rows)
        header = mixed_precision_header(adapter.describe(settings), seeds, settings["max_evaluations"],
                                        settings["final_steps"], settings.get("final_seeds", (0, 1, 2)))
        compare_figure([r for r in runs if r.ok], methods, out / "compare.png", value="final_test_accuracy")
    else:
        rows = summarize_objective(runs, methods, baselines, adapter.higher_is_better)
        fields = OBJECTIVE_SUMMARY_FIELDS
        table = objective_table(rows, adapter.objective_label, adapter.unit)
        header = objective_header(adapter.describe(settings), seeds, settings["max_evaluations"],
                                  settings["timesteps"], adapter.objective_label, adapter.unit,
                                  adapter.higher_is_better)
        compare_figure([r for r in runs if r.ok], methods, out / "compare.png", value="objective",
                       label=f"{adapter.objective_label} [{adapter.unit}]", fraction=False)
    atomic_write_csv(out / "summary.csv", rows, list(fields))
    atomic_write_text(out / "results.md", header + table)
    return {"summary": rows, "table": table, "header": header}
