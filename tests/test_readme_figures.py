"""The figures the README prints for `make demo` are the committed model's, measured."""

import re

import numpy as np
import pytest
from conftest import DEFAULT_MODEL, ROOT

pytestmark = pytest.mark.slow


def _demo_block() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("then evaluates it on the 10,000 test images:")
    return text[start:].split("```", 2)[1]


def test_readme_demo_figures_are_the_committed_models():
    from ddnn_tf.data import load_dataset
    from ddnn_tf.runtime import Hierarchy

    block = _demo_block()
    local = float(re.search(r"local accuracy \(all samples exit there\): ([\d.]+)", block)[1])
    cloud = float(re.search(r"cloud accuracy \(all samples exit there\): ([\d.]+)", block)[1])
    t, overall = re.search(r"overall accuracy at T \(local=([\d.]+)\): ([\d.]+)", block).groups()
    exit_pct = float(re.search(r"exits: local ([\d.]+)%", block)[1])
    sent = float(re.search(r"bytes per device per sample: ([\d.]+)", block)[1])

    h = Hierarchy(DEFAULT_MODEL)
    assert h.thresholds == {"local": float(t)}
    test = load_dataset("fmnist6").test
    staged = h.run(test.x, batch_size=512)
    assert f"{staged.accuracy(test.y):.4f}" == overall
    assert f"{100 * staged.exit_fraction()['local']:.2f}" == f"{exit_pct:.2f}"
    assert f"{staged.bytes_per_device():.1f}" == f"{sent:.1f}"
    full = h.run(test.x, batch_size=512, all_exits=True)
    for name, printed in (("local", local), ("cloud", cloud)):
        acc = float(np.mean(full.probs[name].argmax(axis=1) == test.y))
        assert acc == pytest.approx(printed, abs=2e-4), name  # Keras vs TFLite: a sample or two
