"""RL Zoo conventions of train.py: evaluation env, run folders, YAML run keys, vec envs, projected actions."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import agents
import quant_envs  # noqa: F401
from agents.runs import UsageError, default_run_dir, make_vec_env
from agents.training import run_config, train

REPO = Path(__file__).resolve().parents[1]
SMALL = {"task": "digits-cnn", "finetune_steps": 0, "budget_fraction": 0.4}


def test_evaluation_env_writes_npz_and_best_model_that_reproduce(tmp_path: Path) -> None:
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.evaluation import evaluate_policy

    out = tmp_path / "run"
    train("quant_envs/MixedPrecision-v0", "maskable_ppo", timesteps=400, seed=0, env_kwargs=SMALL, out=out,
          eval_freq=200, eval_episodes=2, progress_bar=False, test_best=False, verbose=False)
    with np.load(out / "evaluations.npz") as data:
        assert data["timesteps"].tolist() == [200, 400]  # the absolute grid
        assert data["results"].shape == (2, 2) and data["ep_lengths"].tolist() == [[4, 4], [4, 4]]
        best_mean = data["results"].mean(axis=1).max()
    # best_model.zip, evaluated again on the same seeded episodes, gives the best mean recorded
    venv = make_vec_env("quant_envs/MixedPrecision-v0", 1, 1_000_003, {**SMALL, "share_problem": False})
    venv.seed(1_000_003)
    returns, _ = evaluate_policy(MaskablePPO.load(out / "best_model.zip", device="cpu"), venv, n_eval_episodes=2,
                                 deterministic=True, return_episode_rewards=True)
    assert np.mean(returns) == pytest.approx(best_mean)


def test_a_folder_with_a_run_is_refused_unless_resume_or_force(tmp_path: Path) -> None:
    out = tmp_path / "run"
    kwargs = dict(env_kwargs=SMALL, out=out, progress_bar=False, test_best=False, verbose=False)
    train("quant_envs/MixedPrecision-v0", "maskable_ppo", timesteps=100, seed=0, **kwargs)
    first = (out / "evaluations.csv").read_text()
    with pytest.raises(UsageError, match="already holds a run; pass --resume"):
        train("quant_envs/MixedPrecision-v0", "maskable_ppo", timesteps=100, seed=1, **kwargs)
    assert (out / "evaluations.csv").read_text() == first  # nothing of the first run was touched
    train("quant_envs/MixedPrecision-v0", "maskable_ppo", timesteps=100, seed=1, force=True, **kwargs)
    assert (out / "evaluations.csv").read_text() != first
    assert not list((out / "checkpoints").glob("model-*.zip"))[1:]  # one run's checkpoints, not two


def test_default_run_folders_are_numbered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert default_run_dir("quant_envs/CVT1D-v0", "ppo", 0) == Path("runs/CVT1D-v0/ppo-s0")
    for name in ("ppo-s0", "ppo-s0_2"):
        (tmp_path / "runs" / "CVT1D-v0" / name).mkdir(parents=True)
        (tmp_path / "runs" / "CVT1D-v0" / name / "config.json").write_text("{}")
    assert default_run_dir("quant_envs/CVT1D-v0", "ppo", 0) == Path("runs/CVT1D-v0/ppo-s0_3")
    assert default_run_dir("quant_envs/CVT1D-v0", "ppo", 0, existing=True) == Path("runs/CVT1D-v0/ppo-s0_2")


def test_yaml_run_keys_set_the_defaults_and_never_reach_the_algorithm(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ppo.yml").write_text("default: {policy: MlpPolicy}\nquant_envs/CVT1D-v0:\n"
                                      "  policy: MlpPolicy\n  n_steps: 64\n  n_timesteps: 2.0e+3\n  n_envs: 2\n")
    monkeypatch.setattr(agents, "HYPERPARAMS_DIR", tmp_path)
    assert agents.run_defaults("ppo", "quant_envs/CVT1D-v0") == {"n_timesteps": 2000, "n_envs": 2}
    assert agents.load_hyperparams("ppo", "quant_envs/CVT1D-v0") == {"policy": "MlpPolicy", "n_steps": 64}
    given = {"env_id": "quant_envs/CVT1D-v0", "algo": "ppo", "timesteps": None, "seed": None, "env_kwargs": None,
             "hyperparams": None, "max_evaluations": None}
    assert run_config(given, None, False)["timesteps"] == 2000
    assert run_config({**given, "timesteps": 300}, None, False)["timesteps"] == 300  # the command line wins
    (tmp_path / "ppo.yml").write_text("quant_envs/CVT1D-v0: {n_envs: 0}\n")
    with pytest.raises(ValueError, match="n_envs=0 is not allowed"):
        agents.run_defaults("ppo", "quant_envs/CVT1D-v0")


def test_unmasked_agent_on_a_masked_env_warns_and_counts_projected_actions(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.warns(UserWarning, match="does not read them"):
        train("quant_envs/MixedPrecision-v0", "ppo", timesteps=200, seed=0,
              env_kwargs={**SMALL, "budget_fraction": 0.25}, out=out, hyperparams={"n_steps": 100, "batch_size": 50},
              progress_bar=False, test_best=False, verbose=False)
    rows = list(csv.DictReader((out / "evaluations.csv").open()))
    counted = [int(r["projected_actions"]) for r in rows]
    assert len(counted) == 50 and sum(counted) > 0  # a random PPO policy at a tight budget is projected
    # recount independently: replaying each episode's actions is not possible, but each count is at most
    # the episode length, and the progress log has the mean
    assert max(counted) <= 4
    progress = list(csv.DictReader((out / "logs" / "part-0" / "progress.csv").open()))
    assert any(r.get("rollout/projected_actions") not in (None, "") for r in progress)


def test_subprocess_vec_env_trains_by_plain_id(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(REPO / "train.py"), "--env", "quant_envs/CVT1D-v0", "--algo", "ppo",
                           "--timesteps", "256", "--n-envs", "2", "--vec-env", "subproc", "--out", str(tmp_path / "r"),
                           "--hyperparams", "n_steps=64", "batch_size=64", "--no-progress-bar"],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ppo on quant_envs/CVT1D-v0: 256 timesteps" in proc.stdout


def test_bad_convention_flags_are_one_line(tmp_path: Path) -> None:
    for args, expected in ((["--eval-freq", "-1"], "--eval-freq -1 is not allowed"),
                           (["--eval-episodes", "0"], "--eval-episodes 0 is not allowed")):
        proc = subprocess.run([sys.executable, str(REPO / "train.py"), *args, "--out", str(tmp_path / "r")],
                              capture_output=True, text=True, timeout=300, cwd=REPO)
        assert proc.returncode == 2 and proc.stderr.startswith("train.py: error: ") and expected in proc.stderr


def test_env_id_for_the_evaluation_env_exists() -> None:
    assert gym.spec("quant_envs/MixedPrecision-v0").id == "quant_envs/MixedPrecision-v0"


def test_compare_grid_runs_each_cell_and_reports_an_infeasible_one(tmp_path: Path) -> None:
    out = tmp_path / "grid"
    proc = subprocess.run([sys.executable, str(REPO / "train.py"), "compare", "--env", "quant_envs/MixedPrecision-v0",
                           "--env-kwargs", "task=digits-cnn", "finetune_steps=0", "--agents", "--baselines", "uniform",
                           "--seeds", "1", "--max-evaluations", "2", "--final-finetune-steps", "0",
                           "--grid", "budget_fraction=0.6,0.001", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "budget_fraction=0.6" / "runs.csv").is_file()
    grid = (out / "grid.md").read_text()
    assert "## budget_fraction=0.6\n\n| method" in grid  # the feasible cell's table
    assert "## budget_fraction=0.001\n\nnot run:" in grid and "infeasible" in grid  # reported, not fatal


def test_compare_backend_is_checked() -> None:
    from agents.comparison import compare

    with pytest.raises(ValueError, match="backend='dask' is not allowed; expected one of: local, ray"):
        compare(env_id="quant_envs/MixedPrecision-v0", backend="dask")


def test_compare_on_the_table_env_reports_regret_of_agents_and_baselines(tmp_path: Path) -> None:
    import json

    from agents.comparison import compare

    out = tmp_path / "regret"
    result = compare(env_id="quant_envs/MixedPrecisionTable-v0", env_kwargs={"table": "digits-cnn"},
                     agents=["maskable_ppo"], baselines=["random", "greedy_std"], seeds=2, max_evaluations=10, out=out)
    saved = json.loads((out / "regret.json").read_text())
    assert {r["method"] for r in saved["rows"]} == {"random", "greedy_std", "maskable_ppo"}
    for method, finals in saved["final_regret"].items():
        assert len(finals) == 2 and min(finals) >= 0, method  # regret against the exact optimum is never negative
    assert "regret @ 10" in (out / "results.md").read_text() and (out / "regret.png").is_file()
    study = result["study"]
    # the study's optimum is the table's true best feasible score: no run may beat it
    assert all(max(r.final) <= study.problem.regret(study.problem.optimum.worst_score) for r in study.runs.values())
    with pytest.raises(ValueError, match="baselines: 'hawq_v3' is not allowed on"):
        compare(env_id="quant_envs/MixedPrecisionTable-v0", baselines=["hawq_v3"], agents=[], out=out)


def test_evaluations_csv_columns_follow_the_evaluation_fields_in_the_saved_order() -> None:
    # RECORD_FIELDS is derived from quant_envs' Evaluation; saved evaluations.csv files have this order
    import dataclasses

    from agents.callbacks import RECORD_FIELDS
    from quant_envs.mixed_precision.problem import Evaluation

    assert RECORD_FIELDS == (
        "episode", "timestep", "return", "accuracy", "float_accuracy", "latency_s", "energy_j", "size_bytes",
        "budget_used", "latency_fraction", "energy_fraction", "size_fraction", "cached", "eval_time_s",
        "projected_actions", "policy",
    )
    fields = {f.name for f in dataclasses.fields(Evaluation)}
    assert set(RECORD_FIELDS[3:-2]) <= fields and "policy" in fields
