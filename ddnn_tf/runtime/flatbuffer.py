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
from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from ddnn_tf.core.vocab import SIGNATURE_KEY
from ddnn_tf.errors import FormatError

__all__ = [
    "buffer_array",
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
_NUMPY_TYPES = {"float32": "<f4", "int32": "<i4", "int8": "i1", "uint8": "u1", "int64": "<i8"}


@functools.cache
def _names(enum: type) -> dict[int, str]:
    """Value -> name of one of the schema's enums (``BuiltinOperator``, ``TensorType``)."""
    return {v: k for k, v in vars(enum).items() if not k.startswith("_")}


def read_model(data: bytes):
    """The object tree (``schema.ModelT``) of a TFLite flatbuffer."""
    return schema.ModelT.InitFromPackedBuf(bytearray(data), 0)


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
    """An operator's name: its builtin's (``CONV_2D``) or its custom code (``LceBconv2d``)."""
    code = model.operatorCodes[op.opcodeIndex]
    if code.customCode:
        return code.customCode.decode()
    return _names(schema.BuiltinOperator)[_builtin(code)]


def op_counts(model) -> dict[str, int]:
    """Operator name -> count over every subgraph of ``model``, sorted by name."""
    counts: dict[str, int] = {}
    for sub in model.subgraphs:
        for op in sub.operators:
            name = op_name(model, op)
            counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


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
        FormatError: a constant of a type this module does not read (e.g. ``float16``).
    """
    buf = model.buffers[tensor.buffer]
    if buf is None or buf.data is None or len(buf.data) == 0:
        return None
    dtype = _NUMPY_TYPES.get(dtype_name(tensor))
    if dtype is None:
        raise FormatError(f"A constant of tensor type {dtype_name(tensor)}.")
    raw = np.asarray(buf.data, np.uint8).tobytes()
    return np.frombuffer(raw, dtype).reshape([int(d) for d in tensor.shape]).copy()


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
