"""train.py replay: a trained model.zip run deterministically on the problem it was trained on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest

import quant_envs  # noqa: F401
from agents.replay import replay
from agents.runs import UsageError
from agents.training import train

REPO = Path(__file__).resolve().parents[1]
ENV_KWARGS = {"task": "digits-cnn", "finetune_steps": 0, "budget_fraction": 0.5}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("replay") / "run"
    train("quant_envs/MixedPrecision-v0", "maskable_ppo", timesteps=200, seed=0, env_kwargs=ENV_KWARGS, out=out,
          progress_bar=False, test_best=False, verbose=False)
    return out


def test_replay_is_deterministic_and_matches_a_fresh_evaluation(run_dir: Path) -> None:
    first = replay(run_dir, episodes=2, verbose=False)
    assert first == replay(run_dir, episodes=2, verbose=False)
    env = gym.make("quant_envs/MixedPrecision-v0", **ENV_KWARGS)
    problem = env.unwrapped.problem
    for record in first:
        assert record["length"] == env.unwrapped.num_steps
        policy = [tuple(p) for p in record["policy"]]
        evaluation = problem.evaluate(policy)  # recomputed independently of the replayed episode
        assert record["accuracy"] == pytest.approx(evaluation.accuracy)
        assert record["budget_used"] <= 1 + 1e-9  # the masked policy stays within budget


def test_replay_command_prints_and_refuses_bad_folders(run_dir: Path, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(REPO / "train.py"), "replay", str(run_dir)], capture_output=True,
                          text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "episode 0 (seed 10000): return" in proc.stdout and "accuracy" in proc.stdout
    with pytest.raises(UsageError, match="has no config.json"):
        replay(tmp_path, verbose=False)
    (tmp_path / "config.json").write_text("{not json")
    (tmp_path / "model.zip").write_bytes(b"")
    with pytest.raises(UsageError, match="config.json is unreadable"):
        replay(tmp_path, verbose=False)
    (tmp_path / "config.json").write_text(json.dumps({"env_id": "quant_envs/CVT1D-v0", "algo": "ppo"}))
    with pytest.raises(UsageError, match="model.zip cannot be loaded"):
        replay(tmp_path, verbose=False)
    with pytest.raises(UsageError, match="--episodes 0"):
        replay(run_dir, episodes=0, verbose=False)
