"""hw_sim public API: LayerShape constructors, profiles, bit-width rules, bad input, no torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

import hw_sim


def test_importing_hw_sim_never_imports_torch():
    # Run in a fresh interpreter: the test process itself has torch loaded by conftest.
    code = (
        "import sys, hw_sim\n"
        "from hw_sim import networks\n"
        "t = hw_sim.CostTable(networks.mobilenet_v2(), 'bismo-edge')\n"
        "t.min_completion_cost('latency')\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'quant_envs')))\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_conv2d_shape_hand_computed():
    # ResNet conv1: 3 -> 64, 7x7, stride 2, pad 3 on 224x224 -> 112x112
    s = hw_sim.LayerShape.conv2d(3, 64, 7, 224, stride=2, padding=3)
    assert (s.m, s.k, s.n, s.groups) == (64, 147, 112 * 112, 1)
    assert s.macs == 64 * 147 * 12544
    assert s.weight_count == 9408
    assert (s.input_count, s.output_count) == (3 * 224 * 224, 64 * 12544)
    assert s.lowered_input_elems == 147 * 12544
    assert s.kind == "conv"
    # depthwise 3x3 over 32 channels, stride 2: M = 1 and K = 9 per group
    d = hw_sim.LayerShape.conv2d(32, 32, 3, (112, 112), stride=2, padding=1, groups=32)
    assert (d.m, d.k, d.n, d.groups, d.kind) == (1, 9, 56 * 56, 32, "depthwise")
    # non-square kernel, "same" padding, dilation
    r = hw_sim.LayerShape.conv2d(8, 8, (1, 7), (17, 17), padding="same")
    assert (r.k, r.n, r.kernel_area) == (56, 289, 7)
    dil = hw_sim.LayerShape.conv2d(4, 4, 3, 10, dilation=2)  # extent 5 -> 6x6 outputs
    assert dil.n == 36


def test_linear_shape_with_tokens():
    s = hw_sim.LayerShape.linear(768, 3072, tokens=128)
    assert (s.m, s.k, s.n, s.kind) == (3072, 768, 128, "linear")
    assert s.weight_count == 768 * 3072 and s.macs == 768 * 3072 * 128
    assert hw_sim.LayerShape.linear(10, 5).n == 1


def test_profiles_and_get_accelerator():
    for name in ("bismo-edge", "bismo-cloud", "bitfusion", "int8-npu", "gpu-int4-int8"):
        acc = hw_sim.get_accelerator(name)
        assert acc is hw_sim.PROFILES[name] and acc.name == name
        assert acc.description
    # each model class names its source
    assert "FPL 2018" in hw_sim.BitSerialAccelerator.__doc__
    assert "ISCA 2018" in hw_sim.BitFusionAccelerator.__doc__
    assert "Horowitz" in hw_sim.Accelerator.__doc__
    with pytest.raises(ValueError, match="profile='tpu'.*'bismo-edge'.*'gpu-int4-int8'"):
        hw_sim.get_accelerator("tpu")


def test_layer_cost_result_fields():
    c = hw_sim.get_accelerator("bitfusion").layer_cost(
        hw_sim.LayerShape.linear(64, 64), 4, 8, batch=2
    )
    for field in ("cycles", "latency_s", "energy_j", "dram_bytes", "bound"):
        assert hasattr(c, field)
    assert c.bound in ("compute", "memory")


def test_unsupported_widths_round_up_or_raise():
    layer = hw_sim.LayerShape.conv2d(16, 16, 3, 8, padding=1)
    gpu = hw_sim.get_accelerator("gpu-int4-int8")
    assert gpu.layer_cost(layer, 3, 3).w_bits_run == 4
    assert gpu.layer_cost(layer, 6, 2).a_bits_run == 8
    with pytest.raises(ValueError, match="w_bits=9.*gpu-int4-int8.*native widths: 4, 8"):
        gpu.layer_cost(layer, 9, 8)
    with pytest.raises(ValueError, match="a_bits=0"):
        hw_sim.get_accelerator("bismo-edge").layer_cost(layer, 4, 0)
    with pytest.raises(ValueError, match="w_bits=17"):
        hw_sim.get_accelerator("bismo-edge").layer_cost(layer, 17, 4)
    with pytest.raises(TypeError, match="w_bits"):
        hw_sim.get_accelerator("bismo-edge").layer_cost(layer, 4.0, 4)
    with pytest.raises(ValueError, match="bits=9"):
        hw_sim.CostTable([layer], "bitfusion", bits=range(2, 10))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(c_in=0, c_out=8, kernel=3, in_hw=8), "c_in=0"),
        (dict(c_in=8, c_out=-1, kernel=3, in_hw=8), "c_out=-1"),
        (dict(c_in=8, c_out=8, kernel=0, in_hw=8), "kernel=0"),
        (dict(c_in=8, c_out=8, kernel=3, in_hw=(8, 0)), r"in_hw\[1\]=0"),
        (dict(c_in=8, c_out=8, kernel=3, in_hw=8, stride=0), "stride=0"),
        (
            dict(c_in=8, c_out=8, kernel=7, in_hw=4, padding=1),
            r"kernel=\(7, 7\).*padded input \(6, 6\)",
        ),
        (dict(c_in=8, c_out=6, kernel=3, in_hw=8, groups=4), "groups=4"),
        (dict(c_in=8, c_out=8, kernel=3, in_hw=8, padding="full"), "padding='full'"),
    ],
)
def test_bad_conv_shapes_raise_naming_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        hw_sim.LayerShape.conv2d(**kwargs)


def test_bad_linear_and_table_arguments():
    with pytest.raises(ValueError, match="in_features=0"):
        hw_sim.LayerShape.linear(0, 10)
    with pytest.raises(ValueError, match="tokens=0"):
        hw_sim.LayerShape.linear(10, 10, tokens=0)
    layer = hw_sim.LayerShape.linear(10, 10)
    with pytest.raises(ValueError, match="batch=0"):
        hw_sim.CostTable([layer], "bismo-edge", batch=0)
    with pytest.raises(ValueError, match="layers"):
        hw_sim.CostTable([], "bismo-edge")
    with pytest.raises(TypeError, match=r"layers\[0\]"):
        hw_sim.CostTable([(10, 10)], "bismo-edge")
    with pytest.raises(ValueError, match="strictly increasing"):
        hw_sim.CostTable([layer], "bismo-edge", bits=[4, 2])
    with pytest.raises(ValueError, match="profile='nope'"):
        hw_sim.CostTable([layer], "nope")
    with pytest.raises(ValueError, match="metric='area'"):
        hw_sim.CostTable([layer], "bismo-edge").min_completion_cost("area")
