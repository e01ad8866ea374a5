"""Model of companding quantizers: sources, exact distortion, entropy, compressors, spline fit.

Independent references used here: scipy.integrate.quad on the density alone (never on the
closed-form moments under test), the numerical defaults of the Source base class (quad/brentq)
against the Gaussian/Laplacian closed forms, and textbook closed forms (Panter-Dite constants,
the uniform quantizer of a uniform source).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

from quant_envs.compander.compressor import (
    ALawCompressor,
    MuLawCompressor,
    OptimalCompressor,
    compander_distortion,
    compander_mse,
    optimal_support,
    panter_dite_distortion,
)
from quant_envs.compander.lloyd import solve_lloyd_max
from quant_envs.compander.quantizer import (
    check_quantizer,
    distortion,
    output_entropy,
    sqnr_db,
    sqnr_vs_variance,
)
from quant_envs.compander.sources import (
    GaussianSource,
    LaplacianSource,
    Source,
    available_sources,
    get_source,
    register_source,
    unregister_source,
)
from quant_envs.compander.spline import equal_segment_thresholds, fit_spline_compressor

SOURCES = ["gaussian", "laplacian"]


def _quad(f, a: float, b: float) -> float:
    pts = [0.0] if a < 0.0 < b else None
    if math.isinf(a) or math.isinf(b):
        pts = None
        if a < 0.0 < b:  # split at the Laplacian's kink
            return _quad(f, a, 0.0) + _quad(f, 0.0, b)
    return integrate.quad(f, a, b, points=pts, epsabs=1e-15, epsrel=1e-12, limit=400)[0]


def _direct_distortion(src: Source, t: np.ndarray, y: np.ndarray, lo: float = -math.inf, hi: float = math.inf) -> float:
    """integral of (x - Q(x))^2 f(x) over [lo, hi], cell by cell with quad and the density only."""
    edges = np.concatenate(([-math.inf], t, [math.inf]))
    total = 0.0
    for i in range(y.size):
        a, b = max(edges[i], lo), min(edges[i + 1], hi)
        if a < b:
            total += _quad(lambda x, yi=y[i]: (x - yi) ** 2 * float(src.pdf(x)), a, b)
    return total


@pytest.mark.parametrize("name", SOURCES)
def test_source_is_a_unit_variance_density(name: str) -> None:
    src = get_source(name)
    assert _quad(lambda x: float(src.pdf(x)), -math.inf, math.inf) == pytest.approx(1.0, abs=1e-12)
    assert _quad(lambda x: x * x * float(src.pdf(x)), -math.inf, math.inf) == pytest.approx(1.0, abs=1e-11)
    assert src.variance() == pytest.approx(1.0, abs=1e-15)


@pytest.mark.parametrize("cls", [GaussianSource, LaplacianSource])
def test_closed_forms_match_the_numerical_defaults(cls: type[Source]) -> None:
    # The base class integrates the density numerically (quad, brentq); the subclasses have
    # closed forms. Calling the base implementations on the same density is an independent check.
    src = cls()
    x = np.array([0.0, 0.3, 1.7, 4.2, 9.0])
    for k, (closed, numeric) in enumerate(zip(src.upper_moments(x), Source.upper_moments(src, x), strict=True)):
        np.testing.assert_allclose(closed, numeric, rtol=1e-10, atol=1e-15, err_msg=f"U_{k}")
    np.testing.assert_allclose(src.cube_root_integral(x), Source.cube_root_integral(src, x), rtol=1e-11)
    assert src.cube_root_total() == pytest.approx(Source.cube_root_total(src), rel=1e-11)
    v = src.cube_root_integral(x[1:])
    np.testing.assert_allclose(src.cube_root_integral_inv(v), x[1:], rtol=1e-10)
    np.testing.assert_allclose(Source.cube_root_integral_inv(src, v), x[1:], rtol=1e-9)
    p = np.array([1e-6, 0.1, 0.5, 0.8, 1 - 1e-6])
    np.testing.assert_allclose(src.quantile(p), Source.quantile(src, p), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", SOURCES)
def test_interval_moments_against_quad(name: str) -> None:
    src = get_source(name)
    for a, b in [(-math.inf, -2.0), (-1.5, -0.2), (-0.7, 0.4), (0.0, 1.0), (2.5, math.inf), (5.0, 5.5)]:
        got = src.interval_moments(a, b)
        for k in range(3):
            want = _quad(lambda x, k=k: x**k * float(src.pdf(x)), a, b)
            assert float(got[k]) == pytest.approx(want, rel=1e-10, abs=1e-15), (a, b, k)


@pytest.mark.parametrize("name", SOURCES)
def test_distortion_matches_direct_numerical_integration(name: str) -> None:
    src = get_source(name)
    rng = np.random.default_rng(7)
    for n in (2, 5, 16):
        t = np.sort(rng.normal(0.0, 1.5, size=n - 1))
        y = np.sort(rng.normal(0.0, 1.5, size=n))  # arbitrary levels, not centroids
        d = distortion(src, t, y)
        assert d.total == pytest.approx(_direct_distortion(src, t, y), rel=1e-9)
        assert d.overload == 0.0 and d.granular == d.total
        # Granular/overload split at a support region threshold.
        x_max = 2.2
        ds = distortion(src, t, y, support=x_max)
        assert ds.granular == pytest.approx(_direct_distortion(src, t, y, -x_max, x_max), rel=1e-9)
        over = _direct_distortion(src, t, y, x_max, math.inf) + _direct_distortion(src, t, y, -math.inf, -x_max)
        assert ds.overload == pytest.approx(over, rel=1e-9)
        assert ds.total == pytest.approx(d.total, rel=1e-12)


def test_sqnr_and_entropy() -> None:
    assert sqnr_db(0.1) == pytest.approx(10.0)
    assert sqnr_db(0.1, variance=10.0) == pytest.approx(20.0)
    src = get_source("laplacian")
    # Two symmetric cells: one bit exactly.
    assert output_entropy(src, [0.0]) == pytest.approx(1.0, abs=1e-15)
    t = np.array([-1.0, 0.3, 2.0])
    p = [_quad(lambda x: float(src.pdf(x)), a, b) for a, b in zip([-math.inf, *t], [*t, math.inf], strict=True)]
    assert output_entropy(src, t) == pytest.approx(-sum(q * math.log2(q) for q in p), rel=1e-10)


@pytest.mark.parametrize("name", SOURCES)
def test_sqnr_vs_variance_against_a_scaled_density(name: str) -> None:
    src = get_source(name)
    t = np.array([-1.2, -0.4, 0.0, 0.4, 1.2])
    y = np.array([-1.8, -0.8, -0.2, 0.2, 0.8, 1.8])
    vdb = np.array([-20.0, -3.0, 0.0, 6.0])
    got = sqnr_vs_variance(src, t, y, vdb)
    assert got[2] == pytest.approx(sqnr_db(distortion(src, t, y).total), abs=1e-12)
    for v, s in zip(vdb, got, strict=True):
        sigma = 10 ** (v / 20)
        edges = np.concatenate(([-math.inf], t, [math.inf]))
        d = sum(
            _quad(lambda x, yi=y[i], s=sigma: (x - yi) ** 2 * float(src.pdf(x / s)) / s, edges[i], edges[i + 1])
            for i in range(y.size)
        )
        assert s == pytest.approx(10 * math.log10(sigma**2 / d), abs=1e-8)


@pytest.mark.parametrize("name", SOURCES)
def test_compressors_are_odd_increasing_and_invertible(name: str) -> None:
    src = get_source(name)
    for c in (OptimalCompressor(source=src, x_max=4.0), MuLawCompressor(x_max=4.0), ALawCompressor(x_max=4.0)):
        x = np.linspace(-4.0, 4.0, 2001)
        v = c(x)
        assert np.all(np.diff(v) > 0)
        np.testing.assert_allclose(c(-x), -v, atol=1e-15)
        assert float(c(4.0)) == pytest.approx(4.0) and float(c(9.0)) == pytest.approx(4.0)  # saturates
        np.testing.assert_allclose(c.inverse(v), x, atol=1e-12)
        t, y = c.quantizer(8)
        assert t.size == 7 and y.size == 8 and np.all(np.diff(t) > 0)
        assert np.all((y[:-1] < t) & (t < y[1:]))  # each level inside its cell


def test_optimal_compressor_closed_form() -> None:
    # c(x) = x_max R(x) / R(x_max) with R from quad of f^(1/3): independent of the closed forms.
    for name in SOURCES:
        src = get_source(name)
        c = OptimalCompressor(source=src, x_max=3.0)
        r = lambda b, src=src: _quad(lambda u: float(src.pdf(u)) ** (1 / 3), 0.0, b)  # noqa: E731
        for x in (0.2, 1.0, 2.5):
            assert float(c(x)) == pytest.approx(3.0 * r(x) / r(3.0), rel=1e-10)


def test_mu_and_a_law_formulas() -> None:
    # G.711 definitions evaluated by hand at a few points.
    mu = MuLawCompressor(x_max=2.0, mu=255.0)
    assert float(mu(1.0)) == pytest.approx(2.0 * math.log(1 + 255 * 0.5) / math.log(256))
    a = ALawCompressor(x_max=2.0, a=87.6)
    assert float(a(0.01)) == pytest.approx(2.0 * 87.6 * 0.005 / (1 + math.log(87.6)))
    assert float(a(1.0)) == pytest.approx(2.0 * (1 + math.log(87.6 * 0.5)) / (1 + math.log(87.6)))
    knee = 2.0 / 87.6  # continuity at |x| = x_max / A
    assert float(a(knee * (1 - 1e-12))) == pytest.approx(float(a(knee * (1 + 1e-12))), rel=1e-9)


def test_panter_dite_constants() -> None:
    # (integral f^(1/3))^3 / 12: sqrt(3) pi / 2 for the Gaussian, 9/2 for the unit-variance Laplacian.
    assert panter_dite_distortion("gaussian", 1) == pytest.approx(math.sqrt(3) * math.pi / 2, rel=1e-13)
    assert panter_dite_distortion("laplacian", 1) == pytest.approx(4.5, rel=1e-13)
    assert panter_dite_distortion("laplacian", 10) == pytest.approx(0.045, rel=1e-13)


@pytest.mark.parametrize("name", SOURCES)
def test_optimal_support_beats_its_neighbourhood(name: str) -> None:
    src = get_source(name)
    make = lambda x: OptimalCompressor(source=src, x_max=x)  # noqa: E731
    best = optimal_support(src, make, 16)
    assert best.distortion.total == pytest.approx(compander_distortion(src, make(best.x_max), 16).total)
    assert compander_mse(src, make(best.x_max), 16) == pytest.approx(best.distortion.total, rel=1e-12)
    for f in (0.9, 0.99, 1.01, 1.1):
        assert compander_distortion(src, make(best.x_max * f), 16).total >= best.distortion.total


@pytest.mark.parametrize("degree", [1, 2])
def test_interpolating_spline_passes_through_the_knots(degree: int) -> None:
    src = get_source("laplacian")
    c = OptimalCompressor(source=src, x_max=6.0)
    s = fit_spline_compressor(c, [1.5, 3.5], degree=degree)
    knots = np.array([0.0, 1.5, 3.5, 6.0])
    np.testing.assert_allclose(s(knots), c(knots), atol=1e-14)
    x = np.linspace(-6.0, 6.0, 1001)
    assert s.is_monotone and np.all(np.diff(s(x)) > 0)
    np.testing.assert_allclose(s.inverse(s(x)), x, atol=1e-11)


def test_quadratic_piece_minimises_the_segment_mse() -> None:
    # Perturbing the fitted curvature of an (unclipped) segment must increase its MSE.
    src = get_source("gaussian")
    c = OptimalCompressor(source=src, x_max=4.0)
    s = fit_spline_compressor(c, [1.0], degree=2)
    a, b = 0.0, 1.0
    mse = lambda spline: _quad(lambda x: float(c(x) - spline(x)) ** 2, a, b)  # noqa: E731
    base = mse(s)
    for dk in (-1e-3, 1e-3):
        curv = s.curvature.copy()
        curv[0] += dk
        other = type(s)(x_max=4.0, knots=s.knots, values=s.values, curvature=curv, degree=2)
        assert mse(other) > base


def test_least_squares_fit_has_no_larger_mse_than_interpolation() -> None:
    src = get_source("laplacian")
    c = OptimalCompressor(source=src, x_max=7.0)
    for degree in (1, 2):
        interp = fit_spline_compressor(c, [2.5], degree=degree, fit="interpolating")
        lsq = fit_spline_compressor(c, [2.5], degree=degree, fit="least_squares")
        mse = lambda s: _quad(lambda x: float(c(x) - s(x)) ** 2, 0.0, 7.0)  # noqa: E731
        assert mse(lsq) <= mse(interp) * (1 + 1e-9)
        assert float(lsq(7.0)) == pytest.approx(7.0) and float(lsq(0.0)) == 0.0


def test_equal_segments() -> None:
    np.testing.assert_allclose(equal_segment_thresholds(6.0, 3), [2.0, 4.0])
    assert equal_segment_thresholds(6.0, 1).size == 0


class _UniformSource(Source):
    """Uniform on [-sqrt(3), sqrt(3)] (unit variance), density only: the numerical defaults do the rest."""

    name = "uniform-test"
    support_max = math.sqrt(3.0)

    def pdf(self, x):
        x = np.asarray(x, dtype=float)
        return np.where(np.abs(x) <= self.support_max, 1.0 / (2.0 * self.support_max), 0.0)


def test_registry_accepts_a_new_source() -> None:
    register_source("uniform-test", _UniformSource)
    try:
        assert "uniform-test" in available_sources()
        src = get_source("uniform-test")
        assert src.variance() == pytest.approx(1.0, rel=1e-10)
        # The uniform quantizer with step 2 sqrt(3) / N has D = step^2 / 12 = 1 / N^2.
        n = 4
        step = 2 * math.sqrt(3) / n
        t = step * np.arange(-n / 2 + 1, n / 2)
        y = step * (np.arange(n) - (n - 1) / 2)
        assert distortion("uniform-test", t, y).total == pytest.approx(1 / n**2, rel=1e-10)
        # ... and it is the Lloyd-Max quantizer of the uniform source.
        sol = solve_lloyd_max("uniform-test", n)
        np.testing.assert_allclose(sol.thresholds, t, atol=1e-12)
        np.testing.assert_allclose(sol.levels, y, atol=1e-12)
        with pytest.raises(ValueError, match="already registered"):
            register_source("uniform-test", _UniformSource)
    finally:
        unregister_source("uniform-test")
    assert "uniform-test" not in available_sources()


def test_bad_input_is_rejected_with_clear_errors() -> None:
    with pytest.raises(ValueError, match="source='cauchy'.*gaussian"):
        get_source("cauchy")
    with pytest.raises(ValueError, match="strictly increasing"):
        check_quantizer([0.5, 0.1], [0, 1, 2])
    with pytest.raises(ValueError, match="N-1 thresholds"):
        check_quantizer([0.0, 1.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="finite"):
        check_quantizer([0.0, math.inf], [0.0, 1.0, 2.0])
    with pytest.raises(TypeError):
        check_quantizer("abc", [1, 2])
    with pytest.raises(ValueError, match="support"):
        distortion("gaussian", [0.0], [-1.0, 1.0], support=-1.0)
    with pytest.raises(ValueError, match="x_max"):
        MuLawCompressor(x_max=0.0)
    with pytest.raises(ValueError, match="degree"):
        fit_spline_compressor(OptimalCompressor(source=get_source("gaussian"), x_max=3.0), [1.0], degree=3)
    with pytest.raises(ValueError, match="segment_thresholds"):
        fit_spline_compressor(OptimalCompressor(source=get_source("gaussian"), x_max=3.0), [3.5])
    with pytest.raises(ValueError, match="fit"):
        fit_spline_compressor(OptimalCompressor(source=get_source("gaussian"), x_max=3.0), [1.0], fit="cubic")
    with pytest.raises(ValueError, match="built in"):
        unregister_source("gaussian")


def test_sqnr_vs_variance_names_variance_db() -> None:
    t, y = [0.0], [-0.8, 0.8]
    with pytest.raises(TypeError, match="variance_db='x'"):
        sqnr_vs_variance("gaussian", t, y, "x")
    with pytest.raises(ValueError, match=r"variance_db=\[nan\] is not allowed; expected finite values in \[-300, 300\] dB"):
        sqnr_vs_variance("gaussian", t, y, [0.0, math.nan])
    with pytest.raises(ValueError, match=r"variance_db=\[10000.0\]"):  # 10^1000 overflows: refused, not a deep error
        sqnr_vs_variance("gaussian", t, y, [10000.0])
    with pytest.raises(ValueError, match=r"variance_db has shape \(1, 2\)"):
        sqnr_vs_variance("gaussian", t, y, [[0.0, 1.0]])
    # The limits themselves still give finite answers; a scalar gives one value. Expected: the
    # 1-bit quantizer +-0.8 on a Gaussian of variance sigma^2 has D = sigma^2 - 2 (0.8) sigma
    # sqrt(2/pi) + 0.64 (E|X| = sigma sqrt(2/pi)), computed here by hand at sigma = 1.
    assert np.all(np.isfinite(sqnr_vs_variance("gaussian", t, y, [-300.0, 300.0])))
    by_hand = 10 * math.log10(1.0 / (1.0 - 1.6 * math.sqrt(2 / math.pi) + 0.64))
    np.testing.assert_allclose(sqnr_vs_variance("gaussian", t, y, 0.0), [by_hand], rtol=1e-12)
