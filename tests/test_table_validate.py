"""Validation by replay: a policy file's claims are recomputed on the environment or a table.

The policy files come from a real ``train.py`` run on ``MixedPrecisionTable-v0`` (agents.training
.train, a few hundred steps) and from editing such a file; the expected verdicts are stated per case.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from agents.cli import main as cli_main
from agents.validate import validate
from quant_envs.mixed_precision.tables.problem import TableProblem


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    from agents.training import train

    out = tmp_path_factory.mktemp("run")
    train(env_id="quant_envs/MixedPrecisionTable-v0", algo="maskable_ppo", timesteps=32, seed=0,
          env_kwargs={"table": "hawq-resnet18", "budget_metric": "size", "budget_level": 0.4},
          hyperparams={"n_steps": 16, "batch_size": 16, "n_epochs": 1}, out=out, progress_bar=False,
          test_best=False, verbose=False)
    return {"path": out / "best_policy.json", "data": json.loads((out / "best_policy.json").read_text())}


def test_a_train_py_policy_file_validates(trained) -> None:
    report = validate(trained["path"])
    assert report.ok, report.format()
    names = {c["name"] for c in report.checks}
    assert {"feasible", "return", "accuracy", "size_bytes", "budget_used", "regret"} <= names
    # the file records the version of the table it was made on
    assert trained["data"]["best"]["final_info"]["table_digest"] == TableProblem("hawq-resnet18").table.digest


def test_a_file_made_on_a_regenerated_table_says_so(tmp_path) -> None:
    # A policy file written on an earlier version of a table: here the digits-cnn table with the
    # policy's own entry one validation image lower, as a regeneration on another machine could give.
    import dataclasses

    from quant_envs.mixed_precision.tables.env import MixedPrecisionTableEnv
    from quant_envs.mixed_precision.tables.npz import save_table
    from quant_envs.mixed_precision.tables.registry import load_table

    table = load_table("digits-cnn")
    env = MixedPrecisionTableEnv(table="digits-cnn")
    env.reset()
    done = False
    while not done:
        _, _, done, _, info = env.step(int(np.flatnonzero(env.action_masks())[-1]))
    idx = tuple(table.bits.index(w) for w, _ in info["policy"])
    older = table.score.copy()
    older[idx] -= 1 / 360
    old_path = save_table(dataclasses.replace(table, score=older), tmp_path / "older.npz")
    old_env = MixedPrecisionTableEnv(table=str(old_path))
    old_env.reset()
    for w, _ in info["policy"]:
        _, _, _, _, old_info = old_env.step(table.bits.index(w))
    assert old_info["table_digest"] != info["table_digest"] == table.digest
    claim = {"env_id": "quant_envs/MixedPrecisionTable-v0", "env_kwargs": {"table": "digits-cnn"},
             "best": {"policy": old_info["policy"], "final_info": old_info, "accuracy": old_info["accuracy"]}}
    report = validate(claim)
    assert not report.ok
    assert any("another version of table 'digits-cnn'" in p and old_info["table_digest"] in p for p in report.problems)
    assert "accuracy" in {c["name"] for c in report.mismatches}
    claim["best"]["final_info"] = info  # the same claim made on the current table passes
    claim["best"]["accuracy"] = info["accuracy"]
    assert validate(claim).ok


def test_tampered_claims_are_reported(trained, tmp_path) -> None:
    data = json.loads(json.dumps(trained["data"]))
    data["best"]["accuracy"] += 0.01  # a better score than the policy has
    data["best"]["final_info"]["regret"] = 0.0
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps(data))
    report = validate(path)
    assert not report.ok
    assert {c["name"] for c in report.mismatches} == {"accuracy", "regret"}
    assert cli_main(["validate", str(path)]) == 1  # train.py validate exits 1 on a mismatch
    assert cli_main(["validate", str(trained["path"])]) == 0


def test_an_over_budget_policy_is_infeasible(trained) -> None:
    data = json.loads(json.dumps(trained["data"]))
    data["best"]["policy"] = [[8, 8]] * 16  # all 8 bits: over the level-0.4 size budget
    report = validate(data)
    assert not report.ok and "masked (over budget)" in report.problems[0]


def test_replay_against_another_table_budget(trained) -> None:
    # the same policy replayed on the table at a looser budget: costs and score still match, the
    # regret is that budget's (recomputed here from the table's exact optimum)
    data = json.loads(json.dumps(trained["data"]))
    data["env_kwargs"]["budget_level"] = 0.9
    data["env_id"] = "quant_envs/MixedPrecisionTable-v0"
    report = validate(data)
    regret = next(c for c in report.checks if c["name"] == "regret")
    p = TableProblem("hawq-resnet18", budget_metric="size", budget_level=0.9)
    idx = np.array([p.bits.index(w) for w, _ in data["best"]["policy"]])
    assert regret["replayed"] == pytest.approx(p.regret(float(p.table.scores(idx))))
    assert {c["name"] for c in report.mismatches} <= {"regret", "budget_used", "optimum_score"}


def test_bad_files(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="cannot be read as JSON"):
        validate(bad)
    with pytest.raises(ValueError, match="no policy"):
        validate({"env_id": "quant_envs/MixedPrecisionTable-v0", "best": {"accuracy": 1.0}})
    report = validate({"env_id": "quant_envs/MixedPrecisionTable-v0", "policy": [[4, 4]] * 3, "accuracy": 0.0})
    assert not report.ok and "16 steps" in report.problems[0]


@pytest.mark.numerics
def test_a_live_digits_cnn_policy_replayed_on_the_table() -> None:
    # One episode of the live MixedPrecision-v0 (digits-cnn with the table's own float network and
    # retraining settings, default bismo-edge latency budget 0.25), written as train.py's best record:
    # the digits-cnn table must confirm its accuracy, costs and budget use; a claimed accuracy one
    # image higher must not pass. With other numerics than the table's, the live retraining may
    # land up to CROSS_CPU_SAMPLES images away (tables.live), and only the accuracy may.
    from quant_envs.mixed_precision.env import MixedPrecisionEnv
    from quant_envs.mixed_precision.tables.live import allowed_samples, table_task
    from quant_envs.mixed_precision.tables.registry import load_table

    allowed = allowed_samples(load_table("digits-cnn"))

    env = MixedPrecisionEnv(task=table_task("digits-cnn"), budget_fraction=0.25, finetune_steps=20, eval_seed=0)
    env.reset()
    done = False
    while not done:
        _, reward, done, _, info = env.step(int(np.flatnonzero(env.action_masks())[-1]))
    record = {k: info[k] for k in ("accuracy", "float_accuracy", "latency_s", "energy_j", "size_bytes",
                                   "budget_used", "policy")}
    claim = {"env_id": "quant_envs/MixedPrecision-v0", "env_kwargs": {"task": "digits-cnn"},
             "best": {**record, "return": reward}}
    report = validate(claim, against="digits-cnn")
    assert not report.problems, report.format()
    assert {"accuracy", "latency_s", "budget_used"} <= {c["name"] for c in report.checks}
    for c in report.checks:
        if c["name"] == "accuracy":
            assert abs(c["claimed"] - c["replayed"]) <= allowed / 360 + 1e-9, report.format()
        else:
            assert c["ok"], report.format()
    replayed = next(c["replayed"] for c in report.checks if c["name"] == "accuracy")
    claim["best"]["accuracy"] = replayed + (allowed + 1) / 360
    assert [c["name"] for c in validate(claim, against="digits-cnn").mismatches] == ["accuracy"]
