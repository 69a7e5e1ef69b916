"""Shared CLI plumbing (numpy-free and TensorFlow-free)."""

from __future__ import annotations

import sys

__all__ = ["cli"]


def cli(fn) -> None:
    """Run ``fn`` as a fire CLI; a user error becomes one line on stderr and exit status 2."""
    import fire

    try:
        fire.Fire(fn)
    except (ValueError, FileNotFoundError, KeyError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
