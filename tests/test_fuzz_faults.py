"""Fuzz and fault suite: random unmasked actions on every id, bad constructor arguments,
damaged caches, unwritable outputs of every mixed-precision command line.

The long variants (10^4 steps per id) run under ``-m slow``.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_env_api import FAST_KWARGS  # the same test-size configurations as the API checks
from torch import nn

import quant_envs
from quant_envs.mixed_precision.model_cache import _FORMAT, load_or_train, state_digest
from quant_envs.mixed_precision.tasks import make_task

ENV_IDS = sorted(quant_envs.ENV_IDS)


# ---------------------------------------------------------------------------------------- fuzzing
def _all_finite(value) -> bool:
    """True when every number inside ``value`` (nested dicts, lists, arrays) is finite."""
    if isinstance(value, dict):
        return all(_all_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_all_finite(v) for v in value)
    if isinstance(value, np.ndarray) and value.dtype.kind in "fc":
        return bool(np.all(np.isfinite(value)))
    if isinstance(value, (float, np.floating)):
        return math.isfinite(value)
    return True


def _fuzz(env_id: str, steps: int, seed: int = 0) -> int:
    """``steps`` uniformly random actions (masks ignored); returns the number of finished episodes."""
    env = gym.make(env_id, **FAST_KWARGS.get(env_id, {}))
    env.action_space.seed(seed)
    obs, info = env.reset(seed=seed)
    assert env.observation_space.contains(obs), (env_id, obs)
    episodes = 0
    for t in range(steps):
        action = env.action_space.sample()
        obs, reward, terminated, truncated, info = env.step(action)
        where = f"{env_id} step {t} action {action!r}"
        assert env.observation_space.contains(obs), f"{where}: observation {obs} outside {env.observation_space}"
        assert isinstance(reward, (float, np.floating)) and math.isfinite(reward), f"{where}: reward {reward!r}"
        assert _all_finite(info), f"{where}: non-finite value in info {info}"
        if terminated or truncated:
            episodes += 1
            obs, info = env.reset()
            assert env.observation_space.contains(obs), (env_id, obs)
    env.close()
    return episodes


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_random_unmasked_actions_never_crash_or_leave_the_spaces(env_id: str) -> None:
    # 500 steps per id (4000 in all): every id ends at least one episode within them
    assert _fuzz(env_id, 500) >= 1


@pytest.mark.slow
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_random_unmasked_actions_long(env_id: str) -> None:
    assert _fuzz(env_id, 10_000, seed=1) >= 1


# ------------------------------------------------------------------------- bad constructor arguments
#: (env id, keyword arguments, exception, regex the message must match: it names the argument).
#: Other environments add their rows here; each row builds nothing heavy (checks come first).
MP = "quant_envs/MixedPrecision-v0"
MPC = "quant_envs/MixedPrecisionContinuous-v0"
BAD_ARGUMENTS: list[tuple[str, dict, type[Exception], str]] = [
    (MP, {"budget_fraction": "0.5"}, TypeError, r"budget_fraction='0.5' must be a number, got str"),
    (MP, {"budget": "0.001"}, TypeError, r"budget='0.001' must be a number"),
    (MP, {"budget_fraction": 0.0}, ValueError, r"budget_fraction=0.0 is not allowed; expected a number > 0"),
    (MP, {"budget_fraction": float("nan")}, ValueError, r"budget_fraction=nan .*finite"),
    (MP, {"budget": -1.0}, ValueError, r"budget=-1.0 is not allowed"),
    (MP, {"budget_fraction": True}, TypeError, r"budget_fraction=True must be a number"),
    (MP, {"two_steps_per_layer": "no"}, TypeError, r"two_steps_per_layer='no' must be a bool"),
    (MP, {"keep_first_last_8bit": "False"}, TypeError, r"keep_first_last_8bit='False' must be a bool"),
    (MP, {"keep_first_last_8bit": 1}, TypeError, r"keep_first_last_8bit=1 must be a bool"),
    (MP, {"share_problem": "yes"}, TypeError, r"share_problem='yes' must be a bool"),
    (MP, {"bits": [1]}, ValueError, r"bits=\[1\] is not allowed: 1 is outside 2\.\.8"),
    (MP, {"bits": [2, 9]}, ValueError, r"bits=\[2, 9\] is not allowed: 9 is outside 2\.\.8"),
    (MP, {"bits": []}, ValueError, r"bits=\[\] is not allowed; expected at least one width"),
    (MP, {"bits": "2345"}, TypeError, r"bits='2345' must be a list of integers in 2\.\.8"),
    (MP, {"bits": [4.0, 8]}, TypeError, r"bits=\[4\.0, 8\] must be a list of integers.*float"),
    (MP, {"bits": 4}, TypeError, r"bits=4 must be a list of integers"),
    (MP, {"task_kwargs": "x"}, TypeError, r"task_kwargs='x' must be a dict"),
    (MP, {"task_kwargs": {1: 2}}, TypeError, r"task_kwargs=.*non-string keys"),
    (MP, {"finetune_steps": "20"}, TypeError, r"finetune_steps='20' must be an integer"),
    (MP, {"finetune_steps": -1}, ValueError, r"finetune_steps=-1 is not allowed"),
    (MP, {"eval_seed": 1.5}, TypeError, r"eval_seed=1.5 must be an integer"),
    (MP, {"cache_size": -3}, ValueError, r"cache_size=-3 is not allowed"),
    (MP, {"batch": 0}, ValueError, r"batch=0 is not allowed"),
    (MP, {"reward_scale": "0.1"}, TypeError, r"reward_scale='0.1' must be a number"),
    (MP, {"reward_scale": 0}, ValueError, r"reward_scale=0.0 is not allowed"),
    (MP, {"budget_metric": "area"}, ValueError, r"budget_metric='area' is not allowed"),
    (MP, {"eval_split": "dev"}, ValueError, r"eval_split='dev' is not allowed"),
    (MP, {"invalid_action": "ignore"}, ValueError, r"invalid_action='ignore' is not allowed"),
    (MP, {"render_mode": "text"}, ValueError, r"render_mode='text' is not allowed"),
    (MP, {"task": 3}, TypeError, r"task=3 must be a string"),
    (MP, {"task": "mnist-vit"}, ValueError, r"task='mnist-vit' is not allowed"),
    (MP, {"cache_dir": 5}, TypeError, r"cache_dir=5 must be a path"),
    (MPC, {"budget_enforcement": "clip"}, ValueError, r"budget_enforcement='clip' is not allowed"),
    (MPC, {"two_steps_per_layer": "no"}, TypeError, r"two_steps_per_layer='no' must be a bool"),
]


@pytest.mark.filterwarnings("ignore:.*render_mode='text'")  # gymnasium's own warning, before ours
@pytest.mark.parametrize("env_id,kwargs,error,match", BAD_ARGUMENTS,
                         ids=[f"{e.split('/')[-1]}-{next(iter(k))}-{i}" for i, (e, k, _, _) in enumerate(BAD_ARGUMENTS)])
def test_bad_constructor_argument_is_named(env_id: str, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        gym.make(env_id, **{**FAST_KWARGS.get(env_id, {}), **kwargs})


NUMERIC_ARGUMENTS = ("budget_fraction", "budget", "finetune_steps", "eval_seed", "cache_size", "batch", "reward_scale")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(NUMERIC_ARGUMENTS), text=st.text(max_size=8))
def test_a_string_is_never_a_number(name: str, text: str) -> None:
    # "0.5", "1e-3", "20": whatever the text, a numeric argument refuses it with a TypeError naming it
    with pytest.raises(TypeError, match=f"^{name}="):
        gym.make(MP, **{**FAST_KWARGS[MP], name: text})


@settings(max_examples=30, deadline=None)
@given(text=st.text(max_size=8))
def test_a_string_is_never_a_boolean(text: str) -> None:
    with pytest.raises(TypeError, match="^two_steps_per_layer="):
        gym.make(MP, **{**FAST_KWARGS[MP], "two_steps_per_layer": text})


# ------------------------------------------------------------------------------------ damaged caches
def _flip_two_bytes_inside(path: Path, tensor: torch.Tensor) -> None:
    """Flip two bytes of ``tensor``'s stored data inside the file (torch stores tensors uncompressed)."""
    data = bytearray(path.read_bytes())
    raw = tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    at = data.find(raw)
    assert at >= 0 and data.find(raw, at + 1) < 0, "the tensor's bytes are found exactly once"
    for i in (at + 5, at + len(raw) // 2):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_flipped_bytes_in_a_cached_model_are_detected_and_rebuilt(tmp_path: Path) -> None:
    good = make_task("digits-cnn")  # the session's cache: the reference float model and accuracy
    name, weights = next((n, t) for n, t in good.model.state_dict().items() if t.ndim == 4)  # a conv weight
    cached = [p for p in (Path(os.environ["QUANT_ENVS_CACHE"]) / "models").glob("digits-cnn-*.pt")
              if torch.equal(torch.load(p, weights_only=True)["state_dict"][name], weights)][0]
    models = tmp_path / "models"
    models.mkdir()
    damaged = models / cached.name
    damaged.write_bytes(cached.read_bytes())
    _flip_two_bytes_inside(damaged, weights)
    with pytest.warns(UserWarning, match="does not match its SHA-256 digest") as record:
        rebuilt = make_task("digits-cnn", cache_dir=tmp_path)
    assert len([w for w in record if "not used" in str(w.message)]) == 1  # reported once
    # rebuilt, not used: the same weights and float accuracy as the intact model (training is seeded)
    for name, tensor in good.model.state_dict().items():
        assert torch.equal(rebuilt.model.state_dict()[name], tensor), name
    assert rebuilt.float_accuracy("val") == good.float_accuracy("val")
    # and the reward of a policy is the one the intact model gives
    kwargs = {**FAST_KWARGS[MP], "budget_fraction": 1.0, "share_problem": False}
    rewards = []
    for cache_dir in (None, tmp_path):
        env = gym.make(MP, **kwargs, cache_dir=cache_dir)
        env.reset(seed=0)
        for _ in range(env.unwrapped.num_steps):
            _, reward, terminated, _, _ = env.step(len(env.unwrapped.bits) - 1)  # all 8-bit
        rewards.append(reward)
    assert terminated and rewards[0] == rewards[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rebuilt file is trusted again, silently
        make_task("digits-cnn", cache_dir=tmp_path)


def _toy_train(calls: list):
    def train(model: nn.Module) -> dict:
        calls.append(1)
        with torch.no_grad():
            model.weight.fill_(0.5)
            model.bias.zero_()
        return {"float_val_accuracy": 0.9}
    return train


def test_nan_weights_with_a_consistent_digest_are_rebuilt(tmp_path: Path) -> None:
    calls: list = []
    load_or_train("toy", lambda: nn.Linear(3, 2), _toy_train(calls), tmp_path)
    path = tmp_path / "models" / "toy.pt"
    blob = torch.load(path, weights_only=True)
    blob["state_dict"]["weight"][0, 1] = float("nan")
    blob["sha256"] = state_digest(blob["state_dict"], blob["meta"])  # digest agrees: only the NaN is wrong
    torch.save(blob, path)
    with pytest.warns(UserWarning, match="NaN or inf in weight"):
        model, meta = load_or_train("toy", lambda: nn.Linear(3, 2), _toy_train(calls), tmp_path)
    assert len(calls) == 2 and torch.all(model.weight == 0.5) and meta == {"float_val_accuracy": 0.9}


@pytest.mark.parametrize("damage", ["meta", "truncate", "old_format", "garbage"])
def test_damaged_cache_files_are_never_used(damage: str, tmp_path: Path) -> None:
    calls: list = []
    load_or_train("toy", lambda: nn.Linear(3, 2), _toy_train(calls), tmp_path)
    path = tmp_path / "models" / "toy.pt"
    blob = torch.load(path, weights_only=True)
    if damage == "meta":  # the recorded float accuracy edited: covered by the digest
        blob["meta"]["float_val_accuracy"] = 0.99
        torch.save(blob, path)
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "old_format":
        blob["format"] = _FORMAT - 1
        torch.save(blob, path)
    else:
        path.write_bytes(b"not a torch file at all")
    with pytest.warns(UserWarning, match="is not used"):
        _, meta = load_or_train("toy", lambda: nn.Linear(3, 2), _toy_train(calls), tmp_path)
    assert len(calls) == 2 and meta["float_val_accuracy"] == 0.9


@pytest.mark.parametrize("where", ["file", "under_file", "proc"])
def test_unwritable_cache_dir_is_refused_before_training(where: str, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    cache_dir = {"file": blocker, "under_file": blocker / "sub", "proc": Path("/proc/quant_envs_cache")}[where]
    calls: list = []
    with pytest.raises(ValueError, match="cache_dir .*(file|not a writable directory)"):
        load_or_train("toy", lambda: nn.Linear(3, 2), _toy_train(calls), cache_dir)
    assert calls == []  # no training was wasted


# -------------------------------------------------------------------------------- unwritable outputs
def _unwritable(kind: str, tmp_path: Path) -> str:
    """An output path no writer can use: under a regular file, an existing file, a virtual file system."""
    blocker = tmp_path / "a_file"
    blocker.write_text("keep me")
    return {"under_file": str(blocker / "out"), "file": str(blocker), "proc": "/proc/quant_envs_out", "empty": ""}[kind]


def _one_line_exit_2(main, argv: list[str], flag: str, capsys) -> None:
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert flag in err, err


@pytest.mark.parametrize("kind", ["under_file", "file", "proc", "empty"])
def test_train_refuses_an_unwritable_out_before_any_work(kind: str, tmp_path: Path, capsys) -> None:
    import train

    cache = tmp_path / "cache"  # a float model built before the refusal would land here
    _one_line_exit_2(train.main, ["--env-kwargs", "task=digits-cnn", f"cache_dir={cache}", "--timesteps", "10",
                                  "--out", _unwritable(kind, tmp_path)], "--out", capsys)
    assert not cache.exists()
    assert (tmp_path / "a_file").read_text() == "keep me"


@pytest.mark.parametrize("kind", ["under_file", "file", "proc", "empty"])
def test_cost_table_refuses_an_unwritable_out_before_any_work(kind: str, tmp_path: Path, capsys, monkeypatch) -> None:
    from quant_envs.mixed_precision import cost_table_cli

    built = []
    monkeypatch.setattr(cost_table_cli, "_build_arch", lambda name: built.append(name))
    out = _unwritable(kind, tmp_path)
    if kind == "file":
        out = str(tmp_path / "a_file")
    _one_line_exit_2(cost_table_cli.main, ["--arch", "resnet18", "--out", out], "--out", capsys)
    assert built == []  # refused before the model was built


@pytest.mark.parametrize("argv,flag", [
    (["--max-evaluations", "0"], "--max-evaluations 0"),
    (["--max-evaluations", "-5"], "--max-evaluations -5"),
    (["--seed", "-1"], "--seed -1"),
    (["--finetune-steps", "-1"], "--finetune-steps -1"),
    (["--budget-fraction", "nan"], "--budget-fraction nan"),
    (["--method", "nope"], "--method 'nope'"),
    (["--seed", "x"], "--seed"),
    (["--bits", "1", "2"], "bits=[1, 2] is not allowed"),
])
def test_mixed_precision_baseline_cli_bad_arguments(argv: list[str], flag: str, capsys) -> None:
    from baselines.mixed_precision.cli import main

    _one_line_exit_2(main, ["--task", "digits-cnn", *argv], flag, capsys)


@pytest.mark.parametrize("kind", ["under_file", "proc", "empty", "dir"])
def test_mixed_precision_baseline_cli_refuses_an_unwritable_json(kind: str, tmp_path: Path, capsys, monkeypatch) -> None:
    import quant_envs.mixed_precision.problem as problem_module
    from baselines.mixed_precision.cli import main

    monkeypatch.setattr(problem_module, "MixedPrecisionProblem", None)  # any work at all would fail loudly
    target = str(tmp_path) if kind == "dir" else _unwritable(kind, tmp_path)
    _one_line_exit_2(main, ["--task", "digits-cnn", "--json", target], "--json", capsys)


# ------------------------------------------------------------------------------------- bad actions
#: (env id, action, regex of the ValueError): the action is named, with what is allowed.
BAD_ACTIONS: list[tuple[str, object, str]] = [
    (MP, 7, r"action=7 is not allowed; expected an integer in \[0, 6\]"),
    (MP, -1, r"action=-1 is not allowed"),
    (MP, "3", r"action='3' is not allowed"),
    (MP, 1.5, r"action=1.5 is not allowed"),
    (MP, True, r"action=True is not allowed"),
    (MP, np.array([1, 2]), r"action=array\(\[1, 2\]\) is not allowed"),
    (MP, None, r"action=None is not allowed"),
    (MPC, np.array([np.nan], dtype=np.float32), r"action=array\(\[nan\].* is not allowed; expected one finite number"),
    (MPC, np.array([np.inf]), r"action=array\(\[inf\]\) is not allowed"),
    (MPC, [0.2, 0.3], r"action=\[0.2, 0.3\] is not allowed"),
    (MPC, "0.5", r"action='0.5' is not allowed"),
    (MPC, "abc", r"action='abc' is not allowed"),
    (MPC, None, r"action=None is not allowed"),
]


@pytest.mark.parametrize("env_id,action,match", BAD_ACTIONS,
                         ids=[f"{e.split('/')[-1]}-{i}" for i, (e, _, _) in enumerate(BAD_ACTIONS)])
def test_bad_action_is_a_value_error_naming_it(env_id: str, action, match: str) -> None:
    env = gym.make(env_id, **FAST_KWARGS[env_id])
    obs, _ = env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.unwrapped.step(action)  # unwrapped: gymnasium's checker would warn first
    assert env.unwrapped._t == 0  # nothing was applied
    env.close()


@pytest.mark.parametrize("kind", ["under_file", "proc", "empty"])
def test_compare_refuses_an_unwritable_out_before_any_run(kind: str, tmp_path: Path, capsys) -> None:
    import train

    _one_line_exit_2(train.main, ["compare", "--env-kwargs", "task=digits-cnn", "--seeds", "1",
                                  "--out", _unwritable(kind, tmp_path)], "--out", capsys)


def test_a_full_disk_during_training_is_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    """ENOSPC in the middle of a run (here: at the first checkpoint) is reported, not a traceback."""
    import errno

    import agents.callbacks
    import train

    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(agents.callbacks, "atomic_write_json", full)
    out = tmp_path / "run"
    _one_line_exit_2(train.main, ["--env-kwargs", "task=digits-cnn", "finetune_steps=0", "--timesteps", "10",
                                  "--out", str(out), "--no-progress-bar"],
                     f"--out {str(out)!r}: cannot write: No space left on device", capsys)


@pytest.mark.parametrize("hyper,needle", [
    ("maskable_ppo.n_epochs=0", "maskable_ppo.n_epochs=0 is not allowed"),
    ("ppo.gamma=2", "ppo.gamma=2.0 is not allowed"),
    ("dqn.gamma=0.9", "'dqn' is not an agent"),
])
def test_compare_checks_hyperparameters_before_any_run(hyper: str, needle: str, tmp_path: Path, capsys) -> None:
    import train

    _one_line_exit_2(train.main, ["compare", "--env-kwargs", "task=digits-cnn", "--seeds", "1", "--hyperparams", hyper,
                                  "--out", str(tmp_path / "c")], needle, capsys)
    assert not (tmp_path / "c").exists()  # refused before anything was written
