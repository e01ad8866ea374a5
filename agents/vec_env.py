"""SB3's ``DummyVecEnv`` whose copies' terminal rewards, when due on the same step, are scored together.

The copies step one by one as in ``DummyVecEnv`` (with their Monitor and other wrappers), but
first the policies that this step's actions end episodes with are scored by one
``problem.evaluate_many`` call per problem
(:func:`quant_envs.mixed_precision.vector_env.prefetch_terminal_rewards`); each copy then uses its
record. The records are the ones stepping the copies one by one would produce, so training is
the same as with ``DummyVecEnv``; ``action_masks`` reaches every copy (``env_method``), so
sb3-contrib's MaskablePPO works unchanged. Copies of other problems step as in ``DummyVecEnv``.
"""

from __future__ import annotations

from typing import Any

from stable_baselines3.common.vec_env import DummyVecEnv

from quant_envs.mixed_precision.vector_env import prefetch_terminal_rewards


class BatchedRewardVecEnv(DummyVecEnv):
    """A ``DummyVecEnv`` (checkpointing, wrappers and attribute access included) that scores the
    terminal rewards due on one step through ``evaluate_many``."""

    num_prefetched = 0  # terminal policies scored through evaluate_many so far

    def step_wait(self) -> Any:
        self.num_prefetched += prefetch_terminal_rewards([env.unwrapped for env in self.envs], list(self.actions))
        return super().step_wait()
