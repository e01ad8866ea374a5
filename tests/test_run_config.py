"""TrainConfig: a training run's settings validated once, round-tripping through config.json."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from agents.run_config import FLAGS, RESUME_KEYS, InvalidSetting, InvalidSettingType, TrainConfig
from agents.runs import UsageError
from agents.training import TRAIN_DEFAULTS, make_train_config, train


@pytest.mark.parametrize(("kwargs", "error", "message", "flag_message"), [
    ({"timesteps": 0}, InvalidSetting, "timesteps=0 is not allowed; expected an integer >= 1",
     "--timesteps 0 is not allowed; expected an integer >= 1"),
    ({"seed": "1"}, InvalidSettingType, "seed='1' is not allowed", "--seed '1' is not allowed"),
    ({"n_envs": True}, InvalidSettingType, "n_envs=True", "--n-envs True"),
    ({"checkpoint_freq": 0}, InvalidSetting, "checkpoint_freq=0", "--checkpoint-freq 0"),
    ({"max_evaluations": 0}, InvalidSetting, "max_evaluations=0", "--max-evaluations 0"),
    ({"eval_freq": -1}, InvalidSetting, "eval_freq=-1", "--eval-freq -1 is not allowed"),
    ({"eval_episodes": 0}, InvalidSetting, "eval_episodes=0", "--eval-episodes 0 is not allowed"),
    ({"vec_env": "ray"}, InvalidSetting, "vec_env='ray' is not allowed; expected one of: dummy, subproc",
     "--vec-env 'ray'"),
    ({"algo": "a2c"}, InvalidSetting, "algo='a2c' is not allowed", "--algo 'a2c'"),
    ({"env_id": "Nope-v0"}, InvalidSetting, "env_id='Nope-v0' is not allowed; expected a registered", "--env"),
    ({"env_kwargs": ["k=1"]}, InvalidSettingType, "env_kwargs=", "--env-kwargs"),
    ({"hyperparams": {1: 2}}, InvalidSettingType, "hyperparams=", "--hyperparams"),
])
def test_bad_settings_name_the_argument_and_the_flag(kwargs, error, message, flag_message):
    with pytest.raises(error, match=message) as info:
        TrainConfig(**kwargs)
    # a library error: ValueError / TypeError; the command line words it by flag
    assert isinstance(info.value, ValueError if error is InvalidSetting else TypeError)
    assert info.value.flag_message().startswith(flag_message)
    with pytest.raises(UsageError, match=flag_message.replace("(", r"\(")):
        make_train_config(**{"env_id": "quant_envs/CVT1D-v0", "algo": "ppo", **kwargs})


def test_config_json_round_trip():
    c = TrainConfig(env_id="quant_envs/CVT1D-v0", algo="ppo", timesteps=300, seed=4,
                    env_kwargs={"k": 4, "domain": (0.0, 2.0)}, hyperparams={"n_steps": 64},
                    max_evaluations=7, n_envs=2, eval_freq=100)
    data = json.loads(json.dumps(c.to_json()))
    assert data["env_kwargs"] == {"k": 4, "domain": [0.0, 2.0]}  # JSON has lists, not tuples
    again = TrainConfig.from_json(data)
    assert again.to_json() == data
    assert dataclasses.replace(again, env_kwargs=c.env_kwargs) == c


def test_old_config_json_still_loads():
    # what train.py wrote before the execution settings were recorded (seven keys)
    old = {"env_id": "quant_envs/CVT1D-v0", "algo": "ppo", "timesteps": 256, "seed": 1,
           "env_kwargs": {"k": 4}, "hyperparams": {}, "max_evaluations": None}
    c = TrainConfig.from_json(old)
    assert (c.n_envs, c.checkpoint_freq, c.eval_freq, c.eval_episodes, c.vec_env) == (1, 500, 0, 5, "dummy")
    assert {k: v for k, v in c.to_json().items() if k in old} == old
    with pytest.raises(InvalidSetting, match=r"config=\['tmesteps'\]"):
        TrainConfig.from_json({**old, "tmesteps": 3})
    with pytest.raises(InvalidSettingType, match="config="):
        TrainConfig.from_json([1, 2])  # type: ignore[arg-type]


def test_defaults_and_flags_cover_the_schema():
    assert set(FLAGS) == set(TrainConfig.field_names())
    assert set(RESUME_KEYS) < set(TrainConfig.field_names())
    assert TRAIN_DEFAULTS == {"env_id": "quant_envs/MixedPrecision-v1", "algo": "maskable_ppo", "timesteps": 1000,
                              "seed": 0, "env_kwargs": {}, "hyperparams": {}, "max_evaluations": None}


def test_train_writes_the_config_it_ran_with(tmp_path: Path):
    out = tmp_path / "run"
    train("quant_envs/CVT1D-v0", "ppo", timesteps=64, seed=3, env_kwargs={"k": 3, "max_steps": 8},
          hyperparams={"n_steps": 32, "batch_size": 32}, out=out, checkpoint_freq=32, progress_bar=False,
          verbose=False)
    saved = json.loads((out / "config.json").read_text())
    assert TrainConfig.from_json(saved) == TrainConfig(
        env_id="quant_envs/CVT1D-v0", algo="ppo", timesteps=64, seed=3, env_kwargs={"k": 3, "max_steps": 8},
        hyperparams={"n_steps": 32, "batch_size": 32}, checkpoint_freq=32)
    with pytest.raises(UsageError, match=r"--resume: --seed 4 differs from the run's 3"):
        train("quant_envs/CVT1D-v0", "ppo", timesteps=64, seed=4, env_kwargs={"k": 3, "max_steps": 8},
              hyperparams={"n_steps": 32, "batch_size": 32}, out=out, resume=True, progress_bar=False,
              verbose=False)
