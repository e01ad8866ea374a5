"""A real quantized federated edge learning simulator in torch.

K devices hold label-skewed shares of the digits training split (:mod:`quant_envs.feel.data`).
The model is L2-regularised multinomial logistic (softmax) regression on the 64 pixels plus a
bias, d = 65 x 10 = 650 parameters, so the global objective

    F(w) = sum_k p_k F_k(w),   F_k(w) = mean_{i in D_k} CE(w; x_i, y_i) + (l2 / 2) ||w||^2,
    p_k = |D_k| / |D|,

is smooth and strongly convex, as the convergence analysis of quantized FEEL assumes, and its
minimum F* is computed to high precision (L-BFGS), so the optimality gap F(w_n) - F* is measured
exactly rather than estimated.

One round n (the protocol of the paper): the server broadcasts w_n; every device computes its full
local gradient g_k = grad F_k(w_n) (computation time |D_k| c_k / f_k in the model), quantizes it
with QSGD using its own number of levels s_k and uploads it; the server averages
g = sum_k p_k Q_{s_k}(g_k) and steps w_{n+1} = w_n - eta_n g with the diminishing step size
eta_n = lr / (1 + n / lr_decay_rounds) under which the O(1/n) bound of the model holds.

Everything is batched over R independent replicas (seeds or level configurations) and over
devices, so fitting the bound's constants runs many trainings at once. Training runs in float32
by default (sums of the objective in float64: float32 round-off, ~1e-7 relative, is far below
the gaps of 1e-3 to 1e-2 that matter) and is deterministic for a given ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from quant_envs.checks import check_choice, check_float, check_int
from quant_envs.datasets import digits_splits
from quant_envs.feel.quantizer import qsgd_quantize
from quant_envs.feel.softmax import (
    DEFAULT_L2,
    DEFAULT_LR,
    DEFAULT_LR_DECAY_ROUNDS,
    MODEL_DIM,
    NUM_CLASSES,
    NUM_FEATURES,
    features,
    optimum,
)


@dataclass(frozen=True)
class RoundMetrics:
    """What one round produced, one entry per replica."""

    loss: np.ndarray  # global training objective F(w_{n+1})
    gap: np.ndarray  # F(w_{n+1}) - F*
    accuracy: np.ndarray  # accuracy of w_{n+1} on the evaluation split
    grad_norms: np.ndarray  # [R, K] norms of the local gradients at w_n (before quantization)


def _features(x: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(features(x)).to(dtype)


class FederatedSimulator:
    """Quantized FedSGD on digits with K devices, batched over ``replicas`` independent runs.

    Parameters
    ----------
    partition:
        One index array into the digits training split per device (see
        :func:`quant_envs.feel.data.digits_partition`).
    replicas:
        Number of independent trainings advanced together (each with its own quantization noise).
    l2:
        L2 regularisation (the strong-convexity modulus of the objective).
    lr, lr_decay_rounds:
        Step size eta_n = lr / (1 + n / lr_decay_rounds).
    seed:
        Seeds the quantization noise (a ``torch.Generator``); the initial model is w_0 = 0.
    eval_split:
        "val" or "test": the digits split on which accuracy is reported.
    """

    def __init__(
        self,
        partition: tuple[np.ndarray, ...] | list[np.ndarray],
        *,
        replicas: int = 1,
        l2: float = DEFAULT_L2,
        lr: float = DEFAULT_LR,
        lr_decay_rounds: float = DEFAULT_LR_DECAY_ROUNDS,
        seed: int = 0,
        data_seed: int = 0,
        eval_split: str = "val",
        dtype: str = "float32",
    ) -> None:
        self.replicas = check_int("replicas", replicas, min_value=1)
        self.l2 = check_float("l2", l2, min_value=0.0, min_inclusive=False)
        self.lr = check_float("lr", lr, min_value=0.0, min_inclusive=False)
        self.lr_decay_rounds = check_float("lr_decay_rounds", lr_decay_rounds, min_value=0.0, min_inclusive=False)
        check_choice("eval_split", eval_split, ("val", "test"))
        check_choice("dtype", dtype, ("float32", "float64"))
        self.dtype = dt = getattr(torch, dtype)
        if len(partition) < 1 or any(len(p) == 0 for p in partition):
            raise ValueError("partition must hold at least one device and no empty device")
        splits = digits_splits(data_seed)
        x_all, y_all = _features(splits.train.x, dt), torch.as_tensor(np.array(splits.train.y))
        self.num_devices = len(partition)
        sizes = np.array([len(p) for p in partition])
        self.data_sizes = sizes
        self.weights = torch.as_tensor(sizes / sizes.sum(), dtype=dt)
        # Devices padded to the largest one; padded rows are zero and masked out of the gradient.
        dmax = int(sizes.max())
        self._x = torch.zeros(self.num_devices, dmax, NUM_FEATURES + 1, dtype=dt)
        self._y = torch.zeros(self.num_devices, dmax, NUM_CLASSES, dtype=dt)
        self._mask = torch.zeros(self.num_devices, dmax, 1, dtype=dt)
        for k, idx in enumerate(partition):
            idx_t = torch.as_tensor(np.array(idx))
            self._x[k, : len(idx)] = x_all[idx_t]
            self._y[k, : len(idx)] = torch.nn.functional.one_hot(y_all[idx_t], NUM_CLASSES).to(dt)
            self._mask[k, : len(idx)] = 1.0
        self._inv_sizes = torch.as_tensor(1.0 / sizes, dtype=dt).view(1, -1, 1, 1)
        self._x_all, self._y_all = x_all, y_all
        self._rows = torch.arange(len(y_all))
        ev = splits.val if eval_split == "val" else splits.test
        self._x_eval, self._y_eval = _features(ev.x, dt), torch.as_tensor(np.array(ev.y))
        self.f_star, _ = optimum(self.l2, data_seed)
        self._seed = check_int("seed", seed, min_value=0)
        self.reset(seed)

    # -- state ---------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        """Start again from w_0 = 0 at round 0; ``seed`` reseeds the quantization noise."""
        if seed is not None:
            self._seed = check_int("seed", seed, min_value=0)
        self.generator = torch.Generator().manual_seed(self._seed)
        self.round = 0
        self.w = torch.zeros(self.replicas, NUM_FEATURES + 1, NUM_CLASSES, dtype=self.dtype)

    def learning_rate(self, n: int) -> float:
        return self.lr / (1.0 + n / self.lr_decay_rounds)

    # -- objective -----------------------------------------------------------------------------
    def loss(self, w: torch.Tensor | None = None) -> np.ndarray:
        """Global training objective F(w) for every replica."""
        w = self.w if w is None else w
        logits = torch.matmul(self._x_all, w.to(self.dtype))  # [R, n, classes]
        ce = (torch.logsumexp(logits, dim=-1) - logits[:, self._rows, self._y_all]).to(torch.float64).mean(1)
        w64 = w.to(torch.float64)
        return (ce + 0.5 * self.l2 * (w64 * w64).sum((1, 2))).numpy()

    def accuracy(self, w: torch.Tensor | None = None) -> np.ndarray:
        w = self.w if w is None else w
        pred = torch.einsum("nj,rjl->rnl", self._x_eval, w).argmax(-1)
        return (pred == self._y_eval).to(torch.float64).mean(1).numpy()

    def local_gradients(self) -> torch.Tensor:
        """[R, K, d] full local gradients grad F_k(w_n) of every device in every replica."""
        logits = torch.einsum("kdj,rjl->rkdl", self._x, self.w)
        err = (torch.softmax(logits, dim=-1) - self._y) * self._mask
        grads = torch.einsum("kdj,rkdl->rkjl", self._x, err) * self._inv_sizes + self.l2 * self.w.unsqueeze(1)
        return grads.reshape(self.replicas, self.num_devices, MODEL_DIM)

    # -- one round -----------------------------------------------------------------------------
    def step(self, levels: np.ndarray) -> RoundMetrics:
        """Run one FL round with ``levels`` ([K] shared by all replicas, or [R, K]); 0 = unquantized."""
        lv = np.asarray(levels)
        if lv.shape == (self.num_devices,):
            lv = np.broadcast_to(lv, (self.replicas, self.num_devices))
        if lv.shape != (self.replicas, self.num_devices):
            raise ValueError(
                f"levels must have shape ({self.num_devices},) or ({self.replicas}, {self.num_devices}), got {lv.shape}"
            )
        if not np.issubdtype(lv.dtype, np.integer) or (lv < 0).any():
            raise ValueError("levels must be integers >= 1, or 0 for an unquantized upload")
        grads = self.local_gradients()
        q = qsgd_quantize(grads.reshape(-1, MODEL_DIM), torch.from_numpy(np.array(lv.reshape(-1), dtype=np.int64)), self.generator)
        agg = torch.einsum("k,rkd->rd", self.weights, q.reshape(self.replicas, self.num_devices, MODEL_DIM))
        self.w = self.w - self.learning_rate(self.round) * agg.reshape_as(self.w)
        self.round += 1
        loss = self.loss()
        return RoundMetrics(
            loss=loss,
            gap=loss - self.f_star,
            accuracy=self.accuracy(),
            grad_norms=torch.linalg.vector_norm(grads, dim=-1).numpy(),
        )

    def run(self, levels: np.ndarray, rounds: int) -> np.ndarray:
        """Reset, train ``rounds`` rounds with fixed ``levels``; return the gap curve [rounds, R]."""
        rounds = check_int("rounds", rounds, min_value=1)
        self.reset()
        return np.stack([self.step(levels).gap for _ in range(rounds)])
