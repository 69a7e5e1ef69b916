"""Every relative link in the README files points at a file the repository tracks."""

import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT

# [text](target) and ![alt](target); the target stops at whitespace or ")".
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_READMES = ("README.md",)


def _tracked() -> set[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    files = {f for f in out.stdout.split("\0") if f}
    folders = {str(p) for f in files for p in Path(f).parents if str(p) != "."}
    return files | folders


def relative_links(readme: Path) -> list[str]:
    """The relative link targets of a markdown file, without ``#fragments``."""
    text = re.sub(r"```.*?```", "", readme.read_text(), flags=re.S)  # code blocks hold no links
    out = []
    for target in _LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # http(s), mailto ..., or an anchor in the same file
        out.append(target.split("#", 1)[0])
    return out


def test_link_pattern_finds_relative_targets(tmp_path):
    md = tmp_path / "x.md"
    md.write_text(
        'see [a](docs/a.md#top), ![img](fig.png "t"), [web](https://x.org), [here](#sec)\n'
        "```\n[not a link](nowhere.md)\n```\n"
    )
    assert relative_links(md) == ["docs/a.md", "fig.png"]


@pytest.mark.parametrize("readme", _READMES)
def test_readme_relative_links_resolve_to_tracked_files(readme):
    path = ROOT / readme
    tracked = _tracked()
    links = relative_links(path)
    assert links, f"{readme}: no relative links found; the pattern is broken"
    base = path.parent.relative_to(ROOT)
    broken = []
    for target in links:
        if os.path.normpath(base / target) not in tracked:
            broken.append(target)
    assert not broken, f"{readme}: links to files git does not track: {broken}"
