"""The documentation site's generated parts: environment pages, API pages, recorded benchmark tables.

The site itself is built with warnings as errors by ``.ci/run`` (``python -m mkdocs build
--strict``); these tests check, without building it, that every environment id gets its page with
the eight docstring sections and that every included benchmark output exists.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
from pathlib import Path

import pytest
from test_env_api import SECTIONS

import quant_envs
from benchmarks import record

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"


def _load(name: str):
    """A module of docs/ (the site's hook and griffe extension are files, not a package)."""
    spec = importlib.util.spec_from_file_location(name, DOCS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen_pages = _load("gen_pages")


def test_the_generator_asks_for_the_sections_the_env_api_test_checks() -> None:
    assert gen_pages.SECTIONS == SECTIONS
    # Gymnasium's environment pages' sections, in its order (its docs' env pages, e.g. CartPole's)
    assert SECTIONS == ("Description", "Action Space", "Observation Space", "Rewards", "Starting State",
                        "Episode End", "Arguments", "Version History")


@pytest.mark.parametrize("env_id", sorted(quant_envs.ENV_IDS))
def test_every_env_id_has_a_generated_page_with_the_eight_sections(env_id: str) -> None:
    page = gen_pages.env_page(env_id)
    headings = re.findall(r"^## (.+)$", page, flags=re.M)
    assert headings == list(SECTIONS)  # all eight, in Gymnasium's order, nothing else
    assert page.startswith(f"# {env_id}\n")
    cls = gen_pages.env_class(env_id)
    doc = inspect.cleandoc(cls.__doc__)
    body = doc.split("## Rewards", 1)[1].split("## Starting State", 1)[0].strip()
    assert gen_pages.roles_to_markdown(body) in page  # the docstring's own text, not a summary
    assert ":class:`" not in page and ":mod:`" not in page and ":func:`" not in page


def test_the_environment_index_links_every_id() -> None:
    index = gen_pages.index_page()
    for env_id in quant_envs.ENV_IDS:
        assert f"]({gen_pages.page_name(env_id)}.md)" in index


def test_a_docstring_without_a_section_stops_the_build() -> None:
    class Incomplete:
        """An environment.

        ## Description

        Something.
        """

    with pytest.raises(ValueError, match="lacks sections .*'Action Space'"):
        gen_pages.docstring_sections(Incomplete)


def test_roles_become_code_spans() -> None:
    text = "see :class:`~quant_envs.cvt.env.CVT1DEnv` and :mod:`baselines.cvt`, :func:`f`"
    assert gen_pages.roles_to_markdown(text) == "see `CVT1DEnv` and `baselines.cvt`, `f`"
    # two E* on a line would italicise the text between them; inside code they stay as written
    assert gen_pages.roles_to_markdown("E / E* (E* the ``E*``)") == "E / E\\* (E\\* the ``E*``)"


def test_api_pages_cover_every_public_module() -> None:
    pages = gen_pages.api_packages()
    documented = {m for modules in pages.values() for m in modules}
    for top in gen_pages.API_PACKAGES:
        for path in (REPO / top).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            if any(p.startswith("_") and p != "__init__" for p in parts):
                continue
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            assert module in documented, module


def test_every_included_file_exists() -> None:
    includes = []
    for page in DOCS.rglob("*.md"):
        includes += re.findall(r'^--8<-- "([^"]+)"', page.read_text(encoding="utf-8"), flags=re.M)
    assert "LEADERBOARD.md" in includes and "CHANGELOG.md" in includes
    missing = [path for path in includes if not (REPO / path).is_file()]
    assert not missing, missing


def test_every_recording_has_its_file_and_states_its_command() -> None:
    for name, rec in record.RECORDINGS.items():
        head = (REPO / "benchmarks" / "recorded" / f"{name}.md").read_text(encoding="utf-8").splitlines()[:2]
        assert f"`python benchmarks/record.py {name}`" in head[0], name
        command = rec.command.replace(" --out {out}", "").replace("{out}", "OUT")
        assert f"`{command}`" in head[1], name
        for figure in rec.figures:
            assert (REPO / "benchmarks" / "recorded" / name / figure).is_file(), (name, figure)


def test_record_renders_provenance_and_fences_fixed_width_output() -> None:
    rec = record.Recording("python tool.py --out {out}", "1 s", code_block=True)
    page = record.render("tool", rec, "a  b\n1  2\n")
    lines = page.splitlines()
    assert lines[0] == "<!-- written by `python benchmarks/record.py tool`; do not edit by hand -->"
    assert lines[1].startswith("Output of `python tool.py` (") and "Python " in lines[1]
    assert lines[3:] == ["```text", "a  b", "1  2", "```"]


def test_record_refuses_an_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert record.main(["nope"]) == 2
    assert "unknown recording 'nope'" in capsys.readouterr().err


def test_api_docstrings_get_code_spans_and_fenced_doctests() -> None:
    roles = _load("griffe_roles")
    text = "Model.\n\n>>> p = f(1)\n>>> p.energy()\n1.0\n\nSee :func:`~a.b.energy`."
    out = roles._fence_doctests(roles.ROLE.sub(roles._code, text))
    assert out == "Model.\n\n```pycon\n>>> p = f(1)\n>>> p.energy()\n1.0\n```\n\nSee `energy`."


def test_the_api_reference_sees_docstrings_assigned_after_the_class() -> None:
    import griffe

    roles = _load("griffe_roles")
    loader = griffe.GriffeLoader(extensions=griffe.load_extensions(roles.RolesToCode))
    module = loader.load("quant_envs.cvt.env_v1")
    doc = module["CVT1DEnvV1"].docstring
    assert doc is not None and "## Version History" in doc.value and ":mod:`" not in doc.value


def test_an_included_repository_file_keeps_working_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "LEADERBOARD.md").write_text(
        "See [how to submit](SUBMISSION.md), [the docs](docs/benchmarks.md#reward-noise), "
        "[the changelog](CHANGELOG.md), [elsewhere](https://example.org/x.md) and [above](#results).\n")
    monkeypatch.setattr(gen_pages, "ROOT", tmp_path)
    text = gen_pages.include_repo_file("LEADERBOARD.md", "problems/tables.md")
    assert text == ("See how to submit (`SUBMISSION.md`), [the docs](../benchmarks.md#reward-noise), "
                    "[the changelog](../changelog.md), [elsewhere](https://example.org/x.md) and [above](#results).\n")
