"""The exhaustive digits-cnn table: its entries re-evaluated live, and its environment against
``MixedPrecision-v0``.

Expected values come from the live environment: ``MixedPrecisionProblem`` retrains a sample of the
table's policies with the table's recorded settings (finetune steps, retraining seed, task seed)
and must give the same validation and test accuracy; ``MixedPrecision-v0`` on digits-cnn must show
the same observations, masks, costs and rewards as the table environment.
"""

from __future__ import annotations

import numpy as np
import pytest
from table_checks import PROVENANCE_KEYS, live_problem, same_episodes, sample_matches

from quant_envs.mixed_precision.tables.registry import load_table

# compared with data made on the tables' CPU kind: exact there, within CROSS_CPU_SAMPLES elsewhere
pytestmark = pytest.mark.numerics


@pytest.fixture(scope="module")
def table():
    return load_table("digits-cnn")


@pytest.fixture(scope="module")
def live(table):
    return live_problem(table)


def test_table_is_complete_with_its_provenance(table) -> None:
    assert table.bits == (2, 3, 4, 5, 6, 7, 8) and table.num_units == 4
    assert table.score.shape == (7,) * 4 and table.columns["test_accuracy"].shape == (7,) * 4
    for key in PROVENANCE_KEYS:
        assert key in table.meta, key
    assert np.all((table.score >= 0) & (table.score <= 1))
    # more bits help on average: the all-8-bit policy is above the all-2-bit one
    assert table.score[(6,) * 4] > table.score[(0,) * 4]


def test_a_sample_of_entries_reevaluated_live(table, live) -> None:
    sample_matches(table, live, count=3, seed=0)


@pytest.mark.slow
def test_a_larger_sample_of_entries_reevaluated_live(table, live) -> None:
    sample_matches(table, live, count=40, seed=1)


def test_table_env_sees_what_mixed_precision_v0_sees(live) -> None:
    from quant_envs.mixed_precision.env import MixedPrecisionEnv
    from quant_envs.mixed_precision.tables.env import MixedPrecisionTableEnv

    kw = {"hardware": "bitfusion", "budget_metric": "energy", "budget_fraction": 0.85}  # feasible from 0.78 on hw_sim's validated Bit Fusion
    env_t = MixedPrecisionTableEnv(table="digits-cnn", **kw)
    env_l = MixedPrecisionEnv(task=live.task, finetune_steps=live.finetune_steps, eval_seed=live.eval_seed,
                              share_problem=False, **kw)
    same_episodes(env_t, env_l, episodes=3)


def test_generator_is_resumable_and_refuses_another_configuration(tmp_path, capsys) -> None:
    from quant_envs.mixed_precision.tables.build import main
    from quant_envs.mixed_precision.tables.npz import load_npz

    args = ["--task", "digits-cnn", "--bits", "2", "8", "--finetune-steps", "0", "--chunk", "5",
            "--work-dir", str(tmp_path / "work"), "--out", str(tmp_path / "t.npz")]
    assert main([*args, "--limit", "10"]) == 0  # two chunks, no table yet
    assert sorted(p.name for p in (tmp_path / "work").glob("chunk_*.npy")) == ["chunk_00000.npy", "chunk_00001.npy"]
    assert not (tmp_path / "t.npz").exists()
    capsys.readouterr()
    assert main(args) == 0  # resumes: only the remaining 6 of the 2^4 policies are evaluated
    assert "6 policies in" in capsys.readouterr().out
    t = load_npz(tmp_path / "t.npz")
    assert t.score.shape == (2,) * 4 and t.meta["finetune_steps"] == 0
    # an entry against the live post-training evaluation of the same policy, on the generated
    # table's own float network (trained here: on another CPU kind than the shipped table's it is
    # not the shipped network) and with the numerics that generated it, so bit for bit
    val = live_problem(t).evaluate([(8, 8), (2, 2), (8, 8), (2, 2)], finetune_steps=0).accuracy
    assert float(t.score[1, 0, 1, 0]) == pytest.approx(val, abs=1e-12)
    with pytest.raises(SystemExit):
        main([*args[:-4], "--work-dir", str(tmp_path / "work"), "--eval-seed", "3", "--out", str(tmp_path / "u.npz")])
