"""Multi-fidelity tables: two tables of the digits CNN at {2, 8} bits generated at 0 and 1
retraining steps, merged into one; the environment at each fidelity must serve exactly the scores,
optimum and test column of the table generated at that fidelity (the reference), and report the
evaluation cost the generator measured for it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from quant_envs.mixed_precision.tables import build, fidelity
from quant_envs.mixed_precision.tables.env import MixedPrecisionTableEnv
from quant_envs.mixed_precision.tables.npz import load_npz
from quant_envs.mixed_precision.tables.problem import TableProblem


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    d = tmp_path_factory.mktemp("fid")
    for steps in (1, 0):
        assert build.main(["--task", "digits-cnn", "--bits", "2", "8", "--finetune-steps", str(steps), "--chunk", "8",
                           "--work-dir", str(d / f"w{steps}"), "--out", str(d / f"t{steps}.npz")]) == 0
    assert fidelity.main([str(d / "t1.npz"), str(d / "t0.npz"), "--out", str(d / "both.npz")]) == 0
    return load_npz(d / "t1.npz"), load_npz(d / "t0.npz"), load_npz(d / "both.npz")


def test_each_fidelity_is_the_table_generated_at_it(tables) -> None:
    t1, t0, both = tables
    assert sorted(fidelity.fidelities(both)) == [0, 1] and fidelity.default_fidelity(both) == 1
    assert not np.array_equal(t0.score, t1.score)  # one retraining step moves some entries
    for steps, ref in ((None, t1), (1, t1), (0, t0)):
        p = TableProblem(both, fidelity=steps, budget_level=0.5)
        want = TableProblem(ref, budget_level=0.5)
        assert p.table.digest == want.table.digest and p.finetune_steps == ref.meta["finetune_steps"]
        assert p.optimum.score == want.optimum.score
        assert np.array_equal(p.optimum.feasible_scores, want.optimum.feasible_scores)
        assert p.evaluate([(8, 8), (2, 2), (8, 8), (2, 2)], split="test").accuracy == float(
            ref.columns["test_accuracy"][1, 0, 1, 0])


def test_info_reports_the_measured_cost_at_the_fidelity(tables) -> None:
    t1, t0, both = tables
    for steps, ref in ((1, t1), (0, t0)):
        cost = ref.meta["eval_cpu_s"]
        assert isinstance(cost, float) and 0 < cost < 60  # measured by the generator, CPU seconds
        env = MixedPrecisionTableEnv(both, fidelity=steps)
        env.reset(seed=0)
        done, info = False, {}
        while not done:
            _, _, done, _, info = env.step(int(np.flatnonzero(env.action_masks())[0]))
        assert info["eval_cost_cpu_s"] == cost


def test_a_fidelity_the_table_lacks_is_refused(tables) -> None:
    with pytest.raises(ValueError, match=r"fidelity=5 .* \[0, 1\]"):
        TableProblem(tables[2], fidelity=5)
    with pytest.raises(ValueError, match="fidelity=3"):
        TableProblem("hawq-resnet18", fidelity=3)  # a published table has no retraining at all
    assert math.isnan(TableProblem("hawq-resnet18").eval_cost_cpu_s)


def test_a_view_is_itself_at_its_fidelity_and_refuses_another(tables) -> None:
    _, t0, both = tables
    view = fidelity.at_fidelity(both, 0)
    assert fidelity.at_fidelity(view, None) is view and fidelity.at_fidelity(view, 0) is view
    assert TableProblem(view).table.digest == TableProblem(t0).table.digest
    with pytest.raises(ValueError, match="fidelity=1 .* already seen at 0"):
        fidelity.at_fidelity(view, 1)


def test_many_accelerators_on_a_table_serve_the_chosen_fidelity(tables) -> None:
    from quant_envs.mixed_precision.multi_hardware import MixedPrecisionMultiHardwareEnv

    t1, t0, both = tables
    visited = set()
    for steps, ref in ((None, t1), (0, t0)):
        env = MixedPrecisionMultiHardwareEnv(hardware=["bismo-edge", "bitfusion"], table=both, fidelity=steps,
                                             hardware_order="cycle")
        rng = np.random.default_rng(0)
        for episode in range(8):  # alternating accelerators
            env.reset(seed=episode)
            done, info = False, {}
            while not done:
                _, _, done, _, info = env.step(int(rng.choice(np.flatnonzero(env.action_masks()))))
            idx = tuple(both.bits.index(w) for w, _ in info["policy"])
            assert info["accuracy"] == float(ref.score[idx]), (steps, idx)
            visited.add(idx)
    assert any(t0.score[i] != t1.score[i] for i in visited)  # the two fidelities were told apart
    with pytest.raises(ValueError, match="fidelity=0 is not allowed without a table"):
        MixedPrecisionMultiHardwareEnv(fidelity=0)


def test_merging_another_benchmark_is_refused(tables) -> None:
    t1, _, _ = tables
    import dataclasses
    other = dataclasses.replace(t1, meta={**t1.meta, "float_sha256": "0" * 16, "finetune_steps": 7})
    with pytest.raises(ValueError, match="float_sha256"):
        fidelity.merge_fidelities(t1, other)


@pytest.mark.parametrize("name", ["digits-cnn", "mnist1d-small"])
def test_shipped_tables_report_their_measured_cost(name: str) -> None:
    p = TableProblem(name)
    assert p.eval_cost_cpu_s == fidelity.MEASURED_EVAL_CPU_S[name][p.finetune_steps]
    assert TableProblem(name, fidelity=p.finetune_steps).table.digest == p.table.digest  # its one fidelity
    with pytest.raises(ValueError, match="fidelity="):
        TableProblem(name, fidelity=p.finetune_steps + 1)
