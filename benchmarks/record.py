"""Record a benchmark's output for the documentation site: ``python benchmarks/record.py NAME ...``.

The docs never carry a result table typed by hand: each table on the site is a file under
``benchmarks/recorded/`` that this script wrote from the output of the command listed below
(captured from stdout, or read from the file the command writes), with the command, the date and
the machine's numerics on top; the figures the command draws are kept beside it
(``benchmarks/recorded/<name>/<file>``). ``mkdocs build`` includes these files as they are. To
refresh a table, rerun its recording; ``--list`` prints every recording with its command and cost.

    python benchmarks/record.py compander feel hw-fidelity cost-table   # the cheap ones (~1 min)
    python benchmarks/record.py --list

``LEADERBOARD.md`` is written in place by its own command (``python -m agents.leaderboard ...``)
and included as it is.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECORDED = ROOT / "benchmarks" / "recorded"


@dataclass(frozen=True)
class Recording:
    """A command whose output becomes ``benchmarks/recorded/<name>.md``."""

    command: str  # ``{out}`` stands for a fresh temporary folder
    cost: str  # rough wall time on the 2-core development machine
    output_file: str | None = None  # a file under {out} holding the Markdown; None: stdout
    code_block: bool = False  # fixed-width text output: shown in a code block
    figures: tuple[str, ...] = ()  # files under {out} kept as benchmarks/recorded/<name>/<file>
    #: exit codes that still give a page: a benchmark that exits 1 when a target is not met prints
    #: which one, and that output is what the docs must show
    returncodes: tuple[int, ...] = (0,)


RECORDINGS: dict[str, Recording] = {
    "compander": Recording(
        "python -m baselines.compander --source both --levels 8 16 32 64 128 --out {out}", "5 s",
        figures=("sqnr_vs_variance_N32.png",)),
    "feel": Recording("python -m baselines.feel --no-simulation --out {out}", "15 s", output_file="README.md",
                      figures=("time_vs_bandwidth.png", "time_vs_devices.png")),
    "hw-fidelity": Recording("python benchmarks/bench_hw_fidelity.py", "15 s", code_block=True),
    "cost-table": Recording(
        "python -m quant_envs.mixed_precision.cost_table_cli --arch mobilenet_v2 --profile all --summary --plain",
        "10 s", code_block=True),
    "cvt-study": Recording("python -m baselines.cvt study --out {out}", "10 min", output_file="convergence.md"),
    "cvt-2d": Recording("python benchmarks/bench_cvt.py --only-2d --seeds-2d 3", "20 min", code_block=True),
    "cvt-learnability": Recording("python benchmarks/learnability_cvt.py", "10 min"),
    "scenarios": Recording("python -m quant_envs.mixed_precision.tables.scenarios --evaluations 1000", "10 s"),
    "surrogates": Recording(
        "python benchmarks/bench_surrogate.py --tables --samples "
        "quant_envs/mixed_precision/table_data/mnist1d_cnn_s_samples.npz "
        "quant_envs/mixed_precision/table_data/mnist1d_mbnet_s_samples.npz "
        "--against-table mnist1d-cnn-s mnist1d-cnn-w4 --live-table mnist1d-cnn-s mnist1d-mbnet-s --all-hardware",
        "10 min", code_block=True),
    "reward": Recording("python benchmarks/bench_reward.py --quick", "1 min", code_block=True, returncodes=(0, 1)),
    "reward-noise": Recording("python benchmarks/bench_reward_noise.py", "1 min", code_block=True),
    "learnability-compander": Recording(
        "python benchmarks/bench_learnability.py --env Spline --env Scalar", "2 h"),
    "learnability-feel": Recording(
        "python benchmarks/bench_learnability.py --env Feel --algo ppo --train-seeds 3", "1 h"),
    "compare-medium": Recording(
        "python train.py compare --agents maskable_ppo --baselines uniform random greedy_std hawq_v3 evolution "
        "--seeds 5 --max-evaluations 100 --final-finetune-steps 100 --jobs 2 --out {out}",
        "3 min", output_file="results.md"),
    "transfer": Recording("python benchmarks/bench_transfer.py --ablation --out {out}", "10 min",
                          output_file="transfer.md"),
    "transfer-w4": Recording("python benchmarks/bench_transfer.py --table mnist1d-cnn-w4 --out {out}", "3 min",
                             output_file="transfer.md"),
}


def numerics() -> str:
    """Where the figures were measured: Python, torch (when installed) and the machine."""
    parts = [f"Python {platform.python_version()}", platform.machine(), platform.processor() or platform.system()]
    try:
        import torch

        parts.insert(1, f"torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()})")
    except ImportError:  # the recording itself needs no torch
        pass
    return ", ".join(p for p in parts if p)


def render(name: str, recording: Recording, body: str) -> str:
    """The recorded page: provenance line, then the output (fenced when it is fixed-width text)."""
    command = recording.command.replace(" --out {out}", "").replace("{out}", "OUT")
    today = dt.date.today().isoformat()
    head = (f"<!-- written by `python benchmarks/record.py {name}`; do not edit by hand -->\n"
            f"Output of `{command}` ({today}; {numerics()}).\n\n")
    text = body.strip("\n")
    if recording.code_block:
        text = f"```text\n{text}\n```"
    return head + text + "\n"


def record(name: str) -> Path:
    """Run one recording and write its page atomically; returns the page's path."""
    recording = RECORDINGS[name]
    with tempfile.TemporaryDirectory() as out:
        argv = recording.command.format(out=out).split()
        argv[0] = sys.executable if argv[0] == "python" else argv[0]
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
        if done.returncode not in recording.returncodes:
            raise SystemExit(f"{name}: {recording.command!r} exited {done.returncode}:\n{done.stderr[-2000:]}")
        body = Path(out, recording.output_file).read_text() if recording.output_file else done.stdout
        for figure in recording.figures:  # the page's figures, beside its table (the docs show them)
            target = RECORDED / name / figure
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp_figure = target.with_name(target.name + ".tmp")
            shutil.copyfile(Path(out, figure), tmp_figure)
            tmp_figure.replace(target)
    RECORDED.mkdir(parents=True, exist_ok=True)
    path = RECORDED / f"{name}.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(render(name, recording, body))
    tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/record.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help=f"recordings to run: {', '.join(RECORDINGS)}")
    parser.add_argument("--list", action="store_true", help="print every recording, its command and cost")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in RECORDINGS]
    if unknown:
        print(f"{parser.prog}: error: unknown recording {unknown[0]!r}; expected one of {', '.join(RECORDINGS)}",
              file=sys.stderr)
        return 2
    if args.list or not args.names:
        for name, rec in RECORDINGS.items():
            print(f"{name:<24} ~{rec.cost:<7} {rec.command}")
        return 0
    for name in args.names:
        print(f"wrote {record(name).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
