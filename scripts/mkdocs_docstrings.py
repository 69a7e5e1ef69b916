"""A Griffe extension that readies the package's docstrings for the MkDocs site.

The docstrings are written to read well in a terminal (``help()``, ``pydoc``) and to run as
doctests, so two of their habits need translating before Markdown sees them:

* Sphinx roles (``:func:`pack_features```, ``:class:`~ddnn_tf.runtime.Hierarchy```) become
  cross-references to the API reference when they name one of the package's public
  objects, and inline code otherwise. A role that spells out a ``ddnn_tf.`` path which does
  not exist is logged as a warning, so ``mkdocs build --strict`` fails on a stale path.
* Doctest blocks (``>>>`` lines and their output) outside an ``Examples:`` section are
  fenced as ``pycon`` code; Markdown would read them as nested block quotes.
* Module and class constants documented by ``#:`` comments above them (the Sphinx
  convention the package follows) get those comments as their docstrings.
* A name a module re-exports from another module of the package (``__all__`` listing an
  import) is documented once, where it is defined.

``mkdocs.yml`` loads it with ``extensions: [scripts/mkdocs_docstrings.py]``.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import griffe

__all__ = ["DocstringsForMkDocs", "comment_docstring", "fence_doctests", "rewrite_roles"]

_LOG = logging.getLogger("mkdocs.plugins.ddnn_docstrings")
_ROLE = re.compile(r":(?:py:)?(mod|class|func|meth|attr|data|exc|obj|const):`(~?)([^`]+)`")
_SECTION = re.compile(r"^(\s*)Examples:\s*$")  # Griffe's own section; "Example:" is not
_PACKAGE = "ddnn_tf"


def fence_doctests(text: str) -> str:
    """Wrap each run of doctest lines (``>>>`` to the next blank line) in a pycon fence.

    Lines inside an ``Examples:`` section are left alone: Griffe parses those itself.

    >>> fence_doctests("Text.\\n\\n>>> 1 + 1\\n2\\n\\nMore.").splitlines()
    ['Text.', '', '```pycon', '>>> 1 + 1', '2', '```', '', 'More.']
    """
    out: list[str] = []
    lines = text.split("\n")
    section_indent: int | None = None  # indentation of an open Examples: header
    i = 0
    while i < len(lines):
        line = lines[i]
        indent = len(line) - len(line.lstrip())
        header = _SECTION.match(line)
        if header:
            section_indent = indent
        elif section_indent is not None and line.strip() and indent <= section_indent:
            section_indent = None
        if section_indent is None and line.lstrip().startswith(">>>"):
            pad = line[:indent]
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i])
                i += 1
            out += [f"{pad}```pycon", *block, f"{pad}```"]
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def _lookup(collection: Any, path: str) -> Any | None:
    """The object at a dotted path (following aliases inside the package), or None."""
    for _ in range(10):  # alias chains are short; a cycle gives up
        head, _, rest = path.partition(".")
        try:
            obj = collection[head]
            if rest:
                obj = obj[rest]
        except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            return None
        if not obj.is_alias:
            return obj
        if not obj.target_path.startswith(_PACKAGE + "."):
            return None  # re-exported from another package: not in this reference
        path = obj.target_path
    return None


def _rendered(obj: Any) -> bool:
    """Whether the API reference shows ``obj``: public and documented, as are its parents."""
    while obj is not None:
        if obj.name.startswith("_") or (obj.docstring is None and not obj.is_module):
            return False
        obj = obj.parent
    return True


def _reexported(module: Any, name: str) -> bool:
    member = module.members.get(name)
    return member is not None and member.is_alias


def comment_docstring(lines: list[str], lineno: int) -> str | None:
    """The ``#:`` comment lines right above line ``lineno`` (1-based), joined, or None.

    >>> comment_docstring(["#: The answer,", "#: computed.", "ANSWER = 42"], 3)
    'The answer,\\ncomputed.'
    """
    found: list[str] = []
    i = lineno - 2
    while i >= 0 and lines[i].lstrip().startswith("#:"):
        found.insert(0, lines[i].lstrip()[2:].strip())
        i -= 1
    return "\n".join(found) if found else None


def _resolve(name: str, scope: Any, collection: Any) -> Any | None:
    """The object ``name`` refers to from ``scope``: qualified, or a name seen there."""
    if name.startswith(_PACKAGE + ".") or name == _PACKAGE:
        return _lookup(collection, name)
    node = scope
    while node is not None:
        found = _lookup(collection, f"{node.path}.{name}")
        if found is not None:
            return found
        node = node.parent
    return None


def rewrite_roles(text: str, scope: Any, collection: Any, where: str = "") -> str:
    """Replace Sphinx roles by Markdown cross-references or inline code.

    Args:
        text: a docstring.
        scope: the Griffe object the docstring belongs to (names are looked up from it).
        collection: the loaded modules (``loader.modules_collection``).
        where: the object's path, for the warning about a stale ``ddnn_tf.`` path.
    """

    def replace(match: re.Match) -> str:
        tilde, name = match.group(2), match.group(3).strip()
        shown = name.rsplit(".", 1)[-1] if tilde else name
        if match.group(1) in ("func", "meth"):
            shown += "()"
        target = _resolve(name, scope, collection)
        if target is None:
            if name.startswith(_PACKAGE + ".") or name == _PACKAGE:
                _LOG.warning("%s: the docstring names %r, which does not exist", where, name)
            return f"`{shown}`"
        if not _rendered(target):
            return f"`{shown}`"
        return f"[`{shown}`][{target.path}]"

    return _ROLE.sub(replace, text)


class DocstringsForMkDocs(griffe.Extension):
    """Rewrites every docstring of the package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if pkg.name != _PACKAGE:
            return
        collection = loader.modules_collection
        objects: list[Any] = []
        stack: list[Any] = [pkg]
        while stack:
            obj = stack.pop()
            objects.append(obj)
            stack += [m for m in obj.members.values() if not m.is_alias]
        for obj in objects:  # first every docstring, so that rewriting sees them all
            if obj.is_attribute and obj.docstring is None and obj.lineno and obj.filepath:
                text = comment_docstring(loader.lines_collection[obj.filepath], obj.lineno)
                if text:
                    obj.docstring = griffe.Docstring(text, lineno=obj.lineno, parent=obj)
        for obj in objects:
            if obj.is_module and obj.exports:
                obj.exports = [name for name in obj.exports if not _reexported(obj, str(name))]
        for obj in objects:
            if obj.docstring is not None:
                value = rewrite_roles(obj.docstring.value, obj, collection, obj.path)
                obj.docstring.value = fence_doctests(value)
