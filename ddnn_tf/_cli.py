"""Shared CLI plumbing (numpy-free and TensorFlow-free).

Every ``python -m ddnn_tf.<task>`` ends in :func:`cli`, which

* rejects unknown flags before anything runs;
* checks every flag against its parameter's annotation (``int``, ``float``, ``bool``)
  and the range in :data:`FLAG_RANGES`, naming the flag and the value;
* turns a user error into one line on stderr and exit status 2, naming the flag when a
  library error names an argument the user passed as a flag;
* keeps TensorFlow's C++ start-up logging (absl, oneDNN, cudart, cuInit, NodeDef lines)
  off the terminal, unless ``DDNN_TF_LOG=debug``.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["FLAG_RANGES", "check_flag", "cli", "flag_name", "native_logs_hidden"]

#: Allowed range of a numeric flag, by parameter name: (low, high, low_inclusive,
#: high_inclusive); None is unbounded. One table for every command.
FLAG_RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "epochs": (1, None, True, True),
    "sweep_epochs": (1, None, True, True),
    "batch_size": (1, None, True, True),
    "limit": (1, None, True, True),
    "train_limit": (1, None, True, True),
    "test_limit": (1, None, True, True),
    "seed": (0, 2**32 - 1, True, True),
    "threads": (1, None, True, True),
    "repeats": (1, None, True, True),
    "warmup": (0, None, True, True),
    "verbose": (0, 2, True, True),
    "device_filters": (1, None, True, True),
    "cloud_filters": (1, None, True, True),
    "cloud_layers": (1, None, True, True),
    "max_filters": (1, None, True, True),
    "fault_sets": (1, None, True, True),
    "learning_rate": (0, None, False, True),
    "device_dropout": (0, 1, True, False),
    "fail_prob": (0, 1, True, True),
    "threshold": (0, 1, True, True),
    "local_exit_target": (0, 1, True, True),
    # services, devices and deployments
    "port": (0, 65535, True, True),
    "replicas": (1, None, True, True),
    "max_batch": (1, None, True, True),
    "max_body_bytes": (1, None, True, True),
    "deadline_s": (0, None, False, True),
    "gather_s": (0, None, False, True),
    "cloud_timeout_s": (0, None, False, True),
    "timeout_s": (0, None, False, True),
    "index": (0, None, True, True),
    "batch": (1, None, True, True),
    "kill_device": (0, None, True, True),
    "kill_at": (0, None, True, True),
    "cloud_down_at": (0, None, True, True),
    "requests": (1, None, True, True),
    "records": (1, None, True, True),
    "concurrency": (1, None, True, True),
}

_INT = re.compile(r"[+-]?\d+")
# TensorFlow / absl C++ log lines: "I0000 00:00:1796015091.872021    6948 port.cc:153] ..."
_NATIVE_LOG = re.compile(
    rb"^(?:[IWE]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\] "
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|INFO: Created TensorFlow Lite )"
)


def flag_name(param: str) -> str:
    """``batch_size`` -> ``--batch-size``."""
    return "--" + param.replace("_", "-")


def _range_text(low, high, low_in, high_in) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>=' if low_in else '>'} {low}")
    if high is not None:
        parts.append(f"{'<=' if high_in else '<'} {high}")
    return " and ".join(parts)


def check_flag(name: str, value: Any, kind: str, *, where: str | None = None) -> Any:
    """Check one flag value against its kind (``"int"``, ``"float"``, ``"bool"``) and range.

    Args:
        name: the parameter name (its range is looked up in :data:`FLAG_RANGES`).
        value: what fire parsed from the command line.
        kind: ``"int"``, ``"float"`` or ``"bool"``.
        where: how to name it in errors (default ``--name``).

    Returns:
        The value as an ``int``, ``float`` or ``bool``.

    Raises:
        ValueError: a value of the wrong type, not finite, or out of range, naming the
            flag and the value.
    """
    where = where or flag_name(name)
    low, high, low_in, high_in = FLAG_RANGES.get(name, (None, None, True, True))
    bounds = _range_text(low, high, low_in, high_in)
    want = {"int": "an integer", "float": "a finite number", "bool": "true or false"}[kind]
    want = f"{want} {bounds}" if bounds and kind != "bool" else want
    bad = ValueError(f"{where}: expected {want}, got {value!r}.")
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
    if low is not None and (value < low or (value == low and not low_in)):
        raise bad
    if high is not None and (value > high or (value == high and not high_in)):
        raise bad
    return value


def _kinds(fn) -> dict[str, str]:
    """Parameter name -> "int" / "float" / "bool" from ``fn``'s annotations."""
    kinds = {}
    for name, param in inspect.signature(fn).parameters.items():
        text = param.annotation if isinstance(param.annotation, str) else ""
        if not text and isinstance(param.annotation, type):
            text = param.annotation.__name__
        types = {t.strip() for t in text.split("|")} - {"None"}
        if len(types) == 1 and (kind := types.pop()) in ("int", "float", "bool"):
            kinds[name] = kind
    return kinds


def _typed(fn):
    """``fn`` with its int/float/bool flags checked (and coerced) before it runs."""
    kinds = _kinds(fn)
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        for name, value in list(bound.arguments.items()):
            default = signature.parameters[name].default
            if name in kinds and not (value is None and default is None):
                bound.arguments[name] = check_flag(name, value, kinds[name])
        return fn(*bound.args, **bound.kwargs)

    return wrapper


def _command(fn, argv: list[str]):
    """The function a command line runs (a dict of subcommands picks by its first word)."""
    if isinstance(fn, dict):
        if not argv or argv[0] not in fn:
            return None, argv  # fire lists the commands
        return fn[argv[0]], argv[1:]
    return fn, argv


def _passed(argv: list[str]) -> list[str]:
    """Parameter names given as ``--flag`` on the command line."""
    names = []
    for token in argv:
        if token == "--":
            break
        if token.startswith("--"):
            names.append(token[2:].split("=", 1)[0].replace("-", "_"))
    return names


def _check_flags(fn, argv: list[str]) -> None:
    """Reject a flag the command does not take *before* it runs (fire would run it first)."""
    fn, argv = _command(fn, argv)
    if fn is None:
        return
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
        known = ", ".join(flag_name(p) for p in params)
        raise ValueError(f"Unknown flag {token.split('=', 1)[0]}; this command takes {known}.")


def _as_flags(message: str, passed: list[str]) -> str:
    """A library message that starts with an argument the user gave as a flag names the flag.

    ``threshold: expected a number in [0, 1], got 2.0.`` -> ``--threshold: ...`` when
    ``--threshold`` was on the command line; a message about a value read from a file
    keeps its own words.
    """
    for name in sorted(set(passed), key=len, reverse=True):
        if re.match(rf"{re.escape(name)}\b(?![-.\[])", message) and not message.startswith("--"):
            return flag_name(name) + message[len(name) :]
    return message


def _debug() -> bool:
    return os.environ.get("DDNN_TF_LOG", "").strip().lower() == "debug"


_terminal = None  # Python's stderr on a lasting copy of descriptor 2 (see below)


def _terminal_copy(python_stderr):
    """A text stream on a copy of descriptor 2, made once and never closed.

    Logging handlers created while TensorFlow imports (absl's, ``tf.get_logger()``'s) keep
    the ``sys.stderr`` they saw; this copy stays valid for the life of the process.
    """
    global _terminal
    if _terminal is None:
        _terminal = open(  # noqa: SIM115  (lives as long as the process)
            os.dup(2),
            "w",
            encoding=python_stderr.encoding,
            errors=python_stderr.errors,
            buffering=1,
        )
    return _terminal


@contextmanager
def native_logs_hidden() -> Iterator[None]:
    """Keep TensorFlow's C++ log lines off stderr while the block runs.

    TensorFlow's C++ runtime logs through absl straight to file descriptor 2 (before
    absl is initialised nothing filters them; ``TF_CPP_MIN_LOG_LEVEL`` does not reach
    them). Inside the block, descriptor 2 goes to a temporary file while Python's own
    ``sys.stderr`` keeps writing to the terminal; at the end the file's lines are
    replayed except the C++ log lines (``I0000 ... port.cc:153] ...``, absl's "before
    InitializeLog" notice, LiteRT's delegate notice). ``DDNN_TF_LOG=debug`` turns this off.
    """
    if _debug():
        yield
        return
    try:
        sys.stderr.flush()
        own_stderr = sys.stderr.fileno() == 2
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):  # no real descriptor 2 (embedded, captured)
        own_stderr, saved = False, None
    if saved is None:
        yield
        return
    sink = tempfile.TemporaryFile()
    python_stderr = sys.stderr
    if own_stderr:
        sys.stderr = _terminal_copy(python_stderr)
    os.dup2(sink.fileno(), 2)
    try:
        yield
    finally:
        if own_stderr:
            sys.stderr.flush()
            sys.stderr = python_stderr
        os.dup2(saved, 2)
        os.close(saved)
        sink.seek(0)
        kept = [line for line in sink if not _NATIVE_LOG.match(line)]
        sink.close()
        if kept:
            python_stderr.flush()
            os.write(2, b"".join(kept))


def cli(fn) -> None:
    """Run ``fn`` (or a dict of subcommands) as a fire CLI.

    A user error (an unknown flag, a flag of the wrong type or out of range, ValueError,
    OSError such as FileNotFoundError, KeyError) becomes one line on stderr and exit
    status 2, with nothing run or written.
    """
    import fire

    argv = sys.argv[1:]
    passed = _passed(_command(fn, argv)[1])
    if isinstance(fn, dict):
        fn = {k: _typed(f) for k, f in fn.items()}
    else:
        fn = _typed(fn)
    message = None
    with native_logs_hidden():
        try:
            _check_flags(fn, argv)
            fire.Fire(fn)
        except (ValueError, OSError, KeyError) as err:
            text = err.args[0] if isinstance(err, KeyError) and err.args else err
            message = _as_flags(" ".join(str(text).split()), passed)
    if message is not None:
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
