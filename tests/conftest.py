"""Shared fixtures: tiny synthetic datasets and tiny trained runs (trained once per session)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import ddnn_tf.keras  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything imports TensorFlow)

ROOT = Path(__file__).resolve().parents[1]
#: The committed default model (``ddnn train`` defaults, converted with --split local,cloud).
DEFAULT_MODEL = ROOT / "tflite_models" / "fmnist6_mlpcc"


@pytest.fixture(scope="session")
def tiny_dataset():
    from ddnn_tf.data import load_dataset

    return load_dataset("synthetic", n_samples=400, seed=0)


@pytest.fixture(scope="session")
def two_devices():
    """Synthetic scenes seen by two cameras: the search tests' data."""
    from ddnn_tf.data import load_dataset

    return load_dataset("synthetic", n_samples=400, num_devices=2, seed=0)


@pytest.fixture(scope="session")
def tiny_run(tiny_dataset, tmp_path_factory):
    """A 6-device MP-CC DDNN trained for 2 epochs on synthetic data, saved to a run dir."""
    from ddnn_tf.keras.presets import TrainConfig
    from ddnn_tf.keras.train import train

    out = tmp_path_factory.mktemp("runs") / "tiny"
    return train(tiny_dataset, config=TrainConfig(epochs=2, batch_size=32), out=out, verbose=0)


@pytest.fixture(scope="session")
def edge_run(tiny_dataset, tmp_path_factory):
    """A 6-device DDNN with two edges ({0, 1, 2} and {3, 4, 5}) and an edge exit, trained
    for one epoch on the tiny dataset, saved to a run dir."""
    from ddnn_tf.core.topology import Topology
    from ddnn_tf.keras.presets import TrainConfig
    from ddnn_tf.keras.train import train

    topology = Topology(
        input_shapes=tiny_dataset.input_shapes,
        num_classes=tiny_dataset.num_classes,
        edges=[[0, 1, 2], [3, 4, 5]],
        exits=("local", "edge", "cloud"),
    )
    out = tmp_path_factory.mktemp("runs") / "edge"
    return train(tiny_dataset, topology, TrainConfig(epochs=1, batch_size=32), out=out, verbose=0)


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``python -m <args>`` in a fresh interpreter, as a user would."""
    return _fresh_python(["-m", *args], timeout)


def run_python(code: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """Run ``python -c CODE`` in a fresh interpreter from the checkout."""
    return _fresh_python(["-c", code], timeout)


def _fresh_python(args: list[str], timeout: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
    )


def modules_loaded_by(code: str, timeout: int = 120) -> tuple[set[str], str]:
    """Run ``code`` in a fresh interpreter (it must succeed): the modules loaded by then
    (``sys.modules``, submodules included) and what it printed on stdout."""
    listing = "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    res = run_python(code + listing, timeout)
    assert res.returncode == 0, res.stderr[-2000:]
    return set(json.loads(res.stderr.strip().splitlines()[-1])), res.stdout


def both_exits(fmnist, local: int, cloud: int):
    """fmnist6 with a test split of its first ``local`` samples that exit locally and its
    first ``cloud`` samples that go to the cloud, in test order."""
    import dataclasses

    import numpy as np

    from ddnn_tf.runtime import Hierarchy

    exits = Hierarchy(DEFAULT_MODEL).run(fmnist.test.subset(slice(0, 200)).x).exit_index
    rows = np.sort(np.r_[np.flatnonzero(exits == 0)[:local], np.flatnonzero(exits == 1)[:cloud]])
    return dataclasses.replace(fmnist, test=fmnist.test.subset(rows))


def check_link_latency(result, radio: str) -> None:
    """A deployment over an emulated radio: every exit's measured latency is at least the
    cost model's prediction for the same samples (the radio's time is spent) and within
    its ballpark (the goal, within 15 % on BLE and LoRa, is measured by
    scripts/link_latency.py, not here)."""
    assert result["link"] == {"radio": radio, "wan": "broadband"}
    assert result["batch_size"] == 1 and result["lost"] == 0
    assert result["mismatches_vs_offline"] == 0
    for name in ("local", "cloud"):
        entry = result["latency_ms"][name]
        measured, predicted = entry["measured"], entry["predicted"]
        assert entry["samples"] > 0 and predicted["p50"] <= predicted["p95"]
        assert measured["p50"] >= 0.95 * predicted["p50"], (name, entry)
        assert measured["p50"] <= 1.5 * predicted["p50"] + 25.0, (name, entry)
    from ddnn_tf.serve.live_report import format_report

    assert "(predicted " in format_report(result)
