"""Write a directory all at once: into a temporary sibling, renamed into place at the end;
read a JSON document from a file or text."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ddnn_tf.errors import ConfigError, FormatError

__all__ = ["atomic_directory", "check_output_dir", "parse_json", "read_json"]


def parse_json(text: str, source: str) -> Any:
    """The JSON document in ``text``.

    Args:
        text: the document.
        source: what holds it, for the error (a file name).

    Raises:
        FormatError: ``text`` is not JSON, or nests too deeply to parse.

    Example:
        >>> parse_json('{"split": ["local", "cloud"]}', "manifest.json")
        {'split': ['local', 'cloud']}
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise FormatError(f"{source} is not valid JSON: {err}") from None
    except RecursionError:
        raise FormatError(f"{source} is not valid JSON: it nests too deeply.") from None


def read_json(path: Path) -> Any:
    """The JSON document in the file ``path``.

    Raises:
        FileNotFoundError / OSError: the file cannot be read.
        FormatError: not UTF-8 text, not JSON, or nested too deeply to parse.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise FormatError(f"{path} is not valid JSON: {err}") from None
    return parse_json(text, str(path))


def check_output_dir(
    out: str | Path, *, overwrite: bool, what: str, marker: str | None = None
) -> Path:
    """Check, before any work starts, that directory ``out`` can be written.

    Args:
        out: the directory a command will create (or replace).
        overwrite: whether an existing ``out`` may be replaced.
        what: how errors name it ("Run directory", "Output directory").
        marker: a file that marks a directory this command wrote (``topology.json``,
            ``manifest.json``); an existing non-empty ``out`` without it is never replaced.

    Returns:
        ``out`` as a Path.

    Raises:
        ValueError: ``out`` is a file, exists without ``overwrite``, is another kind of
            directory, or its parent is a file or cannot be written to.
    """
    out = Path(out)
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise ConfigError(f"{what} {out} exists and is a file, not a directory.")
        if not overwrite:
            raise ConfigError(f"{what} {out} already exists; pass `overwrite` to replace it.")
        if marker is not None and any(out.iterdir()) and not (out / marker).is_file():
            raise ConfigError(
                f"{what} {out} exists and was not written by this command (no {marker}); "
                "refusing to replace it. Choose another output directory."
            )
    parent = out.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"Cannot create {what.lower()} {out}: {parent} is a file.")
    try:  # a real probe: permissions, read-only file systems, root alike
        shutil.rmtree(tempfile.mkdtemp(prefix=f".{out.name}.probe.", dir=parent))
    except OSError as err:
        raise ConfigError(
            f"Cannot create {what.lower()} {out}: {parent} is not writable ({err.strerror or err})."
        ) from None
    return out


@contextmanager
def atomic_directory(out: str | Path, *, overwrite: bool, what: str) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``out`` when the block succeeds.

    A failure inside the block removes the temporary directory, so nothing half-written
    is ever left at ``out``; an existing ``out`` is kept unless ``overwrite``.

    Raises:
        ValueError: as :func:`check_output_dir` (``what`` names ``out``).
    """
    out = check_output_dir(out, overwrite=overwrite, what=what)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield tmp
        tmp.chmod(0o755)  # mkdtemp's 0700 would make the result private to this user
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
