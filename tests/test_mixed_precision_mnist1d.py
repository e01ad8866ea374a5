"""MNIST-1D tasks: local generation, 1-D layer shapes, fake quantization of Conv1d, default budgets."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import hw_sim
from quant_envs.datasets import mnist1d_splits
from quant_envs.mixed_precision.layer_shapes import quantizable_layers
from quant_envs.mixed_precision.models import (
    DigitsCNN,
    DigitsMobileNet,
    Mnist1dCNN,
    Mnist1dMobileNet,
)
from quant_envs.mixed_precision.problem import METRICS, MixedPrecisionProblem
from quant_envs.mixed_precision.quantize import QuantLayerWrapper
from quant_envs.mixed_precision.tasks import Task

#: the page that states the default tasks' float accuracies
TASKS_PAGE = Path(__file__).resolve().parents[1] / "docs" / "problems" / "mixed-precision.md"


# ------------------------------------------------------------------------------------- data
@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    import requests

    monkeypatch.setattr(requests, "get", refuse)


def test_mnist1d_is_generated_locally_seeded_and_cached(tmp_path: Path, no_network: None) -> None:
    state = np.random.get_state()[1].copy()
    first = mnist1d_splits(tmp_path / "a", num_samples=400, seed=3, val_size=50, test_size=50)
    assert np.array_equal(np.random.get_state()[1], state)  # make_dataset's global seeding is undone
    assert first.train.x.shape == (300, 1, 40) and first.val.x.shape == (50, 1, 40) and first.test.x.shape == (50, 1, 40)
    assert first.train.x.dtype == np.float32 and set(np.unique(first.train.y)) <= set(range(10))
    assert len(list((tmp_path / "a" / "data").glob("*.npz"))) == 1
    again = mnist1d_splits(tmp_path / "b", num_samples=400, seed=3, val_size=50, test_size=50)  # generated anew
    assert np.array_equal(first.train.x, again.train.x) and np.array_equal(first.test.y, again.test.y)
    cached = mnist1d_splits(tmp_path / "a", num_samples=400, seed=3, val_size=50, test_size=50)
    assert np.array_equal(first.val.x, cached.val.x)
    other = mnist1d_splits(tmp_path / "a", num_samples=400, seed=4, val_size=50, test_size=50)
    assert not np.array_equal(first.train.x, other.train.x)


def test_a_corrupt_mnist1d_cache_is_regenerated(tmp_path: Path, no_network: None) -> None:
    first = mnist1d_splits(tmp_path, num_samples=200, val_size=20, test_size=20)
    (path,) = (tmp_path / "data").glob("*.npz")
    path.write_bytes(b"not an npz file")
    with pytest.warns(UserWarning, match="unreadable"):
        again = mnist1d_splits(tmp_path, num_samples=200, val_size=20, test_size=20)
    assert np.array_equal(first.train.x, again.train.x)


def test_mnist1d_split_sizes_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="val_size \\+ test_size"):
        mnist1d_splits(tmp_path, num_samples=100, val_size=50, test_size=50)


# ------------------------------------------------------------------------------ layer shapes
def test_conv1d_layer_shape_matches_a_hand_computation() -> None:
    # By hand, PyTorch's output length floor((L + 2p - d(k - 1) - 1) / s) + 1:
    # Conv1d(16 -> 32, k3, s2, p1) on L = 20: L_out = 10; GEMM m = 32, k = 16 x 3 = 48, n = 10;
    # MACs 32 x 48 x 10 = 15360; weights 32 x 48 = 1536; activations in 16 x 20, out 32 x 10.
    model = nn.Sequential(nn.Conv1d(16, 32, 3, stride=2, padding=1, bias=False),
                          nn.Conv1d(32, 32, 5, padding=4, dilation=2, groups=32, bias=False))
    first, dw = quantizable_layers(model, torch.zeros(2, 16, 20))
    s = first.shape
    assert (s.m, s.k, s.n, s.groups, s.kernel_area) == (32, 48, 10, 1, 3)
    assert (s.macs, s.weight_count, s.input_count, s.output_count) == (15360, 1536, 320, 320)
    assert (first.kind, first.in_hw, first.out_hw, first.kernel, first.stride) == ("conv", (1, 20), (1, 10), 3, 2)
    # depthwise k5, dilation 2, padding 4 on L = 10: L_out = (10 + 8 - 8 - 1) + 1 = 10;
    # per group m = 1, k = 5, n = 10; 32 groups: MACs 32 x 5 x 10 = 1600, weights 160.
    d = dw.shape
    assert (d.m, d.k, d.n, d.groups, d.macs, d.weight_count, dw.kind) == (1, 5, 10, 32, 1600, 160, "depthwise")


def test_mnist1d_networks_have_8_to_20_quantizable_layers_costed_by_hand() -> None:
    cnn = quantizable_layers(Mnist1dCNN(), torch.zeros(1, 1, 40))
    mbnet = quantizable_layers(Mnist1dMobileNet(), torch.zeros(1, 1, 40))
    assert len(cnn) == 8 and len(mbnet) == 12
    assert sum(ly.kind == "depthwise" for ly in mbnet) == 5
    # Mnist1dCNN (width 16), MACs per sample by hand: c_out x c_in x k x L_out per conv, then the head
    by_hand = [16 * 1 * 5 * 40, 16 * 16 * 3 * 40, 32 * 16 * 3 * 20, 32 * 32 * 3 * 20, 32 * 32 * 3 * 10,
               64 * 32 * 3 * 10, 64 * 64 * 3 * 5, 10 * 64]
    assert [ly.shape.macs for ly in cnn] == by_hand
    # the cost tables price them: more bits never cost less on a bit-serial accelerator
    table = hw_sim.CostTable([ly.shape for ly in cnn], "bismo-edge")
    assert np.all(np.diff(table.latency, axis=1) >= 0)


def test_conv1d_fake_quantization_at_8_bits_is_close_to_float() -> None:
    torch.manual_seed(0)
    conv = nn.Conv1d(4, 8, 3, padding=1)
    x = torch.randn(5, 4, 40).relu()
    wrapper = QuantLayerWrapper(conv)
    ratio = torch.ones(8)
    wrapper.set_bits(8, ratio, 8, (0.0, float(x.max())))
    err = (wrapper(x) - conv(x)).abs().max() / conv(x).abs().max()
    assert 0 < err < 0.02
    wrapper.set_bits(2, ratio, 2, (0.0, float(x.max())))
    assert (wrapper(x) - conv(x)).abs().max() / conv(x).abs().max() > err  # fewer bits, larger error


# ---------------------------------------------------------------------------------- budgets
def _untrained_task(name: str, model: nn.Module, input_shape: tuple[int, ...]) -> Task:
    """Costs and budgets depend on layer shapes only: an untrained model with a tiny data set will do."""
    data = TensorDataset(torch.zeros(4, *input_shape), torch.zeros(4, dtype=torch.long))
    return Task(name=name, model=model.eval(), train_set=data, val_set=data, test_set=data,
                input_shape=input_shape, num_classes=10)


TASKS = [("mnist1d-cnn", Mnist1dCNN, (1, 40)), ("mnist1d-mbnet", Mnist1dMobileNet, (1, 40)),
         ("digits-mbnet", DigitsMobileNet, (1, 8, 8)), ("digits-cnn", DigitsCNN, (1, 8, 8))]


@pytest.mark.parametrize(("name", "build", "shape"), TASKS, ids=[t[0] for t in TASKS])
def test_every_default_budget_leaves_at_least_1000_feasible_policies(name, build, shape) -> None:
    task = _untrained_task(name, build(), shape)
    for hardware in sorted(hw_sim.PROFILES):
        for metric in METRICS:
            p = MixedPrecisionProblem(task=task, hardware=hardware, budget_metric=metric)
            feasible, total = p.count_feasible()
            assert feasible >= min(1000, total), (hardware, metric, p.budget_fraction)
            # the smallest such multiple of 0.05 (above the 0.25 floor): 0.05 less leaves fewer
            if p.budget_fraction > 0.25 + 1e-9:
                ref = p.reference_cost[metric]
                assert p.count_feasible(budget=(p.budget_fraction - 0.05) * ref)[0] < min(1000, total)


def test_count_feasible_matches_enumeration() -> None:
    task = _untrained_task("digits-cnn", DigitsCNN(), (1, 8, 8))
    p = MixedPrecisionProblem(task=task, budget_fraction=0.6)
    import itertools

    table = p.layer_costs(p.budget_metric)
    brute = sum(sum(table[i, j, j] for i, j in enumerate(c)) <= p.budget * (1 + 1e-9)
                for c in itertools.product(range(len(p.bits)), repeat=p.num_layers))
    assert p.count_feasible() == (brute, len(p.bits) ** p.num_layers)
    assert 0 < brute < len(p.bits) ** p.num_layers


def test_budget_fraction_is_of_the_all_8_bit_cost_even_without_8_bits() -> None:
    task = _untrained_task("mnist1d-cnn", Mnist1dCNN(), (1, 40))
    p = MixedPrecisionProblem(task=task, bits=(2, 3, 4), budget_fraction=0.3)
    full = hw_sim.CostTable([ly.shape for ly in p.layers], "bismo-edge")  # widths 2..8
    all8 = full.policy_cost(np.full(p.num_layers, 8), np.full(p.num_layers, 8), metric="latency")
    assert p.budget == pytest.approx(0.3 * all8)
    assert p.reference_cost["latency"] == pytest.approx(all8)
    assert p.budget < p.cost(p.uniform_policy(4))["latency"]  # max(bits) = 4 is not the reference


# ------------------------------------------------------------------- trained tasks (slow)
#: the CPU kernels the docs' float-accuracy table was trained with (the page says so), and how far
#: a network trained with other kernels may land from it, in accuracy points (the page says so too)
DOCUMENTED_CAPABILITY = "AVX2"
CROSS_KERNEL_POINTS = 0.25


def _documented_float_accuracies() -> dict[str, tuple[float, float]]:
    text = TASKS_PAGE.read_text(encoding="utf-8")
    rows = re.findall(r"^\|\s*`(mnist1d-[a-z]+)`\s*\|\s*([0-9.]+)\s*\|\s*([0-9.]+)\s*\|", text, flags=re.M)
    return {name: (float(val), float(test)) for name, val, test in rows}


@pytest.mark.slow
@pytest.mark.numerics
@pytest.mark.parametrize("name", ["mnist1d-cnn", "mnist1d-mbnet"])
def test_mnist1d_float_accuracy_is_at_least_97_percent_and_as_the_docs_say(name: str) -> None:
    from quant_envs.mixed_precision.tasks import make_task

    task = make_task(name)  # trains on first use (about a minute), then cached
    val, test = task.float_accuracy("val"), task.float_accuracy("test")
    assert test >= 0.97 and val >= 0.97  # the default task's acceptance bar
    documented = _documented_float_accuracies()
    assert name in documented, f"{TASKS_PAGE.name} has no float-accuracy row for {name}"
    page = TASKS_PAGE.read_text(encoding="utf-8")
    flat = " ".join(page.split())
    assert f"torch {torch.__version__.split('+')[0]}'s {DOCUMENTED_CAPABILITY} kernels" in flat
    assert f"within {CROSS_KERNEL_POINTS} points" in flat
    if torch.backends.cpu.get_cpu_capability() == DOCUMENTED_CAPABILITY:  # the table's own numerics: exact
        assert documented[name] == (round(val, 4), round(test, 4))
    else:  # another network (measured on AVX-512: 0.08 points off at most); the page states the bound
        assert documented[name] == pytest.approx((val, test), abs=CROSS_KERNEL_POINTS / 100)
