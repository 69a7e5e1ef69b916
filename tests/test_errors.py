"""Every malformed input gets a clean error: flags, paths, JSON documents, tensors, binaries.

Each case of the table runs a ``ddnn`` command in this process through the same error
handling the console script uses (:func:`ddnn_tf.cli.main`) and asserts a
non-zero exit, one ``error: ...`` line on stderr naming the problem (the flag, file,
key path or tier), no traceback, nothing left behind and existing outputs untouched.
A few checks need a fresh process: a corrupt binary must end in a message, not a
signal, and a successful command prints no TensorFlow start-up lines.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, run_cli

from ddnn_tf.cli import main as ddnn

# The committed paper conversion: 6 devices, 10 classes, LCE custom ops in every tier (its
# cloud too), so a wrong-target binary is always detectable.
MODEL = ROOT / "tflite_models" / "fmnist6_paper"


def call(monkeypatch, capsys, command: str, *args) -> tuple[int, str, str]:
    """``ddnn <command> ARGS`` in this process: (status, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["ddnn", command, *map(str, args)])
    status = 0
    try:
        ddnn([command, *map(str, args)])
    except SystemExit as exit_:
        status = exit_.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with a hash of its bytes (directories as 'dir')."""
    out = {}
    for p in sorted(root.rglob("*")):
        out[str(p.relative_to(root))] = (
            "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        )
    return out


@dataclass
class Ctx:
    """Paths a case may use or edit (all inside the test's tmp_path)."""

    tmp: Path
    model: Path  # a copy of tflite_models/fmnist6_mlpcc
    run: Path  # a copy of the tiny trained run
    file: Path  # a plain file

    def manifest(self, edit: Callable[[dict], object]) -> None:
        path = self.model / "manifest.json"
        data = json.loads(path.read_text())
        edit(data)
        path.write_text(json.dumps(data))

    def run_json(self, name: str, value) -> None:
        (self.run / name).write_text(json.dumps(value))

    def run_edit(self, name: str, edit: Callable[[dict], object]) -> None:
        data = json.loads((self.run / name).read_text())
        edit(data)
        self.run_json(name, data)

    def binary(self, tier: str, target: str, data: bytes) -> None:
        """Replace a tier file and update its manifest hash and size to match."""
        suffix = ".lce.tflite" if target == "lce" else ".tflite"
        (self.model / f"{tier}{suffix}").write_bytes(data)

        def fix(m):
            entry = m["tiers"][tier]["files"][target]
            entry.update(size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest())

        self.manifest(fix)

    def read(self, tier: str, target: str) -> bytes:
        suffix = ".lce.tflite" if target == "lce" else ".tflite"
        return (self.model / f"{tier}{suffix}").read_bytes()

    def npz(self, **arrays) -> Path:
        path = self.tmp / "data.npz"
        np.savez(path, **arrays)
        return path


def _views(n=20, shape=(10, 14, 1), k=6, **overrides):
    rng = np.random.default_rng(0)
    arrays = {f"x{i}": rng.random((n, *shape)).astype(np.float32) for i in range(k)}
    arrays["y"] = np.arange(n) % 10
    arrays["classes"] = np.array(json.loads((MODEL / "manifest.json").read_text())["classes"])
    arrays.update(overrides)
    return arrays


def _nan_views():
    arrays = _views()
    arrays["x2"][3, 0, 0, 0] = np.nan
    return arrays


def _set(path: list, value):
    def edit(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


def _pop(*path):
    def edit(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return edit


T = "train"


# Each case: (id, command, argv builder, setup, substrings the error line must contain).
# argv builders get the Ctx; "{out}" style is avoided so every path is explicit.
def _flipped(data: bytes, changes: dict[int, int]) -> bytes:
    """``data`` with some bytes replaced (corruptions found by fuzzing the committed files)."""
    out = bytearray(data)
    for offset, value in changes.items():
        out[offset] = value
    return bytes(out)


CASES = [
    # ------------------------------------------------------------ flags: numbers
    (
        "epochs-float",
        T,
        lambda c: ["--out", c.tmp / "r", "--epochs", "1.5"],
        None,
        ["--epochs", "1.5"],
    ),
    (
        "epochs-zero",
        T,
        lambda c: ["--out", c.tmp / "r", "--epochs", "0"],
        None,
        ["--epochs", ">= 1"],
    ),
    ("seed-float", T, lambda c: ["--out", c.tmp / "r", "--seed", "1.5"], None, ["--seed", "1.5"]),
    ("seed-negative", T, lambda c: ["--out", c.tmp / "r", "--seed", "-1"], None, ["--seed", "-1"]),
    (
        "lr-inf",
        T,
        lambda c: ["--out", c.tmp / "r", "--learning-rate", "inf"],
        None,
        ["--learning-rate", "'inf'"],
    ),
    (
        "lr-nan",
        T,
        lambda c: ["--out", c.tmp / "r", "--learning-rate", "nan"],
        None,
        ["--learning-rate", "'nan'"],
    ),
    (
        "lr-negative",
        T,
        lambda c: ["--out", c.tmp / "r", "--learning-rate", "-0.1"],
        None,
        ["--learning-rate", "> 0"],
    ),
    (
        "batch-size-zero",
        T,
        lambda c: ["--out", c.tmp / "r", "--batch-size", "0"],
        None,
        ["--batch-size"],
    ),
    (
        "dropout-one",
        T,
        lambda c: ["--out", c.tmp / "r", "--device-dropout", "1"],
        None,
        ["--device-dropout", "< 1"],
    ),
    (
        "verbose-three",
        T,
        lambda c: ["--out", c.tmp / "r", "--verbose", "3"],
        None,
        ["--verbose", "<= 2"],
    ),
    (
        "train-limit-zero",
        T,
        lambda c: ["--out", c.tmp / "r", "--train-limit", "0"],
        None,
        ["--train-limit"],
    ),
    (
        "filters-float",
        T,
        lambda c: ["--out", c.tmp / "r", "--device-filters", "2.5"],
        None,
        ["--device-filters", "2.5"],
    ),
    (
        "unknown-flag",
        T,
        lambda c: ["--out", c.tmp / "r", "--epoch", "2"],
        None,
        ["Unknown flag --epoch"],
    ),
    (
        "weights-nan",
        T,
        lambda c: ["--data", "synthetic", "--out", c.tmp / "r", "--exit-weights", "local=nan"],
        None,
        ["--exit-weights", "local", "nan"],
    ),
    (
        "weights-negative",
        T,
        lambda c: ["--data", "synthetic", "--out", c.tmp / "r", "--exit-weights", "local=-1"],
        None,
        ["--exit-weights", "local", ">= 0"],
    ),
    (
        "weights-count",
        T,
        lambda c: ["--data", "synthetic", "--out", c.tmp / "r", "--exit-weights", "1"],
        None,
        ["--exit-weights", "1 weights for 2 exits"],
    ),
    (
        "weights-unknown-exit",
        T,
        lambda c: ["--data", "synthetic", "--out", c.tmp / "r", "--exit-weights", "fog=1"],
        None,
        ["--exit-weights", "fog"],
    ),
    (
        "edges-incomplete",
        T,
        lambda c: ["--data", "synthetic", "--out", c.tmp / "r", "--edges", "0,1;2"],
        None,
        ["Devices [3, 4, 5] are in no edge"],
    ),
    (
        "exit-unknown",
        T,
        lambda c: ["--data", "synthetic", "--out", c.tmp / "r", "--exits", "local,fog"],
        None,
        ["Unknown exit", "fog"],
    ),
    (
        "scheme-unknown",
        T,
        lambda c: ["--data", "synthetic", "--out", c.tmp / "r", "--local-agg", "median"],
        None,
        ["local_agg='median'"],
    ),
    ("run-fail-float", "run", lambda c: [c.model, "--fail", "1.5"], None, ["--fail", "1.5"]),
    (
        "run-fail-list-float",
        "run",
        lambda c: [c.model, "--data", "npz", "--path", c.npz(**_views()), "--fail", "2,2.7"],
        None,
        ["--fail", "2.7"],
    ),
    (
        "run-fail-missing-device",
        "run",
        lambda c: [c.model, "--data", "npz", "--path", c.npz(**_views()), "--fail", "9"],
        None,
        ["--fail", "device 9 does not exist"],
    ),
    ("run-limit-zero", "run", lambda c: [c.model, "--limit", "0"], None, ["--limit", "got 0"]),
    (
        "run-limit-negative",
        "run",
        lambda c: [c.model, "--limit", "-1"],
        None,
        ["--limit", "got -1"],
    ),
    (
        "run-threshold-range",
        "run",
        lambda c: [c.model, "--data", "npz", "--path", c.npz(**_views()), "--threshold", "1.5"],
        None,
        ["--threshold", "[0, 1]"],
    ),
    (
        "run-threshold-nan",
        "run",
        lambda c: [c.model, "--data", "npz", "--path", c.npz(**_views()), "--threshold", "nan"],
        None,
        ["--threshold", "[0, 1]"],
    ),
    (
        "run-fail-prob",
        "run",
        lambda c: [c.model, "--fail-prob", "2"],
        None,
        ["--fail-prob", "<= 1"],
    ),
    ("run-seed-float", "run", lambda c: [c.model, "--seed", "1.5"], None, ["--seed", "1.5"]),
    ("run-threads-zero", "run", lambda c: [c.model, "--threads", "0"], None, ["--threads", ">= 1"]),
    ("run-target", "run", lambda c: [c.model, "--target", "gpu"], None, ["--target", "gpu"]),
    ("run-subset", "run", lambda c: [c.model, "--subset", "train"], None, ["--subset", "train"]),
    (
        "run-split-renamed",
        "run",
        lambda c: [c.model, "--split", "val"],
        None,
        ["--split is now --subset", "ddnn convert"],
    ),
    (
        "bench-run-limit",
        "bench",
        lambda c: ["run", c.model, "--limit", "-1"],
        None,
        ["--limit", "got -1"],
    ),
    (
        "bench-tiers-repeats",
        "bench",
        lambda c: ["tiers", c.model, "--repeats", "0"],
        None,
        ["--repeats", ">= 1"],
    ),
    (
        "bench-tiers-threads",
        "bench",
        lambda c: ["tiers", c.model, "--threads", "1.5"],
        None,
        ["--threads", "1.5"],
    ),
    (
        "convert-check-limit",
        "convert",
        lambda c: [c.run, "--check-only", "--out", c.model, "--limit", "-1"],
        None,
        ["--limit", "got -1"],
    ),
    (
        "convert-split",
        "convert",
        lambda c: [c.run, "--split", "local,fog", "--out", c.tmp / "m"],
        None,
        ["fog"],
    ),
    (
        "experiments-name",
        "experiments",
        lambda c: ["tables", "--data", "synthetic", "--out", c.tmp / "x"],
        None,
        ["aggregation, threshold"],
    ),
    (
        "experiments-threshold",
        "experiments",
        lambda c: ["faults", "--threshold", "1.5", "--out", c.tmp / "x"],
        None,
        ["--threshold", "1.5"],
    ),
    (
        "experiments-epochs",
        "experiments",
        lambda c: ["faults", "--epochs", "0", "--out", c.tmp / "x"],
        None,
        ["--epochs", ">= 1"],
    ),
    # ------------------------------------------------------------ output paths
    (
        "train-out-file",
        T,
        lambda c: ["--data", "synthetic", "--out", c.file],
        None,
        ["Run directory", "is a file"],
    ),
    (
        "train-out-file-overwrite",
        T,
        lambda c: ["--data", "synthetic", "--out", c.file, "--overwrite"],
        None,
        ["is a file"],
    ),
    (
        "train-out-under-file",
        T,
        lambda c: ["--data", "synthetic", "--out", c.file / "r"],
        None,
        ["plain.txt is a file"],
    ),
    (
        "train-out-unwritable",
        T,
        lambda c: ["--data", "synthetic", "--out", "/sys/ddnn-run"],
        None,
        ["/sys is not writable"],
    ),
    (
        "train-out-exists",
        T,
        lambda c: ["--data", "synthetic", "--out", c.run],
        None,
        ["already exists; pass --overwrite"],
    ),
    (
        "train-out-other-dir",
        T,
        lambda c: ["--data", "synthetic", "--out", c.tmp / "notes", "--overwrite"],
        lambda c: (c.tmp / "notes").mkdir() or (c.tmp / "notes" / "a.txt").write_text("mine"),
        ["no topology.json", "refusing"],
    ),
    (
        "convert-out-file-overwrite",
        "convert",
        lambda c: [c.run, "--out", c.file, "--overwrite"],
        None,
        ["Output directory", "is a file"],
    ),
    (
        "convert-out-under-file",
        "convert",
        lambda c: [c.run, "--out", c.file / "m"],
        None,
        ["is a file"],
    ),
    (
        "convert-out-unwritable",
        "convert",
        lambda c: [c.run, "--out", "/sys/ddnn-model"],
        None,
        ["not writable"],
    ),
    (
        "convert-out-exists",
        "convert",
        lambda c: [c.run, "--out", c.model],
        None,
        ["already exists; pass --overwrite"],
    ),
    (
        "convert-out-other-dir",
        "convert",
        lambda c: [c.run, "--out", c.run, "--overwrite"],
        None,
        ["no manifest.json", "refusing"],
    ),
    (
        "experiments-out-file",
        "experiments",
        lambda c: ["faults", "--data", "synthetic", "--out", c.file],
        None,
        ["is a file"],
    ),
    (
        "experiments-out-under-file",
        "experiments",
        lambda c: ["faults", "--data", "synthetic", "--out", c.file / "x"],
        None,
        ["is a file"],
    ),
    # ------------------------------------------------------------ manifest.json
    (
        "manifest-classes-int",
        "run",
        lambda c: [c.model],
        lambda c: c.manifest(_set(["classes"], 10)),
        ["manifest.json: classes: expected array"],
    ),
    (
        "manifest-summary-str",
        "run",
        lambda c: [c.model],
        lambda c: c.manifest(_set(["wire", "summary"], "x")),
        ["manifest.json: wire.summary: expected object"],
    ),
    (
        "manifest-inputs-int",
        "run",
        lambda c: [c.model],
        lambda c: c.manifest(_set(["tiers", "cloud", "inputs"], 3)),
        ["tiers.cloud.inputs: expected array"],
    ),
    (
        "manifest-dtype",
        "run",
        lambda c: [c.model],
        lambda c: c.manifest(_set(["tiers", "cloud", "inputs", 0, "dtype"], "float33")),
        ["tiers.cloud.inputs[0].dtype: 'float33' is not one of"],
    ),
    (
        "manifest-size-str",
        "run",
        lambda c: [c.model],
        lambda c: c.manifest(_set(["tiers", "cloud", "files", "portable", "size_bytes"], "56584")),
        ["tiers.cloud.files.portable.size_bytes: expected integer"],
    ),
    (
        "manifest-threshold-range",
        "run",
        lambda c: [c.model],
        lambda c: c.manifest(_set(["thresholds", "local"], 1.5)),
        ["thresholds.local", "maximum"],
    ),
    (
        "manifest-threshold-nan",
        "run",
        lambda c: [c.model],
        lambda c: c.manifest(_set(["thresholds", "local"], float("nan"))),
        ["thresholds.local", "finite"],
    ),
    (
        "manifest-version",
        "run",
        lambda c: [c.model],
        lambda c: c.manifest(_set(["format_version"], 2)),
        ["format_version", "reads version 1"],
    ),
    (
        "manifest-no-tiers",
        "run",
        lambda c: [c.model],
        lambda c: c.manifest(_pop("tiers")),
        ["missing key(s) ['tiers']"],
    ),
    (
        "manifest-list",
        "run",
        lambda c: [c.model],
        lambda c: (c.model / "manifest.json").write_text("[]"),
        ["manifest.json: expected object"],
    ),
    (
        "manifest-not-json",
        "run",
        lambda c: [c.model],
        lambda c: (c.model / "manifest.json").write_text("{"),
        ["manifest.json is not valid JSON"],
    ),
    (
        "manifest-nested-too-deeply",
        "run",
        lambda c: [c.model],
        lambda c: (c.model / "manifest.json").write_text("[" * 100_000),
        ["manifest.json is not valid JSON", "nests too deeply"],
    ),
    (
        "manifest-not-text",
        "run",
        lambda c: [c.model],
        lambda c: (c.model / "manifest.json").write_bytes(b"\xff\xfe{}"),
        ["manifest.json is not valid JSON", "utf-8"],
    ),
    (
        "manifest-shape-null",
        "run",
        lambda c: [c.model],
        lambda c: c.manifest(_set(["topology", "input_shapes"], None)),
        ["topology.input_shapes: expected array, got null"],
    ),
    (
        "manifest-file-escape",
        "run",
        lambda c: [c.model],
        lambda c: c.manifest(
            _set(["tiers", "cloud", "files", "portable", "file"], "../cloud.tflite")
        ),
        ["plain name"],
    ),
    (
        "manifest-split-order",
        "run",
        lambda c: [c.model],
        lambda c: c.manifest(_set(["split"], ["cloud", "local"])),
        ["split", "ending with 'cloud'"],
    ),
    (
        "manifest-hash",
        "run",
        lambda c: [c.model],
        lambda c: (c.model / "cloud.tflite").write_bytes(b"x" * 56584),
        ["cloud.tflite does not match its manifest entry"],
    ),
    (
        "manifest-file-missing",
        "run",
        lambda c: [c.model],
        lambda c: (c.model / "device_3.tflite").unlink(),
        ["device_3.tflite is missing"],
    ),
    # ------------------------------------------------------------ run directory JSON
    (
        "topology-shapes-null",
        "evaluate",
        lambda c: [c.run],
        lambda c: c.run_edit("topology.json", _set(["input_shapes"], None)),
        ["topology.json: input_shapes: expected array, got null"],
    ),
    (
        "topology-classes-float",
        "evaluate",
        lambda c: [c.run],
        lambda c: c.run_edit("topology.json", _set(["num_classes"], 2.5)),
        ["topology.json: num_classes: expected integer"],
    ),
    (
        "topology-classes-str",
        "evaluate",
        lambda c: [c.run],
        lambda c: c.run_edit("topology.json", _set(["num_classes"], "10")),
        ["topology.json: num_classes: expected integer"],
    ),
    (
        "topology-edge-float",
        "evaluate",
        lambda c: [c.run],
        lambda c: c.run_edit("topology.json", _set(["edges"], [[0.5]])),
        ["topology.json: edges[0][0]"],
    ),
    (
        "topology-unknown-key",
        "evaluate",
        lambda c: [c.run],
        lambda c: c.run_edit("topology.json", _set(["fog"], 1)),
        ["topology.json", "unknown key(s) ['fog']"],
    ),
    (
        "topology-not-json",
        "evaluate",
        lambda c: [c.run],
        lambda c: (c.run / "topology.json").write_text("{'a'"),
        ["topology.json is not valid JSON"],
    ),
    (
        "run-file-nested-too-deeply",
        "evaluate",
        lambda c: [c.run],
        lambda c: (c.run / "history.json").write_text('{"a": ' * 100_000),
        ["history.json is not valid JSON", "nests too deeply"],
    ),
    (
        "dataset-no-spec",
        "evaluate",
        lambda c: [c.run],
        lambda c: c.run_edit("dataset.json", _pop("spec")),
        ["dataset.json: missing key(s) ['spec']"],
    ),
    (
        "dataset-spec-str",
        "evaluate",
        lambda c: [c.run],
        lambda c: c.run_edit("dataset.json", _set(["spec"], "synthetic")),
        ["dataset.json: spec: expected object"],
    ),
    (
        "config-unknown-key",
        "evaluate",
        lambda c: [c.run],
        lambda c: c.run_edit("train_config.json", _set(["warmup_steps"], 10)),
        ["train_config.json", "unknown key(s) ['warmup_steps']", "newer version"],
    ),
    (
        "config-epochs-float",
        "evaluate",
        lambda c: [c.run],
        lambda c: c.run_edit("train_config.json", _set(["epochs"], 1.5)),
        ["train_config.json: epochs: expected integer"],
    ),
    (
        "config-lr-nan",
        "evaluate",
        lambda c: [c.run],
        lambda c: c.run_edit("train_config.json", _set(["learning_rate"], float("nan"))),
        ["train_config.json: learning_rate", "finite"],
    ),
    (
        "thresholds-list",
        "evaluate",
        lambda c: [c.run],
        lambda c: c.run_json("thresholds.json", [0.5]),
        ["thresholds.json: expected object, got an array"],
    ),
    (
        "thresholds-range",
        "evaluate",
        lambda c: [c.run],
        lambda c: c.run_json("thresholds.json", {"local": 1.5}),
        ["thresholds.json: local", "maximum of 1"],
    ),
    (
        "thresholds-exit",
        "evaluate",
        lambda c: [c.run],
        lambda c: c.run_json("thresholds.json", {"cloud": 0.5}),
        ["thresholds.json", "'cloud'"],
    ),
    (
        "history-list",
        "evaluate",
        lambda c: [c.run],
        lambda c: c.run_json("history.json", [1, 2]),
        ["history.json: expected object"],
    ),
    (
        "individual-str",
        "evaluate",
        lambda c: [c.run],
        lambda c: c.run_json("individual.json", {"accuracy": "high"}),
        ["individual.json: accuracy: expected array"],
    ),
    (
        "weights-missing",
        "evaluate",
        lambda c: [c.run],
        lambda c: (c.run / "weights.h5").unlink(),
        ["weights.h5 is missing"],
    ),
    (
        "weights-garbage",
        "evaluate",
        lambda c: [c.run],
        lambda c: (c.run / "weights.h5").write_bytes(b"\x00" * 64),
        ["Cannot read weights", "weights.h5"],
    ),
    # ------------------------------------------------------------ tensors (data files)
    (
        "npz-shape",
        "run",
        lambda c: [c.model, "--data", "npz", "--path", c.npz(**_views(shape=(8, 8, 1)))],
        None,
        ["device 0 input has shape", "expected (N, 10, 14, 1)"],
    ),
    (
        "npz-nan",
        "run",
        lambda c: [c.model, "--data", "npz", "--path", c.npz(**_nan_views())],
        None,
        ["'x2'", "data.npz", "NaN"],
    ),
    (
        "npz-devices",
        "run",
        lambda c: [c.model, "--data", "npz", "--path", c.npz(**_views(k=5))],
        None,
        ["5 devices, the model 6"],
    ),
    (
        "npz-labels-float",
        "run",
        lambda c: [c.model, "--data", "npz", "--path", c.npz(**_views(y=np.full(20, 0.5)))],
        None,
        ["'y'", "integer labels"],
    ),
    (
        "npz-not-npz",
        "run",
        lambda c: [c.model, "--data", "npz", "--path", c.file],
        None,
        ["Cannot read", "npz"],
    ),
    (
        "mvmc-object-arrays",
        "run",
        lambda c: [c.model, "--data", "mvmc", "--path", c.npz(X=np.array([None, 1]), y=np.ones(2))],
        None,
        ["Cannot read key 'X'", "data.npz", "Object arrays"],
    ),
    (
        "npz-object-array",
        "run",
        lambda c: [c.model, "--data", "npz", "--path", c.npz(**_views(x1=np.array([None] * 20)))],
        None,
        ["Cannot read key 'x1'", "data.npz"],
    ),
    (
        "npz-missing",
        "run",
        lambda c: [c.model, "--data", "npz", "--path", c.tmp / "none.npz"],
        None,
        ["none.npz does not exist"],
    ),
    # ------------------------------------------------------------ tier binaries
    (
        "binary-truncated-lce",
        "run",
        lambda c: [c.model, "--target", "lce", "--data", "synthetic"],
        lambda c: c.binary("cloud", "lce", c.read("cloud", "lce")[:6000]),
        ["Tier cloud", "cloud.lce.tflite", "corrupt TFLite file"],
    ),
    (
        "binary-truncated-portable",
        "run",
        lambda c: [c.model, "--data", "synthetic"],
        lambda c: c.binary("device_0", "portable", c.read("device_0", "portable")[:4000]),
        ["Tier device_0", "device_0.tflite", "corrupt TFLite file"],
    ),
    (
        "binary-garbage",
        "run",
        lambda c: [c.model, "--data", "synthetic"],
        lambda c: c.binary("local_aggregator", "portable", bytes(range(256)) * 20),
        ["Tier local_aggregator", "not a TFLite flatbuffer"],
    ),
    (
        "binary-empty",
        "run",
        lambda c: [c.model, "--target", "lce", "--data", "synthetic"],
        lambda c: c.binary("device_4", "lce", b""),
        ["Tier device_4", "not a TFLite flatbuffer"],
    ),
    (
        "binary-lce-in-portable",
        "run",
        lambda c: [c.model, "--data", "synthetic"],
        lambda c: c.binary("device_1", "portable", c.read("device_1", "lce")),
        ["Tier device_1", "cannot resolve custom operator(s)", "LceBconv2d"],
    ),
    (
        "binary-wrong-tier",
        "run",
        lambda c: [c.model, "--data", "synthetic"],
        lambda c: c.binary("cloud", "portable", c.read("device_0", "portable")),
        ["Tier cloud", "cloud.tflite"],
    ),
    (
        "binary-shape-promise",
        "run",
        lambda c: [c.model, "--data", "synthetic"],
        lambda c: c.manifest(_set(["tiers", "local_aggregator", "outputs", 0, "shape"], [1, 11])),
        # the tier graph check reads the manifest before any binary is opened
        ["tiers.local_aggregator", "'logits'", "(10,)", "(11,)"],
    ),
    (
        "binary-order-promise",
        "run",
        lambda c: [c.model, "--target", "lce", "--data", "synthetic"],
        lambda c: c.manifest(
            lambda m: m["tiers"]["local_aggregator"]["files"]["lce"]["input_order"].reverse()
        ),
        ["Tier local_aggregator", "input_order"],
    ),
    (  # a metadata offset bent out of the file
        "binary-metadata-offset",
        "run",
        lambda c: [c.model, "--data", "synthetic"],
        lambda c: c.binary(
            "local_aggregator",
            "portable",
            _flipped(c.read("local_aggregator", "portable"), {368: 95}),
        ),
        ["Tier local_aggregator", "local_aggregator.tflite", "corrupt TFLite file", "metadata[1]"],
    ),
    (  # well-formed enough for the reader, refused by LCE's interpreter
        "binary-lce-refuses",
        "run",
        lambda c: [c.model, "--target", "lce", "--data", "synthetic"],
        lambda c: c.binary(
            "device_0",
            "lce",
            _flipped(c.read("device_0", "lce"), {708: 191, 1417: 212, 4165: 224, 4495: 187}),
        ),
        ["Tier device_0", "device_0.lce.tflite", "interpreter refused the file"],
    ),
    # ------------------------------------------------------------ services, devices, deploy
    (
        "deploy-limit-float",
        "deploy",
        lambda c: [c.model, "--limit", "1.5"],
        None,
        ["--limit", "1.5"],
    ),
    (
        "deploy-kill-at-negative",
        "deploy",
        lambda c: [c.model, "--kill-device", "0", "--kill-at", "-1"],
        None,
        ["--kill-at", ">= 0", "-1"],
    ),
    (
        "deploy-kill-device-out-of-range",
        "deploy",
        lambda c: [c.model, "--kill-device", "6", "--kill-at", "10", "--data", "synthetic"],
        None,
        ["--kill-device", "[0, 6)", "6"],
    ),
    (
        "deploy-replicas-zero",
        "deploy",
        lambda c: [c.model, "--replicas", "0"],
        None,
        ["--replicas"],
    ),
    (
        "deploy-threshold-nan",
        "deploy",
        lambda c: [c.model, "--threshold", "nan", "--data", "synthetic"],
        None,
        ["--threshold", "[0, 1]", "'nan'"],
    ),
    (
        "deploy-timeout-inf",
        "deploy",
        lambda c: [c.model, "--timeout-s", "inf"],
        None,
        ["--timeout-s", "'inf'"],
    ),
    ("deploy-unknown-flag", "deploy", lambda c: [c.model, "--bogus", "1"], None, ["--bogus"]),
    (
        "deploy-missing-model",
        "deploy",
        lambda c: [c.tmp / "nope"],
        None,
        ["No manifest", "nope"],
    ),
    (
        "serve-cloud-port-range",
        "serve",
        lambda c: ["cloud", c.model, "--port", "70000"],
        None,
        ["--port", "<= 65535", "70000"],
    ),
    (
        "serve-cloud-replicas-zero",
        "serve",
        lambda c: ["cloud", c.model, "--engine", "ray", "--replicas", "0"],
        None,
        ["--replicas", ">= 1", "0"],
    ),
    (
        "serve-cloud-deadline-nan",
        "serve",
        lambda c: ["cloud", c.model, "--deadline-s", "nan"],
        None,
        ["--deadline-s", "'nan'"],
    ),
    (
        "serve-cloud-missing-model",
        "serve",
        lambda c: ["cloud", c.tmp / "nope", "--port", "0"],
        None,
        ["No manifest", "nope"],
    ),
    (
        "serve-gateway-threshold-nan",
        "serve",
        lambda c: ["gateway", c.model, "--cloud", "http://127.0.0.1:9", "--threshold", "nan"],
        None,
        ["--threshold", "[0, 1]", "'nan'"],
    ),
    (
        "serve-gateway-gather-zero",
        "serve",
        lambda c: ["gateway", c.model, "--cloud", "http://127.0.0.1:9", "--gather-s", "0"],
        None,
        ["--gather-s", "> 0"],
    ),
    (
        "serve-gateway-unknown-flag",
        "serve",
        lambda c: ["gateway", c.model, "--cloud", "http://127.0.0.1:9", "--bogus"],
        None,
        ["Unknown flag --bogus", "--cloud-timeout-s"],
    ),
    (
        "serve-demo-port-negative",
        "serve",
        lambda c: ["demo", c.model, "--port", "-1"],
        None,
        ["--port", ">= 0", "-1"],
    ),
    (
        "device-index-float",
        "device",
        lambda c: [c.model, "--index", "1.5", "--gateway", "http://127.0.0.1:9", "--data", "x"],
        None,
        ["--index", "an integer", "1.5"],
    ),
    (
        "device-index-negative",
        "device",
        lambda c: [c.model, "--index", "-1", "--gateway", "http://127.0.0.1:9", "--data", "x"],
        None,
        ["--index", ">= 0", "-1"],
    ),
    (
        "deploy-transport-unknown",
        "deploy",
        lambda c: [c.model, "--transport", "pigeon", "--data", "synthetic"],
        None,
        ["--transport", "http or mqtt", "pigeon"],
    ),
    ("deploy-sites-zero", "deploy", lambda c: [c.model, "--sites", "0"], None, ["--sites", ">= 1"]),
    (
        "deploy-restart-gateway-negative",
        "deploy",
        lambda c: [c.model, "--restart-gateway-at", "-5"],
        None,
        ["--restart-gateway-at", ">= 0", "-5"],
    ),
    (
        "serve-gateway-broker-not-mqtt",
        "serve",
        lambda c: [
            "gateway",
            c.model,
            "--cloud",
            "http://127.0.0.1:9",
            "--transport",
            "mqtt",
            "--broker",
            "http://127.0.0.1:1883",
        ],
        None,
        ["--broker", "expected mqtt://HOST:PORT", "http://127.0.0.1:1883"],
    ),
    (
        "serve-gateway-window-too-small",
        "serve",
        lambda c: ["gateway", c.model, "--cloud", "http://127.0.0.1:9", "--window", "10"],
        None,
        ["--window", "at least two rounds", "10"],
    ),
    (
        "device-mqtt-without-broker",
        "device",
        lambda c: [c.model, "--index", "0", "--data", "x", "--transport", "mqtt"],
        None,
        ["--broker", "transport mqtt needs the broker's URL"],
    ),
    (
        "device-index-no-tier",
        "device",
        lambda c: [c.model, "--index", "6", "--gateway", "http://127.0.0.1:9", "--data", "x"],
        None,
        ["--index 6", "no tier device_6"],
    ),
    (
        "device-batch-zero",
        "device",
        lambda c: [
            c.model,
            "--index",
            "0",
            "--gateway",
            "http://127.0.0.1:9",
            "--data",
            "x",
            "--batch",
            "0",
        ],
        None,
        ["--batch", ">= 1", "0"],
    ),
    (
        "device-missing-model",
        "device",
        lambda c: [
            c.tmp / "nope",
            "--index",
            "0",
            "--gateway",
            "http://127.0.0.1:9",
            "--data",
            "x",
        ],
        None,
        ["No manifest", "nope"],
    ),
    (
        "device-unknown-flag",
        "device",
        lambda c: [c.model, "--index", "0", "--gateway", "http://x", "--data", "x", "--bogus"],
        None,
        ["Unknown flag --bogus", "--gateway"],
    ),
    (
        "device-mcu-unknown-board",
        "device",
        lambda c: [
            c.model,
            "--index",
            "0",
            "--gateway",
            "http://127.0.0.1:9",
            "--data",
            "x",
            "--mcu",
            "mps2-an999",
        ],
        None,
        ["--mcu", "unknown board 'mps2-an999'", "mps2-an386"],
    ),
    (
        "deploy-mcu-devices-out-of-range",
        "deploy",
        lambda c: [c.model, "--mcu-devices", "0,9", "--data", "synthetic"],
        None,
        ["--mcu-devices", "[0, 6)"],
    ),
    # ------------------------------------------------------------------ microcontroller
    (
        "mcu-unknown-board",
        "mcu",
        lambda c: [c.model, "--board", "mps2-an999", "--limit", "5"],
        None,
        ["--board", "unknown board 'mps2-an999'", "mps2-an386"],
    ),
    ("mcu-limit-zero", "mcu", lambda c: [c.model, "--limit", "0"], None, ["--limit", ">= 1"]),
    (
        "mcu-timeout-nan",
        "mcu",
        lambda c: [c.model, "--timeout-s", "nan"],
        None,
        ["--timeout-s", "'nan'"],
    ),
    (
        "mcu-unknown-flag",
        "mcu",
        lambda c: [c.model, "--bogus", "1"],
        None,
        ["Unknown flag --bogus", "--board"],
    ),
    (
        "cost-unknown-radio",
        "cost",
        lambda c: [c.model, "--mcu", "nrf52840", "--radio", "lora"],
        None,
        ["--radio", "unknown radio profile 'lora'", "lora-sf7"],
    ),
    (
        "cost-profile-fails-the-schema",
        "cost",
        lambda c: [c.model, "--mcu", "nrf52840", "--radio", c.tmp / "radio.json"],
        lambda c: (c.tmp / "radio.json").write_text(
            json.dumps(_profile("ble-1m", drop="supply_v"))
        ),
        ["radio.json", "figures.supply_v", "source"],
    ),
    (
        "cost-mcu-profile-given-as-radio",
        "cost",
        lambda c: [c.model, "--mcu", "nrf52840", "--radio", "stm32l4"],
        None,
        ["--radio", "stm32l4.json is a profile of kind 'mcu'; expected kind 'radio'"],
    ),
    (
        "cost-no-c-target",
        "cost",
        lambda c: [c.model, "--mcu", "nrf52840", "--radio", "ble-1m"],
        lambda c: c.manifest(lambda m: [t.pop("c", None) for t in m["tiers"].values()]),
        ["has no C target", "add_mcu_targets.py", "--count-instructions"],
    ),
    (
        "cost-negative-rate",
        "cost",
        lambda c: [c.model, "--mcu", "nrf52840", "--radio", "ble-1m", "--rate", "-1"],
        None,
        ["--rate", "> 0", "-1"],
    ),
    (
        "cost-zero-capacity",
        "cost",
        lambda c: [c.model, "--mcu", "nrf52840", "--radio", "ble-1m", "--battery-mah", "0"],
        None,
        ["--battery-mah", "> 0"],
    ),
    (
        "cost-unknown-mode",
        "cost",
        lambda c: [c.model, "--mcu", "nrf52840", "--radio", "ble-1m", "--mode", "lazy"],
        None,
        ["--mode", "paper, eager"],
    ),
    (
        "cost-without-radio",
        "cost",
        lambda c: [c.model, "--mcu", "nrf52840"],
        None,
        ["--radio", "ble-1m"],
    ),
    (
        "run-unknown-mcu",
        "run",
        lambda c: [c.model, "--mcu", "esp32", "--radio", "ble-1m", "--limit", "5"],
        None,
        ["--mcu", "unknown mcu profile 'esp32'"],
    ),
    (
        "mcu-count-without-c-target",
        "mcu",
        lambda c: [c.model, "--count-instructions", "--samples", "1"],
        lambda c: c.manifest(lambda m: [t.pop("c", None) for t in m["tiers"].values()]),
        ["has no C target", "add_mcu_targets.py"],
    ),
    (
        "mcu-missing-model",
        "mcu",
        lambda c: [c.tmp / "nope", "--board", "host"],
        None,
        ["No manifest", "nope"],
    ),
    (
        "mcu-c-source-changed",
        "mcu",
        lambda c: [c.model, "--board", "host", "--limit", "5"],
        lambda c: (c.model / "device_2.c").write_text("int x;\n"),
        ["device_2", "c.source"],
    ),
    (
        "bench-truncated-lce",
        "bench",
        lambda c: ["tiers", c.model, "--repeats", "1", "--warmup", "0"],
        lambda c: c.binary("cloud", "lce", c.read("cloud", "lce")[:6000]),
        ["Tier cloud", "cloud.lce.tflite", "corrupt"],
    ),
]


def _profile(name: str, drop: str) -> dict:
    """A shipped radio profile's JSON document without the source of figure ``drop``."""
    from ddnn_tf.core.cost.profiles import load_profile

    document = json.loads(Path(load_profile(name, "radio").origin).read_text())
    del document["figures"][drop]["source"]
    return document


def c_file_name() -> str:
    return "plain.txt"


@pytest.fixture
def ctx(tmp_path, tiny_run):
    model = shutil.copytree(MODEL, tmp_path / "model")
    run = shutil.copytree(tiny_run.path, tmp_path / "run")
    file = tmp_path / c_file_name()
    file.write_text("not a directory\n")
    return Ctx(tmp=tmp_path, model=model, run=run, file=file)


def test_the_table_covers_every_category():
    ids = [case[0] for case in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 60


@pytest.mark.parametrize(
    "command, argv, setup, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_malformed_input_gets_one_clean_line(
    ctx, monkeypatch, capsys, command, argv, setup, expected
):
    monkeypatch.chdir(ctx.tmp)  # default outputs (tflite_models/NAME, results/...) land here
    if setup is not None:
        setup(ctx)
    args = argv(ctx)
    before = _snapshot(ctx.tmp)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning line would be a second line
        status, out, err = call(monkeypatch, capsys, command, *args)
    assert status == 2, (status, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for text in expected:
        assert text in lines[0], (text, lines[0])
    assert _snapshot(ctx.tmp) == before  # nothing left behind, nothing touched


def test_training_stops_at_the_first_non_finite_loss(tmp_path):
    from ddnn_tf.data import load_dataset
    from ddnn_tf.keras.presets import TrainConfig, topology_for
    from ddnn_tf.keras.train import train

    data = load_dataset("synthetic", n_samples=120, num_devices=1, seed=0)
    topology = topology_for(data, cloud_conv_layers=1)  # small: the first batch decides
    config = TrainConfig(epochs=2, batch_size=32, exit_weights={"local": 1e39})  # inf in float32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's float32 overflow notice
        with pytest.raises(ValueError, match=r"Training diverged: the loss is inf at epoch 1"):
            train(data, topology, config, out=tmp_path / "r", verbose=0)
    assert list(tmp_path.iterdir()) == []


def test_library_errors_use_argument_names(tiny_dataset):
    from ddnn_tf import Topology
    from ddnn_tf.core.checks import failed_mask
    from ddnn_tf.core.exits import resolve_thresholds
    from ddnn_tf.keras.presets import TrainConfig

    img = (10, 14, 1)
    for bad, match in (
        (dict(num_classes=2.5), "num_classes must be an integer"),
        (dict(num_classes="10"), "num_classes must be an integer"),
        (dict(num_classes=True), "num_classes must be an integer"),
        (dict(edges=[[0.0]], exits=("local", "edge", "cloud")), r"edges\[0\]"),
        (dict(input_shapes=None), "input_shapes"),
        (dict(device_filters=True), "device_filters"),
    ):
        with pytest.raises(ValueError, match=match):
            Topology(**{"input_shapes": [img], "num_classes": 10, **bad})
    with pytest.raises(ValueError, match=r"^epochs must be an integer >= 1, got 1.5"):
        TrainConfig(epochs=1.5)
    with pytest.raises(ValueError, match=r"^learning_rate must be a finite number > 0"):
        TrainConfig(learning_rate=float("inf"))
    with pytest.raises(ValueError, match=r"^fail: expected device indices"):
        failed_mask((2, 2.7), 6)
    with pytest.raises(ValueError, match=r"^threshold: expected a number in \[0, 1\]"):
        resolve_thresholds(float("nan"), ["local"])


def test_corrupt_binaries_end_in_a_message_not_a_signal(tmp_path):
    """A truncated lce file used to crash LCE's interpreter (SIGSEGV); an LCE binary in a
    portable slot was a traceback. Both in a fresh process, as a user runs them."""
    model = shutil.copytree(MODEL, tmp_path / "model")
    c = Ctx(tmp=tmp_path, model=model, run=tmp_path, file=tmp_path)
    c.binary("device_2", "lce", c.read("device_2", "lce")[:3000])
    c.binary("cloud", "portable", c.read("cloud", "lce"))
    for target, text in (("lce", "Tier device_2"), ("portable", "Tier cloud")):
        res = run_cli(
            "ddnn_tf.run", str(model), "--target", target, "--data", "synthetic", timeout=120
        )
        assert res.returncode == 2, (res.returncode, res.stderr)  # not -11 (SIGSEGV)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], res.stderr


def test_successful_commands_print_only_their_own_lines(tiny_run, tmp_path):
    """No absl/oneDNN/cudart/cuInit line on stderr of a successful evaluate (TensorFlow)
    or run (LiteRT); DDNN_TF_LOG=debug is the way to see them."""
    evaluate = run_cli("ddnn_tf.evaluate", str(tiny_run.path), "--json", timeout=300)
    assert evaluate.returncode == 0, evaluate.stderr
    assert json.loads(evaluate.stdout)["n_samples"] > 0
    data = tmp_path / "views.npz"
    np.savez(data, **_views())
    run = run_cli("ddnn_tf.run", str(MODEL), "--data", "npz", "--path", str(data), timeout=120)
    assert run.returncode == 0, run.stderr
    assert "overall accuracy" in run.stdout
    for res in (evaluate, run):
        assert res.stderr == "", res.stderr


def test_native_log_lines_are_dropped_and_other_lines_kept(capfd, monkeypatch):
    import os

    from ddnn_tf.cli.flags import native_logs_hidden

    lines = (
        b"WARNING: All log messages before absl::InitializeLog() is called are written to "
        b"STDERR\n"
        b"I0000 00:00:1796015091.872021    6948 port.cc:153] oneDNN custom operations are on.\n"
        b"E0000 00:00:1796015117.052139    7292 cuda_platform.cc:52] failed call to cuInit\n"
        b"a real problem from a C library\n"
    )
    monkeypatch.delenv("DDNN_TF_LOG", raising=False)
    with native_logs_hidden():
        os.write(2, lines)
    assert capfd.readouterr().err == "a real problem from a C library\n"
    monkeypatch.setenv("DDNN_TF_LOG", "debug")
    with native_logs_hidden():
        os.write(2, lines)
    assert capfd.readouterr().err == lines.decode()


def test_tensorflow_import_is_quiet_and_its_python_logging_still_works():
    """Importing Keras hides the C++ start-up lines, yet the logging handlers TensorFlow
    made meanwhile still write to stderr afterwards (no 'I/O operation on closed file')."""
    import os
    import subprocess

    code = (
        "import ddnn_tf.keras.compat, tensorflow as tf; "
        "tf.get_logger().warning('still heard'); print('done')"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DDNN_TF_LOG", None)
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert res.returncode == 0 and res.stdout == "done\n", res.stderr
    assert res.stderr == "WARNING:tensorflow:still heard\n"
