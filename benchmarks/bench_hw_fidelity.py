"""Fidelity of hw_sim against published simulators and measurements, against their targets.

Run:  python benchmarks/bench_hw_fidelity.py

Every figure is printed beside its reference and the target, with "met" or "NOT met". References
are the published numbers shipped in ``hw_sim/data`` (sources in ``hw_sim/data/PROVENANCE.md``):

* Bit Fusion: the simulator's published sweep (hsharma35/bitfusion,
  ``results/bitfusion-eyeriss-sim-sweep.csv``, 61 rows, batch 16) and the simulator run on
  torchvision's ResNet-18 (21 layers, 224 px, batch 16) at 8/8, 4/4 and 2/2 bits.
* BISMO: HAQ's released table (mit-han-lab/haq, MobileNetV2, 53 layers, batch 16, 1..8 bits).
* T4: HAWQ-V3's measured per-layer latencies (Zhen-Dong/HAWQ ``ILP.ipynb``, batch 8); the
  profile was fitted on ResNet-18 and is validated on ResNet-50.

Table-build and query speed targets: ``benchmarks/bench_hw_sim.py``.
"""

from __future__ import annotations

import csv
from importlib import resources

import numpy as np

import hw_sim
from hw_sim import measured, networks

RESULTS: list[tuple[str, str, str, str, bool]] = []


def _rows(name: str) -> list[dict[str, str]]:
    with resources.files("hw_sim").joinpath("data", name).open("r", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def record(what: str, model: str, reference: str, target: str, ok: bool) -> None:
    RESULTS.append((what, model, reference, target, ok))


def _sim_layer(row: dict[str, str]) -> hw_sim.LayerShape:
    k, o, s = int(row["kernel"]), int(row["out_size"]), int(row["stride"])
    if row["layer"].endswith("MatMul"):
        return hw_sim.LayerShape.linear(int(row["in_channels"]), int(row["out_channels"]))
    return hw_sim.LayerShape.conv2d(
        int(row["in_channels"]), int(row["out_channels"]), k, (o - 1) * s + k, stride=s
    )


def _ratio_targets(what: str, ratios: np.ndarray) -> None:
    med = float(np.median(ratios))
    record(f"{what}: median cycle ratio", f"{med:.3f}", "1", "[0.85, 1.15]", 0.85 <= med <= 1.15)
    lo, hi = float(ratios.min()), float(ratios.max())
    record(
        f"{what}: every layer's ratio ({len(ratios)})",
        f"[{lo:.3f}, {hi:.3f}]",
        "1",
        "within [0.6, 1.6]",
        lo >= 0.6 and hi <= 1.6,
    )


def bitfusion() -> None:
    bf = hw_sim.get_accelerator("bitfusion")
    rows = _rows("bitfusion_eyeriss_sweep.csv")
    ratios = np.array(
        [
            bf.layer_cost(_sim_layer(r), int(r["w_bits"]), int(r["a_bits"]), batch=16).cycles
            / int(r["cycles"])
            for r in rows
        ]
    )
    conv = np.array([r["layer"].endswith("Convolution") for r in rows])
    _ratio_targets("Bit Fusion vs published sweep, conv rows", ratios[conv])
    _ratio_targets("Bit Fusion vs published sweep, FC rows", ratios[~conv])
    sim = _rows("bitfusion_sim_resnet18.csv")
    shapes = networks.resnet18()
    table = hw_sim.CostTable(shapes, bf, bits=[2, 4, 8], batch=16)
    total = {}
    for b in (8, 4, 2):
        ref = np.array([int(r["cycles"]) for r in sim if int(r["bits"]) == b], dtype=float)
        i = table.bit_index(b)
        _ratio_targets(f"Bit Fusion vs simulator, ResNet-18 {b}/{b}", table.cycles[:, i, i] / ref)
        total[b] = (table.cycles[:, i, i].sum(), ref.sum())
    for b in (4, 2):
        m, r = total[8][0] / total[b][0], total[8][1] / total[b][1]
        record(
            f"Bit Fusion ResNet-18 whole-network 8/8 -> {b}/{b} speed-up",
            f"{m:.2f}x",
            f"{r:.2f}x",
            "within 15%",
            abs(m / r - 1) <= 0.15,
        )


def bismo() -> None:
    ref = measured.haq_bismo_mobilenetv2().latency_s * measured.HAQ_TABLE_CLOCK_HZ
    acc = hw_sim.get_accelerator("bismo-cloud")
    model = hw_sim.CostTable(networks.mobilenet_v2(), acc, bits=range(1, 9), batch=16).cycles
    r, m = ref.sum(0), model.sum(0)
    for b in (4, 2):
        ms, rs = m[7, 7] / m[b - 1, b - 1], r[7, 7] / r[b - 1, b - 1]
        record(
            f"BISMO MobileNetV2 (batch 16) 8/8 -> {b}/{b} speed-up",
            f"{ms:.2f}x",
            f"{rs:.2f}x",
            "within 15%",
            abs(ms / rs - 1) <= 0.15,
        )
    ma, ra = m[7, 1] / m[1, 7], r[7, 1] / r[1, 7]
    record(
        "BISMO MobileNetV2 cost w8a2 / w2a8",
        f"{ma:.3f}",
        f"{ra:.3f}",
        "within 25%",
        abs(ma / ra - 1) <= 0.25,
    )
    err = np.abs((model / model[:, 7:8, 7:8]) / (ref / ref[:, 7:8, 7:8]) - 1)
    per_layer = np.median(err.reshape(len(ref), -1), axis=1)
    for label, sel in (("all 53 layers", slice(None)), ("held-out layers 6-50", slice(6, 51))):
        med = float(np.median(per_layer[sel]))
        record(
            f"BISMO median per-layer error of the 8/8-normalised surface, {label}",
            f"{med:.1%}",
            "0",
            "<= 15%",
            med <= 0.15,
        )
    record(
        "BISMO absolute cycles / table, median over 53 x 64 entries",
        f"{float(np.median(model / ref)):.3f}",
        "1",
        "(no target)",
        True,
    )
    dw = [i for i, s in enumerate(networks.mobilenet_v2()) if s.kind == "depthwise"]
    table = hw_sim.CostTable(networks.mobilenet_v2(), acc, bits=[2, 8], batch=16)
    n_dw = int(table.memory_bound[dw].all(axis=(1, 2)).sum())
    record(
        "BISMO depthwise layers bound by activation fetch",
        f"{n_dw}/{len(dw)}",
        f"{len(dw)}/{len(dw)} (a-bit-only cost in the table)",
        "all",
        n_dw == len(dw),
    )


def t4() -> None:
    gpu = hw_sim.get_accelerator("gpu-int4-int8")
    for network, note in (("resnet18", "fitted"), ("resnet50", "held out")):
        rows = measured.hawq_v3_t4_rows(network)
        shapes = {"resnet18": networks.resnet18, "resnet50": networks.resnet50}[network]()[1:-1]
        table = hw_sim.CostTable(shapes, gpu, bits=[4, 8], batch=8)
        for col, i, label in (("int8_latency_ms", 1, "INT8"), ("int4_latency_ms", 0, "INT4")):
            ref = np.array([float(r[col]) for r in rows]) * 1e-3
            err = float(np.median(np.abs(table.latency[:, i, i] / ref - 1)))
            record(
                f"T4 vs HAWQ-V3 {network} ({len(rows)} layers, {note}) median per-layer error, {label}",
                f"{err:.1%}",
                "0",
                "<= 20%",
                err <= 0.20,
            )
        m = table.latency[:, 1, 1].sum() / table.latency[:, 0, 0].sum()
        r = sum(float(x["int8_latency_ms"]) for x in rows) / sum(
            float(x["int4_latency_ms"]) for x in rows
        )
        record(
            f"T4 {network} INT8 / INT4 latency (sum of listed layers)",
            f"{m:.2f}x",
            f"{r:.2f}x",
            "(no target)",
            True,
        )


def main() -> None:
    bitfusion()
    bismo()
    t4()
    w = max(len(r[0]) for r in RESULTS)
    print(f"{'target':<{w}}  {'hw_sim':>16}  {'reference':>16}  {'target':>18}  verdict")
    for what, model, ref, target, ok in RESULTS:
        verdict = "" if target == "(no target)" else ("met" if ok else "NOT met")
        print(f"{what:<{w}}  {model:>16}  {ref:>16}  {target:>18}  {verdict}")
    n_targets = sum(1 for r in RESULTS if r[3] != "(no target)")
    n_met = sum(1 for r in RESULTS if r[3] != "(no target)" and r[4])
    print(f"\n{n_met}/{n_targets} targets met")


if __name__ == "__main__":
    main()
