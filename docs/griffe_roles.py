"""Griffe extension for the API reference: docstrings as the code base writes them, in Markdown.

- reStructuredText roles become code spans: the docstrings name objects as ``:class:`~a.b.C```,
  ``:func:`f``` ...; Markdown has no roles, so they would render as literal ``:class:`` text (the
  environment pages do the same in ``docs/gen_pages.py``);
- doctest examples (``>>>`` lines and their output, up to a blank line) become ``pycon`` code
  blocks: Markdown would read ``>>>`` as a quotation and run the lines together;
- a class whose docstring is assigned after the class statement (``Env.__doc__ = TEMPLATE.format(...)``,
  shared section text) gets it from the imported class, as griffe reads source without running it.

Loaded by mkdocstrings (mkdocs.yml, ``extensions:``).
"""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|mod|meth|data|attr|obj|exc):`(~?)([^`]+)`")
CODE_SPAN = re.compile(r"(``.*?``|`[^`]*`)", flags=re.S)
#: a one-letter symbol with a star (E*, F*, w*: an optimum), which Markdown would read as emphasis
STARRED = re.compile(r"\b([A-Za-z])\*(?![A-Za-z*])")


DOCTEST = re.compile(r"^(?P<indent>[ \t]*)>>> .*(?:\n(?P=indent)\S.*)*", flags=re.M)


def _fence_doctests(text: str) -> str:
    def fence(match: re.Match[str]) -> str:
        indent = match.group("indent")
        return f"{indent}```pycon\n{match.group(0)}\n{indent}```"

    return DOCTEST.sub(fence, text)


def _escape_starred(text: str) -> str:
    """``E*``, ``w*`` (optima) escaped outside code spans: two on a line would italicise the text between."""
    parts = CODE_SPAN.split(text)  # odd items are code spans, left as they are
    parts[::2] = [STARRED.sub(r"\1\\*", part) for part in parts[::2]]
    return "".join(parts)


def _code(match: re.Match[str]) -> str:
    tilde, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


class RolesToCode(griffe.Extension):
    """Rewrite every docstring's roles once it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is None and obj.is_class:
            runtime = getattr(importlib.import_module(obj.module.path), obj.name, None)
            doc = inspect.getdoc(runtime) if runtime is not None and runtime.__dict__.get("__doc__") else None
            if doc:
                obj.docstring = griffe.Docstring(doc, parent=obj)
        if obj.docstring is not None:
            obj.docstring.value = _fence_doctests(_escape_starred(ROLE.sub(_code, obj.docstring.value)))
