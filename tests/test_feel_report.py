"""``python -m baselines.feel``: a quick run writes the table and the figures."""

from __future__ import annotations

import csv

from baselines.feel.__main__ import main


def test_quick_report_without_simulation(tmp_path, capsys) -> None:
    assert main(["--out", str(tmp_path), "--quick", "--no-simulation"]) == 0
    for name in ("comparison.csv", "time_vs_bandwidth.png", "time_vs_devices.png", "README.md"):
        assert (tmp_path / name).stat().st_size > 0
    rows = list(csv.reader((tmp_path / "comparison.csv").open()))
    assert rows[0][:3] == ["K", "B (kHz)", "AO T (s)"]
    assert len(rows) == 1 + 2 * 2  # K in {10, 20} x B in {50, 200} kHz
    for r in rows[1:]:
        ao, baselines = float(r[2]), [float(x) for x in r[3:7]]
        assert ao <= min(baselines) * (1 + 1e-9)  # AO is never beaten by a baseline
    printed = capsys.readouterr().out
    assert "| K | B (kHz) | AO T (s)" in printed
