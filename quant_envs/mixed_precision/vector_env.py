"""N mixed-precision episodes in lockstep, their terminal rewards scored together.

``gym.make_vec("quant_envs/MixedPrecision-v1", num_envs=N, vectorization_mode="vector_entry_point")``
builds a :class:`MixedPrecisionVectorEnv`: Gymnasium's ``SyncVectorEnv`` (the same observations,
rewards, autoreset modes and info layout) over N copies of the environment that share one
problem (float model, calibration, evaluation cache), where the policies of the episodes that end
on the same step are scored by one ``problem.evaluate_many`` call before the copies step. The
records are those ``problem.evaluate`` gives one by one, in the copies' order, so a run is the
same as with ``SyncVectorEnv``; only the scoring is grouped (which pays where ``evaluate_many``
batches, e.g. on a GPU). ``action_masks()`` returns the (N, actions) mask for MaskablePPO.

:func:`prefetch_terminal_rewards` is the step both this class and the SB3 adapter
(``agents.vec_env.BatchedRewardVecEnv``) take before stepping their copies.
"""

from __future__ import annotations

import copy
import functools
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.vector.utils import iterate

from quant_envs.checks import check_int
from quant_envs.mixed_precision.env import MixedPrecisionContinuousEnv, MixedPrecisionEnv


def prefetch_terminal_rewards(envs: Sequence[Any], actions: Sequence[Any],
                              active: Sequence[bool] | None = None) -> int:
    """Score together the policies that ``actions`` will end episodes with, before the envs step.

    ``envs`` are unwrapped environments (those without ``terminal_policy``, e.g. other problems,
    are skipped); ``active[i]`` False skips copy i (it resets instead of stepping). Policies are
    grouped by problem and each group goes to one ``problem.evaluate_many`` call, in the copies'
    order (so cache hits and counters are those of stepping the copies one by one); each copy's
    next step then uses its record. Returns the number of policies handed over.
    """
    groups: dict[int, list[tuple[Any, Any]]] = defaultdict(list)
    problems: dict[int, Any] = {}
    for i, (env, action) in enumerate(zip(envs, actions)):
        if (active is not None and not active[i]) or not hasattr(env, "terminal_policy"):
            continue
        policy = env.terminal_policy(action)
        if policy is not None:
            groups[id(env.problem)].append((env, policy))
            problems[id(env.problem)] = env.problem
    for key, items in groups.items():
        for (env, _), evaluation in zip(items, problems[key].evaluate_many([p for _, p in items])):
            env.prefetch(evaluation)
    return sum(len(items) for items in groups.values())


def _sibling(env: MixedPrecisionEnv) -> MixedPrecisionEnv:
    """Another copy of ``env`` on the same problem, in its own fresh episode (no second float model
    is loaded, whatever ``share_problem`` says)."""
    twin = copy.deepcopy(env, memo={id(env.problem): env.problem})  # all its own but the problem
    twin._np_random = None
    twin._np_random_seed = None
    twin._reset_state()
    return twin


class MixedPrecisionVectorEnv(SyncVectorEnv):
    """``num_envs`` copies of :class:`~quant_envs.mixed_precision.env.MixedPrecisionEnv` in lockstep.

    Args:
        num_envs: the number of copies (>= 1).
        autoreset_mode: Gymnasium's autoreset mode ("NextStep", default as in ``SyncVectorEnv``,
            "SameStep" or "Disabled").
        copy: return copies of the observations (as ``SyncVectorEnv``).
        **env_kwargs: the environment's arguments (``task``, ``hardware``, ``budget_fraction``, ...),
            the same for every copy; the copies share one problem.
    """

    env_class: type[MixedPrecisionEnv] = MixedPrecisionEnv

    def __init__(self, num_envs: int = 1, *, autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
                 copy: bool = True, **env_kwargs: Any) -> None:
        num_envs = check_int("num_envs", num_envs, min_value=1)
        first = self.env_class(**env_kwargs)
        self._copies: list[MixedPrecisionEnv] = [first] + [_sibling(first) for _ in range(num_envs - 1)]
        super().__init__([functools.partial(lambda e: e, e) for e in self._copies], copy=copy,
                         autoreset_mode=autoreset_mode)
        self.problem = first.problem
        #: terminal policies scored through ``evaluate_many`` so far (for tests and benchmarks)
        self.num_prefetched = 0

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        per_env = list(iterate(self.action_space, actions))
        active = None
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            active = [not done for done in self._autoreset_envs]  # those copies reset on this step
        self.num_prefetched += prefetch_terminal_rewards(self.envs, per_env, active)
        return super().step(actions)

    def action_masks(self) -> np.ndarray:
        """The (num_envs, actions) boolean mask of every copy's allowed actions (all True for a
        copy whose episode has ended and that resets on the next step)."""
        return np.stack([env.action_masks() for env in self._copies])


class MixedPrecisionContinuousVectorEnv(MixedPrecisionVectorEnv):
    """``num_envs`` copies of :class:`~quant_envs.mixed_precision.env.MixedPrecisionContinuousEnv`
    in lockstep (see :class:`MixedPrecisionVectorEnv`)."""

    env_class = MixedPrecisionContinuousEnv
