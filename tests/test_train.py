"""train.py end to end, --resume after a kill, clear errors; agents and reporting helpers."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import quant_envs  # noqa: F401
from agents import load_hyperparams, make_agent, parse_overrides
from agents.reporting import bootstrap_ci, iqm

REPO = Path(__file__).resolve().parents[1]
TINY = ["--env-kwargs", "task=digits-cnn", "finetune_steps=0", "budget_fraction=0.5"]


def run_train(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "train.py"), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def test_train_end_to_end_writes_every_promised_output(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_train(*TINY, "--timesteps", "300", "--seed", "1", "--out", str(out), "--checkpoint-freq", "100")
    assert proc.returncode == 0, proc.stderr
    for name in ("best_policy.json", "evaluations.csv", "summary.png", "model.zip",
                 "checkpoints/state.json", "logs/part-0/progress.csv"):
        assert (out / name).is_file(), name
    state = json.loads((out / "checkpoints" / "state.json").read_text())
    # state.json names the one model file kept, saved at the step it records
    assert state["model"] == f"model-{state['num_timesteps']}.zip"
    assert [p.name for p in (out / "checkpoints").glob("model-*.zip")] == [state["model"]]
    assert list((out / "logs" / "part-0").glob("events.out.tfevents.*"))  # TensorBoard
    summary = json.loads((out / "best_policy.json").read_text())
    rows = list(csv.DictReader((out / "evaluations.csv").open()))
    assert summary["timesteps"] == 300 and summary["episodes"] == len(rows) == 300 // 4  # PPO rollouts of 100 steps
    best = summary["best"]
    assert best["accuracy"] == max(float(r["accuracy"]) for r in rows)
    assert best["budget_used"] <= 1 + 1e-9 and len(best["policy"]) == 4
    # the wall time stays out of info (determinism) but is recorded, from env.last_eval_time_s:
    # > 0 where the policy was retrained, 0 where the shared cache answered (a repeat of a policy)
    times = [float(r["eval_time_s"]) for r in rows]
    assert all(t >= 0 for t in times) and any(t > 0 for t in times)
    assert all(t == 0 for t, r in zip(times, rows) if r["cached"] == "True")
    assert 0 <= summary["best_test_accuracy"] <= 1
    assert (out / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(out) in proc.stdout


def _kill_when_checkpointed(args: list[str], state: Path, at_least: int, extra_s: float = 0.0) -> int:
    """Start ``train.py args``, SIGKILL it once state.json is at ``at_least`` steps (plus ``extra_s``)."""
    proc = subprocess.Popen([sys.executable, str(REPO / "train.py"), *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline and not (state.exists() and json.loads(state.read_text())["num_timesteps"] >= at_least):
        time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read()
    time.sleep(extra_s)  # killed mid-rollout, after the checkpoint
    os.kill(proc.pid, signal.SIGKILL)  # no chance to clean up
    proc.wait()
    return json.loads(state.read_text())["num_timesteps"]


def _run_outputs(run: Path) -> tuple[dict, list[dict], dict]:
    """Policy weights and optimiser state, evaluations.csv (wall-clock column aside), best episode."""
    import io
    import zipfile

    import torch

    with zipfile.ZipFile(run / "model.zip") as z:
        tensors = {name: torch.load(io.BytesIO(z.read(name)), weights_only=True)
                   for name in z.namelist() if name.endswith(".pth")}
    rows = [{k: v for k, v in r.items() if k != "eval_time_s"} for r in csv.DictReader((run / "evaluations.csv").open())]
    best = json.loads((run / "best_policy.json").read_text())["best"]
    best.pop("eval_time_s", None)
    best["final_info"].pop("eval_time_s", None)
    return tensors, rows, best


def _assert_same_run(a: Path, b: Path) -> None:
    import torch

    ta, ra, ba = _run_outputs(a)
    tb, rb, bb = _run_outputs(b)
    assert ta.keys() == tb.keys() and ra == rb and ba == bb

    def flat(x, prefix=""):
        if isinstance(x, dict):
            for k, v in x.items():
                yield from flat(v, f"{prefix}/{k}")
        elif isinstance(x, (list, tuple)):
            for i, v in enumerate(x):
                yield from flat(v, f"{prefix}/{i}")
        else:
            yield prefix, x

    for name in ta:
        fa, fb = dict(flat(ta[name])), dict(flat(tb[name]))
        assert fa.keys() == fb.keys(), name
        for key, va in fa.items():
            vb = fb[key]
            assert torch.equal(va, vb) if torch.is_tensor(va) else va == vb, f"{name}{key}"


def test_resume_after_a_kill_ends_bit_identical_to_an_uninterrupted_run(tmp_path: Path, capsys) -> None:
    """The exact-resume guarantee, quick variant: maskable_ppo killed mid-rollout, resumed, compared with an
    uninterrupted run of the same seed: same weights and optimiser state, evaluations.csv, best policy.
    Only the killed run is a subprocess; share_problem=false keeps this process's runs independent."""
    import train

    # 1500 steps: on a fast CPU 500 were done (about 0.6 s) before the kill 0.3 s after the first checkpoint
    steps = 1500
    args = [*TINY, "share_problem=false", "--timesteps", str(steps), "--seed", "2", "--checkpoint-freq", "200",
            "--no-progress-bar"]
    assert train.main([*args, "--out", str(tmp_path / "whole")]) == 0
    out = tmp_path / "run"
    saved = _kill_when_checkpointed([*args, "--out", str(out)], out / "checkpoints" / "state.json", 200, 0.1)
    assert 200 <= saved < steps and saved % 100 == 0  # checkpoints fall on rollout boundaries (n_steps 100)
    capsys.readouterr()
    # a different setting than the run's is refused; left out, the run's own config.json is used
    assert train.main(["--env-kwargs", "task=digits-mbnet", "--out", str(out), "--resume"]) == 2
    assert "differs from the run's" in capsys.readouterr().err
    assert train.main(["--out", str(out), "--resume", "--no-progress-bar"]) == 0
    assert f"from timestep {saved}" in capsys.readouterr().out
    summary = json.loads((out / "best_policy.json").read_text())
    assert summary["timesteps"] == steps and summary["resumed_from"] == saved
    _assert_same_run(tmp_path / "whole", out)
    assert (out / "logs" / "part-0" / "progress.csv").exists() and (out / "logs" / "part-1" / "progress.csv").exists()
    assert not list(out.rglob(".*.tmp-*"))  # no temporary file of the killed run is left


@pytest.mark.slow
@pytest.mark.parametrize("algo,env,extra,kills", [
    ("maskable_ppo", "quant_envs/MixedPrecision-v0", [], (0, 300, 700)),
    ("ppo", "quant_envs/MixedPrecision-v0", [], (100, 500)),
    ("ddpg_haq", "quant_envs/MixedPrecisionContinuous-v0", ["--hyperparams", "warmup_episodes=10"], (20, 150, 260)),
])
def test_resume_after_several_kills_is_exact(algo: str, env: str, extra: list[str], kills: tuple, tmp_path: Path) -> None:
    args = ["--env", env, "--algo", algo, *TINY, *extra, "--timesteps", "800", "--seed", "5",
            "--checkpoint-freq", "100", "--no-progress-bar"]
    whole = run_train(*args, "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    out = tmp_path / "run"
    state = out / "checkpoints" / "state.json"
    first = True
    for at in kills:  # killed again and again, each time resumed from its last checkpoint
        cmd = [*args, "--out", str(out)] if first else ["--out", str(out), "--resume", "--no-progress-bar"]
        assert _kill_when_checkpointed(cmd, state, at, 0.2) >= at
        first = False
    resumed = run_train("--out", str(out), "--resume", "--no-progress-bar")
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_run(tmp_path / "whole", out)


@pytest.mark.parametrize("damage,needle", [
    ("no_config", "config.json is missing"),
    ("bad_config", "config.json is unreadable"),
    ("no_state", "state.json is missing"),
    ("bad_state", "state.json is unreadable"),
    ("no_model", "(named in state.json) is missing"),
    ("nothing", "config.json is missing"),
])
def test_resume_without_a_sound_checkpoint_is_one_line_never_a_restart(damage: str, needle: str, tmp_path: Path,
                                                                       capsys) -> None:
    import train

    out = tmp_path / "run"
    if damage != "nothing":
        assert train.main([*TINY, "--timesteps", "100", "--checkpoint-freq", "100", "--out", str(out),
                           "--no-progress-bar"]) == 0
        ckpt = out / "checkpoints"
        {"no_config": lambda: (out / "config.json").unlink(),
         "bad_config": lambda: (out / "config.json").write_text("{not json"),
         "no_state": lambda: (ckpt / "state.json").unlink(),
         "bad_state": lambda: (ckpt / "state.json").write_text('{"num_timesteps": 1'),
         "no_model": lambda: [p.unlink() for p in ckpt.glob("model-*.zip")]}[damage]()
        before = (out / "evaluations.csv").read_bytes()
    capsys.readouterr()
    code = train.main(["--out", str(out), "--resume", "--no-progress-bar"])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    if damage != "nothing":
        assert (out / "evaluations.csv").read_bytes() == before  # nothing was started over


def test_a_second_writer_on_the_same_out_is_refused(tmp_path: Path, capsys) -> None:
    import fcntl

    import train

    out = tmp_path / "run"
    out.mkdir()
    with open(out / ".lock", "a+") as held:  # another run holds the folder
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        held.write("4242")
        held.flush()
        code = train.main([*TINY, "--timesteps", "100", "--out", str(out), "--no-progress-bar"])
    err = capsys.readouterr().err
    assert code == 2 and "is in use by another run (pid 4242)" in err and len(err.strip().splitlines()) == 1
    assert not (out / "config.json").exists()  # refused before writing anything


@pytest.mark.parametrize("args,needle", [
    (["--algo", "dqn"], "--algo"),
    (["--env", "quant_envs/Nope-v0"], "not a registered environment"),
    (["--env-kwargs", "task=digits-cnn", "budget_metric=area"], "budget_metric='area' is not allowed"),
    (["--env-kwargs", "task=digits-cnn", "no_such_arg=1"], "no_such_arg"),
    (["--env-kwargs", "task"], "expected key=value"),
    (["--algo", "ddpg_haq", "--env-kwargs", "task=digits-cnn"], "needs a Box action space"),
    (["--algo", "ddpg_haq", "--env", "quant_envs/CVT1D-v0"], "needs a Box action space of shape (1,)"),
    (["--algo", "maskable_ppo", "--env", "quant_envs/CVT1D-v0"], "needs a Discrete action space"),
    (["--hyperparams", "n_steps=0"], "n_steps=0 is not allowed"),
    (["--hyperparams", "n_epochs=0"], "n_epochs=0 is not allowed"),
    (["--hyperparams", "batch_size=0"], "batch_size=0 is not allowed"),
    (["--hyperparams", "learning_rate=abc"], "learning_rate='abc' must be a number"),
    (["--hyperparams", "gamma=2"], "gamma=2.0 is not allowed; expected a number >= 0.0 and <= 1.0"),
    (["--algo", "ddpg_haq", "--env", "quant_envs/MixedPrecisionContinuous-v0", "--hyperparams", "tau=0"],
     "tau=0.0 is not allowed"),
    (["--env-kwargs", "task=digits-cnn", 'two_steps_per_layer="no"'], "two_steps_per_layer='no' must be a bool"),
    (["--timesteps", "0"], "--timesteps"),
    (["--n-envs", "0"], "--n-envs"),
    (["--seed", "-1"], "--seed"),
    (["--max-evaluations", "0"], "--max-evaluations"),
    (["--checkpoint-freq", "0"], "--checkpoint-freq"),
])
def test_bad_input_gives_one_clear_line(args: list[str], needle: str, tmp_path: Path, capsys) -> None:
    import train

    try:
        code = train.main([*args, "--out", str(tmp_path / "r")])
    except SystemExit as exc:  # argparse's own errors (unknown --algo choice)
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if "error" in line]) == 1


def test_bad_input_from_the_command_line_has_no_traceback(tmp_path: Path) -> None:
    proc = run_train("--env-kwargs", "task=digits-cnn", "budget_fraction=0.001", "--out", str(tmp_path / "r"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("train.py: error: ") and "infeasible" in proc.stderr


def test_compare_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    proc = run_train("compare", *TINY, "--agents", "maskable_ppo", "--baselines", "uniform", "random",
                     "--seeds", "2", "--max-evaluations", "6", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    for name in ("results.md", "summary.csv", "runs.csv", "compare.png"):
        assert (out / name).is_file(), name
    runs = list(csv.DictReader((out / "runs.csv").open()))
    assert len(runs) == 2 * 3
    assert all(int(r["reward_evaluations"]) <= 6 and float(r["budget_used"]) <= 1 + 1e-9 for r in runs)
    table = (out / "results.md").read_text()
    assert "| maskable_ppo |" in table and "| uniform |" in table and "IQM" in table
    # --report-only redraws the same table from runs.csv without running anything
    (out / "results.md").unlink()
    again = run_train("compare", *TINY, "--out", str(out), "--report-only")
    assert again.returncode == 0, again.stderr
    assert (out / "results.md").read_text() == table


def test_compare_rejects_an_unknown_id_in_one_line(tmp_path: Path) -> None:
    proc = run_train("compare", "--env", "quant_envs/Nope-v0", "--out", str(tmp_path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("train.py: error: ") and "not a registered environment" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------------ agents
def test_hyperparams_come_from_yaml_and_overrides_win() -> None:
    hp = load_hyperparams("maskable_ppo", "quant_envs/MixedPrecision-v0")
    assert hp["n_steps"] == 100 and hp["gamma"] == 1.0
    assert load_hyperparams("maskable_ppo", "some/Other-v0")["n_steps"] == 256  # the default entry
    env = gym.make("quant_envs/MixedPrecision-v0", task="digits-cnn", finetune_steps=0)
    model = make_agent("maskable_ppo", env, n_steps=64, batch_size=32, seed=0)
    assert model.n_steps == 64 and model.gamma == 1.0
    assert parse_overrides(["lr=1e-3", "arch=[64, 64]", "flag=true"]) == {"lr": 1e-3, "arch": [64, 64], "flag": True}
    with pytest.raises(ValueError, match="algo="):
        make_agent("a2c", env)
    with pytest.raises(ValueError, match="bad hyperparameter"):
        make_agent("ppo", env, not_a_param=3)


def test_ddpg_haq_has_haqs_settings() -> None:
    env = gym.make("quant_envs/MixedPrecisionContinuous-v0", task="digits-cnn", finetune_steps=0, budget_fraction=0.5)
    model = make_agent("ddpg_haq", env, seed=0)
    # HAQ's lib/rl/ddpg.py: hidden 300/300, lr 1e-4 / 1e-3, tau 0.01, discount 1, batch 64, 20 warm-up episodes
    assert model.policy.actor.mu[0].out_features == 300 and model.policy.actor.mu[2].out_features == 300
    assert model.tau == 0.01 and model.gamma == 1.0 and model.batch_size == 64
    assert model.learning_starts == 20 * env.unwrapped.num_steps
    model.learn(30 * env.unwrapped.num_steps)
    assert model.actor.optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)
    assert model.critic.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)
    # sigma 0.5 decayed x0.99 for each episode after the warm-up
    decayed = model.episodes_done - 20
    assert model.noise_sigma == pytest.approx(0.5 * 0.99 ** decayed)
    assert model.reward_baseline is not None


def test_reporting_statistics_against_direct_computation() -> None:
    x = [0.90, 0.95, 0.96, 0.97, 0.99, 0.50, 0.97, 0.96]
    s = sorted(x)
    assert iqm(x) == pytest.approx(np.mean(s[2:6]))  # the middle 50% of 8 runs
    lo, hi = bootstrap_ci(x)
    assert lo < np.mean(x) < hi and hi - lo < 0.3
    assert bootstrap_ci([0.9, 0.9, 0.9]) == (0.9, 0.9)


def test_resume_restores_the_replay_buffer_of_off_policy_agents(tmp_path: Path) -> None:
    import train

    kw = {"env_id": "quant_envs/MixedPrecisionContinuous-v0", "algo": "ddpg_haq", "seed": 0,
          "env_kwargs": {"task": "digits-cnn", "finetune_steps": 0, "budget_fraction": 0.5},
          "hyperparams": {"warmup_episodes": 2}, "out": tmp_path / "ddpg", "checkpoint_freq": 40,
          "progress_bar": False, "verbose": False, "test_best": False}
    first = train.train(timesteps=80, **kw)
    state = json.loads((tmp_path / "ddpg" / "checkpoints" / "state.json").read_text())
    assert first["timesteps"] == 80 and state["replay_buffer"] == "replay_buffer-80.pkl"
    second = train.train(timesteps=120, resume=True, **kw)
    assert second["resumed_from"] == 80 and second["timesteps"] == 120
    from stable_baselines3.common.env_util import make_vec_env

    from agents.callbacks import load_checkpoint
    from agents.ddpg_haq import HAQDDPG

    env = make_vec_env(kw["env_id"], n_envs=1, env_kwargs=kw["env_kwargs"])
    model, _ = load_checkpoint(tmp_path / "ddpg" / "checkpoints", HAQDDPG, env)
    assert model.replay_buffer.size() == 120  # the 80 transitions from before the resume are kept
    assert model.episodes_done == 120 // 4


def test_console_script_works_outside_the_repository(tmp_path: Path) -> None:
    """``quant-envs-train`` (pyproject's [project.scripts]) runs from any folder, with train.py's CLI."""
    script = Path(sys.executable).parent / "quant-envs-train"
    assert script.is_file(), "reinstall with pip install -e . to get the console script"
    proc = subprocess.run([str(script), "--env", "quant_envs/NoSuchEnv-v0", "--out", str(tmp_path / "r")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.startswith("train.py: error: --env 'quant_envs/NoSuchEnv-v0'")
