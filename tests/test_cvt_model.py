"""The CVT model: cells, energy, gradient, Hessian and quadrature against independent values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial import Voronoi

from quant_envs.cvt import CVTProblem, Density
from quant_envs.cvt.quadrature import gauss_legendre01, triangle_rule

QUAD = [(0.0, 0.0), (2.0, 0.0), (1.5, 1.0), (0.2, 1.2)]  # a convex quadrilateral


def test_uniform_1d_cvt_is_exact() -> None:
    # Known in closed form: z_i = (2i - 1) / (2k), E = 1 / (12 k^2) (each cell of width 1/k
    # contributes (1/k)^3 / 12).
    for k in (1, 2, 7, 64, 1000):
        p = CVTProblem(k)
        z = (2 * np.arange(1, k + 1) - 1) / (2 * k)
        ev = p.evaluate(z)
        assert ev.energy == pytest.approx(1.0 / (12 * k**2), rel=1e-12)
        assert np.max(np.abs(ev.gradient)) < 1e-15
        np.testing.assert_allclose(ev.centroids, z, atol=1e-15)
        np.testing.assert_allclose(ev.masses, 1.0 / k, rtol=1e-12)


def test_uniform_square_2x2_grid() -> None:
    # Four squares of side 1/2: each contributes a^4 / 6 = 1/96 about its centre, E = 1/24.
    p = CVTProblem(4, "uniform", "unit-square")
    z = np.array([[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]])
    ev = p.evaluate(z)
    assert ev.energy == pytest.approx(1.0 / 24.0, rel=1e-13)
    assert np.max(np.abs(ev.gradient)) < 1e-15


def test_linear_density_1d_closed_form() -> None:
    # One generator, rho = (1 + 3x) / 2.5 on [0, 1]: centroid int x rho = (1/2 + 1) / 2.5 = 0.6 and
    # E(z) = int (x - z)^2 rho dx from the moments 1, 0.6 and int x^2 rho = (1/3 + 3/4) / 2.5 = 13/30.
    p = CVTProblem(1, "linear")
    z = np.array([0.3])
    ev = p.evaluate(z)
    assert ev.centroids[0] == pytest.approx(0.6, rel=1e-14)
    assert ev.energy == pytest.approx(13 / 30 - 2 * 0.3 * 0.6 + 0.09, rel=1e-13)


@pytest.mark.parametrize("density", ["uniform", "linear", "exponential", "gaussian"])
@pytest.mark.parametrize("domain", [(0.0, 1.0), (-1.0, 3.0), "unit-square", QUAD])
def test_named_densities_have_unit_mass(density: str, domain) -> None:
    p = CVTProblem(9, density, domain)
    ev = p.evaluate(p.random_generators(0))
    assert ev.masses.sum() == pytest.approx(1.0, rel=1e-12)
    assert np.all(ev.masses > 0)


def _fd_gradient(p: CVTProblem, z: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    flat = z.ravel()
    out = np.empty_like(flat)
    for i in range(flat.size):
        e = np.zeros_like(flat)
        e[i] = eps
        out[i] = (p.energy((flat + e).reshape(z.shape)) - p.energy((flat - e).reshape(z.shape))) / (2 * eps)
    return out.reshape(z.shape)


@pytest.mark.parametrize("density", ["uniform", "linear", "exponential", "gaussian"])
@pytest.mark.parametrize("domain", [(0.0, 1.0), "unit-square", QUAD])
def test_gradient_matches_finite_differences(density: str, domain) -> None:
    # Central differences of the energy (error O(eps^2) ~ 1e-12 relative) against 2 m (z - c).
    p = CVTProblem(7, density, domain)
    z = p.random_generators(5)
    g = p.gradient(z)
    fd = _fd_gradient(p, z)
    assert np.max(np.abs(g - fd)) <= 1e-7 * np.max(np.abs(g))


@pytest.mark.parametrize("domain", [(0.0, 1.0), "unit-square", QUAD])
def test_hessian_matches_finite_differences_of_gradient(domain) -> None:
    p = CVTProblem(6, "gaussian", domain)
    z = p.random_generators(2)
    h = p.hessian(z).toarray()
    flat, eps = z.ravel(), 1e-6
    fd = np.empty_like(h)
    for i in range(flat.size):
        e = np.zeros_like(flat)
        e[i] = eps
        fd[:, i] = (p.gradient((flat + e).reshape(z.shape)).ravel() - p.gradient((flat - e).reshape(z.shape)).ravel()) / (2 * eps)
    assert np.max(np.abs(h - fd)) <= 1e-6 * np.max(np.abs(h))
    np.testing.assert_allclose(h, h.T, atol=1e-14 * np.max(np.abs(h)))


def test_2d_cells_match_scipy_voronoi_with_mirror_points() -> None:
    # Independent construction: Qhull's Voronoi diagram of the generators and their mirror
    # images in the four sides of the unit square; the original points' regions are exactly the
    # clipped cells, so their areas (shoelace) must equal the uniform-density masses.
    rng = np.random.default_rng(3)
    z = rng.random((40, 2))
    mirrors = [z, z * [-1, 1], z * [1, -1], np.c_[2 - z[:, 0], z[:, 1]], np.c_[z[:, 0], 2 - z[:, 1]]]
    vor = Voronoi(np.concatenate(mirrors))
    areas = []
    for i in range(len(z)):
        poly = vor.vertices[vor.regions[vor.point_region[i]]]
        c = poly.mean(axis=0)
        poly = poly[np.argsort(np.arctan2(poly[:, 1] - c[1], poly[:, 0] - c[0]))]
        q = np.roll(poly, -1, axis=0)
        areas.append(0.5 * np.sum(poly[:, 0] * q[:, 1] - q[:, 0] * poly[:, 1]))
    p = CVTProblem(40, "uniform", "unit-square")
    np.testing.assert_allclose(p.evaluate(z).masses, areas, rtol=1e-10, atol=1e-13)


def test_1d_cells_are_midpoints_in_any_order() -> None:
    p = CVTProblem(4, "uniform", (0.0, 2.0))
    z = np.array([1.5, 0.1, 0.9, 0.5])
    lo, hi = p.cells(z)
    np.testing.assert_allclose(lo, [1.2, 0.0, 0.7, 0.3])
    np.testing.assert_allclose(hi, [2.0, 0.3, 1.2, 0.7])
    # Permuting the generators permutes the gradient.
    g = p.gradient(z)
    order = np.argsort(z)
    np.testing.assert_allclose(p.gradient(z[order]), g[order], rtol=1e-14)


def test_repeated_and_boundary_generators_are_counted_once() -> None:
    # A generator repeated (lowest index owns the cell) or sitting on a corner: masses still
    # partition the unit mass; the repeat has an empty cell, zero gradient, centroid at itself.
    p = CVTProblem(5, "linear", "unit-square")
    z = np.array([[0.2, 0.3], [1.0, 1.0], [0.2, 0.3], [0.7, 0.0], [0.5, 0.6]])
    ev = p.evaluate(z)
    assert ev.masses.sum() == pytest.approx(1.0, rel=1e-12)
    assert ev.masses[2] == 0.0 and ev.masses[0] > 0
    np.testing.assert_array_equal(ev.gradient[2], [0.0, 0.0])
    np.testing.assert_array_equal(ev.centroids[2], z[2])
    p1 = CVTProblem(3)
    ev1 = p1.evaluate(np.array([0.4, 0.4, 0.9]))
    assert ev1.masses.sum() == pytest.approx(1.0, rel=1e-14)


def test_triangle_rule_is_exact_to_degree_8() -> None:
    # Monomials on the reference triangle: int x^i y^j = i! j! / (i + j + 2)!.
    for level in (0, 1):
        bary, w = triangle_rule(level)
        x, y = bary[:, 1], bary[:, 2]
        for i in range(9):
            for j in range(9 - i):
                exact = math.factorial(i) * math.factorial(j) / math.factorial(i + j + 2)
                assert 0.5 * np.sum(w * x**i * y**j) == pytest.approx(exact, rel=1e-12), (level, i, j)
    nodes, weights = gauss_legendre01(6)
    assert np.sum(weights * nodes**11) == pytest.approx(1.0 / 12.0, rel=1e-14)


def test_quadrature_converged_for_nonlinear_densities() -> None:
    # Refining the quadrature 64x must not change energy or gradient beyond ~1e-12 / 1e-10
    # (1-D: rounding level; 2-D: the degree-8 rule on pieces no larger than the length scale).
    for domain in ((0.0, 1.0), "unit-square"):
        p = CVTProblem(12, "gaussian", domain)
        d = p.density
        fine = CVTProblem(12, Density(d.fn, d.dim, "fine", d.length_scale / 64), domain)
        z = p.random_generators(1)
        a, b = p.evaluate(z), fine.evaluate(z)
        assert a.energy == pytest.approx(b.energy, rel=1e-11)
        np.testing.assert_allclose(a.gradient, b.gradient, atol=1e-10 * np.abs(b.gradient).max())


def test_user_callable_density() -> None:
    p = CVTProblem(3, lambda x: 2.0 * x, (0.0, 1.0))  # rho = 2x, total mass 1
    ev = p.evaluate(np.array([0.2, 0.5, 0.8]))
    assert ev.masses.sum() == pytest.approx(1.0, rel=1e-13)
    # Cell [0.35, 0.65] has mass 0.65^2 - 0.35^2 = 0.3.
    assert ev.masses[1] == pytest.approx(0.3, rel=1e-13)
    q = CVTProblem(3, lambda x: 1.0 + x[:, 0], "unit-square")
    assert q.evaluate(q.random_generators(0)).masses.sum() == pytest.approx(1.5, rel=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"k": 0}, ValueError, "k=0"),
        ({"k": 2.5}, TypeError, "k=2.5"),
        ({"k": 3, "density": "cauchy"}, ValueError, "density='cauchy'"),
        ({"k": 3, "density": 3}, TypeError, "density=3"),
        ({"k": 3, "density": lambda x: -x}, ValueError, "negative"),
        ({"k": 3, "density": lambda x: 1.0}, ValueError, "shape"),
        ({"k": 3, "density": lambda x: x[:, 5]}, TypeError, "failed"),
        ({"k": 3, "domain": (1.0, 0.0)}, ValueError, "lo < hi"),
        ({"k": 3, "domain": "unit-disc"}, ValueError, "unit-square"),
        ({"k": 3, "domain": [(0, 0), (1, 0), (0.2, 0.2), (0, 1)]}, ValueError, "not convex"),
        ({"k": 3, "domain": [(0, 0), (1, 1), (2, 2)]}, ValueError, "zero area"),
    ],
)
def test_bad_problem_arguments(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        CVTProblem(**kwargs)


def test_bad_generators() -> None:
    p = CVTProblem(3, "uniform", "unit-square")
    with pytest.raises(ValueError, match=r"shape \(3,\).*expected \(3, 2\)"):
        p.energy(np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        p.gradient(np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match="1-D"):
        CVTProblem(3).cell_polygons(np.zeros(3))


@pytest.mark.parametrize("degree", [2, 4])
def test_low_degree_triangle_rules_are_exact(degree: int) -> None:
    # Exact monomial integrals on the reference triangle: int x^a y^b = a! b! / (a + b + 2)!.
    bary, w = triangle_rule(0, degree)
    x, y = bary[:, 1], bary[:, 2]
    for a in range(degree + 1):
        for b in range(degree + 1 - a):
            exact = math.factorial(a) * math.factorial(b) / math.factorial(a + b + 2)
            assert 0.5 * np.sum(w * x**a * y**b) == pytest.approx(exact, rel=1e-13, abs=1e-16)
    assert np.all(w > 0) and np.all(bary > 0)  # positive weights, interior points


@pytest.mark.parametrize(("density", "domain"), [("linear", "unit-square"),
                                                 ("gaussian", [(0, 0), (2, 0), (1.5, 1), (0.2, 1.2)])])
def test_delaunay_cells_agree_with_clipping_every_cell(density, domain) -> None:
    # The fast path (circumcentres of the Delaunay fan for interior cells) against the reference
    # path that clips the domain polygon by every neighbour's half-plane, for all cells.
    from quant_envs.cvt import cells2d

    p = CVTProblem(300, density, domain)
    z = p.random_generators(3)
    fast = cells2d.clip_cells(z, p.domain)
    slow = cells2d._clipped_cells(fast.points, fast.owner, cells2d.neighbour_pairs(fast.points), p.domain,
                                  np.arange(len(fast.points)))
    a, b = cells2d.cell_integrals(fast, p.density), cells2d.cell_integrals(slow, p.density)
    # Same polygons, but their vertices start at different corners, so the fan triangles (and,
    # for the non-polynomial density, the quadrature error) differ: ~1e-8 for these random,
    # large cells; the polynomial density agrees to rounding.
    rtol = 1e-12 if density == "linear" else 1e-6
    np.testing.assert_allclose(a.mass, b.mass, rtol=rtol, atol=1e-15)
    np.testing.assert_allclose(a.first, b.first, rtol=rtol, atol=rtol * np.abs(b.first).max())
    ha, hb = cells2d.hessian_2d(fast, a, p.density, 300), cells2d.hessian_2d(slow, b, p.density, 300)
    assert abs(ha - hb).max() <= rtol * abs(hb).max()
    assert np.sum(fast.count > 0) == 300


def test_polynomial_density_quadrature_matches_the_degree_8_rule() -> None:
    # The linear 2-D density uses the degree-4 rule; dropping its degree forces the degree-8 one.
    from quant_envs.cvt.density import Density

    p = CVTProblem(50, "linear", "unit-square")
    z = p.random_generators(0)
    ev = p.evaluate(z)
    d8 = Density(p.density.fn, 2, "linear-as-callable")  # degree None: degree-8 rule
    ev8 = CVTProblem(50, d8, "unit-square").evaluate(z)
    assert ev.energy == pytest.approx(ev8.energy, rel=1e-13)
    np.testing.assert_allclose(ev.gradient, ev8.gradient, rtol=1e-11, atol=1e-17)


@pytest.mark.parametrize(("domain", "error", "match"), [
    ((0, 1e-300), ValueError, r"domain=\(0\.0, 1e-300\).*extent"),
    ((0, 1e101), ValueError, "extent"),
    ((1e12, 1e12 + 1e-4), ValueError, "largest coordinate"),
    (("0", 1), TypeError, "domain\\[0\\]='0'"),
    ([(0, 0), (1e-120, 0), (0, 1e-120)], ValueError, "extent"),
])
def test_domains_that_cannot_be_computed_on_are_rejected(domain, error, match) -> None:
    with pytest.raises(error, match=match):
        CVTProblem(4, "uniform", domain)
