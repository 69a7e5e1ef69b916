"""Read a portable device-tier binary into a :class:`~ddnn_tf.mcu.spec.TierSpec`.

The C target is generated from the portable binary itself, not from the Keras model:
the binary is the reference the C code must equal byte for byte, and its float32
constants (batch norm folded by the TFLite converter) are not what numpy computes from
the Keras weights. Every operator is interpreted symbolically, in the flatbuffer's
(topological) order, against the forms the device blocks of ``ddnn_tf.keras.blocks`` convert
to::

    ConvP   CONV_2D(+-1, no bias) [PADV2 1.0 before, for a binary input] -> MAX_POOL_2D
            -> MUL -> ADD -> SIGN -> ADD(0.1) -> SIGN        (Larq's ste_sign: 0 -> +1)
    FC      FULLY_CONNECTED(+-s, bias; batch norm folded) -> SIGN -> ADD(0.1) -> SIGN
    head    CONV_2D over the whole map, or FULLY_CONNECTED (+-s, bias) [-> RESHAPE]
            [-> ADD(0.5) -> FLOOR -> MINIMUM(7) -> MAXIMUM(-8) -> SUB -> ADD: int4]
    input quantizer of a block on a +-1 map: ADD(0.1) -> SIGN (the identity there)

Anything else is refused with a one-line error naming the operator, so a tier the C
target cannot express is never translated approximately. Numpy and ai-edge-litert's
flatbuffer schema only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ddnn_tf.core.vocab import SIGNATURE_KEY
from ddnn_tf.errors import ConfigError, FormatError
from ddnn_tf.mcu.spec import ConvBlock, DenseBlock, Head, Sensor, TierSpec
from ddnn_tf.runtime.flatbuffer import (
    buffer_array,
    check_operators,
    dtype_name,
    op_name,
    read_model,
    schema,
    signature,
    signature_names,
)

__all__ = ["lower_tier"]


@dataclass
class _Value:
    """The symbolic value of one tensor."""

    kind: str
    shape: tuple[int, ...]
    info: dict[str, Any]


class _Refused(ConfigError):
    pass


class _Lowering:
    def __init__(self, name: str, data: bytes, scale: float | None, quantizer):
        self.name = name
        self.scale = scale
        self.quantizer = quantizer
        self.model = read_model(data)
        try:
            self.sub = self.model.subgraphs[signature(self.model).subgraphIndex]
        except FormatError:
            self.refuse(f"the binary has no {SIGNATURE_KEY!r} signature")
        try:
            check_operators(self.model)
        except FormatError as err:
            self.refuse(str(err).rstrip("."))
        self.sig_names = signature_names(self.model)
        self.values: dict[int, _Value] = {}
        self.blocks: list = []

    # ------------------------------------------------------------------ tensors
    def refuse(self, why: str):
        raise _Refused(f"{self.name}: the C target cannot express this tier: {why}.")

    def shape(self, index: int) -> tuple[int, ...]:
        return tuple(int(d) for d in self.sub.tensors[index].shape)

    def const(self, index: int) -> np.ndarray | None:
        tensor = self.sub.tensors[index]
        try:
            values = buffer_array(self.model, tensor)
        except FormatError as err:  # a float16 constant, say, or one its data do not fill
            self.refuse(str(err).rstrip("."))
        if values is not None and values.dtype not in (np.float32, np.int32):
            self.refuse(f"a constant of tensor type {dtype_name(tensor)} (float32 expected)")
        return values

    def scalar(self, index: int) -> float | None:
        c = self.const(index)
        if c is None or c.size != 1:
            return None
        return float(c.reshape(-1)[0])

    def opname(self, op) -> str:
        return op_name(self.model, op)

    def value(self, index: int, op: str) -> _Value:
        if index not in self.values:
            self.refuse(f"{op} reads a tensor this lowering does not know")
        return self.values[index]

    @staticmethod
    def no_activation(options, op: str, lowering: _Lowering) -> None:
        if options is not None and getattr(options, "fusedActivationFunction", 0) != 0:
            lowering.refuse(f"{op} has a fused activation")

    # ------------------------------------------------------------------ operators
    def run(self) -> TierSpec:
        inputs = list(self.sub.inputs)
        if len(inputs) != 1:
            self.refuse(f"{len(inputs)} inputs (one sensor expected)")
        shape = self.shape(inputs[0])[1:]
        if self.sub.tensors[inputs[0]].type != schema.TensorType.FLOAT32:
            self.refuse("a non-float32 sensor input (quantized binaries are not supported)")
        self.values[inputs[0]] = _Value("sensor", shape, {})
        for op in self.sub.operators:
            name = self.opname(op)
            handler = getattr(self, f"op_{name.lower()}", None)
            if handler is None:
                self.refuse(f"operator {name}")
            out = handler(op, list(op.inputs), name)
            outs = list(op.outputs)
            if len(outs) != 1:
                self.refuse(f"{name} with {len(outs)} outputs")
            self.values[outs[0]] = out
        return self.finish(shape)

    def op_conv_2d(self, op, ins, name):
        x = self.value(ins[0], name)
        w = self.const(ins[1])
        b = self.const(ins[2]) if len(ins) > 2 and ins[2] >= 0 else None
        o = op.builtinOptions
        self.no_activation(o, name, self)
        if (o.strideW, o.strideH, o.dilationWFactor, o.dilationHFactor) != (1, 1, 1, 1):
            self.refuse(f"{name} with strides or dilation other than 1")
        if w is None:
            self.refuse(f"{name} with non-constant weights")
        bias = np.zeros(w.shape[0], np.float32) if b is None else b.astype(np.float32)
        same = o.padding == schema.Padding.SAME
        if x.kind == "padded" and not same and w.shape[1:3] == (3, 3):
            info = {"input": x.info["block"], "w": w, "b": bias}
            return _Value("conv", self.shape(op.outputs[0])[1:], info)
        if x.kind in ("sensor", "pm1") and same and w.shape[1:3] == (3, 3):
            if x.kind == "pm1":
                self.refuse(f"{name}: a binary convolution padded with zeros")
            return _Value("conv", self.shape(op.outputs[0])[1:], {"input": None, "w": w, "b": bias})
        if x.kind == "pm1" and not same and w.shape[1:3] == tuple(x.shape[:2]):
            return self.folded(w.reshape(w.shape[0], -1), bias, x, name)
        return self.refuse(f"{name} on {x.kind} input with kernel {list(w.shape)}")

    def op_fully_connected(self, op, ins, name):
        x = self.value(ins[0], name)
        w = self.const(ins[1])
        b = self.const(ins[2]) if len(ins) > 2 and ins[2] >= 0 else None
        self.no_activation(op.builtinOptions, name, self)
        if w is None or x.kind not in ("sensor", "pm1"):
            self.refuse(f"{name} on {x.kind} input or with non-constant weights")
        bias = np.zeros(w.shape[0], np.float32) if b is None else b.astype(np.float32)
        return self.folded(w, bias, x, name)

    def folded(self, w: np.ndarray, bias: np.ndarray, x: _Value, name: str) -> _Value:
        mag = np.abs(w)
        if not np.all(mag == mag[:, :1]):
            self.refuse(f"{name} weights are not +-s per output (batch norm folded into +-1)")
        info = {
            "input": None if x.kind == "sensor" else x.info["block"],
            "signs": ~np.signbit(w),
            "scale": mag[:, 0].astype(np.float32),
            "bias": bias,
            "in_size": int(np.prod(x.shape)),
        }
        return _Value("folded", (w.shape[0],), info)

    def op_max_pool_2d(self, op, ins, name):
        x = self.value(ins[0], name)
        o = op.builtinOptions
        self.no_activation(o, name, self)
        if x.kind != "conv" or o.padding != schema.Padding.SAME:
            self.refuse(f"{name} on {x.kind} input or with VALID padding")
        if o.filterWidth != o.filterHeight or o.strideW != o.strideH:
            self.refuse(f"{name} with a non-square window or stride")
        if not np.all(np.abs(x.info["w"]) == 1) or np.any(x.info["b"] != 0):
            self.refuse("a ConvP convolution whose weights are not +-1 without bias")
        info = {**x.info, "pool": (int(o.filterWidth), int(o.strideW))}
        return _Value("pool", self.shape(op.outputs[0])[1:], info)

    def _const_operand(self, ins, name):
        """``(value, constant)`` of a binary op with one constant operand, else None."""
        a, b = (self.const(i) for i in ins)
        if b is not None and a is None:
            return self.value(ins[0], name), b
        if a is not None and b is None:
            return self.value(ins[1], name), a
        return None

    def op_mul(self, op, ins, name):
        self.no_activation(op.builtinOptions, name, self)
        pair = self._const_operand(ins, name)
        if pair is None or pair[0].kind != "pool":
            self.refuse(f"{name} other than a batch-norm scale after a max-pool")
        x, c = pair
        channels = x.shape[-1]
        return _Value("mul", x.shape, {**x.info, "mul": _per_channel(c, channels, self, name)})

    def op_add(self, op, ins, name):
        self.no_activation(op.builtinOptions, name, self)
        pair = self._const_operand(ins, name)
        if pair is None:
            a, b = (self.value(i, name) for i in ins)
            for x, y in ((a, b), (b, a)):
                if x.kind == "folded" and y.kind == "ste_sub" and y.info["of"] is x.info:
                    return _Value("int4", x.shape, x.info)
            return self.refuse(f"{name} of {a.kind} and {b.kind}")
        x, c = pair
        if x.kind == "pool":  # the converter drops a batch-norm scale of exactly 1
            x = _Value("mul", x.shape, {**x.info, "mul": np.ones(x.shape[-1], np.float32)})
        if x.kind == "mul":
            return _Value(
                "affine", x.shape, {**x.info, "add": _per_channel(c, x.shape[-1], self, name)}
            )
        if c.size == 1 and 0 < float(c.reshape(-1)[0]) < 1 and x.kind in ("sign3", "pm1"):
            return _Value("shift", x.shape, {"of": x})
        if x.kind == "folded" and c.size == 1 and float(c.reshape(-1)[0]) == 0.5:
            return _Value("half", x.shape, {"of": x.info})
        return self.refuse(f"{name} of {x.kind} and a constant")

    def op_sign(self, op, ins, name):
        x = self.value(ins[0], name)
        if x.kind in ("pool", "mul"):  # a batch norm whose offset (and scale) folded away
            channels = x.shape[-1]
            mul = x.info.get("mul", np.ones(channels, np.float32))
            x = _Value(
                "affine", x.shape, {**x.info, "mul": mul, "add": np.zeros(channels, np.float32)}
            )
        if x.kind in ("affine", "folded"):
            return _Value("sign3", x.shape, {"of": x})
        if x.kind == "shift":
            inner = x.info["of"]
            if inner.kind == "pm1":  # sign(+-1 + c) = +-1
                return inner
            return self.block(inner.info["of"], name)
        return self.refuse(f"{name} of {x.kind}")

    def block(self, z: _Value, name: str) -> _Value:
        """sign(sign(z) + c): +1 where z >= 0; closes a ConvP or FC block."""
        info = z.info
        if z.kind == "affine":
            source = info["input"]
            in_shape = self.values_shape_of_input(source)
            if len(in_shape) != 3:
                self.refuse("a convolution on a vector")
            w = info["w"]
            self.blocks.append(
                ConvBlock(
                    in_shape=tuple(in_shape),
                    out_shape=tuple(z.shape),
                    real_input=source is None,
                    signs=w > 0,
                    pool=info["pool"],
                    mul=info["mul"],
                    add=info["add"],
                )
            )
        else:
            self.blocks.append(
                DenseBlock(
                    in_size=info["in_size"],
                    units=len(info["scale"]),
                    real_input=info["input"] is None,
                    signs=info["signs"],
                    scale=info["scale"],
                    bias=info["bias"],
                )
            )
        return _Value("pm1", tuple(z.shape), {"block": len(self.blocks) - 1})

    def values_shape_of_input(self, source: int | None) -> tuple[int, ...]:
        if source is None:
            return self.sensor_shape
        return tuple(self.blocks[source].out_shape)

    def op_padv2(self, op, ins, name):
        x = self.value(ins[0], name)
        pads = self.const(ins[1])
        value = self.scalar(ins[2]) if len(ins) > 2 else 0.0
        want = np.array([[0, 0], [1, 1], [1, 1], [0, 0]])
        if x.kind != "pm1" or pads is None or not np.array_equal(pads, want) or value != 1.0:
            self.refuse(f"{name} other than a one-pixel border of +1 around a binary map")
        return _Value("padded", self.shape(op.outputs[0])[1:], x.info)

    def op_reshape(self, op, ins, name):
        x = self.value(ins[0], name)
        shape = self.shape(op.outputs[0])[1:]
        if int(np.prod(shape)) != int(np.prod(x.shape)):
            self.refuse(f"{name} that changes the element count")
        return _Value(x.kind, shape, x.info)

    def op_floor(self, op, ins, name):
        x = self.value(ins[0], name)
        if x.kind != "half":
            self.refuse(f"{name} of {x.kind}")
        return _Value("floor", x.shape, x.info)

    def op_minimum(self, op, ins, name):
        return self.clip(ins, name, of="floor", bound=7.0, kind="min7")

    def op_maximum(self, op, ins, name):
        return self.clip(ins, name, of="min7", bound=-8.0, kind="q")

    def clip(self, ins, name: str, *, of: str, bound: float, kind: str) -> _Value:
        """One side of the int4 clip: MINIMUM(floor, 7), then MAXIMUM(that, -8)."""
        pair = self._const_operand(ins, name)
        if (
            pair is None
            or pair[0].kind != of
            or pair[1].size != 1
            or float(pair[1].reshape(-1)[0]) != bound
        ):
            self.refuse(f"{name} other than the int4 clip at {bound:g}")
        return _Value(kind, pair[0].shape, pair[0].info)

    def op_sub(self, op, ins, name):
        self.no_activation(op.builtinOptions, name, self)
        a, b = (self.value(i, name) for i in ins)
        if a.kind != "q" or b.kind != "folded" or a.info["of"] is not b.info:
            self.refuse(f"{name} of {a.kind} and {b.kind}")
        return _Value("ste_sub", a.shape, {"of": b.info})

    # ------------------------------------------------------------------ outputs
    def finish(self, shape) -> TierSpec:
        outputs = {}
        for index in self.sub.outputs:
            outputs[self.sig_names.get(index, str(index))] = self.values.get(index)
        unknown = sorted(set(outputs) - {"features", "summary"})
        if unknown or "features" not in outputs:
            self.refuse(f"outputs {sorted(outputs)} (features [+ summary] expected)")
        feats = outputs["features"]
        if feats is None or feats.kind != "pm1" or feats.info["block"] != len(self.blocks) - 1:
            self.refuse("the features output is not the last block's +-1 map")
        kinds = {type(b) for b in self.blocks}
        if len(kinds) != 1:
            self.refuse("a mix of ConvP and FC blocks")
        for k, block in enumerate(self.blocks):
            if block.real_input != (k == 0):
                self.refuse("a block that reads the sensor after the first one")
        head = None
        if "summary" in outputs:
            s = outputs["summary"]
            if (
                s is None
                or s.kind not in ("folded", "int4")
                or s.info["input"] != len(self.blocks) - 1
            ):
                self.refuse("the summary output is not an exit head on the last block")
            info = s.info
            head = Head(
                in_size=info["in_size"],
                classes=len(info["scale"]),
                signs=info["signs"],
                scale=info["scale"],
                bias=info["bias"],
                encoding="int4" if s.kind == "int4" else "float32",
            )
        if self.quantizer is not None:
            zero = np.asarray(self.quantizer.zero_point, np.int64)
            if len(zero) != shape[-1]:
                self.refuse(f"a sensor quantiser of {len(zero)} channels for input {shape}")
            sensor = Sensor(tuple(shape), self.quantizer.dtype, None, zero)
        elif self.scale is None:
            sensor = Sensor(tuple(shape), "float32", None)
        else:
            sensor = Sensor(tuple(shape), "uint8", np.float32(self.scale))
        order = tuple(self.sig_names.get(i, str(i)) for i in self.sub.outputs)
        return TierSpec(self.name, sensor, tuple(self.blocks), head, order)

    @property
    def sensor_shape(self) -> tuple[int, ...]:
        return self.values[self.sub.inputs[0]].shape


def _per_channel(c: np.ndarray, channels: int, lowering: _Lowering, name: str) -> np.ndarray:
    flat = c.reshape(-1).astype(np.float32)
    if flat.size == 1:
        return np.full(channels, flat[0], np.float32)
    if flat.size != channels:
        lowering.refuse(f"{name} constant of {flat.size} values for {channels} channels")
    return flat


def lower_tier(name: str, data: bytes, *, scale: float | None, quantizer=None) -> TierSpec:
    """The :class:`TierSpec` of a portable device-tier binary.

    Args:
        name: the tier name (``device_0``), used in errors and in C names.
        data: the portable ``.tflite`` bytes.
        scale: the factor raw ``uint8`` sensor values are multiplied by before the
            binary sees them (the manifest's ``inputs[].scale``), or None when the
            sensor sends float32 values (or codes).
        quantizer: the device's :class:`~ddnn_tf.core.sensors.SensorQuantizer`, when its
            sensor sends int8 / int16 codes (the manifest's ``inputs[].quantizer``).

    Returns:
        The tier's description, with the binary's own constants.

    Raises:
        ConfigError: one line naming the operator or form the C target cannot express.

    Example:
        >>> data = open("tflite_models/fmnist6_mlpcc/device_0.tflite", "rb").read()
        >>> spec = lower_tier("device_0", data, scale=1 / 255)
        >>> [type(b).__name__ for b in spec.blocks], spec.features_shape, spec.head.encoding
        (['ConvBlock'], (5, 7, 4), 'int4')
    """
    try:
        return _Lowering(name, data, scale, quantizer).run()
    except _Refused as err:
        raise ConfigError(str(err)) from None
