"""Data sets that need no download: scikit-learn's bundled handwritten digits.

Shared by the mixed-precision tasks and the federated-learning simulator, so both see the same
fixed, seeded split.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class Split:
    """Images ``x`` (float32, [n, 1, 8, 8], scaled to [0, 1]) and labels ``y`` (int64, [n])."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class DigitsSplits:
    """Stratified train / validation / test splits of the 1797 digits (10 classes, 8x8 pixels)."""

    train: Split
    val: Split
    test: Split
    num_classes: int = 10


@lru_cache(maxsize=4)
def digits_splits(seed: int = 0, val_fraction: float = 0.2, test_fraction: float = 0.2) -> DigitsSplits:
    """Return the digits data set split with a fixed seed (60/20/20 by default).

    The arrays are read-only: callers that need to modify them must copy.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from quant_envs._checks import check_float, check_int

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
    return DigitsSplits(*splits)
