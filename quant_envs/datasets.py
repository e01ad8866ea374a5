"""Data sets that need no download: scikit-learn's bundled handwritten digits and MNIST-1D.

The digits are shared by the mixed-precision tasks and the federated-learning simulator, so both
see the same fixed, seeded split. MNIST-1D is generated here with the ``mnist1d`` package's
``make_dataset`` (never its ``get_dataset``, which downloads by default).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from quant_envs.atomic_io import atomic_path
from quant_envs.checks import check_float, check_int


@dataclass(frozen=True)
class Split:
    """Inputs ``x`` (float32; digits: [n, 1, 8, 8] scaled to [0, 1]) and labels ``y`` (int64, [n])."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Splits:
    """Train / validation / test splits of a classification data set."""

    train: Split
    val: Split
    test: Split
    num_classes: int = 10


class DigitsSplits(Splits):
    """Stratified train / validation / test splits of the 1797 digits (10 classes, 8x8 pixels)."""


@lru_cache(maxsize=4)
def digits_splits(seed: int = 0, val_fraction: float = 0.2, test_fraction: float = 0.2) -> DigitsSplits:
    """Return the digits data set split with a fixed seed (60/20/20 by default).

    The arrays are read-only: callers that need to modify them must copy.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    check_int("seed", seed, min_value=0)
    check_float("val_fraction", val_fraction, min_value=0.0, max_value=0.5, min_inclusive=False)
    check_float("test_fraction", test_fraction, min_value=0.0, max_value=0.5, min_inclusive=False)

    data = load_digits()
    x = (data.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = data.target.astype(np.int64)
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=test_fraction, stratify=y, random_state=seed
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=val_fraction / (1.0 - test_fraction), stratify=y_rest, random_state=seed
    )
    splits = [Split(a, b) for a, b in ((x_train, y_train), (x_val, y_val), (x_test, y_test))]
    for s in splits:
        s.x.setflags(write=False)
        s.y.setflags(write=False)
    train, val, test = splits
    return DigitsSplits(train, val, test)


# --------------------------------------------------------------------------------------------------
# MNIST-1D (Greydanus & Kobak, "Scaling down deep learning with MNIST-1D", ICML 2024)

#: Samples generated for the default MNIST-1D splits: 30000 train, 5000 validation, 5000 test.
MNIST1D_SAMPLES = 40_000
_MNIST1D_FORMAT = 1


class Mnist1dSplits(Splits):
    """Train / validation / test splits of MNIST-1D; ``x`` is float32 [n, 1, 40], ``y`` int64 [n]."""


def _generate_mnist1d(num_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Run ``mnist1d.data.make_dataset`` (local generation; its ``get_dataset`` would download).

    ``make_dataset`` seeds NumPy's and Python's global generators; their states are restored after.
    Returns all samples (already standardised by ``make_dataset``) in its shuffled order.
    """
    import random

    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed, args.train_split = num_samples, seed, 1.0
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return data["x"].astype(np.float32), data["y"].astype(np.int64)


def mnist1d_splits(cache_dir: str | os.PathLike[str], num_samples: int = MNIST1D_SAMPLES,
                   seed: int = 0, val_size: int = 5000, test_size: int = 5000) -> Mnist1dSplits:
    """MNIST-1D generated locally with ``num_samples`` samples and ``seed``, cached in ``cache_dir``.

    The last ``val_size + test_size`` samples of ``make_dataset``'s shuffled order are validation
    and test; the rest is training data. Generation takes ~15 s for 40000 samples, so the arrays are
    kept in ``cache_dir/data`` (written atomically; an unreadable file is regenerated).
    The arrays are read-only.
    """
    check_int("num_samples", num_samples, min_value=30)
    check_int("seed", seed, min_value=0)
    check_int("val_size", val_size, min_value=1)
    check_int("test_size", test_size, min_value=1)
    if val_size + test_size >= num_samples:
        raise ValueError(f"val_size + test_size = {val_size + test_size} is not allowed with "
                         f"num_samples={num_samples}; expected fewer than num_samples")
    path = Path(cache_dir) / "data" / f"mnist1d-n{num_samples}-s{seed}-f{_MNIST1D_FORMAT}.npz"
    x = y = None
    if path.exists():
        try:
            with np.load(path) as blob:
                x, y = blob["x"], blob["y"]
            if x.shape != (num_samples, 40) or y.shape != (num_samples,):
                raise ValueError(f"shapes {x.shape}, {y.shape}")
        except Exception as exc:  # any unreadable file is regenerated, never trusted
            warnings.warn(f"cached MNIST-1D data {path} is unreadable ({exc}); regenerating it", stacklevel=2)
            x = y = None
    if x is None or y is None:
        x, y = _generate_mnist1d(num_samples, seed)
        with atomic_path(path) as tmp:
            np.savez(tmp, x=x, y=y)
    x = x[:, None, :].astype(np.float32)
    n_train = num_samples - val_size - test_size
    parts = ((0, n_train), (n_train, n_train + val_size), (n_train + val_size, num_samples))
    splits = [Split(np.ascontiguousarray(x[a:b]), np.ascontiguousarray(y[a:b])) for a, b in parts]
    for s in splits:
        s.x.setflags(write=False)
        s.y.setflags(write=False)
    train, val, test = splits
    return Mnist1dSplits(train, val, test)
