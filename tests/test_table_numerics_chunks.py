"""A generator's work directory cannot silently mix numerics: chunks computed under other numerics
(faked here by replacing ``generation_numerics``, as another machine or ``ATEN_CPU_CAPABILITY``
would change it) make a resume fail with an error naming ``--allow-mixed-numerics``; with the flag
the run goes on and the table's meta says which numerics made which chunk."""

from __future__ import annotations

import json

import pytest

from quant_envs.mixed_precision.tables import build, chunks
from quant_envs.mixed_precision.tables.npz import load_npz

ARGS = ["--task", "digits-cnn", "--bits", "2", "8", "--finetune-steps", "0", "--chunk", "4"]
OTHER = {"torch": "2.14.1", "cpu_capability": "avx512", "cpu_model": "Other CPU", "device": "cpu"}


def test_resume_under_other_numerics_is_refused_unless_allowed(tmp_path, monkeypatch, capsys) -> None:
    here = chunks.generation_numerics()
    assert here != OTHER  # the faked machine differs from this one (avx512 is named, not detected)
    args = [*ARGS, "--work-dir", str(tmp_path / "work"), "--out", str(tmp_path / "t.npz")]
    assert build.main([*args, "--limit", "8"]) == 0  # chunks 0 and 1 under this machine's numerics
    assert json.loads((tmp_path / "work" / "chunk_00000.json").read_text())["numerics"] == here

    monkeypatch.setattr(chunks, "generation_numerics", lambda: dict(OTHER))
    with pytest.raises(SystemExit):
        build.main(args)
    err = capsys.readouterr().err
    assert "--allow-mixed-numerics" in err and "avx512" in err and "chunk_00000.npy" in err
    assert not (tmp_path / "t.npz").exists() and not (tmp_path / "work" / "chunk_00002.npy").exists()

    assert build.main([*args, "--allow-mixed-numerics"]) == 0  # chunks 2 and 3 under the other numerics
    side = json.loads((tmp_path / "work" / "chunk_00003.json").read_text())
    assert side["numerics"] == OTHER and side["allow_mixed_numerics"] is True
    meta = load_npz(tmp_path / "t.npz").meta
    assert meta["numerics_status"] == "mixed" and meta["cpu_capability"] == "mixed" and meta["torch"] == "mixed"
    by = {g["chunks"]: g["numerics"] for g in meta["numerics_by_chunk"]}
    assert by == {"0-1": here, "2-3": OTHER}


def test_one_machine_gives_its_numerics(tmp_path) -> None:
    args = [*ARGS, "--work-dir", str(tmp_path / "work"), "--out", str(tmp_path / "t.npz")]
    assert build.main(args) == 0
    meta = load_npz(tmp_path / "t.npz").meta
    here = chunks.generation_numerics()
    assert meta["numerics_status"] == "single"
    assert {k: meta[k] for k in here} == here
    assert meta["numerics_by_chunk"] == [{"numerics": here, "chunks": "0-3", "count": 4}]
    # and resuming the finished work directory here is allowed (nothing left to compute)
    assert build.main(args) == 0


def test_ranges() -> None:
    assert chunks._ranges([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"


def test_chunks_from_another_float_network_are_refused_even_when_mixing_is_allowed(tmp_path, capsys) -> None:
    args = [*ARGS, "--work-dir", str(tmp_path / "work"), "--out", str(tmp_path / "t.npz")]
    assert build.main([*args, "--limit", "4"]) == 0
    side = tmp_path / "work" / "chunk_00000.json"
    record = json.loads(side.read_text())
    assert len(record["float_sha256"]) == 64  # the digest of the float network the chunk was retrained from
    side.write_text(json.dumps({**record, "float_sha256": "f" * 64}))  # as if trained elsewhere
    with pytest.raises(SystemExit):
        build.main([*args, "--allow-mixed-numerics"])
    err = capsys.readouterr().err
    assert "float network ffffffffffffffff" in err and "cannot mix them" in err
