"""A TensorFlow Lite Micro variant of a tier binary, and running it in TFLM's interpreter.

TensorFlow Lite Micro has no ``SIGN`` kernel, so the portable device binaries do not
load in it (``Didn't find op for builtin opcode 'SIGN'``). Larq's ste_sign converts to
``SIGN(ADD(SIGN(z), 0.1))`` (0 -> +1), and the input quantizer of a block on a +-1 map to
``SIGN(ADD(x, 0.1))``. Both equal ``SELECT_V2(GREATER_EQUAL(v, 0), 1, -1)`` with
``v = z`` resp. ``x`` (``x`` is +-1 there), exactly, for every value. :func:`tflm_variant`
rewrites the flatbuffer that way: same tensors, same names and signature, the same
constants; two builtin ops TFLM has instead of three it lacks.

TFLM's reference kernels also sum a dense layer's (or whole-window convolution's) terms
first and add the bias last, where ai-edge-litert (XNNPACK) starts from the bias; in float32
that changes the last bits of a real-valued summary. So every such layer with a bias (the
exit heads and FC blocks, batch norm folded in) becomes ``RESHAPE`` -> ``CONCATENATION``
of a constant 1 in front -> ``FULLY_CONNECTED`` without bias whose first weight is the
bias: ``0 + 1 * bias + x_1 w_1 + ...``, the same additions in the same order as XNNPACK,
in TFLM and in ai-edge-litert alike. Every other operator is kept as it is.

:func:`run_tflm` runs a binary in ``tflite-micro``'s Python interpreter (one sample per
invoke, as on a device) and :func:`arena_bytes` finds the smallest tensor arena it
allocates and runs in. Numpy and :mod:`ddnn_tf.runtime.flatbuffer`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import numpy as np

from ddnn_tf.errors import ConfigError
from ddnn_tf.runtime.flatbuffer import (
    buffer_array,
    check_operators,
    op_name,
    opcode_index,
    read_model,
    schema,
    write_model,
)

__all__ = ["arena_bytes", "load_tflm", "run_tflm", "tflm_variant"]


def tflm_variant(data: bytes) -> bytes:
    """The binary with every ste_sign written as ``GREATER_EQUAL`` + ``SELECT_V2``.

    Args:
        data: a portable ``.tflite`` flatbuffer.

    Returns:
        The rewritten flatbuffer.

    Raises:
        ConfigError: a ``SIGN`` outside the ste_sign forms (it has no exact rewrite).
        FormatError: an operator without the inputs, output or options of its kind, or a
            constant whose data do not fill its shape.
    """
    model = read_model(data)
    check_operators(model)
    ops = schema.BuiltinOperator
    ge, select = opcode_index(model, ops.GREATER_EQUAL), opcode_index(model, ops.SELECT_V2)
    for s_index, sub in enumerate(model.subgraphs):
        _rewrite_signs(model, sub, s_index, ge, select)
        _bias_first(model, sub)
        _drop_unused_tensors(model, sub, s_index)
    _drop_unused_buffers(model)
    return write_model(model, size_hint=len(data) + 4096)


def _rewrite_signs(model, sub, s_index: int, ge: int, select: int) -> None:
    """Replace the ste_sign forms of one subgraph by ``GREATER_EQUAL`` + ``SELECT_V2``."""
    producer = {out: op for op in sub.operators for out in op.outputs}
    uses: dict[int, int] = {}
    for op in sub.operators:
        for i in op.inputs:
            uses[i] = uses.get(i, 0) + 1
    for i in sub.outputs:
        uses[i] = uses.get(i, 0) + 1

    def const_scalar(index: int) -> float | None:
        values = _float_const(model, sub.tensors[index])
        return None if values is None or values.size != 1 else float(values.reshape(-1)[0])

    consumers: dict[int, list] = {}
    for op in sub.operators:
        for i in op.inputs:
            consumers.setdefault(i, []).append(op)

    def shift_of(add) -> int | None:
        """The non-constant operand of ``ADD(x, c)`` with a scalar 0 < c < 1."""
        if add is None or op_name(model, add) != "ADD" or len(add.inputs) != 2:
            return None
        consts = [const_scalar(i) for i in add.inputs]
        free = [i for i, c in zip(add.inputs, consts) if c is None]
        shift = next((c for c in consts if c is not None), None)
        return free[0] if len(free) == 1 and shift is not None and 0 < shift < 1 else None

    def only_consumer(index: int):
        users = consumers.get(index, [])
        return users[0] if len(users) == 1 and index not in sub.outputs else None

    zero = one = minus = None
    dropped: set[int] = set()
    replaced: dict[int, list] = {}
    outer: dict[int, int] = {}  # id(outer SIGN) -> the tensor v it tests
    pm1: set[int] = set()  # tensors known to hold only +-1
    for k, op in enumerate(sub.operators):
        if op_name(model, op) != "SIGN":
            continue
        if id(op) in outer:
            v = outer[id(op)]  # sign(sign(v) + c) = v >= 0 ? 1 : -1
        else:
            add = only_consumer(op.outputs[0])
            nxt = (
                only_consumer(add.outputs[0])
                if add is not None and shift_of(add) is not None
                else None
            )
            if nxt is not None and op_name(model, nxt) == "SIGN":
                outer[id(nxt)] = op.inputs[0]  # this SIGN is the inner one
                dropped.update((id(op), id(add)))
                continue
            add = producer.get(op.inputs[0])
            x = shift_of(add)
            if x is None or x not in pm1:
                raise ConfigError(
                    f"subgraph {s_index}, operator {k}: a SIGN outside Larq's ste_sign "
                    "forms; it has no exact GREATER_EQUAL + SELECT_V2 rewrite."
                )
            v = x  # sign(x + c) = x for x in {-1, +1}
            if uses.get(add.outputs[0]) == 1:
                dropped.add(id(add))
        if zero is None:
            zero, one, minus = (
                _const_array(model, sub, np.array(value, np.float32), f"tflm/{name}")
                for value, name in ((0.0, "zero"), (1.0, "one"), (-1.0, "minus_one"))
            )
        first, second = _ge_select(sub, v, op.outputs[0], (ge, select), (zero, one, minus))
        replaced[id(op)] = [first, second]
        pm1.add(op.outputs[0])
    new_ops = []
    for op in sub.operators:
        if id(op) in dropped:
            continue
        new_ops.extend(replaced.get(id(op), [op]))
    sub.operators = new_ops


def _ge_select(sub, v: int, out: int, codes, consts) -> tuple:
    """``out = SELECT_V2(GREATER_EQUAL(v, 0), 1, -1)`` as two operators (and a bool tensor)."""
    (ge, select), (zero, one, minus) = codes, consts
    cond = schema.TensorT()
    cond.shape = np.array(sub.tensors[v].shape, np.int32)
    cond.type = schema.TensorType.BOOL
    cond.buffer = 0
    cond.name = (sub.tensors[out].name or b"sign") + b"/tflm_ge"
    sub.tensors.append(cond)
    c_index = len(sub.tensors) - 1
    first = schema.OperatorT()
    first.opcodeIndex, first.inputs, first.outputs = ge, [v, zero], [c_index]
    first.builtinOptionsType = schema.BuiltinOptions.GreaterEqualOptions
    first.builtinOptions = schema.GreaterEqualOptionsT()
    second = schema.OperatorT()
    second.opcodeIndex, second.inputs, second.outputs = select, [c_index, one, minus], [out]
    second.builtinOptionsType = schema.BuiltinOptions.SelectV2Options
    second.builtinOptions = schema.SelectV2OptionsT()
    return first, second


def _const_array(model, sub, values: np.ndarray, name: str) -> int:
    """A new constant tensor holding ``values`` (int32 or float32)."""
    buf = schema.BufferT()
    dtype = "<i4" if values.dtype.kind == "i" else "<f4"
    buf.data = np.frombuffer(np.ascontiguousarray(values.astype(dtype)).tobytes(), np.uint8).copy()
    model.buffers.append(buf)
    return _tensor(sub, values.shape, dtype, name, len(model.buffers) - 1)


def _tensor(sub, shape, dtype: str, name: str, buffer: int = 0) -> int:
    t = schema.TensorT()
    t.shape = np.array(shape, np.int32)
    t.type = schema.TensorType.INT32 if dtype == "<i4" else schema.TensorType.FLOAT32
    t.buffer = buffer
    t.name = name.encode()
    sub.tensors.append(t)
    return len(sub.tensors) - 1


def _float_const(model, tensor) -> np.ndarray | None:
    """A float32 constant's values; None for a tensor without data or of another type."""
    if tensor.type != schema.TensorType.FLOAT32:
        return None
    return buffer_array(model, tensor)


def _bias_first(model, sub) -> None:
    """Dense layers (and whole-window convolutions) with a bias as bias-first dot products."""
    ops = schema.BuiltinOperator
    reshape = opcode_index(model, ops.RESHAPE)
    concat = opcode_index(model, ops.CONCATENATION)
    fc = opcode_index(model, ops.FULLY_CONNECTED)
    new_ops = []
    for op in sub.operators:
        kind = op_name(model, op)
        if kind not in ("CONV_2D", "FULLY_CONNECTED") or len(op.inputs) < 3:
            new_ops.append(op)
            continue
        x, w_i, b_i = op.inputs[:3]
        bias = _float_const(model, sub.tensors[b_i]) if b_i >= 0 else None
        weights = _float_const(model, sub.tensors[w_i])
        x_shape = [int(d) for d in sub.tensors[x].shape]
        whole = kind == "FULLY_CONNECTED" or (
            weights is not None
            and op.builtinOptions.padding == schema.Padding.VALID
            and list(weights.shape[1:3]) == x_shape[1:3]
        )
        if bias is None or not np.any(bias) or weights is None or not whole or x_shape[0] != 1:
            new_ops.append(op)
            continue
        units = weights.shape[0]
        k = int(np.prod(x_shape[1:]))
        name = (sub.tensors[op.outputs[0]].name or b"dense").decode()
        shape = _const_array(model, sub, np.array([1, k], np.int32), name + "/tflm_shape")
        flat = _tensor(sub, [1, k], "<f4", name + "/tflm_flat")
        one = _const_array(model, sub, np.ones((1, 1), np.float32), name + "/tflm_one")
        joined = _tensor(sub, [1, k + 1], "<f4", name + "/tflm_with_one")
        w = np.concatenate([bias.reshape(units, 1), weights.reshape(units, k)], axis=1)
        w_new = _const_array(model, sub, w.astype(np.float32), name + "/tflm_weights")
        out = op.outputs[0]
        if [int(d) for d in sub.tensors[out].shape] != [1, units]:  # a conv's [1, 1, 1, C]
            out = _tensor(sub, [1, units], "<f4", name + "/tflm_out")
            for other in sub.operators:
                other.inputs = [out if i == op.outputs[0] else i for i in other.inputs]
            if op.outputs[0] in sub.outputs:
                raise ConfigError(f"{name}: a whole-window convolution as an output")
        steps = []
        for code, ins, outs, opt_type, opt in (
            (
                reshape,
                [x, shape],
                [flat],
                schema.BuiltinOptions.ReshapeOptions,
                schema.ReshapeOptionsT(),
            ),
            (
                concat,
                [one, flat],
                [joined],
                schema.BuiltinOptions.ConcatenationOptions,
                schema.ConcatenationOptionsT(),
            ),
            (
                fc,
                [joined, w_new, -1],
                [out],
                schema.BuiltinOptions.FullyConnectedOptions,
                schema.FullyConnectedOptionsT(),
            ),
        ):
            step = schema.OperatorT()
            step.opcodeIndex, step.inputs, step.outputs = code, ins, outs
            step.builtinOptionsType, step.builtinOptions = opt_type, opt
            steps.append(step)
        steps[0].builtinOptions.newShape = [1, k]
        steps[1].builtinOptions.axis = 1
        new_ops.extend(steps)
    sub.operators = new_ops


def _drop_unused_tensors(model, sub, s_index: int) -> None:
    used = {i for op in sub.operators for i in (*op.inputs, *op.outputs) if i >= 0}
    used |= set(sub.inputs) | set(sub.outputs)
    keep = sorted(used)
    remap = {old: new for new, old in enumerate(keep)}
    sub.tensors = [sub.tensors[i] for i in keep]
    for op in sub.operators:
        op.inputs = [remap[i] if i >= 0 else i for i in op.inputs]
        op.outputs = [remap[i] for i in op.outputs]
    sub.inputs = [remap[i] for i in sub.inputs]
    sub.outputs = [remap[i] for i in sub.outputs]
    for sig in model.signatureDefs or []:
        if sig.subgraphIndex == s_index:
            for t in (*sig.inputs, *sig.outputs):
                t.tensorIndex = remap[t.tensorIndex]


def _drop_unused_buffers(model) -> None:
    """Keep buffer 0 (the empty one) and the buffers a tensor or metadata refers to."""
    used = {0} | {t.buffer for sub in model.subgraphs for t in sub.tensors}
    used |= {m.buffer for m in model.metadata or []}
    keep = sorted(i for i in used if i < len(model.buffers))
    remap = {old: new for new, old in enumerate(keep)}
    model.buffers = [model.buffers[i] for i in keep]
    for sub in model.subgraphs:
        for t in sub.tensors:
            t.buffer = remap[t.buffer]
    for m in model.metadata or []:
        m.buffer = remap[m.buffer]


def load_tflm():
    """``tflite_micro``'s Python ``Interpreter`` class.

    Raises:
        ModuleNotFoundError: ``tflite_micro`` is not installed (the ``mcu`` extra:
            ``pip install 'ddnn_tf[mcu]'``).
    """
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter


def _interpreter(data: bytes, arena: int):
    return load_tflm().from_bytes(bytes(data), arena_size=int(arena))


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Descriptor 2 to /dev/null: TFLM's C++ allocator reports each failed try there."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _allocates(data: bytes, arena: int, sample: list[np.ndarray]) -> bool:
    try:
        with _quiet_stderr():
            it = _interpreter(data, arena)
            for k, x in enumerate(sample):
                it.set_input(x, k)
            it.invoke()
    except RuntimeError:
        return False
    return True


def arena_bytes(data: bytes, sample: list[np.ndarray]) -> int:
    """The smallest tensor arena (bytes) in which TFLM allocates ``data`` and invokes it.

    Args:
        data: the flatbuffer.
        sample: one input array per model input, batch 1.

    Raises:
        ConfigError: TFLM cannot run the model even with a large arena.
    """
    hi = max(1 << 16, 16 * len(data))
    if not _allocates(data, hi, sample):
        raise ConfigError(
            f"TFLM cannot allocate and invoke the model in a {hi}-byte arena (an operator "
            "it lacks, or a malformed file)."
        )
    lo = 0  # invariant: lo fails (or is 0), hi works
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _allocates(data, mid, sample):
            hi = mid
        else:
            lo = mid
    return hi


def run_tflm(
    data: bytes,
    feeds: Mapping[str, np.ndarray],
    *,
    input_order: list[str],
    output_order: list[str],
    arena: int,
) -> dict[str, np.ndarray]:
    """Run a binary in TFLM one sample per invoke.

    Args:
        data: the flatbuffer.
        feeds: input name -> ``(N, ...)`` float32 array.
        input_order: the input signature names in the subgraph's positional order
            (the manifest's ``input_order``).
        output_order: the output names likewise (the manifest's ``output_order``).
        arena: tensor arena bytes.

    Returns:
        output name -> ``(N, ...)`` array.

    Raises:
        ConfigError: the interpreter refuses the model.
        ModuleNotFoundError: the interpreter is not installed.
    """
    try:
        it = _interpreter(data, arena)
    except RuntimeError as err:
        raise ConfigError(f"TFLM refused the model: {err}") from None
    n = len(next(iter(feeds.values())))
    outs: dict[str, list[np.ndarray]] = {name: [] for name in output_order}
    for s in range(n):
        for k, name in enumerate(input_order):
            it.set_input(np.ascontiguousarray(feeds[name][s : s + 1], np.float32), k)
        it.invoke()
        for k, name in enumerate(output_order):
            outs[name].append(np.array(it.get_output(k)))
    return {name: np.concatenate(v, axis=0) for name, v in outs.items()}
