"""MkDocs hook: the docs' flag tables, made from the commands themselves.

``<!-- flags: serve gateway -->`` in a page becomes the table of ``ddnn serve gateway``'s
flags (flag, default, meaning) as ``--help`` prints them; the services' and deploy's
flags are made from their settings' fields (``ddnn_tf.serve.settings``), so the table
is too. ``<!-- keys: deploy -->`` becomes the table of a deployment file's keys (table,
key, default, meaning), from the fields of ``DeployPlan``. Nothing is written by hand.
"""

from __future__ import annotations

import inspect
import re

_MARK = re.compile(r"<!-- (flags|keys): ([a-z ]+) -->")


def _command(name: str):
    from ddnn_tf.cli import _target

    first, *rest = name.split()
    target = _target(first)
    return target[rest[0]] if isinstance(target, dict) else target


def _helps(fn) -> dict[str, str]:
    """The ``Args:`` entries of ``fn``'s docstring, one line each."""
    helps: dict[str, str] = {}
    name = None
    doc = inspect.getdoc(fn) or ""
    for line in doc.split("Args:", 1)[-1].splitlines():
        match = re.match(r"    (\w+): (.*)", line)
        if match:
            name, helps[match.group(1)] = match.group(1), match.group(2)
        elif name and line.startswith("        "):
            helps[name] += " " + line.strip()
        elif line.strip():
            name = None
    return helps


def _cell(text) -> str:
    return str(text).replace("|", "\\|")


def flag_table(command: str) -> str:
    from ddnn_tf.core.options import flag_name, specs

    fn = _command(command)
    helps = _helps(fn)
    settings = getattr(fn, "__ddnn_settings__", None)
    required = {s.name for s in specs(settings) if s.required} if settings else set()
    rows = ["| flag | default | |", "|---|---|---|"]
    for name, param in inspect.signature(fn).parameters.items():
        if name in required or param.default is inspect.Parameter.empty:
            shown = "required"
        else:
            shown = "" if param.default is None else f"`{param.default}`"
        rows.append(f"| `{flag_name(name)}` | {_cell(shown)} | {_cell(helps.get(name, ''))} |")
    return "\n".join(rows)


def keys_table(command: str) -> str:
    from dataclasses import MISSING

    from ddnn_tf.core.options import specs
    from ddnn_tf.serve.settings import DeployPlan

    assert command == "deploy", command
    rows = ["| table | key | default | |", "|---|---|---|---|"]
    for s in sorted(specs(DeployPlan), key=lambda s: s.section or ""):
        default = s.default
        if default is MISSING or default is None:
            default = "required" if default is MISSING else ""
        else:
            default = f"`{list(default) if isinstance(default, tuple) else default}`"
        help_ = " ".join(s.help.split())
        rows.append(f"| {s.section or '(top)'} | `{s.name}` | {_cell(default)} | {_cell(help_)} |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, **_) -> str:
    def table(match: re.Match) -> str:
        kind, command = match.group(1), match.group(2).strip()
        return flag_table(command) if kind == "flags" else keys_table(command)

    return _MARK.sub(table, markdown)
