"""RL Baselines3 Zoo 2.9.2 trains from agents/hyperparams/ppo.yml as it is: one id per problem.

Run in the zoo extra's own virtual environment (``pytest -m rl_zoo``; ``.ci/run`` does). The
fourth problem (CVT1D-v1, with the per-generator policy), and ``rl_zoo3.enjoy``, run through
docs/clients.md's own snippet (tests/test_docs_snippets.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.rl_zoo

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "agents" / "hyperparams" / "ppo.yml"
#: one id per problem (CVT1D-v1 is the docs snippet's)
ZOO_IDS = ["quant_envs/MixedPrecision-v1", "quant_envs/SplineCompander-v1", "quant_envs/FeelAllocation-v2"]


@pytest.mark.parametrize("env_id", ZOO_IDS)
def test_rl_zoo_trains_from_the_yaml_as_it_is(env_id: str, tmp_path: Path) -> None:
    entry = yaml.safe_load(CONF.read_text(encoding="utf-8"))[env_id]
    n = int(entry["n_steps"])  # one PPO update: the smallest run that trains
    proc = subprocess.run(
        [sys.executable, "-m", "rl_zoo3.train", "--algo", "ppo", "--env", env_id, "--gym-packages", "quant_envs",
         "--conf-file", str(CONF), "-n", str(n), "--eval-freq", "-1", "--seed", "0", "--num-threads", "1",
         "-f", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    saved = list((tmp_path / "ppo").glob("*/*.zip"))
    assert len(saved) == 1, f"rl_zoo3.train saved {saved}"
    from stable_baselines3 import PPO

    model = PPO.load(saved[0], device="cpu")
    assert model.num_timesteps == n and model.n_steps == n  # the YAML's n_steps, trained for
