"""Shared CLI plumbing (numpy-free and TensorFlow-free)."""

from __future__ import annotations

import inspect
import sys

__all__ = ["cli"]


def _check_flags(fn, argv: list[str]) -> None:
    """Reject a flag the command does not take *before* it runs (fire would run it first)."""
    if isinstance(fn, dict):  # subcommands: the first word picks the function
        if not argv or argv[0] not in fn:
            return  # fire lists the commands
        fn, argv = fn[argv[0]], argv[1:]
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    for token in argv:
        if token == "--":  # fire's own flags follow
            break
        if not token.startswith("--"):
            continue
        name = token[2:].split("=", 1)[0].replace("-", "_")
        if name == "help" or name in params or (name[:2] == "no" and name[2:] in params):
            continue
        known = ", ".join("--" + p.replace("_", "-") for p in params)
        raise ValueError(f"Unknown flag {token.split('=', 1)[0]}; this command takes {known}.")


def cli(fn) -> None:
    """Run ``fn`` (or a dict of subcommands) as a fire CLI.

    A user error (an unknown flag, ValueError, FileNotFoundError, KeyError) becomes one line
    on stderr and exit status 2, with nothing run or written.
    """
    import fire

    try:
        _check_flags(fn, sys.argv[1:])
        fire.Fire(fn)
    except (ValueError, FileNotFoundError, KeyError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
