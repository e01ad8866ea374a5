"""Gymnasium environments for quantized federated edge learning.

* ``quant_envs/FeelAllocation-v0`` (:class:`FeelAllocationEnv`): model-based, one step per
  episode: choose every device's quantization level and bandwidth share at once; the reward is
  minus the model's total training time relative to a fixed reference allocation.
* ``quant_envs/FeelTraining-v0`` (:class:`FeelTrainingEnv`): simulator-based, one step per
  federated round of real quantized training on digits; choose every device's level for the
  round; the reward is minus that round's latency relative to a reference round.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from quant_envs._checks import check_choice, check_finite_array, check_float, check_int
from quant_envs.feel.bandwidth import min_max_bandwidth, project_shares
from quant_envs.feel.model import FULL_PRECISION, bits_per_upload, uplink_rate
from quant_envs.feel.scenario import Scenario, make_scenario
from quant_envs.feel.training_time import device_latency, time_breakdown

#: Reference allocation for normalising rewards: equal bandwidth, 8-bit QSGD (s = 127).
REFERENCE_LEVEL = 127


def reference_levels(scenario: Scenario) -> np.ndarray:
    return np.full(scenario.num_devices, min(REFERENCE_LEVEL, scenario.max_levels), dtype=np.int64)


def equal_bandwidth(scenario: Scenario) -> np.ndarray:
    return np.full(scenario.num_devices, scenario.total_bandwidth / scenario.num_devices)


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
    if render_mode is not None:
        check_choice("render_mode", render_mode, modes)
    return render_mode


class FeelAllocationEnv(gym.Env):
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
    * ``render_mode`` (None or "ansi").

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

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
        self.max_levels = check_int("max_levels", max_levels, min_value=1)
        self.scenario_seed = None if scenario_seed is None else check_int("scenario_seed", scenario_seed, min_value=0)
        if min_share is None:
            min_share = 1e-3 / self.num_devices
        self.min_share = check_float("min_share", min_share, min_value=0.0, max_value=1.0 / self.num_devices, min_inclusive=False, max_inclusive=False)
        self.reward_clip = check_float("reward_clip", reward_clip, min_value=0.0, min_inclusive=False)
        self.render_mode = _check_render_mode(render_mode, self.metadata["render_modes"])
        k = self.num_devices
        self.action_space = spaces.Box(-1.0, 1.0, (2 * k,), np.float32)
        self.observation_space = spaces.Box(0.0, 1.0, (5 * k + 1,), np.float32)
        self.scenario: Scenario | None = None
        self._last: dict[str, Any] | None = None

    def _observation(self) -> np.ndarray:
        feats = device_features(self.scenario).ravel()
        glob = np.clip(np.log10(self.total_bandwidth / 1e3) / 4.0, 0.0, 1.0)
        return np.append(feats, glob).astype(np.float32)

    def decode_action(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """(levels, bandwidth in Hz, projected?) for an action of the action space."""
        k = self.num_devices
        a = check_finite_array("action", action, (2 * k,), f"{2 * k} finite numbers (K levels, then K bandwidth shares) in [-1, 1]")
        a = np.clip(a, -1.0, 1.0)  # finite values outside the box are clipped, as the box's own bounds
        bits = 1.0 + (a[:k] + 1.0) / 2.0 * (np.log2(self.max_levels + 1.0) - 1.0)
        levels = np.clip(np.round(np.exp2(bits) - 1.0), 1, self.max_levels).astype(np.int64)
        shares = (a[k:] + 1.0) / 2.0
        proj = project_shares(shares, self.min_share)
        projected = not np.allclose(proj, shares, rtol=0.0, atol=1e-12)
        return levels, proj * self.total_bandwidth * (1.0 - 1e-12), projected

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        scen_seed = self.scenario_seed if self.scenario_seed is not None else int(self.np_random.integers(0, 2**31 - 1))
        self.scenario = make_scenario(self.num_devices, seed=scen_seed, total_bandwidth=self.total_bandwidth, max_levels=self.max_levels)
        self.reference_time = time_breakdown(self.scenario, reference_levels(self.scenario), equal_bandwidth(self.scenario)).total_time
        self._last = None
        return self._observation(), {"scenario_seed": scen_seed, "reference_time": self.reference_time}

    def step(self, action):
        if self.scenario is None:
            raise RuntimeError("call reset() before step()")
        levels, bandwidth, projected = self.decode_action(action)
        tb = time_breakdown(self.scenario, levels, bandwidth)
        reward = -min(tb.total_time / self.reference_time, self.reward_clip)
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
        return self._observation(), float(reward), True, False, info

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        if self.scenario is None:
            return "FeelAllocation: not reset\n"
        lines = [f"FeelAllocation: K={self.num_devices}, B={self.total_bandwidth:.4g} Hz, reference T={self.reference_time:.4g} s"]
        if self._last is not None:
            i = self._last
            lines.append(f"T={i['total_time']:.4g} s = {i['rounds']:.1f} rounds x {i['round_latency'] * 1e3:.3f} ms")
            lines += [f"  device {k:3d}: s={s:4d}  B={b:10.1f} Hz" for k, (s, b) in enumerate(zip(i["levels"], i["bandwidth"], strict=True))]
        return "\n".join(lines) + "\n"


class FeelTrainingEnv(gym.Env):
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
    ``max_rounds`` rounds.

    ## Arguments
    * ``num_devices`` (int, 10), ``total_bandwidth`` (float, 200e3 Hz).
    * ``scenario_seed`` (int or None, 0): the scenario; None draws one per episode.
    * ``level_menu`` (tuple of int, (1, 3, 7, 15, 127, 0)): the levels an action can pick.
    * ``bandwidth`` ("min_max" or "equal").
    * ``target_accuracy`` (float, 0.92) on the ``eval_split`` ("val") split; ``target_gap``
      (float or None, None).
    * ``max_rounds`` (int, 200).
    * ``render_mode`` (None or "ansi").

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

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
        menu = tuple(int(check_int("level_menu", s, min_value=0)) for s in level_menu)
        if len(menu) < 1:
            raise ValueError("level_menu must hold at least one level")
        self.level_menu = np.array(menu, dtype=np.int64)
        self.max_levels = max(255, int(self.level_menu.max()))
        self.bandwidth_mode = check_choice("bandwidth", bandwidth, ("min_max", "equal"))
        self.target_accuracy = check_float("target_accuracy", target_accuracy, min_value=0.0, max_value=1.0)
        self.target_gap = None if target_gap is None else check_float("target_gap", target_gap, min_value=0.0, min_inclusive=False)
        self.max_rounds = check_int("max_rounds", max_rounds, min_value=1)
        self.eval_split = check_choice("eval_split", eval_split, ("val", "test"))
        self.render_mode = _check_render_mode(render_mode, self.metadata["render_modes"])
        k = self.num_devices
        self.action_space = spaces.MultiDiscrete(np.full(k, len(self.level_menu)))
        self.observation_space = spaces.Box(0.0, 1.0, (6 * k + 4,), np.float32)
        self.scenario: Scenario | None = None
        self.sim = None
        self._last: dict[str, Any] | None = None

    def _observation(self) -> np.ndarray:
        ratio = np.zeros(self.num_devices) if self._grad0 is None else self._grad_last / np.maximum(self._grad0, 1e-300)
        dev = np.concatenate([self._static, ratio[:, None]], axis=1)
        glob = [
            self.sim.round / self.max_rounds,
            self._loss / self._loss0,
            self._accuracy,
            self.elapsed_time / (self.max_rounds * self.reference_round),
        ]
        return np.clip(np.append(dev.ravel(), glob), 0.0, 1.0).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        from quant_envs.feel.simulator import FederatedSimulator

        super().reset(seed=seed)
        scen_seed = self.scenario_seed if self.scenario_seed is not None else int(self.np_random.integers(0, 2**31 - 1))
        if self.scenario is None or self.scenario.seed != scen_seed:
            self.scenario = make_scenario(self.num_devices, seed=scen_seed, total_bandwidth=self.total_bandwidth, max_levels=self.max_levels)
            self.sim = FederatedSimulator(self.scenario.partition, replicas=1, eval_split=self.eval_split)
            self._static = device_features(self.scenario)
            self.reference_round = float(np.max(device_latency(self.scenario, reference_levels(self.scenario), equal_bandwidth(self.scenario))))
        self.sim.reset(seed=int(self.np_random.integers(0, 2**31 - 1)))
        self._loss0 = self._loss = float(self.sim.loss()[0])
        self._accuracy = float(self.sim.accuracy()[0])
        self._grad0, self._grad_last = None, None
        self.elapsed_time = 0.0
        self._last = None
        return self._observation(), {"scenario_seed": scen_seed, "reference_round": self.reference_round}

    def step(self, action):
        if self.sim is None:
            raise RuntimeError("call reset() before step()")
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
        return self._observation(), -round_time / self.reference_round, terminated, truncated, info

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        if self.sim is None:
            return "FeelTraining: not reset\n"
        line = f"FeelTraining: round {self.sim.round}, elapsed {self.elapsed_time:.4g} s, loss {self._loss:.4f}, accuracy {self._accuracy:.3f}"
        if self._last is not None:
            line += f"\n  levels {self._last['levels'].tolist()}  round time {self._last['round_time'] * 1e3:.3f} ms"
        return line + "\n"
