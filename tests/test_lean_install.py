"""``pip install ddnn_tf`` without extras: the runtime a gateway or a Raspberry Pi needs.

The package is built from this checkout into a fresh virtual environment (pip's cache
keeps it quick); TensorFlow must not be installed there, and ``ddnn run`` on the default
model must print the full environment's figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from conftest import DEFAULT_MODEL, ROOT

pytestmark = pytest.mark.slow

#: A lean install is numpy, the LiteRT interpreter, jsonschema, tqdm and fire.
MAX_VENV_MB = 400


def _dir_mb(path: Path) -> float:
    return (
        sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20
    )


@pytest.fixture(scope="module")
def lean_venv(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("lean") / "venv"
    venv.EnvBuilder(with_pip=True).create(home)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run(
        [home / "bin" / "python", "-m", "pip", "install", "--quiet", str(ROOT)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return home


def _lean(home: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [home / "bin" / "python", *args], capture_output=True, text=True, env=env, cwd=cwd,
        timeout=600,
    )  # fmt: skip


def test_lean_install_has_no_tensorflow_and_is_small(lean_venv, tmp_path):
    code = (
        "import importlib.util as u; "
        "print([m for m in ('tensorflow', 'tf_keras', 'larq', 'larq_compute_engine', "
        "'tensorflow_model_optimization', 'fastapi', 'ray', 'matplotlib', 'optuna') if u.find_spec(m)])"
    )
    proc = _lean(lean_venv, "-c", code, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
    size = _dir_mb(lean_venv)
    assert size < MAX_VENV_MB, f"lean venv is {size:.0f} MB"


def test_lean_runtime_gives_the_full_environments_figures(lean_venv, tmp_path):
    args = ["-m", "ddnn_tf.run", str(DEFAULT_MODEL), "--data", "fmnist6", "--limit", "1000"]
    lean = _lean(lean_venv, *args, "--json", cwd=tmp_path)  # outside the checkout
    assert lean.returncode == 0, lean.stderr[-2000:]
    full = subprocess.run(
        [sys.executable, *args, "--json"], capture_output=True, text=True, cwd=ROOT, timeout=600
    )
    assert full.returncode == 0, full.stderr[-2000:]
    a, b = json.loads(lean.stdout), json.loads(full.stdout)
    for key in ("n_samples", "accuracy", "exit_fraction", "bytes_per_device", "thresholds"):
        assert a[key] == b[key], key
    assert a["n_samples"] == 1000


def test_lean_commands_that_need_an_extra_say_which(lean_venv, tmp_path):
    proc = _lean(lean_venv, "-m", "ddnn_tf.cli", "--help", cwd=tmp_path)
    listed = _lean(lean_venv, "-c", "from ddnn_tf.cli import main; main(['--help'])", cwd=tmp_path)
    assert listed.returncode == 0 and "serve gateway" in listed.stdout, listed.stderr
    ddnn = lean_venv / "bin" / "ddnn"
    for command, extra in (
        (["train", "--data", "synthetic"], "train"),
        (["serve", "cloud", str(DEFAULT_MODEL)], "serve"),
        (["search", "--data", "synthetic"], "search"),
    ):
        proc = subprocess.run(
            [ddnn, *command], capture_output=True, text=True, cwd=tmp_path, timeout=120
        )
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
        assert f"pip install 'ddnn_tf[{extra}]'" in lines[0], lines
