"""Per-layer observation features of the mixed-precision environment.

Thirteen float32 features per step, all in [0, 1] except the last, in [-1, 1]:

====  ==========================  ================================================================
 idx  feature                     normalisation
====  ==========================  ================================================================
  0   layer index                 i / (L - 1)
  1   depthwise flag              1 for a depthwise convolution, else 0
  2   input channels c_in         min-max over the network's layers (HAQ)
  3   output channels c_out       min-max over layers
  4   stride                      min-max over layers
  5   kernel size                 min-max over layers
  6   number of weights           min-max over layers
  7   input feature-map size      H x W of the layer's input, min-max over layers
  8   weight/activation flag      1 when the step sets weight bits (or both, one step per layer),
                                  0 when it sets activation bits (HAQ's two steps per layer)
  9   last action                 (previous step's width - min width) / (max - min width); 1 at start
 10   weight standard deviation   std of the layer's float weights / the largest such std
 11   cost share                  the layer's share of the all-8-bit cost of the budget metric
 12   budget left                 (budget - cost of the layers already set) / budget, clipped to
                                  [-1, 1] (negative only where the budget is not enforced by masks)
====  ==========================  ================================================================

Features 0-9 are HAQ's (Wang et al., CVPR 2019, Sec. 3.1); 10 is the statistic the CMC 2024 method
adds to describe each layer's weight distribution; 11-12 tell the agent what is left to spend.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import Protocol, TypeAlias

import numpy as np
from numpy.typing import NDArray

#: One observation of the mixed-precision environments (features, then any hardware descriptor).
Observation: TypeAlias = NDArray[np.float32]


class Feature(IntEnum):
    """Position of each feature in the observation vector (the table above)."""

    LAYER_INDEX = 0
    DEPTHWISE = 1
    C_IN = 2
    C_OUT = 3
    STRIDE = 4
    KERNEL = 5
    NUM_WEIGHTS = 6
    INPUT_FMAP_SIZE = 7
    IS_WEIGHT_STEP = 8
    LAST_ACTION = 9
    WEIGHT_STD = 10
    COST_SHARE = 11
    BUDGET_LEFT = 12


NUM_FEATURES = len(Feature)
FEATURE_NAMES = tuple(f.name.lower() for f in Feature)
#: the layer-shape features, min-max normalised over the network's layers
_MINMAX_FEATURES = (Feature.C_IN, Feature.C_OUT, Feature.STRIDE, Feature.KERNEL, Feature.NUM_WEIGHTS,
                    Feature.INPUT_FMAP_SIZE)


class LayerFacts(Protocol):
    """What the features read of a layer: a live ``QuantLayer`` or a table's ``TableLayer``."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def c_in(self) -> int: ...
    @property
    def c_out(self) -> int: ...
    @property
    def stride(self) -> int: ...
    @property
    def kernel(self) -> int: ...
    @property
    def num_weights(self) -> int: ...
    @property
    def in_hw(self) -> tuple[int, int]: ...


def _minmax(column: np.ndarray) -> np.ndarray:
    lo, hi = column.min(), column.max()
    return np.zeros_like(column) if hi == lo else (column - lo) / (hi - lo)


def static_features(layers: Sequence[LayerFacts], weight_std: np.ndarray, cost_share: np.ndarray) -> np.ndarray:
    """Features 0-7, 10 and 11 for every layer ([L, NUM_FEATURES], dynamic columns left at 0).

    ``layers`` are :class:`~quant_envs.mixed_precision.layer_shapes.QuantLayer` (or any other
    :class:`LayerFacts`).
    """
    n = len(layers)
    f = np.zeros((n, NUM_FEATURES), dtype=np.float64)
    f[:, Feature.LAYER_INDEX] = np.arange(n) / max(n - 1, 1)
    f[:, Feature.DEPTHWISE] = [layer.kind == "depthwise" for layer in layers]
    raw = np.array(
        [[layer.c_in, layer.c_out, layer.stride, layer.kernel, layer.num_weights,
          layer.in_hw[0] * layer.in_hw[1]] for layer in layers], dtype=np.float64)
    for j, feature in enumerate(_MINMAX_FEATURES):
        f[:, feature] = _minmax(raw[:, j])
    std = np.asarray(weight_std, dtype=np.float64)
    f[:, Feature.WEIGHT_STD] = std / std.max() if std.max() > 0 else 0.0
    f[:, Feature.COST_SHARE] = cost_share
    return f


def observation(static: np.ndarray, layer: int, is_weight_step: bool, last_action: float,
                budget_left: float) -> Observation:
    """The observation of one step: the layer's static row with the dynamic features filled in."""
    obs = static[layer].astype(np.float32)  # a copy
    obs[Feature.IS_WEIGHT_STEP] = 1.0 if is_weight_step else 0.0
    obs[Feature.LAST_ACTION] = last_action
    obs[Feature.BUDGET_LEFT] = min(max(budget_left, -1.0), 1.0)
    return obs
