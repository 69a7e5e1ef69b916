"""Options as the fields of frozen dataclasses: each field's type, range, choices and help
beside it, checked when the object is made.

A service's settings, a deployment plan, or any other group of options is a frozen
``@dataclass(kw_only=True)`` deriving from :class:`Options` whose fields are made with
:func:`option`. From those fields, and from nothing written by hand, come the command
line's flags and help (``ddnn_tf.cli.flags.settings_command``), a child process's
arguments (:meth:`Options.argv`), a configuration file's JSON Schema and reader
(:func:`schema`, :func:`load_config`) and the docs' flag tables.

>>> @dataclass(frozen=True, kw_only=True)
... class Round(Options):
...     batch: int = option(64, "samples per round", AT_LEAST_1)
...     mode: str = option("paper", "how a round goes", choices=("paper", "eager"))
>>> Round(batch=8).argv()
['--batch', '8']
>>> Round(batch=0)
Traceback (most recent call last):
...
ddnn_tf.errors.ConfigError: batch: expected an integer >= 1, got 0.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any

from ddnn_tf.errors import ConfigError, FormatError

__all__ = [
    "AT_LEAST_1",
    "NON_NEGATIVE",
    "PORT",
    "POSITIVE",
    "PROBABILITY",
    "Options",
    "Range",
    "Spec",
    "check_kind",
    "choice_list",
    "check_value",
    "flag_name",
    "load_config",
    "option",
    "schema",
    "specs",
    "table_schema",
]


@dataclass(frozen=True)
class Range:
    """The allowed values of a number; ``None`` is unbounded."""

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

    def schema(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.low is not None:
            out["exclusiveMinimum" if self.low_open else "minimum"] = self.low
        if self.high is not None:
            out["exclusiveMaximum" if self.high_open else "maximum"] = self.high
        return out


AT_LEAST_1 = Range(1)
NON_NEGATIVE = Range(0)
POSITIVE = Range(0, low_open=True)
PROBABILITY = Range(0, 1)
PORT = Range(0, 65535)

_INT = re.compile(r"[+-]?\d+")
_KINDS = {"int", "float", "bool", "str", "list"}


def option(
    default: Any = MISSING,
    help: str = "",  # noqa: A002  (the field's help text)
    range: Range | None = None,  # noqa: A002  (the field's range)
    *,
    choices: tuple[str, ...] | None = None,
    positional: bool = False,
    secret: bool = False,
    section: str | None = None,
    parse: Callable[[Any], Any] | None = None,
    schema: dict | None = None,
) -> Any:
    """A field of an :class:`Options` dataclass.

    Args:
        default: the default (none: the option is required).
        help: one line (or a few) saying what it is, for the help and the docs.
        range: the numbers allowed.
        choices: the strings allowed.
        positional: given without its flag name on the command line.
        secret: never on a command line (a token, a password): it travels in the
            environment.
        section: the table of a configuration file that holds it (None: the top level).
        parse: turns a flag's or a file's value into the field's (e.g. ``"0,1"`` into
            ``[0, 1]``); it raises ``ValueError`` for a bad one.
        schema: the JSON Schema of a value the type does not say (``threshold``).
    """
    meta = {
        "help": help,
        "range": range,
        "choices": choices,
        "positional": positional,
        "secret": secret,
        "section": section,
        "parse": parse,
        "schema": schema,
    }
    return field(default=default, metadata=meta)


def choice_list(choices: tuple[str, ...], what: str) -> Callable[[Any], list[str]]:
    """A ``parse`` for a list option of ``choices``: ``"a,b"`` (or a list) -> ``["a", "b"]``;
    ``ValueError("expected WHAT, got ...")`` when it is empty or names another.

    >>> choice_list(("a", "b"), "a and/or b")("b, a")
    ['b', 'a']
    """

    def parse(value: Any) -> list[str]:
        items = value.split(",") if isinstance(value, str) else value
        names = [str(v).strip() for v in items if str(v).strip()]
        if not names or any(n not in choices for n in names):
            raise ValueError(f"expected {what}, got {value!r}.")
        return names

    return parse


def flag_name(name: str) -> str:
    """``batch_size`` -> ``--batch-size``.

    >>> flag_name("gather_s")
    '--gather-s'
    """
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class Spec:
    """What one field says about itself (see :func:`option`)."""

    name: str
    annotation: str
    kind: str
    optional: bool
    default: Any
    help: str
    range: Range | None
    choices: tuple[str, ...] | None
    positional: bool
    secret: bool
    section: str | None
    parse: Callable[[Any], Any] | None
    schema: dict | None

    @property
    def required(self) -> bool:
        return self.default is MISSING


def _kind(annotation: str) -> tuple[str, bool]:
    """``"int | None"`` -> ``("int", True)``; a type it does not know -> ``"any"``."""
    types = [t.strip() for t in str(annotation).split("|")]
    optional = "None" in types
    types = [t for t in types if t != "None"]
    kind = types[0].split("[")[0] if len(types) == 1 else "any"
    return (kind if kind in _KINDS else "any"), optional


@functools.cache
def specs(cls: type) -> tuple[Spec, ...]:
    """The :class:`Spec` of every field of ``cls``, positional ones first."""
    out = []
    for f in dataclasses.fields(cls):
        kind, optional = _kind(f.type)
        m = f.metadata
        out.append(
            Spec(
                f.name,
                str(f.type),
                kind,
                optional or f.default is None,
                f.default,
                m.get("help", ""),
                m.get("range"),
                m.get("choices"),
                m.get("positional", False),
                m.get("secret", False),
                m.get("section"),
                m.get("parse"),
                m.get("schema"),
            )
        )
    return tuple(sorted(out, key=lambda s: not s.positional))


def check_value(spec: Spec, value: Any) -> Any:
    """``value`` as field ``spec`` takes it.

    Raises:
        ConfigError: a value of the wrong type, not finite, out of range or not a choice,
            naming the option (its ``argument``) and the value.
    """
    if value is None and spec.optional:
        return None
    if spec.parse is not None:
        try:
            value = spec.parse(value)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{err}", argument=spec.name) from None
    return check_kind(spec.name, spec.kind, value, spec.range, spec.choices)


def check_kind(
    name: str,
    kind: str,
    value: Any,
    allowed: Range | None = None,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """``value`` as an option or flag of ``kind`` (``int``, ``float``, ``bool``, ``str``,
    ``list``; another: anything) within ``allowed`` and ``choices`` takes it: an integer's
    digits as the integer, a number as a float, a path or a number as text.

    >>> check_kind("epochs", "int", "3", AT_LEAST_1)
    3

    Raises:
        ConfigError: a value of the wrong type, not finite, out of range or not a choice,
            naming the argument ``name`` and the value.
    """
    want = {
        "int": "an integer",
        "float": "a finite number",
        "bool": "true or false",
        "str": "text (a name or a path)",
        "list": "a list",
    }.get(kind, "a value")
    if choices:
        *rest, last = choices
        want = f"{', '.join(rest)} or {last}" if rest else last
        want = want if len(choices) < 3 else f"one of {', '.join(choices)}"
    bounds = f" {allowed.text()}" if allowed is not None and allowed.text() else ""
    bad = ConfigError(f"expected {want}{bounds}, got {value!r}.", argument=name)
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad
    elif kind in ("int", "float"):
        if isinstance(value, bool):
            raise bad
        if kind == "int" and isinstance(value, str) and _INT.fullmatch(value.strip()):
            value = int(value)
        if kind == "int" and not isinstance(value, int):
            raise bad
        if kind == "float":
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise bad from None
            if not math.isfinite(value):
                raise bad
    elif kind == "str":
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)  # fire reads --token 123 as a number
        if not isinstance(value, str):
            raise bad
    elif kind == "list" and not isinstance(value, (list, tuple)):
        raise bad
    if allowed is not None and value not in allowed:
        raise bad
    if choices is not None and value not in choices:
        raise bad
    return list(value) if kind == "list" else value


class Options:
    """A frozen dataclass of options (fields made with :func:`option`), checked when made.

    Subclasses add checks that involve several fields in :meth:`check`.
    """

    def __post_init__(self) -> None:
        for spec in specs(type(self)):
            value = getattr(self, spec.name)
            checked = check_value(spec, value)
            if checked is not value:
                object.__setattr__(self, spec.name, checked)
        self.check()

    def check(self) -> None:
        """Checks between fields (none by default).

        Raises:
            ConfigError: naming the option at fault.
        """

    def argv(self) -> list[str]:
        """This object as the arguments of its command line: positional values first,
        then every non-secret option that differs from its default."""
        args = [str(getattr(self, s.name)) for s in specs(type(self)) if s.positional]
        for s in specs(type(self)):
            value = getattr(self, s.name)
            if s.positional or s.secret or (not s.required and value == _default(s)):
                continue
            if s.kind == "bool":
                args.append(flag_name(s.name if value else "no" + s.name))
            else:
                text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
                args += [flag_name(s.name), text]
        return args

    def replace(self, **changes: Any):
        """A copy with ``changes`` (checked like a new object)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The options by name (secrets left out)."""
        return {s.name: getattr(self, s.name) for s in specs(type(self)) if not s.secret}


def _default(spec: Spec) -> Any:
    """A field's default as the field holds it (``()`` for a list is ``[]``)."""
    return check_value(spec, spec.default)


def _value_schema(spec: Spec) -> dict:
    if spec.schema is not None:
        return spec.schema
    out: dict[str, Any] = {
        "int": {"type": "integer"},
        "float": {"type": "number"},
        "bool": {"type": "boolean"},
        "str": {"type": "string"},
        "list": {"type": "array"},
    }.get(spec.kind, {})
    if spec.parse is not None:  # the parser says what it takes (a list or its text)
        out = {}
    if spec.range is not None:
        out = {**out, **spec.range.schema()}
    if spec.choices is not None:
        out = {**out, "enum": list(spec.choices)}
    if spec.optional:
        out = {"anyOf": [out, {"type": "null"}]} if out else out
    return {**out, "description": " ".join(spec.help.split())}


def table_schema(cls: type, section: str | None, skip: tuple[str, ...] = ()) -> dict:
    """The JSON Schema of one table of a configuration file: the options of ``cls`` in
    ``section`` (None: the top level's), no other key."""
    keys = {
        s.name: _value_schema(s)
        for s in specs(cls)
        if s.section == section and s.name not in skip and not s.secret
    }
    return {"type": "object", "properties": keys, "additionalProperties": False}


def schema(cls: type, skip: tuple[str, ...] = ()) -> dict:
    """The JSON Schema of a configuration file holding ``cls``'s options (those not in
    ``skip``): top-level keys, and a table per section."""
    out = table_schema(cls, None, skip)
    for section in dict.fromkeys(s.section for s in specs(cls) if s.section is not None):
        out["properties"][section] = table_schema(cls, section, skip)
    return out


def load_config(
    path: str | Path, cls: type, *, section: str | None = None, skip: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The options of ``cls`` in a TOML file, checked against :func:`schema`.

    Args:
        path: the file.
        cls: the options' dataclass.
        section: read this table of the file only (the others are not looked at).
        skip: options the file may not set (given otherwise).

    Returns:
        ``{option: value}`` as written in the file, the tables flattened.

    Raises:
        FileNotFoundError: no such file.
        FormatError: not TOML, or a key or value the schema refuses (naming the key).
    """
    import jsonschema

    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no configuration file at {path}.")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise FormatError(f"{path}: not a TOML file ({err}).") from None
    if section is not None:
        data, want = data.get(section, {}), table_schema(cls, section, skip)
    else:
        want = schema(cls, skip)
    errors = jsonschema.Draft202012Validator(want).iter_errors(data)
    error = jsonschema.exceptions.best_match(errors)
    if error is not None:
        key = ".".join(map(str, [*([section] if section else []), *error.absolute_path]))
        what = error.message
        if error.validator == "additionalProperties":
            known = ", ".join(sorted(error.schema.get("properties", {})))
            what = f"{what}; the keys there are {known}"
        raise FormatError(f"{path}: {key or 'the file'}: {what}.")
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if (
            section is None
            and key in want["properties"]
            and "additionalProperties" in want["properties"][key]
        ):
            flat.update(value)  # a table
        else:
            flat[key] = value
    return flat
