"""quant_envs.text_tables: the one table formatter (markdown and plain), against hand-written tables."""

from __future__ import annotations

import numpy as np
import pytest

from quant_envs.text_tables import format_table, markdown_table


def test_markdown_alignment_rule_and_number_formats() -> None:
    got = format_table(["name", "n", "x", "note"], [["a", 1234, 0.5, "-"], ["bb", np.int64(7), np.float32(2.25), True]],
                       align=["left", "right", "center", "left"], formats=[None, ",", ".2f", ".1f"])
    assert got == ("| name | n | x | note |\n"
                   "|---|---:|:---:|---|\n"
                   "| a | 1,234 | 0.50 | - |\n"  # a format spec leaves text alone
                   "| bb | 7 | 2.25 | True |")  # and booleans


def test_plain_pads_each_column_to_its_widest_cell() -> None:
    got = format_table(["#", "layer", "us"], [[0, "conv1", 1.5], [12, "fc", 10.25]],
                       align=["right", "left", "right"], formats=[None, None, lambda v: f"{v:.1f}"], style="plain")
    assert got == (" #  layer    us\n"
                   " 0  conv1   1.5\n"
                   "12  fc     10.2")


def test_markdown_table_of_dict_rows_keeps_its_old_output() -> None:
    rows = [{"method": "ppo", "iqm": 0.91234, "big": 123.456}, {"method": "uniform", "iqm": 0.5}]
    assert markdown_table(rows, [("method", "method"), ("iqm", "IQM"), ("big", "big")]) == (
        "| method | IQM | big |\n|---|---:|---:|\n| ppo | 0.9123 | 123.5 |\n| uniform | 0.5000 |  |\n")
    from quant_envs.atomic_io import markdown_table as old_home

    assert old_home is markdown_table


def test_bad_arguments_name_the_argument_and_the_allowed_values() -> None:
    with pytest.raises(ValueError, match="style='html' is not allowed; expected one of: 'markdown', 'plain'"):
        format_table(["a"], [[1]], style="html")
    with pytest.raises(ValueError, match="align='middle' is not allowed; expected one of: 'left', 'right', 'center'"):
        format_table(["a", "b"], [[1, 2]], align=["left", "middle"])
    with pytest.raises(ValueError, match=r"align has 1 entries, not allowed; expected one per column \(2\)"):
        format_table(["a", "b"], [[1, 2]], align=["left"])
    with pytest.raises(ValueError, match=r"formats has 3 entries"):
        format_table(["a", "b"], [[1, 2]], formats=[None, None, None])
    with pytest.raises(ValueError, match=r"rows\[1\] has 1 cells, not allowed; expected 2"):
        format_table(["a", "b"], [[1, 2], [3]])
