"""The table modules' old paths (before they moved into ``quant_envs.mixed_precision.tables``) stay
importable, each with a DeprecationWarning naming its new home, and reach the same objects."""

from __future__ import annotations

import importlib
import subprocess
import sys

import gymnasium as gym
import pytest
from gymnasium.envs.registration import EnvSpec

import quant_envs
from quant_envs.mixed_precision.tables import costs, npz, policy_table, registry
from quant_envs.mixed_precision.tables.env import MixedPrecisionTableEnv

#: old module -> the module it now is
MOVED = {
    "hawq_tables": "hawq", "table_live": "live", "make_table": "build", "table_problem": "problem",
    "table_env": "env", "table_reference": "reference", "regret": "regret",
}


def _import_old(name: str):
    sys.modules.pop(name, None)  # run the alias again, so that it warns again
    with pytest.warns(DeprecationWarning, match=name.replace(".", r"\.")):
        return importlib.import_module(name)


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_path_is_the_new_module(old: str) -> None:
    module = _import_old(f"quant_envs.mixed_precision.{old}")
    assert module is importlib.import_module(f"quant_envs.mixed_precision.tables.{MOVED[old]}")


def test_old_table_module_reexports_the_type_format_and_registry() -> None:
    table = _import_old("quant_envs.mixed_precision.table")
    homes = {"PolicyTable": policy_table, "TableLayer": policy_table, "LAYER_COLUMNS": policy_table,
             "hw_sim_costs": costs, "equal_width_costs": costs, "load_npz": npz, "save_table": npz,
             "TABLES": registry, "load_table": registry, "register_table": registry}
    assert set(homes) <= set(table.__all__)
    for name, home in homes.items():
        assert getattr(table, name) is getattr(home, name), name


def test_old_entry_point_still_makes_the_table_environment() -> None:
    new = "quant_envs.mixed_precision.tables.env:MixedPrecisionTableEnv"
    assert quant_envs.ENV_IDS["quant_envs/MixedPrecisionTable-v0"] == new
    sys.modules.pop("quant_envs.mixed_precision.table_env", None)
    old_spec = EnvSpec(id="old/MixedPrecisionTable-v0", kwargs={"table": "hawq-resnet18"},
                       entry_point="quant_envs.mixed_precision.table_env:MixedPrecisionTableEnv")
    with pytest.warns(DeprecationWarning, match="table_env"):
        env = gym.make(old_spec)
    assert isinstance(env.unwrapped, MixedPrecisionTableEnv)
    env.close()


@pytest.mark.parametrize("old", ["make_table", "table_live"])
def test_old_command_lines_still_run(old: str) -> None:
    out = subprocess.run([sys.executable, "-m", f"quant_envs.mixed_precision.{old}", "--help"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"quant_envs.mixed_precision.tables.{MOVED[old]}" in out.stdout
