import json

import pytest

from ddnn_tf.core.topology import Topology

IMG = (10, 14, 1)

# The six hierarchies of the paper's Figure 2.
FIGURE_2 = {
    "a_cloud_only": dict(input_shapes=[IMG], exits=("cloud",)),
    "b_device_cloud": dict(input_shapes=[IMG]),
    "c_devices_cloud": dict(input_shapes=[IMG] * 6),
    "d_device_edge_cloud": dict(input_shapes=[IMG], edges=[[0]], exits=("local", "edge", "cloud")),
    "e_devices_edge_cloud": dict(
        input_shapes=[IMG] * 6, edges=[list(range(6))], exits=("local", "edge", "cloud")
    ),
    "f_edges": dict(
        input_shapes=[IMG] * 6, edges=[[0, 1, 2], [3, 4, 5]], exits=("local", "edge", "cloud")
    ),
}


@pytest.mark.parametrize("name", sorted(FIGURE_2))
def test_figure2_configurations_are_valid_and_round_trip(name):
    t = Topology(num_classes=3, **FIGURE_2[name])
    again = Topology.from_json(t.to_json())
    assert again == t
    assert json.loads(t.to_json())["input_shapes"][0] == [10, 14, 1]


def test_defaults_are_the_papers_mp_cc():
    t = Topology(input_shapes=[IMG] * 6, num_classes=10)
    assert (t.local_agg, t.cloud_agg, t.device_filters) == ("max", "concat", 4)
    assert t.exits == ("local", "cloud")
    assert t.feature_shape(0) == (5, 7, 4)  # 10x14 pooled with stride 2


def test_two_dimensional_image_gets_a_channel():
    assert Topology(input_shapes=[(8, 8)], num_classes=2).input_shapes == ((8, 8, 1),)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(input_shapes=[]), "at least one end device"),
        (
            dict(input_shapes=[IMG] * 3, edges=[[0, 1], [1, 2]], exits=("local", "edge", "cloud")),
            "two edges",
        ),
        (
            dict(input_shapes=[IMG] * 3, edges=[[0, 1]], exits=("local", "edge", "cloud")),
            "in no edge",
        ),
        (dict(input_shapes=[IMG] * 3, edges=[[0, 5]]), "devices are 0..2"),
        (
            dict(input_shapes=[IMG], local_agg="median"),
            "Unknown aggregation scheme local_agg='median'",
        ),
        (dict(input_shapes=[IMG], exits=("local", "edge", "cloud")), "has no edge"),
        (dict(input_shapes=[IMG], exits=("local",)), "last exit must be 'cloud'"),
        (dict(input_shapes=[IMG], exits=("cloud", "local")), "last exit must be 'cloud'"),
        (dict(input_shapes=[IMG], exits=("local", "fog", "cloud")), "Unknown exit"),
        (dict(input_shapes=[IMG], num_classes=1), "num_classes"),
        (dict(input_shapes=[IMG], device_filters=0), "device_filters"),
        (dict(input_shapes=[IMG, (8, 8, 1)], cloud_agg="max"), "equal feature shapes"),
        (dict(input_shapes=[(0, 3)]), "positive sizes"),
    ],
)
def test_invalid_topologies_name_the_problem(kwargs, message):
    kwargs.setdefault("num_classes", 3)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        Topology(**kwargs)


def test_from_json_rejects_unknown_keys_and_malformed_text(tmp_path):
    with pytest.raises(ValueError, match="Unknown topology key"):
        Topology.from_dict({"input_shapes": [IMG], "num_classes": 3, "filtres": 4})
    with pytest.raises(ValueError, match="^The topology is not valid JSON"):
        Topology.from_json("{not json")
    with pytest.raises(ValueError, match="nests too deeply"):
        Topology.from_json('{"a": ' * 100_000)
    with pytest.raises(FileNotFoundError, match="nope.json"):
        Topology.from_json(tmp_path / "nope.json")
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe")
    with pytest.raises(ValueError, match="binary.json is not valid JSON"):
        Topology.from_json(tmp_path / "binary.json")


def test_heterogeneous_devices_concat_cloud():
    t = Topology(input_shapes=[IMG, (20,), (8, 8, 3)], num_classes=4)
    assert t.feature_shape(1) == (t.device_units,)
    assert t.feature_shape(2) == (4, 4, 4)
    assert Topology.from_json(t.to_json()) == t
