"""Convergence study: Lloyd vs L-BFGS vs MG/Opt multigrid, 1-D k = 64 ... 4096 and a 2-D sweep.

``python -m baselines.cvt study --out results/cvt`` writes (each file atomically)

* ``convergence.csv`` / ``convergence.md``: iterations, work and time to a relative gradient
  norm of ``tol`` (default 1e-8), one row per (dimension, k, method); a run that hits its
  iteration or time cap is reported as not converged, with the relative gradient it reached;
* ``convergence.png``: work and CPU time against k, log-log;
* ``histories.png``: relative gradient norm against work for the largest 1-D and 2-D k;
* ``density_1d.png``: the point density of 1-D CVTs against the rho^(1/3) prediction;
* ``tessellation_2d.png``: a 2-D CVT for a Gaussian-bump density.

All methods of one (dimension, k) start from the same generators (uniform, seeded).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from baselines.cvt.solvers import METHODS, CVTResult, solve
from quant_envs.atomic_io import atomic_write_csv, atomic_write_text
from quant_envs.cvt import DENSITY_NAMES, CVTProblem
from quant_envs.rendering import new_figure, save_figure
from quant_envs.text_tables import Align
from quant_envs.text_tables import format_table as _format_table

K_1D = (64, 128, 256, 512, 1024, 2048, 4096)
K_2D = (64, 128, 256, 512, 1024)
QUICK_K_1D = (64, 256, 1024)
QUICK_K_2D = (64, 256)
DOMAINS = {1: (0.0, 1.0), 2: "unit-square"}


@dataclass
class StudyRow:
    dim: int
    density: str
    k: int
    method: str
    converged: bool
    iterations: int
    work: int
    coarse_work: float
    wall_time_s: float
    cpu_time_s: float
    rel_grad_norm: float
    energy: float
    message: str

    @classmethod
    def of(cls, dim: int, density: str, k: int, res: CVTResult) -> StudyRow:
        return cls(dim, density, k, res.method, res.converged, res.iterations, res.work,
                   round(res.coarse_work, 1), res.wall_time_s, res.cpu_time_s, res.rel_grad_norm, res.energy,
                   res.message)


def run_study(
    out: Path,
    density: str = "linear",
    k_1d: Sequence[int] = K_1D,
    k_2d: Sequence[int] = K_2D,
    methods: Sequence[str] = METHODS,
    tol: float = 1e-8,
    max_time_s: float = 60.0,
    lloyd_max_iter: int = 1_000_000,
    seed: int = 0,
    log=print,
    picture_k: tuple[int, int] = (256, 256),
) -> list[StudyRow]:
    """Run every (dimension, k, method), write the table, CSV and figures; return the rows."""
    out = Path(out)
    rows: list[StudyRow] = []
    histories: dict[tuple[int, int, str], CVTResult] = {}
    for dim, ks in ((1, k_1d), (2, k_2d)):
        for k in ks:
            problem = CVTProblem(k, density, DOMAINS[dim])
            z0 = problem.random_generators(np.random.default_rng(seed))
            for method in methods:
                cap = lloyd_max_iter if method == "lloyd" else None
                res = solve(problem, method, tol=tol, max_iter=cap, z0=z0, max_time_s=max_time_s)
                rows.append(StudyRow.of(dim, density, k, res))
                histories[(dim, k, method)] = res
                log(f"  {dim}-D k={k:5d} {method:9s} {'ok  ' if res.converged else 'stop'} it={res.iterations:7d} "
                    f"work={res.work:7d} wall={res.wall_time_s:7.2f}s cpu={res.cpu_time_s:7.2f}s "
                    f"rel.grad={res.rel_grad_norm:.1e}")
    write_outputs(out, rows, histories, density, tol, picture_k)
    return rows


def format_table(rows: Sequence[StudyRow], tol: float) -> str:
    """Markdown table of the study (as printed and saved)."""
    header = ["dim", "k", "method", f"converged to {tol:g}", "iterations", "work (fine evals)",
              "coarse work (fine-eval equiv.)", "wall time (s)", "CPU time (s)", "final rel. grad. norm"]
    cells = [[f"{r.dim}-D", r.k, r.method, "yes" if r.converged else f"no: {r.message}", r.iterations, r.work,
              r.coarse_work if r.method == "multigrid" else "-", r.wall_time_s, r.cpu_time_s, r.rel_grad_norm]
             for r in rows]
    align: list[Align] = ["left", "right", "left", "left"]
    align += ["right"] * 6
    return _format_table(header, cells, align=align,
                        formats=[None] * 6 + [".0f", ".2f", ".2f", ".1e"])


def write_outputs(out: Path, rows: Sequence[StudyRow], histories: dict, density: str, tol: float,
                  picture_k: tuple[int, int] = (256, 256)) -> None:
    out.mkdir(parents=True, exist_ok=True)
    fields = list(StudyRow.__dataclass_fields__)
    atomic_write_csv(out / "convergence.csv", [{f: getattr(r, f) for f in fields} for r in rows], fields)
    table = format_table(rows, tol)
    atomic_write_text(out / "convergence.md", f"CVT convergence study, density '{density}', tol {tol:g}\n\n{table}\n")
    _plot_convergence(out / "convergence.png", rows, tol)
    _plot_histories(out / "histories.png", histories)
    _plot_density_1d(out / "density_1d.png", picture_k[0])
    _plot_tessellation_2d(out / "tessellation_2d.png", picture_k[1])


def _plot_convergence(path: Path, rows: Sequence[StudyRow], tol: float) -> None:
    fig = new_figure(10, 4)
    axes = fig.subplots(1, 2)
    colors = {"lloyd": "C0", "lbfgs": "C1", "multigrid": "C2"}
    for dim, ls in ((1, "-"), (2, "--")):
        for method in METHODS:
            sel = [r for r in rows if r.dim == dim and r.method == method]
            if not sel:
                continue
            k = np.array([r.k for r in sel])
            for ax, val in ((axes[0], [r.work + r.coarse_work for r in sel]), (axes[1], [r.cpu_time_s for r in sel])):
                ax.plot(k, val, ls, color=colors[method], label=f"{method}, {dim}-D")
                ok = np.array([r.converged for r in sel])
                ax.plot(k[ok], np.array(val)[ok], "o", color=colors[method])
                ax.plot(k[~ok], np.array(val)[~ok], "^", mfc="none", color=colors[method])
    axes[0].set_ylabel("work to tolerance (fine-level evaluations)")
    axes[1].set_ylabel("CPU time to tolerance (s)")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("number of generators k")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"CVT solvers to relative gradient norm {tol:g}; multigrid work includes coarse levels "
                 "(open triangles: stopped by a cap)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def _plot_histories(path: Path, histories: dict) -> None:
    fig = new_figure(10, 4)
    axes = fig.subplots(1, 2)
    for ax, dim in zip(axes, (1, 2), strict=True):
        ks = sorted({k for (d, k, _) in histories if d == dim})
        if not ks:
            continue
        k = ks[-1]
        for method in METHODS:
            res = histories.get((dim, k, method))
            if res is None:
                continue
            ax.plot(res.work_history, res.grad_norms / res.grad_norms[0], label=method)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("work (evaluations, fine-level equivalent)")
        ax.set_ylabel("relative gradient norm")
        ax.set_title(f"{dim}-D, k = {k}", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def _plot_density_1d(path: Path, k: int = 256) -> None:
    """Point density 1 / (k (z_{i+1} - z_i)) of 1-D CVTs against rho^(1/3) / int rho^(1/3)."""
    fig = new_figure(10, 3.6)
    axes = fig.subplots(1, 2)
    for ax, name in zip(axes, ("linear", "gaussian"), strict=True):
        problem = CVTProblem(k, name)
        res = solve(problem, "multigrid", tol=1e-10, seed=0)
        z = res.generators
        mid = 0.5 * (z[1:] + z[:-1])
        ax.plot(mid, 1.0 / (k * np.diff(z)), ".", ms=3, label=f"CVT, k = {k}")
        x = np.linspace(0.0, 1.0, 2001)
        r3 = problem.density(x) ** (1.0 / 3.0)
        ax.plot(x, r3 / np.trapezoid(r3, x), "k-", lw=1, label="rho^(1/3) / int rho^(1/3)")
        ax.set_xlabel("x")
        ax.set_ylabel("generator density (per unit length, normalised)")
        ax.set_title(f"density '{name}'", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def _plot_tessellation_2d(path: Path, k: int = 256) -> None:
    problem = CVTProblem(k, "gaussian", "unit-square")
    res = solve(problem, "multigrid", tol=1e-8, seed=0)
    z = res.generators
    fig = new_figure(5.2, 5)
    ax = fig.add_subplot(1, 1, 1)
    g = np.linspace(0, 1, 200)
    xx, yy = np.meshgrid(g, g)
    rho = problem.density(np.stack([xx.ravel(), yy.ravel()], axis=1)).reshape(xx.shape)
    ax.imshow(rho, origin="lower", extent=(0, 1, 0, 1), cmap="Greys", alpha=0.5)
    for poly in problem.cell_polygons(z):
        if len(poly):
            closed = np.vstack([poly, poly[:1]])
            ax.plot(closed[:, 0], closed[:, 1], color="C0", lw=0.6)
    ax.plot(z[:, 0], z[:, 1], ".", color="C3", ms=2.5)
    ax.set_aspect("equal")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(f"2-D CVT, k = {k}, density 'gaussian' (grey), E = {res.energy:.4e}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


class UsageError(ValueError):
    """A bad command-line argument: reported as one line, exit status 2."""


def check_output_dir(out: str) -> Path:
    """``out`` as a writable directory (created if missing), or a UsageError saying why not."""
    if not out:
        raise UsageError("--out='' is not allowed; expected a directory path")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out={out!r} is an existing file; expected a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as err:
        raise UsageError(f"--out={out!r} is not a writable directory: {err.strerror or err}") from None
    return path


def check_study_args(args: argparse.Namespace) -> None:
    """Every argument of ``study``, before any work."""
    if not (math.isfinite(args.tol) and 0.0 < args.tol < 1.0):
        raise UsageError(f"--tol={args.tol!r} is not allowed; expected a number in (0, 1)")
    if args.density not in DENSITY_NAMES:
        raise UsageError(f"--density={args.density!r} is not allowed; expected one of {', '.join(DENSITY_NAMES)}")
    if not (math.isfinite(args.max_time) and args.max_time > 0):
        raise UsageError(f"--max-time={args.max_time!r} is not allowed; expected a number of seconds > 0")
    if args.lloyd_max_iter < 1:
        raise UsageError(f"--lloyd-max-iter={args.lloyd_max_iter} is not allowed; expected an integer >= 1")
    if args.seed < 0:
        raise UsageError(f"--seed={args.seed} is not allowed; expected an integer >= 0")
    check_output_dir(args.out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m baselines.cvt", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    st = sub.add_parser("study", help="run the convergence study and write table, CSV and figures")
    st.add_argument("--out", default="results/cvt", help="output folder (default results/cvt)")
    st.add_argument("--density", default="linear", help="density name (default linear)")
    st.add_argument("--tol", type=float, default=1e-8, help="relative gradient-norm tolerance (default 1e-8)")
    st.add_argument("--max-time", type=float, default=60.0, help="wall-clock cap per run in seconds (default 60)")
    st.add_argument("--lloyd-max-iter", type=int, default=1_000_000, help="iteration cap for Lloyd (default 1e6)")
    st.add_argument("--seed", type=int, default=0, help="seed of the starting generators (default 0)")
    st.add_argument("--quick", action="store_true", help="fewer k (1-D 64/256/1024, 2-D 64/256) and 20 s caps")
    args = parser.parse_args(argv)
    try:
        check_study_args(args)
    except UsageError as err:
        print(f"{parser.prog} study: error: {err}", file=sys.stderr)
        return 2
    k1, k2 = (QUICK_K_1D, QUICK_K_2D) if args.quick else (K_1D, K_2D)
    max_time = min(args.max_time, 20.0) if args.quick else args.max_time
    start = time.perf_counter()
    print(f"CVT convergence study: density '{args.density}', tol {args.tol:g}, cap {max_time:g} s per run")
    try:
        rows = run_study(Path(args.out), args.density, k1, k2, tol=args.tol, max_time_s=max_time,
                         lloyd_max_iter=args.lloyd_max_iter, seed=args.seed)
    except OSError as err:  # e.g. the disk filled up while writing
        print(f"{parser.prog} study: error: cannot write to --out={args.out!r}: {err}", file=sys.stderr)
        return 2
    print()
    print(format_table(rows, args.tol))
    print(f"\nwrote {args.out}/convergence.csv, convergence.md, convergence.png, histories.png, "
          f"density_1d.png, tessellation_2d.png in {time.perf_counter() - start:.0f} s")
    return 0
