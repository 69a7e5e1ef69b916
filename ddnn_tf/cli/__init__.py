"""The ``ddnn`` command: one subcommand per task, each a thin shell over one library
function. ``python -m ddnn_tf.<task>`` runs the same commands.

>>> sorted(COMMANDS)[:3]
['bench', 'broker', 'convert']
"""

from __future__ import annotations

import importlib
import inspect
import sys

from ddnn_tf.cli import flags

__all__ = ["COMMANDS", "alias", "main"]

#: Command name -> the module of ``ddnn_tf.cli`` that declares it (its ``COMMAND``
#: function, or ``COMMANDS`` for a group of subcommands). Modules are imported when
#: used, and import nothing heavy at the top, so ``ddnn run`` never loads TensorFlow.
COMMANDS = {
    "train": "train",
    "evaluate": "evaluate",
    "convert": "convert",
    "run": "run",
    "serve": "serve",
    "device": "device",
    "deploy": "deploy",
    "broker": "broker",
    "mcu": "mcu",
    "cost": "cost",
    "search": "search",
    "bench": "bench",
    "experiments": "experiments",
}

_USAGE_ERROR = 2


def _target(name: str):
    module = importlib.import_module(f"ddnn_tf.cli.{COMMANDS[name]}")
    return getattr(module, "COMMAND", None) or module.COMMANDS


def _summary(target) -> str:
    doc = inspect.getdoc(target) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _overview(prog: str) -> str:
    from ddnn_tf import __version__

    lines = [f"usage: {prog} COMMAND [ARGS] [--help]", "", f"ddnn_tf {__version__}: commands:"]
    for name in COMMANDS:
        target = _target(name)
        if isinstance(target, dict):
            for sub, fn in target.items():
                lines.append(f"  {name + ' ' + sub:<20}{_summary(fn)}")
        else:
            lines.append(f"  {name:<20}{_summary(target)}")
    lines += ["", f"'{prog} COMMAND --help' shows a command's flags."]
    return "\n".join(lines)


def _usage_error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(_USAGE_ERROR)


def main(argv: list[str] | None = None, prog: str = "ddnn") -> None:
    """Run ``ddnn ARGV`` (default: ``sys.argv[1:]``)."""
    with flags.reader_may_leave():
        _dispatch(list(sys.argv[1:] if argv is None else argv), prog)


def _dispatch(argv: list[str], prog: str) -> None:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_overview(prog))
        if not argv:
            sys.exit(_USAGE_ERROR)
        return
    if argv[0] == "--version":
        from ddnn_tf import __version__

        print(f"ddnn_tf {__version__}")
        return
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        _usage_error(f"unknown command {name!r}; the commands are {', '.join(COMMANDS)}.")
    target = _target(name)
    prog = f"{prog} {name}"
    if isinstance(target, dict):
        if not rest or rest[0] in ("-h", "--help"):
            lines = [f"usage: {prog} {'|'.join(target)} [ARGS] [--help]", ""]
            lines += [f"  {sub:<12}{_summary(fn)}" for sub, fn in target.items()]
            print("\n".join(lines))
            if not rest:
                sys.exit(_USAGE_ERROR)
            return
        if rest[0] not in target:
            _usage_error(f"unknown command {name} {rest[0]!r}; choose one of {', '.join(target)}.")
        prog = f"{prog} {rest[0]}"
        target, rest = target[rest[0]], rest[1:]
    flags.run(target, rest, prog)


def alias(command: str) -> None:
    """``python -m ddnn_tf.<command> ARGS``: the same as ``ddnn <command> ARGS``."""
    main([command, *sys.argv[1:]], prog="ddnn")
