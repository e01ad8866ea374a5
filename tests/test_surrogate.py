"""Surrogate tables: fitting, look-up, save/load, and the exact optimum of a pairwise surrogate by
the integer program against enumeration (the reference: every policy of a 6-unit x 4-width grid
scored and the best feasible one taken)."""

from __future__ import annotations

import numpy as np
import pytest

from quant_envs.mixed_precision.tables.surrogate import (
    GRID_LEVELS,
    SurrogateTable,
    _design,
    fidelity,
    fit_pairwise,
    iter_grid,
    policy_pairs,
)
from quant_envs.mixed_precision.tables.surrogate_optimum import enumerate_optimum, milp_optimum

BITS = (2, 3, 4, 8)


def random_pairwise(seed: int, units: int = 6, pairs: str = "all") -> SurrogateTable:
    rng = np.random.default_rng(seed)
    pr = policy_pairs(units, pairs)
    return SurrogateTable(name="r", bits=BITS, num_units=units, kind="pairwise", intercept=0.5,
                          unary=rng.normal(size=(units, 4)), pairs=pr, pair_terms=rng.normal(size=(len(pr), 4, 4)))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("level", [0.2, 0.5, 0.8])
def test_milp_optimum_equals_enumeration(seed: int, level: float) -> None:
    model = random_pairwise(seed)
    cost = np.random.default_rng(100 + seed).uniform(1, 3, size=(6, 1)) * np.array(BITS)[None, :]
    lo, hi = cost.min(axis=1).sum(), cost.max(axis=1).sum()
    budget = lo + level * (hi - lo)
    by_enum = enumerate_optimum(model, cost, budget, chunk=1000)  # 4096 policies in 5 chunks
    by_milp = milp_optimum(model, cost, budget)
    assert by_milp.score == pytest.approx(by_enum.score, abs=1e-9)
    assert by_milp.cost <= budget * (1 + 1e-9)
    # the enumeration's answer is the best feasible one, checked by brute force over the full grid
    _, idx = next(iter_grid(4, 6, 1 << 12))
    ok = cost[np.arange(6), idx].sum(axis=1) <= budget * (1 + 1e-9)
    assert by_enum.score == pytest.approx(model.scores(idx)[ok].max(), abs=1e-12)
    assert by_enum.num_feasible == int(ok.sum())


def test_scores_are_sums_of_looked_up_terms() -> None:
    model = random_pairwise(0, pairs="adjacent")
    idx = np.array([3, 0, 1, 2, 2, 0])
    want = 0.5 + sum(model.unary[u, k] for u, k in enumerate(idx)) + sum(
        model.pair_terms[p, idx[a], idx[a + 1]] for p, a in enumerate(range(5)))
    assert model.score(idx) == pytest.approx(want, abs=1e-12)
    assert model.scores(idx[None])[0] == pytest.approx(want, abs=1e-12)


def test_fit_recovers_a_pairwise_function_and_round_trips(tmp_path) -> None:
    truth = random_pairwise(1, units=5, pairs="adjacent")
    _, idx = next(iter_grid(4, 5, 1 << 10))
    y = truth.scores(idx)
    fitted = fit_pairwise(idx, y, BITS, pairs="adjacent", alphas=(1e-6,))
    assert np.abs(fitted.scores(idx) - y).max() < 1e-4  # the exact model is in the family
    fid = fidelity(y, fitted.scores(idx))
    assert fid["kendall_tau"] > 0.999 and fid["top_decile_rmse"] < 1e-2
    path = fitted.save(tmp_path / "s.npz")
    again = SurrogateTable.load(path)
    assert again.digest == fitted.digest and again.meta["training_sha256"] == fitted.meta["training_sha256"]
    assert np.array_equal(again.scores(idx), fitted.scores(idx))


def test_grid_surrogate_serves_a_model_s_predictions(tmp_path) -> None:
    truth = random_pairwise(2, units=4)
    grid = SurrogateTable.from_grid("g", BITS, 4, truth.scores, chunk=50)
    _, idx = next(iter_grid(4, 4, 256))
    # stored as 2^16 steps between the least and greatest prediction: within half a step (+ float32)
    step = grid.meta["grid_quantization"]["step"]
    assert step == pytest.approx(np.ptp(truth.flat_scores()) / (GRID_LEVELS - 1))
    assert np.allclose(grid.scores(idx), truth.scores(idx), rtol=0, atol=step / 2 + 1e-6)
    again = SurrogateTable.load(grid.save(tmp_path / "g.npz"))
    assert again.digest == grid.digest and np.array_equal(again.grid, grid.grid)
    assert np.array_equal(grid.negated().flat_scores(), -grid.flat_scores())


def test_design_matrix_one_hot_counts() -> None:
    idx = np.array([[0, 1, 2], [3, 3, 3]])
    a = _design(idx, 4, policy_pairs(3, "all"))
    assert a.shape == (2, 3 * 4 + 3 * 16) and np.array_equal(a.sum(axis=1), [6, 6])


def test_bad_arguments_name_themselves() -> None:
    with pytest.raises(ValueError, match="pairs='ring'"):
        policy_pairs(4, "ring")
    with pytest.raises(ValueError, match="kind='grid'"):
        milp_optimum(SurrogateTable.from_grid("g", BITS, 2, lambda q: q.sum(axis=1)), np.ones((2, 4)), 10.0)


def test_fit_command_records_provenance(tmp_path) -> None:
    from quant_envs.mixed_precision.tables.surrogate import main

    truth = random_pairwise(3, units=5, pairs="adjacent")
    _, idx = next(iter_grid(4, 5, 1 << 10))
    held = np.zeros(len(idx), dtype=bool)
    held[::10] = True
    meta = {"generator": "test", "cpu_capability": "AVX2", "numerics_by_chunk": [{"chunks": "0"}]}
    import json
    np.savez(tmp_path / "s.npz", idx=idx.astype(np.int8), val_accuracy=truth.scores(idx), held_out=held,
             bits=np.array(BITS), meta=np.array(json.dumps(meta)))
    for family in ("pairwise", "trees"):
        out = tmp_path / f"{family}.npz"
        assert main(["--samples", str(tmp_path / "s.npz"), "--family", family, "--pairs", "adjacent",
                     "--out", str(out)]) == 0
        s = SurrogateTable.load(out)
        assert s.meta["refit_command"].endswith(f"--family {family} --pairs adjacent --out {out}")
        assert s.meta["training_size"] == int((~held).sum()) and s.meta["numerics"]["cpu_capability"] == "AVX2"
        assert s.meta["fidelity"]["held_out"] == int(held.sum())
        assert s.meta["fidelity"]["kendall_tau"] > (0.99 if family == "pairwise" else 0.6)


@pytest.mark.parametrize("seed", range(3))
def test_a_logit_linked_model_keeps_its_optimum_and_round_trips(seed: int, tmp_path) -> None:
    # the logit link is monotone: the integer program on the sum finds the linked score's optimum
    import dataclasses

    model = dataclasses.replace(random_pairwise(seed), link="logit")
    _, idx = next(iter_grid(4, 6, 1 << 12))
    linear = dataclasses.replace(model, link="identity").scores(idx)
    np.testing.assert_allclose(model.scores(idx), 1 / (1 + np.exp(-linear)), rtol=0, atol=1e-15)
    cost = np.random.default_rng(200 + seed).uniform(1, 3, size=(6, 1)) * np.array(BITS)[None, :]
    budget = cost.min(axis=1).sum() + 0.4 * (cost.max(axis=1).sum() - cost.min(axis=1).sum())
    ok = cost[np.arange(6), idx].sum(axis=1) <= budget * (1 + 1e-9)
    assert milp_optimum(model, cost, budget).score == pytest.approx(model.scores(idx)[ok].max(), abs=1e-12)
    worst = milp_optimum(model.negated(), cost, budget).index
    assert model.score(worst) == pytest.approx(model.scores(idx)[ok].min(), abs=1e-12)
    again = SurrogateTable.load(model.save(tmp_path / "m.npz"))
    assert again.link == "logit" and again.digest == model.digest != dataclasses.replace(model, link="identity").digest
    with pytest.raises(ValueError, match="link='probit' is not allowed"):
        dataclasses.replace(model, link="probit")
