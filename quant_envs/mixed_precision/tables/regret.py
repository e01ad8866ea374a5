"""Regret as the currency of table benchmarks: best-so-far regret after n reward evaluations.

A *run record* is what a search did, in order: the score of every policy it evaluated and whether
that policy was within budget. Against a table's exact optimum (``TableProblem.optimum``) the
best-so-far regret after ``n`` evaluations is ``score_scale * (optimum - best feasible score among
the first n)``; before the first feasible policy it is the worst feasible policy's regret (the
search has nothing better to offer). A run that stopped before ``n`` evaluations keeps its final
value (a method that needs one evaluation is done after one).

:func:`regret_curves` turns run records into a ``[runs, max_n]`` array, :func:`summarize` gives the
mean and a 95% Student-t confidence interval over runs (seeds) at ``n = 10, 30, 100, 300, 1000``,
and :func:`plot_regret` draws regret-vs-evaluations curves with their bands.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from quant_envs.rendering import new_figure, save_figure

#: The evaluation counts the benchmark reports.
CHECKPOINTS = (10, 30, 100, 300, 1000)


@dataclass(frozen=True)
class RunRecord:
    """The scores a search evaluated, in order, and which were within budget."""

    scores: np.ndarray
    feasible: np.ndarray

    @classmethod
    def of(cls, scores: Sequence[float], feasible: Sequence[bool] | None = None) -> RunRecord:
        s = np.asarray(scores, dtype=float).reshape(-1)
        f = np.ones(len(s), dtype=bool) if feasible is None else np.asarray(feasible, dtype=bool).reshape(-1)
        if f.shape != s.shape:
            raise ValueError(f"feasible has {f.size} entries; scores has {s.size}")
        return cls(s, f)


def record_from_episodes(episodes: Sequence[Mapping], score_key: str = "accuracy") -> RunRecord:
    """A run record from an agent's episode records (``EpisodeRecorder.records`` or the rows of
    ``evaluations.csv``): one entry per reward evaluation, i.e. per episode not answered from the
    cache; feasible when ``budget_used <= 1`` (up to the problems' 1e-9 relative slack)."""
    rows = [e for e in episodes if str(e.get("cached", False)).lower() not in ("true", "1")]
    return RunRecord.of([float(e[score_key]) for e in rows],
                        [float(e.get("budget_used", 0.0)) <= 1.0 + 1e-9 for e in rows])


def best_so_far_regret(record: RunRecord, optimum: float, worst: float, length: int,
                       score_scale: float = 1.0) -> np.ndarray:
    """[length]: regret after 1..length evaluations (see the module docstring)."""
    if length < 1:
        raise ValueError(f"length={length!r} is not allowed; expected an integer >= 1")
    s = np.where(record.feasible, record.scores, -np.inf)[:length]
    best = np.maximum.accumulate(np.concatenate([[worst], s]))[1:] if len(s) else np.array([worst])
    best = np.maximum(best, worst)
    out = np.empty(length)
    out[:len(best)] = best
    out[len(best):] = best[-1]  # a search that stopped keeps its answer
    regret = score_scale * (optimum - out)
    if np.any(regret < -1e-9 * max(1.0, abs(score_scale * optimum))):
        raise ValueError("a feasible score exceeds the optimum: the record does not belong to this optimum")
    return np.maximum(regret, 0.0)


def regret_curves(records: Sequence[RunRecord], optimum: float, worst: float, length: int = CHECKPOINTS[-1],
                  score_scale: float = 1.0) -> np.ndarray:
    """[runs, length] best-so-far regret curves of ``records``."""
    return np.stack([best_so_far_regret(r, optimum, worst, length, score_scale) for r in records])


def confidence_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student-t interval of the mean over the first axis (one value: a point)."""
    v = np.asarray(values, dtype=float)
    mean = float(v.mean())
    if len(v) < 2 or np.all(v == v[0]):
        return mean, mean, mean
    half = float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return mean, mean - half, mean + half


@dataclass(frozen=True)
class RegretPoint:
    n: int
    mean: float
    low: float
    high: float
    runs: int


def summarize(curves: np.ndarray, checkpoints: Sequence[int] = CHECKPOINTS, level: float = 0.95) -> list[RegretPoint]:
    """Mean and ``level`` confidence interval over runs of the regret after each checkpoint's
    number of evaluations (checkpoints beyond the curves' length are left out)."""
    curves = np.atleast_2d(curves)
    out = []
    for n in checkpoints:
        if n <= curves.shape[1]:
            mean, low, high = confidence_interval(curves[:, n - 1], level)
            out.append(RegretPoint(int(n), mean, low, high, curves.shape[0]))
    return out


def plot_regret(curves: Mapping[str, np.ndarray], path: str | os.PathLike[str], unit: str,
                title: str = "", level: float = 0.95) -> Path:
    """Mean best-so-far regret vs evaluations per method (log x), with the ``level`` CI band; saved
    atomically to ``path`` (format from its extension)."""
    fig = new_figure()
    ax = fig.add_subplot()
    for name, c in curves.items():
        c = np.atleast_2d(c)
        x = np.arange(1, c.shape[1] + 1)
        mean = c.mean(axis=0)
        if c.shape[0] > 1:
            half = stats.t.ppf(0.5 + level / 2, c.shape[0] - 1) * c.std(axis=0, ddof=1) / np.sqrt(c.shape[0])
            ax.fill_between(x, np.maximum(mean - half, 0), mean + half, alpha=0.2)
        ax.plot(x, mean, label=f"{name} (n={c.shape[0]})")
    ax.set_xscale("log")
    ax.set_xlabel("reward evaluations")
    ax.set_ylabel(f"best-so-far regret ({unit})")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return Path(save_figure(fig, path))
