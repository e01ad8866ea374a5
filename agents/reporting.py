"""Statistics and figures for runs and comparisons (run records in, files out; atomic writes).

Aggregates follow Agarwal et al., "Deep RL at the Edge of the Statistical Precipice" (NeurIPS
2021; the rliable library): the interquartile mean (IQM, the mean of the middle 50% of runs) with a
95% stratified percentile bootstrap confidence interval of the IQM itself (``scipy.stats.bootstrap``,
seeded; with one task, stratifying by task is resampling the seeds), and the probability of
improvement P(X > Y) (ties count one half), the Mann-Whitney U statistic over n x m pairs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from agents.records import ComparisonRun, ObjectiveRun, as_run, check_number_field
from quant_envs.mixed_precision.problem import metric_info
from quant_envs.rendering import new_figure, save_figure


def iqm(values: Sequence[float] | np.ndarray) -> float:
    """Interquartile mean: the mean after trimming 25% of runs from each end."""
    return float(stats.trim_mean(np.asarray(values, dtype=float), 0.25))


def bootstrap_ci(values: Sequence[float], confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean (a single run or identical runs give a zero-width CI)."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2 or np.all(x == x[0]):
        return float(x.mean()), float(x.mean())
    res = stats.bootstrap((x,), np.mean, confidence_level=confidence, method="percentile",
                          n_resamples=10_000, random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def iqm_ci(values: Sequence[float], confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the IQM (a single run or identical runs give a zero-width CI)."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2 or np.all(x == x[0]):
        return iqm(x), iqm(x)

    def statistic(sample: np.ndarray, axis: int = -1) -> np.ndarray:
        return stats.trim_mean(sample, 0.25, axis=axis)

    res = stats.bootstrap((x,), statistic, confidence_level=confidence, method="percentile",
                          n_resamples=10_000, random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def probability_of_improvement(x: Sequence[float], y: Sequence[float]) -> float:
    """P(X > Y) + P(X = Y) / 2 over all pairs of runs (rliable's probability of improvement)."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    return float(stats.mannwhitneyu(a, b).statistic / (len(a) * len(b)))


def run_figure(records: list[dict[str, Any]], best: dict[str, Any] | None, budget_line: float | None,
               layer_names: Sequence[str] | None, path: Path, budget_metric: str = "latency") -> None:
    """A run's summary: bits per layer of the best policy, and accuracy against cost of every policy
    evaluated (with the budget line); for environments without policies, the return per episode."""
    fig = new_figure(11, 4, dpi=100)
    with_policy = [r for r in records if "policy" in r and "accuracy" in r]
    if with_policy:
        ax1, ax2 = fig.subplots(1, 2)
        if best is not None and "policy" in best:
            pol = np.asarray(best["policy"])
            x = np.arange(len(pol))
            ax1.bar(x - 0.2, pol[:, 0], 0.4, label="weight bits")
            ax1.bar(x + 0.2, pol[:, 1], 0.4, label="activation bits")
            ax1.set_xticks(x, layer_names or [str(i) for i in x], rotation=60, fontsize=7, ha="right")
            ax1.set_xlabel("layer")
            ax1.set_ylabel("bits")
            ax1.set_title(f"best policy: accuracy {best['accuracy']:.4f}")
            ax1.legend(fontsize=8)
        key = metric_info(budget_metric, "budget_metric").fraction_field
        cost = [r[key] for r in with_policy]
        acc = [r["accuracy"] for r in with_policy]
        sc = ax2.scatter(cost, acc, c=[r["episode"] for r in with_policy], s=10, cmap="viridis")
        fig.colorbar(sc, ax=ax2, label="episode")
        if budget_line is not None:
            ax2.axvline(budget_line, color="red", linestyle="--", label="budget")
            ax2.legend(fontsize=8)
        ax2.set_xlabel(f"{budget_metric} / all-8-bit {budget_metric} (fraction)")
        ax2.set_ylabel("validation accuracy (fraction)")
        ax2.set_title("every evaluated policy")
    else:
        ax = fig.subplots()
        ax.plot([r["timestep"] for r in records], [r["return"] for r in records], ".-")
        ax.set_xlabel("timestep")
        ax.set_ylabel("episode return")
    fig.tight_layout()
    save_figure(fig, path)


def compare_figure(runs: Sequence[ComparisonRun | ObjectiveRun | Mapping[str, Any]], methods: Sequence[str],
                   path: Path, value: str = "test_accuracy", label: str | None = None, fraction: bool = True) -> None:
    """Per method, every seed's score (dots) with the IQM (bar) and the 95% bootstrap CI; ``value``
    names the score (a number field of the run records: an accuracy, or an objective run's
    ``objective``), ``label`` the axis (default: the field's name, as a fraction when ``fraction``)."""
    records = [r if isinstance(r, ObjectiveRun) else as_run(r) for r in runs]
    if not (records and isinstance(records[0], ObjectiveRun) and value == "objective"):
        check_number_field(value, "value")
    fig = new_figure(max(6, 1.1 * len(methods) + 2), 4, dpi=100)
    ax = fig.subplots()
    for i, m in enumerate(methods):
        vals = [getattr(r, value) for r in records if r.method == m and np.isfinite(getattr(r, value))]
        if not vals:
            continue
        lo, hi = iqm_ci(vals)
        centre = iqm(vals)
        ax.bar(i, centre, 0.6, color="lightsteelblue", edgecolor="k")
        ax.errorbar(i, centre, yerr=[[centre - lo], [hi - centre]], fmt="k_", capsize=6)
        ax.plot(np.full(len(vals), i) + np.linspace(-0.15, 0.15, len(vals)), vals, "o", color="tab:red", ms=4)
    ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right")
    ax.set_ylabel(label or f"{value.replace('_', ' ')} (fraction)")
    finite = [getattr(r, value) for r in records if np.isfinite(getattr(r, value))]  # failed runs (NaN) left out
    if finite and fraction:
        ax.set_ylim(max(0.0, min(finite) - 0.02), min(1.0, max(finite) + 0.01))
    elif finite:
        span = (max(finite) - min(finite)) or abs(max(finite)) or 1.0
        ax.set_ylim(min(finite) - 0.1 * span, max(finite) + 0.1 * span)
    ax.set_title("bars: IQM; whiskers: 95% bootstrap CI of the IQM; dots: seeds")
    fig.tight_layout()
    save_figure(fig, path)
