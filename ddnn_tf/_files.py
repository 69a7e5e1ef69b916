"""Write a directory all at once: into a temporary sibling, renamed into place at the end."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_directory"]


@contextmanager
def atomic_directory(out: str | Path, *, overwrite: bool, what: str) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``out`` when the block succeeds.

    A failure inside the block removes the temporary directory, so nothing half-written
    is ever left at ``out``; an existing ``out`` is kept unless ``overwrite``.

    Raises:
        ValueError: ``out`` exists and ``overwrite`` is not set (``what`` names it).
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise ValueError(f"{what} {out} already exists; pass --overwrite to replace it.")
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
