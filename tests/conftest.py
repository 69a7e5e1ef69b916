"""Shared fixtures: tiny synthetic datasets and tiny trained runs (trained once per session)."""

from __future__ import annotations

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


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``python -m <args>`` in a fresh interpreter, as a user would."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
    )
