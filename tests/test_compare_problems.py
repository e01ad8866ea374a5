"""train.py compare on every problem: adapters, plan -> execute -> report, resume, bad input.

Tiny budgets throughout (1-2 seeds, a few hundred agent steps, small instances); the mixed-precision
path has its own tests (test_mixed_precision_compare.py, test_train.py's end-to-end compare).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import quant_envs
from agents.cli import main
from agents.compare_adapters import ADAPTERS, adapter_for
from agents.compare_backends import ProcessPoolBackend, SerialBackend, make_backend
from agents.compare_plan import CompareConfig, plan_runs
from agents.comparison import compare
from agents.records import OBJECTIVE_RUN_FIELDS, ObjectiveRun


def _runs(out: Path) -> list[dict[str, str]]:
    with open(out / "runs.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["compare", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ------------------------------------------------------------------------------ one id per problem
def test_compare_on_a_compander_id_scores_in_db(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from baselines.compander import solve

    out = tmp_path / "compander"
    code, printed, err = _cli(capsys, "--env", "quant_envs/ScalarQuantizer-v0", "--env-kwargs", "levels=4",
                              "--agents", "ppo", "--baselines", "lloyd_max", "mu_law", "--seeds", "2",
                              "--max-evaluations", "6", "--timesteps", "300", "--out", str(out))
    assert code == 0, err
    runs = _runs(out)
    assert tuple(runs[0]) == OBJECTIVE_RUN_FIELDS
    assert [(r["method"], r["seed"]) for r in runs] == [("ppo", "0"), ("ppo", "1"), ("lloyd_max", "0"),
                                                        ("lloyd_max", "1"), ("mu_law", "0"), ("mu_law", "1")]
    assert all(r["status"] == "ok" and r["unit"] == "dB" for r in runs)
    sqnr = {(r["method"], r["seed"]): float(r["objective"]) for r in runs}
    # the solver rows are the solvers' own answers on the environment's source (gaussian) and levels
    assert sqnr[("lloyd_max", "0")] == pytest.approx(solve("gaussian", "lloyd_max", 4).sqnr_db, abs=1e-9)
    assert sqnr[("mu_law", "1")] == pytest.approx(solve("gaussian", "mu_law", 4).sqnr_db, abs=1e-9)
    # Lloyd-Max is the optimal 4-level quantizer of the gaussian (a log-concave density): nothing beats it
    assert max(sqnr[("ppo", "0")], sqnr[("ppo", "1")]) <= sqnr[("lloyd_max", "0")] + 1e-6
    assert all(int(r["evaluations"]) <= 6 + 1 for r in runs if r["kind"] == "agent")  # + the final episode
    table = (out / "results.md").read_text()
    assert "SQNR IQM [dB]" in table and "higher is better" in table and "| ppo | agent | 2 | 0 |" in table
    assert (out / "compare.png").is_file() and (out / "summary.csv").is_file()
    assert "SQNR IQM [dB]" in printed


def test_compare_on_a_feel_id_scores_training_time_on_one_scenario(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from baselines.feel import solve

    out = tmp_path / "feel"
    code, _, err = _cli(capsys, "--env", "quant_envs/FeelAllocation-v2", "--env-kwargs", "num_devices=4",
                        "--agents", "ppo", "--baselines", "ao", "equal_bandwidth", "--seeds", "1",
                        "--max-evaluations", "8", "--timesteps", "64", "--out", str(out))
    assert code == 0, err
    settings = json.loads((out / "compare.json").read_text())
    assert settings["env_kwargs"] == {"num_devices": 4, "scenario_seed": 0}  # every run on the same scenario
    times = {r["method"]: float(r["objective"]) for r in _runs(out)}
    env = gym.make("quant_envs/FeelAllocation-v2", num_devices=4, scenario_seed=0)
    env.reset(seed=0)
    assert times["ao"] == pytest.approx(solve(env.unwrapped.scenario, "ao").total_time, rel=1e-12)
    assert times["ao"] <= times["equal_bandwidth"]  # AO optimises the bandwidth equal_bandwidth fixes
    assert np.isfinite(times["ppo"]) and times["ppo"] > 0
    assert "training time T IQM [s]" in (out / "results.md").read_text()


def test_compare_on_a_cvt_id_scores_the_energy_ratio(tmp_path: Path) -> None:
    out = tmp_path / "cvt"
    result = compare(env_id="quant_envs/CVT1D-v1", env_kwargs={"k": 4}, agents=["ppo"], baselines=["lloyd", "lbfgs"],
                     seeds=2, max_evaluations=4, timesteps=200, out=out)
    ratios = {(r.method, r.seed): r.objective for r in result["runs"]}
    assert all(r.ok and r.unit == "E/E*" for r in result["runs"])
    # a 1-D linear density is log-concave: its CVT is unique and E* its energy, so E/E* >= 1 for every
    # run, and the solvers (to a relative gradient of 1e-8) land on it
    assert min(ratios.values()) >= 1 - 1e-9
    for seed in (0, 1):
        assert ratios[("lbfgs", seed)] == pytest.approx(1.0, abs=1e-6)
    solution = next(r.solution for r in result["runs"] if r.method == "lbfgs")
    assert solution is not None and len(solution) == 4  # the generators of the CVT found
    lower = {row["method"]: row for row in result["summary"]}
    assert lower["ppo"]["best_baseline"] in ("lloyd", "lbfgs")


def test_compare_on_the_multi_hardware_id_averages_each_devices_best(tmp_path: Path) -> None:
    from baselines.mixed_precision import solve

    kw = {"task": "digits-cnn", "finetune_steps": 0, "hardware": ["bitfusion", "bismo-edge"]}
    result = compare(env_id="quant_envs/MixedPrecisionMultiHardware-v0", env_kwargs=kw, agents=["maskable_ppo"],
                     baselines=["random"], seeds=1, max_evaluations=4, timesteps=64, out=tmp_path / "mh")
    agent, random_search = result["runs"]
    assert agent.ok and random_search.ok and agent.unit == "fraction"
    assert agent.evaluations == 4 + 2  # training episodes, then one pinned episode per device
    # the solver row is the mean of random search's best accuracy on each device (the environment's
    # problem on that device, with its own budget), each searched on its own
    env = gym.make("quant_envs/MixedPrecisionMultiHardware-v0", **kw).unwrapped
    expected = {}
    for device in ("bitfusion", "bismo-edge"):
        env.reset(seed=0, options={"hardware": device})
        assert env.accelerator.name == device
        expected[device] = solve(env.inner, "random", max_evaluations=4, seed=0).accuracy
    assert random_search.objective == pytest.approx(np.mean(list(expected.values())), abs=1e-12)
    with pytest.raises(ValueError, match="table='digits-cnn' is not allowed"):
        compare(env_id="quant_envs/MixedPrecisionMultiHardware-v0", env_kwargs={"table": "digits-cnn"},
                out=tmp_path / "t")


def test_resume_keeps_the_finished_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "resume"
    kw = dict(env_id="quant_envs/CVT1D-v1", env_kwargs={"k": 3}, agents=["ppo"], baselines=["lloyd"],
              max_evaluations=2, timesteps=64, out=out)
    compare(seeds=1, **kw)
    first = {(r["method"], r["seed"]): r for r in _runs(out)}
    capsys.readouterr()
    compare(seeds=2, resume=True, **kw)
    assert "--resume: 2 finished runs kept, 2 to run" in capsys.readouterr().out
    rows = _runs(out)
    assert sorted((r["method"], r["seed"]) for r in rows) == [("lloyd", "0"), ("lloyd", "1"), ("ppo", "0"),
                                                              ("ppo", "1")]
    for r in rows:  # the kept runs are the earlier rows, wall time included (not rerun)
        if r["seed"] == "0":
            assert r == first[(r["method"], "0")]
    with pytest.raises(ValueError, match="other settings"):
        compare(seeds=2, resume=True, **{**kw, "max_evaluations": 3})
    # report_only rebuilds the same table from runs.csv
    table = (out / "results.md").read_text()
    (out / "results.md").unlink()
    compare(report_only=True, **kw)
    assert (out / "results.md").read_text() == table


# ------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kwargs,error,needle", [
    ({"env_id": "quant_envs/Nope-v0"}, ValueError, "not a registered environment"),
    ({"env_id": "quant_envs/CVT1D-v1", "baselines": ["simplex"]}, ValueError,
     "baselines: 'simplex' is not allowed on quant_envs/CVT1D-v1; expected some of: lloyd, lbfgs, multigrid"),
    ({"env_id": "quant_envs/CVT1D-v1", "agents": ["dqn"]}, ValueError, "agents: 'dqn' is not allowed"),
    ({"env_id": "quant_envs/CVT1D-v1", "agents": ["maskable_ppo"]}, ValueError, "needs a Discrete action space"),
    ({"env_id": "quant_envs/CVT1D-v1", "seeds": 0}, ValueError, "seeds=0 is not allowed"),
    ({"env_id": "quant_envs/CVT1D-v1", "seeds": "2"}, TypeError, "seeds='2' is not allowed"),
    ({"env_id": "quant_envs/CVT1D-v1", "final_finetune_steps": 3}, ValueError, "has no retraining"),
    ({"env_id": "quant_envs/CVT1D-v1", "env_kwargs": {"k": 0}}, ValueError, "k"),
    ({"env_id": "quant_envs/CVT1D-v1", "jobs": 0}, ValueError, "jobs=0 is not allowed"),
])
def test_bad_input_is_a_value_or_type_error_from_the_library(kwargs: dict, error: type, needle: str,
                                                            tmp_path: Path) -> None:
    with pytest.raises(error, match=needle.replace("(", r"\(").replace(")", r"\)")) as info:
        compare(out=tmp_path / "x", **kwargs)
    assert "--" not in str(info.value)  # no command-line wording in library errors
    assert not (tmp_path / "x" / "runs.csv").exists()


@pytest.mark.parametrize("args,needle", [
    (["--env", "quant_envs/ScalarQuantizer-v0", "--baselines", "simplex"], "'simplex' is not allowed"),
    (["--env", "quant_envs/FeelAllocation-v2", "--agents", "dqn"], "'dqn' is not allowed"),
    (["--env", "quant_envs/Nope-v0"], "not a registered environment"),
])
def test_bad_input_from_the_cli_is_one_line_and_exit_2(args: list[str], needle: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(capsys, *args, "--out", str(tmp_path / "x"))
    assert code == 2 and needle in err and "Traceback" not in err
    assert err.startswith("train.py: error: ") and len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------------- plan, backends, adapters
def test_every_registered_id_has_an_adapter() -> None:
    expected = {"quant_envs/MixedPrecision-v1": "mixed_precision", "quant_envs/MixedPrecisionTable-v0":
                "mixed_precision_table", "quant_envs/SplineCompander-v0": "compander",
                "quant_envs/ScalarQuantizer-v0": "compander", "quant_envs/FeelAllocation-v1": "feel_allocation",
                "quant_envs/FeelAllocation-v2": "feel_allocation", "quant_envs/FeelTraining-v0": "feel_training",
                "quant_envs/CVT2D-v0": "cvt", "quant_envs/CVT1D-v1": "cvt",
                "quant_envs/MixedPrecisionTableContinuous-v0": "mixed_precision_table"}
    for env_id, name in expected.items():
        assert adapter_for(env_id).name == name, env_id
    assert adapter_for("quant_envs/MixedPrecisionMultiHardware-v0").name == "mixed_precision_multi_hardware"
    for env_id in quant_envs.ENV_IDS:  # exactly one adapter takes each id
        assert sum(a.handles(env_id) for a in ADAPTERS) == 1, env_id


def test_plan_is_seed_major_and_skips_finished_runs() -> None:
    runs = plan_runs("cvt", ["ppo"], ["lloyd", "lbfgs"], 2, {"env_id": "x"}, done={("lloyd", 0)})
    assert [(r.kind, r.method, r.seed) for r in runs] == [
        ("agent", "ppo", 0), ("baseline", "lbfgs", 0), ("agent", "ppo", 1), ("baseline", "lloyd", 1),
        ("baseline", "lbfgs", 1)]
    assert runs[0].as_trial() == {"problem": "cvt", "kind": "agent", "method": "ppo", "seed": 0,
                                  "settings": {"env_id": "x"}}
    config = CompareConfig(env_id="quant_envs/CVT1D-v1", agents=["ppo"], env_kwargs={"k": 3})
    assert config.agents == ("ppo",) and config.env_kwargs == {"k": 3}
    with pytest.raises(TypeError, match="env_kwargs"):
        CompareConfig(env_kwargs=["k=3"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="backend='dask' is not allowed; expected one of: local, ray"):
        make_backend("dask")


@pytest.mark.slow  # spawned workers import torch and SB3 afresh: about 25 s on the shared 2 cores
def test_serial_and_process_pool_backends_yield_the_same_records(tmp_path: Path) -> None:
    adapter = adapter_for("quant_envs/CVT1D-v1")
    settings = adapter.prepare(CompareConfig(env_id="quant_envs/CVT1D-v1", env_kwargs={"k": 3}), tmp_path)
    specs = plan_runs(adapter.name, [], ["lloyd", "lbfgs"], 2, settings)
    serial: list[ObjectiveRun] = []
    pooled: list[ObjectiveRun] = []
    SerialBackend().execute(specs, serial.append)
    ProcessPoolBackend(2).execute(specs, pooled.append)

    def key(r: ObjectiveRun) -> tuple:
        return r.method, r.seed, r.objective, r.solution, r.evaluations

    assert len(serial) == 4 and all(r.ok for r in serial)
    assert sorted(map(key, serial)) == sorted(map(key, pooled))
