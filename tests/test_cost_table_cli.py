"""Layer-shape extraction (forward hooks, TorchScript) and the quant-envs-cost-table command."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import warnings
from importlib import resources

import numpy as np
import pytest
import torch
from torch import nn

import hw_sim
from hw_sim import networks
from quant_envs.mixed_precision import cost_table_cli
from quant_envs.mixed_precision.layer_shapes import cost_table_for_model, quantizable_layers


def _small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8),
        nn.Conv2d(8, 16, (1, 3), stride=(1, 2), padding=(0, 1)),
        nn.Flatten(),
        nn.Linear(16 * 28 * 14, 10),
    )


# ---------------------------------------------------------------------------- layer extraction
def test_torchvision_shapes_match_the_papers():
    # Independent check: the hooks on torchvision's models must reproduce the shapes written by
    # hand from the MobileNetV2 and ResNet-50 papers (hw_sim.networks).
    import torchvision

    cases = (
        (torchvision.models.mobilenet_v2, networks.mobilenet_v2, 224, 2),
        (torchvision.models.resnet50, networks.resnet50, 64, 1),  # small input keeps the test fast
    )
    for build, reference, size, batch in cases:
        layers = quantizable_layers(build(weights=None), torch.zeros(batch, 3, size, size))
        assert [ly.shape for ly in layers] == reference(resolution=size)
        assert [ly.index for ly in layers] == list(range(len(layers)))


def test_quant_layer_fields_and_order():
    model = _small_net().train()
    layers = quantizable_layers(model, torch.zeros(3, 1, 28, 28))
    assert model.training  # mode restored
    assert [ly.name for ly in layers] == ["0", "2", "3", "5"]
    assert [ly.kind for ly in layers] == ["conv", "depthwise", "conv", "linear"]
    first, dw, rect, fc = layers
    assert (first.c_in, first.c_out, first.kernel, first.stride, first.in_hw, first.out_hw) == (
        1,
        8,
        3,
        1,
        (28, 28),
        (28, 28),
    )
    assert (dw.groups, dw.num_weights) == (8, 72)
    # non-square kernel and stride: QuantLayer keeps the larger side, LayerShape the exact ones
    assert (rect.kernel, rect.stride, rect.out_hw) == (3, 2, (28, 14))
    assert (rect.shape.kernel_area, rect.shape.n) == (3, 28 * 14)
    assert (fc.c_in, fc.c_out, fc.num_weights, fc.shape.n) == (6272, 10, 62720, 1)


def test_linear_over_tokens_and_shared_modules():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(16, 32)
            self.head = nn.Linear(32, 4)

        def forward(self, x):  # x: [B, tokens, 16]; proj runs twice (weight sharing)
            return self.head(self.proj(x) + self.proj(x * 2))

    layers = quantizable_layers(Shared(), torch.zeros(2, 5, 16))
    assert [ly.name for ly in layers] == ["proj", "head"]
    proj = layers[0]
    # listed once; its shape counts both calls: 2 x 5 tokens, weights once
    assert proj.shape.n == 10 and proj.shape.weight_count == 16 * 32
    assert proj.shape.macs == 2 * 5 * 16 * 32
    assert layers[1].shape.n == 5


def test_torchscript_and_pickled_models_give_the_same_layers(tmp_path):
    model = _small_net()
    x = torch.zeros(1, 1, 28, 28)
    eager = quantizable_layers(model, x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(model)
    assert quantizable_layers(scripted, x) == eager


def test_no_quantizable_layer_and_bad_input():
    with pytest.raises(ValueError, match="no nn.Conv1d, nn.Conv2d or nn.Linear"):
        quantizable_layers(nn.Sequential(nn.ReLU()), torch.zeros(1, 3))
    with pytest.raises(TypeError, match="example_input"):
        quantizable_layers(_small_net(), [1, 2, 3])


def test_cost_table_for_model():
    layers, table = cost_table_for_model(
        _small_net(), torch.zeros(1, 1, 28, 28), "bitfusion", bits=[2, 4, 8], batch=4
    )
    assert table.n_layers == len(layers) == 4
    ref = hw_sim.CostTable([ly.shape for ly in layers], "bitfusion", bits=[2, 4, 8], batch=4)
    np.testing.assert_array_equal(table.latency, ref.latency)


# ---------------------------------------------------------------------------- the command
def test_mobilenet_v2_table_for_every_profile(tmp_path, capsys):
    rc = cost_table_cli.main(
        ["--arch", "mobilenet_v2", "--profile", "all", "--plain", "--out", str(tmp_path)]
    )
    assert rc == 0
    out = capsys.readouterr().out
    reference = networks.mobilenet_v2()
    for name in hw_sim.PROFILES:
        assert f"mobilenet_v2 on {name}" in out
        # each profile at its own default batch (bismo-cloud 16, gpu-int4-int8 8, others 1)
        batch = hw_sim.get_accelerator(name).default_batch
        stem = tmp_path / f"mobilenet_v2_{name}_b{batch}"
        lat = np.load(f"{stem}_latency_s.npy")
        assert lat.shape == (53, 7, 7)
        # the files hold the table of the paper's shapes (independent of the hooks)
        expected = hw_sim.CostTable(reference, name)
        np.testing.assert_allclose(lat, expected.latency, rtol=1e-12)
        np.testing.assert_allclose(np.load(f"{stem}_energy_j.npy"), expected.energy, rtol=1e-12)
        np.testing.assert_allclose(np.load(f"{stem}_size_bytes.npy"), expected.size, rtol=1e-12)
        with open(f"{stem}.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == 53 * 49
        assert {"latency_s", "energy_j", "size_bytes", "dram_bytes"} <= set(rows[0])
        assert float(rows[0]["latency_s"]) == pytest.approx(lat[0, 0, 0], rel=1e-8)
        meta = json.loads((tmp_path / f"mobilenet_v2_{name}_b{batch}.json").read_text())
        assert meta["bits"] == list(range(2, 9)) and len(meta["layers"]) == 53
        assert meta["batch"] == batch
    # nothing but the 5 files per profile (no temporary files left behind)
    assert len(list(tmp_path.iterdir())) == 5 * len(hw_sim.PROFILES)


def test_saved_models_from_the_command(tmp_path, capsys):
    model = _small_net()
    full, script = tmp_path / "full.pt", tmp_path / "script.pt"
    torch.save(model, full)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(model).save(str(script))
    common = [
        "--input-size",
        "1",
        "28",
        "28",
        "--profile",
        "gpu-int4-int8",
        "--bits",
        "4",
        "8",
        "--batch",
        "8",
    ]
    assert cost_table_cli.main(["--model", str(full), "--out", str(tmp_path / "a"), *common]) == 0
    assert cost_table_cli.main(["--model", str(script), "--out", str(tmp_path / "b"), *common]) == 0
    a = np.load(tmp_path / "a" / "full_gpu-int4-int8_b8_latency_s.npy")
    b = np.load(tmp_path / "b" / "script_gpu-int4-int8_b8_latency_s.npy")
    assert a.shape == (4, 2, 2)
    np.testing.assert_array_equal(a, b)
    capsys.readouterr()


def test_summary_has_one_row_per_profile(tmp_path, capsys):
    model = _small_net()
    path = tmp_path / "net.pt"
    torch.save(model, path)
    argv = [
        "--model",
        str(path),
        "--input-size",
        "1",
        "28",
        "28",
        "--profile",
        "all",
        "--summary",
        "--plain",
    ]
    assert cost_table_cli.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {
        line.split()[0]: line.split()
        for line in lines
        if line.split() and line.split()[0] in hw_sim.PROFILES
    }
    assert set(rows) == set(hw_sim.PROFILES)
    shapes = [ly.shape for ly in quantizable_layers(model, torch.zeros(1, 1, 28, 28))]
    for name, row in rows.items():
        table = hw_sim.CostTable(shapes, name)
        assert int(row[1]) == table.batch == hw_sim.get_accelerator(name).default_batch
        assert float(row[2]) == pytest.approx(table.policy_cost([8] * 4, [8] * 4) * 1e3, abs=1e-3)
        assert float(row[3]) == pytest.approx(table.policy_cost([2] * 4, [2] * 4) * 1e3, abs=1e-3)


def test_measured_table_as_a_profile(tmp_path, capsys):
    # HAQ's BISMO table answers for torchvision's MobileNetV2 (the hooks give the table's 53
    # layers): the written latencies are the table's entries (cycles at 200 MHz), at batch 16.
    argv = ["--arch", "mobilenet_v2", "--profile", "haq-bismo-cloud-mobilenetv2", "--bits", "1-8"]
    assert cost_table_cli.main([*argv, "--plain", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    stem = tmp_path / "mobilenet_v2_haq-bismo-cloud-mobilenetv2_b16"
    data = resources.files("hw_sim").joinpath("data")
    with data.joinpath("haq_qmobilenetv2_imagenet100_batch16_latency_table.npy").open("rb") as f:
        raw = np.load(f)
    np.testing.assert_allclose(np.load(f"{stem}_latency_s.npy"), raw / 200e6, rtol=1e-12)
    # HAQ publishes no energy: no energy file
    assert not (tmp_path / f"{stem.name}_energy_j.npy").exists()
    assert (tmp_path / f"{stem.name}_size_bytes.npy").exists()
    # another network, or another batch, is refused in one line
    assert cost_table_cli.main(["--arch", "resnet18", "--profile", "haq-bismo-cloud-mobilenetv2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "table measured on mobilenet_v2" in err
    assert cost_table_cli.main([*argv, "--batch", "1"]) == 2
    assert "measured at batch 16" in capsys.readouterr().err


def test_parse_bits():
    assert cost_table_cli.parse_bits(["2-8"]) == list(range(2, 9))
    assert cost_table_cli.parse_bits(["8", "2", "4", "4"]) == [2, 4, 8]
    assert cost_table_cli.parse_bits(["2-3", "8"]) == [2, 3, 8]


@pytest.mark.parametrize(
    "argv,match",
    [
        ([], "--arch --model is required"),
        (["--arch", "mobilenet_v9"], "--arch 'mobilenet_v9'"),
        (["--arch", "resnet18", "--profile", "tpu"], "--profile 'tpu'"),
        (["--arch", "resnet18", "--bits", "2-9", "--profile", "bitfusion"], "--bits 2-9"),
        (["--arch", "resnet18", "--bits", "eight"], "--bits 'eight'"),
        (["--arch", "resnet18", "--bits", "0"], "--bits 0"),
        (["--arch", "resnet18", "--batch", "0"], "--batch 0"),
        (["--arch", "resnet18", "--batch", "x"], "invalid int value"),
        (["--arch", "resnet18", "--input-size", "3", "0", "224"], "--input-size"),
        (["--model", "/no/such/file.pt"], "does not exist"),
        (["--arch", "alexnet", "--input-size", "3", "16", "16"], "did not run on --input-size"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(argv, match, capsys):
    assert cost_table_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("quant-envs-cost-table: error: ")
    assert match in err and "Traceback" not in err


def test_state_dict_file_is_rejected(tmp_path, capsys):
    path = tmp_path / "weights.pt"
    torch.save(_small_net().state_dict(), path)
    assert cost_table_cli.main(["--model", str(path)]) == 2
    assert "state_dict" in capsys.readouterr().err


def test_runs_as_a_module_with_exit_status_2():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "quant_envs.mixed_precision.cost_table_cli",
            "--arch",
            "resnet18",
            "--profile",
            "tpu",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("quant-envs-cost-table: error: --profile 'tpu'")
    assert "Traceback" not in result.stderr
