"""The leaderboard's new baselines (Optuna's TPE and CMA-ES, regularised evolution, HAWQ-V3 on tables),
its aggregates (rliable's definitions), the Pareto track and the generator's validation."""

from __future__ import annotations

import csv
import itertools
import json

import numpy as np
import pytest

from baselines.mixed_precision import solve
from baselines.mixed_precision.aggregate import (
    iqm,
    normalise,
    performance_profile,
    probability_of_improvement,
    stratified_bootstrap_ci,
)
from baselines.mixed_precision.pareto import hypervolume, non_dominated, pareto_instance, pareto_run
from baselines.mixed_precision.table_hawq import load_traces, traces_path
from quant_envs.mixed_precision.tables.problem import TableProblem
from quant_envs.mixed_precision.tables.registry import load_table

NEW = ("tpe", "cmaes", "regularized_evolution")


@pytest.fixture(scope="module")
def small() -> TableProblem:
    # digits-cnn at 0.35 of all-8-bit latency: 49 feasible policies, one optimum (enumerated by the table)
    return TableProblem("digits-cnn", hardware="bismo-edge", budget_metric="latency", budget_fraction=0.35)


# TPE's cost per trial grows with the trials, and on this small space most of its suggestions are
# repeats (about 1000 trials for 49 policies): minutes on a loaded machine
@pytest.mark.parametrize("method", [pytest.param("tpe", marks=pytest.mark.slow), "cmaes", "regularized_evolution"])
def test_new_solvers_find_the_known_optimum_and_stay_feasible(small: TableProblem, method: str) -> None:
    feasible = len(small.optimum.feasible_scores)
    assert feasible == 49 and np.sum(small.optimum.feasible_scores == small.optimum.score) == 1
    for seed in range(3):
        small.reset_counts()
        r = solve(small, method, max_evaluations=feasible, seed=seed)
        assert small.regret(r.accuracy) == 0.0, (method, seed)
        assert all(cost <= small.limit for _, _, cost in r.history)  # every evaluated policy within budget
        assert small.is_feasible(r.policy)
        assert len({p for p, _, _ in r.history}) == len(r.history) <= feasible  # a repeat is not an evaluation


@pytest.mark.parametrize("method", NEW)
def test_new_solvers_are_seeded(method: str) -> None:
    p = TableProblem("hawq-resnet18", budget_metric="size", budget_level=0.25)
    runs = []
    for seed in (0, 0, 1):
        p.reset_counts()
        runs.append([pol for pol, _, _ in solve(p, method, max_evaluations=20, seed=seed).history])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    assert all(p.is_feasible(pol) for pol in runs[0] + runs[2])


def test_allowance_is_respected_when_suggestions_repeat(small: TableProblem) -> None:
    # tpe on a 49-policy space with an allowance above it: stops by patience, never past the allowance
    small.reset_counts()
    r = solve(small, "tpe", max_evaluations=200, seed=0, patience=10)
    assert len(r.history) <= 49 and r.success
    assert r.extra["trials"] > len(r.history)  # some suggestions were repeats, told again, not counted


def test_hawq_v3_on_hawq_tables_is_the_exact_optimum() -> None:
    # HAWQ-V3's tables are its own objective, so its integer program returns the enumerated optimum
    for metric, level in (("latency", 0.5), ("size", 0.25), ("bops", 0.75)):
        p = TableProblem("hawq-resnet18", budget_metric=metric, budget_level=level)
        r = solve(p, "hawq_v3", max_evaluations=1)
        assert len(r.history) == 1 and p.regret(r.accuracy) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("table", ["digits-cnn", "mnist1d-small"])
def test_hawq_v3_on_generated_tables_reads_shipped_traces(table: str) -> None:
    t = load_table(table)
    record = load_traces(t)
    assert record["float_sha256"] == t.meta["float_sha256"] and record["bits"] == list(t.bits)
    assert {"command", "numerics", "hutchinson_samples", "hessian_data", "weight_avg_trace"} <= set(record)
    omega = np.array(record["omega"])
    assert omega.shape == (t.num_units, len(t.bits)) and np.all(omega >= 0)
    assert np.all(np.diff(omega, axis=1) <= 1e-12)  # more bits never perturb more
    p = TableProblem(table)
    r = solve(p, "hawq_v3", max_evaluations=1)
    assert len(r.history) == 1 and p.is_feasible(r.policy) and r.extra["omega_source"] == traces_path(t).name


def test_traces_of_another_network_are_refused(monkeypatch, tmp_path) -> None:
    import baselines.mixed_precision.table_hawq as th

    t = load_table("digits-cnn")
    record = json.loads(traces_path(t).read_text())
    record["float_sha256"] = "0" * 64
    (tmp_path / traces_path(t).name).write_text(json.dumps(record))
    monkeypatch.setattr(th, "DATA_DIR", tmp_path)
    with pytest.raises(ValueError, match="another float network"):
        th.load_traces(t)


# ------------------------------------------------------------------------------------- aggregates


def test_iqm_of_known_arrays() -> None:
    assert iqm(np.arange(8.0)) == pytest.approx(3.5)  # mean of 2, 3, 4, 5
    assert iqm(np.array([0.0, 1.0, 1.0, 100.0])) == pytest.approx(1.0)  # the outliers are cut
    assert normalise(np.array([0.0, 2.0]), 4.0).tolist() == [0.0, 0.5]


def test_performance_profile_of_known_runs() -> None:
    runs = [np.array([0.0, 0.5, 1.0, 2.0]), np.array([0.0, 0.0])]
    # instance 1: 1/4, 2/4, 3/4 at tau 0, 0.5, 1.5; instance 2: 1 everywhere; averaged over instances
    assert performance_profile(runs, np.array([0.0, 0.5, 1.5])).tolist() == pytest.approx([0.625, 0.75, 0.875])


def test_probability_of_improvement_hand_cases() -> None:
    assert probability_of_improvement([np.zeros(4)], [np.ones(4)])[0] == 1.0
    assert probability_of_improvement([np.ones(4)], [np.zeros(4)])[0] == 0.0
    assert probability_of_improvement([np.zeros(3)], [np.zeros(3)]) == (0.5, 0.5, 0.5)
    # x = [0, 2], y = [1]: pairs (0 < 1) and (2 > 1): 1/2; second instance all better: 1; mean 0.75
    assert probability_of_improvement([np.array([0.0, 2.0]), np.zeros(2)],
                                      [np.array([1.0]), np.ones(2)])[0] == pytest.approx(0.75)


def test_stratified_bootstrap_interval() -> None:
    rng = np.random.default_rng(0)
    runs = [rng.normal(0, 1, 10), rng.normal(5, 1, 10)]
    point, low, high = stratified_bootstrap_ci(runs)
    assert point == pytest.approx(iqm(np.concatenate(runs)))
    assert low < point < high
    assert stratified_bootstrap_ci([np.full(5, 2.0), np.full(3, 2.0)]) == (2.0, 2.0, 2.0)


# ----------------------------------------------------------------------------------------- Pareto


def test_hypervolume_hand_cases() -> None:
    assert hypervolume(np.array([1.0]), np.array([0.5])) == pytest.approx(0.5)
    # (0.5 at cost 0.2) and (1 at cost 0.6): 0.4 * 0.5 + 0.4 * 1; a dominated point adds nothing
    assert hypervolume(np.array([0.5, 1.0, 0.4]), np.array([0.2, 0.6, 0.7])) == pytest.approx(0.6)
    # of two equal points the first is kept; (0.4, 0.7) is dominated by both others
    assert non_dominated(np.array([0.5, 1.0, 0.4, 1.0]), np.array([0.2, 0.6, 0.7, 0.6])).tolist() == [0, 1]


def test_exact_front_matches_brute_force() -> None:
    t = load_table("mnist1d-small")
    inst = pareto_instance(t, "bismo-edge", "latency")
    s, c = inst.score, inst.cost
    # brute force: a point is on the front iff no point is at least as good on both and better on one
    dominated = np.array([np.any((s >= s[j]) & (c <= c[j]) & ((s > s[j]) | (c < c[j]))) for j in range(len(s))])
    on_front = set(np.flatnonzero(~dominated))
    front = set(inst.front.tolist())
    assert front <= on_front  # equal duplicates are kept once
    assert {(s[j], c[j]) for j in on_front} == {(s[j], c[j]) for j in front}
    # the grid's flat order is the table's: score of each enumerated policy is the table's score
    for flat, idx in zip(range(0, len(s), 97), itertools.islice(itertools.product(range(4), repeat=5), 0, None, 97)):
        assert inst.flat(np.array(idx)) == flat
    assert inst.hv_regret(list(range(len(s))), [len(s)])[len(s)] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("method", ["random", "nsga2"])
def test_pareto_entrants_count_distinct_policies(method: str) -> None:
    inst = pareto_instance(load_table("digits-cnn"), "bismo-edge", "latency")
    a = pareto_run(inst, method, 0, 120)
    assert len(a) == len(set(a)) == 120 and a == pareto_run(inst, method, 0, 120)
    regret = inst.hv_regret(a, [10, 120])
    assert 0 <= regret[120] <= regret[10] <= inst.front_hv


# -------------------------------------------------------------------------------------- generator


@pytest.mark.slow
def test_generator_refuses_rows_whose_policy_files_do_not_validate(tmp_path) -> None:
    from agents import leaderboard as lb

    out, md = tmp_path / "lb", tmp_path / "LB.md"
    assert lb.main(["--out", str(out), "--markdown", str(md), "--tables", "digits-cnn", "--methods", "random",
                    "uniform", "--seeds", "2", "--max-evaluations", "30", "--workers", "1",
                    "--figures", str(tmp_path / "figures")]) == 0
    text = md.read_text()
    assert "rows refused: 0" in text and "| random | 2 |" in text
    assert (tmp_path / "figures" / "iqm.png").exists() and "](figures/iqm.png)" in text
    csv_path = out / "runs" / "digits-cnn" / "bismo-edge-latency-fraction0.5" / "uniform.csv"
    rows = list(csv.DictReader(open(csv_path)))
    policy = out / "policies" / f"{rows[0]['policy_sha256']}.json"
    record = json.loads(policy.read_text())
    record["regret"] = 0.0  # a claim the replay does not confirm
    policy.write_text(json.dumps(record))
    assert lb.main(["--out", str(out), "--markdown", str(md), "--methods", "random", "uniform",
                    "--workers", "1", "--no-run", "--figures", str(tmp_path / "figures")]) == 0
    text = md.read_text()
    assert f"rows refused: {sum(r['policy_sha256'] == rows[0]['policy_sha256'] for r in rows)}" in text
    # the header lists the command that ran the jobs (the --no-run regeneration ran none)
    first = lb.read_commands(out)
    assert len(first) == 1 and "--seeds 2" in first[0] and first[0] in text


def test_the_commands_that_made_the_csvs_are_listed_in_order(tmp_path) -> None:
    from agents import leaderboard as lb

    assert lb.read_commands(tmp_path) == []
    assert lb.record_command(tmp_path, "python -m agents.leaderboard --seeds 5") == [
        "python -m agents.leaderboard --seeds 5"]
    lb.record_command(tmp_path, "python -m agents.leaderboard --seeds 3 --methods ppo")
    # a rerun moves to the end: the order the CSVs were last written in
    assert lb.record_command(tmp_path, "python -m agents.leaderboard --seeds 5") == [
        "python -m agents.leaderboard --seeds 3 --methods ppo", "python -m agents.leaderboard --seeds 5"]
    assert lb.read_commands(tmp_path) == lb.record_command(tmp_path, "python -m agents.leaderboard --seeds 5")


def test_an_agent_row_is_produced_validated_and_aggregated(tmp_path) -> None:
    # MaskablePPO as a leaderboard method: one seed, 30 reward evaluations on the digits-cnn table
    from agents import leaderboard as lb
    from baselines.mixed_precision.regret import LEADERBOARD_SETTINGS

    setting = LEADERBOARD_SETTINGS[5]
    assert lb.setting_slug(setting) == ("digits-cnn", "bismo-edge-latency-fraction0.5")
    history, _ = lb.agent_history(setting, "maskable_ppo", 0, 30)
    assert len(history) == 30 and len({p for p, _, _ in history}) == 30  # distinct policies: repeats are free
    out, md = tmp_path / "lb", tmp_path / "LB.md"
    for method in ("random", "maskable_ppo"):
        lb.run_job((setting, method, [0], 30, str(out)))
    rows = list(csv.DictReader(open(out / "runs" / "digits-cnn" / "bismo-edge-latency-fraction0.5" / "maskable_ppo.csv")))
    assert [int(r["n"]) for r in rows] == [1, 10, 30] and {r["evaluations"] for r in rows} == {"30"}
    regrets = [float(r["regret"]) for r in rows]
    assert regrets == sorted(regrets, reverse=True)  # best-so-far never worsens
    # the row at 30 is the best of the run's 30 policies, scored by the table
    problem = TableProblem(**setting)
    assert regrets[-1] == pytest.approx(min(problem.regret(s) for _, s, ok in history if ok))
    text = lb.generate(out, md, ["random", "maskable_ppo"], "python -m agents.leaderboard ...", 1, tmp_path / "fig")
    # the agent's policy files replay (a file that does not is refused: the baselines' test above)
    assert "rows refused: 0" in text and "| maskable_ppo (RL agent) | 1 |" in text
    assert "| maskable_ppo (RL agent) | " in text.split("## Per instance")[0]  # aggregated over the instance


def test_ddpg_haq_rows_on_the_continuous_table_are_accepted(tmp_path) -> None:
    # DDPG-HAQ as a leaderboard method: one seed, an allowance of 30 evaluations on the digits-cnn table
    # through quant_envs/MixedPrecisionTableContinuous-v0 (HAQ's 20 warm-up episodes act at random)
    from agents import leaderboard as lb
    from baselines.mixed_precision.regret import LEADERBOARD_SETTINGS

    setting = LEADERBOARD_SETTINGS[5]
    assert lb.AGENT_ENVS["ddpg_haq"] == "quant_envs/MixedPrecisionTableContinuous-v0"
    problem = TableProblem(**setting)
    history, _ = lb.agent_history(setting, "ddpg_haq", 0, 30)
    assert 20 <= len(history) <= 30 and len({p for p, _, _ in history}) == len(history)  # distinct, within allowance
    assert all(ok and problem.is_feasible(p) for p, _, ok in history)  # the masks keep every policy within budget
    out, md = tmp_path / "lb", tmp_path / "LB.md"
    lb.run_job((setting, "ddpg_haq", [0], 30, str(out)))
    rows = list(csv.DictReader(open(out / "runs" / "digits-cnn" / "bismo-edge-latency-fraction0.5" / "ddpg_haq.csv")))
    assert [int(r["n"]) for r in rows] == [1, 10, 30] and all(r["policy_sha256"] for r in rows)
    regrets = [float(r["regret"]) for r in rows]
    assert min(regrets) >= 0 and regrets == sorted(regrets, reverse=True)
    assert regrets[-1] == pytest.approx(min(problem.regret(s) for _, s, _ in history))  # same seed, same run
    text = lb.generate(out, md, ["ddpg_haq"], "python -m agents.leaderboard ...", 1, tmp_path / "fig")
    # every row's policy file replays on quant_envs/MixedPrecisionTable-v0 (the generator refuses any that does not)
    assert "rows refused: 0" in text and "| ddpg_haq (RL agent) | 1 |" in text


def test_maskable_ppo_pareto_entrant_draws_budgets_and_gives_finite_hv_regret(tmp_path) -> None:
    from agents import leaderboard as lb

    inst = pareto_instance(load_table("digits-cnn"), "bismo-edge", "latency")
    evaluated = lb.pareto_evaluated("digits-cnn", inst, "maskable_ppo", 0, 60)
    assert len(evaluated) == len(set(evaluated)) == 60  # every distinct policy asked for is one evaluation
    # across the drawn budgets its policies spread over the cost axis (a fixed budget would cap them)
    assert np.ptp(inst.cost[evaluated]) > 0.5
    lb.pareto_job(("digits-cnn", "bismo-edge", "latency", "maskable_ppo", [0, 1], 60, str(tmp_path)))
    rows = list(csv.DictReader(open(tmp_path / "pareto" / "digits-cnn" / "bismo-edge-latency" / "maskable_ppo.csv")))
    assert {(r["seed"], r["n"]) for r in rows} == {(s, n) for s in ("0", "1") for n in ("1", "10", "30")}
    for seed in ("0", "1"):
        hv = [float(r["hv_regret"]) for r in rows if r["seed"] == seed]
        assert all(np.isfinite(hv)) and 0 <= hv[-1] <= hv[0] <= inst.front_hv
    # the seed-0 row is the run above, scored as the baselines' are
    seed0 = {int(r["n"]): float(r["hv_regret"]) for r in rows if r["seed"] == "0"}
    assert seed0 == pytest.approx(inst.hv_regret(evaluated, [1, 10, 30]))
    lines = lb.pareto_section(tmp_path, tmp_path / "fig", "fig")
    assert any(line.startswith("| maskable_ppo (RL agent) | 2 |") for line in lines)


def test_a_job_runs_only_the_seeds_its_csv_lacks(tmp_path) -> None:
    from agents import leaderboard as lb
    from baselines.mixed_precision.regret import LEADERBOARD_SETTINGS

    setting, out = LEADERBOARD_SETTINGS[5], str(tmp_path)
    path = tmp_path / "runs" / "digits-cnn" / "bismo-edge-latency-fraction0.5" / "random.csv"
    lb.run_job((setting, "random", [0], 30, out))
    first = list(csv.DictReader(open(path)))
    assert lb.missing_seeds(path, [0, 1], 30) == [1] and lb.missing_seeds(path, [0], 100) == [0]
    lb.run_job((setting, "random", [0, 1], 30, out))
    rows = list(csv.DictReader(open(path)))
    # seed 0's rows are the file's own (its wall time was not measured again), seed 1's are new
    assert rows[:len(first)] == first and {r["seed"] for r in rows} == {"0", "1"}
    assert lb.missing_seeds(path, [0, 1], 30) == []
    # another allowance's checkpoints differ: its seeds replace the file's, which are not kept
    lb.run_job((setting, "random", [1], 100, out))
    assert {(r["seed"], r["n"]) for r in csv.DictReader(open(path))} == {("1", n) for n in ("1", "10", "30", "100")}
    # resume False (--force) reruns a seed the file holds
    lb.run_job((setting, "random", [1], 100, out, False))
    assert {r["seed"] for r in csv.DictReader(open(path))} == {"1"}


def test_tracks_select_which_runs_are_made(tmp_path) -> None:
    from agents import leaderboard as lb

    out = tmp_path / "lb"
    args = ["--out", str(out), "--markdown", str(tmp_path / "LB.md"), "--tables", "mnist1d-small", "--methods",
            "random", "--seeds", "1", "--max-evaluations", "10", "--workers", "1", "--figures", str(tmp_path / "f")]
    assert lb.main(args + ["--tracks", "pareto"]) == 0
    assert (out / "pareto" / "mnist1d-small" / "bismo-edge-latency" / "random.csv").exists()
    assert not (out / "runs").exists()
    assert lb.main(args + ["--tracks", "regret"]) == 0
    assert (out / "runs" / "mnist1d-small" / "bismo-edge-latency-fraction0.25" / "random.csv").exists()


def test_rl_section_names_the_better_side_by_its_interval() -> None:
    from agents import leaderboard as lb

    # two instances of digits-cnn: the agent's 5 runs all at regret 0, random's at 1 and 2 (normalised)
    digits = [i for i, s in enumerate(lb.LEADERBOARD_SETTINGS) if s["table"] == "digits-cnn"]
    runs = {"maskable_ppo": np.zeros(5), "random": np.array([1.0, 2.0, 1.0, 2.0, 1.0]),
            "uniform": np.full(5, 3.0)}

    def normalised(m, n, among=None):
        return [runs[m] for _ in among]

    def covered(m, n, among=None):
        return True

    lines = lb.rl_section(["random", "uniform", "maskable_ppo"], [100], normalised, covered, digits)
    row = next(line for line in lines if line.startswith("| digits-cnn | 100 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "maskable_ppo (RL agent)" and cells[4] == "random"  # random's IQM beats uniform's
    assert cells[6] == "1 [1, 1]" and cells[7] == "RL better"
    assert cells[8] == "-"  # no evaluation counts given
    runs["maskable_ppo"] = np.array([1.0, 2.0, 1.0, 2.0, 1.0])  # the same runs as random: no difference
    used = {digits[0]: {"maskable_ppo": 300.0}, digits[1]: {"maskable_ppo": 500.0}}
    row = next(line for line in lb.rl_section(["random", "maskable_ppo"], [100], normalised, covered, digits, used)
               if line.startswith("| digits-cnn | 100 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[7] == "no difference shown" and cells[8] == "400"  # mean over the scenario's instances
