"""Gymnasium wrappers that meet other libraries' conventions.

* :class:`ActionMaskObservation`: the observation as ``{"observations": obs, "action_mask": mask}``,
  the Dict layout of RLlib's action-masking modules (and of many other masked-PPO codes), built from
  the environment's own ``action_masks()``.
* :class:`FlattenAction`: a multi-dimensional ``Box`` action (``CVT2D-v1``'s ``(k, 2)``,
  ``FeelAllocation-v2``'s ``(K, 2)``) taken as a flat vector, for libraries that accept only 1-D
  actions (RLlib: "Action space has multiple dimensions").
* :func:`for_rllib`: what RLlib's PPO needs of any quant_envs id: a multi-dimensional ``Box``
  observation flattened (Gymnasium's ``FlattenObservation``; RLlib: "2D Box spaces are not
  supported"), a multi-dimensional ``Box`` action flattened (:class:`FlattenAction`), and a
  ``Discrete`` environment with ``action_masks()`` wrapped in :class:`ActionMaskObservation`.
  The per-generator structure of ``agents.cvt_policy`` is not carried over: RLlib sees a plain
  vector and trains its default MLP on it.
* :class:`ProjectionCounter`: counts the masked actions an environment replaced
  (``info["projected_from"]``) per episode, and puts the count into the final step's ``info``
  (``info["projected_actions"]``), so an agent that ignores masks sees in its logs what it did.

>>> import gymnasium as gym, quant_envs
>>> from quant_envs.wrappers import ActionMaskObservation
>>> env = ActionMaskObservation(gym.make("quant_envs/MixedPrecision-v0", task="digits-cnn"))
>>> obs, info = env.reset(seed=0)
>>> sorted(obs)
['action_mask', 'observations']
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["ActionMaskObservation", "FlattenAction", "ProjectionCounter", "for_rllib"]


class ActionMaskObservation(gym.ObservationWrapper[dict[str, np.ndarray], Any, np.ndarray],
                            gym.utils.RecordConstructorArgs):
    """Observation ``{"observations": obs, "action_mask": action_masks()}`` of a masked environment.

    The wrapped environment needs a ``Discrete`` action space and an ``action_masks()`` method (as
    ``quant_envs/MixedPrecision-v0`` has); the mask is an ``int8`` 0/1 vector of length ``n``, as RLlib's
    ``ActionMaskingTorchRLModule`` expects. The mask is read after ``reset`` and after every ``step``,
    so it always describes the actions allowed in the observation it comes with.
    """

    def __init__(self, env: gym.Env) -> None:
        if not isinstance(env.action_space, spaces.Discrete):
            raise TypeError(f"env has action space {env.action_space}; ActionMaskObservation needs a Discrete one")
        if not callable(getattr(env.unwrapped, "action_masks", None)):
            raise TypeError(f"env {env.unwrapped!r} has no action_masks() method; ActionMaskObservation needs one")
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        n = int(env.action_space.n)
        # gymnasium declares Dict a Space[dict[str, Space]]; its elements are dicts of arrays
        self.observation_space = spaces.Dict({  # type: ignore[assignment]
            "observations": env.observation_space,
            "action_mask": spaces.Box(0, 1, shape=(n,), dtype=np.int8),
        })

    def observation(self, observation: np.ndarray) -> dict[str, np.ndarray]:
        mask = np.asarray(self.env.unwrapped.action_masks(), dtype=np.int8)  # type: ignore[attr-defined]
        return {"observations": observation, "action_mask": mask}

    def action_masks(self) -> np.ndarray:
        """The wrapped environment's mask (so sb3-contrib's MaskablePPO also works through the wrapper)."""
        return np.asarray(self.env.unwrapped.action_masks(), dtype=bool)  # type: ignore[attr-defined]


class FlattenAction(gym.ActionWrapper[Any, np.ndarray, np.ndarray], gym.utils.RecordConstructorArgs):
    """A multi-dimensional ``Box`` action space seen as the flat ``Box`` of the same bounds.

    The agent sends a vector of ``prod(shape)`` numbers (what ``gymnasium.spaces.flatten_space``
    makes of the Box); the environment receives it reshaped (``gymnasium.spaces.unflatten``), row-major: for ``CVT2D-v1``
    entries ``2i, 2i + 1`` are generator ``i``'s move. The inverse of Gymnasium's
    ``FlattenObservation`` for actions.
    """

    def __init__(self, env: gym.Env) -> None:
        if not isinstance(env.action_space, spaces.Box):
            raise TypeError(f"env has action space {env.action_space}; FlattenAction needs a Box one")
        gym.utils.RecordConstructorArgs.__init__(self)  # the spec can name it (gym.make re-creates the stack)
        gym.ActionWrapper.__init__(self, env)
        self._inner_space: spaces.Box = env.action_space
        # a Box flattens to a Box of the same bounds and dtype
        self.action_space = spaces.Box(env.action_space.low.reshape(-1), env.action_space.high.reshape(-1),
                                       dtype=env.action_space.dtype)

    def action(self, action: np.ndarray) -> np.ndarray:
        flat = np.asarray(action, dtype=self._inner_space.dtype)
        if flat.shape != self.action_space.shape:
            raise ValueError(f"action of shape {flat.shape} is not allowed; expected shape {self.action_space.shape}")
        return np.asarray(spaces.unflatten(self._inner_space, flat))


def for_rllib(env: gym.Env) -> gym.Env:
    """``env`` as RLlib's PPO takes it (see the module docstring); an env RLlib already takes is
    returned as it is.

    >>> import gymnasium as gym, quant_envs
    >>> env = for_rllib(gym.make("quant_envs/CVT2D-v1"))
    >>> env.observation_space.shape, env.action_space.shape
    ((88,), (16,))
    """
    if isinstance(env.observation_space, spaces.Box) and len(env.observation_space.shape) > 1:
        env = gym.wrappers.FlattenObservation(env)
    if isinstance(env.action_space, spaces.Box) and len(env.action_space.shape) > 1:
        env = FlattenAction(env)
    if isinstance(env.action_space, spaces.Discrete) and callable(getattr(env.unwrapped, "action_masks", None)):
        env = ActionMaskObservation(env)
    return env


class ProjectionCounter(gym.Wrapper[Any, Any, Any, Any]):
    """Counts the actions the environment projected (replaced) in the current episode.

    Every step's ``info`` gets ``projected_actions`` (the count so far in this episode); an
    environment that never projects reports 0.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.projected_actions = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        self.projected_actions = 0
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if "projected_from" in info:
            self.projected_actions += 1
        info = {**info, "projected_actions": self.projected_actions}
        return obs, reward, terminated, truncated, info
