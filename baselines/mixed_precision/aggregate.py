"""Aggregates across benchmark instances, with rliable's definitions (Agarwal et al., NeurIPS 2021).

Inputs are *normalised* regrets: per instance (a table, hardware, metric and budget, at one number
n of evaluations), a run's regret divided by the instance's reference regret (0 = the optimum,
1 = the reference; :func:`normalise`). The reference is random search's best-of-1 expected regret:
the mean regret of a policy drawn uniformly from the feasible set.

* :func:`iqm` -- interquartile mean over all runs of all instances (``scipy.stats.trim_mean`` with
  25% cut from each end);
* :func:`stratified_bootstrap_ci` -- the 95% percentile interval of a statistic, resampling runs
  *within* each instance (``scipy.stats.bootstrap`` with one sample per instance: it resamples each
  sample independently, which is rliable's stratified bootstrap);
* :func:`probability_of_improvement` -- ``P(X < Y)``: per instance the Mann-Whitney statistic
  ``P(x < y) + P(x = y) / 2`` over all pairs of runs of methods X and Y (lower regret is better),
  averaged over instances;
* :func:`performance_profile` -- per threshold tau, the fraction of runs with normalised regret
  ``<= tau``, averaged over instances (each instance weighs the same however many runs it has).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

from quant_envs.rendering import new_figure, save_figure

#: Resamples of the stratified bootstrap (rliable's default is 50,000; the intervals' digits shown
#: in the leaderboard are stable at this size).
RESAMPLES = 5000


def normalise(regret: np.ndarray | float, reference: float) -> np.ndarray:
    """``regret / reference`` (a reference of 0, an instance where every policy is optimal, gives 0)."""
    r = np.asarray(regret, dtype=float)
    if reference < 0:
        raise ValueError(f"reference={reference!r} is not allowed; expected a regret >= 0")
    return np.zeros_like(r) if reference == 0 else r / reference


def iqm(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50% (``scipy.stats.trim_mean(values, 0.25)``)."""
    return np.asarray(stats.trim_mean(values, 0.25, axis=axis))


def _pooled(statistic: Callable[[np.ndarray], np.ndarray]) -> Callable[..., np.ndarray]:
    def pooled(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        return statistic(np.concatenate(samples, axis=axis), axis=axis)  # type: ignore[call-arg]
    return pooled


def stratified_bootstrap_ci(runs: Sequence[np.ndarray], statistic: Callable[..., np.ndarray] = iqm,
                            level: float = 0.95, seed: int = 0, resamples: int = RESAMPLES) -> tuple[float, float, float]:
    """(point, low, high) of ``statistic`` over the pooled runs of every instance, with a stratified
    percentile bootstrap interval. ``runs``: one array of run values per instance; an instance with
    a single run leaves the interval undefined (NaN)."""
    samples = [np.asarray(r, dtype=float).reshape(-1) for r in runs]
    pooled = _pooled(statistic)
    point = float(pooled(*samples))
    if sum(len(s) for s in samples) < 2 or all(np.all(s == samples[0][0]) for s in samples):
        return point, point, point
    if any(len(s) < 2 for s in samples):  # scipy resamples a stratum of two or more runs only
        return point, float("nan"), float("nan")
    res = stats.bootstrap(samples, pooled, vectorized=True, confidence_level=level, n_resamples=resamples,
                          method="percentile", random_state=np.random.default_rng(seed))
    return point, float(res.confidence_interval.low), float(res.confidence_interval.high)


def _mann_whitney_lower(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """P(x < y) + P(x = y) / 2 over all pairs, along ``axis`` (vectorised over the rest)."""
    x, y = np.moveaxis(x, axis, -1), np.moveaxis(y, axis, -1)
    less = (x[..., :, None] < y[..., None, :]).mean(axis=(-2, -1))
    ties = (x[..., :, None] == y[..., None, :]).mean(axis=(-2, -1))
    return less + 0.5 * ties


def probability_of_improvement(x_runs: Sequence[np.ndarray], y_runs: Sequence[np.ndarray], level: float = 0.95,
                               seed: int = 0, resamples: int = RESAMPLES) -> tuple[float, float, float]:
    """(point, low, high) of P(X improves on Y): X's regret lower, averaged over instances; the
    interval from a stratified bootstrap of both methods' runs (each instance's runs of X and of Y
    resampled separately)."""
    if len(x_runs) != len(y_runs) or not x_runs:
        raise ValueError(f"x_runs and y_runs must list the same instances (got {len(x_runs)} and {len(y_runs)})")
    # a single run is repeated: resampling it gives itself either way, and the pairwise statistic is
    # unchanged by repeating values (scipy resamples a stratum of two or more runs only)
    xs = [np.resize(np.asarray(r, dtype=float).reshape(-1), max(np.size(r), 2)) for r in x_runs]
    ys = [np.resize(np.asarray(r, dtype=float).reshape(-1), max(np.size(r), 2)) for r in y_runs]
    k = len(xs)

    def statistic(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean([_mann_whitney_lower(samples[i], samples[k + i], axis) for i in range(k)], axis=0)

    point = float(statistic(*xs, *ys))
    if all(np.all(s == s[0]) for s in xs + ys):
        return point, point, point
    res = stats.bootstrap(xs + ys, statistic, vectorized=True, confidence_level=level, n_resamples=resamples,
                          method="percentile", random_state=np.random.default_rng(seed))
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if np.isnan(low):  # a degenerate bootstrap distribution (every resample equal)
        low = high = point
    return point, low, high


def performance_profile(runs: Sequence[np.ndarray], taus: np.ndarray) -> np.ndarray:
    """[len(taus)]: per tau, the fraction of runs with normalised regret <= tau, averaged over instances."""
    taus = np.asarray(taus, dtype=float)
    return np.mean([(np.asarray(r, dtype=float).reshape(-1)[:, None] <= taus[None, :]).mean(axis=0) for r in runs],
                   axis=0)


def plot_profiles(profiles: dict[str, np.ndarray], taus: np.ndarray, path: str, title: str = "") -> None:
    """Performance profiles (fraction of runs with normalised regret <= tau vs tau), one line per method."""
    fig = new_figure()
    ax = fig.add_subplot()
    for name, p in profiles.items():
        ax.step(taus, p, where="post", label=name)
    ax.set_xlabel("normalised regret threshold tau (1 = random search's best of 1)")
    ax.set_ylabel("fraction of runs with regret <= tau", fontsize=8)
    ax.set_ylim(-0.02, 1.02)
    if title:
        ax.set_title(title, fontsize=9)
    if profiles:  # no runs yet: no legend to draw
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def plot_intervals(rows: dict[str, dict[int, tuple[float, float, float]]], path: str, ylabel: str,
                   title: str = "") -> None:
    """Point and interval per method at every n (log x): the IQM (or any statistic) against evaluations."""
    fig = new_figure(7.5, 4.2)
    ax = fig.add_subplot()
    for j, (name, by_n) in enumerate(rows.items()):
        ns = sorted(by_n)
        pts = np.array([by_n[n] for n in ns])
        x = np.array(ns) * (1 + 0.03 * (j - len(rows) / 2))  # a small offset so the bars do not overlap
        ax.errorbar(x, pts[:, 0], yerr=[pts[:, 0] - pts[:, 1], pts[:, 2] - pts[:, 0]], marker="o", ms=3,
                    capsize=2, label=name)
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=0.01)  # regrets from 0 (the optimum) to a few times the reference
    ax.set_ylim(bottom=0.0)
    ax.set_xlabel("reward evaluations n")
    ax.set_ylabel(ylabel, fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    if rows:  # no runs yet: no legend to draw
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
