"""HAWQ-V3's ResNet-18 and ResNet-50 (ImageNet) integer-program data as benchmark tables.

The per-layer numbers are those HAWQ-V3 (Yao et al., ICML 2021) publishes in ``ILP.ipynb``
(github.com/Zhen-Dong/HAWQ, MIT licence; commit and notes in ``table_data/hawq_v3_ilp.json``):
Hessian traces per parameter, ``||W - Q_b(W)||^2`` at 4 and 8 bits, parameter counts,
multiply-accumulates and T4 INT4/INT8 latencies of every convolution but the first. A policy's
score is minus HAWQ's perturbation objective, ``-sum_i Tr(H_i)/n_i * ||W_i - Q_{b_i}(W_i)||^2``
(the notebook's objective up to a constant); the widths are {4, 8} for weights and activations
alike, as in HAWQ-V3's INT4/INT8 kernels; budgets are on

* ``size``: ``sum_i n_i * b_i / 8`` bytes of weights;
* ``bops``: ``sum_i MACs_i * b_i^2`` bit operations (the notebook's ``bops / 64`` and ``bops / 16``
  up to the common factor 1024);
* ``latency``: the measured T4 latency, seconds (hardware ``"t4"``),

set, as in the notebook, by a *level* ``x`` in [0, 1]: ``cost(all-4) + x * (cost(all-8) - cost(all-4))``.
HAWQ's tied layers (a residual downsampling convolution shares its block's first convolution's
width) form one decision unit. The layer shapes the observation needs come from the ResNet
architectures (torchvision/pytorchcv, stride in the first 1x1 convolution for ResNet-50) and are
checked in the tests against the notebook's parameter and MAC counts.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import numpy as np

from quant_envs.mixed_precision.tables import DATA_DIR
from quant_envs.mixed_precision.tables.policy_table import PolicyTable, TableLayer

HAWQ_BITS = (4, 8)
NETWORKS = ("resnet18", "resnet50")


@cache
def hawq_data() -> dict[str, Any]:
    """The notebook's numbers with their provenance (``table_data/hawq_v3_ilp.json``)."""
    return json.loads((DATA_DIR / "hawq_v3_ilp.json").read_text())


@cache
def hawq_bit_configs() -> dict[str, Any]:
    """HAWQ-V3's published weight bits per (network, metric, level) (``table_data/hawq_v3_bit_config.json``)."""
    return json.loads((DATA_DIR / "hawq_v3_bit_config.json").read_text())


def resnet_layers(network: str) -> list[TableLayer]:
    """The convolutions after the first of ResNet-18/50 on 224x224 inputs, in HAWQ's order."""
    blocks = {"resnet18": (2, 2, 2, 2), "resnet50": (3, 4, 6, 3)}[network]
    bottleneck = network == "resnet50"
    layers: list[TableLayer] = []
    hw, c_prev = 56, 64

    def conv(name: str, c_in: int, c_out: int, k: int, stride: int, size: int) -> None:
        layers.append(TableLayer(name=name, kind="conv", c_in=c_in, c_out=c_out, stride=stride, kernel=k,
                                 num_weights=c_in * c_out * k * k, in_hw=(size, size)))

    for s, units in enumerate(blocks):
        width = 64 * 2 ** s
        c_out = width * 4 if bottleneck else width
        for u in range(units):
            stride = 2 if (u == 0 and s > 0) else 1
            out = hw // stride
            p = f"stage{s + 1}.unit{u + 1}."
            if bottleneck:
                conv(p + "quant_convbn1", c_prev, width, 1, stride, hw)
                conv(p + "quant_convbn2", width, width, 3, 1, out)
                conv(p + "quant_convbn3", width, c_out, 1, 1, out)
            else:
                conv(p + "quant_convbn1", c_prev, width, 3, stride, hw)
                conv(p + "quant_convbn2", width, width, 3, 1, out)
            if u == 0 and (stride != 1 or c_prev != c_out):
                conv(p + "quant_identity_convbn", c_prev, c_out, 1, stride, hw)
            hw, c_prev = out, c_out
    return layers


def unit_groups(names: list[str], ties: list[list[str]]) -> list[list[int]]:
    """Layer indices per decision unit: tied layers join the unit of their first member."""
    owner = list(range(len(names)))
    index = {n: i for i, n in enumerate(names)}
    for group in ties:
        first = min(index[n] for n in group)
        for n in group:
            owner[index[n]] = first
    groups: dict[int, list[int]] = {}
    for i, o in enumerate(owner):
        groups.setdefault(o, []).append(i)
    return [groups[k] for k in sorted(groups)]


def hawq_v3_table(network: str) -> PolicyTable:
    """The HAWQ-V3 table of ``network`` ("resnet18" or "resnet50")."""
    if network not in NETWORKS:
        raise ValueError(f"network={network!r} is not allowed; expected one of {NETWORKS}")
    data = hawq_data()
    d = data["networks"][network]
    names = d["layers"]
    trace = np.asarray(d["hutchinson_trace_per_parameter"])
    dw = np.stack([d["delta_w_sq_4bit"], d["delta_w_sq_8bit"]], axis=1)  # [layers, bits]
    params = np.asarray(d["parameters"], dtype=float)
    macs = np.asarray(d["macs"], dtype=float)
    bits = np.asarray(HAWQ_BITS, dtype=float)
    per_layer = {
        "score": -trace[:, None] * dw,
        "size": params[:, None] * bits[None] / 8.0,
        "bops": macs[:, None] * bits[None] ** 2,
        "latency": np.stack([d["t4_latency_int4_ms"], d["t4_latency_int8_ms"]], axis=1) * 1e-3,
    }
    groups = unit_groups(names, d["ties"])
    merged = {k: np.stack([v[g].sum(axis=0) for g in groups]) for k, v in per_layer.items()}
    shapes = resnet_layers(network)
    if [la.name for la in shapes] != names:
        raise RuntimeError(f"the {network} architecture does not list HAWQ's layers")  # guarded by tests
    layers = tuple(TableLayer(**{**shapes[g[0]].__dict__, "num_weights": int(sum(shapes[i].num_weights for i in g))})
                   for g in groups)
    # Feature 10 proxy: the rms 8-bit quantization error per weight, proportional to the weights' range.
    rms8 = np.sqrt(np.asarray(d["delta_w_sq_8bit"]) / params)
    return PolicyTable(
        name=f"hawq-{network}", bits=HAWQ_BITS, units=tuple(tuple(names[i] for i in g) for g in groups),
        layers=layers, weight_std=np.array([rms8[g[0]] for g in groups]),
        costs={"t4": {"latency": merged["latency"], "size": merged["size"], "bops": merged["bops"]}},
        metric_units={"latency": "s", "size": "B", "bops": "bit operations"},
        score=merged["score"], separable=True,
        score_name="minus HAWQ-V3's perturbation sum Tr(H)/n * ||W - Q_b(W)||^2",
        score_scale=1.0, regret_unit="perturbation (HAWQ-V3 objective)", score_offset=0.0,
        default_hardware="t4", default_budget={"metric": "latency", "level": 0.5}, default_reward_scale=1.0,
        meta={"provenance": data["provenance"], "network": network, "dataset": "ImageNet",
              "weight_std": "proxy: sqrt(||W - Q_8(W)||^2 / n) of the unit's first layer (HAWQ publishes no weight std)"},
    )
