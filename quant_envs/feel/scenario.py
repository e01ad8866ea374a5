"""Seeded scenarios of heterogeneous edge devices sharing an uplink band.

:func:`make_scenario` draws, from one ``numpy.random.default_rng(seed)``:

* **Data.** Device k's share of the digits training split by Dirichlet(``label_alpha``) label
  skew (:mod:`quant_envs.feel.data`); D_k is its size, so data sizes are heterogeneous too.
  G_k^2 = ||grad F_k(w*)||^2 is computed from the share (:mod:`quant_envs.feel.softmax`).
* **Computation.** CPU frequency f_k ~ U[``cpu_frequency``] Hz and cycles per sample
  c_k ~ U[``cycles_per_sample``] (the ranges used for heterogeneous devices in wireless-FL
  studies, e.g. Yang et al., IEEE TWC 2021: c_k in [1e4, 3e4] cycles/sample, f_k up to 2 GHz).
* **Channel.** Devices are dropped uniformly over the area of an annulus
  [``min_distance``, ``cell_radius``] m around the edge server; path loss
  128.1 + 37.6 log10(d / 1 km) dB (3GPP TR 36.814 urban macro), log-normal shadowing with
  ``shadowing_db`` dB standard deviation, and optionally Rayleigh block fading (|h|^2 ~ Exp(1),
  fixed over the training) when ``rayleigh_fading`` is true. Transmit power p_k ~ U[``transmit_power_dbm``]
  dBm. Noise PSD N0 = ``noise_psd_dbm_per_hz`` dBm/Hz (thermal noise -174 dBm/Hz).

The defaults describe a narrowband IoT-like uplink (200 kHz shared by the devices) training the
650-parameter model of the simulator, the regime where computation and communication times are
comparable and the choice of quantization levels matters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from quant_envs.checks import check_float, check_int
from quant_envs.feel.data import digits_partition
from quant_envs.feel.model import ConvergenceModel
from quant_envs.feel.softmax import DEFAULT_L2, MODEL_DIM, local_gradients_at_optimum

#: Constants of the convergence model for the simulator's default task (digits, softmax
#: regression, l2 = 1e-2, eta_n = 2 / (1 + n / 100), full local gradients, w_0 = 0) at the
#: target optimality gap 0.01, fitted on ``make_scenario(10, seed=0)`` (Dirichlet alpha 0.5)
#: with 4 seeds per configuration by :func:`quant_envs.feel.fitting.run_fit`; ``python -m
#: baselines.feel`` refits them and prints the fresh values beside these.
DEFAULT_CONVERGENCE = ConvergenceModel(
    a0=0.7697, a1=56.21, gamma=34.43, target_gap=0.01, p=3.731, variance="fitted", eff_dim=89.62, knee=4.934
)


def _read_only(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64 if np.asarray(a).dtype.kind == "f" else None, copy=True)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Scenario:
    """One quantized-FEEL system: K devices, the shared band and the convergence model (SI units)."""

    data_sizes: np.ndarray  # D_k, samples
    cpu_frequency: np.ndarray  # f_k, Hz
    cycles_per_sample: np.ndarray  # c_k, CPU cycles per sample
    transmit_power: np.ndarray  # p_k, W
    channel_gain: np.ndarray  # h_k, linear power gain (path loss, shadowing, fading)
    grad_sq_norm: np.ndarray  # G_k^2 = ||grad F_k(w*)||^2, weights device k's quantization noise
    total_bandwidth: float  # B, Hz
    noise_psd: float  # N0, W/Hz
    model_dim: int = 650  # d, parameters
    max_levels: int = 255  # largest allowed number of QSGD levels s
    convergence: ConvergenceModel = DEFAULT_CONVERGENCE
    distance: np.ndarray | None = None  # m, informational
    seed: int | None = None
    label_alpha: float | None = None
    partition: tuple[np.ndarray, ...] | None = field(default=None, repr=False)  # digits train indices per device

    def __post_init__(self) -> None:
        k = len(self.data_sizes)
        check_int("num_devices", k, min_value=1)
        for name in ("data_sizes", "cpu_frequency", "cycles_per_sample", "transmit_power", "channel_gain", "grad_sq_norm"):
            a = np.asarray(getattr(self, name), dtype=np.float64)
            if a.shape != (k,):
                raise ValueError(f"{name} must have shape ({k},), got {a.shape}")
            if not np.all(np.isfinite(a)) or np.any(a < 0) or (name != "grad_sq_norm" and np.any(a <= 0)):
                raise ValueError(f"{name} must hold finite {'non-negative' if name == 'grad_sq_norm' else 'positive'} numbers")
            object.__setattr__(self, name, _read_only(a))
        check_float("total_bandwidth", self.total_bandwidth, min_value=0.0, min_inclusive=False)
        check_float("noise_psd", self.noise_psd, min_value=0.0, min_inclusive=False)
        check_int("model_dim", self.model_dim, min_value=1)
        check_int("max_levels", self.max_levels, min_value=1)
        if not isinstance(self.convergence, ConvergenceModel):
            raise TypeError(f"convergence must be a ConvergenceModel, got {type(self.convergence).__name__}")

    @property
    def num_devices(self) -> int:
        return len(self.data_sizes)

    def require_partition(self) -> tuple[np.ndarray, ...]:
        """:attr:`partition`, or ValueError for a scenario made without one (real training needs it)."""
        if self.partition is None:
            raise ValueError("scenario has no digits partition (make it with make_scenario) to simulate")
        return self.partition

    @property
    def weights(self) -> np.ndarray:
        """p_k = D_k / sum_j D_j, the aggregation weights."""
        return self.data_sizes / self.data_sizes.sum()

    @property
    def compute_time(self) -> np.ndarray:
        """t_k^cmp = D_k c_k / f_k, seconds per round."""
        return self.data_sizes * self.cycles_per_sample / self.cpu_frequency

    @property
    def snr_density(self) -> np.ndarray:
        """p_k h_k / N0 in Hz: the receive SNR is snr_density / B_k over a band of B_k Hz."""
        return self.transmit_power * self.channel_gain / self.noise_psd

    @property
    def noise_weights(self) -> np.ndarray:
        """p_k^2 G_k^2: how much device k's quantization variance factor adds to Q."""
        return self.weights**2 * self.grad_sq_norm

    def replace(self, **changes) -> Scenario:
        """A copy with some fields changed (e.g. ``total_bandwidth``), validated again."""
        import dataclasses

        return dataclasses.replace(self, **changes)


def path_loss_db(distance_m: np.ndarray) -> np.ndarray:
    """3GPP TR 36.814 macro-cell path loss 128.1 + 37.6 log10(d / 1 km) in dB."""
    return 128.1 + 37.6 * np.log10(np.asarray(distance_m, dtype=np.float64) / 1000.0)


def _range(name: str, value: tuple[float, float], *, min_value: float = 0.0) -> tuple[float, float]:
    try:
        lo, hi = value
    except (TypeError, ValueError):
        raise TypeError(f"{name}={value!r} must be a (low, high) pair") from None
    lo = check_float(f"{name}[0]", lo, min_value=min_value)
    hi = check_float(f"{name}[1]", hi, min_value=lo)
    return lo, hi


def make_scenario(
    num_devices: int,
    seed: int = 0,
    *,
    total_bandwidth: float = 200e3,
    noise_psd_dbm_per_hz: float = -174.0,
    transmit_power_dbm: tuple[float, float] = (20.0, 23.0),
    cell_radius: float = 500.0,
    min_distance: float = 50.0,
    shadowing_db: float = 8.0,
    rayleigh_fading: bool = False,
    cpu_frequency: tuple[float, float] = (0.1e9, 1.0e9),
    cycles_per_sample: tuple[float, float] = (1e4, 3e4),
    label_alpha: float = 0.5,
    max_levels: int = 255,
    convergence: ConvergenceModel | None = None,
) -> Scenario:
    """Draw a seeded scenario of ``num_devices`` heterogeneous devices (see the module docstring).

    The digits training split (1077 samples) is shared out, so ``num_devices`` is at most 538
    (two samples per device at least). The same ``seed`` always gives the same scenario.
    """
    num_devices = check_int("num_devices", num_devices, min_value=1, max_value=538)
    seed = check_int("seed", seed, min_value=0)
    total_bandwidth = check_float("total_bandwidth", total_bandwidth, min_value=0.0, min_inclusive=False)
    n0_dbm = check_float("noise_psd_dbm_per_hz", noise_psd_dbm_per_hz)
    p_lo, p_hi = _range("transmit_power_dbm", transmit_power_dbm, min_value=-100.0)
    cell_radius = check_float("cell_radius", cell_radius, min_value=0.0, min_inclusive=False)
    min_distance = check_float("min_distance", min_distance, min_value=1.0, max_value=cell_radius)
    shadowing_db = check_float("shadowing_db", shadowing_db, min_value=0.0)
    if not isinstance(rayleigh_fading, bool):
        raise TypeError(f"rayleigh_fading={rayleigh_fading!r} must be a bool")
    f_lo, f_hi = _range("cpu_frequency", cpu_frequency, min_value=1.0)
    c_lo, c_hi = _range("cycles_per_sample", cycles_per_sample, min_value=1.0)
    label_alpha = check_float("label_alpha", label_alpha, min_value=0.0, min_inclusive=False)
    max_levels = check_int("max_levels", max_levels, min_value=1)
    if convergence is None:
        convergence = DEFAULT_CONVERGENCE

    rng = np.random.default_rng(seed)
    partition = digits_partition(num_devices, label_alpha, seed)
    data_sizes = np.array([len(p) for p in partition], dtype=np.float64)
    grads = local_gradients_at_optimum(partition, DEFAULT_L2)
    radius = np.sqrt(rng.uniform(min_distance**2, cell_radius**2, num_devices))
    gain_db = -path_loss_db(radius) + shadowing_db * rng.standard_normal(num_devices)
    gain = 10.0 ** (gain_db / 10.0)
    if rayleigh_fading:
        gain = gain * rng.exponential(1.0, num_devices)
    power = 10.0 ** ((rng.uniform(p_lo, p_hi, num_devices) - 30.0) / 10.0)
    return Scenario(
        data_sizes=data_sizes,
        cpu_frequency=rng.uniform(f_lo, f_hi, num_devices),
        cycles_per_sample=rng.uniform(c_lo, c_hi, num_devices),
        transmit_power=power,
        channel_gain=gain,
        grad_sq_norm=np.sum(grads**2, axis=1),
        total_bandwidth=total_bandwidth,
        noise_psd=10.0 ** ((n0_dbm - 30.0) / 10.0),
        model_dim=MODEL_DIM,
        max_levels=max_levels,
        convergence=convergence,
        distance=radius,
        seed=seed,
        label_alpha=label_alpha,
        partition=partition,
    )
