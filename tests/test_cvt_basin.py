"""baselines.cvt.basin: MG/Opt's local rate in 2-D, apart from the nonconvex phase."""

from __future__ import annotations

import numpy as np
import pytest

from baselines.cvt import solve
from baselines.cvt.basin import basin_run, perturb, spacing, truncated_newton
from quant_envs.cvt import CVTProblem


@pytest.fixture(scope="module")
def cvt_2d() -> dict[int, tuple[CVTProblem, np.ndarray]]:
    out = {}
    for k in (64, 256):
        problem = CVTProblem(k, "linear", "unit-square")
        res = solve(problem, "multigrid", tol=1e-10, seed=0, max_iter=100)
        assert res.converged, res.message
        out[k] = (problem, res.generators)
    return out


def test_perturb_moves_by_the_amplitude_inside_the_domain_and_repeats_by_seed() -> None:
    problem = CVTProblem(100, "uniform", "unit-square")
    z = problem.random_generators(0)
    z1 = perturb(problem, z, 0.05, seed=3)
    # smooth part and noise are each at most 1 in every coordinate: |dz| <= 2 amplitude spacings per axis
    assert np.max(np.abs(z1 - z)) <= 2 * 0.05 * spacing(problem) + 1e-15
    assert np.max(np.abs(z1 - z)) > 0.5 * 0.05 * spacing(problem)
    assert np.all(problem.domain.contains(z1))
    np.testing.assert_array_equal(z1, perturb(problem, z, 0.05, seed=3))
    assert not np.array_equal(z1, perturb(problem, z, 0.05, seed=4))
    assert spacing(problem) == pytest.approx(0.1)  # unit square, k = 100


def test_bad_amplitude_is_a_clear_error() -> None:
    problem = CVTProblem(16, "uniform", "unit-square")
    with pytest.raises(ValueError, match="amplitude"):
        perturb(problem, problem.random_generators(0), -0.1)


def test_truncated_newton_converges_to_the_multigrid_cvt_in_1d() -> None:
    # 1-D "linear" has a unique CVT (log-concave density), so both must end at the same point.
    problem = CVTProblem(32, "linear")
    z0 = problem.random_generators(1)
    tn = truncated_newton(problem, z0, tol=1e-9)
    mg = solve(problem, "multigrid", tol=1e-9, z0=z0)
    assert tn.converged and tn.status == 0 and tn.method == "truncated-newton"
    assert tn.rel_grad_norm <= 1e-9
    np.testing.assert_allclose(tn.generators, mg.generators, atol=1e-7)
    assert tn.cpu_time_s > 0.0


def test_v_cycles_return_to_the_cvt_in_a_few_cycles_at_every_k(cvt_2d) -> None:
    # Measured this session (seed 0, 2 % of the spacing): 2 V-cycles at k = 64 and 256 (and 2, 2, 2, 3
    # linear / 2, 2, 2, 4 Gaussian over k = 64..4096), against 5 and 5 truncated-Newton iterations.
    cycles = {}
    for k, (problem, z_star) in cvt_2d.items():
        run = basin_run(problem, z_star, amplitude=0.02, seed=0)
        assert run.multigrid.converged and run.newton.converged
        assert run.stayed, f"k = {k}: ended {run.returned:.2e} spacings from z*"
        # both solvers end at the same minimum: energies equal to rounding
        assert run.newton.energy == pytest.approx(run.multigrid.energy, rel=1e-10)
        cycles[k] = run.multigrid.iterations
        assert run.multigrid.iterations <= 3
        assert run.newton.iterations > run.multigrid.iterations
    assert max(cycles.values()) - min(cycles.values()) <= 1


def test_a_run_that_leaves_the_basin_is_reported(cvt_2d) -> None:
    # Half a spacing of noise moves the generators into other Voronoi neighbourhoods: the solve
    # ends at another CVT, and ``returned`` / ``stayed`` say so instead of counting it as local.
    problem, z_star = cvt_2d[64]
    run = basin_run(problem, z_star, amplitude=0.5, seed=0)
    assert run.returned > 1e-3 and not run.stayed

