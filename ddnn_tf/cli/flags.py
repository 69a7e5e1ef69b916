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
  one of the command's arguments names its flag); any other exception is a bug and
  keeps its traceback;
* keeps TensorFlow's C++ start-up lines off the terminal (``DDNN_TF_LOG=debug`` shows them).

:func:`reader_may_leave` wraps a whole command: when standard output's reader goes away
early (``ddnn run --help | head``), the command stops quietly with the status a shell gives
a command that ``SIGPIPE`` ended.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import os
import re
import select
import signal
import sys
from collections.abc import Callable, Collection, Iterator
from typing import Any

from ddnn_tf.core.logs import native_logs_hidden
from ddnn_tf.core.options import AT_LEAST_1 as AT_LEAST_1  # the commands import the
from ddnn_tf.core.options import NON_NEGATIVE as NON_NEGATIVE  # ranges from here
from ddnn_tf.core.options import PORT as PORT
from ddnn_tf.core.options import POSITIVE as POSITIVE
from ddnn_tf.core.options import PROBABILITY as PROBABILITY
from ddnn_tf.core.options import Range, check_kind, flag_name
from ddnn_tf.errors import ConfigError, DDNNError, extra_for

__all__ = [
    "check_flag",
    "command",
    "flag_items",
    "flag_name",
    "reader_may_leave",
    "run",
    "settings_command",
    "with_options",
]


_NAMED = re.compile(r"`([a-z][a-z0-9_]*)`")  # a parameter named in a library message
_RANGES = "__ddnn_ranges__"
_KIND = inspect.Parameter.POSITIONAL_OR_KEYWORD


#: The seeds numpy and TensorFlow take.
SEED = Range(0, 2**32 - 1)
#: The range of a flag that means the same in every command that takes it: a command
#: with a parameter of one of these names gets its range without declaring it.
USUAL_RANGES: dict[str, Range] = {
    "seed": SEED,
    "epochs": AT_LEAST_1,
    "batch_size": AT_LEAST_1,
    "train_limit": AT_LEAST_1,
    "limit": AT_LEAST_1,
    "threads": AT_LEAST_1,
    "verbose": Range(0, 2),
    "rate": POSITIVE,
    "battery_mah": POSITIVE,
    "timeout_s": POSITIVE,
}


def command(**ranges: Range) -> Callable:
    """Declare the ranges of a command's numeric flags, by parameter name; a parameter
    named in :data:`USUAL_RANGES` has its range there unless declared here.

    >>> @command(warmup=NON_NEGATIVE)
    ... def bench(warmup: int = 50, epochs: int = 5) -> None:
    ...     "Time it."
    >>> sorted((name, r.text()) for name, r in bench.__ddnn_ranges__.items())
    [('epochs', '>= 1'), ('warmup', '>= 0')]
    """

    def declare(fn: Callable) -> Callable:
        params = inspect.signature(fn).parameters
        unknown = set(ranges) - set(params)
        if unknown:  # a typo in a declaration is a bug, caught at import
            raise TypeError(f"{fn.__name__} has no parameter(s) {sorted(unknown)}")
        usual = {name: r for name, r in USUAL_RANGES.items() if name in params}
        setattr(fn, _RANGES, {**usual, **getattr(fn, _RANGES, {}), **ranges})
        return fn

    return declare


def flag_items(value: Any, sep: str = ",") -> list[str]:
    """Items of a comma-separated flag; fire hands ``a,b`` over as a tuple, ``3`` as an int."""
    if isinstance(value, (list, tuple)):
        value = sep.join(map(str, value))
    return [item.strip() for item in str(value).split(sep) if item.strip()]


def check_flag(name: str, value: Any, kind: str, allowed: Range | None = None) -> Any:
    """Check one flag value against its kind (``"int"``, ``"float"``, ``"bool"``, ``"str"``)
    and range (:func:`ddnn_tf.core.options.check_kind`).

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
            flag (its ``argument``) and the value.
    """
    if kind == "str" and isinstance(value, (list, tuple)):
        value = ",".join(map(str, value))
    return check_kind(name, kind, value, allowed)


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


#: Flags renamed: the old spelling -> the new one and why.
RENAMED = {"split": ("subset", "the data subset; --split is ddnn convert's exits")}


def _passed(argv: list[str]) -> set[str]:
    """Parameter names given as ``--flag`` (or ``--noflag``) on the command line."""
    names = {t[2:].split("=", 1)[0].replace("-", "_") for t in _own_args(argv) if t[:2] == "--"}
    return names | {n[2:] for n in names if n.startswith("no")}


#: The flags given on the command line of the command running now (fire hands a
#: command every parameter, defaults included).
_GIVEN: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "given", default=frozenset()
)


def _check_known(fn: Callable, argv: list[str]) -> None:
    """Reject a flag the command does not take *before* it runs (fire would run it first)."""
    params = inspect.signature(fn).parameters
    for token in _own_args(argv):
        if not token.startswith("--"):
            continue
        name = token[2:].split("=", 1)[0].replace("-", "_")
        if name in params or (name[:2] == "no" and name[2:] in params):
            continue
        new, why = RENAMED.get(name, (None, ""))
        if new in params:
            raise ConfigError(f"{flag_name(name)} is now {flag_name(new)} ({why}).")
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


def _message(err: BaseException, params: Collection[str]) -> str | None:
    """The one line a user error prints, or None for a bug (which keeps its traceback).

    A library message names the argument it is about first (``err.argument``), and any
    other parameter in backticks (```overwrite```): when either is one of the command's
    ``params``, the command line writes it as the flag (``--overwrite``), given or missing.
    """
    if isinstance(err, BrokenPipeError) and _stdout_reader_gone():  # see reader_may_leave
        return None
    if isinstance(err, DDNNError):
        text, name = _flags_named(str(err), params), err.argument
        if name is not None and name in params:  # the message starts with the argument
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
            _GIVEN.set(frozenset(_passed(argv)))
            fire.Fire(_typed(fn, _typed_text(argv)), command=list(argv), name=prog)
        except Exception as err:  # noqa: BLE001  (re-raised unless it is a user error)
            message = _message(err, inspect.signature(fn).parameters)
            if message is None:
                raise
    if message is not None:
        print(f"error: {' '.join(message.split())}", file=sys.stderr)
        sys.exit(2)
    return None


def settings_command(
    cls: type,
    run: Callable[..., Any],
    doc: str,
    *,
    extra: dict[str, tuple[str, Any, str]] | None = None,
    config: bool | str = False,
) -> Callable:
    """A command whose flags are the fields of an options dataclass (settings).

    Its signature, help and numeric ranges are made from the fields
    (:func:`ddnn_tf.core.options.specs`); it makes ``cls`` from the flags given (over the
    options of ``--config FILE``) and calls ``run(settings, **extras)``.

    Args:
        cls: an :class:`~ddnn_tf.core.options.Options` dataclass.
        run: what the command does with the settings.
        doc: the help's first line and paragraph.
        extra: ``{name: (annotation, default, help)}``: flags that are no option of
            ``cls`` (``json``); their values go to ``run`` as keywords.
        config: add ``--config FILE``, a TOML file whose options the flags given override:
            True reads the whole file as ``cls``'s options, a name reads that table.
    """
    from ddnn_tf.core.options import load_config, specs

    extra = dict(extra or {})
    if config:
        where = "its options" if config is True else f"its [{config}] table sets these options"
        extra["config"] = (
            "str | None",
            None,
            f"a deployment file (TOML): {where}; the flags given override it",
        )
    fields = specs(cls)
    required = [s for s in fields if s.required]
    required_names = {s.name for s in required}
    params, ranges, lines = [], {}, []
    for s in [*required, *(s for s in fields if not s.required)]:
        empty = s.required and not config
        default = inspect.Parameter.empty if empty else (None if s.required else s.default)
        params.append(inspect.Parameter(s.name, _KIND, default=default, annotation=s.annotation))
        if s.range is not None:
            ranges[s.name] = s.range
        lines.append(f"    {s.name}: {' '.join(s.help.split())}.")
    for name, (annotation, default, text) in extra.items():
        params.append(inspect.Parameter(name, _KIND, default=default, annotation=annotation))
        lines.append(f"    {name}: {text}.")
    signature = inspect.Signature(params)

    def command(*args, **kwargs):
        passed = _GIVEN.get()
        given = dict(signature.bind(*args, **kwargs).arguments)
        own = {k: given.pop(k) for k in list(given) if k in extra}
        path = own.pop("config", None)
        section = config if isinstance(config, str) else None
        try:
            values = {} if path is None else load_config(path, cls, section=section)
        except FileNotFoundError as err:
            raise ConfigError(str(err), argument="config") from None
        for k, v in given.items():  # what the command line gives beats the file
            if path is None or k in passed or (k in required_names and v is not None):
                values[k] = v
        for s in required:
            if values.get(s.name) is None:
                raise ConfigError(
                    f"{s.name}: needed, on the command line or in the file.", argument=s.name
                )
        return run(cls(**values), **own)

    command.__signature__ = signature
    command.__doc__ = f"{doc.strip()}\n\nArgs:\n" + "\n".join(lines)
    command.__name__ = command.__qualname__ = cls.__name__
    command.__ddnn_settings__ = cls  # the docs' flag tables read it
    setattr(command, _RANGES, ranges)
    return command


def _flag_type(spec: Any) -> Any:
    """A field's annotation as a flag's: none for a field of no flag type (``Any``)."""
    return inspect.Parameter.empty if spec.kind == "any" else spec.annotation


def with_options(cls: type, keyword: str) -> Callable:
    """Give a command the fields of an options dataclass as flags, where its parameter
    ``keyword`` stands.

    The flags' help lines (where ``keyword``'s next parameter's line starts), types and
    ranges are made from the fields (:func:`ddnn_tf.core.options.specs`); the command
    receives them as one ``cls`` object, its parameter ``keyword``.

    Args:
        cls: an :class:`~ddnn_tf.core.options.Options` dataclass.
        keyword: the command's parameter that takes the object.
    """
    from ddnn_tf.core.options import specs

    fields = specs(cls)

    def wrap(fn: Callable) -> Callable:
        signature = inspect.signature(fn)
        own = list(signature.parameters.values())
        at = [p.name for p in own].index(keyword)
        added = [  # a field of no flag type is given as fire parses it, untyped
            inspect.Parameter(s.name, _KIND, default=s.default, annotation=_flag_type(s))
            for s in fields
        ]
        signature = signature.replace(parameters=[*own[:at], *added, *own[at + 1 :]])

        @functools.wraps(fn)
        def command(*args, **kwargs):
            given = signature.bind(*args, **kwargs)
            given.apply_defaults()
            values = {s.name: given.arguments.pop(s.name) for s in fields}
            return fn(**given.arguments, **{keyword: cls(**values)})

        lines = "".join(f"        {s.name}: {' '.join(s.help.split())}.\n" for s in fields)
        doc = fn.__doc__ or ""
        starts = [doc.find(f"\n        {p.name}:") + 1 for p in own[at + 1 :]]
        where = min((i for i in starts if i > 0), default=-1)
        command.__doc__ = (
            doc[:where] + lines + doc[where:] if where > 0 else doc.rstrip() + "\n" + lines
        )
        command.__signature__ = signature
        ranges = {s.name: s.range for s in fields if s.range is not None}
        setattr(command, _RANGES, {**getattr(fn, _RANGES, {}), **ranges})
        return command

    return wrap
