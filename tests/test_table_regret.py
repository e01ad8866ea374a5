"""Regret as the benchmark's currency: best-so-far curves, confidence intervals, random search's
closed form, and the baseline study on a table.

Expected values: hand-computed small cases (stated beside each assert), scipy's Student-t
interval, and exhaustive enumeration of every subset for the best-of-n formula.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from agents.regret import (
    RunRecord,
    best_so_far_regret,
    confidence_interval,
    plot_regret,
    record_from_episodes,
    regret_curves,
    summarize,
)
from baselines.mixed_precision.regret import main as regret_main
from baselines.mixed_precision.regret import regret_study
from quant_envs.mixed_precision.tables.problem import TableProblem
from quant_envs.mixed_precision.tables.reference import best_of_n_moments, expected_best_of_n


def test_best_so_far_regret_by_hand() -> None:
    # optimum 10, worst feasible 2; evaluations: infeasible 50, feasible 4, 3, 9; then the run stops
    r = RunRecord.of([50, 4, 3, 9], [False, True, True, True])
    got = best_so_far_regret(r, optimum=10.0, worst=2.0, length=6, score_scale=100.0)
    np.testing.assert_allclose(got, [800, 600, 600, 100, 100, 100])  # 100 * (10 - best so far)
    with pytest.raises(ValueError, match="exceeds the optimum"):
        best_so_far_regret(RunRecord.of([11.0]), optimum=10.0, worst=2.0, length=1)
    with pytest.raises(ValueError, match="feasible has 1 entries"):
        RunRecord.of([1.0, 2.0], [True])


def test_record_from_agent_episodes() -> None:
    # evaluations.csv-style rows: the cached repeat is not a new evaluation; 1.2 of the budget is infeasible
    rows = [{"accuracy": "0.5", "budget_used": "0.9", "cached": "False"},
            {"accuracy": "0.9", "budget_used": "1.2", "cached": "False"},
            {"accuracy": "0.5", "budget_used": "0.9", "cached": "True"},
            {"accuracy": "0.7", "budget_used": "1.0", "cached": "False"}]
    r = record_from_episodes(rows)
    np.testing.assert_array_equal(r.scores, [0.5, 0.9, 0.7])
    np.testing.assert_array_equal(r.feasible, [True, False, True])


def test_confidence_interval_is_students_t() -> None:
    v = np.array([0.1, 0.4, 0.35, 0.2, 0.05])
    mean, lo, hi = confidence_interval(v)
    want = stats.t.interval(0.95, len(v) - 1, loc=v.mean(), scale=stats.sem(v))
    assert (lo, hi) == pytest.approx(want, rel=1e-12) and mean == pytest.approx(v.mean())
    curves = regret_curves([RunRecord.of(np.linspace(0, 1, 20) * s) for s in (0.5, 0.7, 0.9)], 1.0, 0.0, 1000)
    points = summarize(curves)
    assert [p.n for p in points] == [10, 30, 100, 300, 1000] and all(p.runs == 3 for p in points)
    assert points[-1].mean == pytest.approx(1 - np.mean([0.5, 0.7, 0.9]))  # each run's final best


def test_best_of_n_closed_form_against_every_subset() -> None:
    s = np.array([0.3, 1.0, 1.0, 2.5, 4.0, 7.0, 7.5])
    for n in (1, 2, 3, 5, 7):
        best = [max(c) for c in itertools.combinations(s, n)]  # every n-subset equally likely
        mean, sd = best_of_n_moments(s, n)
        assert mean[0] == pytest.approx(np.mean(best), rel=1e-12)
        assert sd[0] == pytest.approx(np.std(best), rel=1e-9, abs=1e-12)
    assert expected_best_of_n(s, 100)[0] == pytest.approx(7.5)  # n >= N: the optimum


@pytest.mark.parametrize("evaluations", [100, pytest.param(1000, marks=pytest.mark.slow)])
def test_random_search_matches_its_closed_form(evaluations: int) -> None:
    # The default benchmark setting (HAWQ-V3 ResNet-18, T4 latency level 0.5), 20 seeds: the
    # measured mean regret lies within the 95% interval of the closed-form expectation (sd of the
    # best-of-n distribution / sqrt(20)) at every checkpoint up to ``evaluations``.
    study = regret_study(TableProblem("hawq-resnet18"), ["random"], range(20), evaluations)
    check = study.random_check()
    assert list(check) == [n for n in (10, 30, 100, 300, 1000) if n <= evaluations]
    for n, c in check.items():
        assert c["inside"], (n, c)
        assert c["half_width"] < 0.5 * c["expected"]  # the check can fail: the interval is narrow


def test_study_on_hawq_resnet50_and_cli(tmp_path, capsys) -> None:
    study = regret_study(TableProblem("hawq-resnet50", budget_metric="size", budget_level=0.5),
                         ["random", "greedy_std", "uniform"], range(3), 100)
    assert study.random_expectation() is None  # 2^48 policies: no enumerated feasible set
    for runs in study.runs.values():
        assert runs.curves.shape == (3, 100)
        assert np.all(np.diff(runs.curves, axis=1) <= 1e-15)  # best-so-far regret never rises
        assert np.all(runs.curves >= 0)
    assert "| uniform |" in study.markdown()
    path = plot_regret({m: r.curves for m, r in study.runs.items()}, tmp_path / "r.png", study.unit)
    assert path.stat().st_size > 1000
    assert regret_main(["--table", "hawq-resnet18", "--methods", "random", "uniform", "--seeds", "2",
                        "--max-evaluations", "30", "--out", str(tmp_path / "cli")]) == 0
    out = capsys.readouterr().out
    assert "random (closed form)" in out and (tmp_path / "cli" / "regret.json").exists()


def test_an_agent_joins_the_study(tmp_path) -> None:
    from agents.regret import add_agent_runs

    setting = {"table": "digits-cnn", "hardware": "bismo-edge", "budget_metric": "latency", "budget_fraction": 0.4}
    study = regret_study(TableProblem(**setting), ["uniform"], [0], 20)
    add_agent_runs(study, setting, "maskable_ppo", tmp_path)
    runs = study.runs["maskable_ppo"]
    assert runs.curves.shape == (1, 20) and np.all(runs.curves >= 0)
    assert 1 <= runs.evaluations[0] <= 20  # train.py stops at max_evaluations distinct policies
    assert (tmp_path / "maskable_ppo-s0" / "best_policy.json").exists()
