"""Quantized FEEL model: QSGD, bits, rate and its inverse, path loss, scenarios, the objective."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

from quant_envs.feel import (
    FULL_PRECISION,
    ConvergenceModel,
    bandwidth_for_rate,
    bits_per_upload,
    make_scenario,
    min_max_bandwidth,
    path_loss_db,
    project_shares,
    qsgd_expected_error,
    qsgd_variance_bound,
    rounds,
    total_time,
    uplink_rate,
)
from quant_envs.feel.quantizer import qsgd_quantize
from quant_envs.feel.training_time import device_latency, time_breakdown, total_time_unchecked


@pytest.fixture(scope="module")
def scenario():
    return make_scenario(6, seed=4)


# -- QSGD ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("s", [1, 2, 5, 127])
def test_qsgd_unbiased_and_within_variance_bound(s: int) -> None:
    # Seeded Monte Carlo over M = 20000 draws of one fixed vector (d = 650, heavy-tailed entries).
    rng = np.random.default_rng(s)
    d, m = 650, 20_000
    v = rng.standard_t(3, d) * (rng.random(d) < 0.8)
    q = qsgd_quantize(torch.as_tensor(np.tile(v, (m, 1))), torch.full((m,), s), torch.Generator().manual_seed(s)).numpy()
    norm = np.linalg.norm(v)
    # Coordinate i takes two values (l/s or (l+1)/s) x ||v||: its variance is exactly
    # (||v|| / s)^2 f (1 - f). With M draws the sample mean has standard error sqrt(var / M);
    # |z| < 6 for all 650 coordinates fails by chance with probability < 650 * 2e-9.
    x = s * np.abs(v) / norm
    f = x - np.floor(x)
    var = (norm / s) ** 2 * f * (1 - f)
    z = (q.mean(0) - v) / np.sqrt(np.maximum(var, 1e-30) / m)
    assert np.all(np.abs(z[var > 0]) < 6.0)
    assert np.all(q.mean(0)[var == 0] == v[var == 0])  # exactly representable coordinates never move
    # Mean squared error: Monte Carlo against the closed form (relative standard error of a mean of
    # M i.i.d. squared errors is well below 1 %, so 3 % is > 3 sigma), and the closed form against
    # QSGD's bound min(d/s^2, sqrt(d)/s) ||v||^2 (Alistarh et al. 2017, Lemma 3.1).
    mse = np.mean(np.sum((q - v) ** 2, axis=1))
    exact = qsgd_expected_error(v, s)
    assert mse == pytest.approx(exact, rel=0.03)
    assert exact <= qsgd_variance_bound(s, d) * norm**2
    # Every value is on the grid {l ||v|| / s}.
    grid = np.abs(q[:50]) * s / norm
    np.testing.assert_allclose(grid, np.round(grid), atol=1e-9)


def test_qsgd_full_precision_zero_rows_and_errors() -> None:
    g = torch.tensor([[1.0, -2.0, 3.0], [0.0, 0.0, 0.0], [0.5, 0.5, -0.5]], dtype=torch.float64)
    out = qsgd_quantize(g, torch.tensor([FULL_PRECISION, 3, 1]), torch.Generator().manual_seed(0))
    assert torch.equal(out[0], g[0]) and torch.equal(out[1], g[1])
    with pytest.raises(ValueError, match="levels must have shape"):
        qsgd_quantize(g, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=">= 1"):
        qsgd_quantize(g, torch.tensor([1, -1, 2]))


def test_qsgd_bound_and_expected_error_by_hand() -> None:
    # d = 4: sqrt(d)/s = 2/s is the smaller term for s < 2, d/s^2 beyond.
    np.testing.assert_allclose(qsgd_variance_bound(np.array([1, 2, 4, FULL_PRECISION]), 4), [2.0, 1.0, 0.25, 0.0])
    # v = (3, 4), ||v|| = 5, s = 1: x = (0.6, 0.8), error = 25 * (0.6*0.4 + 0.8*0.2) = 10.
    assert qsgd_expected_error(np.array([3.0, 4.0]), 1) == pytest.approx(10.0)
    assert qsgd_expected_error(np.array([3.0, 4.0]), FULL_PRECISION) == 0.0


# -- bits, rate, path loss ------------------------------------------------------------------


def test_bits_per_upload_by_hand() -> None:
    d = 650
    # s = 1: norm (32) + sign and 1 level bit per coordinate; s = 127: sign + 7 bits; full: 32 d.
    np.testing.assert_allclose(bits_per_upload(np.array([1, 127, 3, FULL_PRECISION]), d), [32 + 2 * d, 32 + 8 * d, 32 + 3 * d, 32 * d])


def test_rate_inverse_matches_brentq() -> None:
    g = np.geomspace(1e4, 1e11, 8)
    for b in (1e2, 1e4, 1e6):
        r = uplink_rate(b, g)
        np.testing.assert_allclose(r, b * np.log2(1 + g / b), rtol=1e-12)
        ours = bandwidth_for_rate(r, g)
        ref = [brentq(lambda x, gi=gi, ri=ri: x * np.log2(1 + gi / x) - ri, 1e-6, 1e12, rtol=1e-14) for gi, ri in zip(g, r, strict=True)]
        np.testing.assert_allclose(ours, ref, rtol=1e-9)
    # A rate at or beyond the infinite-band limit g / ln 2 needs infinite bandwidth; rate 0 needs none.
    assert np.isinf(bandwidth_for_rate(1e9 / np.log(2) * 1.0001, 1e9))
    assert bandwidth_for_rate(0.0, 1e9) == 0.0


def test_path_loss_3gpp() -> None:
    # 3GPP TR 36.814: 128.1 dB at 1 km, 37.6 dB per decade.
    np.testing.assert_allclose(path_loss_db(np.array([1000.0, 100.0])), [128.1, 128.1 - 37.6])


# -- scenarios --------------------------------------------------------------------------------


def test_make_scenario_deterministic_and_documented_ranges() -> None:
    a, b, c = make_scenario(8, seed=3), make_scenario(8, seed=3), make_scenario(8, seed=4)
    for name in ("data_sizes", "cpu_frequency", "channel_gain", "grad_sq_norm", "transmit_power"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.channel_gain, c.channel_gain)
    assert a.total_bandwidth == 200e3 and a.num_devices == 8
    assert a.data_sizes.sum() == 1077 and a.data_sizes.min() >= 2  # the digits training split (60 % of 1797)
    assert np.all((a.cpu_frequency >= 0.1e9) & (a.cpu_frequency <= 1e9))
    assert np.all((a.distance >= 50) & (a.distance <= 500))
    p_dbm = 10 * np.log10(a.transmit_power) + 30
    assert np.all((p_dbm >= 20 - 1e-9) & (p_dbm <= 23 + 1e-9))
    np.testing.assert_allclose(a.weights.sum(), 1.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_devices": 0}, "num_devices"),
        ({"num_devices": 10, "total_bandwidth": -1.0}, "total_bandwidth"),
        ({"num_devices": 10, "cpu_frequency": (2e9, 1e9)}, "cpu_frequency"),
        ({"num_devices": 10, "label_alpha": 0.0}, "label_alpha"),
        ({"num_devices": 600}, "num_devices"),
        ({"num_devices": 10, "max_levels": 0}, "max_levels"),
    ],
)
def test_make_scenario_bad_input(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        make_scenario(**kwargs)


# -- the objective ----------------------------------------------------------------------------


def test_total_time_independent_computation(scenario) -> None:
    k, d = scenario.num_devices, scenario.model_dim
    levels = np.array([1, 3, 7, 127, 255, FULL_PRECISION])
    bw = np.full(k, scenario.total_bandwidth / k)
    # Recompute every formula from the fields, without the package's helpers.
    t_cmp = scenario.data_sizes * scenario.cycles_per_sample / scenario.cpu_frequency
    snr = scenario.transmit_power * scenario.channel_gain / (scenario.noise_psd * bw)
    bits = np.where(levels == 0, 32.0 * d, 32.0 + d + d * np.log2(levels + 1.0))
    latency = np.max(t_cmp + bits / (bw * np.log2(1 + snr)))
    conv = scenario.convergence
    sl = np.maximum(levels, 1)
    q = np.where(levels == 0, 0.0, conv.eff_dim / (sl * (sl + conv.knee)))
    big_q = np.sum((scenario.data_sizes / scenario.data_sizes.sum()) ** 2 * scenario.grad_sq_norm * q)
    n = (conv.a0**conv.p + (conv.a1 * big_q) ** conv.p) ** (1 / conv.p) / conv.target_gap - conv.gamma
    assert total_time(scenario, levels, bw) == pytest.approx(n * latency, rel=1e-12)
    assert rounds(scenario, levels) == pytest.approx(n, rel=1e-12)
    # The solvers' unvalidated form is the same objective, from bandwidth or from a given latency.
    assert total_time_unchecked(scenario, levels, bw) == pytest.approx(n * latency, rel=1e-12)
    assert total_time_unchecked(scenario, levels, round_latency=latency) == pytest.approx(n * latency, rel=1e-12)
    assert time_breakdown(scenario, levels, bw).total_time == pytest.approx(n * latency, rel=1e-12)


def test_total_time_unchecked_batches_and_needs_one_latency_source(scenario) -> None:
    k = scenario.num_devices
    rng = np.random.default_rng(0)
    batch = rng.integers(1, scenario.max_levels + 1, size=(5, k))
    bw = rng.dirichlet(np.ones(k), size=5) * scenario.total_bandwidth * 0.99
    got = total_time_unchecked(scenario, batch, bw)
    assert got.shape == (5,)
    for i in range(5):  # each row equals the validated objective of that row
        assert got[i] == pytest.approx(total_time(scenario, batch[i], bw[i]), rel=1e-13)
    tau = np.linspace(0.1, 0.5, 5)
    by_latency = total_time_unchecked(scenario, batch, round_latency=tau)
    np.testing.assert_allclose(by_latency / tau, [rounds(scenario, b) for b in batch], rtol=1e-13)
    with pytest.raises(TypeError, match="exactly one"):
        total_time_unchecked(scenario, batch[0])
    with pytest.raises(TypeError, match="exactly one"):
        total_time_unchecked(scenario, batch[0], bw[0], round_latency=0.1)


def test_total_time_bad_input(scenario) -> None:
    k = scenario.num_devices
    bw = np.full(k, scenario.total_bandwidth / k)
    with pytest.raises(ValueError, match="total_bandwidth"):
        total_time(scenario, np.full(k, 3), bw * 1.01)
    with pytest.raises(ValueError, match="levels"):
        total_time(scenario, np.full(k, scenario.max_levels + 1), bw)
    with pytest.raises(ValueError, match="shape"):
        total_time(scenario, np.full(k + 1, 3), bw)
    with pytest.raises(ValueError, match="levels"):
        total_time(scenario, np.full(k, 2.5), bw)
    with pytest.raises(ValueError, match="positive"):
        total_time(scenario, np.full(k, 3), np.zeros(k))


def test_convergence_model_forms_and_validation() -> None:
    q = np.array([0.0, 0.01, 0.1, 1.0])
    hard = ConvergenceModel(a0=1.0, a1=20.0, gamma=5.0, target_gap=0.01, p=100.0)
    # p -> infinity recovers the bound's max(a0, a1 Q) / eps - gamma (to < 1 % at p = 100).
    np.testing.assert_allclose(hard.rounds_from_variance(q) + 5.0, np.maximum(1.0, 20.0 * q) / 0.01, rtol=0.01)
    soft = ConvergenceModel(a0=1.0, a1=20.0, gamma=5.0, target_gap=0.01, p=1.0)
    np.testing.assert_allclose(soft.rounds_from_variance(q), (1.0 + 20.0 * q) / 0.01 - 5.0)
    assert np.all(np.diff(soft.rounds_from_variance(np.linspace(0, 1, 50))) > 0)
    with pytest.raises(ValueError, match="target_gap"):
        ConvergenceModel(a0=0.01, a1=1.0, gamma=5.0, target_gap=0.01)
    with pytest.raises(ValueError, match="variance"):
        ConvergenceModel(a0=1.0, a1=1.0, gamma=0.0, target_gap=0.01, variance="exact")


# -- bandwidth --------------------------------------------------------------------------------


def test_min_max_bandwidth_equalises_latency_and_is_optimal(scenario) -> None:
    levels = np.array([1, 7, 31, 127, 3, FULL_PRECISION])
    split = min_max_bandwidth(scenario, levels)
    lat = device_latency(scenario, levels, split.bandwidth)
    assert split.bandwidth.sum() <= scenario.total_bandwidth
    np.testing.assert_allclose(lat, split.latency, rtol=1e-8)  # every device finishes together
    # Independent check: the common latency solves sum_k B_k(tau) = B, each B_k by brentq.
    def needed(tau: float) -> float:
        tot = 0.0
        for t_c, g, b in zip(scenario.compute_time, scenario.snr_density, bits_per_upload(levels, scenario.model_dim), strict=True):
            r = b / (tau - t_c)
            tot += brentq(lambda x, g=g, r=r: x * np.log2(1 + g / x) - r, 1e-9, 1e13, rtol=1e-14)
        return tot - scenario.total_bandwidth
    tau = brentq(needed, split.latency * 0.9, split.latency * 1.1, rtol=1e-13)
    assert split.latency == pytest.approx(tau, rel=1e-8)
    # Better than (or equal to) the equal split, and any random feasible split.
    rng = np.random.default_rng(0)
    for _ in range(20):
        bw = rng.dirichlet(np.ones(scenario.num_devices)) * scenario.total_bandwidth
        assert np.max(device_latency(scenario, levels, bw)) >= split.latency * (1 - 1e-9)


def test_project_shares_matches_numerical_projection() -> None:
    from scipy.optimize import minimize

    rng = np.random.default_rng(1)
    for _ in range(10):
        u = rng.uniform(-0.2, 0.8, 6)
        m = 0.01
        x = project_shares(u, m)
        assert np.all(x >= m - 1e-12) and x.sum() <= 1 + 1e-12
        cons = [{"type": "ineq", "fun": lambda y: 1 - y.sum()}]
        ref = minimize(lambda y, u=u: np.sum((y - u) ** 2), np.full(6, 0.1), bounds=[(m, None)] * 6, constraints=cons,
                       method="SLSQP", options={"ftol": 1e-14}).x
        np.testing.assert_allclose(x, ref, atol=1e-6)
        np.testing.assert_allclose(project_shares(x, m), x, atol=1e-12)  # idempotent
    with pytest.raises(ValueError, match="min_share"):
        project_shares(np.ones(4), 0.3)
