"""The learning task shared by the model and the simulator, in numpy: L2-regularised softmax
regression on the 64 pixels of the digits data (plus a bias), d = 65 x 10 = 650 parameters.

Device k's local objective is F_k(w) = mean_{i in D_k} CE(w; x_i, y_i) + (l2 / 2) ||w||^2 and the
global one F = sum_k p_k F_k is the training-set mean, so its optimum (F*, w*) is the same for
every partition. The squared norms ||grad F_k(w*)||^2 (non-zero because the shares are not
identically distributed) weight each device's quantization noise in the convergence model.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from quant_envs.datasets import digits_splits

NUM_FEATURES = 64
NUM_CLASSES = 10
#: Parameters of the model: a 65 x 10 matrix (64 pixel weights and a bias per class).
MODEL_DIM = (NUM_FEATURES + 1) * NUM_CLASSES
#: Training hyperparameters the default convergence constants were fitted for.
DEFAULT_L2 = 1e-2
DEFAULT_LR = 2.0
DEFAULT_LR_DECAY_ROUNDS = 100.0


def features(x: np.ndarray) -> np.ndarray:
    """[n, 65] float64: flattened pixels and a constant 1 for the bias."""
    flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return np.concatenate([flat, np.ones((len(flat), 1))], axis=1)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def loss_and_grad(w: np.ndarray, x: np.ndarray, y: np.ndarray, l2: float) -> tuple[float, np.ndarray]:
    """Mean cross-entropy + (l2/2)||w||^2 and its gradient; ``w`` is [65, 10], ``x`` is [n, 65]."""
    z = x @ w
    z = z - z.max(axis=1, keepdims=True)
    logsum = np.log(np.exp(z).sum(axis=1))
    ce = float(np.mean(logsum - z[np.arange(len(y)), y]))
    p = np.exp(z - logsum[:, None])
    p[np.arange(len(y)), y] -= 1.0
    grad = x.T @ p / len(y) + l2 * w
    return ce + 0.5 * l2 * float(np.sum(w * w)), grad


@lru_cache(maxsize=1)
def _blas_controller():
    """threadpoolctl's controller, made once: building one scans the loaded libraries (5 ms, more
    than the rest of a FeelAllocation episode)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@lru_cache(maxsize=8)
def optimum(l2: float = DEFAULT_L2, data_seed: int = 0) -> tuple[float, np.ndarray]:
    """(F*, w*) on the digits training split, by L-BFGS to gradient norm ~1e-10 (read-only w*)."""
    from scipy.optimize import minimize
    from threadpoolctl import threadpool_limits

    train = digits_splits(data_seed).train
    x, y = features(train.x), np.asarray(train.y)

    def fun(flat: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = loss_and_grad(flat.reshape(NUM_FEATURES + 1, NUM_CLASSES), x, y, l2)
        return f, g.ravel()

    # Tiny matrices: BLAS threads only contend (x20 slower on a loaded 2-core machine).
    with threadpool_limits(limits=1, user_api="blas"):
        res = minimize(fun, np.zeros(MODEL_DIM), jac=True, method="L-BFGS-B",
                       options={"gtol": 1e-10, "ftol": 1e-16, "maxiter": 20_000, "maxcor": 30})
    w = res.x.reshape(NUM_FEATURES + 1, NUM_CLASSES)
    w.setflags(write=False)
    return float(res.fun), w


def local_gradients_at_optimum(partition: tuple[np.ndarray, ...], l2: float = DEFAULT_L2, data_seed: int = 0) -> np.ndarray:
    """[K, d] local gradients grad F_k(w*) of every device's share of the training split."""
    train = digits_splits(data_seed).train
    x, y = features(train.x), np.asarray(train.y)
    _, w = optimum(l2, data_seed)
    with _blas_controller().limit(limits=1, user_api="blas"):
        return np.stack([loss_and_grad(w, x[idx], y[idx], l2)[1].ravel() for idx in partition])
