"""Atomic file writes: a crash or a second run never leaves a half-written file a user keeps.

Each writer writes to a temporary file in the destination's directory, flushes it to disk, then
renames it over the destination (``os.replace`` is atomic on POSIX and Windows).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

# markdown_table's old home (quant_envs.text_tables has the one table formatter): kept importable
from quant_envs.text_tables import markdown_table  # noqa: F401


def _read_umask() -> int:
    try:  # Linux: read it without changing it
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0)  # elsewhere: set and restore at once, at import time
    os.umask(mask)
    return mask


_UMASK = _read_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it vanishes.

    For writers that insist on a file name (``torch.save``, ``np.save``, ``savefig``). The
    temporary name keeps the destination's extension, so format detection by extension still works.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.tmp-", suffix=path.suffix)
    os.close(fd)
    # mkstemp makes the file owner-only (0600); give it the permissions a plain open() would.
    os.chmod(tmp, 0o666 & ~_UMASK)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def check_writable_dir(path: str | os.PathLike[str], name: str) -> Path:
    """Create directory ``path`` if needed and prove it writable by creating and removing a file.

    For checking output paths *before* long work. Raises ValueError naming ``name`` (the argument or
    flag) for an empty path, an existing file, a path under a file, a read-only or virtual file
    system (``/proc``) or any other OS error; a probe is the only test that sees all of those
    (``os.access`` says yes to root on a read-only directory).
    """
    raw = os.fspath(path)
    if raw == "":
        raise ValueError(f"{name} '' is not allowed; expected a directory path (use . for the current directory)")
    p = Path(raw).expanduser()
    if p.exists() and not p.is_dir():
        raise ValueError(f"{name} {raw!r} is an existing file; expected a directory")
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=p, prefix=".write-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"{name} {raw!r} is not a writable directory: {describe_os_error(exc)}") from None
    return p


def writable_directory_problem(flag: str, path: str) -> str | None:
    """Why ``path`` cannot be the output directory given as ``flag`` (None if it can): the message
    of :func:`check_writable_dir`, for command lines that print one line and exit 2."""
    try:
        check_writable_dir(path, flag)
    except ValueError as exc:
        return str(exc)
    return None


def check_writable_file(path: str | os.PathLike[str], name: str) -> Path:
    """Check that a file can be written at ``path`` (its directory is created if needed); see above."""
    raw = os.fspath(path)
    if raw == "":
        raise ValueError(f"{name} '' is not allowed; expected a file path")
    p = Path(raw).expanduser()
    if p.is_dir() or raw.endswith(os.sep):
        raise ValueError(f"{name} {raw!r} is a directory; expected a file path")
    check_writable_dir(p.parent, f"{name} {raw!r}: its directory")
    if p.exists() and not os.access(p, os.W_OK):
        raise ValueError(f"{name} {raw!r} exists and is not writable")
    return p


def describe_os_error(exc: OSError) -> str:
    """One line for an OSError: its message and the file it concerns."""
    text = exc.strerror or str(exc) or type(exc).__name__
    return f"{text} ({exc.filename})" if exc.filename else text


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[Any]], object], *, binary: bool = False) -> Path:
    """Call ``write(file)`` on a temporary file, then move it onto ``path``."""
    with atomic_path(path) as tmp, open(tmp, "wb" if binary else "w", encoding=None if binary else "utf-8") as f:
        write(f)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(text))


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, indent: int = 2) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically."""
    return atomic_write(path, lambda f: json.dump(obj, f, indent=indent, sort_keys=False, default=_json_default))


def json_ready(value: Any) -> Any:
    """A plain copy of ``value`` that ``json.dumps`` takes: numpy arrays to (nested) lists, numpy
    scalars to Python numbers, mappings to dicts and tuples to lists (recursively), and an object
    with a ``to_dict()`` method (a solver's result, a run record) to its dict; anything else as is."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):  # before to_dict: a result type that is a dict keeps all its fields
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if callable(getattr(value, "to_dict", None)):
        return json_ready(value.to_dict())
    return value


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays appear in results; JSON knows only Python numbers and lists.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def atomic_write_csv(path: str | os.PathLike[str], rows: Sequence[dict[str, Any]],
                     fields: Sequence[str] | None = None) -> Path:
    """Write ``rows`` (dicts) as CSV with a header to ``path`` atomically; keys not in ``fields`` are dropped."""
    fields = list(fields if fields is not None else (rows[0].keys() if rows else []))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, buf.getvalue())
