"""Exact instruction counts of a device tier on the emulated boards (QEMU, two runs)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ROOT

from ddnn_tf.core import manifest as mf
from ddnn_tf.core.topology import Topology
from ddnn_tf.errors import ConfigError
from ddnn_tf.mcu.check import sensor_messages, tier_sources
from ddnn_tf.mcu.codegen import generate_c
from ddnn_tf.mcu.exact import BlockPlan, TierPlan
from ddnn_tf.mcu.instructions import count_instructions, instruction_entry
from ddnn_tf.mcu.opcount import topology_spec

DEFAULT = ROOT / "tflite_models" / "fmnist6_mlpcc"


def _tiny():
    """A 4x5 image device with one 2-filter ConvP block and an int4 float head."""
    t = Topology(input_shapes=[(4, 5, 1)], num_classes=3, device_filters=2, summary_bits=4)
    spec = topology_spec(t)
    plan = TierPlan(
        (BlockPlan("conv1", "integer", np.array([10, -5]), np.array([True, False])),),
        BlockPlan("head", "float"),
    )
    return generate_c(spec, plan=plan)


def test_the_count_is_exact_the_harness_cancels_and_samples_add_up():
    """One sample counted alone equals it counted three times over (the harness's start-up,
    I/O and loop are out), and two samples' total is the sum of their own counts."""
    sources = _tiny()
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 256, (2, 1, sources.sensor_bytes), dtype=np.uint8)
    one = count_instructions(sources, a, core="cortex-m4f")
    three = count_instructions(sources, np.repeat(a, 3, axis=0), core="cortex-m4f")
    assert one.total > 500 and three.total == 3 * one.total
    assert three.per_sample == one.per_sample and one.board == "mps2-an386"
    other = count_instructions(sources, b, core="cortex-m4f")
    both = count_instructions(sources, np.concatenate([a, b]), core="cortex-m4f")
    assert both.total == one.total + other.total


def test_cortex_m0plus_code_runs_longer_in_software_float():
    sources = _tiny()
    sensors = np.random.default_rng(1).integers(0, 256, (1, sources.sensor_bytes), np.uint8)
    m4 = count_instructions(sources, sensors, core="cortex-m4f")
    m0 = count_instructions(sources, sensors, core="cortex-m0plus")
    assert m0.board == "mps2-an385" and m0.per_sample > 1.5 * m4.per_sample


@pytest.mark.slow
def test_the_committed_count_is_reproduced_exactly():
    """The manifest's measured figure is a deterministic function of the code and the
    first test samples: counting again gives the same number."""
    from ddnn_tf.data import load_dataset

    manifest = mf.load_manifest(DEFAULT)
    entry = manifest["tiers"]["device_0"]["c"]["instructions"]["cortex-m4f"]
    test = load_dataset("fmnist6").test
    sources, origin = tier_sources(manifest, "device_0")
    assert origin == "model directory"
    sensors = sensor_messages(manifest, "device_0", test.x[0][: entry["samples"]])
    count = count_instructions(sources, sensors, core="cortex-m4f")
    assert round(count.per_sample, 1) == entry["measured"]


def test_entries_and_bad_arguments():
    sources = _tiny()
    assert instruction_entry(None, 123.44) == {"modelled": 123.4}
    with pytest.raises(ConfigError, match="core: expected one of cortex-m4f, cortex-m0plus"):
        count_instructions(sources, np.zeros((1, sources.sensor_bytes), np.uint8), core="m7")
    with pytest.raises(ConfigError, match=r"sensors: expected \(N >= 1, 20\) sensor bytes"):
        count_instructions(sources, np.zeros((1, 7), np.uint8))
