"""Surrogate fidelity and whether an instance discriminates between search methods.

Run:  python benchmarks/bench_surrogate.py                       # calibration on the shipped tables
      python benchmarks/bench_surrogate.py --tables mnist1d-small --fractions 0.05 0.2 --seeds 20
      python benchmarks/bench_surrogate.py --samples WORK/samples.npz   # a live sampler's set

Calibration (``--tables``): the exhaustive table is the truth. For each ``--fractions`` f, a random
f of its policies (seeded) is the training set and the rest is held out; both surrogate families
(:mod:`quant_envs.mixed_precision.tables.surrogate`: ridge on per-unit + pair terms, adjacent and
all pairs; LightGBM trees) are fitted and scored on the held-out policies. Live sets
(``--samples``: the ``.npz`` written by ``python -m quant_envs.mixed_precision.tables.sample``) are
fitted on their training part and scored on their held-out part.

Printed per fit, against the targets: Kendall's tau (>= 0.85) and the RMSE over the held-out top
decile (<= 2x the retraining-seed noise, ``--noise`` 0.21 accuracy points: the figure the table
issue quotes from ``benchmarks/bench_reward_noise.py`` for mnist1d-cnn's recipe). For calibration,
also the true regret (table units) of each surrogate's optimum at the table's default instance.

Sub-grid check (``--against-table SURROGATE TABLE``): a surrogate over widths 2..8 scored on every
entry of the exhaustive table over a subset of them (mnist1d-cnn's {2, 3, 4, 8} table).

Live check (``--live-check SURROGATE SAMPLES``): at every instance of ``--hardware`` (each budget
metric at levels 0.1, 0.25, 0.5) the surrogate's exact optimum retrained live under 3 seeds must
land within max(0.5, 2x noise) points of its surrogate value and be no worse than the best
live-sampled feasible policy minus the noise (:mod:`quant_envs.mixed_precision.tables.surrogate_live`).

Live check of a shipped surrogate table (``--live-table NAME [--all-hardware]``): the same, from
the table's own float network, at the optimum its environment's regret uses, at every instance of
its grid (5 hardware profiles x 3 metrics x 3 levels) or of ``--hardware``.

Discrimination (calibration only): for each instance (the table's default instance, and its
default hardware with each budget metric at budget levels 0.1, 0.25 and 0.5), random search's regret after ``--evaluations`` distinct
uniform feasible policies over ``--seeds`` seeds, and how many seeds reach regret 0. Where the mean
is below the retraining noise the instance does not separate methods (it is saturated).
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from quant_envs.mixed_precision.tables.problem import TableProblem
from quant_envs.mixed_precision.tables.registry import load_table
from quant_envs.mixed_precision.tables.surrogate import (
    SurrogateTable,
    fidelity,
    fit_pairwise,
    fit_trees,
    load_training_set,
)
from quant_envs.mixed_precision.tables.surrogate_live import live_check, table_live_checks
from quant_envs.mixed_precision.tables.surrogate_optimum import enumerate_optimum

TAU_TARGET = 0.85
#: Budget levels of the instances (HAWQ-V3's: narrowest + level * (widest - narrowest); always feasible).
LEVELS = (0.1, 0.25, 0.5)


def fits(idx_tr, y_tr, bits, seed):
    """(name, predict) of every family fitted to one training set."""
    out = []
    for pairs in ("adjacent", "all"):
        model = fit_pairwise(idx_tr, y_tr, bits, pairs=pairs, seed=seed)
        alpha = model.meta["ridge_alpha"]
        out.append((f"ridge-{pairs} ({alpha['unary']:g}/{alpha['pairs']:g})", model.scores, model))
    model = fit_pairwise(idx_tr, y_tr, bits, pairs="all", seed=seed, link="logit")  # the sum fitted to the logit
    alpha = model.meta["ridge_alpha"]
    out.append((f"ridge-all-logit ({alpha['unary']:g}/{alpha['pairs']:g})", model.scores, model))
    trees = fit_trees(idx_tr, y_tr, bits, seed=seed)
    out.append(("lightgbm", trees, None))
    return out


def report(name, fid, noise, extra=""):
    tau_ok = "ok" if fid["kendall_tau"] >= TAU_TARGET else "MISSED"
    rmse_ok = "ok" if fid["top_decile_rmse"] <= 2 * noise else "MISSED"
    print(f"  {name:<28} tau {fid['kendall_tau']:.3f} ({tau_ok})  top-decile RMSE {fid['top_decile_rmse']:.3f} pts "
          f"= {fid['top_decile_rmse'] / (2 * noise):.2f}x of 2x noise ({rmse_ok})  RMSE {fid['rmse']:.3f}{extra}")


def random_search_regret(problem: TableProblem, evaluations: int, seeds: int) -> tuple[float, float, int, int]:
    """Mean and max regret (table units) of random search over distinct feasible policies."""
    t = problem.table
    nb, n = len(t.bits), t.num_units
    idx = np.stack(np.unravel_index(np.arange(nb ** n), (nb,) * n), axis=-1)
    feasible = problem.unit_cost[np.arange(n), idx].sum(axis=1) <= problem.limit
    scores = t.scores(idx[feasible])
    opt = problem.optimum.score
    regrets = []
    for s in range(seeds):
        pick = np.random.default_rng(s).choice(len(scores), size=min(evaluations, len(scores)), replace=False)
        regrets.append(t.score_scale * (opt - scores[pick].max()))
    r = np.array(regrets)
    return float(r.mean()), float(r.max()), int((r <= 1e-12).sum()), int(feasible.sum())


def calibrate(table_name: str, fractions: list[float], noise: float, seed: int, seeds: int, evaluations: int) -> None:
    """Fidelity of both families fitted on a fraction of an exhaustive table; random search per instance."""
    t = load_table(table_name)
    nb, n = len(t.bits), t.num_units
    idx = np.stack(np.unravel_index(np.arange(nb ** n), (nb,) * n), axis=-1)
    y = t.score.reshape(-1).astype(float)
    default = TableProblem(t)
    print(f"\n{table_name}: {len(y)} policies, {n} units x {nb} widths; default instance {default.hardware} "
          f"{default.budget_metric} budget {default.budget:.4g} ({default.optimum.num_feasible} feasible)")
    for frac in fractions:
        perm = np.random.default_rng(seed).permutation(len(y))
        k = max(2, int(round(frac * len(y))))
        tr, te = perm[:k], perm[k:]
        print(f" fit on {frac:.0%} ({k} policies), held out {len(te)}:")
        for name, predict, _ in fits(idx[tr], y[tr], t.bits, seed):
            fid = fidelity(y[te], predict(idx[te]), scale=t.score_scale)
            grid = SurrogateTable.from_grid(name, t.bits, n, predict)
            opt = enumerate_optimum(grid, default.unit_cost, default.budget)
            true = float(t.scores(opt.index))
            report(name, fid, noise, f"  its optimum's true regret {t.score_scale * (default.optimum.score - true):.3f}")
    print(f" random search, {evaluations} evaluations, {seeds} seeds (regret in {t.regret_unit}):")
    instances = [("default", {})] + [(f"level {lv}", {"budget_metric": m, "budget_level": lv})
                                      for m in t.metrics(default.hardware) for lv in LEVELS]
    for label, kw in instances:
        p = TableProblem(t, hardware=default.hardware, **kw)
        mean, worst, zero, feas = random_search_regret(p, evaluations, seeds)
        # a mean regret below the retraining noise: a method's lead over random search is within noise
        verdict = "does NOT discriminate" if mean < noise else "discriminates"
        print(f"  {default.hardware} {p.budget_metric:<8} {label:<11} {feas:>6} feasible: mean {mean:.3f}, "
              f"max {worst:.3f}, {zero}/{seeds} seeds at 0 -> {verdict}")


def live_set(path: str, noise: float, seed: int) -> None:
    with np.load(path) as z:
        idx, y, held = z["idx"], z["val_accuracy"], z["held_out"].astype(bool)
        bits = tuple(int(b) for b in z["bits"])
    print(f"\n{path}: {int((~held).sum())} training, {int(held.sum())} held-out live evaluations")
    for name, predict, _ in fits(idx[~held], y[~held], bits, seed):
        report(name, fidelity(y[held], predict(idx[held])), noise)


def check_line(c) -> str:
    """One live check as a line: instance, method, surrogate value, live retrainings, verdicts."""
    best = "n/a" if c.best_sampled is None else f"{c.best_sampled:.2f}"
    return (f"  {c.hardware:<12} {c.metric:<8} level {c.level:<5} {c.method:<11} surrogate {c.surrogate:.2f}  live "
            f"{np.mean(c.live):.2f} ({', '.join(f'{v:.2f}' for v in c.live)})  best sampled {best}  "
            f"{'ok' if c.close else 'FAR'} / {'ok' if c.not_worse in (True, None) else 'WORSE'}")


def live_checks(model_path: str, samples_path: str, hardware: str, noise: float) -> None:
    """The surrogate's optimum at each instance retrained live under 3 seeds."""
    model = _model(model_path)
    data = load_training_set(samples_path)
    print(f"\n{model_path} ({model.meta.get('family')}, digest {model.digest}): optimum retrained live, 3 seeds; "
          f"pass: within max(0.5, 2x noise) of its value and >= best sampled feasible - noise")
    for metric in ("latency", "energy", "size"):
        for level in LEVELS:
            c = live_check(model, data, hardware, metric, level, noise=noise)
            print(check_line(c))


def table_live(name: str, hardware: str | None, noise: float) -> None:
    """A shipped surrogate table's optimum at every instance retrained live under 3 seeds."""
    t = load_table(name)
    checks = table_live_checks(t, noise=noise, hardware=hardware)
    if not checks:
        raise SystemExit(f"--hardware {hardware!r} is not allowed for {name}; expected one of {list(t.hardware)} "
                         "(or --all-hardware)")
    print(f"\n{name} (digest {t.digest}): each instance's optimum retrained live from the table's float network, "
          f"3 seeds; pass: within max(0.5, 2x noise) = {checks[0].tolerance:.2f} points of its surrogate value and "
          f">= the best feasible training policy - noise")
    for c in checks:
        print(check_line(c))
    close = sum(c.close for c in checks)
    not_worse = sum(c.not_worse in (True, None) for c in checks)
    gap = np.array([np.mean(c.live) - c.surrogate for c in checks])
    print(f"  {close}/{len(checks)} within tolerance, {not_worse}/{len(checks)} no worse than the best sampled; "
          f"live - surrogate: mean {gap.mean():+.2f}, max |.| {np.abs(gap).max():.2f} points")


def _model(path_or_name: str) -> SurrogateTable:
    """A surrogate from its own .npz, or the model of a surrogate table (a registered name or its .npz)."""
    try:
        model = load_table(path_or_name).model
    except (ValueError, KeyError):
        model = None
    return SurrogateTable.load(path_or_name) if model is None else model


def against_table(model_path: str, table_name: str, noise: float) -> None:
    """A surrogate over a width set scored on an exhaustive table over a subset of those widths."""
    model = _model(model_path)
    t = load_table(table_name)
    missing = sorted(set(t.bits) - set(model.bits))
    if missing or t.num_units != model.num_units:
        raise SystemExit(f"{table_name}'s widths {t.bits} x {t.num_units} units are not a sub-grid of the "
                         f"surrogate's {model.bits} x {model.num_units}")
    nb, n = len(t.bits), t.num_units
    idx = np.stack(np.unravel_index(np.arange(nb ** n), (nb,) * n), axis=-1)
    mapped = np.array([model.bits.index(b) for b in t.bits])[idx]
    print(f"\n{model_path} on every entry of {table_name} ({nb ** n} policies, widths {t.bits}):")
    report(model.meta.get("family", model.kind), fidelity(t.score.reshape(-1), model.scores(mapped), t.score_scale), noise)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="*", default=["mnist1d-small", "digits-cnn"])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.2])
    parser.add_argument("--samples", nargs="*", default=[], help="live sets from tables.sample (.npz)")
    parser.add_argument("--live-check", nargs=2, metavar=("SURROGATE", "SAMPLES"), default=None,
                        help="retrain a fitted surrogate's optimum at each instance live (3 seeds)")
    parser.add_argument("--hardware", default="bismo-edge", help="the live check's hardware profile")
    parser.add_argument("--against-table", nargs=2, metavar=("SURROGATE", "TABLE"), default=None,
                        help="score a surrogate on every entry of an exhaustive table over a subset of its widths")
    parser.add_argument("--live-table", nargs="*", default=[], metavar="TABLE",
                        help="surrogate tables whose optimum at every instance (or --hardware's) is retrained live")
    parser.add_argument("--all-hardware", action="store_true", help="--live-table: every instance, not --hardware's")
    parser.add_argument("--noise", type=float, default=0.21, help="retraining-seed noise, accuracy points")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--evaluations", type=int, default=1000)
    args = parser.parse_args()
    print(f"python {platform.python_version()}; targets: Kendall tau >= {TAU_TARGET}, top-decile RMSE <= "
          f"{2 * args.noise:.2f} points (2x noise {args.noise})")
    start = time.perf_counter()
    for name in args.tables:
        calibrate(name, args.fractions, args.noise, args.seed, args.seeds, args.evaluations)
    for path in args.samples:
        live_set(path, args.noise, args.seed)
    if args.against_table:
        against_table(*args.against_table, args.noise)
    if args.live_check:
        live_checks(*args.live_check, args.hardware, args.noise)
    for name in args.live_table:
        table_live(name, None if args.all_hardware else args.hardware, args.noise)
    print(f"\n{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
