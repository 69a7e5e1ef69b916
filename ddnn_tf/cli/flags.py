"""Typed, ranged flags and one-line errors for every ``ddnn`` command (standard library
and fire only).

A command is a plain function whose signature is its flags and whose docstring is its
help. :func:`command` declares, beside it, the range of each numeric flag; :func:`run`
then

* rejects a flag the command does not take before anything runs;
* checks every flag against its annotation (``int``, ``float``, ``bool``) and declared
  range, naming the flag and the value;
* prints help (``--help`` / ``-h``) on standard output;
* turns a :class:`~ddnn_tf.errors.DDNNError`, an ``OSError`` or a missing optional
  dependency into one ``error:`` line on stderr and exit status 2 (a library error about
  an argument the user typed as a flag names the flag); any other exception is a bug and
  keeps its traceback;
* keeps TensorFlow's C++ start-up lines off the terminal (``DDNN_TF_LOG=debug`` shows them).

:func:`reader_may_leave` wraps a whole command: when standard output's reader goes away
early (``ddnn run --help | head``), the command stops quietly with the status a shell gives
a command that ``SIGPIPE`` ended.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import os
import re
import select
import signal
import sys
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Any

from ddnn_tf.core.logs import native_logs_hidden
from ddnn_tf.errors import ConfigError, DDNNError, extra_for

__all__ = [
    "AT_LEAST_1",
    "NON_NEGATIVE",
    "POSITIVE",
    "PROBABILITY",
    "Range",
    "check_flag",
    "command",
    "flag_items",
    "flag_name",
    "reader_may_leave",
    "run",
]


@dataclass(frozen=True)
class Range:
    """The allowed values of a numeric flag; ``None`` is unbounded."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        low, high = self.low, self.high
        if low is not None and (value < low or (value == low and self.low_open)):
            return False
        return not (high is not None and (value > high or (value == high and self.high_open)))

    def text(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high}")
        return " and ".join(parts)


AT_LEAST_1 = Range(1)
NON_NEGATIVE = Range(0)
POSITIVE = Range(0, low_open=True)
PROBABILITY = Range(0, 1)

_INT = re.compile(r"[+-]?\d+")
_NAMED = re.compile(r"`([a-z][a-z0-9_]*)`")  # a parameter named in a library message
_RANGES = "__ddnn_ranges__"


def command(**ranges: Range) -> Callable:
    """Declare the ranges of a command's numeric flags, by parameter name.

    >>> @command(epochs=AT_LEAST_1)
    ... def train(epochs: int = 5) -> None:
    ...     "Train."
    >>> train.__ddnn_ranges__["epochs"].text()
    '>= 1'
    """

    def declare(fn: Callable) -> Callable:
        unknown = set(ranges) - set(inspect.signature(fn).parameters)
        if unknown:  # a typo in a declaration is a bug, caught at import
            raise TypeError(f"{fn.__name__} has no parameter(s) {sorted(unknown)}")
        setattr(fn, _RANGES, dict(ranges))
        return fn

    return declare


def flag_name(param: str) -> str:
    """``batch_size`` -> ``--batch-size``."""
    return "--" + param.replace("_", "-")


def flag_items(value: Any, sep: str = ",") -> list[str]:
    """Items of a comma-separated flag; fire hands ``a,b`` over as a tuple, ``3`` as an int."""
    if isinstance(value, (list, tuple)):
        value = sep.join(map(str, value))
    return [item.strip() for item in str(value).split(sep) if item.strip()]


def check_flag(name: str, value: Any, kind: str, allowed: Range | None = None) -> Any:
    """Check one flag value against its kind (``"int"``, ``"float"``, ``"bool"``, ``"str"``)
    and range.

    Args:
        name: the parameter name.
        value: what fire parsed from the command line.
        kind: ``"int"``, ``"float"``, ``"bool"`` or ``"str"``.
        allowed: the range declared for it, if any.

    Returns:
        The value as an ``int``, ``float``, ``bool`` or ``str``. A text flag's value is
        best taken as typed (:func:`run` does); what fire made of it is turned back into
        text where it can be: a number as ``str``, a tuple (``a,b``) joined by commas.

    Raises:
        ConfigError: a value of the wrong type, not finite, or out of range, naming the
            flag and the value.
    """
    bounds = allowed.text() if allowed is not None else ""
    want = {"int": "an integer", "float": "a finite number", "bool": "true or false"}
    want = want.get(kind, "text (a name or a path)")
    want = f"{want} {bounds}" if bounds and kind in ("int", "float") else want
    bad = ConfigError(f"{flag_name(name)}: expected {want}, got {value!r}.")
    if kind == "str":
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, (list, tuple)):
            return ",".join(map(str, value))
        raise bad
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad
        return value
    if isinstance(value, bool):
        raise bad
    if kind == "int":
        if isinstance(value, str) and _INT.fullmatch(value.strip()):
            value = int(value)
        if not isinstance(value, int):
            raise bad
    else:
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise bad from None
        if not math.isfinite(value):
            raise bad
    if allowed is not None and value not in allowed:
        raise bad
    return value


def _kinds(fn: Callable) -> dict[str, str]:
    """Parameter name -> "int" / "float" / "bool" / "str" from ``fn``'s annotations."""
    kinds = {}
    for name, param in inspect.signature(fn).parameters.items():
        text = param.annotation if isinstance(param.annotation, str) else ""
        if not text and isinstance(param.annotation, type):
            text = param.annotation.__name__
        types = {t.strip() for t in text.split("|")} - {"None"}
        if len(types) == 1 and (kind := types.pop()) in ("int", "float", "bool", "str"):
            kinds[name] = kind
    return kinds


def _typed(fn: Callable, typed: dict[str, str] | None = None) -> Callable:
    """``fn`` with its int/float/bool/str flags checked (and coerced) before it runs; a text
    flag in ``typed`` (name -> the text on the command line) gets that text, not what fire
    parsed it into (``--token 007`` is ``"007"``, not ``7``)."""
    kinds = _kinds(fn)
    ranges = getattr(fn, _RANGES, {})
    signature = inspect.signature(fn)
    typed = typed or {}

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        for name, value in list(bound.arguments.items()):
            default = signature.parameters[name].default
            if kinds.get(name) == "str" and name in typed:
                bound.arguments[name] = typed[name]
            elif name in kinds and not (value is None and default is None):
                bound.arguments[name] = check_flag(name, value, kinds[name], ranges.get(name))
        return fn(*bound.args, **bound.kwargs)

    return wrapper


def _typed_text(argv: list[str]) -> dict[str, str]:
    """Parameter name -> the text given to ``--name VALUE`` or ``--name=VALUE``."""
    own = _own_args(argv)
    text = {}
    for i, token in enumerate(own):
        if token[:2] != "--":
            continue
        name, eq, value = token[2:].partition("=")
        if eq:
            text[name.replace("-", "_")] = value
        elif i + 1 < len(own) and own[i + 1][:2] != "--":
            text[name.replace("-", "_")] = own[i + 1]
    return text


def _own_args(argv: list[str]) -> list[str]:
    """The command's own arguments: those before fire's ``--`` separator."""
    return argv[: argv.index("--")] if "--" in argv else argv


def _passed(argv: list[str]) -> set[str]:
    """Parameter names given as ``--flag`` on the command line."""
    return {t[2:].split("=", 1)[0].replace("-", "_") for t in _own_args(argv) if t[:2] == "--"}


def _check_known(fn: Callable, argv: list[str]) -> None:
    """Reject a flag the command does not take *before* it runs (fire would run it first)."""
    params = inspect.signature(fn).parameters
    for token in _own_args(argv):
        if not token.startswith("--"):
            continue
        name = token[2:].split("=", 1)[0].replace("-", "_")
        if name in params or (name[:2] == "no" and name[2:] in params):
            continue
        known = ", ".join(flag_name(p) for p in params)
        raise ConfigError(f"Unknown flag {token.split('=', 1)[0]}; this command takes {known}.")


def wants_help(argv: list[str]) -> bool:
    return any(t in ("--help", "-h") for t in argv)


def help_text(fn: Callable, prog: str) -> str:
    """fire's help page of ``fn`` as the command ``prog``."""
    from fire import helptext, trace

    return helptext.HelpText(fn, trace=trace.FireTrace(fn, name=prog))


def _stdout_reader_gone() -> bool:
    """Whether standard output is a pipe whose reading end has been closed."""
    if not hasattr(select, "poll"):  # no poll(): assume the broken pipe is standard output
        return True
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):  # replaced by an object without a descriptor
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))


@contextlib.contextmanager
def reader_may_leave() -> Iterator[None]:
    """Stop quietly, with status 141 (128 + ``SIGPIPE``), when standard output's reader
    has gone: ``ddnn run --help | head`` prints no ``BrokenPipeError`` traceback.

    Standard output is flushed inside the block, and pointed at ``os.devnull`` when its
    reader has gone, so the interpreter's own flush at exit cannot fail again.

    Raises:
        SystemExit: with status 141 when the reader has gone.
    """
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        if not _stdout_reader_gone():  # a socket's peer, say: not ours to hide
            raise
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        sys.exit(128 + signal.SIGPIPE)


def _flags_named(text: str, params: Collection[str]) -> str:
    """``text`` with each parameter of the command it names in backticks as its flag."""
    return _NAMED.sub(lambda m: flag_name(m[1]) if m[1] in params else m[0], text)


def _message(err: BaseException, passed: set[str], params: Collection[str] = ()) -> str | None:
    """The one line a user error prints, or None for a bug (which keeps its traceback).

    A library message names the argument it is about first (``err.argument``), and any
    other parameter in backticks (```overwrite```): the command line writes each as the
    flag (``--overwrite``).
    """
    if isinstance(err, BrokenPipeError) and _stdout_reader_gone():  # see reader_may_leave
        return None
    if isinstance(err, DDNNError):
        text, name = _flags_named(str(err), params), err.argument
        if name is not None and name in passed:  # the message starts with the argument
            return flag_name(name) + text[len(name) :]
        return text
    if isinstance(err, OSError):
        return str(err)
    if isinstance(err, ModuleNotFoundError) and (extra := extra_for(err.name or "")):
        return (
            f"this command needs {err.name.split('.')[0]}, which is not installed: "
            f"pip install 'ddnn_tf[{extra}]'."
        )
    return None


def run(fn: Callable, argv: list[str], prog: str) -> Any:
    """Run command ``fn`` on ``argv`` (its arguments only) as ``prog``.

    Help goes to standard output; a user error is one ``error:`` line on stderr and exit
    status 2, with nothing run or written.
    """
    import fire

    if wants_help(argv):
        print(help_text(fn, prog))
        return None
    message = None
    with native_logs_hidden():
        try:
            _check_known(fn, argv)
            fire.Fire(_typed(fn, _typed_text(argv)), command=list(argv), name=prog)
        except Exception as err:  # noqa: BLE001  (re-raised unless it is a user error)
            message = _message(err, _passed(argv), inspect.signature(fn).parameters)
            if message is None:
                raise
    if message is not None:
        print(f"error: {' '.join(message.split())}", file=sys.stderr)
        sys.exit(2)
    return None
