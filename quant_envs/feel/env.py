"""Gymnasium environments for quantized federated edge learning.

* ``quant_envs/FeelAllocation-v0`` (:class:`FeelAllocationEnv`): model-based, one step per
  episode: choose every device's quantization level and bandwidth share at once; the reward is
  minus the model's total training time relative to a fixed reference allocation.
* ``quant_envs/FeelTraining-v0`` (:class:`FeelTrainingEnv`): simulator-based, one step per
  federated round of real quantized training on digits; choose every device's level for the
  round; the reward is minus that round's latency relative to a reference round.
* ``quant_envs/FeelAllocation-v1`` (:class:`FeelAllocationV1Env`): bandwidth shares through a
  softmax (every action is a valid allocation) and a log-scale reward ln(T_ref / T).
* ``quant_envs/FeelTraining-v1`` (:class:`FeelTrainingV1Env`): the model's target optimality gap
  as the goal and a level menu that holds AO's choices.

Every environment here raises after the episode has ended until ``reset`` (as
``MixedPrecision-v0``), and runs its torch work on one thread: the model is tiny, and torch ops
that never start an OpenMP pool keep ``fork``-based workers (``gym.make_vec(...,
vectorization_mode="async")``, SB3's ``SubprocVecEnv``) from hanging when the parent process
has already used torch with several threads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray
from scipy.special import softmax

from quant_envs.base import QuantEnv
from quant_envs.checks import check_choice, check_finite_array, check_float, check_int
from quant_envs.feel.bandwidth import min_max_bandwidth, project_shares
from quant_envs.feel.model import FULL_PRECISION, bits_per_upload, uplink_rate
from quant_envs.feel.reference import (
    REFERENCE_LEVEL,
    equal_bandwidth,
    reference_levels,
    reference_round_latency,
    reference_time,
)
from quant_envs.feel.scenario import DEFAULT_CONVERGENCE, Scenario, make_scenario
from quant_envs.feel.training_time import device_latency, time_breakdown
from quant_envs.rendering import figure_to_rgb, new_figure

if TYPE_CHECKING:  # imported on first reset: it brings torch
    from quant_envs.feel.simulator import FederatedSimulator

__all__ = ["REFERENCE_LEVEL", "FeelAllocationEnv", "FeelAllocationV1Env", "FeelTrainingEnv", "FeelTrainingV1Env", "device_features"]

#: The largest QSGD level a menu may hold (16-bit level index); larger values only overflow.
MAX_MENU_LEVEL = 2**16 - 1

#: FeelTraining-v1's default menu: every level 1..20 (AO's choices on the default scenarios lie
#: in 6..21), then 24, 31, 63, 127 and 0 = unquantized float32.
V1_LEVEL_MENU = (*range(1, 21), 24, 31, 63, 127, FULL_PRECISION)


def device_features(scenario: Scenario) -> np.ndarray:
    """[K, 5] static per-device features in [0, 1] (see the environments' Observation Space)."""
    k = scenario.num_devices
    ref_lv, eq = reference_levels(scenario), equal_bandwidth(scenario)
    up = bits_per_upload(ref_lv, scenario.model_dim) / uplink_rate(eq, scenario.snr_density)
    t_ref = float(np.max(scenario.compute_time + up))
    snr_db = 10.0 * np.log10(scenario.snr_density / eq)
    noise = scenario.noise_weights
    feats = np.stack(
        [
            scenario.compute_time / t_ref,
            up / t_ref,
            (snr_db + 20.0) / 100.0,
            scenario.weights * k / 10.0,
            noise / max(noise.sum(), 1e-300),
        ],
        axis=1,
    )
    return np.clip(feats, 0.0, 1.0)


def _check_render_mode(render_mode: str | None, modes: list[str]) -> str | None:
    """Kept for callers of the former helper; the environments use ``QuantEnv._set_render_mode``."""
    return check_choice("render_mode", render_mode, [None, *modes])


def _level_menu(level_menu: Any) -> np.ndarray:
    """A non-empty sequence of distinct ints in {0} U [1, MAX_MENU_LEVEL], else an error naming it."""
    allowed = f"a non-empty sequence of distinct integer QSGD levels in [0, {MAX_MENU_LEVEL}] (0 = full precision)"
    if isinstance(level_menu, (str, bytes)) or not hasattr(level_menu, "__iter__"):
        raise TypeError(f"level_menu={level_menu!r} is not allowed; expected {allowed}")
    menu = [check_int("level_menu", s, min_value=0, max_value=MAX_MENU_LEVEL) for s in level_menu]
    if not menu or len(set(menu)) != len(menu):
        raise ValueError(f"level_menu={tuple(menu)!r} is not allowed; expected {allowed}")
    return np.array(menu, dtype=np.int64)


class _SingleThreadTorch:
    """Run torch ops on one thread and restore the caller's setting afterwards (see the module doc)."""

    def __enter__(self) -> None:
        import torch

        self._previous = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        import torch

        torch.set_num_threads(self._previous)


def _bar_frame(title: str, levels: np.ndarray, second: np.ndarray | None, second_label: str) -> np.ndarray:
    """A small RGB frame: per-device QSGD levels (and optionally a second per-device quantity)."""
    fig = new_figure(4.0, 3.0, dpi=80)
    axes = fig.subplots(2 if second is not None else 1, 1, squeeze=False)[:, 0]
    idx = np.arange(len(levels))
    bits = np.where(levels == FULL_PRECISION, 32.0, 1.0 + np.log2(np.maximum(levels, 1) + 1.0))
    axes[0].bar(idx, bits, color="tab:blue")
    axes[0].set_ylabel("bits / coordinate")
    if second is not None:
        axes[1].bar(idx, second, color="tab:orange")
        axes[1].set_ylabel(second_label)
    axes[-1].set_xlabel("device")
    axes[0].set_title(title, fontsize=8)
    fig.tight_layout()
    return figure_to_rgb(fig)


class FeelAllocationEnv(QuantEnv[NDArray[np.float32], np.ndarray]):
    """Joint quantization-level and bandwidth allocation for quantized federated edge learning.

    ## Description
    K heterogeneous edge devices train a model with synchronous quantized FedSGD: every round
    each device computes its local gradient (D_k c_k / f_k seconds), quantizes it with QSGD at
    s_k levels and uploads 32 + d + d log2(s_k + 1) bits over its own band of B_k Hz at the
    Shannon rate B_k log2(1 + p_k h_k / (N0 B_k)). Coarser levels shorten the round but add
    quantization noise and hence rounds: N(s) = (a0^p + (a1 Q(s))^p)^(1/p) / eps - gamma with
    Q(s) = sum_k p_k^2 G_k^2 q(s_k), constants fitted to the real simulator (Liu et al., WCNC
    2022 / FITEE 2022; :mod:`quant_envs.feel.model`). The agent picks all levels and bandwidth
    shares in one step; the episode's objective is the total training time N(s) x max_k latency.
    Each episode draws a new seeded scenario (device positions, shadowing, CPUs, label-skewed
    data shares; :func:`quant_envs.feel.make_scenario`) unless ``scenario_seed`` fixes one.

    ## Action Space
    ``Box(-1, 1, (2K,), float32)``. Entry k in [-1, 1] maps to device k's bit budget
    b_k = 1 + (a_k + 1) / 2 x (log2(max_levels + 1) - 1) and its level s_k = round(2^{b_k} - 1)
    in [1, max_levels] (-1 is s = 1, the sign-like quantizer; +1 is max_levels). Entry K + k maps
    to a bandwidth share u_k = (a_{K+k} + 1) / 2 in [0, 1]. **Projection**: the shares are
    replaced by their Euclidean projection onto {x : x_k >= min_share, sum_k x_k <= 1}
    (sort-based simplex projection; shares already inside are only raised to ``min_share``),
    so the limit sum_k B_k <= B is never broken; B_k = x_k B. Unused bandwidth is wasted.
    Finite entries outside [-1, 1] are clipped to it; NaN, inf or any shape other than (2K,)
    raise ValueError.

    ## Observation Space
    ``Box(0, 1, (5K + 1,), float32)``: for each device k (row-major, K rows of 5), all computed
    at the reference allocation (equal bandwidth B / K, 8-bit levels s = 127) whose round
    latency is t_ref: (1) computation time / t_ref; (2) upload time / t_ref; (3) (receive SNR in
    dB over B / K + 20) / 100; (4) K p_k / 10 (data share, 0.1 = average); (5) the device's share
    p_k^2 G_k^2 / sum_j p_j^2 G_j^2 of the quantization-noise weight. The last entry is
    log10(B / 1 kHz) / 4. Every feature is clipped to [0, 1].

    ## Rewards
    ``-T / T_ref``: the total training time of the chosen (projected) allocation divided by the
    reference allocation's (equal bandwidth, s = 127 for every device), clipped below at
    ``-reward_clip``. -1 matches the reference; the paper's AO (``baselines.feel.solve(env.scenario,
    "ao")``) reaches -0.48 to -0.65 on the default scenarios (reset seeds 0..7). ``info`` holds ``total_time`` and ``reference_time`` (s), ``rounds``,
    ``round_latency`` (s), ``levels``, ``bandwidth`` (Hz) and ``projected`` (whether the shares
    were changed by the projection).

    ## Starting State
    A scenario from ``make_scenario(num_devices, seed=...)`` with the seed drawn from the
    environment's ``np_random`` (or ``scenario_seed``), ``total_bandwidth`` and ``max_levels``.

    ## Episode End
    Every episode is one step: ``terminated`` is True after it; never truncated.

    ## Arguments
    * ``num_devices`` (int, 10): K.
    * ``total_bandwidth`` (float, 200e3): B in Hz.
    * ``max_levels`` (int, 255): largest QSGD level s.
    * ``scenario_seed`` (int or None, None): fix the scenario instead of drawing one per episode.
    * ``min_share`` (float, 1e-3 / K): the smallest bandwidth share a device can get.
    * ``reward_clip`` (float, 100): rewards are at least -reward_clip.
    * ``render_mode`` (None, "ansi" or "rgb_array": bits per coordinate and bandwidth per device).

    Stepping again after the episode's step raises RuntimeError until ``reset``.

    ## Version History
    * v0: initial version. Not learnable as it stands: 100% of uniform random actions score the
      -100 clip (the shares (a + 1) / 2 sum to about K / 2, the projection zeroes most devices);
      use ``FeelAllocation-v1``.
    """

    observation_space: spaces.Box[np.float32]
    action_space: spaces.Box[np.float32]

    def __init__(
        self,
        num_devices: int = 10,
        total_bandwidth: float = 200e3,
        max_levels: int = 255,
        scenario_seed: int | None = None,
        min_share: float | None = None,
        reward_clip: float = 100.0,
        render_mode: str | None = None,
    ) -> None:
        self.num_devices = check_int("num_devices", num_devices, min_value=1, max_value=538)
        self.total_bandwidth = check_float("total_bandwidth", total_bandwidth, min_value=0.0, min_inclusive=False)
        self.max_levels = check_int("max_levels", max_levels, min_value=1, max_value=MAX_MENU_LEVEL)
        self.scenario_seed = None if scenario_seed is None else check_int("scenario_seed", scenario_seed, min_value=0)
        if min_share is None:
            min_share = 1e-3 / self.num_devices
        self.min_share = check_float("min_share", min_share, min_value=0.0, max_value=1.0 / self.num_devices, min_inclusive=False, max_inclusive=False)
        self.reward_clip = check_float("reward_clip", reward_clip, min_value=0.0, min_inclusive=False)
        self._set_render_mode(render_mode)
        k = self.num_devices
        self.action_space = spaces.Box(-1.0, 1.0, (2 * k,), np.float32)
        self.observation_space = spaces.Box(0.0, 1.0, (5 * k + 1,), np.float32)
        self.scenario: Scenario | None = None
        self._last: dict[str, Any] | None = None

    def _observation(self) -> NDArray[np.float32]:
        assert self.scenario is not None  # made by reset()
        feats = device_features(self.scenario).ravel()
        glob = np.clip(np.log10(self.total_bandwidth / 1e3) / 4.0, 0.0, 1.0)
        return np.append(feats, glob).astype(np.float32)

    def _levels(self, a: np.ndarray) -> np.ndarray:
        """QSGD levels from the first K (clipped) entries: a log-scale bit budget, rounded."""
        bits = 1.0 + (a + 1.0) / 2.0 * (np.log2(self.max_levels + 1.0) - 1.0)
        return np.clip(np.round(np.exp2(bits) - 1.0), 1, self.max_levels).astype(np.int64)

    def _shares(self, a: np.ndarray) -> tuple[np.ndarray, bool]:
        """(bandwidth shares, projected?) from the last K (clipped) entries."""
        shares = (a + 1.0) / 2.0
        proj = project_shares(shares, self.min_share)
        return proj, not np.allclose(proj, shares, rtol=0.0, atol=1e-12)

    def decode_action(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """(levels, bandwidth in Hz, projected?) for an action of the action space."""
        k = self.num_devices
        a = check_finite_array("action", action, (2 * k,), f"{2 * k} finite numbers (K levels, then K bandwidth shares) in [-1, 1]")
        a = np.clip(a, -1.0, 1.0)  # finite values outside the box are clipped, as the box's own bounds
        shares, projected = self._shares(a[k:])
        return self._levels(a[:k]), shares * self.total_bandwidth * (1.0 - 1e-12), projected

    def _reward(self, total_time: float) -> float:
        return -min(total_time / self.reference_time, self.reward_clip)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[NDArray[np.float32], dict[str, Any]]:
        super().reset(seed=seed)
        scen_seed = self.scenario_seed if self.scenario_seed is not None else int(self.np_random.integers(0, 2**31 - 1))
        self.scenario = make_scenario(self.num_devices, seed=scen_seed, total_bandwidth=self.total_bandwidth, max_levels=self.max_levels)
        self.reference_time = reference_time(self.scenario)
        self._last = None
        self._begin_episode()
        return self._observation(), {"scenario_seed": scen_seed, "reference_time": self.reference_time}

    def step(self, action: np.ndarray) -> tuple[NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        self._check_can_step()
        assert self.scenario is not None  # made by reset()
        levels, bandwidth, projected = self.decode_action(action)
        tb = time_breakdown(self.scenario, levels, bandwidth)
        reward = self._reward(tb.total_time)
        info = {
            "total_time": tb.total_time,
            "reference_time": self.reference_time,
            "rounds": tb.rounds,
            "round_latency": tb.round_latency,
            "levels": levels,
            "bandwidth": bandwidth,
            "projected": projected,
        }
        self._last = info
        self._done = True  # one step per episode
        return self._observation(), float(reward), True, False, info

    def _render_rgb_array(self) -> np.ndarray:
        if self._last is None:
            k = self.num_devices
            return _bar_frame("FeelAllocation: no allocation yet", np.full(k, 1), np.zeros(k), "bandwidth (kHz)")
        i = self._last
        return _bar_frame(f"T = {i['total_time']:.4g} s ({i['total_time'] / self.reference_time:.3f} T_ref)",
                          i["levels"], i["bandwidth"] / 1e3, "bandwidth (kHz)")

    def _render_ansi(self) -> str:
        if self.scenario is None:
            return "FeelAllocation: not reset\n"
        lines = [f"FeelAllocation: K={self.num_devices}, B={self.total_bandwidth:.4g} Hz, reference T={self.reference_time:.4g} s"]
        if self._last is not None:
            i = self._last
            lines.append(f"T={i['total_time']:.4g} s = {i['rounds']:.1f} rounds x {i['round_latency'] * 1e3:.3f} ms")
            lines += [f"  device {k:3d}: s={s:4d}  B={b:10.1f} Hz" for k, (s, b) in enumerate(zip(i["levels"], i["bandwidth"], strict=True))]
        return "\n".join(lines) + "\n"


class FeelAllocationV1Env(FeelAllocationEnv):
    """FeelAllocation with softmax bandwidth shares and a log-scale reward: every action is valid.

    ## Description
    The problem of :class:`FeelAllocationEnv` (``FeelAllocation-v0``): K devices, QSGD levels
    s_k and bandwidth B_k chosen at once, objective the model's total training time
    T = N(s) x max_k (t_k^cmp + S(s_k) / r_k(B_k)) (Liu et al., WCNC 2022 / FITEE 2022;
    :mod:`quant_envs.feel.model`), a new seeded scenario per episode. Only the action's meaning
    and the reward's scale differ, so that an agent's first, random actions already tell good
    allocations from bad ones.

    ## Action Space
    ``Box(-1, 1, (2K,), float32)``. Entries 0..K-1 set the levels as in v0 (log-scale bit budget:
    -1 is s = 1, +1 is ``max_levels``). Entries K..2K-1 are logits: the bandwidth shares are
    x = softmax(``logit_scale`` x a_{K..2K-1}), so every action uses the whole band (sum_k x_k = 1),
    every device gets a share of at least e^{-2 logit_scale} / (1 + (K - 1) e^{2 logit_scale})
    of it, and the zero action is equal bandwidth. AO's optimal shares differ by up to e^2.4
    between devices on the default scenarios, well inside the default ``logit_scale`` = 3 (up to
    e^6). Finite entries outside [-1, 1] are clipped to it; NaN, inf or any shape other than
    (2K,) raise ValueError.

    ## Observation Space
    As v0: ``Box(0, 1, (5K + 1,), float32)``, five static features per device at the reference
    allocation (computation and upload time over the reference round latency, (SNR dB + 20) /
    100, K p_k / 10, quantization-noise weight share) and log10(B / 1 kHz) / 4.

    ## Rewards
    ``ln(T_ref / T)``: the natural log of the reference allocation's total training time (equal
    bandwidth, s = 127; :mod:`quant_envs.feel.reference`) over the chosen allocation's. 0 matches
    the reference, +0.69 halves it; the scale is the same for every scenario and no clip is
    needed; random actions score differently from one another (none is clipped). The paper's AO
    (``baselines.feel.solve(env.scenario, "ao")``) is the level to reach: getting within 10% of
    its training time needs per-device choices read from the observation, which
    ``FeelAllocation-v2`` lays out per device. What random actions, the reference actions, trained
    agents and AO reach: ``benchmarks/bench_learnability.py``.
    ``info`` holds what v0's holds (``projected`` is always False) and ``log_time_ratio`` =
    ln(T / T_ref).

    ## Starting State
    As v0: ``make_scenario(num_devices, seed=...)`` with the seed drawn from ``np_random`` (or
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
    * v2 (``FeelAllocation-v2``, :mod:`quant_envs.feel.env_v2`): per-device observation and
      action rows; same problem and reward.
    * v1: softmax bandwidth shares instead of the projection of (a + 1) / 2 (under which 100% of
      random actions hit the -100 clip) and reward ln(T_ref / T) instead of -T / T_ref.
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
                         scenario_seed=scenario_seed, render_mode=render_mode)
        # Beyond e^40 between shares the smallest ones underflow the model's rate (no new allocations).
        self.logit_scale = check_float("logit_scale", logit_scale, min_value=0.0, max_value=20.0, min_inclusive=False)

    def _shares(self, a: np.ndarray) -> tuple[np.ndarray, bool]:
        return softmax(self.logit_scale * a), False

    def _reward(self, total_time: float) -> float:
        return float(np.log(self.reference_time / total_time))

    def step(self, action: np.ndarray) -> tuple[NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super().step(action)
        info["log_time_ratio"] = -reward
        return obs, reward, terminated, truncated, info


class FeelTrainingEnv(QuantEnv[NDArray[np.float32], np.ndarray]):
    """Per-round quantization control of real quantized federated training on digits.

    ## Description
    Real federated training (torch; :class:`quant_envs.feel.simulator.FederatedSimulator`):
    K devices hold label-skewed shares of the digits training split and train a softmax
    regression with quantized FedSGD (full local gradients, QSGD with each device's own level,
    server-side weighted averaging, step size 2 / (1 + n / 100)). Each step is one round: the
    agent picks every device's QSGD level from ``level_menu``; the bandwidth is split to
    minimise that round's latency (``bandwidth="min_max"``, the exact optimum for the chosen
    levels) or equally (``"equal"``), and the round costs the latency of the slowest device under
    the scenario's timing model (:mod:`quant_envs.feel.model`). Coarse levels make rounds cheap
    but training noisy, so more rounds are needed to reach the target accuracy; the return is
    minus the total training time.

    ## Action Space
    ``MultiDiscrete([len(level_menu)] * K)``: entry k indexes ``level_menu`` for device k. The
    default menu (1, 3, 7, 15, 127, 0) is QSGD with 2, 3, 4, 5 and 8 bits per coordinate
    (sign + log2(s + 1) level bits) and 0 = unquantized float32.
    Indices out of range, non-integers, NaN/inf or a shape other than (K,) raise ValueError.

    ## Observation Space
    ``Box(0, 1, (6K + 4,), float32)``: for each device k (K rows of 6): the five static
    features of :class:`FeelAllocationEnv` (computation and upload time at the reference
    allocation over its round latency, (SNR dB + 20) / 100, K p_k / 10, noise-weight share) and
    the norm of its last local gradient divided by its norm at round 0 (0 before the first
    round), clipped to [0, 1]. Then: rounds done / ``max_rounds``; the training objective
    F(w_n) / F(w_0); the evaluation accuracy; elapsed time / (``max_rounds`` x reference round
    latency). All clipped to [0, 1].

    ## Rewards
    ``-tau_n / tau_ref`` per round: the round's latency over the reference round's (equal
    bandwidth, s = 127 everywhere). The return is minus the total training time in units of
    reference rounds. ``info`` holds ``round_time`` and ``elapsed_time`` (s), ``levels``,
    ``bandwidth`` (Hz), ``loss``, ``gap`` (F(w_n) - F*), ``accuracy`` and ``round``.

    ## Starting State
    w_0 = 0 and a scenario ``make_scenario(num_devices, seed=scenario_seed)`` (drawn from
    ``np_random`` when ``scenario_seed`` is None); the quantization noise is seeded from
    ``np_random``, so ``reset(seed=...)`` fixes the whole episode.

    ## Episode End
    ``terminated`` when the evaluation accuracy reaches ``target_accuracy`` (or, if
    ``target_gap`` is given, when F(w_n) - F* <= target_gap instead); ``truncated`` after
    ``max_rounds`` rounds. Under ``gym.make`` the spec's ``max_episode_steps`` is this horizon
    (200): ``max_rounds=N`` or ``max_episode_steps=N`` (or both, equal) sets it to N, and the
    episode truncates once, at round N.

    ## Arguments
    * ``num_devices`` (int, 10), ``total_bandwidth`` (float, 200e3 Hz).
    * ``scenario_seed`` (int or None, 0): the scenario; None draws one per episode.
    * ``level_menu`` (tuple of int, (1, 3, 7, 15, 127, 0)): the levels an action can pick.
    * ``bandwidth`` ("min_max" or "equal").
    * ``target_accuracy`` (float, 0.92) on the ``eval_split`` ("val") split; ``target_gap``
      (float or None, None).
    * ``max_rounds`` (int, 200).
    * ``render_mode`` (None, "ansi" or "rgb_array": the last round's bits per coordinate).

    Stepping again after ``terminated`` or ``truncated`` raises RuntimeError until ``reset``.

    ## Version History
    * v0: initial version; its spec carries ``max_episode_steps`` = ``max_rounds`` (added later
      without a new id, as it alters no episode). Its default
      goal (accuracy 0.92, reached in 5-7 rounds) is not the model's (optimality gap 0.01) and
      its menu cannot express AO's levels; see ``FeelTraining-v1``.
    """

    observation_space: spaces.Box[np.float32]
    action_space: spaces.MultiDiscrete
    #: The argument that is the episode horizon (``max_episode_steps`` of the spec; quant_envs.horizons).
    horizon_argument = "max_rounds"

    def __init__(
        self,
        num_devices: int = 10,
        total_bandwidth: float = 200e3,
        scenario_seed: int | None = 0,
        level_menu: tuple[int, ...] = (1, 3, 7, 15, 127, FULL_PRECISION),
        bandwidth: str = "min_max",
        target_accuracy: float = 0.92,
        target_gap: float | None = None,
        max_rounds: int = 200,
        eval_split: str = "val",
        render_mode: str | None = None,
    ) -> None:
        self.num_devices = check_int("num_devices", num_devices, min_value=1, max_value=538)
        self.total_bandwidth = check_float("total_bandwidth", total_bandwidth, min_value=0.0, min_inclusive=False)
        self.scenario_seed = None if scenario_seed is None else check_int("scenario_seed", scenario_seed, min_value=0)
        self.level_menu = _level_menu(level_menu)
        self.max_levels = max(255, int(self.level_menu.max()))
        self.bandwidth_mode = check_choice("bandwidth", bandwidth, ("min_max", "equal"))
        self.target_accuracy = check_float("target_accuracy", target_accuracy, min_value=0.0, max_value=1.0)
        self.target_gap = None if target_gap is None else check_float("target_gap", target_gap, min_value=0.0, min_inclusive=False)
        self.max_rounds = check_int("max_rounds", max_rounds, min_value=1)
        self.eval_split = check_choice("eval_split", eval_split, ("val", "test"))
        self._set_render_mode(render_mode)
        k = self.num_devices
        self.action_space = spaces.MultiDiscrete(np.full(k, len(self.level_menu)))
        self.observation_space = spaces.Box(0.0, 1.0, (6 * k + 4,), np.float32)
        self.scenario: Scenario | None = None
        self.sim: FederatedSimulator | None = None
        self._last: dict[str, Any] | None = None

    def _observation(self) -> NDArray[np.float32]:
        assert self.sim is not None  # made by reset()
        ratio = np.zeros(self.num_devices) if self._grad0 is None else self._grad_last / np.maximum(self._grad0, 1e-300)
        dev = np.concatenate([self._static, ratio[:, None]], axis=1)
        glob = [
            self.sim.round / self.max_rounds,
            self._loss / self._loss0,
            self._accuracy,
            self.elapsed_time / (self.max_rounds * self.reference_round),
        ]
        return np.clip(np.append(dev.ravel(), glob), 0.0, 1.0).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[NDArray[np.float32], dict[str, Any]]:
        super().reset(seed=seed)
        with _SingleThreadTorch():
            return self._reset()

    def _reset(self) -> tuple[NDArray[np.float32], dict[str, Any]]:
# lazy: the simulator trains in torch; FeelAllocation (this module) imports without it
        from quant_envs.feel.simulator import FederatedSimulator

        scen_seed = self.scenario_seed if self.scenario_seed is not None else int(self.np_random.integers(0, 2**31 - 1))
        if self.scenario is None or self.sim is None or self.scenario.seed != scen_seed:
            self.scenario = make_scenario(self.num_devices, seed=scen_seed, total_bandwidth=self.total_bandwidth, max_levels=self.max_levels)
            self.sim = FederatedSimulator(self.scenario.require_partition(), replicas=1, eval_split=self.eval_split)
            self._static = device_features(self.scenario)
            self.reference_round = reference_round_latency(self.scenario)
        self.sim.reset(seed=int(self.np_random.integers(0, 2**31 - 1)))
        self._loss0 = self._loss = float(self.sim.loss()[0])
        self._accuracy = float(self.sim.accuracy()[0])
        self._grad0, self._grad_last = None, None
        self.elapsed_time = 0.0
        self._last = None
        self._begin_episode()
        return self._observation(), {"scenario_seed": scen_seed, "reference_round": self.reference_round}

    def step(self, action: np.ndarray) -> tuple[NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        self._check_can_step()
        assert self.sim is not None and self.scenario is not None  # both made by reset()
        allowed = f"{self.num_devices} integer indices into level_menu, each in [0, {len(self.level_menu)})"
        a = check_finite_array("action", action, (self.num_devices,), allowed)
        bad = (a != np.round(a)) | (a < 0) | (a >= len(self.level_menu))
        if np.any(bad):
            raise ValueError(f"action={a[bad][:5].tolist()} (devices {np.flatnonzero(bad)[:5].tolist()}) is not allowed; expected {allowed}")
        levels = self.level_menu[a.astype(np.int64)]
        if self.bandwidth_mode == "min_max":
            split = min_max_bandwidth(self.scenario, levels)
            bandwidth, round_time = split.bandwidth, float(split.latency)
        else:
            bandwidth = equal_bandwidth(self.scenario)
            round_time = float(np.max(device_latency(self.scenario, levels, bandwidth)))
        with _SingleThreadTorch():
            m = self.sim.step(levels)
        self._loss, self._accuracy = float(m.loss[0]), float(m.accuracy[0])
        self._grad_last = m.grad_norms[0]
        if self._grad0 is None:
            self._grad0 = m.grad_norms[0].copy()
        self.elapsed_time += round_time
        if self.target_gap is not None:
            terminated = bool(m.gap[0] <= self.target_gap)
        else:
            terminated = bool(self._accuracy >= self.target_accuracy)
        truncated = (not terminated) and self.sim.round >= self.max_rounds
        info = {
            "round": self.sim.round,
            "round_time": round_time,
            "elapsed_time": self.elapsed_time,
            "levels": levels,
            "bandwidth": bandwidth,
            "loss": self._loss,
            "gap": float(m.gap[0]),
            "accuracy": self._accuracy,
        }
        self._last = info
        self._done = terminated or truncated
        return self._observation(), -round_time / self.reference_round, terminated, truncated, info

    def _render_rgb_array(self) -> np.ndarray:
        if self._last is None:
            return _bar_frame("FeelTraining: no round yet", np.full(self.num_devices, 1), None, "")
        i = self._last
        return _bar_frame(f"round {i['round']}: gap {i['gap']:.3g}, accuracy {i['accuracy']:.3f}, "
                          f"{i['elapsed_time']:.3g} s", i["levels"], None, "")

    def _render_ansi(self) -> str:
        if self.sim is None:
            return "FeelTraining: not reset\n"
        line = f"FeelTraining: round {self.sim.round}, elapsed {self.elapsed_time:.4g} s, loss {self._loss:.4f}, accuracy {self._accuracy:.3f}"
        if self._last is not None:
            line += f"\n  levels {self._last['levels'].tolist()}  round time {self._last['round_time'] * 1e3:.3f} ms"
        return line + "\n"


class FeelTrainingV1Env(FeelTrainingEnv):
    """FeelTraining with the model's goal (optimality gap) and a level menu that holds AO's levels.

    ## Description
    The real quantized FedSGD of :class:`FeelTrainingEnv` (``FeelTraining-v0``): K devices with
    label-skewed digits shares train a softmax regression; each step is one round in which the
    agent picks every device's QSGD level from ``level_menu``, the bandwidth is split to
    minimise that round's latency, and the round costs the slowest device's latency. The episode
    ends when the optimality gap F(w_n) - F* falls to ``target_gap``, by default the target of the
    scenario's convergence model (0.01), which is what the model's training time and the
    paper's AO (``baselines.feel.solve(env.scenario, "ao")``) minimise; so AO's levels, held for
    every round, are a policy of this environment and its measured return is the solver's level.

    ## Action Space
    ``MultiDiscrete([len(level_menu)] * K)``: entry k indexes ``level_menu`` for device k. The
    default menu is every level 1..20, then 24, 31, 63, 127 and 0 = unquantized float32 (25
    entries): AO's levels on the default scenario (seed 0) are 8..20 and lie in 6..21 on
    scenario seeds 0..5 except one scenario with 30-31. Indices out of range, non-integers,
    NaN/inf or a shape other than (K,) raise ValueError.

    ## Observation Space
    As v0: ``Box(0, 1, (6K + 4,), float32)``: per device the five static features of
    ``FeelAllocation`` and its last gradient norm over its first; then rounds done /
    ``max_rounds``, F(w_n) / F(w_0), the evaluation accuracy and elapsed time / (``max_rounds``
    x reference round latency).

    ## Rewards
    ``-tau_n / tau_ref`` per round, as v0: the return is minus the total training time in units
    of the reference round (equal bandwidth, s = 127). An episode is 45-500 rounds, so an agent
    sees few episodes per training budget. What random levels, a constant 8-bit policy, trained
    agents and AO's levels held every round reach: ``benchmarks/bench_learnability.py``.

    ## Starting State
    As v0: w_0 = 0, the scenario ``make_scenario(num_devices, seed=scenario_seed)`` and
    quantization noise seeded from ``np_random``.

    ## Episode End
    ``terminated`` when F(w_n) - F* <= ``target_gap`` (about 38 rounds at full precision, 45 at
    AO's levels, 93 at s = 7, 1600 at s = 1); ``truncated`` after ``max_rounds`` rounds. Stepping
    again raises RuntimeError until ``reset``. Under ``gym.make`` the spec's ``max_episode_steps``
    is this horizon (500); ``max_rounds=N`` or ``max_episode_steps=N`` sets both, as in v0.

    ## Arguments
    * ``num_devices`` (int in [1, 538], 10), ``total_bandwidth`` (float > 0, 200e3 Hz).
    * ``scenario_seed`` (int >= 0 or None, 0).
    * ``level_menu`` (sequence of distinct ints in [0, 65535], the menu above).
    * ``bandwidth`` ("min_max" or "equal").
    * ``target_gap`` (float > 0 or None, None = the convergence model's target gap, 0.01).
    * ``max_rounds`` (int >= 1, 500): at the cheapest round (s = 1, about 0.58 reference rounds)
      a truncated episode still costs far more than reaching the target.
    * ``eval_split`` ("val" or "test"), ``render_mode`` (None, "ansi" or "rgb_array").

    ## Version History
    * v1: goal F(w_n) - F* <= the model's target gap (0.01) instead of validation accuracy
      >= 0.92, level menu 1..20, 24, 31, 63, 127, full instead of 1, 3, 7, 15, 127, full, and
      ``max_rounds`` 500 instead of 200 (also the spec's ``max_episode_steps``).
    * v0: initial version.
    """

    def __init__(
        self,
        num_devices: int = 10,
        total_bandwidth: float = 200e3,
        scenario_seed: int | None = 0,
        level_menu: tuple[int, ...] = V1_LEVEL_MENU,
        bandwidth: str = "min_max",
        target_gap: float | None = None,
        max_rounds: int = 500,
        eval_split: str = "val",
        render_mode: str | None = None,
    ) -> None:
        if target_gap is None:
            target_gap = DEFAULT_CONVERGENCE.target_gap  # the gap the model's rounds N(s) are counted to
        super().__init__(num_devices=num_devices, total_bandwidth=total_bandwidth, scenario_seed=scenario_seed,
                         level_menu=level_menu, bandwidth=bandwidth, target_gap=target_gap, max_rounds=max_rounds,
                         eval_split=eval_split, render_mode=render_mode)
