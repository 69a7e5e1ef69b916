"""The byte-cost functions: the paper's eq. (1), its generalisation, every tier-graph link."""

import numpy as np
import pytest

from ddnn_tf.core.comm import feature_nbytes, summary_nbytes
from ddnn_tf.core.cost.traffic import (
    expected_bytes_per_device,
    hierarchy_bytes,
    paper_bytes_per_device,
)
from ddnn_tf.core.exits import threshold_sweep
from ddnn_tf.core.topology import Topology

pytestmark = pytest.mark.filterwarnings("error")

# Table II of the paper: |C| = 3, f = 4 filters, o = 16 * 16 (32x32 input, pool stride 2).
# Local exit fraction -> communication per device per sample, whole bytes.
TABLE_II = [
    (0.0, 140),
    (0.0058, 139),
    (0.0175, 138),
    (0.0292, 136),
    (0.2281, 111),
    (0.6082, 62),
    (0.8304, 34),
    (1.0, 12),
]


@pytest.mark.parametrize(("local_fraction", "table_bytes"), TABLE_II)
def test_paper_bytes_match_table_ii(local_fraction, table_bytes):
    c = paper_bytes_per_device(3, 4, 16 * 16, local_fraction)
    assert round(c) == table_bytes
    assert c == pytest.approx(12 + (1 - local_fraction) * 128)


@pytest.mark.parametrize(("local_fraction", "table_bytes"), TABLE_II)
def test_expected_bytes_match_table_ii(local_fraction, table_bytes):
    c = expected_bytes_per_device(
        summary_nbytes=summary_nbytes(3, "float32"),
        feature_nbytes=feature_nbytes((16, 16, 4)),
        exit_fraction={"local": local_fraction, "cloud": 1 - local_fraction},
    )
    assert round(c) == table_bytes
    assert c == pytest.approx(paper_bytes_per_device(3, 4, 256, local_fraction), abs=1e-12)


def test_paper_formula_is_not_rounded_and_validates():
    assert paper_bytes_per_device(3, 4, 256, 0.5) == 76.0
    assert paper_bytes_per_device(3, 4, 256, 0.6082) == pytest.approx(62.1504)
    assert paper_bytes_per_device(3, 4, 256, 0.0, summary_bytes_per_class=1) == 131.0
    with pytest.raises(ValueError, match="not a percentage"):
        paper_bytes_per_device(3, 4, 256, 60.82)


def test_raw_offload_is_over_20x_the_largest_ddnn():
    raw = 32 * 32 * 3  # Sec. IV-H: a 32x32 RGB image, one byte per value
    assert raw / paper_bytes_per_device(3, 4, 256, 0.0) > 20
    # Configuration (a) expressed with the general formula: exactly the raw bytes.
    assert (
        expected_bytes_per_device(
            summary_nbytes=12, feature_nbytes=raw, exit_fraction={"cloud": 1.0}, has_local=False
        )
        == raw
    )


def test_hierarchy_bytes_charges_every_link_of_the_tier_graph():
    img = (10, 14, 1)
    raw = [140.0] * 6
    cost = hierarchy_bytes(
        Topology(input_shapes=[img] * 6, num_classes=10, exits=("cloud",)),
        {"cloud": 1.0},
        raw_bytes_per_device=raw,
    )
    assert cost == {"bytes_per_device": 140.0, "raw_bytes_per_device": 140.0, "edge_to_cloud": 0.0}
    edged = Topology(
        input_shapes=[img] * 6,
        num_classes=10,
        edges=[[0, 1, 2], [3, 4, 5]],
        exits=("local", "edge", "cloud"),
    )
    fractions = {"local": 0.5, "edge": 0.3, "cloud": 0.15, "unclassified": 0.05}
    cost = hierarchy_bytes(edged, fractions, raw_bytes_per_device=raw)
    assert cost["bytes_per_device"] == pytest.approx(40 + 0.5 * 18)
    assert cost["edge_to_cloud"] == pytest.approx(0.2 * feature_nbytes(edged.edge_feature_shape(0)))
    no_local = edged.replace(exits=("edge", "cloud"))
    cost = hierarchy_bytes(no_local, {"edge": 0.4, "cloud": 0.6}, raw_bytes_per_device=raw)
    assert cost["bytes_per_device"] == 18.0  # features every sample, no summary


def test_expected_bytes_rejects_bad_fractions():
    with pytest.raises(ValueError, match="not percentages"):
        expected_bytes_per_device(
            summary_nbytes=12, feature_nbytes=128, exit_fraction={"local": 60.82}
        )
    with pytest.raises(ValueError, match="contain 'local'"):
        expected_bytes_per_device(
            summary_nbytes=12, feature_nbytes=128, exit_fraction={"cloud": 1.0}
        )
    with pytest.raises(ValueError, match="has_local=False"):
        expected_bytes_per_device(
            summary_nbytes=12,
            feature_nbytes=128,
            exit_fraction={"local": 0.5, "cloud": 0.5},
            has_local=False,
        )
    with pytest.raises(ValueError, match="summing to at most 1"):
        expected_bytes_per_device(
            summary_nbytes=12, feature_nbytes=128, exit_fraction={"local": 0.7, "cloud": 0.7}
        )
    with pytest.raises(ValueError, match="feature_nbytes"):
        expected_bytes_per_device(
            summary_nbytes=12, feature_nbytes=-1, exit_fraction={"local": 0.5}
        )


def test_sweep_bytes_fall_as_threshold_rises():
    rng = np.random.default_rng(1)
    local = rng.dirichlet(np.ones(3), size=200)
    cloud = rng.dirichlet(np.ones(3), size=200)
    labels = rng.integers(0, 3, size=200)

    def bytes_fn(fractions):
        return expected_bytes_per_device(
            summary_nbytes=summary_nbytes(3), feature_nbytes=128, exit_fraction=fractions
        )

    rows = threshold_sweep({"local": local, "cloud": cloud}, labels, bytes_fn=bytes_fn)
    b = [r["bytes_per_device"] for r in rows]
    assert b[-1] == pytest.approx(12.0)  # T = 1: everything exits locally
    assert b[0] == pytest.approx(140.0)  # T = 0: nothing does (no exact one-hot rows)
    assert all(x >= y for x, y in zip(b, b[1:], strict=False))


def test_hierarchy_bytes_averages_over_live_edges():
    t = Topology(
        input_shapes=[(10, 14, 1)] * 4,
        num_classes=3,
        edges=[[0, 1], [2, 3]],
        exits=("local", "edge", "cloud"),
    )
    fractions = {"local": 0.5, "edge": 0.25, "cloud": 0.25}
    edge_bytes = feature_nbytes(t.edge_feature_shape(0))  # 5 x 7 x 16 bits -> 70 bytes
    raw = [140] * 4
    all_up = hierarchy_bytes(t, fractions, raw_bytes_per_device=raw)
    one_edge_down = hierarchy_bytes(t, fractions, raw_bytes_per_device=raw, failed=[1, 1, 0, 0])
    assert all_up["edge_to_cloud"] == pytest.approx(0.25 * edge_bytes)
    assert one_edge_down["edge_to_cloud"] == pytest.approx(0.25 * edge_bytes)  # the live edge
    assert all_up["bytes_per_device"] == pytest.approx(12 + 0.5 * 18)
