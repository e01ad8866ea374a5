"""Every registered id still does what its recorded rollout says (the version contract).

The records (``tests/rollout_records.json``) were made by ``python -m tests.record_rollouts``;
how a rollout is digested and what tolerance holds across CPU kinds is in that module's
docstring. A registered id's behaviour (observations, rewards, terminations, truncations,
``info``) does not change: a change gets a new version, the old id stays as it was.
"""

from __future__ import annotations

import json

import pytest
from record_rollouts import (
    COMMAND,
    CONTRACT,
    RECORDS,
    SEEDS,
    STEPS,
    differences,
    next_version,
    rollout,
)

import quant_envs

RECORDED = json.loads(RECORDS.read_text())


def test_every_registered_id_is_recorded_with_the_contracts_arguments() -> None:
    assert sorted(RECORDED["ids"]) == sorted(quant_envs.ENV_IDS), f"regenerate with {COMMAND}"
    for env_id, rec in RECORDED["ids"].items():
        spec = CONTRACT.get(env_id, {})
        assert (rec["kwargs"], rec["steps"]) == (spec.get("kwargs", {}), spec.get("steps", STEPS)), env_id
        assert sorted(rec["seeds"]) == sorted(map(str, SEEDS)), env_id


@pytest.mark.numerics
@pytest.mark.parametrize("env_id", sorted(quant_envs.ENV_IDS))
def test_behaviour_of_every_id_is_its_recorded_one(env_id: str) -> None:
    found = []
    for seed, stored in RECORDED["ids"][env_id]["seeds"].items():
        found += differences(env_id, seed, stored, rollout(env_id, int(seed)))
    assert not found, (f"behaviour of {env_id} changed: bump the version (register {next_version(env_id)}) or, "
                       f"if intended and documented, regenerate with {COMMAND}\n" + "\n".join(found))


def test_a_change_beyond_the_tolerance_is_caught_and_round_off_is_not() -> None:
    env_id = "quant_envs/CVT1D-v1"
    stored = RECORDED["ids"][env_id]["seeds"]["0"]
    fresh = rollout(env_id, 0)
    assert differences(env_id, "0", stored, fresh) == []
    # every observation scaled by 1 + 1e-7 (float32 round-off) still holds; by 1 + 1e-4 it does not
    for scale, caught in ((1 + 1e-7, False), (1 + 1e-4, True)):
        moved = {**fresh, "values": fresh["values"]}
        moved_floats = dict(fresh["floats"])
        moved_floats["obs"] = [moved_floats["obs"][0], *(x * scale for x in moved_floats["obs"][1:])]
        assert bool(differences(env_id, "0", stored, {**moved, "floats": moved_floats})) == caught, scale
    assert differences(env_id, "0", stored, {**fresh, "exact": "0" * 64}) == [
        "seed 0: exact part (flags, integers, strings, shapes, info keys, actions)"]
    assert next_version(env_id) == "quant_envs/CVT1D-v2" and next_version("quant_envs/CVT1D-v0") == "quant_envs/CVT1D-v2"
