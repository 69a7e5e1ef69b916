"""`make docs` fails on any MkDocs warning.

The target builds with the repository's own configuration (strict, every validation at
``warn``); these checks run it on a two-page site that inherits that configuration, so a
flag that hides warnings from ``--strict`` (``--quiet`` does) fails them.
"""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: A page that links to a page the site does not have.
BROKEN_LINK = "# Usage\n\nSee [the missing page](missing.md).\n"


def _make_docs(tmp_path: Path, pages: dict[str, str], nav: list[str]):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in pages.items():
        (docs / name).write_text(text)
    config = tmp_path / "mkdocs.yml"
    nav_lines = "".join(f"  - {name}\n" for name in nav)
    config.write_text(
        f"INHERIT: {ROOT / 'mkdocs.yml'}\n"
        f"docs_dir: {docs}\nsite_dir: {tmp_path / 'site'}\n"
        "plugins:\n  - search\n"
        f"hooks:\n  - {ROOT / 'scripts' / 'mkdocs_flags.py'}\n"  # relative to this file else
        f"nav:\n{nav_lines}"
    )
    # -o: never re-run the set-up from here, even when setup.py is newer than the stamp.
    return subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.installed-stamp", "docs"]
        + [f"MKDOCS_CONFIG={config}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_clean_site_builds(tmp_path):
    build = _make_docs(
        tmp_path, {"index.md": "# Home\n", "usage.md": "# Usage\n"}, ["index.md", "usage.md"]
    )
    assert build.returncode == 0, build.stdout + build.stderr
    assert "WARNING -" not in build.stdout + build.stderr
    assert (tmp_path / "site" / "usage" / "index.html").is_file()


@pytest.mark.parametrize(
    ("pages", "nav", "warning"),
    [
        ({"index.md": "# Home\n", "usage.md": "# Usage\n"}, ["index.md"], "not included in the"),
        ({"index.md": "# Home\n", "usage.md": BROKEN_LINK}, ["index.md", "usage.md"], "missing.md"),
    ],
    ids=["page-outside-the-nav", "broken-link"],
)
def test_a_warning_fails_the_build(tmp_path, pages, nav, warning):
    build = _make_docs(tmp_path, pages, nav)
    output = build.stdout + build.stderr
    assert build.returncode != 0, output
    assert "WARNING -" in output and warning in output, output
    assert "Aborted with 1 warnings in strict mode" in output, output
