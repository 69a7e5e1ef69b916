"""Read and write tier binaries (TFLite flatbuffers) with ai-edge-litert's schema.

Every part of the toolkit that opens a tier binary as a flatbuffer does it here: the
converter reads a new binary's signature, operators and dtypes (:func:`tflite_info`), the
microcontroller targets read its operators and constants (``ddnn_tf.mcu.lower``) and write
a rewritten one (``ddnn_tf.mcu.tflm``). The object tree is the ``ModelT`` of
``ai_edge_litert.schema_py_generated`` (generated from TensorFlow Lite's
``schema.fbs``); :mod:`ddnn_tf.core.tflite_check` checks a file from elsewhere, with bounds
checks on every offset, before an interpreter or this module reads it.

>>> model = read_model(open("tflite_models/fmnist6_mlpcc/device_0.tflite", "rb").read())
>>> sorted(signature_names(model).values())
['features', 'image', 'summary']
>>> op_counts(model)["CONV_2D"]
2
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from ddnn_tf.core.vocab import SIGNATURE_KEY
from ddnn_tf.errors import FormatError

__all__ = [
    "buffer_array",
    "check_operators",
    "dtype_name",
    "op_counts",
    "op_name",
    "opcode_index",
    "read_model",
    "schema",
    "signature",
    "signature_names",
    "tflite_info",
    "write_model",
]

_IDENTIFIER = b"TFL3"
#: Inputs (fewest, most) of the builtin operators device tiers convert to; each has one
#: output, and its first ``fewest`` inputs are tensors (not the optional -1).
_ARITY = {
    "ADD": (2, 2),
    "CONV_2D": (2, 3),
    "FLOOR": (1, 1),
    "FULLY_CONNECTED": (2, 3),
    "MAXIMUM": (2, 2),
    "MAX_POOL_2D": (1, 1),
    "MINIMUM": (2, 2),
    "MUL": (2, 2),
    "PADV2": (2, 3),
    "RESHAPE": (1, 2),
    "SIGN": (1, 1),
    "SUB": (2, 2),
}
#: The options of the operators whose options a reader needs (strides, padding, pool size).
_OPTIONS = {"CONV_2D": "Conv2DOptionsT", "MAX_POOL_2D": "Pool2DOptionsT"}
_NUMPY_TYPES = {"float32": "<f4", "int32": "<i4", "int8": "i1", "uint8": "u1", "int64": "<i8"}


@functools.cache
def _names(enum: type) -> dict[int, str]:
    """Value -> name of one of the schema's enums (``BuiltinOperator``, ``TensorType``)."""
    return {v: k for k, v in vars(enum).items() if not k.startswith("_")}


def read_model(data: bytes):
    """The object tree (``schema.ModelT``) of a TFLite flatbuffer.

    Every subgraph's and operator's tensor lists are lists (the schema leaves an absent
    vector as None), so a reader can iterate them.
    """
    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    model.subgraphs = model.subgraphs or []
    for sub in model.subgraphs:
        sub.operators, sub.tensors = sub.operators or [], sub.tensors or []
        for holder in (sub, *sub.operators):
            holder.inputs = [] if holder.inputs is None else holder.inputs
            holder.outputs = [] if holder.outputs is None else holder.outputs
    return model


def write_model(model, *, size_hint: int = 0) -> bytes:
    """A ``ModelT`` as TFLite flatbuffer bytes (file identifier ``TFL3``).

    Args:
        model: the object tree, as :func:`read_model` returns it and edited since.
        size_hint: the builder's initial size in bytes (it grows as needed).
    """
    import flatbuffers  # ai-edge-litert's schema depends on it

    builder = flatbuffers.Builder(size_hint)
    builder.Finish(model.Pack(builder), file_identifier=_IDENTIFIER)
    return bytes(builder.Output())


def _builtin(code) -> int:
    """An operator code's builtin operator: the larger of its two fields (``schema.fbs``
    keeps codes above 127 in ``builtin_code`` and 127 in ``deprecated_builtin_code``)."""
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def op_name(model, op) -> str:
    """An operator's name: its builtin's (``CONV_2D``, ``BUILTIN_<code>`` for a code this
    schema does not know) or its custom code (``LceBconv2d``)."""
    code = model.operatorCodes[op.opcodeIndex]
    if code.customCode:
        return code.customCode.decode(errors="replace")
    builtin = _builtin(code)  # one this schema does not know: as core.tflite_check names it
    return _names(schema.BuiltinOperator).get(builtin, f"BUILTIN_{builtin}")


def op_counts(model) -> dict[str, int]:
    """Operator name -> count over every subgraph of ``model``, sorted by name."""
    counts: dict[str, int] = {}
    for sub in model.subgraphs:
        for op in sub.operators:
            name = op_name(model, op)
            counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def check_operators(model) -> None:
    """Check that every operator of the device tiers' kinds has the inputs, the one output
    and the options its kind has (``ddnn_tf.core.tflite_check`` checks only that each
    index is in range), before a reader interprets or rewrites them.

    Raises:
        FormatError: naming the subgraph, the operator and what it lacks.
    """
    for g, sub in enumerate(model.subgraphs):
        for k, op in enumerate(sub.operators):
            name = op_name(model, op)
            if name not in _ARITY:
                continue
            fewest, most = _ARITY[name]
            where = f"subgraph {g}, operator {k} ({name})"
            if not fewest <= len(op.inputs) <= most or min(op.inputs[:fewest]) < 0:
                raise FormatError(f"{where} has inputs {list(op.inputs)}.")
            if len(op.outputs) != 1:
                raise FormatError(f"{where} has {len(op.outputs)} outputs, one expected.")
            options = _OPTIONS.get(name)
            if options is not None and not isinstance(op.builtinOptions, getattr(schema, options)):
                raise FormatError(f"{where} has no {options[:-1]}.")


def opcode_index(model, builtin: int) -> int:
    """The index of the operator code of builtin ``builtin``, added (version 1) if absent."""
    for i, code in enumerate(model.operatorCodes):
        if _builtin(code) == builtin and not code.customCode:
            return i
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def signature(model, key: str = SIGNATURE_KEY):
    """The signature ``key`` (a ``SignatureDefT``).

    Raises:
        FormatError: the flatbuffer has no such signature.
    """
    for sig in model.signatureDefs or []:
        if sig.signatureKey.decode() == key:
            return sig
    raise FormatError(f"The flatbuffer has no {key!r} signature.")


def signature_names(model, key: str = SIGNATURE_KEY) -> dict[int, str]:
    """Tensor index -> name of the inputs and outputs of signature ``key``.

    Raises:
        FormatError: the flatbuffer has no such signature.
    """
    sig = signature(model, key)
    return {t.tensorIndex: t.name.decode() for t in (*sig.inputs, *sig.outputs)}


def dtype_name(tensor) -> str:
    """A tensor's type as numpy spells it (``float32``, ``int8``, ...)."""
    return _names(schema.TensorType)[tensor.type].lower()


def buffer_array(model, tensor) -> np.ndarray | None:
    """A constant tensor's values (a writable copy), or None when it has no data.

    Raises:
        FormatError: a constant of a type this module does not read (e.g. ``float16``), or
            whose data does not fill its shape.
    """
    buf = model.buffers[tensor.buffer]
    if buf is None or buf.data is None or len(buf.data) == 0:
        return None
    name = (tensor.name or b"").decode(errors="replace")
    dtype = _NUMPY_TYPES.get(dtype_name(tensor))
    if dtype is None:
        raise FormatError(f"tensor {name!r} is a constant of type {dtype_name(tensor)}.")
    shape = [int(d) for d in tensor.shape]
    if len(buf.data) != np.dtype(dtype).itemsize * math.prod(shape):
        raise FormatError(
            f"tensor {name!r} has {len(buf.data)} bytes of {dtype_name(tensor)} data for "
            f"shape {tuple(shape)}."
        )
    return np.frombuffer(np.asarray(buf.data, np.uint8).tobytes(), dtype).reshape(shape).copy()


def tflite_info(data: bytes) -> dict[str, Any]:
    """Names, positional order, shapes and operators of a tier binary.

    Reads the flatbuffer schema directly, so it works for LCE files too (which the
    standard interpreter cannot open).

    Args:
        data: the flatbuffer bytes.

    Returns:
        ``{"input_order", "output_order"}``: the ``serving_default`` signature names in
        the subgraph's positional order; ``"shape_signatures"``: name -> shape signature
        (-1 for a dynamic dimension); ``"dtypes"``: name -> numpy dtype name;
        ``"ops"``: operator name -> count.

    Raises:
        FormatError: the flatbuffer has no ``serving_default`` signature.
    """
    model = read_model(data)
    sub = model.subgraphs[signature(model).subgraphIndex]
    names = signature_names(model)
    shapes, dtypes = {}, {}
    for index, name in names.items():
        tensor = sub.tensors[index]
        sig_shape = tensor.shapeSignature if tensor.shapeSignature is not None else tensor.shape
        shapes[name] = [int(d) for d in sig_shape]
        dtypes[name] = dtype_name(tensor)
    return {
        "input_order": [names[i] for i in sub.inputs],
        "output_order": [names[i] for i in sub.outputs],
        "shape_signatures": shapes,
        "dtypes": dtypes,
        "ops": op_counts(model),
    }
