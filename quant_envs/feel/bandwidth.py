"""Bandwidth: the inverse of the Shannon rate, the min-max split for given levels, projection.

* :func:`bandwidth_for_rate` solves B log2(1 + g / B) = r for B in closed form with the
  Lambert W function (g = p h / N0): with c = r ln 2 / g < 1 and SNR x = g / B,
  ln(1 + x) = c x  =>  1 + x = -W_{-1}(-c e^{-c}) / c. A rate r >= g / ln 2 (the rate of an
  infinitely wide band) cannot be reached: the answer is +inf.
* :func:`min_max_bandwidth`: for fixed levels the number of rounds is fixed, so the best split
  minimises the round latency max_k (t_k^cmp + S_k / r_k(B_k)) under sum_k B_k <= B. Every r_k
  grows with B_k, so at the optimum all devices finish together at a common latency tau, and
  tau is found by bisection on sum_k B_k(tau) = B where B_k(tau) = bandwidth_for_rate(
  S_k / (tau - t_k^cmp)) (decreasing in tau). Vectorised over devices and over any leading
  batch axes (the brute-force solver splits thousands of level vectors at once).
* :func:`project_shares`: Euclidean projection of bandwidth shares onto {x_k >= m, sum_k x_k <= 1}.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import lambertw

from quant_envs.feel.model import bits_per_upload, uplink_rate
from quant_envs.feel.scenario import Scenario

LN2 = float(np.log(2.0))


def bandwidth_for_rate(rate: np.ndarray, snr_density: np.ndarray) -> np.ndarray:
    """Smallest B (Hz) with B log2(1 + snr_density / B) >= rate; +inf if unreachable, 0 for rate 0."""
    c = np.asarray(rate, dtype=np.float64) * (LN2 / np.asarray(snr_density, dtype=np.float64))
    ok = (c > 0) & (c < 1)
    cc = np.where(ok, c, 0.5)
    # Near c -> 1 (a band much wider than the SNR density) W_{-1} loses precision at its branch
    # point; there the series ln(1 + x) / x = 1 - x/2 + ... gives the start x = 2 (1 - c).
    near = cc > 0.999
    x = np.where(near, 2.0 * (1.0 - cc), -lambertw(-cc * np.exp(-cc), k=-1).real / cc - 1.0)
    for _ in range(2):  # Newton on ln(1 + x) - c x = 0 polishes both starts to full precision
        x = np.maximum(x - (np.log1p(x) - cc * x) / (1.0 / (1.0 + x) - cc), 1e-300)
    return np.where(ok, snr_density / x, np.where(c <= 0, 0.0, np.inf))


@dataclass(frozen=True)
class BandwidthSplit:
    """Result of :func:`min_max_bandwidth` (arrays carry the caller's leading batch axes)."""

    bandwidth: np.ndarray  # Hz per device, sum <= total
    latency: np.ndarray  # the common round latency tau, s
    iterations: int  # bisection steps


def min_max_bandwidth(
    scenario: Scenario, levels: np.ndarray, *, rtol: float = 1e-10, max_iter: int = 200, sections: int = 8
) -> BandwidthSplit:
    """Split ``scenario.total_bandwidth`` to minimise the round latency for ``levels`` ([..., K]).

    Bracketing search on the common latency tau (the paper's bisection; with ``sections`` > 1
    each step evaluates that many interior points at once and keeps the sub-bracket holding the
    root, ``sections=1`` being plain bisection: same guarantees, fewer numpy round trips) with
    the inner per-device bandwidth in closed form (:func:`bandwidth_for_rate`). Stops when the
    bracket is narrower than ``rtol`` relative; returns the split at the bracket's feasible end,
    so sum_k B_k <= B always holds.
    """
    levels = np.asarray(levels)
    bits = bits_per_upload(levels, scenario.model_dim)[..., None, :]  # [..., 1, K]
    t_cmp = scenario.compute_time
    g = scenario.snr_density
    total = scenario.total_bandwidth
    k = scenario.num_devices

    def needed(tau: np.ndarray) -> np.ndarray:  # tau [..., M] -> bandwidth [..., M, K]
        slack = tau[..., None] - t_cmp
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(slack > 0, bits / slack, np.inf)
        return bandwidth_for_rate(rate, g)

    # Infinite bandwidth gives rate g / ln 2: no latency below lo is reachable; the equal split is feasible.
    lo = np.max(t_cmp + bits[..., 0, :] * LN2 / g, axis=-1)
    hi = np.max(t_cmp + bits[..., 0, :] / uplink_rate(np.full(k, total / k), g), axis=-1)
    frac = np.arange(1, sections + 1) / (sections + 1)
    it = 0
    while it < max_iter and np.any(hi - lo > rtol * hi):
        taus = lo[..., None] + (hi - lo)[..., None] * frac  # [..., sections], increasing
        feasible = needed(taus).sum(axis=-1) <= total  # monotone: False ... False True ... True
        first = np.argmax(feasible, axis=-1)  # first feasible point (0 if none)
        any_ok = feasible.any(axis=-1)
        new_hi = np.where(any_ok, np.take_along_axis(taus, first[..., None], -1)[..., 0], hi)
        prev = np.take_along_axis(taus, np.maximum(first - 1, 0)[..., None], -1)[..., 0]
        new_lo = np.where(any_ok, np.where(first > 0, prev, lo), taus[..., -1])
        lo, hi = new_lo, new_hi
        it += 1
    bw = needed(hi[..., None])[..., 0, :]
    # Round-off guard: the feasible end must respect the budget exactly.
    scale = np.minimum(1.0, total / bw.sum(axis=-1))
    return BandwidthSplit(bw * scale[..., None], hi, it)


def project_shares(shares: np.ndarray, min_share: float = 0.0) -> np.ndarray:
    """Euclidean projection onto {x : x_k >= min_share, sum_k x_k <= 1} (shares of the band).

    Shares already inside are only raised to ``min_share``; otherwise the projection onto the
    face sum_k x_k = 1 is the sort-based simplex projection (Duchi et al., ICML 2008) of
    x - min_share onto the simplex of radius 1 - K min_share.
    """
    u = np.asarray(shares, dtype=np.float64)
    k = u.shape[-1]
    if not 0.0 <= min_share < 1.0 / k:
        raise ValueError(f"min_share={min_share!r} is not allowed; expected 0 <= min_share < 1/K = {1.0 / k:.6g}")
    clipped = np.maximum(u, min_share)
    if clipped.sum() <= 1.0:
        return clipped
    radius = 1.0 - k * min_share
    y = u - min_share
    srt = np.sort(y)[::-1]
    css = np.cumsum(srt) - radius
    idx = np.arange(1, k + 1)
    rho = np.flatnonzero(srt - css / idx > 0)[-1]
    theta = css[rho] / (rho + 1)
    return np.maximum(y - theta, 0.0) + min_share
