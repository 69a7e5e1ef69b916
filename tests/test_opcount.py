"""The static instruction model of the generated C against the emulator's exact counts."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT

from ddnn_tf.core import manifest as mf
from ddnn_tf.core.topology import Topology
from ddnn_tf.core.vocab import CORES
from ddnn_tf.errors import ConfigError
from ddnn_tf.mcu.check import device_tiers, tier_sources, tier_spec
from ddnn_tf.mcu.opcount import (
    loop_counts,
    model_coefficients,
    modelled_instructions,
    topology_instructions,
)

MODELS = [ROOT / "tflite_models" / "fmnist6_mlpcc", ROOT / "tflite_models" / "fmnist6_paper"]
GOAL_PERCENT = 10.0


@pytest.mark.parametrize("model", MODELS, ids=["default", "paper"])
def test_the_model_is_within_10_percent_of_the_count_on_every_committed_tier(model):
    """The committed manifests hold both figures (``ddnn mcu --count-instructions``); the
    model recomputed now from the binaries is the one recorded, and within the goal."""
    manifest = mf.load_manifest(model)
    for tier in device_tiers(manifest):
        recorded = manifest["tiers"][tier]["c"]["instructions"]
        assert set(recorded) == set(CORES)
        spec = tier_spec(manifest, tier)
        for core, entry in recorded.items():
            modelled = modelled_instructions(spec, core=core)
            assert entry["modelled"] == pytest.approx(modelled, abs=0.1)
            error = 100 * (modelled - entry["measured"]) / entry["measured"]
            assert entry["error_percent"] == pytest.approx(error, abs=0.01)
            assert abs(error) < GOAL_PERCENT, (tier, core, error)
            assert entry["board"] == {"cortex-m4f": "mps2-an386"}.get(core, "mps2-an385")


def test_loop_counts_follow_the_generated_loops():
    """The default model's device: 4 filters over a 10x14 image, every conv row computed
    once per filter (10 rows, 28 taps rows inside the image), a 5x7 max-pool of 3x3
    windows clipped at the border, and a float head over 140 bits for 10 classes."""
    manifest = mf.load_manifest(MODELS[0])
    sources, _ = tier_sources(manifest, "device_0")
    counts = loop_counts(sources.spec, sources.plan)
    assert counts["conv.row"] == 4 * 10 and counts["conv.row_x"] == 4 * 10 * 14
    assert counts["conv.ky_valid"] == 4 * 28 and counts["conv.ky_border"] == 4 * 2
    assert counts["conv_u8int.tap_x"] == 4 * 28 * 3 * 14
    assert counts["conv.pool_y"] == 4 * (5 * 7 * 3 - 7)  # the first pooled row sees 2 rows
    assert counts["head_float.bit"] == 10 * 140 and counts["head_float.byte"] == 10 * 18
    assert counts["tier.call"] == 1
    for loop in ("for (x = 0; x < 14; x++)", "for (ky = 0; ky < 3; ky++)", "i < 140u"):
        assert loop in sources.c  # the shapes the counts assume are the code's


def test_the_topology_alone_prices_a_device_like_its_converted_tier():
    """What the hierarchy search uses for a trial: no weights, no conversion, no emulator."""
    manifest = mf.load_manifest(MODELS[0])
    t = Topology.from_dict(manifest["topology"])
    for core in CORES:
        estimate = topology_instructions(t, core=core)[0]
        measured = manifest["tiers"]["device_0"]["c"]["instructions"][core]["measured"]
        assert abs(estimate - measured) / measured < GOAL_PERCENT / 100, core
    deeper = t.replace(device_conv_layers=2, device_filters=8)
    assert topology_instructions(deeper)[0] > 2 * topology_instructions(t)[0]
    vectors = Topology(input_shapes=[(32,)] * 2, num_classes=4, device_units=16)
    assert 0 < topology_instructions(vectors, core="cortex-m0plus")[0]


def test_every_loop_body_of_the_fit_has_a_cost_on_every_core():
    fitted = json.loads((ROOT / "ddnn_tf" / "mcu" / "instruction_model.json").read_text())
    names = {k for core in fitted["cores"].values() for k in core["coefficients"]}
    for core in CORES:
        assert set(model_coefficients(core)) == names
        assert fitted["cores"][core]["fit"]["tiers"] >= 100
    assert "arm-none-eabi-gcc" in fitted["compiler"]
    with pytest.raises(ConfigError, match="core: expected a core among"):
        model_coefficients("cortex-m7")
