"""A Keras tier model as a batch-1 named-signature function, and as TFLite bytes.

The same tier function is exported (:func:`convert_tier`) and run as the Keras reference
(:func:`keras_tier_outputs`), so parity compares a binary with exactly what it was
converted from.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np

from ddnn_tf.core.checks import check_views
from ddnn_tf.core.graph import Tier, feed_tier
from ddnn_tf.core.topology import Topology
from ddnn_tf.core.vocab import SIGNATURE_KEY, TARGETS
from ddnn_tf.errors import ConfigError
from ddnn_tf.keras.compat import keras, tf
from ddnn_tf.keras.model import DDNN, build_export_device, run_tiers
from ddnn_tf.runtime.flatbuffer import tflite_info

__all__ = [
    "LCE_INT8",
    "REPRESENTATIVE_SAMPLES",
    "calibration_feeds",
    "convert_tier",
    "export_models",
    "is_quantized",
    "keras_tier_outputs",
    "tier_memory",
    "tier_models",
]

#: Training samples used to calibrate ``--quantize int8``.
REPRESENTATIVE_SAMPLES = 256
LCE_INT8 = (
    "quantize int8 needs `target` portable: larq-compute-engine's converter has no "
    "post-training calibration (it quantises only models trained with fake-quantisation "
    "nodes). Received `target` lce or both."
)


# ------------------------------------------------------------------- tier functions
def tier_models(ddnn: DDNN, plan: Tier) -> list[keras.Model]:
    """The Keras tier models a tier binary is made of (all of them for a composed cloud)."""
    if plan.composed:
        return list(ddnn.tiers.values())
    return [ddnn.tiers[plan.name]]


def export_models(ddnn: DDNN, plan: Tier) -> list[keras.Model]:
    """The Keras models a tier binary is converted from: :func:`tier_models`, except a
    quantised vector device's tier in its export form
    (:func:`ddnn_tf.keras.model.build_export_device`)."""
    if plan.role == "device" and not plan.composed:
        return [build_export_device(ddnn, plan.device, head=ddnn.topology.has_local)]
    return tier_models(ddnn, plan)


def _tier_function(ddnn: DDNN, plan: Tier, models: list[keras.Model] | None = None):
    """A function ``{input name: tensor} -> {output name: tensor}`` computing the tier
    (with ``models``, from those: :func:`export_models`)."""
    if plan.composed:
        topology = ddnn.topology
        n = topology.num_devices

        def composed(inputs):
            xs = [inputs[f"input_{i}"] for i in range(n)]
            return {"logits": run_tiers(topology, ddnn.tiers, xs, inputs["presence"])["cloud"]}

        return composed

    model = models[0] if models else ddnn.tiers[plan.name]
    names = list(model.input_names)
    expected = [p.name for p in plan.inputs]
    if sorted(names) != sorted(expected):  # a bug, not a user error
        raise RuntimeError(f"Tier {plan.name}: Keras inputs {names} != planned inputs {expected}.")
    keep = [p.name for p in plan.outputs]

    def tier(inputs):
        args = [inputs[name] for name in names]
        out = model(args if len(args) > 1 else args[0], training=False)
        return {name: out[name] for name in keep}

    return tier


def keras_tier_outputs(
    ddnn: DDNN,
    plans: list[Tier],
    xs: list[np.ndarray],
    presence: np.ndarray | None = None,
    *,
    batch_size: int = 2048,
) -> dict[str, dict[str, np.ndarray]]:
    """Run the Keras tier models bottom to top, each on the outputs of the ones below.

    Args:
        ddnn: the trained model.
        plans: the tiers (from :func:`~ddnn_tf.core.graph.tier_graph`), bottom to top.
        xs: one ``(N, ...)`` array per device, as the device tiers read them (a quantised
            sensor's centred codes: ``ddnn.sensor_values(data.x)``).
        presence: optional ``(N, D)`` 0/1 device presence (default: all present).
        batch_size: samples per Keras call.

    Returns:
        ``{tier name: {output name: (N, ...) array}}``.
    """
    topology = ddnn.topology
    xs = check_views(topology.input_shapes, xs)
    if presence is None:
        presence = np.ones((len(xs[0]), topology.num_devices), np.float32)
    outputs: dict[str, dict[str, np.ndarray]] = {}
    for plan in plans:
        fn = tf.function(_tier_function(ddnn, plan), autograph=False, reduce_retracing=True)
        feed = feed_tier(plan, xs, presence, outputs)
        chunks = []
        for start in range(0, len(xs[0]), batch_size):
            part = {
                k: tf.constant(v[start : start + batch_size], tf.float32) for k, v in feed.items()
            }
            chunks.append({k: v.numpy() for k, v in fn(part).items()})
        outputs[plan.name] = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    return outputs


def calibration_feeds(
    ddnn: DDNN, plans: list[Tier], xs: list[np.ndarray]
) -> dict[str, dict[str, np.ndarray]]:
    """The representative data of ``--quantize int8``: every tier's inputs when the Keras
    model runs on the first :data:`REPRESENTATIVE_SAMPLES` of ``xs``, all devices present.

    Returns:
        ``{tier name: {input name: (N, ...) array}}``.
    """
    topology = ddnn.topology
    xs = check_views(topology.input_shapes, [x[:REPRESENTATIVE_SAMPLES] for x in xs])
    xs = ddnn.sensor_values(xs)
    outs = keras_tier_outputs(ddnn, plans, xs)
    presence = np.ones((len(xs[0]), topology.num_devices), np.float32)
    return {p.name: feed_tier(p, xs, presence, outs) for p in plans}


# ------------------------------------------------------------------------- export
def _save_serving(ddnn: DDNN, plan: Tier, directory: Path) -> None:
    """Save the tier as a SavedModel whose one signature has fixed batch-1 named tensors."""
    models = export_models(ddnn, plan)
    fn = _tier_function(ddnn, plan, models)
    order = [p.name for p in plan.inputs]
    specs = [tf.TensorSpec((1, *p.shape), tf.float32, name=p.name) for p in plan.inputs]

    @tf.function(input_signature=specs, autograph=False)
    def serve(*args):
        return fn(dict(zip(order, args)))

    holder = tf.Module()
    # Track the variables only: saving the Keras models themselves would trace and
    # serialise all their call functions too, for nothing.
    holder.variables_ = [v for m in models for v in m.variables]
    tf.saved_model.save(
        holder, str(directory), signatures={SIGNATURE_KEY: serve.get_concrete_function()}
    )


def _representative(feed: dict[str, np.ndarray]):
    n = len(next(iter(feed.values())))

    def gen():
        for k in range(n):
            yield {name: a[k : k + 1].astype(np.float32) for name, a in feed.items()}

    return gen


def is_quantized(plan: Tier, quantize: str, topology: Topology) -> bool:
    """Whether ``--quantize`` applies to this tier.

    The aggregators stay float32, and so do the devices of a topology whose summaries are
    integer codes (``summary_bits``): int8 arithmetic would turn the rounded exit head's
    integers into values the ``int4`` wire encoding cannot carry.
    """
    if quantize != "int8" or plan.role in ("local_aggregator", "edge_aggregator"):
        return False
    return not (plan.role == "device" and topology.summary_bits)


def convert_tier(
    ddnn: DDNN,
    plan: Tier,
    *,
    targets: tuple[str, ...] = TARGETS,
    quantize: str = "none",
    representative: dict[str, np.ndarray] | None = None,
) -> dict[str, bytes]:
    """Convert one tier to a TFLite flatbuffer per target.

    Args:
        ddnn: the trained model.
        plan: the tier (from :func:`~ddnn_tf.core.graph.tier_graph`).
        targets: ``portable`` and/or ``lce``.
        quantize: ``none`` or ``int8`` (portable only; aggregators stay float).
        representative: for ``int8``, calibration inputs ``{input name: (N, ...) array}``.

    Returns:
        ``{target: flatbuffer bytes}``.

    Raises:
        ValueError: ``int8`` without representative data, or with the lce target.
    """
    if quantize == "int8" and "lce" in targets:
        raise ConfigError(LCE_INT8, argument="quantize")
    int8 = is_quantized(plan, quantize, ddnn.topology)
    if int8 and representative is None:
        raise ConfigError(
            f"quantize int8: tier {plan.name} needs representative inputs.", argument="quantize"
        )
    out: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="ddnn_convert_") as tmp:
        _save_serving(ddnn, plan, Path(tmp))
        for target in targets:
            if target == "lce":
                import larq_compute_engine as lce

                out[target] = bytes(lce.convert_saved_model(tmp))
                continue
            converter = tf.lite.TFLiteConverter.from_saved_model(
                tmp, signature_keys=[SIGNATURE_KEY]
            )
            if int8:
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
                converter.representative_dataset = _representative(representative)
            with warnings.catch_warnings():
                # Calibration runs TF's own (deprecated) interpreter: not ours to fix.
                warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
                out[target] = bytes(converter.convert())
    for target, data in out.items():
        _check_binary(plan, target, data)
    return out


# ------------------------------------------------------------------------- checks
def _check_binary(plan: Tier, target: str, data: bytes) -> None:
    """The converted file must expose exactly the planned names with batch-1 shapes."""
    info = tflite_info(data)
    for kind, ports in (("input_order", plan.inputs), ("output_order", plan.outputs)):
        if sorted(info[kind]) != sorted(p.name for p in ports):
            raise RuntimeError(
                f"{plan.name} ({target}): the converter produced tensors {info[kind]}, "
                f"expected {[p.name for p in ports]}."
            )
        for p in ports:
            if info["shape_signatures"][p.name] != [1, *p.shape]:
                raise RuntimeError(
                    f"{plan.name} ({target}): tensor {p.name} has shape signature "
                    f"{info['shape_signatures'][p.name]}, expected {[1, *p.shape]}."
                )


def tier_memory(models: list[keras.Model]) -> dict[str, int]:
    """Parameter memory of tier models: binary weights in bits/8, the rest as float32.

    Batch norm counts as 2 floats per channel (folded into a scale and an offset, as on a
    device); a binary layer's bias (none in the paper's blocks) counts as float.

    Args:
        models: the Keras tier models (see :func:`tier_models`).

    Returns:
        ``{"binary_weight_bytes", "float_param_bytes"}``.
    """
    binary = floats = 0
    for model in models:
        for layer in model.layers:
            if getattr(layer, "kernel_quantizer", None) is not None:
                binary += int(np.prod(layer.kernel.shape))
                floats += sum(int(np.prod(w.shape)) for w in layer.weights if w is not layer.kernel)
            elif isinstance(layer, keras.layers.BatchNormalization):
                floats += 2 * int(layer.moving_mean.shape[-1])
            else:
                floats += sum(int(np.prod(w.shape)) for w in layer.weights)
    return {"binary_weight_bytes": (binary + 7) // 8, "float_param_bytes": 4 * floats}
