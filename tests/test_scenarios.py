"""The scenarios' instance grid and the closed-form random-search regret that says whether an
instance separates methods. Expected values: a Monte-Carlo simulation of random search (distinct
uniform feasible policies) on the shipped mnist1d-small table, written here."""

from __future__ import annotations

import numpy as np
import pytest

from quant_envs.mixed_precision.tables.problem import TableProblem
from quant_envs.mixed_precision.tables.registry import load_table
from quant_envs.mixed_precision.tables.scenarios import (
    LEVELS,
    instances,
    main,
    random_search_regret,
)


def test_the_instance_grid_covers_every_hardware_metric_and_level() -> None:
    table = load_table("mnist1d-small")
    grid = instances(table)
    expected = {(hw, m, lv) for hw in table.hardware for m in table.metrics(hw) for lv in LEVELS}
    assert {(i["hardware"], i["budget_metric"], i["budget_level"]) for i in grid} == expected
    assert len(table.hardware) >= 5 and len(grid) >= 5 * 3 * 3
    for kw in grid:  # every level is feasible by construction (HAWQ-V3's levels)
        assert TableProblem(table, **kw).optimum.num_feasible > 0


@pytest.mark.parametrize("evaluations", [5, 40])
def test_the_closed_form_matches_a_simulation(evaluations: int) -> None:
    problem = TableProblem("mnist1d-small", hardware="bismo-edge", budget_metric="latency", budget_level=0.5)
    mean, sd, p_opt = random_search_regret(problem, evaluations)
    scores = problem.optimum.feasible_scores
    rng = np.random.default_rng(0)
    regrets = np.array([problem.table.score_scale * (problem.optimum.score - scores[
        rng.choice(len(scores), evaluations, replace=False)].max()) for _ in range(4000)])
    # 4000 draws: the sample mean is within ~4 standard errors of the true mean
    assert mean == pytest.approx(regrets.mean(), abs=4 * regrets.std() / np.sqrt(len(regrets)) + 1e-12)
    assert sd == pytest.approx(regrets.std(), rel=0.1)
    assert p_opt == pytest.approx(np.mean(regrets <= 1e-12), abs=0.03)


def test_every_feasible_policy_evaluated_means_no_regret() -> None:
    problem = TableProblem("mnist1d-small")
    mean, sd, p_opt = random_search_regret(problem, problem.optimum.num_feasible)
    assert (mean, sd, p_opt) == (0.0, 0.0, 1.0)


def test_the_command_refuses_an_unknown_scenario(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--tables", "no-such-table"])
    assert "no-such-table" in capsys.readouterr().err


def test_simulated_random_search_agrees_with_the_closed_form() -> None:
    # the estimate used where the feasible set cannot be listed, checked where it can: 400 runs of
    # 100 uniform feasible policies against the closed form's mean (within 4 standard errors)
    from quant_envs.mixed_precision.tables.scenarios import simulated_random_regret

    p = TableProblem("mnist1d-cnn-w4", hardware="bismo-edge", budget_metric="latency", budget_level=0.1)
    mean, sd, _ = random_search_regret(p, 100)
    sim_mean, sim_sd, p_opt = simulated_random_regret(p, 100, seeds=400, seed=1)
    assert abs(sim_mean - mean) <= 4 * sd / np.sqrt(400)
    assert sim_sd == pytest.approx(sd, rel=0.25) and 0 <= p_opt <= 1
