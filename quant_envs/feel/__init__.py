"""Quantized federated edge learning (Liu, Jiang, Zhu, Chen, Jiang, Luo, Du, Wang, "Training time
minimization in quantized federated edge learning under bandwidth constraint", WCNC 2022; FITEE
2022; arXiv:2112.14387).

Heterogeneous edge devices upload QSGD-quantized gradients over orthogonal channels; coarser
quantization shortens each round but costs rounds. Modules:

* :mod:`~quant_envs.feel.model`: bits, QSGD variance, Shannon rate, the convergence model.
* :mod:`~quant_envs.feel.scenario`: seeded scenarios (:func:`make_scenario`).
* :mod:`~quant_envs.feel.training_time`: the objective (:func:`total_time`) and its parts.
* :mod:`~quant_envs.feel.bandwidth`: Lambert-W rate inverse, min-max bandwidth split, projection.
* :mod:`~quant_envs.feel.simulator` (torch): real quantized FedSGD on digits.
* :mod:`~quant_envs.feel.fitting`: the joint data-and-model-driven fitting of the constants.
* :mod:`~quant_envs.feel.env`: ``FeelAllocation-v0`` and ``FeelTraining-v0``.

Importing this package does not import torch.
"""

from quant_envs.feel.bandwidth import bandwidth_for_rate, min_max_bandwidth, project_shares
from quant_envs.feel.model import (
    FULL_PRECISION,
    ConvergenceModel,
    bits_per_upload,
    qsgd_expected_error,
    qsgd_variance_bound,
    uplink_rate,
)
from quant_envs.feel.scenario import DEFAULT_CONVERGENCE, Scenario, make_scenario, path_loss_db
from quant_envs.feel.training_time import TimeBreakdown, rounds, time_breakdown, total_time

__all__ = [
    "DEFAULT_CONVERGENCE",
    "FULL_PRECISION",
    "ConvergenceModel",
    "Scenario",
    "TimeBreakdown",
    "bandwidth_for_rate",
    "bits_per_upload",
    "make_scenario",
    "min_max_bandwidth",
    "path_loss_db",
    "project_shares",
    "qsgd_expected_error",
    "qsgd_variance_bound",
    "rounds",
    "time_breakdown",
    "total_time",
    "uplink_rate",
]
