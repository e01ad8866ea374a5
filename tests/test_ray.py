"""Ray Tune studies and the RLlib example: run in the ray extra's own virtual environment (`pytest -m ray`).

RLlib pins its own gymnasium, so these tests are deselected from the default run and `.ci/run` runs
them once in a second virtual environment made with `pip install -e ".[dev,ray]"`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray

# ray itself is imported inside the tests: in the main venv (no ray) the marker deselects them.
from agents.comparison import run_one  # noqa: E402
from agents.ray_backend import run_trials, trial_key  # noqa: E402

CFG = {"env_id": "quant_envs/MixedPrecision-v0", "env_kwargs": {"task": "digits-cnn", "budget_fraction": 0.4,
       "finetune_steps": 0}, "max_evaluations": 3, "timesteps": 100, "hyperparams": {}}


@pytest.fixture(scope="module", autouse=True)
def _ray_session():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"worker_process_setup_hook": "quant_envs.register_envs"})
    yield
    ray.shutdown()


def test_tune_study_keeps_finished_trials_reports_failures_and_resumes(tmp_path: Path) -> None:
    cfg = {**CFG, "out": str(tmp_path)}
    trials = [{"kind": "baseline", "method": m, "seed": 0, "cfg": cfg} for m in ("uniform", "no_such_method")]
    first = run_trials(run_one, trials, tmp_path)
    assert [r["status"] for r in first] == ["ok", "failed"]
    assert "no_such_method" in first[1]["error"]  # the trial's own error, in one line
    assert 0.5 < first[0]["test_accuracy"] <= 1.0  # a real accuracy of the 4-layer digits network
    saved = json.loads((tmp_path / "trials" / f"{trial_key(trials[0])}.json").read_text())
    assert saved["test_accuracy"] == first[0]["test_accuracy"]

    # resumed with one more trial: the finished one is read back, not rerun (same wall time)
    more = trials[:1] + [{"kind": "baseline", "method": "random", "seed": 0, "cfg": cfg}]
    second = run_trials(run_one, more, tmp_path, resume=True)
    assert second[0] == first[0]
    assert second[1]["status"] == "ok" and second[1]["method"] == "random"


def test_rllib_masked_ppo_never_sends_a_masked_action() -> None:
    from agents.rllib import env_steps, train_rllib

    # invalid_action="raise" (the example's setting): one masked action would fail the run
    results = train_rllib("quant_envs/MixedPrecision-v0", iterations=2, seed=0)
    assert env_steps(results[-1]) >= 2 * 256


def test_rllib_without_masks_does_send_masked_actions() -> None:
    """The control for the test above: plain PPO at a tight budget hits the environment's refusal."""
    from agents.rllib import train_rllib

    env_config = {"task": "digits-cnn", "budget_fraction": 0.25, "finetune_steps": 0, "invalid_action": "raise"}
    import agents.rllib as rl

    original = rl.is_masked
    rl.is_masked = lambda env_id: False  # build the same environment without the masking module
    try:
        with pytest.raises(RuntimeError, match="RLlib iteration 1 on quant_envs/MixedPrecision-v0 failed"):
            train_rllib("quant_envs/MixedPrecision-v0", iterations=2, seed=0, env_config=env_config)
    finally:
        rl.is_masked = original


def test_rllib_plain_ppo_on_a_box_environment() -> None:
    from agents.rllib import env_steps, train_rllib

    results = train_rllib("quant_envs/CVT1D-v0", iterations=1, seed=0)
    assert env_steps(results[-1]) >= 256


#: One id per problem, each with what RLlib refuses raw: 2-D Box observations and actions (CVT2D-v1,
#: FeelAllocation-v2), a Box action (SplineCompander-v1), masked Discrete actions (the table).
RLLIB_ONE_PER_PROBLEM = ["quant_envs/CVT2D-v1", "quant_envs/FeelAllocation-v2", "quant_envs/SplineCompander-v1",
                         "quant_envs/MixedPrecisionTable-v0"]


@pytest.mark.parametrize("env_id", RLLIB_ONE_PER_PROBLEM)
def test_rllib_ppo_one_iteration_per_problem(env_id: str) -> None:
    """PPO through ``python -m agents.rllib``'s code path: one iteration samples a full batch."""
    from agents.rllib import env_steps, train_rllib

    results = train_rllib(env_id, iterations=1, seed=0)
    assert env_steps(results[-1]) >= 256  # ppo_config's train_batch_size


def test_compare_on_ray_writes_the_same_records_as_local(tmp_path: Path) -> None:
    """A two-trial Ray Tune study through train.py's compare: same runs.csv columns and values as locally."""
    from agents.comparison import compare

    kw = dict(env_id="quant_envs/MixedPrecision-v0", agents=[], baselines=["uniform", "greedy_std"], seeds=1,
              max_evaluations=2, env_kwargs={"task": "digits-cnn", "finetune_steps": 0}, final_finetune_steps=0)
    on_ray = compare(out=tmp_path / "ray", backend="ray", jobs=2, **kw)
    local = compare(out=tmp_path / "local", **kw)
    assert [r["status"] for r in on_ray["runs"]] == ["ok", "ok"]
    for a, b in zip(on_ray["runs"], local["runs"]):
        assert (a["method"], a["seed"], a["policy"]) == (b["method"], b["seed"], b["policy"])
        assert a["final_test_accuracy"] == pytest.approx(b["final_test_accuracy"])
    assert (tmp_path / "ray" / "runs.csv").read_text().splitlines()[0] == (tmp_path / "local" / "runs.csv").read_text().splitlines()[0]


def test_compare_on_ray_for_another_problem_matches_local(tmp_path: Path) -> None:
    """CVT (E/E*) through the same Ray backend: the same objective records as the serial backend."""
    from agents.comparison import compare

    kw = dict(env_id="quant_envs/CVT1D-v1", env_kwargs={"k": 3}, agents=["ppo"], baselines=["lloyd", "lbfgs"],
              seeds=1, max_evaluations=2, timesteps=64)
    on_ray = compare(out=tmp_path / "ray", backend="ray", jobs=2, **kw)
    local = compare(out=tmp_path / "local", **kw)
    assert [r.status for r in on_ray["runs"]] == ["ok"] * 3
    for a, b in zip(on_ray["runs"], local["runs"]):
        assert (a.method, a.seed, a.unit, a.solution) == (b.method, b.seed, b.unit, b.solution)
        assert a.objective == pytest.approx(b.objective, rel=1e-9)
    header = (tmp_path / "ray" / "runs.csv").read_text().splitlines()[0]
    assert header == (tmp_path / "local" / "runs.csv").read_text().splitlines()[0]
    assert header.startswith("method,kind,seed,status,objective,unit")


#: A 4-trial study (2 baselines x 2 seeds) of a few seconds per trial, run through train.py compare.
STUDY = ["compare", "--env", "quant_envs/MixedPrecision-v0", "--agents", "--baselines", "uniform", "random",
         "--seeds", "2", "--max-evaluations", "3", "--env-kwargs", "task=digits-cnn", "finetune_steps=0",
         "budget_fraction=0.4", "--final-finetune-steps", "0", "--backend", "ray"]


def _rows(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _without_wall_time(out: Path) -> tuple[list[dict[str, str]], list[dict[str, str]], list[str]]:
    """runs.csv, summary.csv and results.md of a study, wall-clock columns removed."""
    runs = [{k: v for k, v in r.items() if k != "wall_time_s"} for r in _rows(out / "runs.csv")]
    summary = [{k: v for k, v in r.items() if k != "wall_time_s"} for r in _rows(out / "summary.csv")]
    table = [line.rsplit("|", 2)[0] for line in (out / "results.md").read_text(encoding="utf-8").splitlines()]
    return runs, summary, table  # the table's last column is "wall time [s]"


def test_study_killed_mid_run_and_resumed_gives_the_table_of_one_left_alone(tmp_path: Path, capsys) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    import ray

    from agents.cli import main

    repo = Path(__file__).resolve().parents[1]
    killed = tmp_path / "killed"
    # a driver of its own on this module's Ray instance (RAY_ADDRESS: a cluster, as docs/scale-out.md shows)
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    proc = subprocess.Popen([sys.executable, str(repo / "train.py"), *STUDY, "--out", str(killed)],
                            cwd=repo, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if (killed / "runs.csv").is_file() and _rows(killed / "runs.csv"):
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and every process it started
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the study ended before it could be interrupted"
    kept = _rows(killed / "runs.csv")
    assert 1 <= len(kept) < 4, f"{len(kept)} of 4 runs were recorded when the study was killed"

    capsys.readouterr()
    assert main([*STUDY, "--jobs", "2", "--out", str(killed), "--resume"]) == 0  # on this module's Ray
    assert f"--resume: {len(kept)} finished runs kept, {4 - len(kept)} to run" in capsys.readouterr().out
    alone = tmp_path / "alone"
    assert main([*STUDY, "--jobs", "2", "--out", str(alone)]) == 0

    resumed_runs, resumed_summary, resumed_table = _without_wall_time(killed)
    alone_runs, alone_summary, alone_table = _without_wall_time(alone)
    assert [r["status"] for r in alone_runs] == ["ok"] * 4
    assert resumed_runs == alone_runs
    assert resumed_summary == alone_summary
    assert resumed_table == alone_table
    # the runs finished before the kill were kept, not rerun (their own wall times)
    final = {(r["method"], r["seed"]): r["wall_time_s"] for r in _rows(killed / "runs.csv")}
    assert all(final[(r["method"], r["seed"])] == r["wall_time_s"] for r in kept)
