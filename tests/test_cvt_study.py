"""The convergence-study command writes its table, CSV and figures (tiny sizes)."""

from __future__ import annotations

import csv

import pytest

from baselines.cvt.study import format_table, main, run_study


def test_study_writes_table_csv_and_figures(tmp_path, capsys) -> None:
    rows = run_study(tmp_path, k_1d=(16,), k_2d=(9,), max_time_s=10, lloyd_max_iter=50, log=lambda *a: None,
                     picture_k=(32, 24))
    assert [(r.dim, r.method) for r in rows] == [(1, "lloyd"), (1, "lbfgs"), (1, "multigrid"),
                                                 (2, "lloyd"), (2, "lbfgs"), (2, "multigrid")]
    lloyd_1d = rows[0]
    assert not lloyd_1d.converged and "within 50 iterations" in lloyd_1d.message  # the cap is reported
    assert rows[2].converged and rows[5].converged
    with open(tmp_path / "convergence.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 6 and table[2]["method"] == "multigrid" and table[2]["converged"] == "True"
    text = format_table(rows, 1e-8)
    assert "| 1-D | 16 | lloyd | no: did not converge within 50 iterations |" in text
    for name in ("convergence.md", "convergence.png", "histories.png", "density_1d.png", "tessellation_2d.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_study_command_line_rejects_unknown_command(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["plot"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "match"), [
    (["--tol", "0"], "--tol=0.0"),
    (["--tol", "-1"], "--tol=-1.0"),
    (["--tol", "nan"], "--tol=nan"),
    (["--density", "nope"], "--density='nope'"),
    (["--seed", "-1"], "--seed=-1"),
    (["--max-time", "0"], "--max-time=0.0"),
    (["--lloyd-max-iter", "0"], "--lloyd-max-iter=0"),
])
def test_study_rejects_bad_arguments_in_one_line(args, match, tmp_path, capsys) -> None:
    assert main(["study", "--out", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "convergence.csv").exists()  # no work was done


def test_study_rejects_unusable_output_paths_before_work(tmp_path, capsys) -> None:
    afile = tmp_path / "a-file"
    afile.write_text("x")
    assert main(["study", "--out", str(afile)]) == 2
    assert "existing file" in capsys.readouterr().err
    assert main(["study", "--out", str(afile / "below")]) == 2  # a path under a file
    assert "not a writable directory" in capsys.readouterr().err
    assert main(["study", "--out", "/proc/quant-envs-test"]) == 2  # not creatable, even for root
    assert "not a writable directory" in capsys.readouterr().err
