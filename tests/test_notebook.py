"""The end-to-end notebook: committed stripped, Colab-ready, and it runs (quick setting)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "ddnn_end_to_end.ipynb"
STRIP = ROOT / "scripts" / "strip_notebook.py"
README = ROOT / "README.md"
BADGE_URL = (
    "https://colab.research.google.com/github/ddnn-tf/ddnn-tf/blob/main/"
    "notebooks/ddnn_end_to_end.ipynb"
)
#: The quick setting: a 1-epoch fmnist6 subset, so the whole notebook runs in well under
#: 3 minutes on 2 cores; WORKDIR is added per test (a pytest temporary directory).
QUICK = {"DATA": "fmnist6", "EPOCHS": 1, "TRAIN_SAMPLES": 3000, "TEST_SAMPLES": 1000}
CELL_TIMEOUT_S = 300


def _notebook():
    return nbformat.read(NOTEBOOK, as_version=4)


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def _parameters_index(nb) -> int:
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"expected one cell tagged `parameters`, found {len(tagged)}"
    return tagged[0]


def test_committed_notebook_is_stripped():
    nb = _notebook()
    nbformat.validate(nb)
    for cell in _code_cells(nb):
        assert cell.outputs == [], f"cell {cell.id} has outputs"
        assert cell.execution_count is None, f"cell {cell.id} has an execution count"
    check = subprocess.run(
        [sys.executable, str(STRIP), "--check", str(NOTEBOOK)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr


def test_strip_script_strips_an_executed_notebook(tmp_path):
    nb = _notebook()
    cell = _code_cells(nb)[0]
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]
    cell.execution_count = 3
    cell.metadata["execution"] = {"iopub.execute_input": "2024-01-01T00:00:00"}
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.9"}
    dirty = tmp_path / "dirty.ipynb"
    nbformat.write(nb, dirty)

    check = subprocess.run([sys.executable, str(STRIP), "--check", str(dirty)], capture_output=True)
    assert check.returncode == 1
    subprocess.run([sys.executable, str(STRIP), str(dirty)], check=True, capture_output=True)
    assert dirty.read_text() == NOTEBOOK.read_text()


def test_notebook_is_colab_ready():
    nb = _notebook()
    code = _code_cells(nb)
    for cell in code:  # valid Python everywhere: no `!pip` or `%magic` lines
        ast.parse(cell.source)
    first = code[0].source
    assert 'REPO = "https://github.com/ddnn-tf/ddnn-tf"' in first
    assert (
        "ddnn_tf[train,experiments] @ git+{REPO}" in first
        and "google.colab" in first
        and "sys.executable" in first
    )
    assert BADGE_URL in nb.cells[0].source
    # `import ddnn_tf.keras` selects legacy Keras: it must come before anything importing
    # TensorFlow.
    imports = next(c for c in code if "import ddnn_tf" in c.source)
    assert re.search(r"^(import|from) (\S+)", imports.source, re.M).group(2) == "ddnn_tf.keras"
    # The parameters come first, so overrides injected after them reach every later cell.
    assert _parameters_index(nb) < nb.cells.index(imports)


def test_readme_has_the_colab_badge():
    text = README.read_text()
    assert f"]({BADGE_URL})" in text
    assert "notebooks/ddnn_end_to_end.ipynb" in text


@pytest.mark.slow
def test_notebook_runs_in_the_quick_setting(tmp_path):
    nb = _notebook()
    overrides = {**QUICK, "WORKDIR": str(tmp_path)}
    injected = nbformat.v4.new_code_cell(
        "# Injected by tests/test_notebook.py (papermill-style overrides)\n"
        + "".join(f"{k} = {v!r}\n" for k, v in overrides.items())
        + f"import sys\nassert sys.prefix == {sys.prefix!r}, sys.prefix\n"
    )
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(_parameters_index(nb) + 1, injected)

    start = time.perf_counter()
    # Any cell that raises fails the test (nbclient raises CellExecutionError).
    NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT)}},
    ).execute()
    seconds = time.perf_counter() - start
    print(f"notebook ran in {seconds:.0f} s (quick setting {QUICK})")

    def stdout(cell_id: str) -> str:
        cell = next(c for c in nb.cells if c.get("id") == cell_id)
        return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")

    images = sum(1 for c in _code_cells(nb) for o in c.outputs if "image/png" in o.get("data", {}))
    assert images >= 6, f"expected the 6 figures, got {images}"
    assert "Colab: False" in stdout("setup")
    assert "3000 train / 6000 val / 1000 test samples" in stdout("data")
    assert "Model size" in stdout("model")  # larq's summary of a device tier
    assert "trained 1 epoch(s)" in stdout("train")
    assert re.search(r"overall accuracy at T \(local=\d\.\d\d\)", stdout("evaluate"))
    beside = stdout("paper-beside")  # the paper preset trained beside the default
    assert "trained the paper preset" in beside
    assert re.search(r"^default .*\n^paper ", beside, re.M)
    converted = stdout("convert")
    for name in (
        "device_0.tflite",
        "device_5.lce.tflite",
        "local_aggregator.tflite",
        "cloud.tflite",
    ):
        assert name in converted
    assert "orchestrator agrees with the Keras evaluation: portable, lce targets" in stdout(
        "orchestrate"
    )
    assert "x less" in stdout("communication")
    assert "device 5" in stdout("faults")
    # Everything was written under WORKDIR, nothing in the repository.
    assert (tmp_path / "runs" / "notebook" / "weights.h5").is_file()
    assert (tmp_path / "tflite_models" / "notebook" / "manifest.json").is_file()
