"""A second real data set end to end: cancer3, real-valued sensors of three sizes.

train (the default preset: int8 sensor quantisers, the risk rule) -> calibrate (the split
is too small for the preset's half point; a bound it can certify, at conversion) ->
convert portable,c -> the C on the host board (0 mismatches) -> deploy, one device as C
on the emulated Cortex-M4 (0 lost). A short training: what is checked is exactness and
the plumbing, not the accuracy (the docs quote a full run's).
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cancer3():
    from ddnn_tf.data import load_dataset

    return load_dataset("cancer3")


def test_the_packaged_file_is_what_the_script_makes(cancer3):
    import importlib.util

    from conftest import ROOT

    spec = importlib.util.spec_from_file_location(
        "make_cancer3", ROOT / "scripts" / "make_cancer3.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    made = script.make_arrays()
    with np.load(ROOT / "ddnn_tf" / "data" / "cancer3.npz") as shipped:
        assert sorted(shipped.files) == sorted(made)
        for key, value in made.items():
            assert np.array_equal(shipped[key], value), key
    assert cancer3.input_shapes == ((9,), (6,), (15,)) and cancer3.input_scale is None
    assert cancer3.classes == ("malignant", "benign")
    assert cancer3.device_names == ("size", "texture", "shape")
    assert (len(cancer3.train), len(cancer3.val), len(cancer3.test)) == (409, 46, 114)
    assert cancer3.raw_bytes_per_device == (36, 24, 60)  # float32 features
    area = cancer3.train.x[0][:, 6]  # mean area: hundreds, unlike a fractal dimension
    assert area.min() > 100 and cancer3.train.x[2][:, 12].max() < 0.1


def test_cancer3_from_training_to_a_deployment(cancer3, tmp_path):
    from ddnn_tf.core.manifest import load_manifest
    from ddnn_tf.keras.convert import convert, parity
    from ddnn_tf.keras.rundir import load_run
    from ddnn_tf.keras.train import train_preset
    from ddnn_tf.mcu.check import check_model
    from ddnn_tf.serve.deploy import deploy

    run = train_preset(
        "cancer3", tmp_path / "run", epochs=4, config_options={"upper_epochs": 1}, verbose=0
    )
    assert run.topology.sensor_bits == 8 and run.config.calibrate == "risk:0.5"
    assert [q.channels for q in run.ddnn.sensor_quantizers()] == [9, 6, 15]
    assert load_run(run.path).ddnn.sensor_quantizers() == run.ddnn.sensor_quantizers()
    # 46 validation samples cannot certify half a point: one line says so, T falls back
    record = run.calibration
    assert record.certified is False and run.thresholds == {"local": 0.0}
    assert "46 validation samples cannot certify a drop under 4.88 points" in record.note

    out = convert(
        run, "local,cloud", out=tmp_path / "model", target="portable,c", calibrate="risk:10"
    )
    manifest = load_manifest(out)
    assert manifest["calibration"]["rule"] == "risk:10,0.1"
    assert manifest["calibration"]["n_val"] == 46 and manifest["calibration"]["certified"]
    assert manifest["training"]["calibrate"] == "risk:0.5"
    quantizers = [e["quantizer"] for e in manifest["inputs"]]
    assert [len(q["scale"]) for q in quantizers] == [9, 6, 15]
    assert {q["dtype"] for q in quantizers} == {"int8"}
    assert {e["raw_dtype"] for e in manifest["inputs"]} == {"float32"}
    report = parity(run, out, cancer3)
    assert report["ok"]
    for tier in ("device_0", "device_1", "device_2"):
        assert report["tiers"][tier]["portable"]["features"]["bits_differ"] == 0

    board = check_model(out, cancer3, board="host")
    assert board["ok"]
    for tier, row in board["devices"].items():
        assert row["samples"] == 114 and row["mismatches"] == 0, tier
        assert set(row["arithmetic"].values()) == {"integer"}, row["arithmetic"]
        entry = manifest["tiers"][tier]["c"]
        assert entry["sensor_bytes"] == cancer3.input_shapes[int(tier[-1])][0]  # one per code

    result = deploy(out, cancer3, batch=64, mcu_devices="1", timeout_s=300)
    assert result["n_samples"] == 114 and result["mcu_devices"] == [1]
    assert result["lost"] == 0 and result["duplicates"] == 0
    assert result["mismatches_vs_offline"] == 0
