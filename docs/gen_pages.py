"""MkDocs hook: one page per registered environment id, generated from its class docstring.

As Gymnasium builds its environment pages, every id in ``quant_envs.ENV_IDS`` gets a page
``environments/<Name>-v<N>.md`` made of the eight docstring sections (Description, Action Space,
Observation Space, Rewards, Starting State, Episode End, Arguments, Version History), preceded by
what the registration adds (entry point, registered arguments, episode horizon, the other
versions). An entry point whose docstring lacks a section stops the build. The pages are added to
the nav under "Environments", grouped by problem, and ``environments/index.md`` lists them all.
The API reference gets a page per package (``api/<package>.md``), and the figures recorded by
``benchmarks/record.py`` are served as ``recorded/<name>/<file>``.

Pages include repository files (benchmark recordings, ``LEADERBOARD.md``, ``CHANGELOG.md``) with
a line ``--8<-- "PATH"``; the hook inlines them with their relative links re-aimed at the page.

Docstrings use reStructuredText roles (``:class:`x```); Markdown has none, so they become code
spans here (``docs/griffe_roles.py`` does the same for the API reference).
"""

from __future__ import annotations

import importlib
import inspect
import posixpath
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import quant_envs
from quant_envs.base import DOCSTRING_SECTIONS

if TYPE_CHECKING:  # mkdocs is the docs extra's: the page functions (and their tests) run without it
    from mkdocs.structure.files import Files

SECTIONS = DOCSTRING_SECTIONS

#: The nav groups, by the entry point's sub-package.
PROBLEMS = {
    "mixed_precision": "Mixed precision",
    "compander": "Companding quantizers",
    "feel": "Federated edge learning",
    "cvt": "Centroidal Voronoi tessellations",
}

ROLE = re.compile(r":(?:class|func|mod|meth|data|attr|obj|exc):`~?([^`]+)`")
CODE_SPAN = re.compile(r"(``.*?``|`[^`]*`)", flags=re.S)
#: a one-letter symbol with a star (E*, F*, w*: an optimum), which Markdown would read as emphasis
STARRED = re.compile(r"\b([A-Za-z])\*(?![A-Za-z*])")

#: The packages of the API reference, in the layers' order (bottom first).
API_PACKAGES = ("quant_envs", "hw_sim", "baselines", "agents")
ROOT = Path(__file__).resolve().parent.parent

CLIENTS_PLACEHOLDER = """# Using quant-envs from other libraries

This page has not been written yet. Meanwhile: [Scale-out](scale-out.md) covers Ray Tune, RLlib
and vectorised environments, and [Training and comparing](training.md) the SB3 agents.
"""


def roles_to_markdown(text: str) -> str:
    """``:class:`~a.b.C``` -> ```C```, ``:mod:`a.b``` -> ```a.b```: code spans Markdown renders.

    Outside code spans, starred symbols (``E*``, ``w*``: optima) are escaped: two of them on a line
    would otherwise italicise the text between.
    """

    def code(match: re.Match[str]) -> str:
        target = match.group(1)
        shown = target.rsplit(".", 1)[-1] if match.group(0).count("~") else target
        return f"`{shown}`"

    parts = CODE_SPAN.split(ROLE.sub(code, text))  # odd items are code spans, left as they are
    parts[::2] = [STARRED.sub(r"\1\\*", part) for part in parts[::2]]
    return "".join(parts)


def page_name(env_id: str) -> str:
    return env_id.split("/", 1)[1]


def env_class(env_id: str) -> type:
    module_name, class_name = quant_envs.ENV_IDS[env_id].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def docstring_sections(cls: type) -> tuple[str, dict[str, str]]:
    """The docstring's summary and its ``## Section`` bodies; raises if one of SECTIONS is missing."""
    doc = inspect.cleandoc(cls.__doc__ or "")
    parts = re.split(r"^## (.+?)\s*$", doc, flags=re.M)
    summary, sections = parts[0].strip(), {}
    for title, body in zip(parts[1::2], parts[2::2]):
        sections[title.strip()] = body.strip()
    missing = [s for s in SECTIONS if s not in sections]
    if missing:
        raise ValueError(f"{cls.__module__}.{cls.__qualname__} docstring lacks sections {missing}; "
                         f"every environment's docstring has {list(SECTIONS)}")
    return summary, sections


def problem_of(env_id: str) -> str:
    return quant_envs.ENV_IDS[env_id].split(".")[1]


def env_page(env_id: str) -> str:
    cls = env_class(env_id)
    summary, sections = docstring_sections(cls)
    name = page_name(env_id)
    family = name.rsplit("-v", 1)[0]
    siblings = [i for i in quant_envs.ENV_IDS if page_name(i).rsplit("-v", 1)[0] == family and i != env_id]
    path = f"{cls.__module__}.{cls.__qualname__}"
    kwargs = quant_envs.ENV_KWARGS.get(env_id)
    horizon = quant_envs.ENV_MAX_EPISODE_STEPS.get(env_id)
    rows = [
        ("Entry point", f"[`{path}`](../{api_page_of(cls.__module__)}#{path})"),
        ("Make", f'`gym.make("{env_id}")` after `import quant_envs`'),
        ("Registered arguments", ", ".join(f"`{k}={v!r}`" for k, v in kwargs.items()) if kwargs else "none (the class defaults)"),
        ("Episode horizon", f"`max_episode_steps={horizon}` (truncation)" if horizon else "none: episodes end by termination"),
    ]
    newest = latest_version(env_id)
    rows.append(("Version", "current" if newest == env_id else
                 f"kept registered; the current one is [`{newest}`]({page_name(newest)}.md)"))
    if siblings:
        rows.append(("Other versions", ", ".join(f"[`{i}`]({page_name(i)}.md)" for i in siblings)))
    lines = [f"# {env_id}", "", "<!-- generated by docs/gen_pages.py from the class docstring -->", "",
             roles_to_markdown(summary), "", "| registration | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    for title in SECTIONS:
        lines += ["", f"## {title}", "", roles_to_markdown(sections[title])]
    return "\n".join(lines) + "\n"


def latest_version(env_id: str) -> str:
    """The highest ``-vN`` registered for ``env_id``'s name."""
    family = page_name(env_id).rsplit("-v", 1)[0]
    versions = [i for i in quant_envs.ENV_IDS if page_name(i).rsplit("-v", 1)[0] == family]
    return max(versions, key=lambda i: int(i.rsplit("-v", 1)[1]))


def index_page() -> str:
    lines = ["# Environments", "",
             "Every id `import quant_envs` registers, one page each, generated from the environment's "
             "docstring (its eight sections, as Gymnasium's own environments have). A change that can "
             "alter an id's behaviour gets a new `-vN` id; the old one stays registered.", ""]
    for problem, title in PROBLEMS.items():
        lines += [f"## {title}", "", "| id | what the agent does | version |", "|---|---|---|"]
        for env_id in quant_envs.ENV_IDS:
            if problem_of(env_id) == problem:
                summary = roles_to_markdown(docstring_sections(env_class(env_id))[0]).replace("\n", " ")
                newest = latest_version(env_id)
                version = "current" if newest == env_id else f"kept; current: [`{page_name(newest)}`]({page_name(newest)}.md)"
                lines.append(f"| [`{env_id}`]({page_name(env_id)}.md) | {summary} | {version} |")
        lines.append("")
    return "\n".join(lines)


def api_packages() -> dict[str, list[str]]:
    """Package or sub-package -> its public modules (found on disk: nothing is imported)."""
    pages: dict[str, list[str]] = {}
    for top in API_PACKAGES:
        for init in sorted((ROOT / top).rglob("__init__.py")):
            package = ".".join(init.parent.relative_to(ROOT).parts)
            modules = [package] + [f"{package}.{m.stem}" for m in sorted(init.parent.glob("*.py"))
                                   if not m.stem.startswith("_")]
            pages[package] = modules
    return pages


def api_page_of(module: str) -> str:
    """The API page that documents ``module`` (the page of its package)."""
    package = module if module in api_packages() else module.rsplit(".", 1)[0]
    return f"api/{package}.md"


def api_page(package: str, modules: list[str]) -> str:
    lines = [f"# {package}", "", "<!-- generated by docs/gen_pages.py; the text is the docstrings' -->", ""]
    for module in modules:
        lines += [f"::: {module}", ""]
    return "\n".join(lines)


def recordings_table() -> str:
    """The recordings of ``benchmarks/record.py``: name, command, cost, and the recorded file's provenance."""
    record = importlib.import_module("benchmarks.record")  # benchmarks/ is a namespace package
    lines = ["| recording | command | cost | recorded |", "|---|---|---|---|"]
    for name, rec in record.RECORDINGS.items():
        path = ROOT / "benchmarks" / "recorded" / f"{name}.md"
        head = path.read_text(encoding="utf-8").splitlines()[:2] if path.exists() else []
        date = re.search(r"\d{4}-\d{2}-\d{2}", head[1]) if len(head) > 1 else None
        how = "an earlier run's figures" if head and "recorded before" in head[0] else "by record.py"
        made = f"{date.group(0)}, {how}" if date else "not yet"
        command = rec.command.replace(" --out {out}", "").replace("{out}", "OUT")
        lines.append(f"| `{name}` | `{command}` | ~{rec.cost} | {made} |")
    return "\n".join(lines)


#: ``--8<-- "PATH"`` on a line of its own: a repository file included in the page as it is.
INCLUDE = re.compile(r'^--8<-- "([^"]+)"[ \t]*$', flags=re.M)
LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")
#: repository files outside docs/ that are pages of the site
SITE_PAGES = {"README.md": "index.md", "CHANGELOG.md": "changelog.md", "LEADERBOARD.md": "leaderboard.md"}


def include_repo_file(path: str, page_uri: str) -> str:
    """The text of repository file ``path`` for the page ``page_uri``, its relative links re-aimed.

    A link in an included file is relative to that file (``LEADERBOARD.md`` at the root may link
    ``SUBMISSION.md``); on the site it must be relative to the page. Links to files under
    ``docs/`` or to repository files that are site pages are rewritten; a link to any other
    repository file becomes its path in code (the site does not serve it). A missing file stops
    the build.
    """
    text = (ROOT / path).read_text(encoding="utf-8")
    here = posixpath.dirname(path)
    page_dir = posixpath.dirname(page_uri)

    def aim(match: re.Match[str]) -> str:
        bang, label, target = match.groups()
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            return match.group(0)  # another site, or an anchor on the same page
        file, hash_, anchor = target.partition("#")
        repo_path = posixpath.normpath(posixpath.join(here, file))
        site = repo_path[len("docs/"):] if repo_path.startswith("docs/") else SITE_PAGES.get(repo_path)
        if site is None:
            return f"{label} (`{repo_path}`)" if label.strip("`") != repo_path else f"`{repo_path}`"
        return f"{bang}[{label}]({posixpath.relpath(site, page_dir)}{hash_}{anchor})"

    return LINK.sub(aim, text)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    markdown = INCLUDE.sub(lambda m: include_repo_file(m.group(1), page.file.src_uri), markdown)
    return markdown.replace("<!-- recordings -->", recordings_table()) if "<!-- recordings -->" in markdown else markdown


def on_config(config: Any) -> Any:
    """Put every id's page into the nav's Environments section, grouped by problem, and the API pages."""
    for entry in config.nav:
        if isinstance(entry, dict) and "API reference" in entry:
            entry["API reference"] = ["api/index.md", *({p: f"api/{p}.md"} for p in api_packages())]
        if isinstance(entry, dict) and "Environments" in entry:
            groups = {title: [] for title in PROBLEMS.values()}
            for env_id in quant_envs.ENV_IDS:
                groups[PROBLEMS[problem_of(env_id)]].append({page_name(env_id): f"environments/{page_name(env_id)}.md"})
            entry["Environments"] = ["environments/index.md", *({t: p} for t, p in groups.items())]
    return config


def on_files(files: Files, config: Any) -> Files:
    from mkdocs.structure.files import File

    files.append(File.generated(config, "environments/index.md", content=index_page()))
    for env_id in quant_envs.ENV_IDS:
        files.append(File.generated(config, f"environments/{page_name(env_id)}.md", content=env_page(env_id)))
    for package, modules in api_packages().items():
        files.append(File.generated(config, f"api/{package}.md", content=api_page(package, modules)))
    # the benchmarks' recorded figures, served as recorded/<name>/<file> (pages link them from there)
    for figure in sorted((ROOT / "benchmarks" / "recorded").glob("*/*.png")):
        uri = f"recorded/{figure.parent.name}/{figure.name}"
        files.append(File.generated(config, uri, content=figure.read_bytes()))
    # the clients page is another helper's; until it lands the nav entry points at a stub
    if not (Path(config.docs_dir) / "clients.md").exists():
        files.append(File.generated(config, "clients.md", content=CLIENTS_PLACEHOLDER))
    return files
