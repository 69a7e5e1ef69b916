"""docs/operations.md prints the tables ``scripts/operations_figures.py tables`` renders
from docs/results/operations/*.json and the commands that measured them; the script
writes a measured run only when it met its goals."""

import copy
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


FIGURES = _figures()


def test_the_page_prints_the_measured_tables_and_their_commands():
    page = (ROOT / "docs" / "operations.md").read_text()
    for name, table in FIGURES.tables().items():
        assert table in page, f"the {name} table of docs/operations.md is not the measured one"
    for name in FIGURES.RUNS:
        assert FIGURES.command(name) in page, name
        assert (FOLDER / f"{name}.json").is_file(), name


@pytest.mark.parametrize(
    ("name", "change", "missed"),
    [
        ("http_10k", {"lost": 1}, "lost = 1"),
        ("mqtt_10k", {"duplicates": 2}, "duplicates = 2"),
        ("restart_http", {"mismatches_vs_offline": 3}, "mismatches_vs_offline = 3"),
        ("soak_repeat20", {"rss_mb": {"gateway": [100.0, 150.0]}}, "gateway RSS grew 50.0 MB"),
    ],
)
def test_a_run_that_missed_a_goal_is_not_written(name, change, missed):
    report = json.loads((FOLDER / f"{name}.json").read_text())
    assert FIGURES.missed_goals(name, report) == []  # the committed measurement met them
    bad = copy.deepcopy(report)
    for key, value in change.items():
        bad[key] = {**bad[key], **value} if isinstance(value, dict) else value
    assert any(missed in m for m in FIGURES.missed_goals(name, bad))
