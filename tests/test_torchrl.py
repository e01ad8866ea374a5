"""TorchRL's GymEnv and check_env_specs on one id per problem (the torchrl extra's own virtual
environment: ``pytest -m torchrl``; ``.ci/run`` does). docs/clients.md's TorchRL snippets, the
masked one included, run in tests/test_docs_snippets.py."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.torchrl

SMALL = {"task": "digits-cnn", "finetune_steps": 0}
ONE_PER_PROBLEM = {
    "quant_envs/MixedPrecision-v1": SMALL,
    "quant_envs/SplineCompander-v1": {},
    "quant_envs/FeelTraining-v1": {},
    "quant_envs/CVT2D-v1": {},
}


@pytest.mark.parametrize("env_id", sorted(ONE_PER_PROBLEM))
def test_torchrl_gym_env_passes_check_env_specs(env_id: str) -> None:
    from torchrl.envs import GymEnv
    from torchrl.envs.utils import check_env_specs

    import quant_envs  # noqa: F401

    env = GymEnv(env_id, **ONE_PER_PROBLEM[env_id])
    check_env_specs(env, seed=0)
    rollout = env.rollout(10)
    assert env.observation_spec["observation"].is_in(rollout["next", "observation"][-1])
    env.close()
