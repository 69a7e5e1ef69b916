"""Every link in the README files and the docs pages points at something that exists.

A relative link must name a file git tracks (a page, a figure, a notebook), and its
``#fragment``, on a docs page, a heading of that page; a link to this repository on
GitHub must name a tracked file too. ``mkdocs build --strict`` checks the links between
pages again, and the API reference's anchors, when it builds the site.
"""

import os
import re
import subprocess
import unicodedata
from pathlib import Path

import pytest
from conftest import ROOT

# [text](target) and ![alt](target); the target stops at whitespace or ")".
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_REPO = re.compile(r"^https://github\.com/ddnn-tf/ddnn-tf/(?:blob|tree)/main/(.+)$")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
_README_FILES = ("README.md", "tflite_models/README.md")


def _tracked() -> set[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    files = {f for f in out.stdout.split("\0") if f}
    folders = {str(p) for f in files for p in Path(f).parents if str(p) != "."}
    return files | folders


def _without_blocks(text: str) -> str:
    return re.sub(r"```.*?```", "", text, flags=re.S)  # code blocks hold no links or headings


def _without_code(text: str) -> str:
    return re.sub(r"`[^`\n]*`", "", _without_blocks(text))


def links(markdown: Path) -> list[str]:
    """The link targets of a markdown file outside code, in order."""
    return _LINK.findall(_without_code(markdown.read_text()))


def relative_links(markdown: Path) -> list[str]:
    """The relative link targets of a markdown file, without ``#fragments``."""
    out = []
    for target in links(markdown):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # http(s), mailto ..., or an anchor in the same file
        out.append(target.split("#", 1)[0])
    return out


def slug(heading: str) -> str:
    """The anchor MkDocs gives a heading (Python-Markdown's ``toc`` slugify)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(markdown: Path) -> set[str]:
    return {slug(h) for h in _HEADING.findall(_without_blocks(markdown.read_text()))}


def _pages() -> list[str]:
    docs = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md"))
    return [*_README_FILES, *docs]


def test_link_pattern_finds_relative_targets(tmp_path):
    md = tmp_path / "x.md"
    md.write_text(
        'see [a](docs/a.md#top), ![img](fig.png "t"), [web](https://x.org), [here](#sec)\n'
        "```\n[not a link](nowhere.md)\n```\n`[nor this](x.md)`\n"
    )
    assert relative_links(md) == ["docs/a.md", "fig.png"]


def test_slugs_are_mkdocs_anchors():
    assert slug("The cloud: `POST /v1/cloud`") == "the-cloud-post-v1cloud"
    assert slug("Beside the paper's figures") == "beside-the-papers-figures"
    assert slug("The `ddnn` command") == "the-ddnn-command"


def test_every_docs_page_is_checked():
    pages = _pages()
    assert "docs/protocol.md" in pages and "docs/reference/core.md" in pages
    assert len(pages) >= 20


@pytest.mark.parametrize("page", _pages())
def test_links_resolve_to_tracked_files_and_headings(page):
    path = ROOT / page
    tracked = _tracked()
    base = path.parent.relative_to(ROOT)
    broken = []
    for target in links(path):
        repo = _REPO.match(target)
        if repo:
            if repo[1].split("#", 1)[0].rstrip("/") not in tracked:
                broken.append(target)
            continue
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue  # another site
        file, _, fragment = target.partition("#")
        resolved = Path(os.path.normpath(base / file)) if file else path.relative_to(ROOT)
        if file and str(resolved) not in tracked:
            broken.append(target)
            continue
        checkable = resolved.suffix == ".md" and "reference" not in resolved.parts
        if fragment and checkable and fragment not in anchors(ROOT / resolved):
            broken.append(target)
    assert not broken, f"{page}: links to nothing git tracks, or to no heading: {broken}"


def test_readme_links_the_docs_pages():
    targets = set(relative_links(ROOT / "README.md"))
    pages = {p for p in _pages() if p.startswith("docs/") and "/results/" not in p}
    assert pages - {"docs/index.md"} <= targets, sorted(pages - targets)
