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


def _flipped(data: bytes, changes: dict[int, int]) -> bytes:
    """``data`` with some bytes replaced (corruptions found by fuzzing the committed files)."""
    out = bytearray(data)
    for offset, value in changes.items():
        out[offset] = value
    return bytes(out)


# Setups: what a case breaks before its command runs (paths are relative to the Ctx's tmp).
def _manifest(edit: Callable[[dict], object]) -> Callable[[Ctx], None]:
    return lambda c: c.manifest(edit)


def _run_edit(name: str, edit: Callable[[dict], object]) -> Callable[[Ctx], None]:
    return lambda c: c.run_edit(name, edit)


def _run_json(name: str, value) -> Callable[[Ctx], None]:
    return lambda c: c.run_json(name, value)


def _write(relative: str, data: str | bytes | Callable[[], str]) -> Callable[[Ctx], None]:
    def setup(c: Ctx) -> None:
        content = data() if callable(data) else data
        path = c.tmp / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)

    return setup


def _unlink(relative: str) -> Callable[[Ctx], None]:
    return lambda c: (c.tmp / relative).unlink()


def _binary(tier: str, target: str, data: bytes) -> Callable[[Ctx], None]:
    return lambda c: c.binary(tier, target, data)


def _cut(tier: str, target: str, size: int) -> Callable[[Ctx], None]:
    """The tier file truncated to its first ``size`` bytes."""
    return lambda c: c.binary(tier, target, c.read(tier, target)[:size])


def _copy(tier: str, target: str, from_: tuple[str, str]) -> Callable[[Ctx], None]:
    """The tier file replaced by another tier's (or target's) file."""
    return lambda c: c.binary(tier, target, c.read(*from_))


def _flip(tier: str, target: str, changes: dict[int, int]) -> Callable[[Ctx], None]:
    return lambda c: c.binary(tier, target, _flipped(c.read(tier, target), changes))


_NO_C_TARGETS = _manifest(lambda m: [t.pop("c", None) for t in m["tiers"].values()])


@dataclass(frozen=True)
class Case:
    """A malformed input: the command line (``{tmp}``, ``{model}``, ``{run}``, ``{file}``
    and ``{npz}`` stand for the Ctx's paths), the substrings the error line must contain,
    what to break first, and the arrays of ``{npz}`` (written before the command runs;
    default: :func:`_views`)."""

    line: str
    expected: tuple[str, ...]
    setup: Callable[[Ctx], object] | None = None
    npz: Callable[[], dict] | None = None

    def prepare(self, c: Ctx) -> list[str]:
        """Break what the case breaks; the command line's words, paths filled in."""
        if self.setup is not None:
            self.setup(c)
        if "{npz}" in self.line:
            c.npz(**(self.npz or _views)())
        paths = {"tmp": c.tmp, "model": c.model, "run": c.run, "file": c.file}
        return [word.format(npz=c.tmp / "data.npz", **paths) for word in self.line.split()]


def bad(id: str, line: str, expected: str, *, setup=None, npz=None):
    """A row of the table: ``ddnn LINE`` fails with one line holding each ``|``-separated
    part of ``expected``."""
    return pytest.param(Case(line, tuple(expected.split(" | ")), setup, npz), id=id)


# fmt: off
CASES: list = [  # id, command line, what its error line holds; what to break first
    # ------------------------------------------------------------ flags: numbers
    bad("epochs-float", "train --out {tmp}/r --epochs 1.5", "--epochs | 1.5"),
    bad("epochs-zero", "train --out {tmp}/r --epochs 0", "--epochs | >= 1"),
    bad("seed-float", "train --out {tmp}/r --seed 1.5", "--seed | 1.5"),
    bad("seed-negative", "train --out {tmp}/r --seed -1", "--seed | -1"),
    bad("lr-inf", "train --out {tmp}/r --learning-rate inf", "--learning-rate | 'inf'"),
    bad("lr-nan", "train --out {tmp}/r --learning-rate nan", "--learning-rate | 'nan'"),
    bad("lr-negative", "train --out {tmp}/r --learning-rate -0.1", "--learning-rate | > 0"),
    bad("batch-size-zero", "train --out {tmp}/r --batch-size 0", "--batch-size"),
    bad("dropout-one", "train --out {tmp}/r --device-dropout 1", "--device-dropout | < 1"),
    bad("verbose-three", "train --out {tmp}/r --verbose 3", "--verbose | <= 2"),
    bad("train-limit-zero", "train --out {tmp}/r --train-limit 0", "--train-limit"),
    bad("filters-float", "train --out {tmp}/r --device-filters 2.5", "--device-filters | 2.5"),
    bad("unknown-flag", "train --out {tmp}/r --epoch 2", "Unknown flag --epoch"),
    bad("weights-nan", "train --data synthetic --out {tmp}/r --exit-weights local=nan", "--exit-weights | local | nan"),
    bad("weights-negative", "train --data synthetic --out {tmp}/r --exit-weights local=-1", "--exit-weights | local | >= 0"),
    bad("weights-count", "train --data synthetic --out {tmp}/r --exit-weights 1", "--exit-weights | 1 weights for 2 exits"),
    bad("weights-unknown-exit", "train --data synthetic --out {tmp}/r --exit-weights fog=1", "--exit-weights | fog"),
    bad("edges-incomplete", "train --data synthetic --out {tmp}/r --edges 0,1;2", "Devices [3, 4, 5] are in no edge"),
    bad("exit-unknown", "train --data synthetic --out {tmp}/r --exits local,fog", "Unknown exit | fog"),
    bad("scheme-unknown", "train --data synthetic --out {tmp}/r --local-agg median", "local_agg='median'"),
    bad("run-fail-float", "run {model} --fail 1.5", "--fail | 1.5"),
    bad("run-fail-list-float", "run {model} --data npz --path {npz} --fail 2,2.7", "--fail | 2.7"),
    bad("run-fail-missing-device", "run {model} --data npz --path {npz} --fail 9", "--fail | device 9 does not exist"),
    bad("run-limit-zero", "run {model} --limit 0", "--limit | got 0"),
    bad("run-limit-negative", "run {model} --limit -1", "--limit | got -1"),
    bad("run-threshold-range", "run {model} --data npz --path {npz} --threshold 1.5", "--threshold | [0, 1]"),
    bad("run-threshold-nan", "run {model} --data npz --path {npz} --threshold nan", "--threshold | [0, 1]"),
    bad("run-fail-prob", "run {model} --fail-prob 2", "--fail-prob | <= 1"),
    bad("run-seed-float", "run {model} --seed 1.5", "--seed | 1.5"),
    bad("run-threads-zero", "run {model} --threads 0", "--threads | >= 1"),
    bad("run-target", "run {model} --target gpu", "--target | gpu"),
    bad("run-subset", "run {model} --subset train", "--subset | train"),
    bad("run-split-renamed", "run {model} --split val", "--split is now --subset | ddnn convert"),
    bad("bench-run-limit", "bench run {model} --limit -1", "--limit | got -1"),
    bad("bench-tiers-repeats", "bench tiers {model} --repeats 0", "--repeats | >= 1"),
    bad("bench-tiers-threads", "bench tiers {model} --threads 1.5", "--threads | 1.5"),
    bad("convert-check-limit", "convert {run} --check-only --out {model} --limit -1", "--limit | got -1"),
    bad("convert-split", "convert {run} --split local,fog --out {tmp}/m", "fog"),
    bad("experiments-name", "experiments tables --data synthetic --out {tmp}/x", "aggregation, threshold"),
    bad("experiments-threshold", "experiments faults --threshold 1.5 --out {tmp}/x", "--threshold | 1.5"),
    bad("experiments-epochs", "experiments faults --epochs 0 --out {tmp}/x", "--epochs | >= 1"),
    # ------------------------------------------------------------ output paths
    bad("train-out-file", "train --data synthetic --out {file}", "Run directory | is a file"),
    bad("train-out-file-overwrite", "train --data synthetic --out {file} --overwrite", "is a file"),
    bad("train-out-under-file", "train --data synthetic --out {file}/r", "plain.txt is a file"),
    bad("train-out-unwritable", "train --data synthetic --out /sys/ddnn-run", "/sys is not writable"),
    bad("train-out-exists", "train --data synthetic --out {run}", "already exists; pass --overwrite"),
    bad("train-out-other-dir", "train --data synthetic --out {tmp}/notes --overwrite", "no topology.json | refusing", setup=_write("notes/a.txt", "mine")),
    bad("convert-out-file-overwrite", "convert {run} --out {file} --overwrite", "Output directory | is a file"),
    bad("convert-out-under-file", "convert {run} --out {file}/m", "is a file"),
    bad("convert-out-unwritable", "convert {run} --out /sys/ddnn-model", "not writable"),
    bad("convert-out-exists", "convert {run} --out {model}", "already exists; pass --overwrite"),
    bad("convert-out-other-dir", "convert {run} --out {run} --overwrite", "no manifest.json | refusing"),
    bad("experiments-out-file", "experiments faults --data synthetic --out {file}", "is a file"),
    bad("experiments-out-under-file", "experiments faults --data synthetic --out {file}/x", "is a file"),
    # ------------------------------------------------------------ manifest.json
    bad("manifest-classes-int", "run {model}", "manifest.json: classes: expected array", setup=_manifest(_set(["classes"], 10))),
    bad("manifest-summary-str", "run {model}", "manifest.json: wire.summary: expected object", setup=_manifest(_set(["wire", "summary"], "x"))),
    bad("manifest-inputs-int", "run {model}", "tiers.cloud.inputs: expected array", setup=_manifest(_set(["tiers", "cloud", "inputs"], 3))),
    bad("manifest-dtype", "run {model}", "tiers.cloud.inputs[0].dtype: 'float33' is not one of", setup=_manifest(_set(["tiers", "cloud", "inputs", 0, "dtype"], "float33"))),
    bad("manifest-size-str", "run {model}", "tiers.cloud.files.portable.size_bytes: expected integer", setup=_manifest(_set(["tiers", "cloud", "files", "portable", "size_bytes"], "56584"))),
    bad("manifest-threshold-range", "run {model}", "thresholds.local | maximum", setup=_manifest(_set(["thresholds", "local"], 1.5))),
    bad("manifest-threshold-nan", "run {model}", "thresholds.local | finite", setup=_manifest(_set(["thresholds", "local"], float("nan")))),
    bad("manifest-version", "run {model}", "format_version | reads version 1", setup=_manifest(_set(["format_version"], 2))),
    bad("manifest-no-tiers", "run {model}", "missing key(s) ['tiers']", setup=_manifest(_pop("tiers"))),
    bad("manifest-list", "run {model}", "manifest.json: expected object", setup=_write("model/manifest.json", "[]")),
    bad("manifest-not-json", "run {model}", "manifest.json is not valid JSON", setup=_write("model/manifest.json", "{")),
    bad("manifest-nested-too-deeply", "run {model}", "manifest.json is not valid JSON | nests too deeply", setup=_write("model/manifest.json", "[" * 100_000)),
    bad("manifest-not-text", "run {model}", "manifest.json is not valid JSON | utf-8", setup=_write("model/manifest.json", b"\xff\xfe{}")),
    bad("manifest-shape-null", "run {model}", "topology.input_shapes: expected array, got null", setup=_manifest(_set(["topology", "input_shapes"], None))),
    bad("manifest-file-escape", "run {model}", "plain name", setup=_manifest(_set(["tiers", "cloud", "files", "portable", "file"], "../cloud.tflite"))),
    bad("manifest-split-order", "run {model}", "split | ending with 'cloud'", setup=_manifest(_set(["split"], ["cloud", "local"]))),
    bad("manifest-hash", "run {model}", "cloud.tflite does not match its manifest entry", setup=_write("model/cloud.tflite", b"x" * 56584)),
    bad("manifest-file-missing", "run {model}", "device_3.tflite is missing", setup=_unlink("model/device_3.tflite")),
    # ------------------------------------------------------------ run directory JSON
    bad("topology-shapes-null", "evaluate {run}", "topology.json: input_shapes: expected array, got null", setup=_run_edit("topology.json", _set(["input_shapes"], None))),
    bad("topology-classes-float", "evaluate {run}", "topology.json: num_classes: expected integer", setup=_run_edit("topology.json", _set(["num_classes"], 2.5))),
    bad("topology-classes-str", "evaluate {run}", "topology.json: num_classes: expected integer", setup=_run_edit("topology.json", _set(["num_classes"], "10"))),
    bad("topology-edge-float", "evaluate {run}", "topology.json: edges[0][0]", setup=_run_edit("topology.json", _set(["edges"], [[0.5]]))),
    bad("topology-unknown-key", "evaluate {run}", "topology.json | unknown key(s) ['fog']", setup=_run_edit("topology.json", _set(["fog"], 1))),
    bad("topology-not-json", "evaluate {run}", "topology.json is not valid JSON", setup=_write("run/topology.json", "{'a'")),
    bad("run-file-nested-too-deeply", "evaluate {run}", "history.json is not valid JSON | nests too deeply", setup=_write("run/history.json", '{"a": ' * 100_000)),
    bad("dataset-no-spec", "evaluate {run}", "dataset.json: missing key(s) ['spec']", setup=_run_edit("dataset.json", _pop("spec"))),
    bad("dataset-spec-str", "evaluate {run}", "dataset.json: spec: expected object", setup=_run_edit("dataset.json", _set(["spec"], "synthetic"))),
    bad("config-unknown-key", "evaluate {run}", "train_config.json | unknown key(s) ['warmup_steps'] | newer version", setup=_run_edit("train_config.json", _set(["warmup_steps"], 10))),
    bad("config-epochs-float", "evaluate {run}", "train_config.json: epochs: expected integer", setup=_run_edit("train_config.json", _set(["epochs"], 1.5))),
    bad("config-lr-nan", "evaluate {run}", "train_config.json: learning_rate | finite", setup=_run_edit("train_config.json", _set(["learning_rate"], float("nan")))),
    bad("thresholds-list", "evaluate {run}", "thresholds.json: expected object, got an array", setup=_run_json("thresholds.json", [0.5])),
    bad("thresholds-range", "evaluate {run}", "thresholds.json: local | maximum of 1", setup=_run_json("thresholds.json", {"local": 1.5})),
    bad("thresholds-exit", "evaluate {run}", "thresholds.json | 'cloud'", setup=_run_json("thresholds.json", {"cloud": 0.5})),
    bad("history-list", "evaluate {run}", "history.json: expected object", setup=_run_json("history.json", [1, 2])),
    bad("individual-str", "evaluate {run}", "individual.json: accuracy: expected array", setup=_run_json("individual.json", {"accuracy": "high"})),
    bad("weights-missing", "evaluate {run}", "weights.h5 is missing", setup=_unlink("run/weights.h5")),
    bad("weights-garbage", "evaluate {run}", "Cannot read weights | weights.h5", setup=_write("run/weights.h5", b"\x00" * 64)),
    # ------------------------------------------------------------ tensors (data files)
    bad("npz-shape", "run {model} --data npz --path {npz}", "device 0 input has shape | expected (N, 10, 14, 1)", npz=lambda: _views(shape=(8, 8, 1))),
    bad("npz-nan", "run {model} --data npz --path {npz}", "'x2' | data.npz | NaN", npz=_nan_views),
    bad("npz-devices", "run {model} --data npz --path {npz}", "5 devices, the model 6", npz=lambda: _views(k=5)),
    bad("npz-labels-float", "run {model} --data npz --path {npz}", "'y' | integer labels", npz=lambda: _views(y=np.full(20, 0.5))),
    bad("npz-not-npz", "run {model} --data npz --path {file}", "Cannot read | npz"),
    bad("mvmc-object-arrays", "run {model} --data mvmc --path {npz}", "Cannot read key 'X' | data.npz | Object arrays", npz=lambda: dict(X=np.array([None, 1]), y=np.ones(2))),
    bad("npz-object-array", "run {model} --data npz --path {npz}", "Cannot read key 'x1' | data.npz", npz=lambda: _views(x1=np.array([None] * 20))),
    bad("npz-missing", "run {model} --data npz --path {tmp}/none.npz", "none.npz does not exist"),
    # ------------------------------------------------------------ tier binaries
    bad("binary-truncated-lce", "run {model} --target lce --data synthetic", "Tier cloud | cloud.lce.tflite | corrupt TFLite file", setup=_cut("cloud", "lce", 6000)),
    bad("binary-truncated-portable", "run {model} --data synthetic", "Tier device_0 | device_0.tflite | corrupt TFLite file", setup=_cut("device_0", "portable", 4000)),
    bad("binary-garbage", "run {model} --data synthetic", "Tier local_aggregator | not a TFLite flatbuffer", setup=_binary("local_aggregator", "portable", bytes(range(256)) * 20)),
    bad("binary-empty", "run {model} --target lce --data synthetic", "Tier device_4 | not a TFLite flatbuffer", setup=_binary("device_4", "lce", b"")),
    bad("binary-lce-in-portable", "run {model} --data synthetic", "Tier device_1 | cannot resolve custom operator(s) | LceBconv2d", setup=_copy("device_1", "portable", from_=("device_1", "lce"))),
    bad("binary-wrong-tier", "run {model} --data synthetic", "Tier cloud | cloud.tflite", setup=_copy("cloud", "portable", from_=("device_0", "portable"))),
    # the tier graph check reads the manifest before any binary is opened
    bad("binary-shape-promise", "run {model} --data synthetic", "tiers.local_aggregator | 'logits' | (10,) | (11,)", setup=_manifest(_set(["tiers", "local_aggregator", "outputs", 0, "shape"], [1, 11]))),
    bad("binary-order-promise", "run {model} --target lce --data synthetic", "Tier local_aggregator | input_order", setup=_manifest(lambda m: m["tiers"]["local_aggregator"]["files"]["lce"]["input_order"].reverse())),
    # a metadata offset bent out of the file
    bad("binary-metadata-offset", "run {model} --data synthetic", "Tier local_aggregator | local_aggregator.tflite | corrupt TFLite file | metadata[1]", setup=_flip("local_aggregator", "portable", {368: 95})),
    # well-formed enough for the reader, refused by LCE's interpreter
    bad("binary-lce-refuses", "run {model} --target lce --data synthetic", "Tier device_0 | device_0.lce.tflite | interpreter refused the file", setup=_flip("device_0", "lce", {708: 191, 1417: 212, 4165: 224, 4495: 187})),
    # ------------------------------------------------------------ services, devices, deploy
    bad("deploy-limit-float", "deploy {model} --limit 1.5", "--limit | 1.5"),
    bad("deploy-kill-at-negative", "deploy {model} --kill-device 0 --kill-at -1", "--kill-at | >= 0 | -1"),
    bad("deploy-kill-device-out-of-range", "deploy {model} --kill-device 6 --kill-at 10 --data synthetic", "--kill-device | [0, 6) | 6"),
    bad("deploy-replicas-zero", "deploy {model} --replicas 0", "--replicas"),
    bad("deploy-threshold-nan", "deploy {model} --threshold nan --data synthetic", "--threshold | [0, 1] | 'nan'"),
    bad("deploy-timeout-inf", "deploy {model} --timeout-s inf", "--timeout-s | 'inf'"),
    bad("deploy-unknown-flag", "deploy {model} --bogus 1", "--bogus"),
    bad("deploy-missing-model", "deploy {tmp}/nope", "No manifest | nope"),
    bad("deploy-missing-config", "deploy --config {tmp}/site.toml", "--config: no configuration file at | site.toml"),
    bad("serve-gateway-missing-config", "serve gateway {model} --config {tmp}/site.toml", "--config: no configuration file at | site.toml"),
    bad("serve-cloud-port-range", "serve cloud {model} --port 70000", "--port | <= 65535 | 70000"),
    bad("serve-cloud-replicas-zero", "serve cloud {model} --engine ray --replicas 0", "--replicas | >= 1 | 0"),
    bad("serve-cloud-deadline-nan", "serve cloud {model} --deadline-s nan", "--deadline-s | 'nan'"),
    bad("serve-cloud-missing-model", "serve cloud {tmp}/nope --port 0", "No manifest | nope"),
    bad("serve-gateway-threshold-nan", "serve gateway {model} --cloud http://127.0.0.1:9 --threshold nan", "--threshold | [0, 1] | 'nan'"),
    bad("serve-gateway-gather-zero", "serve gateway {model} --cloud http://127.0.0.1:9 --gather-s 0", "--gather-s | > 0"),
    bad("serve-gateway-unknown-flag", "serve gateway {model} --cloud http://127.0.0.1:9 --bogus", "Unknown flag --bogus | --cloud-timeout-s"),
    bad("serve-demo-port-negative", "serve demo {model} --port -1", "--port | >= 0 | -1"),
    bad("device-index-float", "device {model} --index 1.5 --gateway http://127.0.0.1:9 --data x", "--index | an integer | 1.5"),
    bad("device-index-negative", "device {model} --index -1 --gateway http://127.0.0.1:9 --data x", "--index | >= 0 | -1"),
    bad("deploy-transport-unknown", "deploy {model} --transport pigeon --data synthetic", "--transport | http or mqtt | pigeon"),
    bad("deploy-sites-zero", "deploy {model} --sites 0", "--sites | >= 1"),
    bad("deploy-restart-gateway-negative", "deploy {model} --restart-gateway-at -5", "--restart-gateway-at | >= 0 | -5"),
    bad("serve-gateway-broker-not-mqtt", "serve gateway {model} --cloud http://127.0.0.1:9 --transport mqtt --broker http://127.0.0.1:1883", "--broker | expected mqtt://HOST:PORT | http://127.0.0.1:1883"),
    bad("serve-gateway-window-too-small", "serve gateway {model} --cloud http://127.0.0.1:9 --window 10", "--window | at least two rounds | 10"),
    bad("device-mqtt-without-broker", "device {model} --index 0 --data x --transport mqtt", "--broker | transport mqtt needs the broker's URL"),
    bad("device-index-no-tier", "device {model} --index 6 --gateway http://127.0.0.1:9 --data x", "--index 6 | no tier device_6"),
    bad("device-batch-zero", "device {model} --index 0 --gateway http://127.0.0.1:9 --data x --batch 0", "--batch | >= 1 | 0"),
    bad("device-missing-model", "device {tmp}/nope --index 0 --gateway http://127.0.0.1:9 --data x", "No manifest | nope"),
    bad("device-unknown-flag", "device {model} --index 0 --gateway http://x --data x --bogus", "Unknown flag --bogus | --gateway"),
    bad("device-mcu-unknown-board", "device {model} --index 0 --gateway http://127.0.0.1:9 --data x --mcu mps2-an999", "--mcu | unknown board 'mps2-an999' | mps2-an386"),
    bad("deploy-mcu-devices-out-of-range", "deploy {model} --mcu-devices 0,9 --data synthetic", "--mcu-devices | [0, 6)"),
    # ------------------------------------------------------------ microcontroller
    bad("mcu-unknown-board", "mcu {model} --board mps2-an999 --limit 5", "--board | unknown board 'mps2-an999' | mps2-an386"),
    bad("mcu-limit-zero", "mcu {model} --limit 0", "--limit | >= 1"),
    bad("mcu-timeout-nan", "mcu {model} --timeout-s nan", "--timeout-s | 'nan'"),
    bad("mcu-unknown-flag", "mcu {model} --bogus 1", "Unknown flag --bogus | --board"),
    bad("cost-unknown-radio", "cost {model} --mcu nrf52840 --radio lora", "--radio | unknown radio profile 'lora' | lora-sf7"),
    bad("cost-profile-fails-the-schema", "cost {model} --mcu nrf52840 --radio {tmp}/radio.json", "radio.json | figures.supply_v | source", setup=_write("radio.json", lambda: json.dumps(_profile("ble-1m", drop="supply_v")))),
    bad("cost-mcu-profile-given-as-radio", "cost {model} --mcu nrf52840 --radio stm32l4", "--radio | stm32l4.json is a profile of kind 'mcu'; expected kind 'radio'"),
    bad("cost-no-c-target", "cost {model} --mcu nrf52840 --radio ble-1m", "has no C target | add_mcu_targets.py | --count-instructions", setup=_NO_C_TARGETS),
    bad("cost-negative-rate", "cost {model} --mcu nrf52840 --radio ble-1m --rate -1", "--rate | > 0 | -1"),
    bad("cost-zero-capacity", "cost {model} --mcu nrf52840 --radio ble-1m --battery-mah 0", "--battery-mah | > 0"),
    bad("cost-unknown-mode", "cost {model} --mcu nrf52840 --radio ble-1m --mode lazy", "--mode | paper, eager"),
    bad("cost-without-radio", "cost {model} --mcu nrf52840", "--radio | ble-1m"),
    bad("run-unknown-mcu", "run {model} --mcu esp32 --radio ble-1m --limit 5", "--mcu | unknown mcu profile 'esp32'"),
    bad("mcu-count-without-c-target", "mcu {model} --count-instructions --samples 1", "has no C target | add_mcu_targets.py", setup=_NO_C_TARGETS),
    bad("mcu-missing-model", "mcu {tmp}/nope --board host", "No manifest | nope"),
    bad("mcu-c-source-changed", "mcu {model} --board host --limit 5", "device_2 | c.source", setup=_write("model/device_2.c", "int x;\n")),
    bad("bench-truncated-lce", "bench tiers {model} --repeats 1 --warmup 0", "Tier cloud | cloud.lce.tflite | corrupt", setup=_cut("cloud", "lce", 6000)),
]
# fmt: on


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
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 60
    assert all(case.values[0].expected for case in CASES)  # every error line is checked


@pytest.mark.parametrize("case", CASES)
def test_malformed_input_gets_one_clean_line(ctx, monkeypatch, capsys, case):
    monkeypatch.chdir(ctx.tmp)  # default outputs (tflite_models/NAME, results/...) land here
    command, *args = case.prepare(ctx)
    before = _snapshot(ctx.tmp)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning line would be a second line
        status, out, err = call(monkeypatch, capsys, command, *args)
    assert status == 2, (status, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for text in case.expected:
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
