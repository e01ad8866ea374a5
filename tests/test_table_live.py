"""A generated table's live problem: its shipped float network, the checks on it, and how far a
retraining on other CPU kernels lands from the table.

Expected values: the table's own records (``float_sha256``, ``data_sha256``, ``float_accuracy_val``,
its entries), recomputed here from the shipped network; the cross-kernel check retrains entries in
a subprocess that runs torch's scalar kernels (``ATEN_CPU_CAPABILITY=default``), which no table
was made with, and must land within ``CROSS_CPU_SAMPLES`` samples of every entry.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from table_checks import accuracy_tolerance

from quant_envs.mixed_precision.model_cache import state_digest
from quant_envs.mixed_precision.tables.live import (
    CROSS_CPU_SAMPLES,
    cpu_model,
    live_problem,
    main,
    numerics,
    recheck,
    same_numerics,
    table_task,
)
from quant_envs.mixed_precision.tables.npz import load_npz, save_table
from quant_envs.mixed_precision.tables.registry import load_table
from quant_envs.mixed_precision.tasks import data_digest, make_task

# compared with data made on the tables' CPU kind: exact there, within CROSS_CPU_SAMPLES elsewhere
pytestmark = pytest.mark.numerics


@pytest.fixture(scope="module")
def digits():
    return load_table("digits-cnn")


@pytest.mark.parametrize("name", ["digits-cnn", "mnist1d-small"])
def test_a_generated_table_ships_the_network_it_was_retrained_from(name) -> None:
    table = load_table(name)
    task = table_task(table)
    assert state_digest(task.model.state_dict(), {}) == table.meta["float_sha256"]
    assert data_digest(task) == table.meta["data_sha256"]
    assert task.meta["float_state"] == "given"  # not the locally trained network
    # the shipped network scores what the table records as the reward's zero
    tol = accuracy_tolerance(table, len(task.val_set))
    assert task.float_accuracy("val") == pytest.approx(table.meta["float_accuracy_val"], abs=tol)
    assert table.score_offset == table.meta["float_accuracy_val"]


def test_a_given_float_network_is_neither_trained_nor_cached(tmp_path, digits) -> None:
    task = make_task("digits-cnn", float_state=digits.float_state, cache_dir=tmp_path)
    assert not (tmp_path / "models").exists()
    for name, value in task.model.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), digits.float_state[name])


def test_the_float_network_survives_the_npz_round_trip(tmp_path, digits) -> None:
    again = load_npz(save_table(digits, tmp_path / "t.npz"))
    assert sorted(again.float_state) == sorted(digits.float_state)
    for name, value in digits.float_state.items():
        np.testing.assert_array_equal(again.float_state[name], value)
        assert again.float_state[name].dtype == value.dtype


def test_a_damaged_table_or_other_data_is_refused(digits) -> None:
    state = {k: v.copy() for k, v in digits.float_state.items()}
    first = next(k for k, v in state.items() if v.dtype == np.float32)
    state[first].reshape(-1)[0] += 1e-3
    with pytest.raises(ValueError, match="float_sha256"):
        table_task(dataclasses.replace(digits, float_state=state))
    other_data = dataclasses.replace(digits, meta={**digits.meta, "data_sha256": "0" * 64})
    with pytest.raises(ValueError, match="data built on this machine differ"):
        table_task(other_data)


def test_bad_input_names_the_argument(digits) -> None:
    with pytest.raises(ValueError, match="table='hawq-resnet18' records no generating task"):
        table_task("hawq-resnet18")
    wrong = {k: v for k, v in digits.float_state.items() if not k.startswith("classifier")}
    with pytest.raises(ValueError, match="float_state does not fit the digits-cnn network"):
        make_task("digits-cnn", float_state=wrong)
    with pytest.raises(TypeError, match="float_state must map"):
        make_task("digits-cnn", float_state=[1, 2])
    with pytest.raises(SystemExit):
        main(["--table", "digits-cnn", "--count", "0"])
    with pytest.raises(SystemExit):
        main(["--table", "digits-cnn", "--seed", "-1"])
    with pytest.raises(ValueError, match="count"):
        recheck(digits, count=0)
    with pytest.raises(ValueError, match="seed"):
        recheck(digits, count=1, seed=-1)


def test_numerics_name_this_machine_and_decide_exactness(digits) -> None:
    here = numerics()
    assert here["torch"] == torch.__version__ and here["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert here["cpu_model"] == cpu_model() != ""
    ours = dataclasses.replace(digits, meta={**digits.meta, **here})
    assert same_numerics(ours)
    for key in here:  # any one of the three differing makes it another machine's numerics
        assert not same_numerics(dataclasses.replace(digits, meta={**ours.meta, key: "other"}))


def test_live_problem_takes_the_table_settings_and_the_callers(digits) -> None:
    p = live_problem(digits, hardware="bitfusion", budget_metric="energy")
    assert (p.finetune_steps, p.eval_seed, p.bits) == (digits.meta["finetune_steps"], digits.meta["eval_seed"],
                                                       tuple(digits.meta["bits"]))
    assert p.hardware == "bitfusion" and p.budget_metric == "energy"


def _recheck_in_subprocess(table: str, count: int, seed: int, env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-m", "quant_envs.mixed_precision.tables.live", "--table", table,
                          "--count", str(count), "--seed", str(seed), "--json"],
                         env={**os.environ, **env}, capture_output=True, text=True, timeout=600)
    assert out.returncode in (0, 1), out.stderr[-2000:]
    return json.loads(out.stdout.splitlines()[-1])


def _cross_kernel(table: str, count: int, seed: int) -> None:
    report = _recheck_in_subprocess(table, count, seed, {"ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "1"})
    assert report["numerics"]["cpu_capability"] == "DEFAULT" != report["table_numerics"]["cpu_capability"]
    assert report["allowed"] == CROSS_CPU_SAMPLES
    offs = [max(r["samples_off"].values()) for r in report["rows"]]
    assert max(offs) <= CROSS_CPU_SAMPLES, report["rows"]


def test_other_cpu_kernels_land_within_the_stated_samples_digits() -> None:
    _cross_kernel("digits-cnn", count=12, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("name,count", [("digits-cnn", 200), ("mnist1d-small", 40)])
def test_other_cpu_kernels_land_within_the_stated_samples_many(name, count) -> None:
    _cross_kernel(name, count=count, seed=2)


def test_the_recheck_command_agrees_with_the_table_on_its_own_cpu_kind(capsys) -> None:
    table = load_table("digits-cnn")
    status = main(["--table", "digits-cnn", "--count", "2", "--seed", "5"])
    text = capsys.readouterr().out
    worst = int(re.search(r"worst: (\d+) samples", text).group(1))
    allowed = int(re.search(r"allowed: (\d+) samples", text).group(1))
    assert status == int(worst > allowed)
    if same_numerics(table):
        assert (allowed, worst, status) == (0, 0, 0)  # bit for bit on the table's own CPU kind
    else:
        assert allowed == CROSS_CPU_SAMPLES


@pytest.mark.slow
def test_mnist1d_data_do_not_depend_on_numpys_simd_kernels(tmp_path) -> None:
    # The table's data digest must hold on CPUs of other kinds: generated afresh with numpy's AVX2
    # (X86_V3) kernels switched off, the data are still the ones the table records.
    code = ("from quant_envs.mixed_precision.tables.live import table_task; "
            "from quant_envs.mixed_precision.tasks import data_digest; "
            "print(data_digest(table_task('mnist1d-small')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "NPY_DISABLE_CPU_FEATURES": "X86_V3", "QUANT_ENVS_CACHE": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == load_table("mnist1d-small").meta["data_sha256"]
    assert (tmp_path / "data").is_dir()  # generated here, not read from another cache


@pytest.mark.parametrize("name", ["digits-cnn", "mnist1d-small"])
def test_the_shipped_table_is_the_version_its_environment_documents(name) -> None:
    # A regenerated table changes every saved result on it: its new digest must be announced in
    # MixedPrecisionTable-v0's Version History (and, with the date, in CHANGELOG.md) when it is shipped.
    from quant_envs.mixed_precision.tables.env import MixedPrecisionTableEnv

    digest = load_table(name).digest
    assert f"``{digest}``" in MixedPrecisionTableEnv.__doc__
    changelog = (Path(__file__).resolve().parents[1] / "CHANGELOG.md").read_text()
    assert f"`{digest}`" in changelog
