"""The default preset beyond the paper: 4-bit summaries, a learned local aggregator, a float
cloud, the upper-tier phase, the within-D and byte-budget calibrations, and its exactness
through conversion and the runtime; the best preset."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import DEFAULT_MODEL

from ddnn_tf.core.topology import Topology

SIX = [(10, 14, 1)] * 6


def _default_topology(**changes) -> Topology:
    options = dict(
        input_shapes=SIX,
        num_classes=10,
        summary_bits=4,
        cloud_precision="float",
        device_grid=(3, 2),
        cloud_filters=8,
        cloud_units=16,
        device_dropout=0.15,
    )
    options.update(changes)
    return Topology(**options)


# ---------------------------------------------------------------------- topology fields
def test_new_topology_fields_round_trip_and_describe_the_wire():
    t = _default_topology()
    again = Topology.from_json(t.to_json())
    assert again == t and again.device_grid == (3, 2)
    assert json.loads(t.to_json())["device_grid"] == [3, 2]
    assert t.summary_encoding == "int4" and Topology(SIX, 10).summary_encoding == "float32"


def test_committed_default_device_tiers_fit_the_papers_memory_budget():
    """Section IV: the layers stored on an end device need under 2 KB."""
    manifest = json.loads((DEFAULT_MODEL / "manifest.json").read_text())
    devices = [t for t in manifest["tiers"].values() if t["role"] == "device"]
    assert len(devices) == 6
    for tier in devices:
        memory = tier["memory"]
        assert 0 < memory["binary_weight_bytes"] + memory["float_param_bytes"] <= 2048


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"summary_bits": 3}, "summary_bits must be one of"),
        ({"cloud_precision": "int2"}, "cloud_precision must be one of"),
        ({"device_grid": (2, 2)}, "has 4 tiles for 6 devices"),
        ({"device_grid": (3, 2, 1)}, r"\[rows, cols\]"),
        ({"cloud_agg": "max"}, "needs cloud_agg='concat' and no edges"),
        (
            {"input_shapes": [(10, 14, 1)] * 5 + [(8, 14, 1)]},
            "equal image feature maps",
        ),
    ],
)
def test_new_topology_fields_are_validated(changes, message):
    with pytest.raises(ValueError, match=message):
        _default_topology(**changes)


# ---------------------------------------------------------------------- building blocks
def test_summary_quantizer_rounds_half_up_clips_and_passes_gradients():
    from ddnn_tf.keras.blocks import SummaryQuantizer
    from ddnn_tf.keras.compat import tf

    x = tf.constant([[-9.7, -2.5, -0.4, 0.5, 1.49, 6.6, 30.0]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = SummaryQuantizer(4)(x)
    np.testing.assert_array_equal(y.numpy(), [[-8, -2, 0, 1, 1, 7, 7]])
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), np.ones((1, 7)))


def test_grid_tile_lays_maps_out_row_major_and_zeroes_absent_ones():
    from ddnn_tf.keras.blocks import GridTile
    from ddnn_tf.keras.compat import tf

    maps = [tf.fill((1, 2, 3, 1), float(k + 1)) for k in range(6)]
    presence = tf.constant([[1, 1, 1, 0, 1, 1]], tf.float32)
    out = GridTile((3, 2))([*maps, presence]).numpy()[0, :, :, 0]
    assert out.shape == (6, 6)
    expected = np.kron(np.array([[1, 2], [3, 0], [5, 6]], float), np.ones((2, 3)))
    np.testing.assert_array_equal(out, expected)


# -------------------------------------------------------------------- presets, calibration
def test_presets_paper_is_todays_model_default_differs():
    from ddnn_tf.keras.presets import TrainConfig, preset_config, preset_topology, topology_for

    fmnist = SimpleNamespace(
        name="fmnist6", input_shapes=tuple(SIX), num_classes=10, input_scale=1 / 255
    )
    assert preset_topology(fmnist, "paper") == topology_for(fmnist)
    default = preset_topology(fmnist, "default")
    assert default.summary_bits == 4 and default.device_filters == 4
    assert default.cloud_precision == "float" and default.device_dropout > 0
    grid = preset_topology(fmnist, "default", device_grid=(3, 2), cloud_filters=8)
    assert grid.device_grid == (3, 2) and grid.cloud_units == default.cloud_units
    assert preset_config("paper") == TrainConfig(preset="paper")
    assert preset_config("paper").calibrate == "accuracy" and TrainConfig().upper_epochs == 0
    assert preset_config("paper").upper_epochs == 0
    assert preset_topology(fmnist, "paper").local_agg == "max"
    assert preset_config("default").lr_schedule == "cosine"
    assert default.local_agg == "mlp" and default.local_units == 256
    assert preset_config("default").upper_epochs == 5
    assert preset_config("default").calibrate == "risk:0.5"
    assert preset_config("default").epochs == 5
    best = preset_topology(fmnist, "best")
    assert best.local_agg == "mlp" and best.summary_bits == 4 and best.cloud_units == 512
    assert (best.device_filters, best.device_conv_layers) == (16, 2)
    assert best.feature_shape(0) == (3, 4, 16)  # 192 bits: 24 bytes up, for the samples that go
    assert preset_config("best").epochs == 30 and preset_config("best", epochs=2).epochs == 2
    assert preset_config("best").calibrate == "risk:0.5"
    with pytest.raises(ValueError, match="^preset: expected one of paper, default, best"):
        preset_topology(fmnist, "fast")
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="step")


def test_best_preset_devices_fit_the_papers_memory_budget():
    """Two binary ConvP blocks of 16 filters and the exit head: 546 bytes of binary weights."""
    from ddnn_tf.keras.convert.export import tier_memory
    from ddnn_tf.keras.model import build_ddnn
    from ddnn_tf.keras.presets import preset_topology

    fmnist = SimpleNamespace(
        name="fmnist6", input_shapes=tuple(SIX), num_classes=10, input_scale=1 / 255
    )
    device = build_ddnn(preset_topology(fmnist, "best")).tiers["device_0"]
    memory = tier_memory([device])
    assert memory["binary_weight_bytes"] == (9 * 16 + 9 * 16 * 16 + 3 * 4 * 16 * 10) // 8 == 546
    assert memory["binary_weight_bytes"] + memory["float_param_bytes"] <= 2048


@pytest.mark.parametrize(
    "rule", ["bytes", "bytes:0", "bytes:x", "speed", "within:-1", "within:x", "within:nan"]
)
def test_calibrate_rule_is_checked(rule):
    from ddnn_tf.keras.presets import TrainConfig

    with pytest.raises(
        ValueError, match="^calibrate: expected 'risk:DELTA.*'within:D'.*'accuracy'.*'bytes:B'"
    ):
        TrainConfig(calibrate=rule)


def test_parse_calibrate_names_the_rule_and_its_value():
    from ddnn_tf.core.calibration import DEFAULT_WITHIN_POINTS, parse_calibrate
    from ddnn_tf.core.vocab import CALIBRATION_RULES

    assert parse_calibrate("accuracy") == ("accuracy", None, None)
    assert parse_calibrate("bytes:20") == ("bytes", 20.0, None)
    assert parse_calibrate("within:0.5") == ("within", 0.5, None)
    assert parse_calibrate("within").value == DEFAULT_WITHIN_POINTS == 0.25
    assert parse_calibrate("risk:0.5") == ("risk", 0.5, 0.1)
    assert {parse_calibrate(r).kind for r in ("risk:1", "within:1", "accuracy", "bytes:3")} == set(
        CALIBRATION_RULES
    )


def _labels_and_a_cloud_always_right(rng, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random labels of 10 classes, and cloud probabilities that always pick them."""
    y = rng.integers(0, 10, n)
    cloud = np.full((n, 10), 0.01)
    cloud[np.arange(n), y] = 0.91
    return y, cloud


def test_within_calibration_exits_the_most_samples_within_d_points_of_the_best():
    from ddnn_tf.core.calibration import calibrate
    from ddnn_tf.core.exits import DEFAULT_THRESHOLD_GRID, evaluate_exits

    t = _default_topology()
    rng = np.random.default_rng(1)
    n = 2000
    y, cloud = _labels_and_a_cloud_always_right(rng, n)
    sharp = rng.random(n)  # the local exit: right and confident on most samples
    local = np.full((n, 10), 0.0)
    right = sharp < 0.8
    guess = np.where(right, y, (y + 1) % 10)
    confidence = np.where(right, 0.97, rng.uniform(0.2, 0.97, n))
    local[:] = ((1 - confidence) / 9)[:, None]
    local[np.arange(n), guess] = confidence
    probs = {"local": local, "cloud": cloud}
    accurate = calibrate(probs, y, t, "accuracy").threshold
    best = evaluate_exits(probs, y, accurate).accuracy["overall"]
    for points in (0.0, 0.25, 2.0):
        chosen = calibrate(probs, y, t, f"within:{points}").threshold
        assert chosen in DEFAULT_THRESHOLD_GRID
        report = evaluate_exits(probs, y, chosen)
        assert report.accuracy["overall"] >= best - points / 100 - 1e-12
        for other in DEFAULT_THRESHOLD_GRID:  # nothing within D points exits more samples early
            r = evaluate_exits(probs, y, other)
            if r.accuracy["overall"] >= best - points / 100 - 1e-12:
                assert r.exit_fraction["local"] <= report.exit_fraction["local"]
    loose = evaluate_exits(probs, y, calibrate(probs, y, t, "within:2").thresholds)
    assert loose.exit_fraction["local"] > evaluate_exits(probs, y, accurate).exit_fraction["local"]


def test_byte_budget_calibration_picks_the_best_threshold_within_budget():
    from ddnn_tf.core.calibration import calibrate
    from ddnn_tf.core.cost.traffic import hierarchy_bytes
    from ddnn_tf.core.exits import evaluate_exits

    t = _default_topology()
    rng = np.random.default_rng(0)
    n = 400
    y, cloud = _labels_and_a_cloud_always_right(rng, n)
    local = rng.dirichlet(np.ones(10) * 0.3, n)  # the local exit mostly guesses
    probs = {"local": local, "cloud": cloud}
    raw = [140] * 6
    best = evaluate_exits(probs, y, calibrate(probs, y, t, "accuracy").thresholds)
    assert best.accuracy["overall"] == 1.0  # (nearly) everything to the cloud: > 20 bytes
    budget = 20.0
    costly = hierarchy_bytes(
        t, best.exit_fraction, raw_bytes_per_device=raw, summary_encoding="int4"
    )
    assert costly["bytes_per_device"] > budget
    cheap = calibrate(probs, y, t, f"bytes:{budget}").thresholds
    report = evaluate_exits(probs, y, cheap)
    cost = hierarchy_bytes(
        t, report.exit_fraction, raw_bytes_per_device=raw, summary_encoding="int4"
    )
    assert cost["bytes_per_device"] <= budget < 23.0
    for other in np.round(np.arange(0.0, 1.01, 0.1), 2):  # nothing within budget is better
        r = evaluate_exits(probs, y, float(other))
        fits = hierarchy_bytes(
            t, r.exit_fraction, raw_bytes_per_device=raw, summary_encoding="int4"
        )
        if fits["bytes_per_device"] <= budget:
            assert r.accuracy["overall"] <= report.accuracy["overall"]


# ------------------------------------------------------------- end to end, tiny model
@pytest.fixture(scope="module")
def default_run(tiny_dataset, tmp_path_factory):
    from ddnn_tf.keras.presets import preset_config, preset_topology
    from ddnn_tf.keras.train import train

    topology = preset_topology(
        tiny_dataset, "default", device_grid=(3, 2), cloud_filters=8, cloud_units=16
    )
    out = tmp_path_factory.mktemp("runs") / "default"
    config = preset_config("default", epochs=2, batch_size=32, calibrate="bytes:6")
    return train(tiny_dataset, topology, config, out=out, verbose=0)


@pytest.fixture(scope="module")
def default_model(default_run, tiny_dataset, tmp_path_factory):
    from ddnn_tf.keras.convert import convert

    out = tmp_path_factory.mktemp("models") / "default"
    convert(default_run, "local,cloud", out=out, dataset=tiny_dataset)
    return out


def test_default_run_reloads_with_its_preset(default_run):
    from ddnn_tf.keras.rundir import load_run

    again = load_run(default_run.path)
    assert again.topology == default_run.topology and again.config.preset == "default"
    assert again.config.calibrate == "bytes:6"
    summary = again.ddnn.tiers["device_0"](np.ones((2, 10, 14, 1), np.float32))["summary"]
    values = summary.numpy()
    assert np.all(values == np.round(values)) and values.min() >= -8 and values.max() <= 7


def test_default_model_runtime_decides_as_the_keras_evaluation(
    default_run, default_model, tiny_dataset
):
    from ddnn_tf.core.exits import exit_points
    from ddnn_tf.core.manifest import load_manifest
    from ddnn_tf.keras.convert.parity import parity
    from ddnn_tf.keras.train import predict_exits
    from ddnn_tf.runtime import Hierarchy

    manifest = load_manifest(default_model)
    assert manifest["wire"]["summary"]["encoding"] == "int4"
    assert manifest["wire"]["summary"]["nbytes"] == 2  # 3 classes, two per byte
    assert manifest["training"] == {
        "preset": "default",
        "epochs": 2,
        "upper_epochs": 5,
        "calibrate": "bytes:6",
    }
    assert manifest["aggregation"]["local"] == "mlp"
    report = parity(default_run, default_model, tiny_dataset)
    assert report["ok"]
    for target in manifest["targets"]:  # the int4 summaries: identical, not just close
        assert report["tiers"]["device_0"][target]["summary"]["max_abs_diff"] == 0.0
    test = tiny_dataset.test
    keras_probs = predict_exits(default_run.ddnn, test.x)
    t = default_run.thresholds["local"]
    expected = exit_points([keras_probs["local"], keras_probs["cloud"]], [t])
    for target in ("portable", "lce"):
        staged = Hierarchy(default_model, target=target).run(test.x, batch_size=16)
        np.testing.assert_array_equal(staged.exit_index, expected)
        # the learned local aggregator is float arithmetic: equal up to kernel rounding
        np.testing.assert_allclose(
            staged.probs["local"], keras_probs["local"], rtol=1e-5, atol=1e-6
        )
        np.testing.assert_array_equal(
            staged.probs["local"].argmax(axis=1), keras_probs["local"].argmax(axis=1)
        )
        sent = staged.link_bytes["device_to_local"]
        np.testing.assert_array_equal(sent, np.full_like(sent, 2))


def test_the_calibration_travels_from_the_run_to_the_manifest_and_the_reports(
    default_run, default_model, tiny_dataset
):
    from ddnn_tf.core.manifest import load_manifest
    from ddnn_tf.keras.evaluate import evaluate_run
    from ddnn_tf.keras.rundir import load_run
    from ddnn_tf.runtime.report import evaluate_model

    record = default_run.calibration
    assert record.rule == "bytes:6" and record.n_val == len(tiny_dataset.val.y)
    assert record.thresholds == default_run.thresholds and record.delta is None
    assert load_run(default_run.path).calibration == record
    assert load_manifest(default_model)["calibration"] == record.to_dict()
    line = f"  T calibrated by bytes:6 on {record.n_val} validation samples (no certified bound"
    keras, deployed = evaluate_run(default_run, tiny_dataset), evaluate_model(default_model)
    for result in (keras, deployed):
        assert result["calibration"] == record.to_dict() and line in result.format()
    by_hand = evaluate_run(default_run, tiny_dataset, threshold=0.55)
    assert "calibration" not in by_hand.to_dict() and "calibrated by" not in by_hand.format()
    risk = evaluate_run(default_run, tiny_dataset, calibrate="risk:0.5", split="val")
    n = record.n_val
    assert risk["calibration"]["rule"] == "risk:0.5,0.1" and risk["calibration"]["n_val"] == n
    assert risk["calibration"]["certified"] is False  # too few samples for half a point
    assert risk["thresholds"] == {"local": 0.0}
    assert f"cannot certify a drop under {100 * (1 - 0.1 ** (1 / n)):.2f} points" in risk.format()


def test_evaluate_counts_int4_bytes_and_recalibrates(default_run, tiny_dataset):
    from ddnn_tf.keras.evaluate import evaluate_run

    result = evaluate_run(default_run, tiny_dataset)
    assert result["summary_encoding"] == "int4"
    local = result["exit_fraction"]["local"]
    assert result["bytes_per_device"] == pytest.approx(2 + (1 - local) * 18)
    cheap = evaluate_run(default_run, tiny_dataset, calibrate="bytes:2.5", split="val")
    assert cheap["bytes_per_device"] <= 2.5


def test_runtime_calibrates_under_a_byte_budget_like_evaluate(
    default_run, default_model, tiny_dataset
):
    from ddnn_tf.keras.evaluate import evaluate_run
    from ddnn_tf.runtime.report import evaluate_model

    deployed = evaluate_model(default_model, tiny_dataset, calibrate="bytes:2.5", subset="val")
    keras = evaluate_run(default_run, tiny_dataset, calibrate="bytes:2.5", split="val")
    assert deployed["thresholds"] == keras["thresholds"]
    assert deployed["bytes_per_device"] <= 2.5
    with pytest.raises(ValueError, match="^calibrate: "):
        evaluate_model(default_model, tiny_dataset, calibrate="bytes:")


def test_int8_conversion_keeps_int4_devices_float_and_runs(
    default_run, tiny_dataset, tmp_path_factory
):
    """``--quantize int8`` quantises the cloud only: int8 device arithmetic would break the
    integer summaries the int4 wire encoding carries."""
    from ddnn_tf.core.manifest import load_manifest
    from ddnn_tf.keras.convert import convert
    from ddnn_tf.runtime import Hierarchy

    out = tmp_path_factory.mktemp("models") / "default_int8"
    convert(
        default_run,
        "local,cloud",
        out=out,
        target="portable",
        quantize="int8",
        dataset=tiny_dataset,
    )
    tiers = load_manifest(out)["tiers"]
    assert {name: t["quantized"] for name, t in tiers.items() if t["role"] == "device"} == {
        f"device_{i}": False for i in range(6)
    }
    assert tiers["cloud"]["quantized"] is True
    result = Hierarchy(out).run(tiny_dataset.test.x, batch_size=64)
    assert (result.exit_index >= 0).all()
    from ddnn_tf.core.comm import summary_nbytes

    int4 = summary_nbytes(tiny_dataset.num_classes, "int4")
    assert set(np.unique(result.link_bytes["device_to_local"])) == {int4}
