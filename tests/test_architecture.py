"""The import rules that `lint-imports` (contracts in pyproject.toml) cannot see: imports inside
functions, which it counts like any other, and which modules import without torch.

A function-local import of the project's own modules needs a reason, written as a ``# lazy: ...``
comment on the line above it or above the run of imports it belongs to (or on its own line); the reasons in use are torch-free modules
(checked below: they import without torch) and a CLI module that must not be imported by its package.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ("hw_sim", "quant_envs", "baselines", "agents", "train")

#: Modules that keep torch out of their import (a function imports it when it is needed): every
#: ``# lazy:`` reason that names torch is about one of these.
TORCH_FREE = (
    "hw_sim", "hw_sim.measured", "hw_sim.networks",
    "quant_envs", "quant_envs.base", "quant_envs.mixed_precision.config", "quant_envs.mixed_precision.cost_model",
    "quant_envs.mixed_precision.policy_evaluator",
    "quant_envs.mixed_precision.problem", "quant_envs.mixed_precision.env",
    "quant_envs.mixed_precision.multi_hardware", "quant_envs.mixed_precision.unwrap",
    "quant_envs.mixed_precision.cost_table_cli",
    "quant_envs.mixed_precision.tables.registry", "quant_envs.mixed_precision.tables.env",
    "quant_envs.mixed_precision.tables.problem", "quant_envs.mixed_precision.tables.regret",
    "quant_envs.feel.env", "quant_envs.feel.fitting", "quant_envs.compander.env", "quant_envs.cvt.env_v1",
    "baselines.mixed_precision", "baselines.mixed_precision.regret",
    "agents", "agents.cli", "agents.training", "agents.run_config",
)


def _project_sources() -> list[Path]:
    return [ROOT / "train.py", *(p for pkg in PROJECT[:-1] for p in sorted((ROOT / pkg).rglob("*.py")))]


def _is_project(node: ast.Import | ast.ImportFrom) -> bool:
    if isinstance(node, ast.ImportFrom):
        return bool(node.level) or (node.module or "").split(".")[0] in PROJECT
    return any(a.name.split(".")[0] in PROJECT for a in node.names)


def _unexplained_local_imports(path: Path) -> list[str]:
    lines = path.read_text().split("\n")
    found: list[str] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for field in ("body", "orelse", "finalbody", "handlers"):
            block = getattr(node, field, None)
            if not isinstance(block, list):
                continue
            for k, child in enumerate(block):
                if in_function and isinstance(child, (ast.Import, ast.ImportFrom)) and _is_project(child):
                    first = k
                    while first > 0 and isinstance(block[first - 1], (ast.Import, ast.ImportFrom)):
                        first -= 1  # one reason serves a run of imports
                    above = {lines[block[first].lineno - 2].strip(), lines[child.lineno - 2].strip()}
                    own = lines[child.lineno - 1]
                    if not (any(a.startswith("# lazy:") for a in above) or "# lazy:" in own):
                        found.append(f"{path.relative_to(ROOT)}:{child.lineno}: {ast.unparse(child)}")
                visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

    visit(ast.parse("\n".join(lines)), False)
    return found


def test_function_local_imports_of_the_project_say_why() -> None:
    missing = [m for p in _project_sources() for m in _unexplained_local_imports(p)]
    assert not missing, ("import these at module level, or say why not in a '# lazy: ...' comment above:\n"
                         + "\n".join(missing))


def test_the_check_sees_an_unexplained_local_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the rule above must be able to fail: a module with one import of each kind
    src = tmp_path / "quant_envs" / "example.py"
    src.parent.mkdir()
    src.write_text("def f():\n    from quant_envs import checks\n\n\ndef g():\n"
                   "    # lazy: a stated reason\n    from quant_envs import atomic_io\n    import json\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert _unexplained_local_imports(src) == ["quant_envs/example.py:2: from quant_envs import checks"]


def test_torch_free_modules_import_without_torch() -> None:
    code = ("import importlib, sys\n"
            f"for name in {TORCH_FREE!r}:\n"
            "    importlib.import_module(name)\n"
            "    assert 'torch' not in sys.modules, f'importing {name} imported torch'\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
