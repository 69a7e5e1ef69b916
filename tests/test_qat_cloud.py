"""scripts/qat_cloud.py: a tfmot quantisation-aware int8 cloud, converted and run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def qat_script():
    spec = importlib.util.spec_from_file_location("qat_cloud", ROOT / "scripts" / "qat_cloud.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dense_run(tiny_dataset, tmp_path_factory):
    """A default-preset run (dense float cloud of 16 units), 1 epoch on synthetic data."""
    from ddnn_tf.keras.presets import preset_config, preset_topology
    from ddnn_tf.keras.train import train

    topology = preset_topology(tiny_dataset, "default", cloud_units=16)
    out = tmp_path_factory.mktemp("runs") / "dense"
    return train(
        tiny_dataset,
        topology,
        preset_config("default", epochs=1, batch_size=32),
        out=out,
        verbose=0,
    )


def test_qat_cloud_wraps_only_the_dense_layers(qat_script, dense_run):
    from ddnn_tf.keras.rundir import load_run

    cloud = load_run(dense_run.path).ddnn.tiers["cloud"]
    qat = qat_script.qat_cloud(cloud)
    assert qat.input_names == cloud.input_names
    head = qat.get_layer("cloud_head")
    wrapped = [layer.layer.name for layer in head.layers if hasattr(layer, "quantize_config")]
    assert type(head.layers[1]).__name__ == "QuantizeLayer"  # the input is quantised too
    assert wrapped == ["cloud_fc1", "cloud_fc2", "cloud_exit_dense"]
    # Starts from the trained weights.
    trained = cloud.get_layer("cloud_fc1").kernel.numpy()
    wrapper = head.get_layer("quant_cloud_fc1")
    kernel = next(w for w in wrapper.weights if w.name.endswith("kernel:0"))
    assert (kernel.numpy() == trained).all()


def test_qat_int8_cloud_runs_with_few_decision_changes(
    qat_script, dense_run, tiny_dataset, tmp_path
):
    out = tmp_path / "qat"
    argv = [str(dense_run.path), "--mode", "qat", "--epochs", "1", "--out", str(out)]
    assert qat_script.main(argv) == 0
    result = json.loads((out / "qat_cloud.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    cloud = manifest["tiers"]["cloud"]
    assert manifest["quantize"] == "int8" and cloud["quantized"]
    assert not manifest["tiers"]["device_0"]["quantized"]
    assert cloud["files"]["portable"]["ops"].get("QUANTIZE", 0) >= 1
    size = (out / "cloud.tflite").stat().st_size
    assert result["cloud_tflite_bytes"] == size
    # int8 weights: well under the float32 parameters' bytes.
    assert size < cloud["memory"]["float_param_bytes"] / 2
    n = result["n"]
    assert n == len(tiny_dataset.test.y)  # the whole test split
    assert result["exit_mismatches"] == 0  # the local exit is untouched
    assert result["cloud_argmax_mismatches"] <= max(1, n // 50)
    assert abs(result["runtime"]["cloud"] - result["keras"]["cloud"]) <= 2 / n + 1e-9


def test_qat_cloud_rejects_a_binary_cloud_and_zero_epochs(
    qat_script, tiny_run, dense_run, tmp_path, capsys
):
    out = tmp_path / "x"
    assert qat_script.main([str(tiny_run.path), "--out", str(out)]) == 2
    assert "cloud_precision" in capsys.readouterr().err
    assert qat_script.main([str(dense_run.path), "--epochs", "0", "--out", str(out)]) == 2
    assert "--epochs >= 1" in capsys.readouterr().err
    assert not out.exists()
