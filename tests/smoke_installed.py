"""Smoke test of an installed (not editable) quant-envs: what a user gets from the wheel.

Not part of the default test run (its name does not start with ``test_``); ``.ci/run`` builds the
wheel, installs it into a fresh virtual environment and runs this file from outside the source
tree, so that a module or data file missing from the wheel fails here::

    cd /tmp && /path/to/venv/bin/python -m pytest /path/to/repo/tests/smoke_installed.py -p no:cacheprovider

Every registered id makes, resets and steps; every shipped table, measured accelerator and
hyperparameter file loads; every file under the source tree's package-data folders is installed;
the console scripts answer ``--help``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from record_rollouts import CONTRACT, random_action, resolve

import quant_envs

REPO = Path(__file__).resolve().parents[1]
#: the source tree's package-data folders (pyproject's [tool.setuptools.package-data])
DATA_DIRS = ("hw_sim/data", "quant_envs/mixed_precision/table_data", "agents/hyperparams")
SCRIPTS = ("quant-envs-cost-table", "quant-envs-train")


def test_the_installed_package_is_imported_not_the_source_tree() -> None:
    import agents
    import hw_sim

    # the venv itself may live inside the checkout (CI's .venv-wheel does): compare with site-packages
    site_packages = Path(sysconfig.get_paths()["purelib"]).resolve()
    for module in (quant_envs, hw_sim, agents):
        where = Path(module.__file__).resolve()
        assert site_packages in where.parents, module.__file__
        assert REPO / module.__name__ not in where.parents, where  # not the source package


@pytest.mark.parametrize("folder", DATA_DIRS)
def test_every_package_data_file_is_installed(folder: str) -> None:
    import importlib

    package, _, sub = folder.partition("/")
    installed = Path(importlib.import_module(package).__file__).parent / sub
    shipped = sorted(p.name for p in (REPO / folder).iterdir() if p.is_file())
    assert shipped, folder
    assert sorted(p.name for p in installed.iterdir() if p.is_file()) == shipped, installed


@pytest.mark.parametrize("env_id", sorted(quant_envs.ENV_IDS))
def test_every_id_makes_resets_and_steps(env_id: str) -> None:
    # the mixed-precision ids on the digits-cnn table's shipped float network (nothing to train)
    env = gym.make(env_id, **resolve(CONTRACT.get(env_id, {}).get("kwargs", {})))
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    rng = np.random.default_rng(0)
    for _ in range(3):
        masks = getattr(env.unwrapped, "action_masks", None)
        obs, reward, terminated, truncated, _ = env.step(random_action(env.action_space, rng, masks() if masks else None))
        assert np.isfinite(reward)
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()


def test_every_shipped_table_and_measured_accelerator_loads() -> None:
    import hw_sim
    from quant_envs.mixed_precision.tables.registry import TABLES, load_table
    from quant_envs.mixed_precision.tables.training_data import training_samples

    for name in TABLES:
        table = load_table(name)
        widest = np.full(table.num_units, len(table.bits) - 1)
        assert np.isfinite(table.scores(widest)), name  # exhaustive, separable or a surrogate's model
        if table.model is not None:  # a surrogate ships its training set, digest-checked
            assert len(training_samples(table)["idx"]) > 0, name
    for name in hw_sim.MEASURED:
        assert hw_sim.get_accelerator(name).name, name


def test_every_agents_hyperparameters_load() -> None:
    from agents import AGENTS, load_hyperparams

    for name in AGENTS:
        assert isinstance(load_hyperparams(name), dict), name


@pytest.mark.parametrize("script", SCRIPTS)
def test_console_scripts_answer_help(script: str) -> None:
    path = shutil.which(script, path=str(Path(sys.executable).parent))
    assert path is not None, f"{script} is not installed beside {sys.executable}"
    out = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=300, cwd="/")
    assert out.returncode == 0 and "usage" in out.stdout.lower(), out.stderr[-2000:]
