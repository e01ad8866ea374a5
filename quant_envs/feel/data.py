"""Label-skewed, seeded partition of the digits training split across K devices.

Non-identical shares follow the Dirichlet label-skew protocol of Hsu, Qi & Brown (2019),
"Measuring the effects of non-identical data distribution for federated visual classification":
for every class c, the class's samples are split among the K devices in proportions drawn from
Dirichlet(alpha, ..., alpha). Small alpha (0.1) gives devices holding one or two classes; large
alpha (100) approaches an IID split. Device data sizes come out heterogeneous as a by-product.

Every device must hold at least ``min_samples`` samples (an empty device has no gradient): after
the Dirichlet draw, samples are moved one at a time, chosen at random, from the currently largest
device to the smallest one until the floor holds. The partition depends only on the labels,
``num_devices``, ``alpha``, ``min_samples`` and ``seed``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from quant_envs.checks import check_float, check_int
from quant_envs.datasets import digits_splits


def dirichlet_label_partition(
    labels: np.ndarray, num_devices: int, *, alpha: float, seed: int, min_samples: int = 2
) -> tuple[np.ndarray, ...]:
    """Split sample indices by Dirichlet(alpha) label skew; returns one sorted index array per device."""
    labels = np.asarray(labels)
    num_devices = check_int("num_devices", num_devices, min_value=1)
    alpha = check_float("alpha", alpha, min_value=0.0, min_inclusive=False)
    min_samples = check_int("min_samples", min_samples, min_value=1)
    check_int("seed", seed, min_value=0)
    if num_devices * min_samples > len(labels):
        raise ValueError(
            f"num_devices={num_devices} is not allowed with min_samples={min_samples}: only "
            f"{len(labels)} samples; expected num_devices <= {len(labels) // min_samples}"
        )
    rng = np.random.default_rng(seed)
    owner = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        share = rng.dirichlet(np.full(num_devices, alpha))
        cuts = np.round(np.cumsum(share)[:-1] * len(idx)).astype(np.int64)
        for k, part in enumerate(np.split(idx, cuts)):
            owner[part] = k
    counts = np.bincount(owner, minlength=num_devices)
    while counts.min() < min_samples:
        small, large = int(np.argmin(counts)), int(np.argmax(counts))
        moved = rng.choice(np.flatnonzero(owner == large))
        owner[moved] = small
        counts[small] += 1
        counts[large] -= 1
    return tuple(np.flatnonzero(owner == k) for k in range(num_devices))


@lru_cache(maxsize=64)
def digits_partition(num_devices: int, alpha: float, seed: int, data_seed: int = 0) -> tuple[np.ndarray, ...]:
    """Partition of ``quant_envs.datasets.digits_splits(data_seed).train`` (cached, read-only arrays)."""
    parts = dirichlet_label_partition(digits_splits(data_seed).train.y, num_devices, alpha=alpha, seed=seed)
    for p in parts:
        p.setflags(write=False)
    return parts
