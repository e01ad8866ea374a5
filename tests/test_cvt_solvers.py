"""CVT solvers: exact and asymptotic values, agreement, monotonicity, multigrid scaling, errors."""

from __future__ import annotations

import dataclasses
import functools
import pickle

import numpy as np
import pytest

from baselines.cvt import SOLVERS, CVTResult, MGOptions, solve, solvers
from baselines.result import SolveResult, UnknownOptionError
from quant_envs.cvt import CVTProblem

HEXAGON_G = 5.0 / (36.0 * np.sqrt(3.0))  # 0.0801875..., Conway & Sloane, ch. 21 (regular hexagon)
METHODS = ("lloyd", "lbfgs", "multigrid")


@pytest.mark.parametrize("method", METHODS)
def test_every_method_finds_the_exact_uniform_1d_cvt(method: str) -> None:
    # Exact solution z_i = (2i - 1) / (2k), E = 1 / (12 k^2).
    k = 16
    res = solve(CVTProblem(k), method, tol=1e-8, seed=1)
    assert res.converged, res.message
    # Position error ~ gradient / smallest Hessian eigenvalue (~ 1/k^3): 1e-6 is ample.
    np.testing.assert_allclose(res.generators, (2 * np.arange(1, k + 1) - 1) / (2 * k), atol=1e-6)
    assert res.energy == pytest.approx(1.0 / (12 * k**2), rel=1e-12)
    assert res.grad_norms[-1] <= 1e-8 * res.grad_norms[0]
    assert res.work >= res.iterations >= 1 and res.wall_time_s > 0


@pytest.mark.parametrize(("density", "domain", "k"), [("linear", (0.0, 1.0), 60), ("gaussian", (0.0, 1.0), 60),
                                                      ("exponential", "unit-square", 40)])
def test_lloyd_never_increases_the_energy(density: str, domain, k: int) -> None:
    res = solve(CVTProblem(k, density, domain), "lloyd", tol=0.0, max_iter=150, seed=2)
    assert len(res.energies) == 151
    assert np.all(np.diff(res.energies) <= 1e-14 * res.energies[0])
    assert res.energies[-1] < res.energies[0]


@pytest.mark.parametrize("density", ["linear", "exponential"])
def test_all_solvers_agree_on_the_1d_minimiser(density: str) -> None:
    # Log-concave densities have a unique 1-D CVT (Fleischer 1964; Trushkin 1982), so all three
    # methods, from the same start, must reach the same generators.
    problem = CVTProblem(40, density)
    results = [solve(problem, m, tol=1e-8, seed=3) for m in METHODS]
    for r in results:
        assert r.converged, (r.method, r.message)
    for r in results[1:]:
        np.testing.assert_allclose(r.generators, results[0].generators, atol=2e-6)
        assert r.energy == pytest.approx(results[0].energy, rel=1e-12)


def test_all_solvers_agree_in_2d() -> None:
    # From a perturbed 2 x 2 grid every method must return to the grid, the CVT of four points in
    # the uniform square (energy 1/24).
    grid = np.array([[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]])
    z0 = grid + np.random.default_rng(0).uniform(-0.05, 0.05, grid.shape)
    problem = CVTProblem(4, "uniform", "unit-square")
    for m in METHODS:
        res = solve(problem, m, tol=1e-9, z0=z0)
        assert res.converged, (m, res.message)
        rounded = np.round(res.generators, 6)
        order = np.lexsort((rounded[:, 0], rounded[:, 1]))
        np.testing.assert_allclose(res.generators[order], grid, atol=1e-8)
        assert res.energy == pytest.approx(1.0 / 24.0, rel=1e-12)


def test_1d_cvt_follows_the_asymptotic_theory() -> None:
    # Bennett / Panter-Dite: the optimal point density is rho^(1/3) / int rho^(1/3) and
    # k^2 E -> (int rho^(1/3))^3 / 12. For rho = (1 + 3x) / 2.5 on [0, 1],
    # int rho^(1/3) = 2.5^(-1/3) (4^(4/3) - 1) / 4.
    k = 512
    res = solve(CVTProblem(k, "linear"), "multigrid", tol=1e-10, seed=0)
    assert res.converged
    integral = 2.5 ** (-1 / 3) * (4 ** (4 / 3) - 1) / 4
    assert k**2 * res.energy == pytest.approx(integral**3 / 12, rel=2e-4)
    z = res.generators
    mid = 0.5 * (z[1:] + z[:-1])
    point_density = 1.0 / (k * np.diff(z))
    predicted = ((1 + 3 * mid) / 2.5) ** (1 / 3) / integral
    np.testing.assert_allclose(point_density[5:-5], predicted[5:-5], rtol=5e-3)


def test_multigrid_cycles_do_not_grow_with_k() -> None:
    cycles = {}
    for k in (64, 512, 4096):
        res = solve(CVTProblem(k, "linear"), "multigrid", tol=1e-8, seed=0)
        assert res.converged
        cycles[k] = res.iterations
    assert max(cycles.values()) <= 10
    assert max(cycles.values()) - min(cycles.values()) <= 2, cycles


def test_multigrid_beats_lloyd_by_far_in_1d() -> None:
    # k = 256: Lloyd needs ~1e5 passes (rate 1 - O(1/k^2)); cap it and compare with MG's total.
    problem = CVTProblem(256, "linear")
    mg = solve(problem, "multigrid", tol=1e-8, seed=0)
    lloyd = solve(problem, "lloyd", tol=1e-8, seed=0, max_iter=3000)
    assert mg.converged and not lloyd.converged
    assert "did not converge within 3000 iterations" in lloyd.message
    assert lloyd.work / (mg.work + mg.coarse_work) > 30


@pytest.mark.parametrize(("density", "domain"), [("gaussian", "unit-square"),
                                                 ("exponential", [(0.0, 0.0), (2.0, 0.0), (1.5, 1.0), (0.2, 1.2)])])
def test_2d_solvers_converge(density: str, domain) -> None:
    problem = CVTProblem(32, density, domain)
    for m in ("lbfgs", "multigrid"):
        res = solve(problem, m, tol=1e-8, seed=4)
        assert res.converged, (m, res.message)
        ev = problem.evaluate(res.generators)
        assert np.linalg.norm(ev.gradient) <= 1e-8 * res.grad_norms[0]
        assert np.all(problem.domain.contains(res.generators, tol=1e-12))


def test_interior_cells_approach_the_regular_hexagon() -> None:
    # Gersho's conjecture (a theorem in 2-D, Fejes Toth): CVT cells far from the boundary tend
    # to regular hexagons, whose normalised second moment is 5 / (36 sqrt 3) = 0.080188; a square
    # cell has 1/12 = 0.0833 (3.9 % more). From a random start a CVT keeps a few pentagon-heptagon
    # defects, which leave the mean a little above the hexagon (we measured +0.7 % at k = 300 and
    # 600 with both L-BFGS and multigrid).
    problem = CVTProblem(300, "uniform", "unit-square")
    res = solve(problem, "multigrid", tol=1e-7, seed=0)
    assert res.converged
    g, boundary = problem.normalized_second_moments(res.generators)
    interior = g[~boundary]
    assert len(interior) > 200
    assert np.mean(interior) == pytest.approx(HEXAGON_G, rel=1.2e-2)
    assert np.median(interior) == pytest.approx(HEXAGON_G, rel=7e-3)
    assert np.mean(interior) < 0.99 / 12.0
    cells = problem.cells(res.generators)
    sides = cells.count[cells.owner[~boundary]]
    assert np.mean(sides == 6) > 0.75


def test_result_and_options() -> None:
    problem = CVTProblem(32, "linear")
    z0 = problem.random_generators(7)
    res = solve(problem, "multigrid", tol=1e-6, z0=z0, nu1=2, nu2=2, max_cg=5)
    assert res.converged and res.method == "multigrid"
    assert res.grad_norms[0] == pytest.approx(np.linalg.norm(problem.gradient(z0)), rel=1e-14)
    assert len(res.grad_norms) == res.iterations + 1 == len(res.work_history)
    assert res.coarse_work > 0 and res.total_work == res.work + res.coarse_work
    assert problem.n_evaluations == 1  # the solver counted on its own copy
    capped = solve(problem, "lbfgs", tol=1e-12, z0=z0, max_iter=5)
    assert not capped.converged and "within 5 iterations" in capped.message and capped.iterations == 5


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (("newton",), {}, ValueError, "method='newton'"),
        (("lloyd",), {"tol": -1.0}, ValueError, "tol=-1.0"),
        (("lloyd",), {"max_iter": -3}, ValueError, "max_iter=-3"),
        (("lloyd",), {"z0": np.zeros(3)}, ValueError, r"z0 has shape \(3,\)"),
        (("lloyd",), {"memory": 3}, TypeError, "takes no options"),
        (("lbfgs",), {"nu1": 3}, TypeError, "memory"),
        (("multigrid",), {"nu1": -1}, ValueError, "nu1=-1"),
        (("multigrid",), {"prolongation": "cubic"}, ValueError, "prolongation='cubic'"),
        (("multigrid",), {"smoother": "jacobi"}, ValueError, "smoother='jacobi'"),
        (("multigrid",), {"nested_sweeps": -1}, ValueError, "nested_sweeps=-1"),
        (("multigrid",), {"speed": 3}, TypeError, "speed"),
    ],
)
def test_bad_solver_arguments(args, kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        solve(CVTProblem(8), *args, **kwargs)
    with pytest.raises(TypeError, match="CVTProblem"):
        solve("problem", "lloyd")


def test_mg_options_validate() -> None:
    with pytest.raises(ValueError, match="coarse_start='fine'"):
        MGOptions(coarse_start="fine")


def test_2d_multigrid_nested_and_given_starts() -> None:
    # 2-D default: full-multigrid start (the refined coarse CVT); start="given" cycles from z0.
    # Both must satisfy the same stopping rule relative to ||grad E(z0)||.
    problem = CVTProblem(64, "linear", "unit-square")
    z0 = problem.random_generators(5)
    g0 = np.linalg.norm(problem.gradient(z0))
    for start in ("nested", "given"):
        res = solve(problem, "multigrid", tol=1e-8, z0=z0, start=start)
        assert res.converged, (start, res.message)
        assert res.grad_norms[0] == pytest.approx(g0, rel=1e-14)
        assert np.linalg.norm(problem.gradient(res.generators)) <= 1e-8 * g0
    with pytest.raises(ValueError, match="start='sometimes'"):
        MGOptions(start="sometimes")


def test_nested_refinement_has_k_points_inside_the_domain() -> None:
    from baselines.cvt.multigrid import _refine

    for k in (37, 64, 250):
        problem = CVTProblem(k, "gaussian", [(0, 0), (2, 0), (1.5, 1), (0.2, 1.2)])
        coarse = CVTProblem(max(k // 4, 3), "gaussian", problem.domain).random_generators(0)
        z = _refine(coarse, problem)
        assert z.shape == (k, 2) and np.all(problem.domain.contains(z, tol=1e-12))
        assert len(np.unique(np.round(z, 12), axis=0)) == k  # no repeated generators


def test_result_is_a_solve_result_with_the_old_names_as_aliases() -> None:
    res = solve(CVTProblem(16, "linear"), "lbfgs", tol=1e-8, seed=0)
    assert isinstance(res, CVTResult) and isinstance(res, SolveResult)
    assert res.generators is res.x and res.energy == res.fun and res.iterations == res.nit
    assert res.work == res.nfev and res.converged is res.success is True
    assert res.status == 0 and res.message == "converged" and res.method == "lbfgs"
    assert res.objective == "CVT energy E(z), minimised"
    res.energy = 1.5  # an alias writes the core field
    assert res.fun == 1.5 and "energy" not in res
    for extra in ("grad_norms", "tol", "coarse_work", "energies", "work_history", "cpu_time_s"):
        assert extra in res, extra
    assert res.total_work == res.work + res.coarse_work and res.rel_grad_norm <= 1e-8
    text = str(res)
    assert text.startswith("CVTResult(") and "fun: 1.5" in text and "status: 0" in text


@pytest.mark.parametrize("method", METHODS)
def test_status_says_which_cap_stopped_the_run(method: str) -> None:
    problem = CVTProblem(64, "linear")
    capped = solve(problem, method, tol=1e-14, max_iter=1, seed=0)
    assert capped.status == 1 and capped.success is False and capped.converged is False
    assert capped.message == "did not converge within 1 iterations"
    timed = solve(problem, method, tol=1e-14, max_time_s=1e-9, seed=0)
    assert timed.status == 2 and not timed.success and "did not converge within 1e-09 s" in timed.message


def test_unknown_option_names_the_methods_options() -> None:
    problem = CVTProblem(8)
    with pytest.raises(UnknownOptionError, match=r"method='lloyd' takes no options; got unknown option\(s\) 'memory'"):
        solve(problem, "lloyd", memory=3)
    with pytest.raises(UnknownOptionError, match=r"method='lbfgs' takes only 'memory'; got unknown option\(s\) 'nu1'"):
        solve(problem, "lbfgs", nu1=3)
    with pytest.raises(UnknownOptionError, match=r"'coarsest', .*'nu1', .*got unknown option\(s\) 'speed'"):
        solve(problem, "multigrid", speed=3)


def test_result_pickles_by_value() -> None:
    res = solve(CVTProblem(12, "gaussian", "unit-square"), "multigrid", tol=1e-6, seed=1)
    back = pickle.loads(pickle.dumps(res))
    assert type(back) is CVTResult and set(back) == set(res)
    np.testing.assert_array_equal(back.generators, res.generators)
    np.testing.assert_array_equal(back.grad_norms, res.grad_norms)
    assert (back.energy, back.work, back.cpu_time_s, back.message) == (res.energy, res.work, res.cpu_time_s,
                                                                       res.message)


def test_registry_lists_every_method_and_its_options() -> None:
    assert METHODS == solvers.METHODS == tuple(SOLVERS) == tuple(solvers.DEFAULT_MAX_ITER)
    assert SOLVERS["lloyd"].options == ()
    assert SOLVERS["lbfgs"].options == ("memory",)
    assert SOLVERS["multigrid"].options == tuple(f.name for f in dataclasses.fields(MGOptions))
    assert solvers.DEFAULT_MAX_ITER == {"lloyd": 100_000, "lbfgs": 100_000, "multigrid": 200}


def test_lloyd_step_never_increases_a_shifted_objective() -> None:
    # MG/Opt's coarse objectives are E(z) - <v, z>; the Lloyd step z_i <- c_i + v_i / (2 m_i)
    # minimises a quadratic majorant of it, so it must descend for any shift v.
    from baselines.cvt._core import Objective, lloyd_iteration

    problem = CVTProblem(40, "gaussian", "unit-square")
    rng = np.random.default_rng(3)
    z = problem.random_generators(rng)
    g = problem.gradient(z)
    obj = Objective(problem, 0.05 * np.linalg.norm(g) / np.sqrt(problem.k) * rng.standard_normal(z.shape))
    p = obj.at(z)
    values = [p.f]
    for _ in range(15):
        q = lloyd_iteration(obj, p)
        assert q is not None
        assert q.f <= p.f + 1e-13 * (p.scale + q.scale)
        assert np.all(problem.domain.contains(q.z, tol=1e-12))
        p = q
        values.append(p.f)
    assert values[-1] < values[1] < values[0]


_CYCLES_2D = [(density, k) for density in ("linear", "gaussian") for k in (64, 256)]


@functools.cache
def _cycles_2d() -> dict[tuple[str, int], int]:
    cycles = {}
    for density, k in _CYCLES_2D:
        res = solve(CVTProblem(k, density, "unit-square"), "multigrid", tol=1e-8, seed=0)
        assert res.converged, (density, k, res.message)
        cycles[density, k] = res.iterations
    return cycles


def test_2d_multigrid_cycles_stay_bounded_for_small_k() -> None:
    # Regression guard for what the nested start (Gabriel midpoints, hole filling) + truncated-
    # Newton V-cycles reach (measured 5, 13 linear and 9, 9 Gaussian for k = 64, 256; 9, 16 and
    # 5, 19 with the earlier start): not yet k-independent (benchmarks/bench_cvt.py
    # --only-2d prints the growth).
    cycles = _cycles_2d()
    assert max(cycles.values()) <= 13, cycles


def test_trust_region_smoother_converges_in_2d() -> None:
    # smoother="tr": Steihaug-Toint CG follows negative curvature to the trust-region boundary;
    # it must still reach the tolerance and stay inside the domain.
    problem = CVTProblem(48, "gaussian", "unit-square")
    res = solve(problem, "multigrid", tol=1e-8, seed=2, smoother="tr")
    assert res.converged, res.message
    assert np.linalg.norm(problem.gradient(res.generators)) <= 1e-8 * res.grad_norms[0]
    assert np.all(problem.domain.contains(res.generators, tol=1e-12))
    lbfgs = solve(problem, "lbfgs", tol=1e-8, seed=2)
    assert res.energy == pytest.approx(lbfgs.energy, rel=2e-2)  # local minima differ by < 1 %


def test_steihaug_direction_stops_at_the_trust_region_boundary() -> None:
    import scipy.sparse as sp

    from baselines.cvt._core import steihaug_direction

    # Indefinite H: the step must follow negative curvature to ||d||_M = radius.
    h = sp.csr_array(np.diag([2.0, -1.0]))
    g = np.array([1.0, 0.5])
    d, on_boundary = steihaug_direction(h, g, np.ones(2), 10, 1e-8, radius=3.0)
    assert on_boundary and np.linalg.norm(d) == pytest.approx(3.0, rel=1e-12)
    assert float(g @ d) < 0.0
    # Positive definite H with a large radius: the Newton step itself.
    h = sp.csr_array(np.diag([2.0, 4.0]))
    d, on_boundary = steihaug_direction(h, g, np.ones(2), 10, 1e-12, radius=10.0)
    assert not on_boundary
    np.testing.assert_allclose(d, [-0.5, -0.125], rtol=1e-12)
