"""The figures the README and the docs print are the committed models', measured.

``make demo``'s block (README.md and docs/training.md), the ``ddnn run`` report of the
paper's model (docs/running.md) and the README's Python example are recomputed from the
binaries in ``tflite_models/`` on the fmnist6 test set.
"""

import re

import pytest
from conftest import DEFAULT_MODEL, ROOT

from ddnn_tf.core.calibration import Calibration

pytestmark = pytest.mark.slow

PAPER_MODEL = ROOT / "tflite_models" / "fmnist6_paper"
SUMMARY = {
    "local": r"local accuracy \(all samples exit there\): ([\d.]+)",
    "cloud": r"cloud accuracy \(all samples exit there\): ([\d.]+)",
    "threshold": r"overall accuracy at T \(local=([\d.]+)\)",
    "overall": r"overall accuracy at T \(local=[\d.]+\): ([\d.]+)",
    "local_exit_pct": r"exits: local ([\d.]+)%",
    "bytes": r"bytes per device per sample(?: \(measured\))?: ([\d.]+)",
}
SWEEP_ROW = re.compile(r"^\s*([01]\.\d\d)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$", re.M)


def code_block_after(path, anchor: str) -> str:
    """The first fenced code block after ``anchor`` in a markdown file."""
    text = (ROOT / path).read_text()
    assert anchor in text, f"{path}: {anchor!r} not found"
    return text[text.index(anchor) + len(anchor) :].split("```", 2)[1]


CALIBRATION = r"  T calibrated by (.+)"


def printed(block: str) -> dict[str, str]:
    found = {}
    for key, pattern in SUMMARY.items():
        match = re.search(pattern, block)
        assert match, f"{key} missing from the block:\n{block}"
        found[key] = match[1]
    line = re.search(CALIBRATION, block)  # what chose T, when the report used its T
    found["calibration"] = line[1] if line else None
    return found


def measured(evaluation) -> dict[str, str]:
    d = evaluation.to_dict()
    return {
        "local": f"{d['accuracy']['local']:.4f}",
        "cloud": f"{d['accuracy']['cloud']:.4f}",
        "threshold": f"{d['thresholds']['local']:.2f}",
        "overall": f"{d['accuracy']['overall']:.4f}",
        "local_exit_pct": f"{100 * d['exit_fraction']['local']:.2f}",
        "bytes": f"{d['bytes_per_device']:.1f}",
        "calibration": (
            Calibration.from_dict(d["calibration"]).describe() if "calibration" in d else None
        ),
    }


@pytest.fixture(scope="module")
def default_evaluation():
    from ddnn_tf.runtime import evaluate_model

    return evaluate_model(DEFAULT_MODEL, data="fmnist6", sweep=True, batch_size=512)


DEMO_BLOCKS = [
    ("README.md", "evaluates it on the 10,000 test images:"),
    ("docs/training.md", "`make demo` ends with `ddnn evaluate runs/default --sweep`:"),
    ("docs/getting-started.md", "It prints:"),
]


@pytest.mark.parametrize("path, anchor", DEMO_BLOCKS)
def test_demo_figures_are_the_committed_models(path, anchor, default_evaluation):
    block = code_block_after(path, anchor)
    assert printed(block) == measured(default_evaluation)
    rows = SWEEP_ROW.findall(block)
    if path == "docs/getting-started.md":
        assert not rows  # the summary only; the sweep lives on the training page
        return
    want = [
        (
            f"{r['threshold']:.2f}",
            f"{100 * r['exit_fraction']['local']:.2f}",
            f"{100 * r['accuracy_overall']:.2f}",
            f"{r['bytes_per_device']:.1f}",
        )
        for r in default_evaluation.to_dict()["sweep"]
    ]
    assert rows == want


def test_the_demo_blocks_agree():
    blocks = [code_block_after(p, a) for p, a in DEMO_BLOCKS[:2]]
    assert blocks[0] == blocks[1]


def test_running_page_report_is_the_paper_models():
    from ddnn_tf.runtime import evaluate_model

    block = code_block_after("docs/running.md", "--data fmnist6 --threshold 0.8\n```")
    assert block.startswith("\ntflite_models/fmnist6_paper (portable): 10000 test samples")
    evaluation = evaluate_model(PAPER_MODEL, data="fmnist6", threshold=0.8, batch_size=512)
    assert printed(block) == measured(evaluation)
    assert "(raw offload 140; 3.4x less)" in block


def test_readme_python_example_prints_what_it_says():
    from ddnn_tf.data import load_dataset
    from ddnn_tf.runtime import Hierarchy

    text = (ROOT / "README.md").read_text()
    match = re.search(
        r"result\.accuracy\(test\.y\), result\.bytes_per_device\(\)\s+# ([\d.]+), ([\d.]+)", text
    )
    assert match, "the README's example lost its printed figures"
    test = load_dataset("fmnist6").test
    result = Hierarchy(DEFAULT_MODEL).run(test.x, fail="3", batch_size=512)
    assert f"{result.accuracy(test.y):.4f}" == match[1]
    assert f"{result.bytes_per_device():.1f}" == match[2]
