import itertools

import numpy as np
import pytest
from test_topology import FIGURE_2

from ddnn_tf.core.graph import tier_graph
from ddnn_tf.core.topology import Topology
from ddnn_tf.keras.aggregation import Aggregate
from ddnn_tf.keras.compat import keras, tf
from ddnn_tf.keras.model import build_ddnn, build_individual

IMG = (10, 14, 1)
SCHEMES = ("max", "avg", "concat")


def _inputs(t: Topology, n: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [rng.random((n, *s), dtype=np.float32) for s in t.input_shapes]


@pytest.mark.parametrize("name", sorted(FIGURE_2))
def test_every_figure2_hierarchy_builds_and_runs(name):
    t = Topology(num_classes=3, **FIGURE_2[name])
    ddnn = build_ddnn(t)
    out = ddnn.model(_inputs(t))
    assert list(out) == list(t.exits)
    for logits in out.values():
        assert logits.shape == (3, 3) and logits.dtype == tf.float32
    assert list(ddnn.tiers) == tier_graph(t, composed=False).names


def test_tier_interfaces_shapes_and_dtypes():
    t = Topology(
        input_shapes=[IMG] * 6,
        num_classes=10,
        edges=[[0, 1, 2], [3, 4, 5]],
        exits=("local", "edge", "cloud"),
    )
    tiers = build_ddnn(t).tiers
    dev = tiers["device_0"]
    assert [i.name for i in dev.inputs] == ["image"]
    assert dev.output_shape == {"features": (None, 5, 7, 4), "summary": (None, 10)}
    agg = tiers["local_aggregator"]
    assert [i.name for i in agg.inputs] == [f"summary_{k}" for k in range(6)] + ["presence"]
    assert agg.output_shape == {"logits": (None, 10)}
    edge = tiers["edge_1"]
    assert [i.name for i in edge.inputs] == ["features_3", "features_4", "features_5", "presence"]
    assert edge.output_shape == {"features": (None, 5, 7, 16), "summary": (None, 10)}
    cloud = tiers["cloud"]
    assert [i.name for i in cloud.inputs] == ["features_0", "features_1", "presence"]
    assert cloud.output_shape == {"logits": (None, 10)}
    for model in tiers.values():
        assert all(x.dtype == tf.float32 for x in model.inputs)


@pytest.mark.parametrize("local_agg, cloud_agg", list(itertools.product(SCHEMES, SCHEMES)))
def test_all_nine_aggregation_combinations_train_a_step(local_agg, cloud_agg):
    t = Topology(input_shapes=[IMG] * 3, num_classes=3, local_agg=local_agg, cloud_agg=cloud_agg)
    ddnn = build_ddnn(t)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    ddnn.model.compile(optimizer="adam", loss={e: loss for e in t.exits})
    xs, y = _inputs(t, 16), np.arange(16) % 3
    before = [w.copy() for w in ddnn.model.get_weights()]
    hist = ddnn.model.fit(xs, {e: y for e in t.exits}, epochs=1, batch_size=16, verbose=0)
    assert np.isfinite(hist.history["loss"][0])
    changed = [not np.array_equal(a, b) for a, b in zip(before, ddnn.model.get_weights())]
    assert sum(changed) > len(changed) // 2


def test_device_weights_and_activations_are_binary_at_inference():
    t = Topology(input_shapes=[IMG] * 2, num_classes=3)
    ddnn = build_ddnn(t)
    device = ddnn.tiers["device_0"]
    quantized = [layer for layer in device.layers if getattr(layer, "kernel_quantizer", None)]
    assert len(quantized) == 2  # the ConvP conv and the exit's binary dense
    for layer in quantized:
        q = layer.kernel_quantizer(tf.convert_to_tensor(layer.kernel)).numpy()
        assert set(np.unique(q)) <= {-1.0, 1.0}
    feats = device(_inputs(t, 8)[0], training=False)["features"].numpy()
    assert set(np.unique(feats)) <= {-1.0, 1.0}


def test_vector_and_heterogeneous_devices():
    t = Topology(
        input_shapes=[IMG, (20,), (8, 8, 3)],
        num_classes=4,
        edges=[[0, 1], [2]],
        exits=("local", "edge", "cloud"),
    )
    ddnn = build_ddnn(t)
    out = ddnn.model(_inputs(t))
    assert {k: tuple(v.shape) for k, v in out.items()} == {e: (3, 4) for e in t.exits}
    assert ddnn.tiers["device_1"].output_shape["features"] == (None, t.device_units)


def test_aggregate_uses_only_present_inputs():
    a = tf.constant([[1.0, 5.0]])
    b = tf.constant([[3.0, 2.0]])
    only_b = tf.constant([[0.0, 1.0]])
    both = tf.constant([[1.0, 1.0]])
    assert Aggregate("max")([a, b, only_b]).numpy().tolist() == [[3.0, 2.0]]
    assert Aggregate("max")([a, b, both]).numpy().tolist() == [[3.0, 5.0]]
    assert Aggregate("avg")([a, b, only_b]).numpy().tolist() == [[3.0, 2.0]]
    assert Aggregate("avg")([a, b, both]).numpy().tolist() == [[2.0, 3.5]]
    assert Aggregate("concat")([a, b, only_b]).numpy().tolist() == [[0.0, 0.0, 3.0, 2.0]]
    with pytest.raises(ValueError, match="Unknown aggregation scheme"):
        Aggregate("sum")


def test_mlp_local_aggregator_reads_the_presence_mask_and_ignores_missing_summaries():
    t = Topology(input_shapes=[IMG] * 3, num_classes=4, local_agg="mlp", local_units=8)
    agg = build_ddnn(t).tiers["local_aggregator"]
    assert [i.name for i in agg.inputs] == ["summary_0", "summary_1", "summary_2", "presence"]
    assert agg.output_shape == {"logits": (None, 4)}
    assert agg.get_layer("local_aggregator_hidden").units == 8
    rng = np.random.default_rng(0)
    s = [rng.normal(size=(5, 4)).astype(np.float32) for _ in range(3)]
    no_1 = np.array([[1, 0, 1]] * 5, np.float32)
    out = agg([*s, no_1])["logits"].numpy()
    other = agg([s[0], 100 * s[1], s[2], no_1])["logits"].numpy()
    np.testing.assert_array_equal(out, other)  # a failed device's summary is never read
    full = agg([*s, np.ones((5, 3), np.float32)])["logits"].numpy()
    assert not np.allclose(out, full)  # ... and its absence is


def test_mlp_local_aggregator_is_validated():
    with pytest.raises(ValueError, match="local_agg='sum'.*mlp"):
        Topology(input_shapes=[IMG] * 2, num_classes=3, local_agg="sum")
    with pytest.raises(ValueError, match="cloud_agg='mlp'"):
        Topology(input_shapes=[IMG] * 2, num_classes=3, cloud_agg="mlp")
    with pytest.raises(ValueError, match="local_units must be a positive integer"):
        Topology(input_shapes=[IMG] * 2, num_classes=3, local_agg="mlp", local_units=0)


def test_upper_model_shares_the_weights_of_the_tiers_above_the_devices():
    from ddnn_tf.keras.model import build_upper

    t = Topology(input_shapes=[IMG] * 3, num_classes=3, local_agg="mlp", local_units=8)
    ddnn = build_ddnn(t)
    upper = build_upper(ddnn)
    assert [i.name for i in upper.inputs] == [f"summary_{i}" for i in range(3)] + [
        f"features_{i}" for i in range(3)
    ]
    xs = _inputs(t, 4)
    outs = [ddnn.devices[i](xs[i]) for i in range(3)]
    got = upper([*(o["summary"] for o in outs), *(o["features"] for o in outs)])
    want = ddnn.eval_model([*xs, np.ones((4, 3), np.float32)])
    for e in t.exits:
        np.testing.assert_allclose(got[e].numpy(), want[e].numpy(), rtol=1e-5, atol=1e-5)
    device_weights = {id(w) for m in ddnn.devices for w in m.weights}
    assert not device_weights & {id(w) for w in upper.weights}


def test_presence_dropout_only_while_training():
    t = Topology(input_shapes=[IMG] * 4, num_classes=3, device_dropout=0.5)
    ddnn = build_ddnn(t)
    presence_layer = ddnn.model.get_layer("presence")
    x = tf.zeros((256, *IMG))
    assert presence_layer(x, training=False).numpy().min() == 1.0
    drawn = presence_layer(x, training=True).numpy()
    assert 0.3 < drawn.mean() < 0.8  # about half dropped
    assert drawn.sum(axis=1).min() >= 1  # never every device of a sample


def test_individual_model_is_one_device_section_with_an_exit():
    t = Topology(input_shapes=[IMG] * 2, num_classes=3, exits=("cloud",))
    model = build_individual(t, 1)
    assert model.output_shape == (None, 3)
    assert model(_inputs(t)[1]).shape == (3, 3)


# -------------------------------------------------- real-valued sensors, quantised
def _quantised(shape=(1,), units=7, bits=8):
    t = Topology(input_shapes=[shape] * 2, num_classes=3, device_units=units, sensor_bits=bits)
    ddnn = build_ddnn(t)
    rng = np.random.default_rng(0)
    for layer in ddnn.sensors:
        layer.fit(rng.normal(0.0, 50.0, (200, *shape)).astype(np.float32))
    return ddnn


def test_the_sensor_layer_computes_the_numpy_codes():
    """Keras trains on the very codes the runtime, the device and the phone compute."""
    ddnn = _quantised(shape=(4,), bits=16)
    q = ddnn.sensor_quantizers()[0]
    rng = np.random.default_rng(1)
    x = (rng.normal(0.0, 80.0, (3000, 4)) * [1, 10, 0.1, 1]).astype(np.float32)
    half = (np.arange(-50, 50) + 0.5)[:, None] * np.asarray(q.scale, np.float32)[None, :]
    x = np.concatenate([x, half.astype(np.float32)])
    got = ddnn.sensors[0](x).numpy()
    assert np.array_equal(got, q.centred(x))
    assert np.array_equal(ddnn.sensor_values([x, x])[0], got)
    assert q.bits == 16 and q.channels == 4


def test_the_exported_first_block_decides_as_the_trained_one_on_every_sum():
    """One input per unit: the trained dense's sum S takes every code, so the trained
    binary dense + batch norm + sign and the exported ThresholdDense + sign are compared
    on every sum the device can meet (batch norms of both signs, and a zero scale)."""
    from ddnn_tf.keras.compat import keras
    from ddnn_tf.keras.model import build_export_device

    ddnn = _quantised()
    trained = ddnn.tiers["device_0"]
    bn = trained.get_layer("device0_fc1_bn")
    g, b, mu, var = bn.get_weights()
    rng = np.random.default_rng(2)
    g = rng.uniform(0.5, 2.0, g.shape) * rng.choice([-1.0, 1.0], g.shape)
    g[0] = 0.0  # a unit that always decides the same
    mu = rng.uniform(-200, 200, mu.shape)
    mu[1] = 17.0  # a step exactly on an integer sum (beta 0 there)
    b[1] = 0.0
    var[1] = np.float32(1.0) - np.float32(bn.epsilon)
    bn.set_weights([g, b, mu, var])
    export = build_export_device(ddnn, 0, head=True)
    q = ddnn.sensor_quantizers()[0]
    codes = np.arange(-q.max_centred, q.max_centred + 1, dtype=np.float32)[:, None]

    def sign_of(model):
        return keras.Model(model.input, model.get_layer("device0_fc1_sign").output)(codes).numpy()

    assert np.array_equal(sign_of(trained), sign_of(export))
    assert np.array_equal(trained(codes)["summary"].numpy(), export(codes)["summary"].numpy())
    kernel, bias = export.get_layer("device0_fc1_threshold").get_weights()
    assert set(np.unique(kernel)) <= {-1.0, 1.0} and np.all(np.abs(2 * bias) % 2 == 1)
