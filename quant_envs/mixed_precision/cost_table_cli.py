"""``quant-envs-cost-table``: latency / energy / size tables for any model on hw_sim's accelerators.

HAQ's missing tool (mit-han-lab/haq issues #15 and #17 ask how its latency table was made and how
to make one for another model). Layer shapes come from forward hooks
(:mod:`quant_envs.mixed_precision.layer_shapes`), costs from :class:`hw_sim.CostTable`.

Examples::
    quant-envs-cost-table --arch mobilenet_v2 --profile all
    quant-envs-cost-table --arch resnet50 --profile gpu-int4-int8 --bits 4 8 --batch 8 --out tables/
    quant-envs-cost-table --arch mobilenet_v2 --profile haq-bismo-cloud-mobilenetv2 --bits 1-8
    quant-envs-cost-table --model my_model.pt --input-size 1 28 28 --bits 2-8 --out tables/

``--profile`` takes a model profile (``hw_sim.PROFILES``, including any added with
``hw_sim.register_profile`` before calling :func:`main`) or a shipped measured table
(``hw_sim.MEASURED``), which only answers for the network it was measured on; ``all`` runs every
model profile. ``--batch`` defaults to each profile's own batch (16 for ``bismo-cloud`` as in HAQ,
8 for ``gpu-int4-int8`` as in HAWQ-V3's measurements, 1 otherwise).

Files written per profile (atomically) under ``--out``, with ``<stem> = <model>_<profile>_b<batch>``:

* ``<stem>_latency_s.npy``, ``<stem>_energy_j.npy``, ``<stem>_size_bytes.npy``: float64 arrays
  ``[layers, len(bits), len(bits)]`` indexed ``[layer, w-bit index, a-bit index]`` (HAQ's layout;
  no energy file for a measured table that publishes none);
* ``<stem>.csv``: one row per (layer, w_bits, a_bits), units in the header;
* ``<stem>.json``: the model, profile, batch, bits, input size and the layer list.

``--model`` accepts a whole pickled module (``torch.save(model, path)``; loading unpickles it,
which runs code from the file: only load files you trust) or a TorchScript archive.
Bad arguments print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import io
import sys
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import hw_sim
from quant_envs.atomic_io import (
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    check_writable_dir,
    describe_os_error,
)
from quant_envs.text_tables import format_table

PROG = "quant-envs-cost-table"


class UsageError(Exception):
    """A bad argument: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Per-layer latency, energy and size tables of a model on simulated accelerators (hw_sim).",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--arch",
        help="torchvision classification architecture, built with weights=None (e.g. mobilenet_v2)",
    )
    src.add_argument(
        "--model",
        type=Path,
        help="saved torch model: a whole pickled nn.Module or a TorchScript file",
    )
    p.add_argument(
        "--input-size",
        nargs=3,
        type=int,
        metavar=("C", "H", "W"),
        default=(3, 224, 224),
        help="input size of one sample (default: 3 224 224)",
    )
    p.add_argument(
        "--profile",
        default="bismo-edge",
        help=f"accelerator profile, measured table or 'all' (one of: {', '.join([*hw_sim.PROFILES, *hw_sim.MEASURED])}; default: bismo-edge)",
    )
    p.add_argument(
        "--batch",
        type=int,
        default=None,
        help="batch size the accelerator runs (default: the profile's own: bismo-cloud 16, gpu-int4-int8 8, others 1)",
    )
    p.add_argument(
        "--bits",
        nargs="+",
        default=["2-8"],
        help="bit widths: a range like 2-8 or a list like 2 4 8 (default: 2-8)",
    )
    p.add_argument(
        "--out", help="directory for .npy, .csv and .json files (default: print only)"
    )
    p.add_argument("--plain", action="store_true", help="plain-text table instead of rich")
    p.add_argument(
        "--summary",
        action="store_true",
        help="print one row per profile (whole-model totals) instead of one table per profile",
    )
    return p


def parse_bits(tokens: Sequence[str]) -> list[int]:
    """``["2-8"]`` -> 2..8; ``["2", "4", "8"]`` -> [2, 4, 8]; sorted, unique."""
    bits: set[int] = set()
    for token in tokens:
        for part in str(token).replace(",", " ").split():
            try:
                if "-" in part:
                    lo, hi = (int(x) for x in part.split("-", 1))
                    if lo > hi:
                        raise ValueError
                    bits.update(range(lo, hi + 1))
                else:
                    bits.add(int(part))
            except ValueError:
                raise UsageError(
                    f"--bits {part!r} is not allowed; expected integers like '2 4 8' or a range like '2-8'"
                ) from None
    if not bits:
        raise UsageError("--bits is empty; expected at least one bit width")
    if min(bits) < 1:
        raise UsageError(f"--bits {min(bits)} is not allowed; expected widths >= 1")
    return sorted(bits)


def _build_arch(name: str):
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3)
        hint = (
            f"; did you mean {', '.join(close)}?"
            if close
            else "; see torchvision.models.list_models()"
        )
        raise UsageError(f"--arch {name!r} is not a torchvision classification model{hint}")
    return torchvision.models.get_model(name, weights=None)


def _load_model(path: Path):
    import torch

    if not path.is_file():
        raise UsageError(f"--model {str(path)!r} does not exist or is not a file")
    is_script = False
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            is_script = any(
                n.split("/", 1)[-1].startswith(("code/", "constants.pkl")) for n in zf.namelist()
            )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            obj = (
                torch.jit.load(str(path), map_location="cpu")
                if is_script
                else torch.load(path, map_location="cpu", weights_only=False)
            )
    except Exception as exc:  # unreadable or foreign file: one line, not a traceback
        raise UsageError(
            f"--model {str(path)!r} could not be loaded as a torch model: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(obj, torch.nn.Module):
        what = (
            "a state_dict (weights without an architecture)"
            if isinstance(obj, dict)
            else type(obj).__name__
        )
        raise UsageError(
            f"--model {str(path)!r} holds {what}; expected a whole module (torch.save(model, path)) or TorchScript"
        )
    return obj


def _check_args(args: argparse.Namespace) -> tuple[list[str], list[int]]:
    if args.profile == "all":
        profiles = list(hw_sim.PROFILES)
    elif args.profile in hw_sim.PROFILES or args.profile in hw_sim.MEASURED:
        profiles = [args.profile]
    else:
        raise UsageError(
            f"--profile {args.profile!r} is not allowed; expected 'all' or one of: "
            f"{', '.join([*hw_sim.PROFILES, *hw_sim.MEASURED])}"
        )
    if args.batch is not None and args.batch < 1:
        raise UsageError(f"--batch {args.batch} is not allowed; expected an integer >= 1")
    if any(v < 1 for v in args.input_size):
        raise UsageError(
            f"--input-size {' '.join(map(str, args.input_size))} is not allowed; expected three integers >= 1"
        )
    bits = parse_bits(args.bits)
    for name in profiles:
        acc = hw_sim.get_accelerator(name)
        if bits[-1] > acc.max_bits or bits[0] < acc.min_bits:
            raise UsageError(
                f"--bits {bits[0]}-{bits[-1]} is not allowed on profile {name!r}; expected widths in "
                f"[{acc.min_bits}, {acc.max_bits}]"
            )
    return profiles, bits


def _csv_text(layers, table: hw_sim.CostTable) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        [
            "layer",
            "name",
            "kind",
            "w_bits",
            "a_bits",
            "latency_s",
            "energy_j",
            "size_bytes",
            "dram_bytes",
            "cycles",
            "bound",
        ]
    )
    for row in table.rows():
        writer.writerow(
            [
                row["layer"],
                layers[row["layer"]].name,
                row["kind"],
                row["w_bits"],
                row["a_bits"],
                f"{row['latency_s']:.9e}",
                f"{row['energy_j']:.9e}",
                f"{row['size_bytes']:.1f}",
                f"{row['dram_bytes']:.1f}",
                f"{row['cycles']:.0f}",
                row["bound"],
            ]
        )
    return buf.getvalue()


def _write_files(out: Path, stem: str, layers, table: hw_sim.CostTable, meta: dict) -> list[Path]:
    written = []
    for metric, info in hw_sim.METRIC_INFO.items():
        if np.isnan(table.metric_array(metric)).all():
            continue  # a measured table that publishes no such figure
        path = out / f"{stem}_{info.cost_field}.npy"  # <stem>_latency_s.npy, ...
        with atomic_path(path) as tmp:
            np.save(tmp, table.metric_array(metric))
        written.append(path)
    written.append(atomic_write_text(out / f"{stem}.csv", _csv_text(layers, table)))
    meta = dict(meta)
    meta["layers"] = [
        {
            "index": ly.index,
            "name": ly.name,
            "kind": ly.kind,
            "c_in": ly.c_in,
            "c_out": ly.c_out,
            "kernel": ly.kernel,
            "stride": ly.stride,
            "groups": ly.groups,
            "in_hw": list(ly.in_hw),
            "out_hw": list(ly.out_hw),
            "num_weights": ly.num_weights,
            "macs": ly.shape.macs,
        }
        for ly in layers
    ]
    written.append(atomic_write_json(out / f"{stem}.json", meta))
    return written


def _summary_rows(layers, table: hw_sim.CostTable) -> tuple[list[str], list[list[str]], list[str]]:
    bits = table.bits.tolist()
    shown = sorted({bits[-1], bits[len(bits) // 2], bits[0]}, reverse=True)
    idx = [table.bit_index(b) for b in shown]
    header = (
        ["#", "layer", "kind", "shape", "MMAC"]
        + [f"lat {b}/{b} (us)" for b in shown]
        + [f"bound {b}/{b}" for b in (shown[0], shown[-1])]
    )
    rows = []
    for ly in layers:
        i = ly.index
        shape = f"{ly.c_in}->{ly.c_out}" + (
            f" k{ly.kernel} s{ly.stride}" if ly.kind != "linear" else ""
        )
        if ly.groups > 1:
            shape += f" g{ly.groups}"
        row = [str(i), ly.name, ly.kind, shape, f"{ly.shape.macs / 1e6:.2f}"]
        row += [f"{table.latency[i, j, j] * 1e6:.1f}" for j in idx]
        row += [
            ("mem" if table.memory_bound[i, j, j] else "comp")
            if table.accelerator.reports_bound
            else "n/a"
            for j in (idx[0], idx[-1])
        ]
        rows.append(row)
    n = table.n_layers
    totals = ["", "total", "", "", f"{sum(ly.shape.macs for ly in layers) / 1e6:.1f}"]
    totals += [f"{table.policy_cost([b] * n, [b] * n) * 1e6:.1f}" for b in shown]
    totals += [
        f"{int(table.memory_bound[:, j, j].sum())} mem" if table.accelerator.reports_bound else "n/a"
        for j in (idx[0], idx[-1])
    ]
    return header, rows, totals


def _print_table(
    title: str, header, rows, totals, footer: str, plain: bool, left=(1, 2, 3)
) -> None:
    use_rich = not plain
    if use_rich:
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:  # pragma: no cover - rich is a declared dependency
            use_rich = False
    if use_rich:
        t = Table(title=title, caption=footer, show_footer=False)
        for j, h in enumerate(header):
            t.add_column(h, justify="left" if j in left else "right")
        for r in rows:
            t.add_row(*r)
        if totals is not None:
            t.add_section()
            t.add_row(*totals)
        Console(width=max(120, sum(len(h) + 3 for h in header) + 40)).print(t)
        return

    print(title)
    print(
        format_table(
            header,
            [*rows] + ([totals] if totals is not None else []),
            align=["left" if j in left else "right" for j in range(len(header))],
            style="plain",
        )
    )
    print(footer)


def run(args: argparse.Namespace) -> int:
    profiles, bits = _check_args(args)
    if args.out is not None:  # before the model is built: an unwritable --out fails at once
        try:
            args.out = check_writable_dir(args.out, "--out")  # a str until here: --out '' is refused
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    import torch

    # lazy: tracing a network's layers needs torch; --help and argument errors do not
    from quant_envs.mixed_precision.layer_shapes import quantizable_layers

    torch.set_num_threads(min(2, torch.get_num_threads()))
    if args.arch:
        model, model_name = _build_arch(args.arch), args.arch
    else:
        model, model_name = _load_model(args.model), args.model.stem
    example = torch.zeros(1, *args.input_size)
    try:
        layers = quantizable_layers(model, example)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise UsageError(
            f"the model did not run on --input-size {' '.join(map(str, args.input_size))}: {str(exc).splitlines()[0]}"
        ) from None
    shapes = [ly.shape for ly in layers]
    summary: list[list[str]] = []
    written_all: list = []
    for profile in profiles:
        acc = hw_sim.get_accelerator(profile)
        try:
            table = hw_sim.CostTable(shapes, acc, bits=bits, batch=args.batch)
        except ValueError as exc:  # a measured table of another network, or of another batch
            raise UsageError(f"--profile {profile!r}: {exc}") from None
        header, rows, totals = _summary_rows(layers, table)
        title = f"{model_name} on {profile} (batch {table.batch}, bits {bits[0]}..{bits[-1]}): {acc.description}"
        footer = "lat b/b: latency with b-bit weights and activations; bound: compute- or memory-bound at the highest / lowest width"
        summary.append(_profile_totals(profile, table))
        if args.out is not None:
            stem = f"{model_name}_{profile}_b{table.batch}"
            meta = {
                "model": model_name,
                "profile": profile,
                "batch": table.batch,
                "bits": bits,
                "input_size": list(args.input_size),
                "axes": ["layer", "w_bits", "a_bits"],
                "units": {"latency": "s", "energy": "J", "size": "bytes"},
            }
            try:
                written = _write_files(args.out, stem, layers, table, meta)
            except OSError as exc:  # e.g. the disk filled up
                raise UsageError(f"--out {str(args.out)!r}: cannot write: {describe_os_error(exc)}") from None
            written_all += written
            footer += f"\nwrote {', '.join(str(p) for p in written)}"
        if not args.summary:
            _print_table(title, header, rows, totals, footer, args.plain)
    if args.summary:
        hi, lo = bits[-1], bits[0]
        header = (
            ["profile", "batch"]
            + [f"latency {b}/{b} (ms)" for b in (hi, lo)]
            + [f"energy {b}/{b} (mJ)" for b in (hi, lo)]
            + [f"size {b}-bit (MB)" for b in (hi, lo)]
            + [f"memory-bound layers {b}/{b}" for b in (hi, lo)]
        )
        batch = "each profile's default" if args.batch is None else args.batch
        title = f"{model_name}: {len(layers)} layers, {sum(s.macs for s in shapes) / 1e6:.1f} M MACs, batch {batch}"
        footer = "b/b: every layer at b-bit weights and activations; size: weights only"
        if written_all:
            footer += f"\nwrote {len(written_all)} files under {args.out}"
        _print_table(title, header, summary, None, footer, args.plain, left=(0,))
    return 0


def _profile_totals(profile: str, table: hw_sim.CostTable) -> list[str]:
    n = table.n_layers
    hi, lo = int(table.bits[-1]), int(table.bits[0])
    cost = {b: table.policy_costs([b] * n, [b] * n) for b in (hi, lo)}
    bound = {
        b: int(table.memory_bound[:, table.bit_index(b), table.bit_index(b)].sum())
        for b in (hi, lo)
    }
    return (
        [profile, str(table.batch)]
        + [f"{cost[b].latency_s * 1e3:.3f}" for b in (hi, lo)]
        + [
            "n/a" if np.isnan(cost[b].energy_j) else f"{cost[b].energy_j * 1e3:.3f}"
            for b in (hi, lo)
        ]
        + [f"{cost[b].size_bytes / 1e6:.3f}" for b in (hi, lo)]
        + [f"{bound[b]}/{n}" if table.accelerator.reports_bound else "n/a" for b in (hi, lo)]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``quant-envs-cost-table``; returns the exit status (2 for bad arguments)."""
    try:
        args = _parser().parse_args(argv)
        return run(args)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
