"""Tables and figures for quantized FEEL: solver comparison, sweeps, fit, predicted vs simulated."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from baselines.feel import FeelSolveResult, solve
from quant_envs.atomic_io import atomic_write_csv
from quant_envs.feel.fitting import rounds_to_target, simulate_gap_curves
from quant_envs.feel.scenario import Scenario, make_scenario
from quant_envs.rendering import new_figure, save_figure
from quant_envs.text_tables import format_table

#: (label, method, keyword arguments) of every solver in the comparison, AO first.
SOLVERS: tuple[tuple[str, str, dict], ...] = (
    ("AO", "ao", {}),
    ("equal bandwidth", "equal_bandwidth", {}),
    ("fixed sign (s=1)", "fixed_levels", {"fixed": "sign"}),
    ("fixed 8-bit (s=127)", "fixed_levels", {"fixed": "8bit"}),
    ("full precision", "fixed_levels", {"fixed": "full"}),
)


def solve_all(scenario: Scenario) -> dict[str, FeelSolveResult]:
    return {label: solve(scenario, method, **kw) for label, method, kw in SOLVERS}


def _number(v: object) -> str:
    """Floats to 4 significant digits (scientific from 1e4 on); anything else with ``str``."""
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.3e}"
    return str(v)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """The report's markdown tables: positional rows under ``header``, every column left-aligned."""
    return format_table(header, rows, formats=_number)


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Positional rows under ``header`` (unique names), written by :func:`quant_envs.atomic_io.atomic_write_csv`."""
    if len(set(header)) != len(header):
        raise ValueError(f"header={list(header)!r} is not allowed; expected unique column names")
    atomic_write_csv(path, [dict(zip(header, r, strict=True)) for r in rows], header)


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[object]]

    def markdown(self) -> str:
        return markdown_table(self.header, self.rows)


def comparison_table(devices: Sequence[int], bandwidths: Sequence[float], seeds: Sequence[int],
                     progress: Callable[[str], None] = lambda s: None) -> Table:
    """Mean total training time (s) of every solver over ``seeds`` scenarios per (K, B) cell."""
    labels = [s[0] for s in SOLVERS]
    header = ["K", "B (kHz)"] + [f"{lab} T (s)" for lab in labels] + ["best baseline / AO", "AO wall (s)"]
    rows: list[list[object]] = []
    for k in devices:
        for b in bandwidths:
            times: dict[str, list[float]] = {lab: [] for lab in labels}
            wall: list[float] = []
            for seed in seeds:
                res = solve_all(make_scenario(k, seed=seed, total_bandwidth=b))
                for lab in labels:
                    times[lab].append(res[lab].total_time)
                wall.append(res["AO"].wall_time_s)
            mean = {lab: float(np.mean(v)) for lab, v in times.items()}
            best_base = min(mean[lab] for lab in labels[1:])
            rows.append([k, b / 1e3, *(mean[lab] for lab in labels), best_base / mean["AO"], float(np.mean(wall))])
            progress(f"K={k} B={b / 1e3:g} kHz: AO {mean['AO']:.4g} s, best baseline {best_base:.4g} s")
    return Table(header, rows)


def sweep(values: Sequence[float] | np.ndarray, make: Callable[[float, int], Scenario], seeds: Sequence[int]) -> dict[str, np.ndarray]:
    """Mean total time of every solver for each value (a bandwidth or a K); ``make(value, seed)``."""
    out = {lab: np.zeros(len(values)) for lab, _, _ in SOLVERS}
    for i, v in enumerate(values):
        for seed in seeds:
            res = solve_all(make(v, seed))
            for lab in out:
                out[lab][i] += res[lab].total_time / len(seeds)
    return out


def plot_sweep(path: Path, x: np.ndarray, curves: dict[str, np.ndarray], xlabel: str, title: str, logx: bool = True) -> None:
    fig = new_figure(6.4, 4.2, dpi=100)
    ax = fig.subplots()
    for (lab, y), marker in zip(curves.items(), "os^vD", strict=False):
        ax.plot(x, y, marker=marker, label=lab)
    if logx:
        ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("total training time (s)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def plot_fit(path: Path, report, title: str) -> None:
    """Seed-mean gap curves of the fit against the fitted closed form."""
    conv = report.convergence
    fig = new_figure(6.4, 4.2, dpi=100)
    ax = fig.subplots()
    for i, (curve, q) in enumerate(zip(report.curves, report.q_sums, strict=True)):
        n = np.arange(1, len(curve) + 1)
        s = int(report.level_configs[i, 0])
        line = ax.plot(n, curve, lw=1.0, label=f"s={s}" if s else "full")[0]
        ax.plot(n, conv.gap(n, float(q)), ls="--", lw=1.0, color=line.get_color())
    ax.axhline(conv.target_gap, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(conv.target_gap / 5, 2.0)
    ax.set_xlabel("round n")
    ax.set_ylabel("optimality gap F(w_n) - F* (seed mean)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    save_figure(fig, path)


def predicted_vs_simulated(scenarios: Sequence[tuple[str, Scenario]], *, seeds: int = 4, max_rounds: int = 4000,
                           progress: Callable[[str], None] = lambda s: None) -> Table:
    """For each scenario and solver: the model's rounds and time against the simulator's."""
    header = ["scenario", "method", "levels (min-max)", "round latency (ms)", "predicted rounds", "simulated rounds",
              "predicted T (s)", "simulated T (s)", "error (%)"]
    rows: list[list[object]] = []
    for name, sc in scenarios:
        res = solve_all(sc)
        eps = sc.convergence.target_gap
        configs = np.stack([r.levels for r in res.values()])
        curves = simulate_gap_curves(sc, configs, seeds=seeds, max_rounds=max_rounds, stop_below=eps)
        for (lab, r), curve in zip(res.items(), curves, strict=True):
            n_sim = rounds_to_target(curve, eps)
            lv = f"{r.levels.min()}-{r.levels.max()}" if r.levels.min() != r.levels.max() else f"{r.levels.min()}"
            rows.append([name, lab, lv, r.round_latency * 1e3, r.rounds, n_sim, r.total_time, n_sim * r.round_latency,
                         100.0 * (r.rounds / n_sim - 1.0)])
            progress(f"{name} {lab}: predicted {r.rounds:.0f} rounds, simulated {n_sim:.0f}")
    return Table(header, rows)


def plot_predicted_vs_simulated(path: Path, table: Table) -> None:
    fig = new_figure(5.2, 5.0, dpi=100)
    ax = fig.subplots()
    pred = np.array([r[6] for r in table.rows], dtype=float)
    sim = np.array([r[7] for r in table.rows], dtype=float)
    for sc_name, marker in zip(sorted({str(r[0]) for r in table.rows}), "os^v", strict=False):  # the scenario names
        m = np.array([r[0] == sc_name for r in table.rows])
        ax.scatter(sim[m], pred[m], marker=marker, label=sc_name)
        for r, x, y in zip([r for r in table.rows if r[0] == sc_name], sim[m], pred[m], strict=True):
            ax.annotate(str(r[1]).split(" (")[0], (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    lo, hi = np.nanmin([pred.min(), sim.min()]) / 1.5, np.nanmax([pred.max(), sim.max()]) * 1.5
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="predicted = simulated")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("simulated training time (s)")
    ax.set_ylabel("predicted training time (s)")
    ax.set_title("Training time to the target gap: model vs simulator")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
