"""Strip Jupyter notebooks for git: no outputs, no execution counts, no run metadata.

Usage::

    python scripts/strip_notebook.py notebooks/*.ipynb          # strip in place
    python scripts/strip_notebook.py --check notebooks/*.ipynb  # exit 1 if any needs it

Standard library only (no nbformat, no ddnn_tf), so it also works as a pre-commit hook.
Kept: cell sources, ids, cell tags (the papermill-style ``parameters`` tag) and the
notebook's kernelspec / Colab metadata. Dropped: outputs, execution counts, per-cell
execution timings and other editor state, and the interpreter version nbclient records.
The file is written as Jupyter writes it (one-space indent, sorted keys).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["main", "needs_strip", "strip", "to_text"]

#: Cell metadata worth keeping in git; everything else is editor or run state.
KEEP_CELL_METADATA = ("tags",)
#: Notebook metadata worth keeping.
KEEP_NOTEBOOK_METADATA = ("colab", "kernelspec")


def strip(notebook: dict[str, Any]) -> dict[str, Any]:
    """Return a stripped copy of a notebook (a parsed ``.ipynb`` dict)."""
    nb = json.loads(json.dumps(notebook))  # deep copy
    for cell in nb.get("cells", []):
        meta = cell.get("metadata", {})
        cell["metadata"] = {k: meta[k] for k in KEEP_CELL_METADATA if k in meta}
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    meta = nb.get("metadata", {})
    kept = {k: meta[k] for k in KEEP_NOTEBOOK_METADATA if k in meta}
    language = meta.get("language_info", {}).get("name")
    if language:
        kept["language_info"] = {"name": language}
    nb["metadata"] = kept
    return nb


def to_text(notebook: dict[str, Any]) -> str:
    """Serialise a notebook the way Jupyter does."""
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def needs_strip(path: Path) -> bool:
    """True if the file on disk differs from its stripped form."""
    text = path.read_text(encoding="utf-8")
    return text != to_text(strip(json.loads(text)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path, help=".ipynb files")
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a notebook needs stripping"
    )
    args = parser.parse_args(argv)
    dirty = []
    for path in args.notebooks:
        try:
            text = path.read_text(encoding="utf-8")
            stripped = to_text(strip(json.loads(text)))
        except (OSError, json.JSONDecodeError) as err:
            print(f"strip_notebook: cannot read {path}: {err}", file=sys.stderr)
            return 2
        if text == stripped:
            continue
        dirty.append(path)
        if not args.check:
            path.write_text(stripped, encoding="utf-8")
            print(f"stripped {path}")
    if args.check and dirty:
        for path in dirty:
            print(
                f"{path} has outputs or run metadata; run: python scripts/strip_notebook.py {path}",
                file=sys.stderr,
            )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
