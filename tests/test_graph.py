"""The tier graph: one description of the tiers, their ports and who feeds whom."""

import re

import numpy as np
import pytest
from conftest import ROOT, modules_loaded_by

from ddnn_tf.core.graph import LINKS, SPLITS, device_tier, edge_tier, feed_tier, tier_graph
from ddnn_tf.core.topology import Topology

IMG = (10, 14, 1)
TOPOLOGIES = {
    "a": Topology(input_shapes=[IMG], num_classes=3, exits=("cloud",)),
    "c": Topology(input_shapes=[IMG] * 6, num_classes=3),
    "f": Topology(
        input_shapes=[IMG] * 6,
        num_classes=3,
        edges=[[0, 1, 2], [3, 4, 5]],
        exits=("local", "edge", "cloud"),
    ),
    "mixed": Topology(
        input_shapes=[IMG, (8,)], num_classes=3, edges=[[1], [0]], exits=("edge", "cloud")
    ),
}


def _cases():
    for name, t in TOPOLOGIES.items():
        for split in SPLITS:
            if all(e in t.exits for e in split):
                yield pytest.param(t, split, id=f"{name}-{','.join(split)}")


@pytest.mark.parametrize("topology, split", list(_cases()))
def test_senders_come_first_and_links_are_consistent(topology, split):
    g = tier_graph(topology, split)
    seen = set()
    for tier in g:
        for source in tier.sources:
            assert source.link in LINKS
            if source.output == "raw":
                assert tier.composed and source.tier == device_tier(source.column)
                continue
            assert source.tier in seen, f"{tier.name} reads {source.tier} before it ran"
            sender = g[source.tier]
            assert source.output in sender.output_names
            if source.link.startswith("device"):
                assert sender.device == source.column
            else:
                assert sender.edge == source.column
        for port in tier.inputs:
            if port.role == "presence":
                assert port.shape == (len(port.columns),)
                for column in port.columns:
                    assert set(column.devices) <= set(tier.devices)
        seen.add(tier.name)
    assert [t.exit for t in g if t.exit is not None] == list(split)
    assert g.names[-1] == "cloud"


def test_edges_count_as_present_when_any_device_is():
    g = tier_graph(TOPOLOGIES["f"])
    cloud = g["cloud"]
    assert [(s.tier, s.link, s.column) for s in cloud.sources] == [
        (edge_tier(0), "edge_to_cloud", 0),
        (edge_tier(1), "edge_to_cloud", 1),
    ]
    presence = np.array([[1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 1, 0]], bool)
    feed = feed_tier(cloud, [], presence, {edge_tier(j): {"features": np.zeros(2)} for j in (0, 1)})
    np.testing.assert_array_equal(feed["presence"], [[1, 0], [0, 1]])
    alive = g.alive(presence)
    assert alive[edge_tier(1)].tolist() == [False, True]
    assert alive[device_tier(4)].tolist() == [False, True]


def test_manifest_fields_name_sources_and_columns():
    fields = {t.name: t.manifest_fields() for t in tier_graph(TOPOLOGIES["c"])}
    agg = fields["local_aggregator"]
    assert agg["sources"][0] == {
        "input": "summary_0",
        "tier": "device_0",
        "output": "summary",
        "link": "device_to_local",
        "column": 0,
    }
    presence = agg["inputs"][-1]
    assert presence["columns"] == [device_tier(i) for i in range(6)]
    assert presence["column_devices"] == [[i] for i in range(6)]
    assert fields["device_2"]["devices"] == [2]


def test_no_module_recovers_structure_from_tier_names():
    """Tier names are made in graph.py only, and never split apart anywhere."""
    offenders = []
    for path in sorted((ROOT / "ddnn_tf").rglob("*.py")):
        text = path.read_text()
        for pattern in (r'f"(device|edge)_\{', r"rsplit\(\"_\"", r"\.split\(\"_\"\)"):
            if path.name != "graph.py" and re.search(pattern, text):
                offenders.append(f"{path.relative_to(ROOT)}: {pattern}")
    assert not offenders, offenders


def test_graph_and_evaluation_do_not_import_tensorflow():
    loaded, _ = modules_loaded_by(
        "import ddnn_tf.core.graph, ddnn_tf.core.evaluation, ddnn_tf.runtime"
    )
    assert not {"tensorflow", "tf_keras", "keras", "larq"} & loaded
