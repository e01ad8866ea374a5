"""``quant_envs/FeelAllocation-v2``: FeelAllocation-v1 with one observation row and one action row per device.

The problem, the action's meaning and the reward are v1's (:class:`quant_envs.feel.env.FeelAllocationV1Env`,
imported, not copied); only the layout changes, so that a policy can apply one shared rule to every
device's row (as ``CVT*-v1`` do per generator) instead of learning the same rule K times.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from quant_envs.checks import check_finite_array
from quant_envs.feel.bandwidth import min_max_bandwidth
from quant_envs.feel.env import FeelAllocationV1Env, device_features
from quant_envs.feel.reference import reference_levels, reference_round_latency

__all__ = ["ROW_FEATURES", "FeelAllocationV2Env"]

#: The columns of one observation row (one row per device).
ROW_FEATURES = (
    "compute_time_over_ref_latency",
    "upload_time_over_ref_latency",
    "snr_db_plus_20_over_100",
    "k_data_share_over_10",
    "noise_weight_share",
    "log10_bandwidth_khz_over_4",
    "balanced_latency_over_ref_latency",
)


class FeelAllocationV2Env(FeelAllocationV1Env):
    """FeelAllocation-v1 in per-device rows: one shared row rule can allocate every device.

    ## Description
    The problem of ``FeelAllocation-v0``/``-v1``: K heterogeneous edge devices train a model with
    synchronous quantized FedSGD; the agent picks every device's QSGD level s_k and bandwidth
    B_k at once and the episode's objective is the model's total training time
    T = N(s) x max_k (t_k^cmp + S(s_k) / r_k(B_k)) (Liu et al., WCNC 2022 / FITEE 2022;
    :mod:`quant_envs.feel.model`), a new seeded scenario per episode. v1 lays the devices out
    in one flat vector, so an MLP has to learn the same per-device rule once per index. Here
    observation and action have one row per device (devices are interchangeable: permuting the
    rows of the observation permutes the devices, and the same permutation of the action rows
    gives the same allocation), so a permutation-equivariant policy
    (``agents.cvt_policy.PerGeneratorPolicy``, also ``PerRowPolicy``) can learn one rule. The
    shares are a softmax over the devices, so a rule that sees only its own row still yields a
    valid allocation of the whole band.

    ## Action Space
    ``Box(-1, 1, (K, 2), float32)``: row k is device k's (level entry, share logit), with v1's
    meaning: column 0 sets the level on a log-scale bit budget (-1 is s = 1, +1 is
    ``max_levels``; 0 is s = 22), column 1 is the logit of the bandwidth share,
    x = softmax(``logit_scale`` x column 1). The zero action is equal bandwidth with s = 22.
    Finite entries outside [-1, 1] are clipped to it; NaN, inf or any shape other than (K, 2)
    raise ValueError.

    ## Observation Space
    ``Box(0, 1, (K, 7), float32)``, one row per device (:data:`ROW_FEATURES`). Columns 0-4 are
    v1's per-device features, computed at the reference allocation (equal bandwidth B / K,
    s = 127) whose round latency is t_ref: computation time / t_ref, upload time / t_ref,
    (receive SNR in dB over B / K + 20) / 100, K p_k / 10 (data share, 0.1 = average), and the
    device's share of the quantization-noise weight p_k^2 G_k^2. Columns 5-6 are the same on
    every row: v1's global feature log10(B / 1 kHz) / 4, and a scale term, tau_bal / t_ref, the
    common round latency of the min-max bandwidth split at the reference levels
    (:func:`quant_envs.feel.bandwidth.min_max_bandwidth`). Without it a row rule has to guess
    the latency the devices should share; with it, a hand-written rule that gives each device
    the band it needs to finish in 0.95 tau_bal at s = 17 (computed from its own row only) comes
    close to AO. Every feature is clipped to [0, 1].

    ## Rewards
    As v1: ``ln(T_ref / T)``, the natural log of the reference allocation's total training time
    (equal bandwidth, s = 127) over the chosen allocation's; 0 matches the reference. The level
    to reach is the paper's AO (``baselines.feel.solve(env.scenario, "ao")``); PPO with the
    per-row policy (``agents/hyperparams/ppo.yml``) is the agent this layout is for. What random
    actions, the zero action, the hand-written row rule, PPO and AO reach:
    ``benchmarks/bench_learnability.py``.
    ``info`` holds what v1's holds: ``total_time`` and ``reference_time``
    (s), ``rounds``, ``round_latency`` (s), ``levels``, ``bandwidth`` (Hz), ``projected``
    (always False) and ``log_time_ratio`` = ln(T / T_ref).

    ## Starting State
    As v1: ``make_scenario(num_devices, seed=...)`` with the seed drawn from ``np_random`` (or
    ``scenario_seed``).

    ## Episode End
    Every episode is one step: ``terminated`` is True after it; never truncated. Stepping again
    raises RuntimeError until ``reset``.

    ## Arguments
    * ``num_devices`` (int in [1, 538], 10), ``total_bandwidth`` (float > 0, 200e3 Hz),
      ``max_levels`` (int in [1, 65535], 255), ``scenario_seed`` (int >= 0 or None, None).
    * ``logit_scale`` (float in (0, 20], 3.0): how far the share logits reach.
    * ``render_mode`` (None, "ansi" or "rgb_array").

    ## Version History
    * v2: per-device rows: observation (K, 7) (v1's five device features, v1's global feature
      and the balanced-latency scale term on every row) and action (K, 2) instead of (5K + 1,)
      and (2K,); same problem, action meaning and reward.
    * v1: softmax bandwidth shares and reward ln(T_ref / T).
    * v0: initial version.
    """

    def __init__(
        self,
        num_devices: int = 10,
        total_bandwidth: float = 200e3,
        max_levels: int = 255,
        scenario_seed: int | None = None,
        logit_scale: float = 3.0,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(num_devices=num_devices, total_bandwidth=total_bandwidth, max_levels=max_levels,
                         scenario_seed=scenario_seed, logit_scale=logit_scale, render_mode=render_mode)
        k = self.num_devices
        self.action_space = spaces.Box(-1.0, 1.0, (k, 2), np.float32)
        self.observation_space = spaces.Box(0.0, 1.0, (k, len(ROW_FEATURES)), np.float32)
        self._rows: np.ndarray | None = None

    def _observation(self) -> np.ndarray:
        if self._rows is None:  # static per scenario: computed once per reset
            sc = self.scenario
            assert sc is not None  # made by reset()
            balanced = float(min_max_bandwidth(sc, reference_levels(sc)).latency) / reference_round_latency(sc)
            glob = [np.log10(self.total_bandwidth / 1e3) / 4.0, balanced]
            feats = np.concatenate([device_features(sc), np.tile(glob, (self.num_devices, 1))], axis=1)
            self._rows = np.clip(feats, 0.0, 1.0).astype(np.float32)
        return self._rows.copy()

    def decode_action(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """(levels, bandwidth in Hz, projected?) for an action of the (K, 2) action space."""
        k = self.num_devices
        a = check_finite_array("action", action, (k, 2), f"a ({k}, 2) array of finite numbers in [-1, 1] (per device: level entry, share logit)")
        return super().decode_action(np.concatenate([a[:, 0], a[:, 1]]))  # v1's flat layout: K levels, then K logits

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        self._rows = None
        return super().reset(seed=seed, options=options)
