"""The live sampler of surrogate training sets at a tiny size (digits-cnn, 20 policies, no
retraining steps): the plan's policies fit their planning budgets, both kinds are present, the
held-out share is as asked, an entry equals the live problem's evaluation of the same policy (the
reference: ``MixedPrecisionProblem.evaluate``), and a resume under other numerics is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from quant_envs.mixed_precision.tables import chunks, sample
from quant_envs.mixed_precision.tables.build import config_problem, hw_layer_shapes
from quant_envs.mixed_precision.tables.costs import hw_sim_costs

ARGS = ["--task", "digits-cnn", "--bits", "2..8", "--count", "16", "--holdout", "4", "--finetune-steps", "0",
        "--chunk", "8", "--per-trajectory", "4", "--trajectory-share", "0.5"]


def test_tiny_sample(tmp_path, monkeypatch, capsys) -> None:
    work = tmp_path / "w"
    assert sample.main([*ARGS, "--work", str(work)]) == 0
    with np.load(work / "samples.npz") as z:
        idx, val, held, kind = z["idx"].astype(int), z["val_accuracy"], z["held_out"], z["kind"]
        hw, metric, budget = z["hardware"], z["metric"], z["budget"]
        meta = json.loads(str(z["meta"]))
    assert idx.shape == (20, 4) and held.sum() == 4 and set(kind) == {0, 1} and (kind == 1).sum() == 10
    assert len({r.tobytes() for r in idx}) == 20  # distinct policies
    assert meta["numerics_status"] == "single" and meta["finetune_steps"] == 0
    problem = config_problem({"task": "digits-cnn", "bits": list(range(2, 9)), "finetune_steps": 0, "eval_seed": 0,
                        "task_seed": 0})
    costs, _ = hw_sim_costs(hw_layer_shapes(problem), tuple(range(2, 9)))
    for i in range(20):  # every policy fits the budget it was planned under
        assert costs[hw[i]][metric[i]][np.arange(4), idx[i]].sum() <= budget[i] * (1 + 1e-9)
    pol = [(2 + int(k), 2 + int(k)) for k in idx[3]]
    assert float(val[3]) == pytest.approx(problem.evaluate(pol, finetune_steps=0).accuracy, abs=1e-12)

    (work / "chunk_00001.npy").unlink()
    monkeypatch.setattr(chunks, "generation_numerics", lambda: {**chunks.numerics(), "device": "cuda:0"})
    with pytest.raises(SystemExit):
        sample.main([*ARGS, "--work", str(work)])
    assert "--allow-mixed-numerics" in capsys.readouterr().err
    assert sample.main([*ARGS, "--work", str(work), "--allow-mixed-numerics"]) == 0
    with np.load(work / "samples.npz") as z:
        meta = json.loads(str(z["meta"]))
        assert np.array_equal(z["idx"].astype(int), idx)  # the same plan, resumed
    assert meta["numerics_status"] == "mixed"
    assert {g["chunks"]: g["numerics"]["device"] for g in meta["numerics_by_chunk"]} == {"0,2": "cpu", "1": "cuda:0"}


def test_bits_and_arguments() -> None:
    assert sample.parse_bits(["2..8"]) == [2, 3, 4, 5, 6, 7, 8]
    assert sample.parse_bits(["2", "3", "4", "8"]) == [2, 3, 4, 8]
    with pytest.raises(ValueError, match="bits="):
        sample.parse_bits(["8", "2"])
    with pytest.raises(SystemExit):
        sample.main(["--count", "0", "--work", "/nonexistent-dir-not-made"])
