"""quant-envs: Gymnasium environments for quantization problems.

Importing this package registers every environment id below with Gymnasium. Entry points are
strings, so no environment module (and no torch model) is imported until ``gym.make`` is called.

>>> import gymnasium as gym, quant_envs
>>> env = gym.make("quant_envs/MixedPrecision-v1")
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

from quant_envs.horizons import HORIZON_WRAPPER
from quant_envs.mixed_precision.config import DEFAULTS_V0, DEFAULTS_V1  # torch-free

__version__ = "0.1.0"

#: Every environment id this package registers, with its entry point.
ENV_IDS: dict[str, str] = {
    # 1. hardware-aware mixed-precision quantization (the core problem)
    "quant_envs/MixedPrecision-v1": "quant_envs.mixed_precision.env:MixedPrecisionEnv",
    "quant_envs/MixedPrecisionContinuous-v1": "quant_envs.mixed_precision.env:MixedPrecisionContinuousEnv",
    "quant_envs/MixedPrecision-v0": "quant_envs.mixed_precision.env:MixedPrecisionEnv",
    "quant_envs/MixedPrecisionContinuous-v0": "quant_envs.mixed_precision.env:MixedPrecisionContinuousEnv",
    "quant_envs/MixedPrecisionTable-v0": "quant_envs.mixed_precision.tables.env:MixedPrecisionTableEnv",
    "quant_envs/MixedPrecisionTableContinuous-v0": "quant_envs.mixed_precision.tables.env:MixedPrecisionTableContinuousEnv",
    "quant_envs/MixedPrecisionMultiHardware-v0": "quant_envs.mixed_precision.multi_hardware:MixedPrecisionMultiHardwareEnv",
    # 2. companding scalar quantizers
    "quant_envs/SplineCompander-v0": "quant_envs.compander.env:SplineCompanderEnv",
    "quant_envs/ScalarQuantizer-v0": "quant_envs.compander.env:ScalarQuantizerEnv",
    "quant_envs/SplineCompander-v1": "quant_envs.compander.env:SplineCompanderV1Env",
    # 3. quantized federated edge learning
    "quant_envs/FeelAllocation-v0": "quant_envs.feel.env:FeelAllocationEnv",
    "quant_envs/FeelTraining-v0": "quant_envs.feel.env:FeelTrainingEnv",
    "quant_envs/FeelAllocation-v1": "quant_envs.feel.env:FeelAllocationV1Env",
    "quant_envs/FeelTraining-v1": "quant_envs.feel.env:FeelTrainingV1Env",
    "quant_envs/FeelAllocation-v2": "quant_envs.feel.env_v2:FeelAllocationV2Env",
    # 4. centroidal Voronoi tessellations
    "quant_envs/CVT1D-v0": "quant_envs.cvt.env:CVT1DEnv",
    "quant_envs/CVT2D-v0": "quant_envs.cvt.env:CVT2DEnv",
    "quant_envs/CVT1D-v1": "quant_envs.cvt.env_v1:CVT1DEnvV1",
    "quant_envs/CVT2D-v1": "quant_envs.cvt.env_v1:CVT2DEnvV1",
}

#: Default arguments an id is registered with: the v0 mixed-precision ids keep their original
#: defaults (``mixed_precision.config.DEFAULTS_V0``: digits-mbnet, budget_fraction 0.25,
#: finetune_steps 20), registered as their differences from the constructors' v1 defaults.
ENV_KWARGS: dict[str, dict] = {
    "quant_envs/MixedPrecision-v0": DEFAULTS_V0.changes_from(DEFAULTS_V1),
    "quant_envs/MixedPrecisionContinuous-v0": DEFAULTS_V0.changes_from(DEFAULTS_V1),
}

#: The default episode horizon of every id that truncates, registered as its ``max_episode_steps``
#: (it equals the environment's own ``max_steps`` / ``max_rounds`` default). ``gym.make(id,
#: max_steps=N)`` and ``gym.make(id, max_episode_steps=N)`` both change it (quant_envs.horizons).
#: Every other id ends by termination only.
ENV_MAX_EPISODE_STEPS: dict[str, int] = {
    "quant_envs/FeelTraining-v0": 200,
    "quant_envs/FeelTraining-v1": 500,
    "quant_envs/CVT1D-v0": 200,
    "quant_envs/CVT2D-v0": 200,
    "quant_envs/CVT1D-v1": 50,
    "quant_envs/CVT2D-v1": 50,
}


#: The ids with a batched vector environment (``gym.make_vec(id, num_envs=N)``; see
#: :mod:`quant_envs.mixed_precision.vector_env`): the live mixed-precision ids.
ENV_VECTOR_ENTRY_POINTS: dict[str, str] = {
    "quant_envs/MixedPrecision-v1": "quant_envs.mixed_precision.vector_env:MixedPrecisionVectorEnv",
    "quant_envs/MixedPrecision-v0": "quant_envs.mixed_precision.vector_env:MixedPrecisionVectorEnv",
    "quant_envs/MixedPrecisionContinuous-v1": "quant_envs.mixed_precision.vector_env:MixedPrecisionContinuousVectorEnv",
    "quant_envs/MixedPrecisionContinuous-v0": "quant_envs.mixed_precision.vector_env:MixedPrecisionContinuousVectorEnv",
}


def register_envs() -> None:
    """Register every id in :data:`ENV_IDS` with Gymnasium (idempotent; importing the package does it).

    A fresh process that never imports ``quant_envs`` (a Ray worker, a ``spawn``/``forkserver``
    child) does not know the ids. Either name the module in the id, which Gymnasium imports first:
    ``gym.make("quant_envs:quant_envs/MixedPrecision-v1")``, or run this function in every worker:
    ``ray.init(runtime_env={"worker_process_setup_hook": "quant_envs.register_envs"})``.
    """
    for env_id, entry_point in ENV_IDS.items():
        # Re-importing (e.g. importlib.reload) must not warn about re-registration.
        if env_id not in registry:
            horizon = ENV_MAX_EPISODE_STEPS.get(env_id)
            register(
                id=env_id,
                entry_point=entry_point,
                kwargs=dict(ENV_KWARGS.get(env_id, {})),
                max_episode_steps=horizon,
                vector_entry_point=ENV_VECTOR_ENTRY_POINTS.get(env_id),
                # make's TimeLimit and the env's own horizon argument kept equal (quant_envs.horizons)
                additional_wrappers=() if horizon is None else (HORIZON_WRAPPER,),
            )


register_envs()

__all__ = ["ENV_IDS", "ENV_KWARGS", "ENV_MAX_EPISODE_STEPS", "ENV_VECTOR_ENTRY_POINTS", "__version__", "register_envs"]
