"""The spline objective written once (quant_envs.compander.objective), SplineCompander-v1's smooth
penalty, the robustness fixes of the compander environments and the CLI's argument checks."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import quant_envs  # noqa: F401  (registers the ids)
from baselines import compander as comp_cli
from baselines.feel import __main__ as feel_cli
from quant_envs.compander.compressor import OptimalCompressor, compander_mse
from quant_envs.compander.env import (
    ScalarQuantizerEnv,
    SplineCompanderEnv,
    SplineCompanderV1Env,
    _optimal_compander_reference,
    max_scalar_levels,
)
from quant_envs.compander.objective import evaluate_spline, repair_monotone, slope_violation
from quant_envs.compander.quantizer import sqnr_db
from quant_envs.compander.sources import get_source
from quant_envs.compander.spline import fit_spline_compressor


def _scan(penalty: str, degree: int = 2, levels: int = 32):
    src = get_source("laplacian")
    x_max, _ = _optimal_compander_reference(src, levels)
    target = OptimalCompressor(source=src, x_max=x_max)
    u = np.linspace(0.01, 0.99, 393)  # steps of 0.0025 x_max, a tenth of the env's largest move
    evs = [evaluate_spline(src, target, [v * x_max], levels, degree=degree, fit="least_squares", penalty=penalty) for v in u]
    return np.array([e.sqnr_db for e in evs]), np.array([e.monotone for e in evs])


def test_smooth_penalty_has_no_cliff_and_never_beats_the_feasible_best() -> None:
    smooth, mono = _scan("smooth")
    cliff, mono_c = _scan("cliff")
    np.testing.assert_array_equal(mono, mono_c)
    assert 0.2 < mono.mean() < 0.9  # the scan crosses the feasibility boundary (28% feasible here)
    np.testing.assert_array_equal(smooth[mono], cliff[mono])  # increasing splines: both rules agree
    # v0's cliff: about 23 dB between neighbouring thresholds; measured max jump 0.72 dB smooth.
    assert np.max(np.abs(np.diff(cliff))) > 20.0
    assert np.max(np.abs(np.diff(smooth))) < 1.0
    assert smooth[~mono].max() < smooth[mono].max()  # the penalty keeps infeasible designs behind


def test_monotone_spline_scored_by_its_own_compander_and_repair_is_increasing() -> None:
    src = get_source("gaussian")
    x_max, _ = _optimal_compander_reference(src, 16)
    target = OptimalCompressor(source=src, x_max=x_max)
    t = np.array([0.3, 0.6]) * x_max
    ev = evaluate_spline(src, target, t, 16, degree=2, fit="interpolating", penalty="smooth")
    # Independent: fit and score directly with the model's functions.
    spline = fit_spline_compressor(target, t, degree=2, fit="interpolating")
    assert ev.monotone and ev.penalty_db == 0.0 and ev.violation == 0.0
    assert ev.sqnr_db == pytest.approx(sqnr_db(compander_mse(src, spline, 16)), abs=1e-12)
    rng = np.random.default_rng(0)
    seen_bad = 0
    for _ in range(30):
        u = np.sort(rng.uniform(0.02, 0.98, 3))
        s = fit_spline_compressor(target, u * x_max, degree=2, fit="least_squares")
        assert (slope_violation(s) > 0) == (not s.is_monotone) or slope_violation(s) < 1e-10
        r = repair_monotone(s)
        assert r.is_monotone
        seen_bad += not s.is_monotone
    assert seen_bad > 0  # the check above met non-increasing splines


def test_v1_env_has_no_cliff_where_v0_has_one() -> None:
    kw = {"segments": 4, "fit": "least_squares", "levels": 32, "max_steps": 10}
    worst = {}
    for cls in (SplineCompanderEnv, SplineCompanderV1Env):
        env = cls(**kw)
        rng = np.random.default_rng(1)
        biggest = 0.0
        for ep in range(6):
            env.reset(seed=ep)
            for _ in range(10):
                _, r, term, _, info = env.step(rng.uniform(-1, 1, 3).astype(np.float32))
                biggest = max(biggest, abs(r))
        worst[cls.__name__] = biggest
    assert worst["SplineCompanderEnv"] > 15.0  # v0: steps onto/off the 0 dB cliff
    assert worst["SplineCompanderV1Env"] < 5.0


def test_v1_matches_v0_for_interpolating_splines() -> None:
    a, b = SplineCompanderEnv(segments=3), SplineCompanderV1Env(segments=3)
    oa, _ = a.reset(seed=7)
    ob, _ = b.reset(seed=7)
    np.testing.assert_array_equal(oa, ob)
    for _ in range(5):
        act = a.action_space.sample()
        ra, rb = a.step(act)[1], b.step(act)[1]
        assert ra == rb


@pytest.mark.parametrize("env_id", ["quant_envs/SplineCompander-v0", "quant_envs/SplineCompander-v1", "quant_envs/ScalarQuantizer-v0"])
def test_step_after_end_or_before_reset_raises(env_id: str) -> None:
    env = gym.make(env_id, max_steps=2).unwrapped
    with pytest.raises(RuntimeError, match="reset"):
        env.step(env.action_space.sample())
    env.reset(seed=0)
    env.step(env.action_space.sample())
    _, _, terminated, _, _ = env.step(env.action_space.sample())
    assert terminated
    with pytest.raises(RuntimeError, match="reset"):  # v0 kept stepping, leaving the observation space
        env.step(env.action_space.sample())
    obs, _ = env.reset(seed=1)
    assert env.observation_space.contains(obs)


@pytest.mark.parametrize(("source", "limit"), [("gaussian", 572), ("laplacian", 273)])
def test_scalar_quantizer_levels_limit(source: str, limit: int) -> None:
    # The limit: the largest N whose Lloyd-Max thresholds keep the env's 0.001 B spacing
    # (bisection in max_scalar_levels; 572 / 273 measured), so the optimum stays reachable.
    assert max_scalar_levels(get_source(source)) == limit
    env = ScalarQuantizerEnv(source=source, levels=limit, max_steps=1)
    obs, info = env.reset(seed=0)
    lm = info  # the optimum is representable: its thresholds satisfy the ordering rule unchanged
    t_opt = env._reference()[0]
    np.testing.assert_allclose(env._order(t_opt), t_opt, rtol=0, atol=1e-12)
    assert env.observation_space.contains(obs) and lm["optimum_distortion"] > 0
    for bad in (limit + 1, 2500, 4096, 10**9):
        with pytest.raises(ValueError, match=rf"levels={bad}.*\[2, {limit}\]"):
            ScalarQuantizerEnv(source=source, levels=bad)


@pytest.mark.parametrize(
    ("cls", "kwargs", "err", "name"),
    [
        (SplineCompanderEnv, {"segments": 33}, ValueError, r"segments=33.*\[2, 32\]"),
        (SplineCompanderV1Env, {"segments": 1}, ValueError, "segments"),
        (SplineCompanderEnv, {"source": 1}, TypeError, "source"),
        (SplineCompanderEnv, {"source": "uniform"}, ValueError, "source"),
        (SplineCompanderEnv, {"step_size": "0.05"}, TypeError, "step_size"),
        (SplineCompanderEnv, {"random_start": 1}, TypeError, "random_start"),
        (SplineCompanderV1Env, {"fit": "spline"}, ValueError, "fit"),
        (SplineCompanderV1Env, {"levels": 3.0}, TypeError, "levels"),
        (SplineCompanderV1Env, {"max_steps": 0}, ValueError, "max_steps"),
        (ScalarQuantizerEnv, {"start_noise": 1.5}, ValueError, "start_noise"),
        (ScalarQuantizerEnv, {"normalize_reward": "False"}, TypeError, "normalize_reward"),
        (ScalarQuantizerEnv, {"levels": "8"}, TypeError, "levels"),
    ],
)
def test_bad_constructor_arguments(cls, kwargs, err, name) -> None:
    with pytest.raises(err, match=name):
        cls(**kwargs)


@pytest.mark.parametrize(
    ("main", "argv", "flag"),
    [
        (comp_cli.main, ["--segments", "0"], "--segments"),
        (comp_cli.main, ["--segments", "1000"], "--segments"),
        (comp_cli.main, ["--levels", "1"], "--levels"),
        (comp_cli.main, ["--variance-db", "nan", "3"], "--variance-db"),
        (comp_cli.main, ["--out", ""], "--out"),
        (feel_cli.main, ["--threads", "0"], "--threads"),
        (feel_cli.main, ["--out", ""], "--out"),
    ],
)
def test_cli_bad_arguments_one_line_exit_2(main, argv, flag, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # a default --out must not be created by a refused run
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and flag in err[0] and "error" in err[0]
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("main", [comp_cli.main, feel_cli.main])
def test_cli_unwritable_out_refused_before_work(main, capsys, tmp_path) -> None:
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    for out in (afile, afile / "sub"):  # an existing file; a path under a file
        assert main(["--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--out" in err[0]
    assert afile.read_text() == "x"
