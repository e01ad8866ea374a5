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
* :mod:`~quant_envs.feel.env`: ``FeelAllocation-v0``/``-v1`` and ``FeelTraining-v0``/``-v1``.
* :mod:`~quant_envs.feel.env_v2`: ``FeelAllocation-v2`` (per-device rows, for a shared per-row policy).
* :mod:`~quant_envs.feel.reference`: the reference allocation the rewards are scaled by.

Importing this package does not import torch.

Sources. The paper's full text could not be consulted offline; its abstract fixes the structure
(stochastic QSGD quantization with per-device levels, orthogonal channels, training time =
rounds x per-round latency with computation and communication, a convergence bound on the
optimality gap whose constants are fitted jointly from data and model, closed forms for the
rounds and the total time, and alternating optimisation with SCA for the levels and bisection
for the bandwidth). QSGD's definition and variance bound are from Alistarh et al. (NeurIPS 2017),
the path loss from 3GPP TR 36.814, the O(1/n) bound from the standard analysis of SGD with a
diminishing step size. Every form the paper's text would have pinned down and that we had to
choose (bit count, the smooth max in the rounds, the fitted variance shape, per-device G_k^2,
rounding, AO's starting points) is stated in the docstring of the module that implements it.
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
