"""``ddnn run`` (``python -m ddnn_tf.run``): the runtime CLI, its JSON keys and its errors."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys

import numpy as np
import pytest
from conftest import run_cli
from test_runtime import converted

from ddnn_tf.cli import main as ddnn

EVALUATE_KEYS = {
    "n_samples",
    "accuracy",
    "exit_fraction",
    "bytes_per_device",
    "raw_bytes_per_device",
    "communication_reduction",
    "thresholds",
    "failed_devices",
    "summary_encoding",
    "split",
    "exits",
}


@pytest.fixture(scope="module")
def model_dir(tiny_run, tiny_dataset, tmp_path_factory):
    return converted(tiny_run, tiny_dataset, tmp_path_factory)


def call(monkeypatch, capsys, *args: str, command: tuple[str, ...] = ("run",)):
    """``ddnn run ARGS`` in this process; (status, out, err)."""
    monkeypatch.setattr(sys, "argv", ["ddnn", *command, *map(str, args)])
    status = 0
    try:
        ddnn([*command, *map(str, args)])
    except SystemExit as exit_:
        status = exit_.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_cli_json_matches_keras_evaluation(model_dir, tiny_run):
    """A real subprocess; same keys and figures as ddnn_tf.evaluate on the Keras run."""
    from ddnn_tf.data import load_dataset
    from ddnn_tf.keras.evaluate import evaluate_run

    proc = run_cli(
        "ddnn_tf.run", str(model_dir), "--data", "synthetic", "--threshold", "0.8",
        "--limit", "40", "--json", timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    data = load_dataset("synthetic")
    data = dataclasses.replace(data, test=data.test.subset(slice(0, 40)))
    reference = evaluate_run(tiny_run, data, threshold=0.8)
    assert EVALUATE_KEYS <= set(reference) and EVALUATE_KEYS <= set(result)
    assert result["n_samples"] == 40 and result["thresholds"] == {"local": 0.8}
    tolerance = 1.5 / 40  # at most one sample off (conversion parity)
    for key in ("accuracy", "exit_fraction"):
        assert set(result[key]) == set(reference[key])
        for name, value in reference[key].items():
            assert result[key][name] == pytest.approx(value, abs=tolerance), (key, name)
    assert result["bytes_per_device"] == pytest.approx(
        reference["bytes_per_device"], abs=18 * tolerance
    )
    assert result["raw_bytes_per_device"] == reference["raw_bytes_per_device"] == 140
    assert result["staged_matches_all_exits"] is True
    assert set(result["latency_ms"]) == {
        *(f"device_{i}" for i in range(6)),
        "local_aggregator",
        "cloud",
    }
    assert result["latency_ms"]["device_0"]["samples"] == 40
    assert result["latency_ms"]["cloud"]["samples"] == round(40 * result["exit_fraction"]["cloud"])
    assert result["samples_per_s"] > 0


def test_cli_sweep_failures_and_targets(model_dir, monkeypatch, capsys, tiny_dataset):
    common = ["--data", "synthetic", "--limit", "60", "--fail", "5", "--fail-prob", "0.5"]
    common += ["--seed", "4", "--threshold", "0.5", "--sweep", "--json"]
    status, out, err = call(
        monkeypatch, capsys, model_dir, *common, "--target", "lce", "--batch-size", "1"
    )
    assert status == 0, err
    lce = json.loads(out)
    status, out, err = call(monkeypatch, capsys, model_dir, *common, "--batch-size", "64")
    assert status == 0, err
    portable = json.loads(out)
    assert lce["target"] == "lce" and portable["target"] == "portable"
    assert portable["failed_devices"] == [5] and portable["fail_prob"] == 0.5
    assert portable["unclassified"] > 0  # 0.5**5: some samples lose all their devices
    assert portable["exit_fraction"]["unclassified"] == portable["unclassified"] / 60
    assert sum(portable["exit_fraction"].values()) == pytest.approx(1.0)
    for key in ("exit_fraction", "accuracy", "bytes_per_device", "unclassified"):
        assert lce[key] == pytest.approx(portable[key]), key
    rows = portable["sweep"]
    assert {0.5, 0.8, 1.0} <= {r["threshold"] for r in rows}
    at = next(r for r in rows if r["threshold"] == 0.5)
    assert at["exit_fraction"] == pytest.approx(portable["exit_fraction"])
    assert at["accuracy_overall"] == pytest.approx(portable["accuracy"]["overall"])


def test_cli_table_and_manifest_dataset(model_dir, tmp_path, monkeypatch, capsys):
    status, out, err = call(monkeypatch, capsys, model_dir, "--data", "synthetic", "--limit", "20")
    assert status == 0, err
    for text in (
        "overall accuracy",
        "ms/sample",
        "samples/s",
        "local_aggregator",
        "bytes per device",
    ):
        assert text in out
    # --data defaults to the dataset the manifest records
    copy = shutil.copytree(model_dir, tmp_path / "model")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["dataset"] = {"name": "synthetic", "n_samples": 400, "seed": 0}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    status, out, err = call(monkeypatch, capsys, copy, "--json", "--exit-accuracy=False")
    assert status == 0, err
    result = json.loads(out)
    assert result["n_samples"] == 80 and set(result["accuracy"]) == {"overall"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "synthetic", "--threshold", "2"], "--threshold"),
        (["--data", "synthetic", "--fail", "9"], "device 9 does not exist"),
        (["--data", "synthetic", "--fail", "0,1,2,3,4,5"], "every device"),
        (["--data", "synthetic", "--fail-prob", "-1"], "--fail-prob"),
        (["--data", "synthetic", "--target", "gpu"], "--target"),
        (["--data", "synthetic", "--batch-size", "0"], "--batch-size"),
        (["--data", "synthetic", "--limit", "0"], "--limit"),
        (["--data", "nope"], "nope"),
    ],
)
def test_cli_errors_are_one_line(model_dir, monkeypatch, capsys, args, message):
    status, out, err = call(monkeypatch, capsys, model_dir, *args)
    assert status == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


def test_cli_needs_data_when_the_manifest_records_none(model_dir, tmp_path, monkeypatch, capsys):
    copy = shutil.copytree(model_dir, tmp_path / "model")
    manifest = json.loads((copy / "manifest.json").read_text())
    assert manifest["dataset"]["name"] == "synthetic"  # convert records the run's dataset
    del manifest["dataset"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    status, _, err = call(monkeypatch, capsys, copy)
    assert status == 2 and "records no dataset; give --data" in err


def test_cli_bad_model_directory(model_dir, tmp_path, monkeypatch, capsys):
    status, _, err = call(monkeypatch, capsys, tmp_path / "missing", "--data", "synthetic")
    assert status == 2 and "No manifest" in err
    copy = shutil.copytree(model_dir, tmp_path / "model")
    (copy / "device_0.tflite").write_bytes(b"not a model")
    status, _, err = call(monkeypatch, capsys, copy, "--data", "synthetic")
    assert status == 2 and "device_0.tflite" in err and "sha256" in err


def test_bench_run_reports_identical_modes(model_dir):
    from ddnn_tf.runtime.bench import bench_run

    result = bench_run(str(model_dir), data="synthetic", limit=30, batch_size=8)
    modes = {(r["target"], r["mode"]) for r in result["rows"]}
    assert modes == {(t, m) for t in ("portable", "lce") for m in ("batched", "one-by-one")}
    assert all(r["identical_to_one_by_one"] and r["samples_per_s"] > 0 for r in result["rows"])
    assert len({r["accuracy"] for r in result["rows"]}) == 1
    assert np.isfinite([r["bytes_per_device"] for r in result["rows"]]).all()


def test_bench_run_compares_with_keras_predict(model_dir, tiny_run, capsys, monkeypatch):
    args = [model_dir, "--data", "synthetic", "--limit", "30", "--batch-size", "8"]
    args += ["--targets", "portable", "--run", tiny_run.path]
    status, out, err = call(monkeypatch, capsys, *args, "--json", command=("bench", "run"))
    assert status == 0, err
    result = json.loads(out)
    assert result["keras_samples_per_s"] > 0
    first = result["rows"][0]
    assert (first["target"], first["mode"]) == ("portable", "batched")
    assert result["speedup_vs_keras"] == pytest.approx(
        first["samples_per_s"] / result["keras_samples_per_s"]
    )
    status, out, err = call(monkeypatch, capsys, *args, command=("bench", "run"))
    assert status == 0 and "portable batched / keras predict:" in out, err
