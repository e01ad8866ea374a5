"""The joint data-and-model-driven fitting of the convergence model's constants.

Model-driven: the form of the optimality gap comes from the bound (see
:class:`quant_envs.feel.model.ConvergenceModel`),

    gap(n; s) = (a0^p + (a1 Q(s))^p)^(1/p) / (n + gamma),   Q(s) = sum_k p_k^2 G_k^2 q(s_k).

Data-driven: the constants come from the real simulator (:mod:`quant_envs.feel.simulator`).

1. ``q(s)``. The exact expected QSGD error of a vector is known in closed form
   (:func:`quant_envs.feel.model.qsgd_expected_error`); evaluated on the devices' local
   gradients at the optimum (which drive the noise once training is near w*), averaged with the
   weights p_k^2 G_k^2 the bound gives them, it is fitted by ``eff_dim / (s (s + knee))`` (least
   squares on the log over s = 1..max_levels): :func:`fit_variance_shape`.
2. ``a0, a1, gamma, p``. Every level configuration is trained with several seeds; the seed-mean
   gap curve is the data (the bound is about the expected gap). The four constants minimise the
   squared log-error of the model over the rounds where the measured gap lies within
   ``band`` x target (the part of the curves that decides the rounds to the target):
   :func:`fit_convergence`.

:func:`run_fit` does both for a scenario's partition and reports predicted against simulated
rounds per configuration; ``python -m baselines.feel --fit`` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quant_envs.checks import check_float, check_int
from quant_envs.feel.model import FULL_PRECISION, ConvergenceModel, qsgd_expected_error
from quant_envs.feel.scenario import Scenario
from quant_envs.feel.softmax import local_gradients_at_optimum


@dataclass(frozen=True)
class VarianceFit:
    """q(s) = eff_dim / (s (s + knee)) fitted to the measured normalised QSGD error."""

    eff_dim: float
    knee: float
    levels: np.ndarray  # the s values measured
    measured: np.ndarray  # weighted mean of E||Q_s(g) - g||^2 / ||g||^2 over the gradients
    max_rel_error: float  # worst |fit / measured - 1| over ``levels``


def fit_variance_shape(grads: np.ndarray, weights: np.ndarray | None = None, levels: np.ndarray | None = None) -> VarianceFit:
    """Fit eff_dim and knee to the exact QSGD error of the rows of ``grads`` ([M, d])."""
    from scipy.optimize import least_squares

    grads = np.asarray(grads, dtype=np.float64)
    if grads.ndim != 2 or len(grads) == 0:
        raise ValueError(f"grads must be a non-empty [vectors, dim] array, got shape {grads.shape}")
    sq = np.sum(grads**2, axis=1)
    w = np.ones(len(grads)) if weights is None else np.asarray(weights, dtype=np.float64)
    if levels is None:
        levels = np.unique(np.round(np.geomspace(1, 255, 24)).astype(np.int64))
    levels = np.asarray(levels, dtype=np.int64)
    err = np.array([[qsgd_expected_error(g, int(s)) for g in grads] for s in levels])  # [S, M]
    measured = (err @ w) / (sq @ w)

    def residual(theta: np.ndarray) -> np.ndarray:
        log_eff, knee = theta
        return log_eff - np.log(levels) - np.log(levels + knee) - np.log(measured)

    sol = least_squares(residual, x0=[np.log(measured[0] * 2.0), 1.0], bounds=([-np.inf, 0.0], [np.inf, np.inf]))
    eff, knee = float(np.exp(sol.x[0])), float(sol.x[1])
    fit = eff / (levels * (levels + knee))
    return VarianceFit(eff, knee, levels, measured, float(np.max(np.abs(fit / measured - 1.0))))


def rounds_to_target(gap_curve: np.ndarray, target_gap: float) -> float:
    """First round n (1-based) with gap <= target, NaN if the curve never gets there."""
    hit = np.flatnonzero(np.asarray(gap_curve) <= target_gap)
    return float(hit[0] + 1) if len(hit) else float("nan")


def simulate_gap_curves(
    scenario: Scenario,
    level_configs: np.ndarray,
    *,
    seeds: int = 4,
    max_rounds: int = 4000,
    stop_below: float | None = None,
    seed: int = 0,
) -> list[np.ndarray]:
    """Seed-mean gap curve of every level configuration ([C, K]) on the scenario's partition.

    Each configuration runs ``seeds`` replicas at once and stops early once the mean gap has
    stayed below ``stop_below`` for 20 rounds (the curves are then as long as they need to be).
    """
# lazy: the simulator trains in torch; the fitted constants load without it
    from quant_envs.feel.simulator import FederatedSimulator

    partition = scenario.require_partition()
    seeds = check_int("seeds", seeds, min_value=1)
    max_rounds = check_int("max_rounds", max_rounds, min_value=1)
    configs = np.asarray(level_configs, dtype=np.int64)
    curves = []
    for i, lv in enumerate(configs):
        sim = FederatedSimulator(partition, replicas=seeds, seed=seed + 1000 * i)
        gaps: list[float] = []
        below = 0
        for _ in range(max_rounds):
            gaps.append(float(sim.step(lv).gap.mean()))
            below = below + 1 if stop_below is not None and gaps[-1] < stop_below else 0
            if below >= 20:
                break
        curves.append(np.array(gaps))
    return curves


def fit_convergence(
    q_sums: np.ndarray,
    curves: list[np.ndarray],
    target_gap: float,
    *,
    band: tuple[float, float] = (0.7, 1.5),
    variance: str = "fitted",
    eff_dim: float = 1.0,
    knee: float = 1.0,
) -> ConvergenceModel:
    """Least-squares (a0, a1, gamma, p) of gap(n) = (a0^p + (a1 Q)^p)^(1/p) / (n + gamma) on the band."""
    from scipy.optimize import least_squares

    target_gap = check_float("target_gap", target_gap, min_value=0.0, min_inclusive=False)
    lo, hi = band[0] * target_gap, band[1] * target_gap
    pts = []
    for q, curve in zip(np.asarray(q_sums, dtype=np.float64), curves, strict=True):
        n = np.arange(1, len(curve) + 1, dtype=np.float64)
        m = (curve >= lo) & (curve <= hi)
        pts += [(q, nn, g) for nn, g in zip(n[m], curve[m], strict=True)]
    if len(pts) < 3:
        raise ValueError("too few measured gaps near the target to fit; lengthen max_rounds or widen band")
    q, n, g = (np.array(c) for c in zip(*pts, strict=True))

    def residual(theta: np.ndarray) -> np.ndarray:
        la0, la1, gamma, lp = theta
        pp = np.exp(lp)
        a0, b = np.exp(la0), np.exp(la1) * q
        big = np.maximum(a0, b)
        num = big * ((a0 / big) ** pp + (b / big) ** pp) ** (1.0 / pp)
        return np.log(num) - np.log(n + gamma) - np.log(g)

    # Start from the 1/n shape through the fastest and the slowest configurations, p = 4.
    fast, slow = int(np.argmin(q)), int(np.argmax(q))
    x0 = [np.log(g[fast] * n[fast]), np.log(g[slow] * n[slow] / max(q[slow], 1e-12)), 1.0, np.log(4.0)]
    sol = least_squares(residual, x0=x0, bounds=([-np.inf, -np.inf, -0.99, 0.0], [np.inf, np.inf, np.inf, np.log(100.0)]))
    a0, a1, gamma, p = float(np.exp(sol.x[0])), float(np.exp(sol.x[1])), float(sol.x[2]), float(np.exp(sol.x[3]))
    return ConvergenceModel(a0=a0, a1=a1, gamma=gamma, target_gap=target_gap, p=p, variance=variance, eff_dim=eff_dim, knee=knee)


@dataclass(frozen=True)
class FitReport:
    """Everything :func:`run_fit` measured and fitted."""

    convergence: ConvergenceModel
    variance_fit: VarianceFit
    level_configs: np.ndarray  # [C, K]
    q_sums: np.ndarray  # Q of every configuration under the fitted model
    curves: list[np.ndarray]
    simulated_rounds: np.ndarray  # rounds for the seed-mean gap to reach the target
    predicted_rounds: np.ndarray  # the fitted closed form


DEFAULT_FIT_LEVELS = (1, 2, 3, 5, 7, 11, 15, 31, 63, FULL_PRECISION)


def run_fit(
    scenario: Scenario,
    *,
    target_gap: float = 0.01,
    homogeneous_levels: tuple[int, ...] = DEFAULT_FIT_LEVELS,
    seeds: int = 4,
    max_rounds: int = 4000,
    band: tuple[float, float] = (0.7, 1.5),
    variance: str = "fitted",
) -> FitReport:
    """Fit q(s) and (a0, a1, gamma) on ``scenario``'s partition from homogeneous-level trainings."""
    grads = local_gradients_at_optimum(scenario.require_partition())
    vfit = fit_variance_shape(grads, weights=scenario.weights**2)
    configs = np.array([[s] * scenario.num_devices for s in homogeneous_levels], dtype=np.int64)
    curves = simulate_gap_curves(scenario, configs, seeds=seeds, max_rounds=max_rounds, stop_below=band[0] * target_gap)
    probe = ConvergenceModel(a0=1.0, a1=1.0, gamma=0.0, target_gap=min(target_gap, 0.5), variance=variance, eff_dim=vfit.eff_dim, knee=vfit.knee)
    q_sums = np.array([np.sum(scenario.noise_weights * probe.variance_factor(c, scenario.model_dim)) for c in configs])
    model = fit_convergence(q_sums, curves, target_gap, band=band, variance=variance, eff_dim=vfit.eff_dim, knee=vfit.knee)
    sim_rounds = np.array([rounds_to_target(c, target_gap) for c in curves])
    return FitReport(model, vfit, configs, q_sums, curves, sim_rounds, model.rounds_from_variance(q_sums))
