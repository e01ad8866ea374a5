"""Typed run records of a comparison (agents.records) and the one JSON-ready conversion (atomic_io.json_ready)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from agents.comparison import RUN_FIELDS, read_runs, summarize
from agents.records import ComparisonRun, RecordError
from agents.reporting import compare_figure
from baselines.result import SolveResult
from quant_envs.atomic_io import atomic_write_csv, json_ready

# runs.csv as the code before the typed records wrote it (an agent, a baseline and a failed run)
OLD_RUNS_CSV = (
    "method,kind,seed,status,val_accuracy,test_accuracy,final_test_accuracy,final_test_accuracies,"
    "final_finetune_steps,budget_used,reward_evaluations,wall_time_s,policy,error\r\n"
    'maskable_ppo,agent,0,ok,0.975,0.9722222222222222,0.9703703703703703,"[0.969444, 0.975, 0.966667]",2,'
    '0.9914893617021278,5,2.869467685000018,"[[4, 4], [3, 3], [5, 5], [2, 2]]",\r\n'
    'uniform,baseline,0,ok,0.9888888888888889,0.9777777777777777,0.9777777777777777,"[0.980556, 0.977778, 0.975]",'
    '2,0.9914893617021276,1,0.10251896099998703,"[[4, 4], [4, 4], [4, 4], [4, 4]]",\r\n'
    "enumeration,baseline,0,failed,,,,,,,,0.005806434000078298,,\"ValueError: enumeration needs one evaluation "
    "per feasible policy: there are more than max_evaluations=5 here; use a small task (digits-cnn), fewer bits, "
    'a tighter budget or a larger max_evaluations"\r\n')


def test_columns_keep_their_saved_order() -> None:
    # saved runs.csv files have these columns in this order; the record's fields are them
    assert RUN_FIELDS == ("method", "kind", "seed", "status", "val_accuracy", "test_accuracy", "final_test_accuracy",
                          "final_test_accuracies", "final_finetune_steps", "budget_used", "reward_evaluations",
                          "wall_time_s", "policy", "error")
    assert tuple(f.name for f in dataclasses.fields(ComparisonRun)) == RUN_FIELDS


def test_an_old_runs_csv_reads_as_typed_records_and_writes_back_byte_identical(tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    path.write_bytes(OLD_RUNS_CSV.encode())
    agent, baseline, failed = read_runs(path)
    assert agent == ComparisonRun(
        method="maskable_ppo", kind="agent", seed=0, status="ok", val_accuracy=0.975, test_accuracy=0.9722222222222222,
        final_test_accuracy=0.9703703703703703, final_test_accuracies=(0.969444, 0.975, 0.966667),
        final_finetune_steps=2, budget_used=0.9914893617021278, reward_evaluations=5, wall_time_s=2.869467685000018,
        policy=((4, 4), (3, 3), (5, 5), (2, 2)), error="")
    assert baseline.ok and baseline.reward_evaluations == 1 and not failed.ok
    assert math.isnan(failed.val_accuracy) and failed.policy is None and failed.reward_evaluations is None
    assert failed.error.startswith("ValueError: enumeration")
    again = tmp_path / "again.csv"
    atomic_write_csv(again, [r.to_row() for r in (agent, baseline, failed)], RUN_FIELDS)
    assert again.read_bytes() == path.read_bytes()


def test_a_runs_csv_from_before_some_columns_existed_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    path.write_text("method,kind,seed,val_accuracy,test_accuracy,reward_evaluations,wall_time_s,policy\n"
                    "uniform,baseline,3,0.9,0.8,7.0,1.5,\"[[8, 8]]\"\n")
    (run,) = read_runs(path)
    assert (run.status, run.seed, run.reward_evaluations, run.policy) == ("ok", 3, 7, ((8, 8),))
    assert math.isnan(run.final_test_accuracy) and run.final_test_accuracies is None and run.error == ""
    assert run.to_row()["final_test_accuracy"] == "" and run.to_row()["reward_evaluations"] == "7"


@pytest.mark.parametrize(("column", "text", "expected"), [
    ("seed", "zero", "is not an integer"), ("val_accuracy", "high", "is not a number"),
    ("policy", "[[4.5, 8]]", "bit width 4.5 is not an integer"), ("final_test_accuracies", "{}", "expected a list"),
    ("reward_evaluations", "2.5", "not a whole number")])
def test_a_malformed_row_names_the_file_line_and_column(tmp_path: Path, column: str, text: str, expected: str) -> None:
    path = tmp_path / "runs.csv"
    path.write_text("method,kind,seed,val_accuracy,policy,final_test_accuracies,reward_evaluations\n"
                    "uniform,baseline,0,0.9,\"[[8, 8]]\",\"[0.9]\",3\n")
    rows = path.read_text().splitlines()
    names = rows[0].split(",")
    good = read_runs(path)[0]
    assert good.final_test_accuracies == (0.9,)
    bad = dict(zip(names, ["random", "baseline", "1", "0.8", "[[4, 4]]", "[0.8]", "2"]))
    bad[column] = text
    with path.open("a") as f:
        f.write(",".join(f'"{bad[n]}"' for n in names) + "\n")
    # the library raises a ValueError (a RecordError) naming the file, line and column; the CLI prints it
    with pytest.raises(ValueError, match=rf"runs\.csv line 3, column '{column}': .*{expected}"):
        read_runs(path)
    with pytest.raises(RecordError, match="column 'kind' is missing"):
        ComparisonRun.from_row({"method": "uniform", "seed": "0"}, "runs.csv line 2")


def test_records_are_read_only_and_index_like_the_old_dict_rows() -> None:
    run = ComparisonRun(method="uniform", kind="baseline", seed=2, reward_evaluations=4)
    assert run["method"] == "uniform" and run["seed"] == 2 and run["reward_evaluations"] == 4
    with pytest.raises(KeyError):
        run["no_such_column"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.seed = 3  # type: ignore[misc]


def test_typed_values_and_the_json_form_give_the_same_record() -> None:
    # what run_one hands over: numpy numbers and lists; the record holds plain Python types
    run = ComparisonRun.from_dict({"method": "random", "kind": "baseline", "seed": np.int64(1), "status": "ok",
                                   "val_accuracy": np.float64(0.5), "final_test_accuracies": [np.float64(0.25)],
                                   "reward_evaluations": np.int64(3), "policy": [[np.int64(4), 8]],
                                   "wall_time_s": 1.0})
    assert type(run.seed) is int and type(run.val_accuracy) is float and type(run.reward_evaluations) is int
    assert run.policy == ((4, 8),) and type(run.policy[0][0]) is int and run.final_test_accuracies == (0.25,)
    as_json = json.loads(json.dumps(json_ready(run)))  # a Ray trial's record file
    assert as_json["val_accuracy"] == 0.5 and as_json["policy"] == "[[4, 8]]" and as_json["test_accuracy"] == ""
    assert ComparisonRun.from_dict(as_json) == ComparisonRun.from_dict(run.to_dict())
    assert ComparisonRun.from_dict(as_json).to_row() == run.to_row()
    failed = ComparisonRun.from_dict({"method": "x", "kind": "baseline", "seed": 0, "status": "failed", "error": "E"})
    assert failed.to_dict()["val_accuracy"] == "" and failed.to_row()["wall_time_s"] == ""


def test_summarize_takes_records_and_dicts_alike_and_checks_the_score_name(tmp_path: Path) -> None:
    dicts = [{"method": m, "kind": "baseline", "seed": s, "status": "ok", "final_test_accuracy": a + 0.01 * s,
              "val_accuracy": a, "reward_evaluations": 5, "wall_time_s": 1.0}
             for m, a in (("uniform", 0.8), ("random", 0.9)) for s in range(4)]
    records = [ComparisonRun.from_dict(d) for d in dicts]
    from_dicts = summarize(dicts, ["uniform", "random"], ["uniform", "random"])
    from_records = summarize(records, ["uniform", "random"], ["uniform", "random"])
    assert json.dumps(from_records) == json.dumps(from_dicts)  # as text: NaN (uniform over itself) equals NaN
    assert from_dicts[1]["p_over_uniform"] == 1.0 and from_dicts[1]["evaluations"] == 5.0
    with pytest.raises(ValueError, match="value='accuracy' is not allowed; expected one of: val_accuracy"):
        summarize(records, ["uniform"], ["uniform"], value="accuracy")
    compare_figure(records, ["uniform", "random"], tmp_path / "compare.png", value="final_test_accuracy")
    assert (tmp_path / "compare.png").stat().st_size > 0


def test_json_ready_turns_numpy_and_result_objects_into_plain_values() -> None:
    result = SolveResult(x=np.array([1, 2]), fun=np.float64(0.5), nit=np.int64(3), method="m")
    value = {"a": np.arange(3).reshape(1, 3), "b": (np.float32(0.5), [np.int8(2)]), "r": result, "s": "text"}
    plain = json_ready(value)
    assert plain["a"] == [[0, 1, 2]] and plain["b"] == [0.5, [2]] and plain["s"] == "text"
    assert plain["r"]["x"] == [1, 2] and type(plain["r"]["fun"]) is float and type(plain["r"]["nit"]) is int
    assert json.loads(json.dumps(plain)) == plain
    assert result.to_dict() == plain["r"]  # SolveResult.to_dict is the same conversion

    class HasToDict:
        def to_dict(self) -> dict[str, object]:
            return {"v": np.float64(1.5)}

    assert json_ready([HasToDict()]) == [{"v": 1.5}] and type(json_ready(HasToDict())["v"]) is float
