"""train.py compare: final-evaluation protocol, statistics, failed runs, runs.csv as runs finish, --resume."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from agents.comparison import FINAL_SEEDS, compare, summarize
from agents.reporting import iqm, iqm_ci, probability_of_improvement

# digits-cnn without retraining: every search and final evaluation takes milliseconds
TINY = {"task": "digits-cnn", "finetune_steps": 0, "budget_fraction": 0.5}


def test_probability_of_improvement_counts_pairs() -> None:
    x, y = [3.0, 1.0, 2.0], [2.0, 0.0]
    # pairs (x > y): 3>2, 3>0, 1>0, 2>0 = 4; ties (2 = 2): 1 -> (4 + 0.5) / 6
    assert probability_of_improvement(x, y) == pytest.approx(4.5 / 6)
    assert probability_of_improvement(y, x) == pytest.approx(1 - 4.5 / 6)


def test_iqm_ci_is_a_bootstrap_of_the_iqm_not_of_the_mean() -> None:
    x = [0.90, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98, 0.10]  # one outlier
    lo, hi = iqm_ci(x)
    assert lo <= iqm(x) <= hi
    # scipy's percentile bootstrap of the 25%-trimmed mean, same seed and resamples: the same interval
    direct = stats.bootstrap((np.array(x),), lambda s, axis=-1: stats.trim_mean(s, 0.25, axis=axis),
                             method="percentile", n_resamples=10_000,
                             random_state=np.random.default_rng(0)).confidence_interval
    assert (lo, hi) == pytest.approx((direct.low, direct.high))
    mean_ci = stats.bootstrap((np.array(x),), np.mean, method="percentile", n_resamples=10_000,
                              random_state=np.random.default_rng(0)).confidence_interval
    assert lo > mean_ci.low + 0.05  # the IQM is less pulled down by the outlier than the mean
    assert iqm_ci([0.5, 0.5]) == (0.5, 0.5)


def test_summary_statistics_against_direct_computation() -> None:
    rng = np.random.default_rng(0)
    runs = []
    for method, kind, centre in (("ppo", "agent", 0.9), ("uniform", "baseline", 0.8), ("random", "baseline", 0.85)):
        for seed in range(10):
            runs.append({"method": method, "kind": kind, "seed": seed, "status": "ok",
                         "final_test_accuracy": centre + 0.01 * rng.standard_normal(), "val_accuracy": centre,
                         "reward_evaluations": 100 + seed, "wall_time_s": 1.0})
    runs.append({"method": "ppo", "kind": "agent", "seed": 10, "status": "failed", "final_test_accuracy": float("nan"),
                 "val_accuracy": float("nan"), "reward_evaluations": 0, "wall_time_s": 0.0})
    rows = {r["method"]: r for r in summarize(runs, ["ppo", "uniform", "random"], ["uniform", "random"])}
    ppo = [r["final_test_accuracy"] for r in runs if r["method"] == "ppo" and r["status"] == "ok"]
    assert rows["ppo"]["runs"] == 10 and rows["ppo"]["failed"] == 1
    assert rows["ppo"]["iqm"] == pytest.approx(np.mean(sorted(ppo)[2:8]))  # scipy trims int(0.25 x 10) = 2 from each end
    assert rows["ppo"]["best_baseline"] == "random" and rows["random"]["best_baseline"] == "uniform"
    assert rows["ppo"]["p_over_uniform"] == 1.0 and rows["ppo"]["p_over_best_baseline"] == 1.0
    assert rows["ppo"]["evaluations"] == pytest.approx(104.5)


def test_compare_reports_the_final_protocol_beside_the_searched_reward(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    result = compare(agents=[], baselines=["uniform", "random"], seeds=2, max_evaluations=5, env_kwargs=TINY,
                     out=out, final_finetune_steps=3)
    runs = list(csv.DictReader((out / "runs.csv").open()))
    assert len(runs) == 4 and all(r["status"] == "ok" for r in runs)
    for r in runs:
        finals = [float(a) for a in r["final_test_accuracies"].strip("[]").split(",")]
        assert len(finals) == len(FINAL_SEEDS) and float(r["final_test_accuracy"]) == pytest.approx(np.mean(finals), abs=1e-5)
        assert int(r["final_finetune_steps"]) == 3
    table = (out / "results.md").read_text()
    assert "searched val. acc. mean" in table and "final test acc. IQM" in table and "95% CI of IQM" in table
    assert "P(> uniform)" in table and "retrained for 3 steps" in table
    assert {row["method"] for row in result["summary"]} == {"uniform", "random"}


def test_a_failed_run_is_reported_and_resume_runs_only_what_is_missing(tmp_path: Path, capsys) -> None:
    out = tmp_path / "cmp"
    # enumeration needs one evaluation per feasible policy: with 5 evaluations it fails on digits-cnn
    compare(agents=[], baselines=["uniform", "enumeration"], seeds=1, max_evaluations=5, env_kwargs=TINY,
            out=out, final_finetune_steps=0)
    runs = {r["method"]: r for r in csv.DictReader((out / "runs.csv").open())}
    assert runs["uniform"]["status"] == "ok"
    assert runs["enumeration"]["status"] == "failed" and "max_evaluations" in runs["enumeration"]["error"]
    table = (out / "results.md").read_text()
    assert "| enumeration | baseline | 0 | 1 |" in table
    capsys.readouterr()
    compare(agents=[], baselines=["uniform", "enumeration"], seeds=2, max_evaluations=5, env_kwargs=TINY,
            out=out, final_finetune_steps=0, resume=True)
    printed = capsys.readouterr().out
    assert "--resume: 1 finished runs kept, 3 to run" in printed  # the failed run is retried
    rows = list(csv.DictReader((out / "runs.csv").open()))
    assert sorted((r["method"], r["seed"]) for r in rows if r["status"] == "ok") == [("uniform", "0"), ("uniform", "1")]
    with pytest.raises(ValueError, match="other settings"):
        compare(agents=[], baselines=["uniform"], seeds=2, max_evaluations=6, env_kwargs=TINY, out=out,
                final_finetune_steps=0, resume=True)
