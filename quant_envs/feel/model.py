"""The training-time model of quantized federated edge learning (Liu et al., WCNC 2022 / FITEE 2022).

Notation (SI units): K devices; device k holds D_k samples (weight p_k = D_k / sum_j D_j), runs
at f_k Hz and spends c_k CPU cycles per sample, transmits with p_k W over a channel with power
gain h_k; the server splits a total bandwidth B (Hz) into orthogonal bands B_k; the noise power
spectral density is N0 (W/Hz); the model has d parameters. Device k quantizes its gradient with
s_k QSGD levels (s_k = 0 means an unquantized float32 upload).

Per round
    computation   t_k^cmp = D_k c_k / f_k
    upload        t_k^com = S(s_k) / r_k,   r_k = B_k log2(1 + p_k h_k / (N0 B_k))
    bits          S(s) = 32 + d + d log2(s + 1)  (float32 norm, one sign bit and a level index in
                  {0..s} per coordinate, indices packed at log2(s+1) bits each); S(0) = 32 d
    latency       tau = max_k (t_k^cmp + t_k^com)   (synchronous rounds: the slowest device)

Rounds to the target optimality gap eps (closed form, see :class:`ConvergenceModel`)
    N(s) = (a0^p + (a1 Q(s))^p)^(1/p) / eps - gamma,   Q(s) = sum_k p_k^2 G_k^2 q(s_k)

Total training time  T(s, B) = N(s) * tau(s, B).

The downlink broadcast and the server's aggregation are neglected, as in the paper (the edge
server transmits at high power over the whole band). N is kept real-valued (the closed form) so
the objective is smooth in s; ``ceil`` it to count whole rounds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quant_envs.checks import check_choice, check_float

#: ``levels[k] == FULL_PRECISION`` means device k uploads its gradient unquantized (float32).
FULL_PRECISION = 0
#: Bits of one float32 (the gradient norm, and every coordinate of an unquantized upload).
FLOAT_BITS = 32


def qsgd_variance_bound(levels: np.ndarray, dim: int) -> np.ndarray:
    """QSGD's bound on E||Q_s(v) - v||^2 / ||v||^2: min(d / s^2, sqrt(d) / s); 0 for full precision."""
    s = np.asarray(levels, dtype=np.float64)
    safe = np.maximum(s, 1e-150)
    return np.where(s == FULL_PRECISION, 0.0, np.minimum(dim / safe**2, np.sqrt(dim) / safe))


def qsgd_expected_error(vector: np.ndarray, levels: int) -> float:
    """Exact E||Q_s(v) - v||^2 of QSGD for one vector (closed form, no sampling).

    Coordinate i is rounded between the neighbouring levels of x_i = s |v_i| / ||v||, so its
    variance is (||v|| / s)^2 f_i (1 - f_i) with f_i the fractional part of x_i.
    """
    v = np.asarray(vector, dtype=np.float64)
    norm = float(np.linalg.norm(v))
    if levels == FULL_PRECISION or norm == 0.0:
        return 0.0
    x = levels * np.abs(v) / norm
    f = x - np.floor(x)
    return (norm / levels) ** 2 * float(np.sum(f * (1.0 - f)))


def bits_per_upload(levels: np.ndarray, dim: int) -> np.ndarray:
    """S(s) = 32 + d + d log2(s + 1) bits per quantized upload; 32 d for an unquantized one."""
    s = np.asarray(levels, dtype=np.float64)
    quantized = FLOAT_BITS + dim + dim * np.log2(np.maximum(s, 0.0) + 1.0)
    return np.where(s == FULL_PRECISION, float(FLOAT_BITS * dim), quantized)


def uplink_rate(bandwidth: np.ndarray, snr_density: np.ndarray) -> np.ndarray:
    """Shannon rate B log2(1 + p h / (N0 B)) in bit/s; ``snr_density`` = p h / N0 in Hz."""
    b = np.asarray(bandwidth, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = b * np.log1p(snr_density / b) / np.log(2.0)
    return np.where(b > 0, r, 0.0)


@dataclass(frozen=True)
class ConvergenceModel:
    """Rounds to the target optimality gap: the paper's bound with constants fitted to data.

    Model-driven part. With the diminishing step size eta_n = beta / (n + gamma) (beta mu > 1),
    an L-smooth, mu-strongly convex objective and unbiased quantized gradients, the classical
    analysis of (quantized) SGD gives

        E[F(w_n)] - F*  <=  max(a0, a1 Q) / (n + gamma),
        a0 = (L/2) (gamma + 1) ||w_0 - w*||^2,   a1 = (L/2) beta^2 / (beta mu - 1),

    where Q = sum_k p_k^2 E||Q_{s_k}(g_k) - g_k||^2 <= sum_k p_k^2 G_k^2 q(s_k) is the variance that
    the independent quantizers add to the aggregated gradient (full local gradients, so
    quantization is the only noise). The max is an artefact of the induction in the proof; the
    measured gap moves smoothly from the noise-free regime (a0) to the noise-dominated one
    (a1 Q), so the max is replaced by its smooth p-norm form, which gives the closed form

        N(s) = (a0^p + (a1 Q)^p)^(1/p) / eps - gamma

    (p -> infinity recovers the bound's max, p = 1 the sum of the two terms). It is convex and
    increasing in Q, which the SCA step of the solver relies on.

    Data-driven part (:mod:`quant_envs.feel.fitting`). The bound's constants are unknown in
    practice (L, mu, ||w0 - w*||) and the QSGD variance bound is loose by a factor that depends
    on s. So ``a0``, ``a1``, ``gamma``, ``p`` are fitted by least squares to optimality-gap curves
    of the real simulator, G_k^2 is the measured squared norm of device k's local gradient at the
    optimum w*, and q(s) is either QSGD's bound (``variance="bound"``) or the same two-regime
    shape with fitted constants, ``q(s) = eff_dim / (s (s + knee))`` (``variance="fitted"``):
    a smooth form of min(d / s^2, sqrt(d) / s) (it behaves like eff_dim / (knee s) for s << knee
    and like eff_dim / s^2 for s >> knee) fitted to the exact expected QSGD error of the
    training gradients.
    """

    a0: float
    a1: float
    gamma: float
    target_gap: float
    p: float = 4.0
    variance: str = "fitted"
    eff_dim: float = 1.0
    knee: float = 1.0

    def __post_init__(self) -> None:
        check_float("a0", self.a0, min_value=0.0, min_inclusive=False)
        check_float("a1", self.a1, min_value=0.0)
        check_float("gamma", self.gamma, min_value=-1.0, min_inclusive=False)
        check_float("target_gap", self.target_gap, min_value=0.0, min_inclusive=False)
        check_float("p", self.p, min_value=1.0)
        check_choice("variance", self.variance, ("fitted", "bound"))
        check_float("eff_dim", self.eff_dim, min_value=0.0, min_inclusive=False)
        check_float("knee", self.knee, min_value=0.0)
        if self.a0 / self.target_gap - self.gamma < 1.0:
            raise ValueError(
                f"target_gap={self.target_gap!r} is not allowed with a0={self.a0!r}, gamma={self.gamma!r}: "
                f"the bound is met before round 1; expected target_gap <= {self.a0 / (1.0 + self.gamma):.4g}"
            )

    @property
    def min_rounds(self) -> float:
        """Rounds needed without quantization noise: a0 / eps - gamma."""
        return self.a0 / self.target_gap - self.gamma

    def variance_factor(self, levels: np.ndarray, dim: int) -> np.ndarray:
        """q(s): E||Q_s(g) - g||^2 / ||g||^2 under this model (0 for full precision)."""
        if self.variance == "bound":
            return qsgd_variance_bound(levels, dim)
        s = np.asarray(levels, dtype=np.float64)
        safe = np.maximum(s, 1e-150)
        return np.where(s == FULL_PRECISION, 0.0, self.eff_dim / (safe * (safe + self.knee)))

    def gap_numerator(self, q_sum: float | np.ndarray) -> np.ndarray:
        """(a0^p + (a1 Q)^p)^(1/p), computed without overflow."""
        b = self.a1 * np.asarray(q_sum, dtype=np.float64)
        big = np.maximum(self.a0, b)
        return big * ((self.a0 / big) ** self.p + (b / big) ** self.p) ** (1.0 / self.p)

    def rounds_from_variance(self, q_sum: float | np.ndarray) -> np.ndarray:
        """N = (a0^p + (a1 Q)^p)^(1/p) / eps - gamma for the aggregated variance term(s) Q."""
        return self.gap_numerator(q_sum) / self.target_gap - self.gamma

    def gap(self, rounds: np.ndarray, q_sum: float) -> np.ndarray:
        """The fitted optimality gap after n rounds: (a0^p + (a1 Q)^p)^(1/p) / (n + gamma)."""
        return self.gap_numerator(q_sum) / (np.asarray(rounds, dtype=np.float64) + self.gamma)
