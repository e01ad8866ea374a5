"""Quantized FEEL solvers: feasibility, AO monotonicity, AO against brute force, bad input."""

from __future__ import annotations

import inspect
import pickle

import numpy as np
import pytest

from baselines.feel import METHODS, SOLVERS, FeelSolveResult, brute_force_grid, solve
from baselines.result import SolveResult, UnknownOptionError
from quant_envs.feel import FULL_PRECISION, make_scenario, total_time
from quant_envs.feel.bandwidth import min_max_bandwidth

ALL = [("ao", {}), ("equal_bandwidth", {}), ("fixed_levels", {"fixed": "sign"}), ("fixed_levels", {"fixed": "8bit"}),
       ("fixed_levels", {"fixed": "full"}), ("fixed_levels", {"fixed": 5})]


@pytest.mark.parametrize("num_devices, seed, bandwidth", [(5, 0, 50e3), (30, 1, 1e6)])
def test_every_solution_is_feasible(num_devices, seed, bandwidth) -> None:
    sc = make_scenario(num_devices, seed=seed, total_bandwidth=bandwidth)
    for method, kw in ALL:
        r = solve(sc, method, **kw)
        assert r.bandwidth.shape == (num_devices,) and np.all(r.bandwidth > 0)
        assert r.bandwidth.sum() <= sc.total_bandwidth * (1 + 1e-12)
        ok = ((r.levels >= 1) & (r.levels <= sc.max_levels)) | (r.levels == FULL_PRECISION)
        assert np.all(ok) and r.levels.dtype == np.int64
        # The reported objective is the model's objective at the reported answer.
        assert r.total_time == pytest.approx(total_time(sc, r.levels, r.bandwidth), rel=1e-12)
        assert r.total_time == pytest.approx(r.rounds * r.round_latency, rel=1e-12)
        assert r.wall_time_s >= 0 and r.evaluations >= 1


def test_fixed_levels_presets_and_equal_bandwidth() -> None:
    sc = make_scenario(6, seed=2)
    assert np.all(solve(sc, "fixed_levels", fixed="sign").levels == 1)
    assert np.all(solve(sc, "fixed_levels", fixed="8bit").levels == 127)
    assert np.all(solve(sc, "fixed_levels", fixed="full").levels == FULL_PRECISION)
    np.testing.assert_allclose(solve(sc, "equal_bandwidth").bandwidth, sc.total_bandwidth / 6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ao_never_worse_than_start_and_baselines(seed: int) -> None:
    sc = make_scenario(12, seed=seed, total_bandwidth=[30e3, 200e3, 2e6][seed])
    r = solve(sc, "ao")
    assert r.start_time is not None and r.total_time <= r.start_time
    assert list(r.history) == sorted(r.history, reverse=True)  # monotone over iterations
    # AO's levels step covers the fixed-level and equal-bandwidth points, so it never loses to them.
    for method, kw in ALL[1:]:
        assert r.total_time <= solve(sc, method, **kw).total_time * (1 + 1e-9)
    eq = solve(sc, "equal_bandwidth")
    assert eq.total_time <= eq.start_time


# (K, max_levels, seed, bandwidth): the brute-force grid is every integer 1..max_levels, so it
# is the exact optimum over integer levels (each candidate with its exact optimal bandwidth).
SMALL = [(2, 63, 1, 20e3), (3, 20, 3, 20e3), (2, 63, 4, 200e3)]
SMALL_SLOW = [(2, 255, s, b) for s in range(6) for b in (20e3, 200e3, 2e6)] + [(3, 40, s, 20e3) for s in range(6)]


def _ao_vs_brute(k: int, smax: int, seed: int, bandwidth: float) -> None:
    sc = make_scenario(k, seed=seed, total_bandwidth=bandwidth, max_levels=smax)
    assert len(brute_force_grid(sc, 200_000)) == smax  # exhaustive
    bf = solve(sc, "brute_force")
    ao = solve(sc, "ao")
    assert bf.total_time <= ao.total_time * (1 + 1e-9)  # ground truth is never beaten
    assert ao.total_time <= 1.01 * bf.total_time


@pytest.mark.parametrize("k, smax, seed, bandwidth", SMALL)
def test_ao_within_one_percent_of_brute_force(k, smax, seed, bandwidth) -> None:
    _ao_vs_brute(k, smax, seed, bandwidth)


@pytest.mark.slow
@pytest.mark.parametrize("k, smax, seed, bandwidth", SMALL_SLOW)
def test_ao_within_one_percent_of_brute_force_many(k, smax, seed, bandwidth) -> None:
    _ao_vs_brute(k, smax, seed, bandwidth)


def test_brute_force_batch_matches_single_evaluation() -> None:
    # The batched bisection used by brute force agrees with one-at-a-time evaluation.
    sc = make_scenario(3, seed=5, max_levels=15)
    lv = np.array([[1, 2, 3], [15, 15, 15], [7, 1, 4]])
    batch = min_max_bandwidth(sc, lv)
    for i in range(3):
        single = min_max_bandwidth(sc, lv[i])
        assert batch.latency[i] == pytest.approx(float(single.latency), rel=1e-9)


def test_solver_bad_input() -> None:
    sc = make_scenario(4, seed=0)
    with pytest.raises(ValueError, match="method"):
        solve(sc, "genetic")
    with pytest.raises(ValueError, match="fixed"):
        solve(sc, "fixed_levels", fixed="4bit")
    with pytest.raises(ValueError, match="fixed"):
        solve(sc, "fixed_levels", fixed=1000)
    with pytest.raises(TypeError, match="scenario"):
        solve("not a scenario", "ao")
    with pytest.raises(ValueError, match="brute_force"):
        solve(make_scenario(12, seed=0), "brute_force", max_combinations=1000)
    assert set(METHODS) == {"ao", "equal_bandwidth", "fixed_levels", "brute_force"}


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"tol": -1}, ValueError, r"tol=-1\.0 is not allowed; expected a number >= 0\.0 and < 1\.0"),
        ({"tol": 1.0}, ValueError, r"tol=1\.0 is not allowed"),
        ({"tol": float("nan")}, ValueError, r"tol=nan .*finite"),
        ({"tol": "x"}, TypeError, r"tol='x' must be a number"),
        ({"max_iter": 0}, ValueError, r"max_iter=0 is not allowed"),
        ({"max_iter": 2.5}, TypeError, r"max_iter=2\.5 must be an integer"),
        ({"max_combinations": -5}, ValueError, r"max_combinations=-5 is not allowed"),
        ({"max_combinations": "many"}, TypeError, r"max_combinations='many' must be an integer"),
        ({"multistart": "yes"}, ValueError, r"multistart='yes' is not allowed; expected one of: True, False"),
    ],
)
@pytest.mark.parametrize("method", ["ao", "fixed_levels"])
def test_solver_options_checked_by_name(method, kwargs, error, match) -> None:
    # Every option's value is checked by name up front, even one the method does not take (tol for
    # fixed_levels, which a valid value would then be refused as, see the UnknownOptionError test).
    with pytest.raises(error, match=match):
        solve(make_scenario(3, seed=0), method, **kwargs)


def test_solver_tol_zero_runs_to_no_gain() -> None:
    # tol = 0 is allowed: AO stops only when an iteration brings no gain at all, so it is never
    # worse than the default tolerance's answer from the same starts.
    sc = make_scenario(4, seed=1)
    exact, default = solve(sc, "ao", tol=0.0), solve(sc, "ao")
    assert exact.total_time <= default.total_time * (1 + 1e-12)


def test_result_is_a_solve_result_with_the_old_names_as_aliases() -> None:
    sc = make_scenario(5, seed=0)
    for method, kw in ALL + [("brute_force", {"max_combinations": 500})]:
        r = solve(sc, method, **kw)
        assert isinstance(r, FeelSolveResult) and isinstance(r, SolveResult)
        assert r.levels is r.x and r.total_time == r.fun and r.iterations == r.nit
        assert r.evaluations == r.nfev and r.converged is r.success
        assert r.status == (0 if r.success else 1) and r.message
        assert r.objective == "total training time (s), minimised"
        for extra in ("bandwidth", "rounds", "round_latency", "bisections", "sca_iterations", "start_time", "history"):
            assert extra in r, (method, extra)
    assert solve(sc, "fixed_levels").method == "fixed_levels[8bit]"  # the default preset
    assert solve(sc, "brute_force", max_combinations=500).start_time is None
    text = str(solve(sc, "ao"))
    assert text.startswith("FeelSolveResult(") and "fun:" in text and "bandwidth:" in text


@pytest.mark.parametrize("method", ["ao", "equal_bandwidth"])
def test_status_is_one_when_max_iter_stops_ao(method: str) -> None:
    sc = make_scenario(6, seed=0)
    capped = solve(sc, method, max_iter=1, tol=0.0)
    assert capped.status == 1 and capped.success is False and capped.converged is False
    assert capped.message == "did not converge within max_iter=1 AO iterations"
    full = solve(sc, method)
    assert full.status == 0 and full.success is True and full.message.startswith("converged")
    assert full.total_time <= capped.total_time * (1 + 1e-12)


@pytest.mark.parametrize(
    ("method", "kwargs", "match"),
    [
        ("fixed_levels", {"tol": 0.5}, r"method='fixed_levels' takes only 'fixed'; got unknown option\(s\) 'tol'"),
        ("brute_force", {"fixed": "sign"}, r"takes only 'max_combinations'; got unknown option\(s\) 'fixed'"),
        ("ao", {"fixed": 3, "speed": 2}, r"takes only 'max_iter', 'multistart', 'tol'; .* 'fixed', 'speed'"),
        ("equal_bandwidth", {"multistart": False}, r"takes only 'max_iter', 'tol'; .* 'multistart'"),
    ],
)
def test_unknown_option_names_the_methods_options(method, kwargs, match) -> None:
    with pytest.raises(UnknownOptionError, match=match):
        solve(make_scenario(3, seed=0), method, **kwargs)


def test_result_pickles_by_value() -> None:
    r = solve(make_scenario(4, seed=3), "ao")
    back = pickle.loads(pickle.dumps(r))
    assert type(back) is FeelSolveResult and set(back) == set(r)
    np.testing.assert_array_equal(back.levels, r.levels)
    np.testing.assert_array_equal(back.bandwidth, r.bandwidth)
    assert (back.total_time, back.history, back.start_time, back.message) == (r.total_time, r.history, r.start_time,
                                                                                r.message)


def test_registry_lists_every_method_and_its_options() -> None:
    assert METHODS == tuple(SOLVERS) == ("ao", "equal_bandwidth", "fixed_levels", "brute_force")
    for method, solver in SOLVERS.items():
        # the registry's options are exactly the runner's keyword arguments (their defaults live there)
        params = inspect.signature(solver.run).parameters
        assert set(solver.options) == {n for n, p in params.items() if p.kind is p.KEYWORD_ONLY}, method
