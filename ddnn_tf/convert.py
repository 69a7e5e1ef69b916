"""Split a trained DDNN into per-tier TFLite binaries plus a manifest.

``python -m ddnn_tf.convert runs/NAME --split local,cloud [--out tflite_models/NAME]
[--target portable|lce|both] [--quantize none|int8] [--overwrite] [--check]``

Every tier of the split becomes one binary per target, converted from the trained
tier model itself (compose, don't cut): ``device_{i}``, ``local_aggregator``,
``edge_{j}``, ``edge_aggregator``, ``cloud``. Each binary has one signature
(``serving_default``) whose inputs and outputs carry the Keras tier model's names
(``image`` -> ``summary``, ``features``; ``summary_k`` + ``presence`` -> ``logits`` ...);
consumers bind by name, never by position (TFLite reorders outputs).

Targets:

* ``portable``: TFLite builtin ops only (ai-edge-litert, Android LiteRT, LiteRT.js).
  Binary layers become float ops on +-1 values.
* ``lce``: larq-compute-engine's converter; binary convolutions become bit-packed
  ``LceBconv2d`` kernels (needs LCE's interpreter). Exit heads and FC blocks on image
  maps are whole-window binary convolutions (see ``ddnn_tf.blocks``), so they are
  bit-packed too; a binary dense layer on a *vector* (vector devices, or a cloud over
  heterogeneous devices) stays a float ``FULLY_CONNECTED`` with +-1 weights.

Both are exported with the batch dimension fixed to 1 (LiteRT.js rejects dynamic batch
dims); the Python interpreters resize it for batching.

``--quantize int8`` (portable target) is post-training full-integer quantisation of the
device, edge and cloud tiers, calibrated on training samples, with float32 inputs and
outputs kept, so the tier interfaces do not change. The aggregators stay float32: they
are a handful of element-wise ops, and the large constant that masks a failed device
out of a max would wreck an int8 calibration range. larq-compute-engine's converter has
no post-training calibration (it quantises only models trained with fake-quantisation
nodes), so ``--quantize int8 --target lce`` is refused rather than silently ignored.

Splits (the exits kept, bottom to top) and the tiers they produce:

* ``cloud``: configuration (a), raw offload: one ``cloud`` binary that runs the device
  sections (and edges) and the cloud on ``input_{i}`` raw device tensors + ``presence``.
* ``local,cloud``: devices (``summary`` + ``features``), local aggregator, cloud.
* ``edge,cloud``: devices (``features`` only), edges, edge aggregator, cloud.
* ``local,edge,cloud``: all of them.

A hierarchy with edges keeps its edge tiers in every split but ``cloud`` (without the
edge exit they output ``features`` only).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import ddnn_tf
from ddnn_tf import manifest as mf
from ddnn_tf._cli import cli
from ddnn_tf._keras import keras, tf
from ddnn_tf.checks import check_views
from ddnn_tf.comm import feature_nbytes, summary_nbytes
from ddnn_tf.exits import PAPER_THRESHOLD, search_threshold, softmax
from ddnn_tf.model import DDNN, run_tiers
from ddnn_tf.topology import Topology
from ddnn_tf.train import Run, load_run, predict_exits

__all__ = [
    "SPLITS",
    "TARGETS",
    "QUANTIZE",
    "PARITY_TOLERANCE",
    "Conversion",
    "Port",
    "TierInterpreter",
    "TierPlan",
    "check_split",
    "convert",
    "convert_run",
    "convert_tier",
    "format_parity",
    "parity",
    "plan_tiers",
    "save_conversion",
    "tflite_info",
]

#: The splits ``--split`` accepts, as exits bottom to top.
SPLITS = (("cloud",), ("local", "cloud"), ("edge", "cloud"), ("local", "edge", "cloud"))
TARGETS = mf.TARGETS
QUANTIZE = ("none", "int8")
#: Parity of a float conversion with its Keras tier: feature maps bit for bit; summaries
#: and logits within ``atol + rtol * |keras|``; argmax agreeing on ``min_argmax_agreement``
#: of the samples.
PARITY_TOLERANCE = {"atol": 1e-3, "rtol": 1e-4, "min_argmax_agreement": 0.999}
SIGNATURE_KEY = "serving_default"
#: Training samples used to calibrate ``--quantize int8``.
REPRESENTATIVE_SAMPLES = 256


# ------------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class Port:
    """One named input or output tensor of a tier.

    Attributes:
        name: the signature name (``image``, ``summary_3``, ``presence``, ``logits`` ...).
        shape: shape of one sample (without the batch dimension).
        role: ``sensor``, ``summary``, ``features``, ``presence`` or ``logits``.
        info: extra manifest fields: ``from`` (the producing tier and output), ``device``
            (a sensor's device), ``columns`` (a presence mask's tiers), ``exit``.
    """

    name: str
    shape: tuple[int, ...]
    role: str
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": [1, *self.shape],
            "dtype": "float32",
            "role": self.role,
            **self.info,
        }


@dataclass(frozen=True)
class TierPlan:
    """What one tier binary takes and gives.

    Attributes:
        name: tier name (also the file stem): ``device_0``, ``local_aggregator`` ...
        role: one of :data:`ddnn_tf.manifest.ROLES`.
        inputs / outputs: the tensors, in the Keras tier model's order.
        device / edge: index of the device or edge, where relevant.
        composed: the configuration (a) cloud, which runs the device sections too.
    """

    name: str
    role: str
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    device: int | None = None
    edge: int | None = None
    composed: bool = False


def _parse_split(split: Any) -> tuple[str, ...]:
    if isinstance(split, str):
        parts = tuple(p.strip() for p in split.split(",") if p.strip())
    elif isinstance(split, (list, tuple)):
        parts = tuple(str(p).strip() for p in split)
    else:
        parts = (repr(split),)
    if parts not in SPLITS:
        choices = " / ".join(",".join(s) for s in SPLITS)
        raise ValueError(
            f"Expected `--split` to be one of {choices}. Received --split={','.join(parts)}."
        )
    return parts


def check_split(topology: Topology, split: Any = None) -> tuple[str, ...]:
    """Parse ``split`` and check that the trained ``topology`` provides it.

    Args:
        topology: the trained hierarchy.
        split: ``"local,cloud"``, a sequence of exit names, or None for the model's exits.

    Returns:
        The exits kept, bottom to top.

    Raises:
        ValueError: an unknown split, or one asking for an exit the model does not have
            (the message says what the model has).
    """
    if split is None:
        return tuple(topology.exits)
    parts = _parse_split(split)
    missing = [e for e in parts if e not in topology.exits]
    if missing:
        edges = f"{topology.num_edges} edge(s)" if topology.edges else "no edge"
        possible = [",".join(s) for s in SPLITS if all(e in topology.exits for e in s)]
        raise ValueError(
            f"--split {','.join(parts)} needs the exit(s) {missing}, but the model has exits "
            f"{','.join(topology.exits)} and {edges}. Splits this model can provide: "
            f"{' / '.join(possible)}."
        )
    return parts


def _sensor_name(topology: Topology, i: int) -> str:
    return "image" if topology.is_image(i) else "vector"


def plan_tiers(topology: Topology, split: Any = None) -> list[TierPlan]:
    """The tiers of ``split``, bottom to top, with their named inputs and outputs.

    Args:
        topology: the trained hierarchy.
        split: as :func:`check_split`.

    Returns:
        One :class:`TierPlan` per binary to write (per target).

    Raises:
        ValueError: as :func:`check_split`.
    """
    t = topology
    split = check_split(t, split)
    c, n = t.num_classes, t.num_devices
    devices = [f"device_{i}" for i in range(n)]
    edges = [f"edge_{j}" for j in range(t.num_edges)]

    def logits(exit_name: str) -> tuple[Port, ...]:
        return (Port("logits", (c,), "logits", {"exit": exit_name}),)

    def presence(columns: list[str]) -> Port:
        return Port("presence", (len(columns),), "presence", {"columns": columns})

    def fed(name: str, shape, role: str, tier: str, output: str) -> Port:
        return Port(name, tuple(shape), role, {"from": {"tier": tier, "output": output}})

    if split == ("cloud",):
        inputs = tuple(
            Port(f"input_{i}", t.input_shapes[i], "sensor", {"device": i}) for i in range(n)
        )
        return [
            TierPlan("cloud", "cloud", (*inputs, presence(devices)), logits("cloud"), composed=True)
        ]

    plans = []
    local, edge_exit = "local" in split, "edge" in split
    for i in range(n):
        outputs = [Port("features", t.feature_shape(i), "features")]
        if local:
            outputs.append(Port("summary", (c,), "summary"))
        sensor = Port(_sensor_name(t, i), t.input_shapes[i], "sensor", {"device": i})
        plans.append(TierPlan(devices[i], "device", (sensor,), tuple(outputs), device=i))
    if local:
        inputs = tuple(
            fed(f"summary_{i}", (c,), "summary", devices[i], "summary") for i in range(n)
        )
        plans.append(
            TierPlan(
                "local_aggregator",
                "local_aggregator",
                (*inputs, presence(devices)),
                logits("local"),
            )
        )
    for j, group in enumerate(t.edges):
        inputs = tuple(
            fed(f"features_{d}", t.feature_shape(d), "features", devices[d], "features")
            for d in group
        )
        outputs = [Port("features", t.edge_feature_shape(j), "features")]
        if edge_exit:
            outputs.append(Port("summary", (c,), "summary"))
        plans.append(
            TierPlan(
                edges[j],
                "edge",
                (*inputs, presence([devices[d] for d in group])),
                tuple(outputs),
                edge=j,
            )
        )
    if edge_exit:
        inputs = tuple(
            fed(f"summary_{j}", (c,), "summary", edges[j], "summary") for j in range(t.num_edges)
        )
        plans.append(
            TierPlan(
                "edge_aggregator", "edge_aggregator", (*inputs, presence(edges)), logits("edge")
            )
        )
    senders = edges if t.edges else devices
    inputs = tuple(
        fed(f"features_{k}", t.upstream_feature_shape(k), "features", senders[k], "features")
        for k in range(len(senders))
    )
    plans.append(TierPlan("cloud", "cloud", (*inputs, presence(senders)), logits("cloud")))
    return plans


# ------------------------------------------------------------------- tier functions
def _tier_models(ddnn: DDNN, plan: TierPlan) -> list[keras.Model]:
    if plan.composed:
        return list(ddnn.tiers.values())
    return [ddnn.tiers[plan.name]]


def _tier_function(ddnn: DDNN, plan: TierPlan):
    """A function ``{input name: tensor} -> {output name: tensor}`` computing the tier."""
    if plan.composed:
        topology = ddnn.topology
        n = topology.num_devices

        def composed(inputs):
            xs = [inputs[f"input_{i}"] for i in range(n)]
            return {"logits": run_tiers(topology, ddnn.tiers, xs, inputs["presence"])["cloud"]}

        return composed

    model = ddnn.tiers[plan.name]
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


def _save_serving(ddnn: DDNN, plan: TierPlan, directory: Path) -> None:
    """Save the tier as a SavedModel whose one signature has fixed batch-1 named tensors."""
    fn = _tier_function(ddnn, plan)
    order = [p.name for p in plan.inputs]
    specs = [tf.TensorSpec((1, *p.shape), tf.float32, name=p.name) for p in plan.inputs]

    @tf.function(input_signature=specs, autograph=False)
    def serve(*args):
        return fn(dict(zip(order, args)))

    holder = tf.Module()
    # Track the variables only: saving the Keras models themselves would trace and
    # serialise all their call functions too, for nothing.
    holder.variables_ = [v for m in _tier_models(ddnn, plan) for v in m.variables]
    tf.saved_model.save(
        holder, str(directory), signatures={SIGNATURE_KEY: serve.get_concrete_function()}
    )


def _representative(feed: dict[str, np.ndarray]):
    n = len(next(iter(feed.values())))

    def gen():
        for k in range(n):
            yield {name: a[k : k + 1].astype(np.float32) for name, a in feed.items()}

    return gen


def _quantized(plan: TierPlan, quantize: str) -> bool:
    return quantize == "int8" and plan.role not in ("local_aggregator", "edge_aggregator")


def convert_tier(
    ddnn: DDNN,
    plan: TierPlan,
    *,
    targets: tuple[str, ...] = TARGETS,
    quantize: str = "none",
    representative: dict[str, np.ndarray] | None = None,
) -> dict[str, bytes]:
    """Convert one tier to a TFLite flatbuffer per target.

    Args:
        ddnn: the trained model.
        plan: the tier (from :func:`plan_tiers`).
        targets: ``portable`` and/or ``lce``.
        quantize: ``none`` or ``int8`` (portable only; aggregators stay float).
        representative: for ``int8``, calibration inputs ``{input name: (N, ...) array}``.

    Returns:
        ``{target: flatbuffer bytes}``.

    Raises:
        ValueError: ``int8`` without representative data, or with the lce target.
    """
    if quantize == "int8" and "lce" in targets:
        raise ValueError(_LCE_INT8)
    int8 = _quantized(plan, quantize)
    if int8 and representative is None:
        raise ValueError(f"--quantize int8: tier {plan.name} needs representative inputs.")
    out: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="ddnn_convert_") as tmp:
        _save_serving(ddnn, plan, Path(tmp))
        for target in targets:
            if target == "portable":
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
            else:
                import larq_compute_engine as lce

                out[target] = bytes(lce.convert_saved_model(tmp))
    for target, data in out.items():
        _check_binary(plan, target, data)
    return out


_LCE_INT8 = (
    "--quantize int8 needs --target portable: larq-compute-engine's converter has no "
    "post-training calibration (it quantises only models trained with fake-quantisation "
    "nodes). Received --target lce or both."
)


# ----------------------------------------------------------------- flatbuffer facts
def tflite_info(data: bytes) -> dict[str, Any]:
    """Names, positional order, shapes and operators of a TFLite flatbuffer.

    Reads the flatbuffer schema directly, so it works for LCE files too (which the
    standard interpreter cannot open).

    Returns:
        ``{"input_order", "output_order"}``: the ``serving_default`` signature names in
        the subgraph's positional order; ``"shape_signatures"``: name -> shape signature
        (-1 for a dynamic dimension); ``"dtypes"``: name -> numpy dtype name;
        ``"ops"``: operator name -> count.

    Raises:
        ValueError: the flatbuffer has no ``serving_default`` signature.
    """
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    sig = next(
        (s for s in model.signatureDefs or [] if s.signatureKey.decode() == SIGNATURE_KEY), None
    )
    if sig is None:
        raise ValueError(f"The flatbuffer has no {SIGNATURE_KEY!r} signature.")
    sub = model.subgraphs[sig.subgraphIndex]
    names = {t.tensorIndex: t.name.decode() for t in (*sig.inputs, *sig.outputs)}
    builtin = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    types = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    ops: Counter = Counter()
    for op in sub.operators:
        code = model.operatorCodes[op.opcodeIndex]
        if code.customCode:
            ops[code.customCode.decode()] += 1
        else:
            ops[builtin[max(code.builtinCode, code.deprecatedBuiltinCode)]] += 1
    shapes, dtypes = {}, {}
    for index, name in names.items():
        tensor = sub.tensors[index]
        sig_shape = tensor.shapeSignature if tensor.shapeSignature is not None else tensor.shape
        shapes[name] = [int(d) for d in sig_shape]
        dtypes[name] = types[tensor.type]
    return {
        "input_order": [names[i] for i in sub.inputs],
        "output_order": [names[i] for i in sub.outputs],
        "shape_signatures": shapes,
        "dtypes": dtypes,
        "ops": dict(sorted(ops.items())),
    }


def _check_binary(plan: TierPlan, target: str, data: bytes) -> None:
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


# ---------------------------------------------------------------------- memory facts
def tier_memory(models: list[keras.Model]) -> dict[str, int]:
    """Parameter memory of tier models: binary weights in bits/8, the rest as float32.

    Batch norm counts as 2 floats per channel (folded into a scale and an offset, as on a
    device); a binary layer's bias (none in the paper's blocks) counts as float.

    Returns:
        ``{"binary_weights", "binary_weight_bytes", "float_params", "float_param_bytes"}``.
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
    return {
        "binary_weights": binary,
        "binary_weight_bytes": (binary + 7) // 8,
        "float_params": floats,
        "float_param_bytes": 4 * floats,
    }


# -------------------------------------------------------------- feeding the tiers
def _presence_columns(topology: Topology, columns: list[str], presence: np.ndarray) -> np.ndarray:
    cols = []
    for name in columns:
        kind, index = name.rsplit("_", 1)
        if kind == "device":
            cols.append(presence[:, int(index)])
        else:  # an edge arrives when any of its devices did
            cols.append(presence[:, list(topology.edges[int(index)])].max(axis=1))
    return np.stack(cols, axis=1).astype(np.float32)


def _feed(
    topology: Topology,
    plan: TierPlan,
    xs: list[np.ndarray],
    presence: np.ndarray,
    outputs: dict[str, dict[str, np.ndarray]],
) -> dict[str, np.ndarray]:
    """The inputs of ``plan``: sensors, a presence mask, or lower tiers' ``outputs``."""
    feed = {}
    for port in plan.inputs:
        if port.role == "sensor":
            feed[port.name] = xs[port.info["device"]]
        elif port.role == "presence":
            feed[port.name] = _presence_columns(topology, port.info["columns"], presence)
        else:
            src = port.info["from"]
            feed[port.name] = outputs[src["tier"]][src["output"]]
    return feed


def _run_keras(fn, feed: dict[str, np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
    n = len(next(iter(feed.values())))
    chunks: list[dict[str, np.ndarray]] = []
    for start in range(0, n, batch_size):
        part = {k: tf.constant(v[start : start + batch_size], tf.float32) for k, v in feed.items()}
        chunks.append({k: v.numpy() for k, v in fn(part).items()})
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def keras_tier_outputs(
    ddnn: DDNN,
    plans: list[TierPlan],
    xs: list[np.ndarray],
    presence: np.ndarray | None = None,
    *,
    batch_size: int = 2048,
) -> dict[str, dict[str, np.ndarray]]:
    """Run the Keras tier models bottom to top, each on the outputs of the ones below.

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
        outputs[plan.name] = _run_keras(
            fn, _feed(topology, plan, xs, presence, outputs), batch_size
        )
    return outputs


# -------------------------------------------------------------------- conversion
@dataclass
class Conversion:
    """A converted model in memory: file name -> bytes, and its manifest."""

    manifest: dict[str, Any]
    files: dict[str, bytes]


def _parse_targets(target: Any) -> tuple[str, ...]:
    if isinstance(target, (list, tuple)):
        parts = tuple(str(t) for t in target)
    else:
        parts = TARGETS if str(target) == "both" else (str(target),)
    bad = [t for t in parts if t not in TARGETS]
    if bad or not parts:
        raise ValueError(
            f"Expected `--target` to be portable, lce or both. Received --target={target}."
        )
    return tuple(t for t in TARGETS if t in parts)


def _parse_quantize(quantize: Any) -> str:
    q = "none" if quantize is None or quantize is False else str(quantize)
    if q not in QUANTIZE:
        raise ValueError(
            f"Expected `--quantize` to be none or int8. Received --quantize={quantize}."
        )
    return q


def _dataset_meta(run: Run, dataset) -> dict[str, Any]:
    """Class and device names, raw sizes and input scale, from the dataset or the run dir."""
    if dataset is None and run.path is not None and (Path(run.path) / "dataset.json").is_file():
        info = json.loads((Path(run.path) / "dataset.json").read_text())
        if all(k in info for k in ("classes", "device_names", "raw_bytes_per_device")):
            return {
                "classes": list(info["classes"]),
                "device_names": list(info["device_names"]),
                "raw_bytes": list(info["raw_bytes_per_device"]),
                "scale": info.get("input_scale"),
            }
    dataset = dataset if dataset is not None else run.load_data()
    return {
        "classes": list(dataset.classes),
        "device_names": list(dataset.device_names),
        "raw_bytes": list(dataset.raw_bytes_per_device),
        "scale": dataset.input_scale,
    }


def _thresholds(run: Run, split: tuple[str, ...], dataset) -> tuple[dict[str, float], str]:
    """Thresholds of the split's early exits: the run's if it calibrated these exits,
    else calibrated now on the validation split, else the paper's T."""
    early = split[:-1]
    if not early:
        return {}, "validation" if run.thresholds else "paper"
    if tuple(run.topology.exits[:-1]) == early and all(e in run.thresholds for e in early):
        return {e: float(run.thresholds[e]) for e in early}, "validation"
    dataset = dataset if dataset is not None else run.load_data()
    if len(dataset.val):
        probs = predict_exits(run.ddnn, dataset.val.x)
        t = float(search_threshold({e: probs[e] for e in split}, dataset.val.y))
        return {e: t for e in early}, "validation"
    return {e: PAPER_THRESHOLD for e in early}, "paper"


def _wire(topology: Topology, plans: list[TierPlan], meta: dict[str, Any]) -> dict[str, Any]:
    c = topology.num_classes
    features = {}
    for plan in plans:
        for port in plan.outputs:
            if port.role == "features" and not plan.composed:
                features[plan.name] = {
                    "encoding": "bitpacked-pm1",
                    "shape": list(port.shape),
                    "bits": int(np.prod(port.shape)),
                    "nbytes": feature_nbytes(port.shape),
                    "bit_order": "c-order-msb-first",
                }
    raw_dtype = "uint8" if meta["scale"] is not None else "float32"
    return {
        "summary": {
            "encoding": "float32",
            "shape": [c],
            "nbytes": summary_nbytes(c, "float32"),
            "byte_order": "little",
        },
        "features": features,
        "raw": {
            f"device_{i}": {
                "shape": list(s),
                "dtype": raw_dtype,
                "nbytes": int(meta["raw_bytes"][i]),
            }
            for i, s in enumerate(topology.input_shapes)
        },
    }


def _inputs_spec(topology: Topology, plans: list[TierPlan], meta: dict[str, Any]) -> list[dict]:
    out = []
    for plan in plans:
        for port in plan.inputs:
            if port.role != "sensor":
                continue
            i = port.info["device"]
            out.append(
                {
                    "device": i,
                    "device_name": meta["device_names"][i],
                    "tier": plan.name,
                    "name": port.name,
                    "shape": [1, *port.shape],
                    "dtype": "float32",
                    "scale": meta["scale"],
                    "raw_dtype": "uint8" if meta["scale"] is not None else "float32",
                    "raw_bytes": int(meta["raw_bytes"][i]),
                }
            )
    return sorted(out, key=lambda e: e["device"])


def convert_run(
    run: Run | str | Path,
    *,
    split: Any = None,
    target: Any = "both",
    quantize: str = "none",
    dataset=None,
    name: str | None = None,
    progress: bool = False,
) -> Conversion:
    """Convert a trained run into per-tier TFLite binaries and their manifest (in memory).

    Args:
        run: a :class:`~ddnn_tf.train.Run` or the path of a run directory.
        split: the exits kept (see :data:`SPLITS`); None for all the model's exits.
        target: ``portable``, ``lce`` or ``both``.
        quantize: ``none`` or ``int8`` (portable only).
        dataset: the run's dataset; loaded from the run's spec when needed (int8
            calibration, thresholds of a reduced split, a run without dataset.json).
        name: the model's name in the manifest (default: the run directory's name).
        progress: show a progress bar over the tiers.

    Returns:
        A :class:`Conversion`; write it with :func:`save_conversion`.

    Raises:
        FileNotFoundError / ValueError: a missing or corrupt run, an unknown or
            unavailable split, target or quantisation.

    Example:
        >>> conv = convert_run("runs/default", split="local,cloud", target="portable")
        >>> sorted(conv.files)[:2]
        ['cloud.tflite', 'device_0.tflite']
    """
    if not isinstance(run, Run):
        run = load_run(run)
    topology = run.topology
    split = check_split(topology, split)
    targets = _parse_targets(target)
    quantize = _parse_quantize(quantize)
    if quantize == "int8" and "lce" in targets:
        raise ValueError(_LCE_INT8)
    plans = plan_tiers(topology, split)
    meta = _dataset_meta(run, dataset)
    if len(meta["classes"]) != topology.num_classes:
        raise ValueError(
            f"The run's dataset has {len(meta['classes'])} classes, its topology "
            f"{topology.num_classes}; the run directory is inconsistent."
        )
    calibration: dict[str, dict[str, np.ndarray]] = {}
    if quantize == "int8":
        dataset = dataset if dataset is not None else run.load_data()
        xs = [x[:REPRESENTATIVE_SAMPLES] for x in dataset.train.x]
        outs = keras_tier_outputs(run.ddnn, plans, xs)
        presence = np.ones((len(xs[0]), topology.num_devices), np.float32)
        xs = check_views(topology.input_shapes, xs)
        calibration = {p.name: _feed(topology, p, xs, presence, outs) for p in plans}

    files: dict[str, bytes] = {}
    tiers: dict[str, Any] = {}
    iterator = plans
    if progress:
        from tqdm import tqdm

        iterator = tqdm(plans, desc="converting tiers", unit="tier", file=sys.stderr)
    for plan in iterator:
        binaries = convert_tier(
            run.ddnn,
            plan,
            targets=targets,
            quantize=quantize,
            representative=calibration.get(plan.name),
        )
        entry: dict[str, Any] = {"role": plan.role}
        if plan.device is not None:
            entry["device"] = plan.device
        if plan.edge is not None:
            entry["edge"] = plan.edge
        entry["files"] = {}
        for tgt, data in binaries.items():
            filename = mf.tier_filename(plan.name, tgt)
            info = tflite_info(data)
            files[filename] = data
            entry["files"][tgt] = mf.file_entry(
                filename,
                data,
                input_order=info["input_order"],
                output_order=info["output_order"],
                ops=info["ops"],
            )
        entry["inputs"] = [p.to_dict() for p in plan.inputs]
        entry["outputs"] = [p.to_dict() for p in plan.outputs]
        memory = tier_memory(_tier_models(run.ddnn, plan))
        entry["memory"] = {
            "binary_weight_bytes": memory["binary_weight_bytes"],
            "float_param_bytes": memory["float_param_bytes"],
            "tflite_bytes": {tgt: len(data) for tgt, data in binaries.items()},
        }
        entry["quantized"] = _quantized(plan, quantize)
        tiers[plan.name] = entry

    thresholds, source = _thresholds(run, split, dataset)
    aggregation = {
        "local": topology.local_agg,
        "edge": topology.edge_agg,
        "cloud": topology.cloud_agg,
    }
    if "edge" in split:
        aggregation["edge_exit"] = (
            topology.local_agg
        )  # the edge aggregator pools like the local one
    manifest = {
        "format": mf.FORMAT,
        "format_version": mf.FORMAT_VERSION,
        "name": name or (Path(run.path).name if run.path is not None else "ddnn"),
        "generator": {"tool": "ddnn_tf.convert", "version": ddnn_tf.__version__},
        "split": list(split),
        "topology": topology.to_dict(),
        "dataset": dict(run.dataset_spec),
        "classes": meta["classes"],
        "device_names": meta["device_names"],
        "inputs": _inputs_spec(topology, plans, meta),
        "aggregation": aggregation,
        "thresholds": thresholds,
        "thresholds_source": source,
        "wire": _wire(topology, plans, meta),
        "targets": list(targets),
        "quantize": quantize,
        "shapes_include_batch": True,
        "tiers": tiers,
    }
    mf.validate_manifest(manifest, check_files=False)
    return Conversion(manifest=manifest, files=files)


def save_conversion(conversion: Conversion, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write a conversion to directory ``out`` atomically (temporary dir, then rename).

    Args:
        conversion: from :func:`convert_run`.
        out: the directory to create.
        overwrite: replace an existing converted model directory.

    Returns:
        ``out``.

    Raises:
        ValueError: ``out`` exists and ``overwrite`` is not set, or ``out`` exists and is
            not a converted model directory (nothing is deleted then).
    """
    out = Path(out)
    if out.exists():
        if not overwrite:
            raise ValueError(
                f"Output directory {out} already exists; pass --overwrite to replace it."
            )
        if not out.is_dir() or (any(out.iterdir()) and not (out / mf.MANIFEST_FILE).is_file()):
            raise ValueError(
                f"{out} exists and is not a converted model directory (no {mf.MANIFEST_FILE}); "
                f"refusing to replace it. Choose another --out."
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for filename, data in conversion.files.items():
            (tmp / filename).write_bytes(data)
        mf.write_manifest(conversion.manifest, tmp)
        tmp.chmod(0o755)  # mkdtemp's 0700 would make the model private to this user
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def convert(
    run: Run | str | Path,
    split: Any = None,
    *,
    out: str | Path | None = None,
    target: Any = "both",
    quantize: str = "none",
    overwrite: bool = False,
    dataset=None,
    name: str | None = None,
    progress: bool = False,
) -> Path:
    """Convert a run and write ``out`` (default ``tflite_models/<run dir name>``).

    Checks ``out`` before the (slow) conversion, and writes it atomically after.

    Returns:
        The output directory.

    Raises:
        FileNotFoundError / ValueError: as :func:`convert_run` and :func:`save_conversion`.
    """
    if out is None:
        if isinstance(run, Run):
            if run.path is None:
                raise ValueError("convert: give `out` for a run that has no directory.")
            out = Path("tflite_models") / Path(run.path).name
        else:
            out = Path("tflite_models") / Path(run).name
    out = Path(out)
    if out.exists() and not overwrite:
        raise ValueError(f"Output directory {out} already exists; pass --overwrite to replace it.")
    conversion = convert_run(
        run,
        split=split,
        target=target,
        quantize=quantize,
        dataset=dataset,
        name=name or out.name,
        progress=progress,
    )
    return save_conversion(conversion, out, overwrite=overwrite)


# ------------------------------------------------------------------------ interpreters
class TierInterpreter:
    """Run one tier binary, binding inputs and outputs by name.

    ``portable`` files run in ai-edge-litert's interpreter through their signature (the
    batch dimension is resized to the inputs'); ``lce`` files run in
    larq-compute-engine's interpreter, which has no names, so the manifest's
    ``input_order``/``output_order`` (read from the flatbuffer's signature) bind them.

    Args:
        path: the ``.tflite`` file.
        target: ``portable`` or ``lce``.
        input_order / output_order: positional names (required for ``lce``).
        num_threads: interpreter threads.

    Example:
        >>> tier = TierInterpreter.from_manifest(load_manifest(d), "device_0", "lce")
        >>> tier(image=x)["features"].shape
        (N, 5, 7, 4)
    """

    def __init__(
        self,
        path: str | Path,
        target: str,
        *,
        input_order: list[str] | None = None,
        output_order: list[str] | None = None,
        num_threads: int = 1,
    ):
        data = Path(path).read_bytes()
        self.target = target
        if target == "portable":
            from ai_edge_litert.interpreter import Interpreter

            self._runner = Interpreter(
                model_content=data, num_threads=num_threads
            ).get_signature_runner(SIGNATURE_KEY)
            self.input_names = list(self._runner.get_input_details())
            self.output_names = list(self._runner.get_output_details())
        elif target == "lce":
            from larq_compute_engine.tflite.python.interpreter import Interpreter as LceInterpreter

            info = tflite_info(data) if input_order is None or output_order is None else None
            self.input_names = list(input_order or info["input_order"])
            self.output_names = list(output_order or info["output_order"])
            self._lce = LceInterpreter(data, num_threads=num_threads)
        else:
            raise ValueError(f"Expected a target in {TARGETS}. Received target={target!r}.")

    @classmethod
    def from_manifest(
        cls, manifest: mf.Manifest, tier: str, target: str, **kwargs
    ) -> TierInterpreter:
        entry = manifest["tiers"][tier]["files"][target]
        return cls(
            manifest.path(tier, target),
            target,
            input_order=entry.get("input_order"),
            output_order=entry.get("output_order"),
            **kwargs,
        )

    def __call__(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Run a batch: named ``(N, ...)`` float32 arrays in, named arrays out."""
        if sorted(inputs) != sorted(self.input_names):
            raise ValueError(
                f"Expected inputs {sorted(self.input_names)}. Received {sorted(inputs)}."
            )
        arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in inputs.items()}
        if self.target == "portable":
            return {k: np.asarray(v) for k, v in self._runner(**arrays).items()}
        outs = self._lce.predict([arrays[n] for n in self.input_names])
        if len(self.output_names) == 1:
            outs = [outs]
        return dict(zip(self.output_names, outs))


# ---------------------------------------------------------------------------- parity
def _compare(port: Port, got: np.ndarray, ref: np.ndarray) -> dict[str, Any]:
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        raise ValueError(f"{port.name}: TFLite shape {got.shape} != Keras shape {ref.shape}.")
    n = len(ref)
    if port.role == "features":
        flips = int(np.count_nonzero((got > 0) != (ref > 0)))
        binary = bool(np.all(np.abs(got) == 1.0))
        return {
            "n": n,
            "bits": int(ref.size),
            "bits_differ": flips,
            "identical": flips == 0 and binary,
        }
    diff = np.abs(got - ref)
    allowed = PARITY_TOLERANCE["atol"] + PARITY_TOLERANCE["rtol"] * np.abs(ref)
    mismatch = int(np.count_nonzero(got.argmax(-1) != ref.argmax(-1)))
    return {
        "n": n,
        "max_abs_diff": float(diff.max()) if diff.size else 0.0,
        "within_tolerance": bool(np.all(diff <= allowed)),
        "argmax_mismatches": mismatch,
        "argmax_agreement": 1.0 - mismatch / max(n, 1),
    }


def _port_ok(result: dict[str, Any]) -> bool:
    if "identical" in result:
        return result["identical"]
    return (
        result["within_tolerance"]
        and result["argmax_agreement"] >= PARITY_TOLERANCE["min_argmax_agreement"]
    )


def parity(
    run: Run | str | Path,
    out_dir: str | Path,
    dataset=None,
    *,
    split: str = "test",
    limit: int | None = None,
    presence: np.ndarray | None = None,
) -> dict[str, Any]:
    """Compare every converted tier with its Keras tier model, and the exits end to end.

    Per tier and target, the binary gets the same inputs as the Keras tier (the Keras
    outputs of the tiers below), so each tier is judged on its own: feature maps must be
    identical bit for bit, summaries and logits within :data:`PARITY_TOLERANCE`, with the
    same argmax on at least 99.9% of samples. End to end, the binaries are chained
    (each on the binaries' outputs below) and every exit's accuracy is compared with
    Keras: the accuracy cost of a conversion (``int8`` in particular).

    Args:
        run: the run (or its directory) the model was converted from.
        out_dir: the converted model directory.
        dataset: the data (default: the run's dataset, reloaded from its spec).
        split: ``test``, ``val`` or ``train``.
        limit: use the first ``limit`` samples only.
        presence: optional ``(N, D)`` 0/1 device presence (default: all present).

    Returns:
        ``{"n", "split", "quantize", "tolerance", "tiers": {tier: {target: {output:
        stats}}}, "accuracy": {"keras": {exit: acc}, target: {exit: acc}}, "ok"}``;
        ``ok`` is whether every float tier meets the parity criteria (int8 tiers are
        reported, not judged).

    Raises:
        FileNotFoundError / ValueError: a missing run or model, or a model converted
            from another topology.
    """
    if not isinstance(run, Run):
        run = load_run(run)
    manifest = mf.load_manifest(out_dir)
    topology = run.topology
    if manifest["topology"] != topology.to_dict():
        raise ValueError(f"{out_dir} was converted from another model than run {run.path}.")
    plans = plan_tiers(topology, manifest["split"])
    dataset = dataset if dataset is not None else run.load_data()
    data = getattr(dataset, split)
    if limit is not None:
        data = data.subset(slice(0, int(limit)))
    xs = check_views(topology.input_shapes, data.x, where=f"{split} split")
    n = len(data.y)
    if presence is None:
        presence = np.ones((n, topology.num_devices), np.float32)
    presence = np.broadcast_to(np.asarray(presence, np.float32), (n, topology.num_devices))
    ref = keras_tier_outputs(run.ddnn, plans, xs, presence)

    def accuracies(outs) -> dict[str, float]:
        acc = {}
        for plan in plans:
            for port in plan.outputs:
                if port.role == "logits":
                    pred = softmax(outs[plan.name][port.name].astype(np.float64)).argmax(-1)
                    acc[port.info["exit"]] = float((pred == data.y).mean())
        return acc

    report: dict[str, Any] = {
        "n": n,
        "split": split,
        "quantize": manifest.get("quantize", "none"),
        "tolerance": dict(PARITY_TOLERANCE),
        "tiers": {},
        "accuracy": {"keras": accuracies(ref)},
    }
    ok = True
    for target in manifest["targets"]:
        chained: dict[str, dict[str, np.ndarray]] = {}
        for plan in plans:
            tier = TierInterpreter.from_manifest(manifest, plan.name, target)
            got = tier(**_feed(topology, plan, xs, presence, ref))
            stats = {p.name: _compare(p, got[p.name], ref[plan.name][p.name]) for p in plan.outputs}
            judged = not manifest["tiers"][plan.name].get("quantized", False)
            for s in stats.values():
                s["ok"] = _port_ok(s) if judged else None  # int8 tiers: reported, not judged
                ok = ok and s["ok"] is not False
            report["tiers"].setdefault(plan.name, {})[target] = stats
            chained[plan.name] = tier(**_feed(topology, plan, xs, presence, chained))
        report["accuracy"][target] = accuracies(chained)
    report["ok"] = ok
    return report


def format_parity(report: dict[str, Any]) -> str:
    """A readable table of a :func:`parity` report."""
    lines = [
        f"parity on {report['n']} {report['split']} samples (quantize={report['quantize']}; "
        f"logits/summaries: |diff| <= {report['tolerance']['atol']} + "
        f"{report['tolerance']['rtol']}*|keras|, argmax agreement >= "
        f"{report['tolerance']['min_argmax_agreement']:.1%}; features bit for bit)",
        f"{'tier':<18}{'target':<10}{'output':<10}{'result':<48}ok",
    ]
    for tier, by_target in report["tiers"].items():
        for target, outputs in by_target.items():
            for name, s in outputs.items():
                if "identical" in s:
                    text = f"{s['bits_differ']} of {s['bits']} bits differ"
                else:
                    text = (
                        f"max|diff| {s['max_abs_diff']:.2e}, argmax mismatches "
                        f"{s['argmax_mismatches']}/{s['n']}"
                    )
                verdict = {True: "yes", False: "NO", None: "n/a (int8)"}[s["ok"]]
                lines.append(f"{tier:<18}{target:<10}{name:<10}{text:<48}{verdict}")
    lines.append("exit accuracy (binaries chained end to end):")
    for who, accs in report["accuracy"].items():
        lines.append(f"  {who:<9}" + "  ".join(f"{e} {a:.4f}" for e, a in accs.items()))
    lines.append(f"parity {'OK' if report['ok'] else 'FAILED'}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- CLI
def _summary_table(out: Path) -> str:
    manifest = mf.load_manifest(out)
    lines = [f"wrote {out} (split {','.join(manifest['split'])}, quantize {manifest['quantize']})"]
    lines.append(f"{'tier':<18}{'target':<10}{'file':<30}{'bytes':>8}")
    for tier, entry in manifest["tiers"].items():
        for target, f in entry["files"].items():
            lines.append(f"{tier:<18}{target:<10}{f['file']:<30}{f['size_bytes']:>8}")
    return "\n".join(lines)


def main(
    run: str,
    split=None,
    out: str | None = None,
    target="both",
    quantize="none",
    overwrite: bool = False,
    check: bool = False,
    check_only: bool = False,
    limit: int | None = None,
    json: bool = False,  # noqa: A002  (the conventional flag name)
) -> None:
    """Convert a trained run into per-tier TFLite binaries plus manifest.json.

    Args:
        run: the run directory (``runs/NAME``).
        split: exits kept, bottom to top: cloud / local,cloud / edge,cloud /
            local,edge,cloud (default: all the model's exits).
        out: output directory (default ``tflite_models/NAME``).
        target: portable, lce or both.
        quantize: none or int8 (portable target).
        overwrite: replace an existing output directory.
        check: after converting, compare every tier with Keras on the test split
            (exit status 1 if a float tier misses the parity criteria).
        check_only: only run that comparison on an existing output directory.
        limit: use only the first ``limit`` test samples for the check.
        json: print machine-readable JSON instead of tables.
    """
    import json as _json

    loaded = load_run(run)
    out_path = Path(out) if out is not None else Path("tflite_models") / Path(run).name
    if not check_only:
        convert(
            loaded,
            split,
            out=out_path,
            target=target,
            quantize=quantize,
            overwrite=overwrite,
            progress=not json,
        )
        if not json:
            print(_summary_table(out_path))
    if check or check_only:
        report = parity(loaded, out_path, limit=limit)
        print(_json.dumps(report, indent=2) if json else format_parity(report))
        if not report["ok"]:
            sys.exit(1)
    elif json:
        print(_json.dumps(dict(mf.load_manifest(out_path)), indent=2))


if __name__ == "__main__":
    cli(main)
