import json

import numpy as np
import pytest
from conftest import run_cli

from ddnn_tf.core.cost.traffic import paper_bytes_per_device
from ddnn_tf.experiments import TABLE_II
from ddnn_tf.keras.evaluate import evaluate_run

KEYS = {
    "n_samples",
    "accuracy",
    "exit_fraction",
    "bytes_per_device",
    "raw_bytes_per_device",
    "thresholds",
    "failed_devices",
}


def test_evaluate_reports_exits_bytes_and_sweep(tiny_run, tiny_dataset):
    result = evaluate_run(tiny_run, tiny_dataset, threshold=0.8, sweep=True)
    assert KEYS <= set(result)
    assert result["n_samples"] == len(tiny_dataset.test)
    assert set(result["accuracy"]) == {"local", "cloud", "overall"}
    assert sum(result["exit_fraction"].values()) == pytest.approx(1.0)
    # bytes: the paper's formula with |C| = 3, f = 4, o = 5 * 7 (packed to whole bytes)
    local = result["exit_fraction"]["local"]
    expected = 4 * 3 + (1 - local) * 18
    assert result["bytes_per_device"] == pytest.approx(expected)
    assert paper_bytes_per_device(3, 4, 35, local) == pytest.approx(12 + (1 - local) * 17.5)
    assert result["raw_bytes_per_device"] == 140
    thresholds = [row["threshold"] for row in result["sweep"]]
    assert set(TABLE_II) <= set(thresholds)  # the paper's Table II thresholds
    fractions = [row["exit_fraction"]["local"] for row in result["sweep"]]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert "overall accuracy" in result.format()


def test_failed_devices_are_absent_not_zero_input(tiny_run, tiny_dataset):
    full = evaluate_run(tiny_run, tiny_dataset, threshold=0.0)
    failed = evaluate_run(tiny_run, tiny_dataset, threshold=0.0, fail="0,1,2,3,4")
    assert failed["failed_devices"] == [0, 1, 2, 3, 4]
    assert failed["accuracy"]["cloud"] != full["accuracy"]["cloud"]
    # Absent is not "sent a blank image": the local max runs over device 5 alone.
    from ddnn_tf.core.exits import softmax
    from ddnn_tf.keras.train import predict_exits

    xs = [x if i == 5 else np.zeros_like(x) for i, x in enumerate(tiny_dataset.test.x)]
    presence = np.array([0, 0, 0, 0, 0, 1], np.float32)
    absent = predict_exits(tiny_run.ddnn, tiny_dataset.test.x, presence=presence)
    blank = predict_exits(tiny_run.ddnn, xs)
    summary = tiny_run.ddnn.tiers["device_5"].predict(tiny_dataset.test.x[5], verbose=0)["summary"]
    np.testing.assert_allclose(absent["local"], softmax(summary), rtol=1e-5, atol=1e-6)
    assert not np.allclose(absent["local"], blank["local"])
    with pytest.raises(ValueError, match="every device"):
        evaluate_run(tiny_run, tiny_dataset, fail="0,1,2,3,4,5")
    with pytest.raises(ValueError, match="device 9 does not exist"):
        evaluate_run(tiny_run, tiny_dataset, fail="9")


def test_threshold_extremes(tiny_run, tiny_dataset):
    all_local = evaluate_run(tiny_run, tiny_dataset, threshold=1.0)
    assert all_local["exit_fraction"]["local"] == 1.0
    assert all_local["accuracy"]["overall"] == pytest.approx(all_local["accuracy"]["local"])
    assert all_local["bytes_per_device"] == pytest.approx(12)
    with pytest.raises(ValueError, match=r"threshold: expected a number in \[0, 1\]"):
        evaluate_run(tiny_run, tiny_dataset, threshold=1.5)


def test_evaluate_cli_json_and_errors(tiny_run, tmp_path):
    res = run_cli("ddnn_tf.evaluate", str(tiny_run.path), "--sweep", "--fail", "0,3", "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    data = json.loads(res.stdout)
    assert KEYS | {"sweep"} <= set(data)
    assert data["failed_devices"] == [0, 3]
    assert {"threshold", "exit_fraction", "accuracy_overall", "bytes_per_device"} <= set(
        data["sweep"][0]
    )
    assert np.isclose(sum(data["exit_fraction"].values()), 1.0)
    missing = run_cli("ddnn_tf.evaluate", str(tmp_path / "nothing"))
    assert missing.returncode != 0 and "nothing" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_data_with_other_classes_is_refused(tiny_run):
    from ddnn_tf.data import load_dataset

    other = load_dataset("synthetic", n_samples=60, num_classes=4)
    with pytest.raises(ValueError, match="4 classes, but the model was trained for 3"):
        evaluate_run(tiny_run, other)


def test_reduction_factor_is_none_when_nothing_is_sent():
    from ddnn_tf.core.evaluation import reduction

    assert reduction(140, 40) == pytest.approx(3.5)
    assert reduction(140, 0.0) is None


def test_evaluate_prices_the_run_on_hardware_profiles(tiny_run, tiny_dataset):
    """``ddnn evaluate --mcu --radio``: the exits priced with the topology's modelled
    device instructions; the sweep gains energy and latency columns."""
    hardware = {"mcu": "stm32l4", "radio": "lora-sf7", "rate_hz": 0.01}
    result = evaluate_run(tiny_run, tiny_dataset, threshold=0.8, sweep=True, hardware=hardware)
    cost = result["cost"]
    assert set(cost["energy_uj_per_sample"]) == {f"device_{i}" for i in range(6)}
    assert cost["instructions_per_sample"]["device_0"]["measured"] is None
    assert cost["instructions_per_sample"]["device_0"]["modelled"] > 1000
    assert "not measured in a Keras evaluation" in cost["sources"]["tier_ms"]
    assert cost["feasible"]  # one sample per 100 s fits LoRa's 1 % duty cycle
    energies = [r["energy_uj_per_sample"] for r in result["sweep"]]
    assert energies[0] > energies[-1]  # T = 0 sends every feature map, T = 1 none
    assert "energy uJ" in result.format() and "raw offload" in result.format()
