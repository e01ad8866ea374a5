"""RLlib on quant_envs: PPO on every registered id, with action masking where the action is discrete.

Needs the ``ray`` extra, in its own virtual environment (RLlib pins its own gymnasium)::

    python3 -m venv .venv-ray && .venv-ray/bin/pip install -e ".[dev,ray]"
    .venv-ray/bin/python -m agents.rllib --env quant_envs/MixedPrecision-v0 --iterations 2
    .venv-ray/bin/python -m agents.rllib --env quant_envs/CVT2D-v1 --iterations 2

How the environments reach RLlib's workers:

* every environment is registered with RLlib under its own id through ``ray.tune.registry.register_env``
  and a creator that builds it by Gymnasium's ``module:id`` form (``quant_envs:quant_envs/...``), so a
  fresh worker process imports the package first. The plain id also works from a worker after
  ``ray.init(runtime_env={"worker_process_setup_hook": "quant_envs.register_envs"})``.
* a masked environment (``Discrete`` actions with ``action_masks()``) is wrapped in
  :class:`quant_envs.wrappers.ActionMaskObservation` and run with RLlib's ``ActionMaskingTorchRLModule``:
  the module sets masked logits to -inf, so no masked action ever reaches the environment (the
  example builds it with ``invalid_action="raise"``, which would fail the run otherwise).
* a multi-dimensional ``Box`` observation or action (``CVT1D-v1``, ``CVT2D-v1``, ``FeelAllocation-v2``,
  ``CVT2D-v0``'s actions) is flattened (:func:`quant_envs.wrappers.for_rllib`, which also does the
  masking wrapper). RLlib then trains its default MLP on the flat vector: the per-generator policy
  of ``agents.cvt_policy`` (one MLP shared by the rows) is not rebuilt as an RLlib module.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import gymnasium as gym

import quant_envs
from quant_envs.wrappers import ActionMaskObservation, for_rllib

_SMALL_LIVE = {"task": "digits-cnn", "finetune_steps": 0}  # a 4-layer network, post-training quantization
#: Environment arguments that keep the example small; every other id runs with its registered defaults.
EXAMPLE_ENV_CONFIG: dict[str, dict[str, Any]] = {
    "quant_envs/MixedPrecision-v0": {**_SMALL_LIVE, "budget_fraction": 0.4, "invalid_action": "raise"},
    "quant_envs/MixedPrecision-v1": {**_SMALL_LIVE, "invalid_action": "raise"},
    "quant_envs/MixedPrecisionContinuous-v0": dict(_SMALL_LIVE),
    "quant_envs/MixedPrecisionContinuous-v1": dict(_SMALL_LIVE),
    "quant_envs/MixedPrecisionMultiHardware-v0": {**_SMALL_LIVE, "invalid_action": "raise"},
    "quant_envs/MixedPrecisionTable-v0": {"invalid_action": "raise"},
}


def is_masked(env_id: str) -> bool:
    """Whether ``env_id``'s environment has Discrete actions and ``action_masks()`` (built once to see)."""
    env = gym.make(f"quant_envs:{env_id}", **EXAMPLE_ENV_CONFIG.get(env_id, {}))
    try:
        return isinstance(env.action_space, gym.spaces.Discrete) and callable(getattr(env.unwrapped, "action_masks", None))
    finally:
        env.close()


def env_creator(env_id: str, masked: bool) -> Any:
    """RLlib's env creator for ``env_id``: ``config`` (RLlib's ``env_config``) is passed as keyword
    arguments; the environment is wrapped by :func:`quant_envs.wrappers.for_rllib` (flat spaces,
    the mask in the observation), or only flattened when ``masked`` is False."""

    def create(config: dict[str, Any]) -> gym.Env:
        env = gym.make(f"quant_envs:{env_id}", **dict(config))
        if masked:
            return for_rllib(env)
        flat = for_rllib(env)
        return flat.env if isinstance(flat, ActionMaskObservation) else flat

    return create


def ppo_config(env_id: str, env_config: dict[str, Any] | None = None, seed: int = 0, *,
               train_batch_size: int = 256, minibatch_size: int = 64, num_epochs: int = 4) -> Any:
    """An RLlib ``PPOConfig`` for ``env_id``: action-masking PPO when the environment has masks."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec
    from ray.tune.registry import register_env

    if env_id not in quant_envs.ENV_IDS:
        raise ValueError(f"env_id {env_id!r} is not a quant_envs id; expected one of: {', '.join(quant_envs.ENV_IDS)}")
    env_config = dict(EXAMPLE_ENV_CONFIG.get(env_id, {}) if env_config is None else env_config)
    masked = is_masked(env_id)
    register_env(env_id, env_creator(env_id, masked))
    config = (
        PPOConfig()
        .environment(env_id, env_config=env_config)
        .env_runners(num_env_runners=0, num_envs_per_env_runner=1)  # sampling in the driver: small, and errors surface
        .training(train_batch_size=train_batch_size, minibatch_size=minibatch_size, num_epochs=num_epochs, lr=3e-4)
        .debugging(seed=seed)
    )
    if masked:
        from ray.rllib.examples.rl_modules.classes.action_masking_rlm import (
            ActionMaskingTorchRLModule,
        )

        config = config.rl_module(rl_module_spec=RLModuleSpec(module_class=ActionMaskingTorchRLModule,
                                                              model_config={"fcnet_hiddens": [64, 64]}))
    return config


def train_rllib(env_id: str, iterations: int = 2, seed: int = 0, env_config: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Build PPO for ``env_id`` and run ``iterations`` training iterations; returns RLlib's result dicts."""
    import ray

    if iterations < 1:
        raise ValueError(f"iterations {iterations} is not allowed; expected an integer >= 1")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"worker_process_setup_hook": "quant_envs.register_envs"})
    algo = ppo_config(env_id, env_config, seed).build_algo()
    results: list[dict[str, Any]] = []
    try:
        for i in range(iterations):
            try:
                results.append(algo.train())
            except RuntimeError as exc:  # RLlib re-raises an environment's error as a bare RuntimeError
                raise RuntimeError(f"RLlib iteration {i + 1} on {env_id} failed: {exc or 'an environment step raised'} "
                                   "(the environment's own error is in the log above)") from exc
            if env_steps(results[-1]) <= (env_steps(results[-2]) if i else 0):  # never return silently with no steps
                raise RuntimeError(f"RLlib iteration {i + 1} on {env_id} sampled no environment steps")
        return results
    finally:
        algo.stop()


def env_steps(result: dict[str, Any]) -> int:
    """Environment steps sampled so far, from an RLlib result dict (new API stack)."""
    return int(result["env_runners"]["num_env_steps_sampled_lifetime"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m agents.rllib", description="PPO (RLlib) on a quant_envs environment.")
    p.add_argument("--env", default="quant_envs/MixedPrecision-v0", choices=sorted(quant_envs.ENV_IDS))
    p.add_argument("--iterations", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.iterations < 1:
        p.error(f"--iterations {a.iterations} is not allowed; expected an integer >= 1")
    for i, result in enumerate(train_rllib(a.env, a.iterations, a.seed), 1):
        ret = result["env_runners"].get("episode_return_mean", float("nan"))
        print(f"iteration {i}: {env_steps(result)} env steps, mean episode return {ret:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
