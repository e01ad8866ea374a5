"""One episode horizon under ``gym.make``: the environment's own argument and the spec's TimeLimit.

The environments that truncate (CVT, FeelTraining) count their own horizon (``max_steps``,
``max_rounds``: the observation of FeelTraining is scaled by it), and their specs carry the default
as ``max_episode_steps``, which SB3's TimeFeatureWrapper, RL Zoo and RLlib read. ``gym.make`` wraps
``TimeLimit(spec.max_episode_steps)`` around an environment that cannot see that wrapper, so
``gym.make(id, max_steps=500)`` alone would be cut at the spec's 200. The specs therefore list
:class:`HorizonSync` as an additional wrapper, which ``make`` applies right outside the TimeLimit,
where both numbers are visible, and which makes them one:

* ``gym.make(id)``: both are the default; nothing changes.
* ``gym.make(id, max_steps=N)``: the TimeLimit is rebuilt at N.
* ``gym.make(id, max_episode_steps=N)``: the environment's horizon becomes N.
* both given and different: ValueError. (A ``max_episode_steps`` equal to the spec's default
  cannot be told from none given: the environment's argument wins.)
* ``gym.make(id, max_episode_steps=-1)``: no TimeLimit; the environment truncates at its own horizon.
"""

from __future__ import annotations

import gymnasium as gym
from gymnasium.envs.registration import WrapperSpec, registry
from gymnasium.wrappers import TimeLimit

from quant_envs.checks import check_int

__all__ = ["HORIZON_WRAPPER", "HorizonSync", "horizon_argument"]


def horizon_argument(env: gym.Env) -> str:
    """Name of the constructor argument that is ``env``'s episode horizon (``env.unwrapped`` is used)."""
    name = getattr(env.unwrapped, "horizon_argument", None)
    if not isinstance(name, str):
        raise TypeError(f"{type(env.unwrapped).__name__} has no episode horizon (no horizon_argument attribute)")
    return name


class HorizonSync(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Makes the TimeLimit that ``gym.make`` applied and the environment's horizon agree (module docstring).

    Pass-through after construction: truncation stays the environment's (``truncated`` at its
    horizon) and the TimeLimit's, now at the same step, so an episode truncates once.
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        base = env.unwrapped
        argument = horizon_argument(base)
        horizon = getattr(base, argument)
        limit = env.spec.max_episode_steps if env.spec is not None else None
        if limit is not None and limit != horizon:
            given = base.spec is not None and argument in base.spec.kwargs
            if not given:
                # gym.make(id, max_episode_steps=N): the environment's horizon follows.
                setattr(base, argument, check_int("max_episode_steps", limit, min_value=1))
            elif isinstance(env, TimeLimit) and limit == _registered_limit(base):
                # gym.make(id, max_steps=N): the spec's default limit yields to the argument.
                env = TimeLimit(env.env, horizon)
            else:
                raise ValueError(
                    f"max_episode_steps={limit} and {argument}={horizon} disagree; give one of them, "
                    f"or both equal (both set the episode horizon of {base.spec.id if base.spec else type(base).__name__})"
                )
        gym.Wrapper.__init__(self, env)


def _registered_limit(base: gym.Env) -> int | None:
    """The ``max_episode_steps`` registered for ``base``'s id (what make uses when given none)."""
    spec = registry.get(base.spec.id) if base.spec is not None else None
    return None if spec is None else spec.max_episode_steps


#: The additional wrapper each truncating id is registered with (``quant_envs.register_envs``).
HORIZON_WRAPPER = WrapperSpec(name="HorizonSync", entry_point="quant_envs.horizons:HorizonSync", kwargs={})
