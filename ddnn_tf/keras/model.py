"""Per-tier Keras models of a DDNN, composed into one multi-input multi-output model.

Compose, don't cut: every tier (device i, local aggregator, edge j, edge aggregator,
cloud) is its own functional Keras model; the training model calls them. The trained
tier models *are* the split that gets converted and deployed.

Tier interfaces (input and output names are the wire names used everywhere):

* ``device_{i}``: ``image`` (or ``vector``) -> ``{"summary": (|C|,) logits, "features": +-1 map}``
  (``summary`` only when the hierarchy has a local exit).
* ``local_aggregator``: ``summary_0 .. summary_{n-1}``, ``presence`` (n,) -> ``{"logits"}``.
* ``edge_{j}``: ``features_{d}`` for its devices, ``presence`` -> ``{"summary", "features"}``
  (``summary`` only with an edge exit).
* ``edge_aggregator``: ``summary_0 .. summary_{m-1}``, ``presence`` (m,) -> ``{"logits"}``.
* ``cloud``: ``features_{k}`` for each device (or edge), ``presence`` -> ``{"logits"}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ddnn_tf.core.graph import (
    CLOUD,
    EDGE_AGGREGATOR,
    LOCAL_AGGREGATOR,
    device_tier,
    edge_tier,
    tier_graph,
)
from ddnn_tf.core.sensors import SensorQuantizer, sensor_values
from ddnn_tf.core.topology import Topology, spatially_compatible
from ddnn_tf.errors import ConfigError
from ddnn_tf.keras.aggregation import Aggregate, DevicePresence, GroupPresence
from ddnn_tf.keras.blocks import (
    POOL,
    GridTile,
    SensorInput,
    SummaryQuantizer,
    ThresholdDense,
    binary_sign,
    convp_block,
    exit_head,
    fc_block,
    float_conv_block,
)
from ddnn_tf.keras.compat import keras, tf

__all__ = [
    "DDNN",
    "EXACT_SUMS",
    "build_ddnn",
    "build_export_device",
    "build_individual",
    "build_tiers",
    "build_upper",
    "run_tiers",
    "threshold_weights",
]


@dataclass
class DDNN:
    """The tier models of a DDNN and the composed training model.

    Attributes:
        topology: the hierarchy it was built from.
        tiers: tier name -> Keras model (the tiers of
            :func:`ddnn_tf.core.graph.tier_graph` with ``composed=False``).
        model: the composed model, one input per device (``input_{i}``), one output
            per exit (``local``, ``edge``, ``cloud``), each a logits tensor.
    """

    topology: Topology
    tiers: dict[str, keras.Model] = field(repr=False)
    model: keras.Model = field(repr=False)
    sensors: list = field(default_factory=list, repr=False)

    @property
    def devices(self) -> list[keras.Model]:
        return [self.tiers[device_tier(i)] for i in range(self.topology.num_devices)]

    def sensor_quantizers(self) -> list[SensorQuantizer | None]:
        """Each device's sensor quantiser (None for every device when there is none)."""
        if not self.sensors:
            return [None] * self.topology.num_devices
        return [layer.quantizer() for layer in self.sensors]

    def sensor_values(self, xs) -> list[np.ndarray]:
        """The devices' inputs as their tiers read them (centred codes when quantised):
        what a device tier model, or its binary, is fed."""
        return sensor_values(self.sensor_quantizers(), list(xs))

    @property
    def eval_model(self) -> keras.Model:
        """The same tiers with an explicit ``presence`` input (N, D) for failed devices."""
        if getattr(self, "_eval_model", None) is None:
            t = self.topology
            inputs = [keras.Input(s, name=f"input_{i}") for i, s in enumerate(t.input_shapes)]
            presence = keras.Input((t.num_devices,), name="presence")
            exits = run_tiers(t, self.tiers, _sensed(self.sensors, inputs), presence)
            self._eval_model = keras.Model([*inputs, presence], exits, name="ddnn_eval")
        return self._eval_model


def _device_input_name(topology: Topology, i: int) -> str:
    return "image" if topology.is_image(i) else "vector"


def _sensed(sensors: list, inputs: list) -> list:
    """The device inputs through their sensor quantisers (when the model has them)."""
    return [s(x) for s, x in zip(sensors, inputs)] if sensors else list(inputs)


def _sensors(topology: Topology) -> list:
    bits = topology.sensor_bits
    return (
        [SensorInput(bits, name=f"sensor_{i}") for i in range(topology.num_devices)] if bits else []
    )


def _build_device(
    topology: Topology, i: int, *, head: bool, threshold_first: bool = False
) -> keras.Model:
    """Device ``i``'s tier; ``threshold_first``: its first FC block as a
    :class:`ThresholdDense` and a sign (the export form of a quantised vector device)."""
    name = f"device{i}"
    inp = keras.Input(topology.input_shapes[i], name=_device_input_name(topology, i))
    x = inp
    for k in range(topology.device_conv_layers):
        if topology.is_image(i):
            x = convp_block(
                x,
                topology.device_filters,
                pool_stride=POOL["device_stride"],
                name=f"{name}_convp{k + 1}",
                real_input=k == 0,
            )
        elif k == 0 and threshold_first:
            x = ThresholdDense(topology.device_units, name=f"{name}_fc1_threshold")(x)
            x = binary_sign(x, f"{name}_fc1_sign")
        else:
            x = fc_block(x, topology.device_units, name=f"{name}_fc{k + 1}", real_input=k == 0)
    outputs = {"features": x}
    if head:
        summary = exit_head(x, topology.num_classes, name=f"{name}_exit")
        if topology.summary_bits:
            summary = SummaryQuantizer(topology.summary_bits, name=f"{name}_quant")(summary)
        outputs["summary"] = summary
    return keras.Model(inp, outputs, name=device_tier(i))


def _build_summary_aggregator(topology: Topology, n: int, scheme: str, name: str) -> keras.Model:
    c = topology.num_classes
    summaries = [keras.Input((c,), name=f"summary_{k}") for k in range(n)]
    presence = keras.Input((n,), name="presence")
    if scheme == "mlp":
        # A learned combination at the gateway: the masked summaries and the mask itself
        # (so that a missing device reads as missing, not as a summary of zeros).
        x = Aggregate("concat", name=f"{name}_concat")([*summaries, presence])
        x = keras.layers.Concatenate(name=f"{name}_with_presence")([x, presence])
        x = keras.layers.Dense(topology.local_units, activation="relu", name=f"{name}_hidden")(x)
        x = keras.layers.Dense(c, name=f"{name}_linear")(x)
        return keras.Model([*summaries, presence], {"logits": x}, name=name)
    x = Aggregate(scheme, name=f"{name}_{scheme}")([*summaries, presence])
    if scheme == "concat":  # the paper maps the concatenation back to |C| with a linear layer
        x = keras.layers.Dense(c, name=f"{name}_linear")(x)
    return keras.Model([*summaries, presence], {"logits": x}, name=name)


def _upper_stack(topology: Topology, x, *, filters: int, layers: int, name: str):
    """Binary blocks of an edge or the cloud over an aggregated feature map."""
    for k in range(layers):
        if len(x.shape) == 4:
            x = convp_block(
                x, filters, pool_stride=POOL["upper_stride"], name=f"{name}_convp{k + 1}"
            )
        else:
            x = fc_block(x, topology.cloud_units, name=f"{name}_fc{k + 1}")
    return x


def _aggregated_features(shapes, scheme: str, name: str):
    """Inputs ``features_{k}`` + ``presence`` and the aggregated map (flattened if shapes differ)."""
    keys, shapes = zip(*shapes)
    inputs = [keras.Input(s, name=f"features_{k}") for k, s in zip(keys, shapes)]
    presence = keras.Input((len(inputs),), name="presence")
    xs = inputs
    images = spatially_compatible(shapes)
    if not images:
        xs = [
            keras.layers.Flatten(name=f"{name}_flatten{k}")(x) if len(x.shape) > 2 else x
            for k, x in zip(keys, xs)
        ]
    x = Aggregate(scheme, name=f"{name}_{scheme}")([*xs, presence])
    return inputs, presence, x


def _build_edge(topology: Topology, j: int) -> keras.Model:
    name = f"edge{j}"
    group = topology.edges[j]
    inputs, presence, x = _aggregated_features(
        [(d, topology.feature_shape(d)) for d in group], topology.edge_agg, name
    )
    x = _upper_stack(
        topology, x, filters=topology.edge_filters, layers=topology.edge_conv_layers, name=name
    )
    outputs = {"features": x}
    if topology.has_edge_exit:
        outputs["summary"] = exit_head(x, topology.num_classes, name=f"{name}_exit")
    return keras.Model([*inputs, presence], outputs, name=edge_tier(j))


def _float_cloud(topology: Topology, x):
    """The real-valued cloud: on a grid map, conv blocks (filters doubling) then one ReLU
    dense layer; on concatenated features, ``cloud_conv_layers`` ReLU dense layers."""
    if topology.device_grid:
        for k in range(topology.cloud_conv_layers):
            x = float_conv_block(x, topology.cloud_filters * 2**k, name=f"cloud_conv{k + 1}")
        hidden = 1
    else:
        hidden = topology.cloud_conv_layers
    if len(x.shape) > 2:
        x = keras.layers.Flatten(name="cloud_flatten")(x)
    for k in range(hidden):
        x = keras.layers.Dense(topology.cloud_units, activation="relu", name=f"cloud_fc{k + 1}")(x)
    return keras.layers.Dense(topology.num_classes, name="cloud_exit_dense")(x)


def _build_cloud(topology: Topology) -> keras.Model:
    ups = range(topology.num_edges) if topology.edges else range(topology.num_devices)
    shapes = [(k, topology.upstream_feature_shape(k)) for k in ups]
    if topology.device_grid:
        inputs = [keras.Input(s, name=f"features_{k}") for k, s in shapes]
        presence = keras.Input((len(inputs),), name="presence")
        x = GridTile(topology.device_grid, name="cloud_grid")([*inputs, presence])
    else:
        inputs, presence, x = _aggregated_features(shapes, topology.cloud_agg, "cloud")
    if topology.cloud_precision == "float":
        logits = _float_cloud(topology, x)
        return keras.Model([*inputs, presence], {"logits": logits}, name="cloud")
    x = _upper_stack(
        topology, x, filters=topology.cloud_filters, layers=topology.cloud_conv_layers, name="cloud"
    )
    logits = exit_head(x, topology.num_classes, name="cloud_exit")
    return keras.Model([*inputs, presence], {"logits": logits}, name=CLOUD)


def build_tiers(topology: Topology) -> dict[str, keras.Model]:
    """Build the tier models of ``topology`` (fresh weights), keyed by tier name.

    Args:
        topology: the hierarchy.

    Returns:
        ``{tier name: Keras model}`` in the order of
        ``tier_graph(topology, composed=False)``.
    """
    tiers: dict[str, keras.Model] = {}
    for i in range(topology.num_devices):
        tiers[device_tier(i)] = _build_device(topology, i, head=topology.has_local)
    if topology.has_local:
        tiers[LOCAL_AGGREGATOR] = _build_summary_aggregator(
            topology, topology.num_devices, topology.local_agg, LOCAL_AGGREGATOR
        )
    for j in range(topology.num_edges):
        tiers[edge_tier(j)] = _build_edge(topology, j)
    if topology.has_edge_exit:
        tiers[EDGE_AGGREGATOR] = _build_summary_aggregator(
            topology, topology.num_edges, topology.local_agg, EDGE_AGGREGATOR
        )
    tiers[CLOUD] = _build_cloud(topology)
    return tiers


def run_tiers(topology: Topology, tiers, device_inputs, presence, *, device_outputs=None):
    """Chain the tier models as the tier graph wires them; returns ``{exit: logits}``.

    Works on symbolic Keras tensors (to compose the training model) and on concrete
    tensors (to evaluate with some devices failed).

    Args:
        topology: the hierarchy.
        tiers: ``{tier name: Keras model}`` from :func:`build_tiers`.
        device_inputs: one tensor per device (unused with ``device_outputs``).
        presence: ``(batch, D)`` device presence.
        device_outputs: optional, one ``{"features": ..., "summary": ...}`` per device:
            the device tiers' outputs, given instead of computed (the upper tiers alone).

    Returns:
        ``{exit name: logits tensor}``, bottom to top.
    """
    graph = tier_graph(topology, composed=False)
    identity = [[d] for d in range(topology.num_devices)]
    masks: dict[tuple, object] = {}
    outputs: dict[str, dict] = {}
    exits = {}
    if device_outputs is not None:
        outputs.update({device_tier(i): dict(o) for i, o in enumerate(device_outputs)})
    for tier in graph:
        if tier.name in outputs:
            continue
        feed = []
        for port in tier.inputs:
            if port.role == "sensor":
                feed.append(device_inputs[port.device])
            elif port.role == "presence":
                groups = [list(c.devices) for c in port.columns]
                if groups == identity:
                    feed.append(presence)
                else:
                    key = tuple(map(tuple, groups))
                    if key not in masks:
                        masks[key] = GroupPresence(groups, name=f"{tier.name}_presence")(presence)
                    feed.append(masks[key])
            else:
                feed.append(outputs[port.source.tier][port.source.output])
        outputs[tier.name] = tiers[tier.name](feed if len(feed) > 1 else feed[0])
        if tier.exit is not None:
            exits[tier.exit] = outputs[tier.name]["logits"]
    return exits


def build_ddnn(topology: Topology) -> DDNN:
    """Build a DDNN: its tier models and the composed training model.

    Args:
        topology: the hierarchy.

    Returns:
        A :class:`DDNN`; ``ddnn.model`` takes one input per device (named
        ``input_{i}``) and returns a dict of logits keyed by exit name.

    Example:
        >>> import numpy as np
        >>> ddnn = build_ddnn(Topology(input_shapes=[(10, 14, 1)] * 6, num_classes=10))
        >>> out = ddnn.model([np.zeros((2, 10, 14, 1), np.float32)] * 6)
        >>> {k: tuple(v.shape) for k, v in sorted(out.items())}
        {'cloud': (2, 10), 'local': (2, 10)}
    """
    tiers = build_tiers(topology)
    sensors = _sensors(topology)
    inputs = [keras.Input(s, name=f"input_{i}") for i, s in enumerate(topology.input_shapes)]
    presence = DevicePresence(topology.num_devices, topology.device_dropout, name="presence")(
        inputs[0]
    )
    exits = run_tiers(topology, tiers, _sensed(sensors, inputs), presence)
    # Identity layers give the outputs readable names in Keras logs: ``local_exit`` ...
    outputs = {
        name: keras.layers.Activation("linear", name=f"{name}_exit")(exits[name])
        for name in topology.exits
    }
    model = keras.Model(inputs, outputs, name="ddnn")
    return DDNN(topology=topology, tiers=tiers, model=model, sensors=sensors)


def build_upper(ddnn: DDNN) -> keras.Model:
    """The tiers above the devices, fed the devices' outputs, with training-time dropout.

    Inputs ``summary_{i}`` (with a local exit) then ``features_{i}``, one per device; one
    output per exit. The weights are the DDNN's own: training this model trains its local
    aggregator, edges and cloud on what frozen devices send.
    """
    t = ddnn.topology
    n = t.num_devices
    summaries = (
        [keras.Input((t.num_classes,), name=f"summary_{i}") for i in range(n)]
        if t.has_local
        else []
    )
    features = [keras.Input(t.feature_shape(i), name=f"features_{i}") for i in range(n)]
    reference = summaries[0] if summaries else features[0]
    presence = DevicePresence(n, t.device_dropout, name="presence")(reference)
    device_outputs = [
        {"features": features[i], **({"summary": summaries[i]} if summaries else {})}
        for i in range(n)
    ]
    exits = run_tiers(t, ddnn.tiers, None, presence, device_outputs=device_outputs)
    outputs = {
        name: keras.layers.Activation("linear", name=f"{name}_exit")(exits[name])
        for name in t.exits
    }
    return keras.Model([*summaries, *features], outputs, name="ddnn_upper")


def build_individual(topology: Topology, i: int) -> keras.Model:
    """The paper's individual baseline of device ``i``: one device section with its own exit."""
    device = _build_device(topology.replace(exits=("local", "cloud")), i, head=True)
    inp = keras.Input(topology.input_shapes[i], name=f"input_{i}")
    x = SensorInput(topology.sensor_bits, name=f"sensor_{i}")(inp) if topology.sensor_bits else inp
    return keras.Model(inp, device(x)["summary"], name=f"individual_{i}")


def build_export_device(ddnn: DDNN, i: int, *, head: bool) -> keras.Model:
    """Device ``i``'s tier for conversion, the trained weights in it.

    The tier itself, except on a quantised vector device: there the first FC block
    (binary dense + batch norm + sign) becomes the :class:`ThresholdDense` + sign that makes
    the same decision on every integer sum the codes can reach, found by running the
    trained batch norm itself on the sums around its step, so the Keras tier and the
    binary agree sample for sample.

    A device with so many inputs of such wide codes that the sums could leave float32's
    exact integers (``inputs * max |code| >= 2**22``) keeps its trained form: it converts,
    but its C target is refused (naming the layer) and TensorFlow Lite Micro remains.
    """
    t = ddnn.topology
    trained = ddnn.tiers[device_tier(i)]
    quantizer = ddnn.sensor_quantizers()[i]
    if not t.sensor_bits or t.is_image(i):
        return trained
    if int(np.prod(t.input_shapes[i])) * quantizer.max_centred >= EXACT_SUMS:
        return trained
    export = _build_device(t, i, head=head, threshold_first=True)
    for layer in export.layers:
        if layer.weights and not isinstance(layer, ThresholdDense):
            layer.set_weights(trained.get_layer(layer.name).get_weights())
    name = f"device{i}_fc1"
    kernel, bias = threshold_weights(
        trained.get_layer(f"{name}_dense"),
        trained.get_layer(f"{name}_bn"),
        quantizer,
        where=f"{device_tier(i)} {name}",
    )
    export.get_layer(f"{name}_threshold").set_weights([kernel, bias])
    return export


#: Sums of codes (plus a half-integer bias) below this stay exact in float32 in any order.
EXACT_SUMS = 2**22


def threshold_weights(dense, bn, quantizer: SensorQuantizer, *, where: str):
    """``(kernel, bias)`` of the :class:`ThresholdDense` equal to ``sign(bn(dense(codes)))``.

    Args:
        dense: the trained binary dense (its latent kernel's signs are the weights).
        bn: its batch norm, run here in inference mode on candidate sums.
        quantizer: the sensor quantiser (it bounds the sums the codes can reach).
        where: the layer's name in errors.

    Returns:
        float32 ``(K, U)`` weights of +-1 and ``(U,)`` half-integer biases: unit ``u`` is
        +1 exactly when the integer sum ``S`` over its weights reaches its threshold.

    Raises:
        ConfigError: ``K * max |code|`` reaches :data:`EXACT_SUMS`, past which float32
            sums of codes and a half-integer bias are no longer exact.
    """
    signs = np.where(dense.get_weights()[0] >= 0, 1.0, -1.0).astype(np.float32)
    k, units = signs.shape
    reach = k * quantizer.max_centred
    if reach >= EXACT_SUMS:
        raise ConfigError(
            f"{where}: {k} inputs of codes up to {quantizer.max_centred} reach sums of "
            f"{reach}, past float32's exact integers (2**22 with the bias); quantise the "
            "sensor to int8 or give the device fewer inputs."
        )
    gamma, beta, mean, var = (np.asarray(w, np.float64) for w in bn.get_weights())
    root = mean - beta * np.sqrt(var + bn.epsilon) / np.where(gamma == 0, 1.0, gamma)
    centre = np.clip(np.rint(np.where(gamma == 0, 0.0, root)), -reach, reach)
    offsets = np.arange(-8, 9)
    candidates = np.clip(centre[None, :] + offsets[:, None], -reach, reach).astype(np.float32)
    decided = bn(tf.constant(candidates), training=False).numpy() >= 0  # (17, U)
    bias = np.empty(units, np.float32)
    for u in range(units):
        s, d = candidates[:, u].astype(np.int64), decided[:, u]
        up = gamma[u] >= 0
        steps = np.diff(d.astype(np.int8)) if up else -np.diff(d.astype(np.int8))
        if np.any(steps < 0) or np.count_nonzero(steps) > 1:
            raise ConfigError(f"{where}: unit {u}'s batch norm is not monotone in the sum.")
        if gamma[u] == 0 or d.all() or not d.any():
            always = bool(d[0])  # the same decision on every reachable sum
            if gamma[u] != 0 and not (s[0] == -reach or s[-1] == reach):  # step in range
                raise ConfigError(f"{where}: unit {u}'s step lies outside the sums tried.")
            bias[u] = (reach + 0.5) if always else -(reach + 0.5)
        elif up:
            bias[u] = 0.5 - s[np.argmax(d)]  # S + bias >= 0  <=>  S >= first S decided +1
        else:
            signs[:, u] = -signs[:, u]  # -S + bias >= 0  <=>  S <= last S decided +1
            bias[u] = 0.5 + s[len(d) - 1 - np.argmax(d[::-1])]
    return signs, bias
