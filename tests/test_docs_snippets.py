"""Every code block of docs/clients.md runs, in the virtual environment of its library.

Each fenced block is preceded by a tag, ``<!-- snippet: TAG -->``:

* ``main``: Python, run here (the default test run) as a script of its own, in a fresh process
  (spawned workers re-import it, as a user's script);
* ``main-shell``: shell commands, run here in a scratch folder that links ``train.py`` and ``agents``;
* ``ray``, ``torchrl``: Python, run in the ray / torchrl virtual environments (markers ``ray``,
  ``torchrl``; ``.ci/run`` makes those environments);
* ``zoo-shell``: shell commands, run in the RL Zoo virtual environment (marker ``rl_zoo``);
* ``install``: the install command of a virtual environment; ``.ci/run`` must run that very command.

A block without a tag fails :func:`test_every_block_is_tagged`, so no snippet goes untested.
This module imports nothing beyond the standard library and pytest: every venv collects it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "clients.md"
TAGS = ("main", "main-shell", "ray", "torchrl", "zoo-shell", "install")

_BLOCK = re.compile(r"(?:<!-- snippet: (?P<tag>[\w-]+) -->\n)?```(?P<lang>\w*)\n(?P<code>.*?)```", re.S)


def blocks() -> list[tuple[str | None, str, str]]:
    """(tag or None, language, code) of every fenced block of the page, in order."""
    return [(m["tag"], m["lang"], m["code"]) for m in _BLOCK.finditer(PAGE.read_text(encoding="utf-8"))]


def tagged(tag: str) -> list[str]:
    return [code for t, _, code in blocks() if t == tag]


def _ids(tag: str) -> list[str]:
    return [f"{tag}-{i}" for i in range(len(tagged(tag)))]


def _run_python(code: str, tmp_path: Path, timeout: int = 600) -> None:
    script = tmp_path / "snippet.py"
    script.write_text(code, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # agents/ and quant_envs from this checkout
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"snippet failed:\n{code}\n--- stderr ---\n{proc.stderr[-4000:]}"


def _run_shell(code: str, tmp_path: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``code`` with bash in ``tmp_path`` (which links this checkout's train.py and agents/),
    ``python`` being this interpreter."""
    for name in ("train.py", "agents"):
        (tmp_path / name).symlink_to(REPO / name)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n', encoding="utf-8")
    (bindir / "python").chmod(0o755)  # a link would lose the virtual environment (pyvenv.cfg lies beside it)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"snippet failed:\n{code}\n--- stderr ---\n{proc.stderr[-4000:]}"
    return proc


def test_every_block_is_tagged() -> None:
    found = blocks()
    assert found, f"{PAGE} has no code blocks"
    for tag, lang, code in found:
        assert tag in TAGS, f"a {lang or 'plain'} block of {PAGE.name} has tag {tag!r}; expected one of {TAGS}:\n{code}"
    for tag in TAGS:  # every library on the page is exercised
        assert tagged(tag), f"no {tag!r} block in {PAGE.name}"


def test_install_commands_are_the_ones_ci_runs() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    for code in tagged("install"):
        for line in code.strip().splitlines():
            assert line in ci, f"docs/clients.md tells users to run {line!r}, which .ci/run does not run"


@pytest.mark.parametrize("code", tagged("main"), ids=_ids("main"))
def test_main_snippet(code: str, tmp_path: Path) -> None:
    _run_python(code, tmp_path)


@pytest.mark.parametrize("code", tagged("main-shell"), ids=_ids("main-shell"))
def test_main_shell_snippet(code: str, tmp_path: Path) -> None:
    _run_shell(code, tmp_path)
    assert (tmp_path / "runs").is_dir()  # train.py wrote its run where the command says


@pytest.mark.ray
@pytest.mark.parametrize("code", tagged("ray"), ids=_ids("ray"))
def test_ray_snippet(code: str, tmp_path: Path) -> None:
    _run_python(code, tmp_path)


@pytest.mark.torchrl
@pytest.mark.parametrize("code", tagged("torchrl"), ids=_ids("torchrl"))
def test_torchrl_snippet(code: str, tmp_path: Path) -> None:
    _run_python(code, tmp_path)


@pytest.mark.rl_zoo
@pytest.mark.parametrize("code", tagged("zoo-shell"), ids=_ids("zoo-shell"))
def test_rl_zoo_snippet(code: str, tmp_path: Path) -> None:
    proc = _run_shell(code, tmp_path)
    assert list((tmp_path / "logs" / "ppo").glob("*/*.zip")), "rl_zoo3.train saved no model"
    assert "Mean reward" in proc.stdout + proc.stderr  # rl_zoo3.enjoy replayed it
