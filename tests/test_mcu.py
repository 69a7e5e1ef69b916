"""ddnn_tf.mcu: device tiers as C on an emulated Cortex-M board and the host, and in TFLM.

Every comparison is byte for byte against the portable binary run by ai-edge-litert.
The toolchain (arm-none-eabi-gcc + newlib, qemu-system-arm, gcc) and tflite-micro are
installed by ``make test``; without them these tests fail, naming what to install.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, modules_loaded_by, run_cli

from ddnn_tf.core import comm
from ddnn_tf.core import manifest as mf
from ddnn_tf.mcu import build
from ddnn_tf.mcu.boards import BOARDS
from ddnn_tf.mcu.bound import footprint_bound
from ddnn_tf.mcu.check import check_model, device_tiers, reference_messages, tier_sources
from ddnn_tf.mcu.codegen import generate_c
from ddnn_tf.mcu.exact import plan_tier
from ddnn_tf.mcu.export import mcu_files
from ddnn_tf.mcu.lower import lower_tier
from ddnn_tf.mcu.tflm import arena_bytes, tflm_variant

DEFAULT = ROOT / "tflite_models" / "fmnist6_mlpcc"
PAPER = ROOT / "tflite_models" / "fmnist6_paper"
BUDGET = 2048  # the paper's "under 2 KB" per end device, flash and RAM each
QEMU_SAMPLES = 500


@pytest.fixture(scope="module")
def fmnist6():
    from ddnn_tf.data import load_dataset

    return load_dataset("fmnist6")


# ------------------------------------------------------------- the committed models
@pytest.mark.slow
@pytest.mark.parametrize("model", [DEFAULT, PAPER], ids=["default", "paper"])
def test_host_c_equals_litert_on_every_test_sample(model, fmnist6):
    report = check_model(model, fmnist6, board="host")
    assert report["ok"], report
    assert _page_row(model, "host")[2] == "0"
    for tier, row in report["devices"].items():
        assert row["samples"] == len(fmnist6.test) == 10_000, tier
        assert row["mismatches"] == row["summary_mismatches"] == row["features_mismatches"] == 0
        assert row["source"] == "model directory"
        assert row["samples_per_s"] > 0 and row["litert_samples_per_s"] > 0


def _page_row(model: Path, board: str) -> list[str]:
    """The cells of docs/mcu.md's parity and size table for ``model`` on ``board``."""
    text = (ROOT / "docs" / "mcu.md").read_text()
    section = text[text.index("## Parity and size") :]
    table = section[section.index("| model | board |") :].split("\n\n", 1)[0]
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0].split()[0] == model.name and cells[1].split()[0] == board.split()[0]:
            return cells
    raise AssertionError(f"no docs/mcu.md row for {model.name} on {board}")


def _span(values) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:,} B" if lo == hi else f"{lo:,}-{hi:,} B"


@pytest.mark.slow
@pytest.mark.parametrize("board", ["mps2-an386", "mps2-an385"])
@pytest.mark.parametrize("model", [DEFAULT, PAPER], ids=["default", "paper"])
def test_emulated_cortex_m_equals_litert_within_the_paper_budget(model, board, fmnist6):
    report = check_model(model, fmnist6, board=board, limit=QEMU_SAMPLES)
    assert report["ok"], report
    rows = report["devices"].values()
    cells = _page_row(model, board)
    assert cells[2] == "0"
    assert cells[3] == _span([r["flash_bytes"] for r in rows])
    assert cells[4] == _span([r["ram_bytes"] for r in rows])
    if board != "mps2-an386":
        return
    manifest = mf.load_manifest(model)
    for tier, row in report["devices"].items():
        assert row["samples"] == QEMU_SAMPLES and row["mismatches"] == 0, tier
        assert row["flash_bytes"] <= BUDGET and row["ram_bytes"] <= BUDGET, row
        # the stack painted on the board stays within GCC's static bound (the tier calls
        # nothing else), and close to it: the frame is really used
        assert 0 < row["stack_bytes_static"] - 16 <= row["stack_bytes"] <= row["stack_bytes_static"]
        footprint = manifest["tiers"][tier]["c"]["footprint"]
        assert footprint["flash_bytes"] == row["flash_bytes"]
        assert footprint["ram_bytes"] == row["static_ram_bytes"] + row["stack_bytes_static"]
        assert footprint["external"] == []


@pytest.mark.slow
@pytest.mark.parametrize("model", [DEFAULT, PAPER], ids=["default", "paper"])
def test_tflm_variant_equals_litert_on_every_test_sample(model, fmnist6):
    report = check_model(model, fmnist6, board="tflm")
    assert report["ok"], report
    manifest = mf.load_manifest(model)
    for tier, row in report["devices"].items():
        assert row["mismatches"] == 0 and row["samples"] == 10_000
        assert "SIGN" not in row["ops"] and row["ops"]["SELECT_V2"] == 2
        assert row["arena_bytes"] == manifest["tiers"][tier]["tflm"]["arena_bytes"]
    cells = _page_row(model, "TensorFlow Lite Micro")
    rows = report["devices"].values()
    assert cells[2] == "0"
    assert cells[3] == _span([r["flash_bytes"] for r in rows]) + " model + TFLM"
    assert cells[4] == _span([r["arena_bytes"] for r in rows]) + " arena + TFLM"


def test_portable_device_binary_does_not_load_in_tflm():
    data = mf.load_manifest(DEFAULT).path("device_0", "portable").read_bytes()
    with pytest.raises(ValueError, match="TFLM cannot allocate"):
        arena_bytes(data, [np.zeros((1, 10, 14, 1), np.float32)])


@pytest.mark.parametrize("model", [DEFAULT, PAPER], ids=["default", "paper"])
def test_committed_mcu_files_are_what_the_generator_makes(model):
    """The C and TFLM files in the model directory regenerate byte for byte; the portable
    binaries they come from are untouched (same sha256 as before the C target existed)."""
    manifest = mf.load_manifest(model)
    for tier in device_tiers(manifest):
        entry = manifest["tiers"][tier]
        portable = manifest.path(tier, "portable").read_bytes()
        scale = next(e["scale"] for e in manifest["inputs"] if e["tier"] == tier)
        files, keys = mcu_files(tier, portable, scale=scale, origin=f"{tier}.tflite")
        for name, blob in files.items():
            assert (manifest.directory / name).read_bytes() == blob, name
        assert keys["c"]["source"] == entry["c"]["source"]
        assert keys["tflm"]["sha256"] == entry["tflm"]["sha256"]
        assert entry["c"]["footprint"]["flash_bytes"] <= BUDGET
        assert entry["c"]["footprint"]["ram_bytes"] <= BUDGET


def test_generated_c_uses_no_libc_and_states_its_buffers():
    sources, _ = tier_sources(mf.load_manifest(DEFAULT), "device_3")
    assert "#include <stdint.h>" in sources.c and "#include <string.h>" not in sources.c
    assert "malloc" not in sources.c and "printf" not in sources.c
    assert (
        "int ddnn_device_3(const uint8_t *sensor, uint8_t *summary, uint8_t *features);"
        in sources.h
    )
    assert "#define DDNN_DEVICE_3_SCRATCH_BYTES 0" in sources.h
    assert "#define DDNN_DEVICE_3_SUMMARY_BYTES 5" in sources.h
    assert "#define DDNN_DEVICE_3_FEATURES_BYTES 18" in sources.h


# ------------------------------------------------------- synthetic device topologies
def _device_binary(topology, *, split=("local", "cloud"), seed=0, bn=None, x=None) -> bytes:
    """Device 0's portable binary of an untrained DDNN (kernels drawn from ``seed``) whose
    batch norms are set from the statistics of their inputs on ``x`` (random pixels by
    default) with random offsets and signs, so thresholds fall among the values the data
    reaches (or set by ``bn(layer_name, weights) -> weights``)."""
    from ddnn_tf.core.graph import tier_graph
    from ddnn_tf.keras.compat import keras
    from ddnn_tf.keras.convert.export import convert_tier
    from ddnn_tf.keras.model import build_ddnn

    keras.utils.set_random_seed(seed)  # the kernels too: the same binary on every run
    ddnn = build_ddnn(topology)
    device = ddnn.tiers["device_0"]
    rng = np.random.default_rng(seed)
    if x is None:
        x = _pixels(256, topology.input_shapes[0], seed=seed + 7).astype(np.float32) / 255
        x = x.reshape(-1, *topology.input_shapes[0])
    if ddnn.sensors:  # a quantised sensor: fitted on x, and the tier sees its codes
        ddnn.sensors[0].fit(x)
        x = ddnn.sensor_quantizers()[0].centred(x)
    for layer in device.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            g, b, mu, var = layer.get_weights()
            if bn is not None:
                layer.set_weights(bn(layer.name, [g, b, mu, var]))
                continue
            seen = keras.Model(device.input, layer.input).predict(x, verbose=0)
            seen = seen.reshape(-1, seen.shape[-1])
            std = seen.std(axis=0) + 0.5
            layer.set_weights(
                [
                    rng.uniform(0.5, 2.0, g.shape) * rng.choice([-1.0, 1.0], g.shape),
                    rng.normal(0.0, 0.5, b.shape),
                    np.median(seen, axis=0) + rng.normal(0.0, 0.3, mu.shape) * std,
                    std**2,
                ]
            )
    plan = tier_graph(topology, split)["device_0"]
    data = convert_tier(ddnn, plan, targets=("portable",))["portable"]
    return (data, ddnn.sensor_quantizers()[0]) if ddnn.sensors else data


def _litert(data: bytes, x: np.ndarray) -> dict[str, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=data)
    runner = it.get_signature_runner("serving_default")
    name = next(iter(it.get_signature_list()["serving_default"]["inputs"]))
    outs = [runner(**{name: x[i : i + 1]}) for i in range(len(x))]
    return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}


def _wire(outputs: dict[str, np.ndarray], encoding: str | None) -> np.ndarray:
    parts = [comm.encode_summaries(outputs["summary"], encoding)] if encoding else []
    return np.concatenate([*parts, comm.pack_features_batch(outputs["features"])], axis=1)


def _run_c(board: str, sources, sensors: np.ndarray, tmp_path: Path, shape) -> np.ndarray:
    """The messages the C writes on ``board`` for the sensor messages ``sensors``."""
    b = BOARDS[board]
    if b.kind == "qemu":
        run = build.run_firmware(
            build.build_firmware(sources, b, tmp_path), b, sensors.tobytes(), timeout_s=120
        )
    else:
        run = build.run_host(build.build_host(sources, tmp_path), sensors.tobytes(), timeout_s=120)
    assert run.status == "ok", run.detail
    return np.frombuffer(run.messages, np.uint8).reshape(shape)


def _compare_on(board: str, data: bytes, sensors: np.ndarray, scale, tmp_path: Path):
    """Run the C of ``data`` on ``board``; returns (spec, plan, C bytes, LiteRT bytes)."""
    spec = lower_tier("device_0", data, scale=scale)
    sources = generate_c(spec)
    if scale is not None:
        x = comm.decode_raw(sensors, spec.sensor.shape, "uint8", scale)
    else:
        x = comm.decode_raw(sensors, spec.sensor.shape, "float32")
    want = _wire(_litert(data, x), spec.head.encoding if spec.head else None)
    return spec, sources.plan, _run_c(board, sources, sensors, tmp_path, want.shape), want


def _pixels(n: int, shape, seed: int = 1, high: int = 256) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, high, (n, int(np.prod(shape))), dtype=np.uint8)


TOPOLOGIES = {
    # name: (input shape, filters, conv layers, summary bits)
    "f1-depth1-int4": ((6, 5, 1), 1, 1, 4),
    "f3-depth2-float32": ((7, 9, 1), 3, 2, 0),
    "f8-depth3-int4": ((11, 8, 1), 8, 3, 4),
    "rgb-f5-depth2-int4": ((6, 6, 3), 5, 2, 4),
    "f2-depth1-float32-odd": ((3, 3, 1), 2, 1, 0),
}


@pytest.mark.parametrize("name", list(TOPOLOGIES))
def test_image_devices_of_any_filter_count_and_depth(name, tmp_path):
    from ddnn_tf.core.topology import Topology

    shape, filters, layers, bits = TOPOLOGIES[name]
    t = Topology(
        input_shapes=[shape] * 2,
        num_classes=3,
        device_filters=filters,
        device_conv_layers=layers,
        summary_bits=bits,
    )
    data = _device_binary(t)
    spec, plan, got, want = _compare_on("host", data, _pixels(400, shape), 1 / 255, tmp_path)
    assert len(spec.blocks) == layers and spec.features_shape == t.feature_shape(0)
    assert np.array_equal(got, want), int((got != want).any(axis=1).sum())
    # the random maps are neither all +1 nor all -1: the comparison means something
    bits_set = np.unpackbits(want[:, spec.summary_nbytes :], axis=1)[:, : spec.features_bits]
    assert 0 < bits_set.mean() < 1
    # the footprint bound a search rejects configurations by is never above the real one
    bound = footprint_bound(t, 0)
    for board in ("mps2-an386", "host"):
        fp = build.footprint(generate_c(spec), BOARDS[board], tmp_path / board)
        assert bound.flash_bytes <= fp.flash_bytes and bound.ram_bytes <= fp.ram_bytes, board


@pytest.mark.parametrize("model", [DEFAULT, PAPER], ids=["default", "paper"])
def test_the_footprint_bound_holds_for_the_committed_models(model):
    from ddnn_tf.core.topology import Topology

    manifest = json.loads((model / "manifest.json").read_text())
    topology = Topology.from_dict(manifest["topology"])
    for i in range(topology.num_devices):
        fp = manifest["tiers"][f"device_{i}"]["c"]["footprint"]
        bound = footprint_bound(topology, i)
        assert bound.flash_bytes <= fp["flash_bytes"] and bound.ram_bytes <= fp["ram_bytes"]


@pytest.mark.slow
@pytest.mark.parametrize("board", ["mps2-an386", "mps2-an385"])
def test_deep_multichannel_device_on_both_emulated_cortex_m(board, tmp_path):
    from ddnn_tf.core.topology import Topology

    t = Topology(
        input_shapes=[(6, 6, 3)] * 2, num_classes=4, device_filters=5, device_conv_layers=2
    )
    data = _device_binary(t, seed=3)
    spec, plan, got, want = _compare_on(board, data, _pixels(300, (6, 6, 3)), 1 / 255, tmp_path)
    assert spec.head.encoding == "float32" and plan.head.arithmetic == "float"
    assert np.array_equal(got, want)


@pytest.mark.parametrize("layers", [1, 2])
def test_vector_devices(layers, tmp_path):
    from ddnn_tf.core.topology import Topology

    t = Topology(
        input_shapes=[(12,)] * 2,
        num_classes=3,
        device_units=9,
        device_conv_layers=layers,
        summary_bits=4,
    )
    data = _device_binary(t, seed=layers)
    spec, plan, got, want = _compare_on("host", data, _pixels(500, (12,)), 1 / 255, tmp_path)
    assert [type(b).__name__ for b in spec.blocks] == ["DenseBlock"] * layers
    assert np.array_equal(got, want)


def test_device_without_summary_sends_features_only(tmp_path):
    from ddnn_tf.core.topology import Topology

    t = Topology(
        input_shapes=[(6, 5, 1)] * 2, num_classes=3, edges=[[0, 1]], exits=("edge", "cloud")
    )
    data = _device_binary(t, split=("edge", "cloud"))
    spec, plan, got, want = _compare_on("host", data, _pixels(200, (6, 5, 1)), 1 / 255, tmp_path)
    assert spec.head is None and spec.summary_nbytes == 0
    assert np.array_equal(got, want)


def _compare_codes(board: str, data: bytes, quantizer, x: np.ndarray, tmp_path: Path):
    """Run the C of a quantised device on the codes of sensor values ``x``; returns
    (spec, plan, C bytes, LiteRT bytes on the centred codes)."""
    spec = lower_tier("device_0", data, scale=None, quantizer=quantizer)
    sources = generate_c(spec)
    codes = quantizer.codes(x)
    sensors = codes.astype(codes.dtype.newbyteorder("<")).view(np.uint8).reshape(len(x), -1)
    want = _wire(_litert(data, quantizer.centre(codes)), spec.head.encoding if spec.head else None)
    return spec, sources.plan, _run_c(board, sources, sensors, tmp_path, want.shape), want


def _real_values(n: int, shape, seed: int) -> np.ndarray:
    """Real sensor values of very different scales per channel, and some far outside the
    range the quantiser was fitted on (they clip)."""
    rng = np.random.default_rng(seed)
    channels = shape[-1]
    scale = 10.0 ** rng.uniform(-2, 3, channels)
    offset = rng.normal(0, 1, channels) * scale
    x = rng.normal(0, 1, (n, *shape)) * scale + offset
    x[: n // 20] *= 4.0
    return x.astype(np.float32)


QUANTISED = {
    # name: (input shape, bits, layers, units or filters)
    "vector-int8-2": ((30,), 8, 2, 16),
    "vector-int16-1": ((7,), 16, 1, 12),
    "image-int16-rgb-2": ((6, 6, 3), 16, 2, 5),
}


@pytest.mark.parametrize("name", list(QUANTISED))
def test_quantised_real_sensors_are_integer_and_exact(name, tmp_path):
    """A real-valued sensor quantised at the device: every block integer, the C equal to
    LiteRT byte for byte on the codes, within range and clipped."""
    from ddnn_tf.core.topology import Topology

    shape, bits, layers, width = QUANTISED[name]
    size = {"device_filters": width} if len(shape) == 3 else {"device_units": width}
    t = Topology(
        input_shapes=[shape] * 2,
        num_classes=3,
        device_conv_layers=layers,
        summary_bits=4,
        sensor_bits=bits,
        **size,
    )
    data, quantizer = _device_binary(t, seed=layers, x=_real_values(256, shape, seed=1))
    assert quantizer.bits == bits
    spec, plan, got, want = _compare_codes(
        "host", data, quantizer, _real_values(600, shape, seed=2), tmp_path
    )
    assert spec.sensor.dtype == quantizer.dtype and spec.sensor.coded
    assert [p.arithmetic for p in plan.blocks] == ["integer"] * layers
    assert np.array_equal(got, want), int((got != want).any(axis=1).sum())
    bits_set = np.unpackbits(want[:, spec.summary_nbytes :], axis=1)[:, : spec.features_bits]
    assert 0 < bits_set.mean() < 1


def _step_at(sums: dict[str, float]):
    """Batch norms whose step lies exactly on an integer sum: y(S) = S - S0 (a first FC
    block decides +1 from S = S0 on, which the export must keep)."""

    def bn(layer_name: str, weights):
        g, b, mu, var = weights
        for key, s0 in sums.items():
            if key in layer_name:
                one = np.full_like(var, np.float32(1.0) - np.float32(1e-3))
                return [np.ones_like(g), np.zeros_like(b), np.full_like(mu, s0), one]
        return weights

    return bn


def test_quantised_vector_step_exactly_on_a_sum(tmp_path):
    from ddnn_tf.core.topology import Topology

    t = Topology(
        input_shapes=[(3,)] * 2, num_classes=3, device_units=4, summary_bits=4, sensor_bits=8
    )
    x = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]], np.float32)  # scale 1/255 per channel
    data, quantizer = _device_binary(t, x=x, bn=_step_at({"fc1_bn": 2.0}))
    spec = lower_tier("device_0", data, scale=None, quantizer=quantizer)
    plan = plan_tier(spec)
    block = spec.blocks[0]
    assert np.all(block.scale == 1.0) and np.all(np.abs(2 * block.bias) % 2 == 1)
    assert plan.blocks[0].arithmetic == "integer"
    # codes 0..3 in every channel: sums of +-codes land on S0 = 2 often
    values = np.random.default_rng(0).integers(0, 4, (300, 3)).astype(np.float32) / 255
    spec, plan, got, want = _compare_codes("host", data, quantizer, values, tmp_path)
    assert np.array_equal(got, want)


def test_int16_codes_too_wide_for_float32_sums_convert_but_not_to_c():
    """128 int16 codes per unit can sum past float32's exact integers: the device keeps its
    trained form (it converts and runs), and the C target names the layer and the way out."""
    from ddnn_tf.core.topology import Topology

    t = Topology(input_shapes=[(128,)] * 2, num_classes=3, device_units=4, sensor_bits=16)
    x = np.random.default_rng(0).normal(size=(64, 128)).astype(np.float32)
    data, quantizer = _device_binary(t, x=x)
    spec = lower_tier("device_0", data, scale=None, quantizer=quantizer)
    with pytest.raises(ValueError, match=r"^device_0: .*exactly: fc1, the first FC block on") as e:
        plan_tier(spec)
    assert "sums 128 codes up to" in str(e.value) and "TensorFlow Lite Micro" in str(e.value)


def test_float32_sensor_image_device(tmp_path):
    from ddnn_tf.core.topology import Topology

    t = Topology(input_shapes=[(5, 6, 1)] * 2, num_classes=3, summary_bits=4)
    rng = np.random.default_rng(2)
    x = rng.normal(0.0, 1.0, (300, 5, 6, 1)).astype(np.float32)
    data = _device_binary(t, seed=5, x=x)
    sensors = comm.encode_raw(x, "float32")
    spec, plan, got, want = _compare_on("host", data, sensors, None, tmp_path)
    assert spec.sensor.dtype == "float32" and plan.blocks[0].arithmetic == "float"
    assert np.array_equal(got, want)


# ----------------------------------------------------- values exactly on a decision step
def _on_step_bn(layer_name: str, weights):
    """Batch norms whose constants put exact values on a decision step: conv1 at the sum
    S = 3 of three 1/255 pixels, the head at acc = k + 0.5 (scale 0.5, bias 0.5)."""
    g, b, mu, var = weights
    eps = np.float32(1e-3)
    one = np.full_like(var, np.float32(1.0) - eps)  # var + eps == 1: an exact scale
    if "convp1_bn" in layer_name:
        return [
            np.ones_like(g),
            np.zeros_like(b),
            np.full_like(mu, np.float32(3) * np.float32(1 / 255)),
            one,
        ]
    if "exit_bn" in layer_name:
        return [np.full_like(g, 0.5), np.full_like(b, 0.5), np.zeros_like(mu), one]
    return weights


def test_values_exactly_on_a_step_take_the_binary_float_path(tmp_path):
    from ddnn_tf.core.topology import Topology

    t = Topology(input_shapes=[(6, 7, 1)] * 2, num_classes=3, summary_bits=4)
    data = _device_binary(t, bn=_on_step_bn)
    spec = lower_tier("device_0", data, scale=1 / 255)
    assert float(spec.head.scale[0]) == 0.5 and float(spec.head.bias[0]) == 0.5
    plan = plan_tier(spec)
    assert [p.arithmetic for p in plan.blocks] == ["float"] and plan.head.arithmetic == "float"
    on_step = [a for a in plan.ambiguities if a.layer == "head" and (a.exact - 0.5) % 1 == 0]
    assert on_step, plan.ambiguities
    # pixels 0..2: many windows sum to exactly S = 3, where conv1's threshold lies
    sensors = _pixels(400, (6, 7, 1), seed=4, high=3)
    spec, plan, got, want = _compare_on("host", data, sensors, 1 / 255, tmp_path)
    assert np.array_equal(got, want)


def test_tflm_variant_is_the_same_function_in_litert(fmnist6):
    """The rewrite changes operators, not results: ai-edge-litert gives the same bytes."""
    for model in (DEFAULT, PAPER):
        manifest = mf.load_manifest(model)
        variant = (manifest.directory / manifest["tiers"]["device_2"]["tflm"]["file"]).read_bytes()
        assert variant == tflm_variant(manifest.path("device_2", "portable").read_bytes())
        x = fmnist6.test.x[2][:2000]
        encoding = manifest["wire"]["summary"]["encoding"]
        want = _wire(_litert(manifest.path("device_2", "portable").read_bytes(), x), encoding)
        assert np.array_equal(_wire(_litert(variant, x), encoding), want)


# ------------------------------------------------------------------------- errors
def test_unknown_board_is_a_one_line_error():
    out = run_cli("ddnn_tf.mcu", str(DEFAULT), "--board", "mps2-an999", "--limit", "5")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown board 'mps2-an999'" in lines[0]
    assert "mps2-an386" in lines[0] and "Traceback" not in out.stderr
    # a machine QEMU has but the harness does not start
    known = run_cli("ddnn_tf.mcu", str(DEFAULT), "--board", "mps2-an505", "--limit", "5")
    assert known.returncode == 2 and "QEMU knows mps2-an505" in known.stderr


@pytest.mark.parametrize(
    ("missing", "board", "names"),
    [
        (
            "arm-none-eabi-gcc",
            "mps2-an386",
            "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi",
        ),
        ("qemu-system-arm", "mps2-an386", "apt-get install qemu-system-arm"),
    ],
)
def test_missing_toolchain_names_what_to_install(missing, board, names, tmp_path):
    """A PATH holding every tool but ``missing``: one line naming the Debian packages."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm", "gcc", "size"):
        if tool != missing and shutil.which(tool):
            (bin_dir / tool).symlink_to(shutil.which(tool))
    env = {**os.environ, "PATH": str(bin_dir), "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "ddnn_tf.mcu", str(DEFAULT), "--board", board, "--limit", "3"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{missing} not found" in lines[0] and names in lines[0]


def test_a_tier_the_c_target_cannot_express_is_refused():
    manifest = mf.load_manifest(DEFAULT)
    aggregator = manifest.path("local_aggregator", "portable").read_bytes()
    with pytest.raises(
        ValueError, match=r"^local_aggregator: the C target cannot express this tier: "
    ):
        lower_tier("local_aggregator", aggregator, scale=None)
    # a real-valued vector sensor times folded batch-norm scales: rounding is CPU-specific
    from ddnn_tf.core.topology import Topology

    t = Topology(input_shapes=[(6,)] * 2, num_classes=3, device_units=4)  # no quantiser
    data = _device_binary(t, x=np.random.default_rng(0).normal(size=(64, 6)).astype(np.float32))
    with pytest.raises(ValueError, match=r"^device_0: .* exactly: fc1, its first FC block,") as err:
        plan_tier(lower_tier("device_0", data, scale=None))
    assert "Quantise the sensor" in str(err.value) and "TensorFlow Lite Micro target" in str(
        err.value
    )


def _broken(tier: str, body: str):
    """``tier_sources`` with one device's entry point replaced by ``body``."""
    import ddnn_tf.mcu.check as check

    real = check.tier_sources

    def sources(manifest, name):
        src, origin = real(manifest, name)
        if name != tier:
            return src, origin
        entry = f"int {src.entry}(const uint8_t *sensor, uint8_t *summary, uint8_t *features)\n{{"
        head, _, _ = src.c.partition(entry)
        import dataclasses

        return dataclasses.replace(src, c=head + entry + body + "\n}\n"), origin

    return sources


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        (
            "    (void)sensor; (void)summary; (void)features;\n    for (;;) {}",
            "hung",
            "no exit within",
        ),
        (
            "    (void)sensor; (void)summary; (void)features;\n"
            "    return *(volatile int *)0xFFFFFFF0u;",
            "crashed",
            "faulted",
        ),
    ],
    ids=["hung", "crashed"],
)
def test_a_hung_or_crashed_board_is_reported_for_its_device(
    body, status, detail, fmnist6, monkeypatch
):
    import ddnn_tf.mcu.check as check

    monkeypatch.setattr(check, "tier_sources", _broken("device_1", body))
    report = check_model(DEFAULT, fmnist6, board="mps2-an386", limit=20, timeout_s=5)
    assert not report["ok"]
    rows = report["devices"]
    assert rows["device_1"]["status"] == status and detail in rows["device_1"]["detail"]
    assert rows["device_1"]["mismatches"] == 20
    assert all(
        rows[t]["status"] == "ok" and rows[t]["mismatches"] == 0 for t in rows if t != "device_1"
    )


def test_a_wrong_c_output_is_counted():
    """The comparison can fail: a tier that flips one feature bit is caught."""
    manifest = mf.load_manifest(DEFAULT)
    sources, _ = tier_sources(manifest, "device_0")
    x = np.zeros((1, 10, 14, 1), np.float32)
    sensors = comm.encode_raw(x, "uint8", 1 / 255)
    want = reference_messages(manifest, "device_0", sensors)
    import dataclasses
    import tempfile

    flipped = sources.c.replace(
        "    head(features, summary);", "    features[3] ^= 0x10u;\n    head(features, summary);"
    )
    assert flipped != sources.c
    with tempfile.TemporaryDirectory() as tmp:
        exe = build.build_host(dataclasses.replace(sources, c=flipped), Path(tmp))
        run = build.run_host(exe, sensors.tobytes(), timeout_s=60)
    got = np.frombuffer(run.messages, np.uint8).reshape(want.shape)
    assert run.status == "ok" and (got != want).sum() >= 1


# --------------------------------------------------------------- convert and the CLI
def test_convert_target_c_writes_sources_and_footprints(tiny_run, tiny_dataset, tmp_path):
    from ddnn_tf.keras.convert import convert

    out = convert(
        tiny_run, "local,cloud", out=tmp_path / "m", target="c,tflm", dataset=tiny_dataset
    )
    manifest = mf.load_manifest(out)  # checks every listed file's sha256
    assert manifest["targets"] == ["portable"]  # c and tflm bring portable
    for tier in device_tiers(manifest):
        entry = manifest["tiers"][tier]
        assert (out / f"{tier}.c").is_file() and (out / f"{tier}.h").is_file()
        assert entry["c"]["entry"] == f"ddnn_{tier}" and entry["c"]["footprint"]["flash_bytes"] > 0
        assert entry["tflm"]["file"] == f"{tier}.tflm.tflite" and entry["tflm"]["arena_bytes"] > 0
    assert "c" not in manifest["tiers"]["cloud"]
    report = check_model(out, tiny_dataset, board="host")
    assert report["ok"] and all(
        r["source"] == "model directory" for r in report["devices"].values()
    )
    assert check_model(out, tiny_dataset, board="tflm")["ok"]


def test_cli_json_without_tensorflow():
    """``ddnn mcu --json`` in a fresh interpreter: the report, and no TensorFlow, Larq or
    Keras layer loaded by the command (the mcu layer, its CLI shell and the live runner)."""
    code = (
        "import ddnn_tf.mcu.live\n"
        "from ddnn_tf.cli import main\n"
        f"main(['mcu', {str(DEFAULT)!r}, '--board', 'host', '--limit', '200', '--json'])\n"
    )
    loaded, stdout = modules_loaded_by(code, timeout=300)
    heavy = (
        "tensorflow",
        "tf_keras",
        "larq",
        "larq_compute_engine",
        "tensorflow_model_optimization",
    )
    assert [m for m in loaded if m.split(".")[0] in heavy or m.startswith("ddnn_tf.keras")] == []
    report = json.loads(stdout)
    assert report["board"] == "host" and set(report["devices"]) == {f"device_{i}" for i in range(6)}
    for row in report["devices"].values():
        assert {"samples", "mismatches", "flash_bytes", "ram_bytes"} <= set(row)
        assert row["samples"] == 200 and row["mismatches"] == 0


# ------------------------------------------------------------ a live hierarchy
@pytest.mark.slow
def test_deploy_with_every_device_on_an_emulated_board():
    """Six device processes each run their tier's C in QEMU; the gateway and cloud see the
    same bytes as the offline run: every sample answered, the same exits and predictions."""
    from ddnn_tf.serve.deploy import deploy

    result = deploy(DEFAULT, "fmnist6", limit=192, batch=64, mcu_devices="0,1,2,3,4,5")
    assert result["mcu_devices"] == [0, 1, 2, 3, 4, 5]
    assert result["n_samples"] == 192 and result["lost"] == 0 and result["degraded"] == 0
    assert result["mismatches_vs_offline"] == 0
    assert result["bytes_per_device"] == pytest.approx(result["offline_bytes_per_device"])


def test_board_tier_answers_like_the_tier_runner(fmnist6):
    from ddnn_tf.mcu.live import BoardTier
    from ddnn_tf.runtime.tiers import TierRunner

    manifest = mf.load_manifest(PAPER)
    x = fmnist6.test.x[4][:64]
    board = BoardTier(manifest, "device_4", board="mps2-an386")
    try:
        got = board({"image": x})
    finally:
        board.close()
    want = TierRunner.from_manifest(manifest, "device_4", "portable")({"image": x})
    assert got["summary"].tobytes() == want["summary"].tobytes()  # float32, bit for bit
    assert np.array_equal(got["features"], want["features"])


def test_deploy_refuses_bad_mcu_devices():
    from ddnn_tf.serve.deploy import deploy

    with pytest.raises(ValueError, match=r"mcu_devices: expected indices in \[0, 6\)"):
        deploy(DEFAULT, "fmnist6", limit=8, mcu_devices="0,9")


def test_add_mcu_targets_script_remakes_the_committed_files(tmp_path):
    copy = tmp_path / "fmnist6_mlpcc"
    shutil.copytree(DEFAULT, copy)
    for name in list(copy.iterdir()):
        if name.suffix in (".c", ".h") or name.name.endswith(".tflm.tflite"):
            name.unlink()
    data = json.loads((copy / "manifest.json").read_text())
    for tier in data["tiers"].values():
        tier.pop("c", None)
        tier.pop("tflm", None)
    (copy / "manifest.json").write_text(json.dumps(data))
    out = subprocess.run(
        [sys.executable, "scripts/add_mcu_targets.py", str(copy)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "device_5.c: " in out.stdout and "arena" in out.stdout
    for path in DEFAULT.iterdir():
        if path.name != "manifest.json":
            assert (copy / path.name).read_bytes() == path.read_bytes(), path.name
    # The manifest too, but for the emulator's counts, which `ddnn mcu --count-instructions`
    # adds beside the static model's figure (tests/test_opcount.py checks them).
    committed = json.loads((DEFAULT / "manifest.json").read_text())
    for tier in committed["tiers"].values():
        for entry in tier.get("c", {}).get("instructions", {}).values():
            for key in ("measured", "error_percent", "board", "samples"):
                entry.pop(key)
    assert json.loads((copy / "manifest.json").read_text()) == committed
