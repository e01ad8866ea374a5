"""Dependencies point one way only: hw_sim <- quant_envs <- baselines, agents <- train.py (DESIGN.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: package -> the project packages it must never import
FORBIDDEN = {
    "hw_sim": {"quant_envs", "baselines", "agents", "train", "torch"},
    "quant_envs": {"baselines", "agents", "train"},
    "baselines": {"agents", "train"},
    "agents": {"train"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_runs_the_wrong_way(package: str) -> None:
    wrong = {f"{p.relative_to(REPO)} imports {bad}" for p in (REPO / package).rglob("*.py")
             for bad in _imports(p) & FORBIDDEN[package]}
    assert not wrong, sorted(wrong)
