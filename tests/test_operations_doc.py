"""docs/operations.md prints the measured figures of docs/results/operations/*.json (the
deploys of ``scripts/operations_figures.py run``), and those runs met their goals."""

import importlib.util
import json

import pytest
from conftest import ROOT

FOLDER = ROOT / "docs" / "results" / "operations"


def _figures():
    spec = importlib.util.spec_from_file_location(
        "operations_figures", ROOT / "scripts" / "operations_figures.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_page_prints_the_measured_tables_and_their_commands():
    figures = _figures()
    page = (ROOT / "docs" / "operations.md").read_text()
    for name, table in figures.tables().items():
        assert table in page, f"the {name} table of docs/operations.md is not the measured one"
    for name in figures.RUNS:
        assert figures.command(name) in page, name
        assert (FOLDER / f"{name}.json").is_file(), name


@pytest.mark.parametrize("name", sorted(p.stem for p in FOLDER.glob("*.json")))
def test_every_measured_run_answered_each_sample_once_as_offline(name):
    r = json.loads((FOLDER / f"{name}.json").read_text())
    assert r["lost"] == 0 and r["duplicates"] == 0 and r["mismatches_vs_offline"] == 0
    if name.startswith("soak"):
        assert r["n_samples"] == 200_000
        for service in ("gateway", "cloud"):
            at_10, at_end = r["rss_mb"][service]
            assert at_end - at_10 <= 20.0, service  # flat memory over the stream
