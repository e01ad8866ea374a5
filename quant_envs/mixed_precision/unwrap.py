"""The mixed-precision environment inside a (possibly wrapped) Gymnasium environment, typed."""

from __future__ import annotations

from typing import TypeAlias

import gymnasium as gym

from quant_envs.mixed_precision.env import MixedPrecisionEnv
from quant_envs.mixed_precision.multi_hardware import MixedPrecisionMultiHardwareEnv
from quant_envs.mixed_precision.tables.env import MixedPrecisionTableEnv

#: Any of the mixed-precision environments (live, continuous, table-backed, multi-hardware): they
#: share ``problem``, ``bits``, ``num_layers``, ``num_steps``, ``action_masks()`` and ``policy``.
AnyMixedPrecisionEnv: TypeAlias = MixedPrecisionEnv | MixedPrecisionTableEnv | MixedPrecisionMultiHardwareEnv


def mixed_precision_env(env: gym.Env, name: str = "env") -> AnyMixedPrecisionEnv:
    """``env.unwrapped``, or TypeError naming ``name`` when it is not a mixed-precision environment."""
    inner = env.unwrapped
    if not isinstance(inner, (MixedPrecisionEnv, MixedPrecisionTableEnv, MixedPrecisionMultiHardwareEnv)):
        raise TypeError(f"{name}={inner!r} is not a mixed-precision environment; expected MixedPrecision-*, "
                        f"MixedPrecisionTable-v0, MixedPrecisionTableContinuous-v0 or MixedPrecisionMultiHardware-v0")
    return inner
