"""Validate a tier binary before any interpreter touches it (standard library only).

A file whose sha256 matches the manifest only proves it was not changed after
conversion; a truncated or garbage file, or one built for another target, can still
crash an interpreter (a truncated ``.lce.tflite`` makes larq-compute-engine's
interpreter die with SIGSEGV). :func:`check_tier_binary` reads the TFLite flatbuffer
(``tensorflow/lite/schema/schema.fbs``) with bounds checks on every offset, vector and
string it follows, and checks:

* the file identifier ``TFL3`` and the structure of the model, its operator codes,
  subgraphs, tensors, operators, buffers and signatures (every index in range);
* that the target can resolve every operator: ``portable`` takes TFLite builtins only,
  ``lce`` takes builtins plus larq-compute-engine's custom ops (``LceQuantize``,
  ``LceDequantize``, ``LceBconv2d``, ``LceBMaxPool2d``);
* that the ``serving_default`` signature has the tensor names, shapes and dtypes the
  manifest promises, and that ``input_order``/``output_order`` match the subgraph's
  positional order.

Every error is a ValueError that names the tier and the file.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ddnn_tf.core.vocab import SIGNATURE_KEY
from ddnn_tf.errors import FormatError

__all__ = [
    "LCE_CUSTOM_OPS",
    "TfliteModel",
    "check_manifest_tier",
    "check_tier_binary",
]

IDENTIFIER = b"TFL3"
#: Custom operators larq-compute-engine's interpreter registers.
LCE_CUSTOM_OPS = frozenset({"LceQuantize", "LceDequantize", "LceBconv2d", "LceBMaxPool2d"})
_CUSTOM = 32  # BuiltinOperator.CUSTOM
# TensorType -> the manifest's dtype names (schema.fbs: FLOAT32 = 0, INT32 = 2, ...).
_TENSOR_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool"}
_TENSOR_TYPES.update({7: "int16", 9: "int8"})


class _Corrupt(Exception):
    """A read outside the buffer or an inconsistent structure (message: what and where)."""


class _Reader:
    """Bounds-checked flatbuffer reads over one buffer."""

    def __init__(self, data: bytes):
        self.data = data
        self.size = len(data)

    def _get(self, fmt: str, pos: int, what: str):
        width = struct.calcsize(fmt)
        if pos < 0 or pos + width > self.size:
            raise _Corrupt(f"{what} at byte {pos} lies outside the {self.size}-byte file")
        return struct.unpack_from(fmt, self.data, pos)[0]

    def table(self, pos: int, what: str) -> _Table:
        vtable = pos - self._get("<i", pos, what)
        vsize = self._get("<H", vtable, f"{what}'s vtable")
        tsize = self._get("<H", vtable + 2, f"{what}'s vtable")
        if vsize < 4 or vsize % 2 or vtable + vsize > self.size:
            raise _Corrupt(f"{what}'s vtable at byte {vtable} is malformed")
        if tsize < 4 or pos + tsize > self.size:
            raise _Corrupt(f"{what} at byte {pos} runs past the end of the file")
        fields = [self._get("<H", vtable + 4 + 2 * i, what) for i in range((vsize - 4) // 2)]
        if any(off >= tsize for off in fields):
            raise _Corrupt(f"{what} at byte {pos} has a field outside the table")
        return _Table(self, pos, fields, what)

    def target(self, pos: int, what: str) -> int:
        """Follow a uoffset stored at ``pos``."""
        return pos + self._get("<I", pos, what)

    def vector(self, pos: int, width: int, what: str) -> tuple[int, int]:
        """(start of the elements, length) of the vector at ``pos``, checked to fit."""
        length = self._get("<I", pos, f"{what}'s length")
        if pos + 4 + length * width > self.size:
            raise _Corrupt(f"{what} ({length} items at byte {pos}) runs past the end of the file")
        return pos + 4, length


@dataclass
class _Table:
    reader: _Reader
    pos: int
    fields: list[int]
    what: str

    def _field(self, slot: int) -> int | None:
        off = self.fields[slot] if slot < len(self.fields) else 0
        return self.pos + off if off else None

    def scalar(self, slot: int, fmt: str, default: int = 0) -> int:
        pos = self._field(slot)
        return default if pos is None else self.reader._get(fmt, pos, self.what)

    def table(self, slot: int, what: str) -> _Table | None:
        pos = self._field(slot)
        return None if pos is None else self.reader.table(self.reader.target(pos, what), what)

    def string(self, slot: int, what: str) -> str | None:
        pos = self._field(slot)
        if pos is None:
            return None
        start, length = self.reader.vector(self.reader.target(pos, what), 1, what)
        try:
            return self.reader.data[start : start + length].decode("utf-8")
        except UnicodeDecodeError:
            raise _Corrupt(f"{what} is not UTF-8 text") from None

    def scalars(self, slot: int, fmt: str, what: str) -> list[int]:
        pos = self._field(slot)
        if pos is None:
            return []
        width = struct.calcsize(fmt)
        start, length = self.reader.vector(self.reader.target(pos, what), width, what)
        return [self.reader._get(fmt, start + i * width, what) for i in range(length)]

    def tables(self, slot: int, what: str) -> list[_Table]:
        pos = self._field(slot)
        if pos is None:
            return []
        start, length = self.reader.vector(self.reader.target(pos, what), 4, what)
        return [
            self.reader.table(self.reader.target(start + 4 * i, f"{what}[{i}]"), f"{what}[{i}]")
            for i in range(length)
        ]


@dataclass
class TfliteModel:
    """What a runtime needs to know of a TFLite file, read without an interpreter.

    Attributes:
        operators: operator name per operator of every subgraph (builtin codes as
            ``BUILTIN_<code>``, custom operators by their custom name).
        custom_ops: the distinct custom operator names.
        signatures: ``{key: {"inputs": {name: (shape, dtype)}, "outputs": {...},
            "input_order": [...], "output_order": [...]}}``; the orders are the signature
            names in the subgraph's positional order.
    """

    operators: list[str] = field(default_factory=list)
    custom_ops: set[str] = field(default_factory=set)
    signatures: dict[str, dict[str, Any]] = field(default_factory=dict)


def _tensor(table: _Table, what: str, num_buffers: int) -> tuple[tuple[int, ...], str]:
    shape = tuple(table.scalars(0, "<i", f"{what}.shape"))
    type_code = table.scalar(1, "<b")
    buffer = table.scalar(2, "<I")
    if buffer >= max(num_buffers, 1):
        raise _Corrupt(f"{what} names buffer {buffer}, the file has {num_buffers}")
    table.string(3, f"{what}.name")
    quant = table.table(4, f"{what}.quantization")
    if quant is not None:
        for slot, fmt in ((0, "<f"), (1, "<f"), (2, "<f"), (3, "<q")):
            quant.scalars(slot, fmt, f"{what}.quantization")
    table.scalars(7, "<i", f"{what}.shape_signature")
    return shape, _TENSOR_TYPES.get(type_code, f"type {type_code}")


def _indices(values: Sequence[int], limit: int, what: str, optional: bool = False) -> None:
    for v in values:
        if not (0 <= v < limit or (optional and v == -1)):
            raise _Corrupt(f"{what} names tensor {v}, the subgraph has {limit}")


def _read(data: bytes) -> TfliteModel:
    r = _Reader(data)
    if r.size < 8 or data[4:8] != IDENTIFIER:
        raise _Corrupt(
            f"not a TFLite flatbuffer (file identifier {data[4:8]!r}, expected {IDENTIFIER!r})"
        )
    model = r.table(r.target(0, "root offset"), "model")
    buffers = model.tables(4, "buffers")
    for i, buf in enumerate(buffers):
        buf.scalars(0, "<B", f"buffers[{i}].data")
        offset, size = buf.scalar(1, "<Q"), buf.scalar(2, "<Q")
        if offset > 1 and offset + size > r.size:
            raise _Corrupt(f"buffers[{i}] points at bytes {offset}..{offset + size}, past the end")
    for i, meta in enumerate(model.tables(6, "metadata")):
        meta.string(0, f"metadata[{i}].name")
        if meta.scalar(1, "<I") >= len(buffers):
            raise _Corrupt(f"metadata[{i}] names buffer {meta.scalar(1, '<I')} of {len(buffers)}")
    for index in model.scalars(5, "<i", "metadata_buffer"):
        if not 0 <= index < len(buffers):
            raise _Corrupt(f"metadata_buffer names buffer {index} of {len(buffers)}")
    model.string(3, "description")
    codes = []
    for i, code in enumerate(model.tables(1, "operator_codes")):
        builtin = max(code.scalar(0, "<b"), code.scalar(3, "<i"))
        custom = code.string(1, f"operator_codes[{i}].custom_code")
        codes.append((custom or "CUSTOM") if builtin == _CUSTOM else f"BUILTIN_{builtin}")
    out = TfliteModel()
    subgraphs = model.tables(2, "subgraphs")
    tensors_of: list[list[tuple[tuple[int, ...], str]]] = []
    positions: list[tuple[list[int], list[int]]] = []
    for g, sub in enumerate(subgraphs):
        where = f"subgraphs[{g}]"
        tensors = [
            _tensor(t, f"{where}.tensors[{k}]", len(buffers))
            for k, t in enumerate(sub.tables(0, f"{where}.tensors"))
        ]
        inputs = sub.scalars(1, "<i", f"{where}.inputs")
        outputs = sub.scalars(2, "<i", f"{where}.outputs")
        _indices(inputs, len(tensors), f"{where}.inputs")
        _indices(outputs, len(tensors), f"{where}.outputs")
        for k, op in enumerate(sub.tables(3, f"{where}.operators")):
            what = f"{where}.operators[{k}]"
            index = op.scalar(0, "<I")
            if index >= len(codes):
                raise _Corrupt(f"{what} uses operator code {index}, the file has {len(codes)}")
            _indices(op.scalars(1, "<i", f"{what}.inputs"), len(tensors), what, optional=True)
            _indices(op.scalars(2, "<i", f"{what}.outputs"), len(tensors), what)
            op.table(4, f"{what}.builtin_options")
            op.scalars(5, "<B", f"{what}.custom_options")
            out.operators.append(codes[index])
        sub.string(4, f"{where}.name")
        tensors_of.append(tensors)
        positions.append((inputs, outputs))
    out.custom_ops = {c for c in out.operators if not c.startswith("BUILTIN_")}
    for s, sig in enumerate(model.tables(7, "signature_defs")):
        what = f"signature_defs[{s}]"
        key = sig.string(2, f"{what}.signature_key") or ""
        g = sig.scalar(4, "<I")
        if g >= len(subgraphs):
            raise _Corrupt(f"{what} names subgraph {g}, the file has {len(subgraphs)}")
        entry: dict[str, Any] = {}
        for slot, kind in ((0, "inputs"), (1, "outputs")):
            named: dict[str, tuple[tuple[int, ...], str]] = {}
            by_index: dict[int, str] = {}
            for m, tmap in enumerate(sig.tables(slot, f"{what}.{kind}")):
                name = tmap.string(0, f"{what}.{kind}[{m}].name") or ""
                index = tmap.scalar(1, "<I")
                _indices([index], len(tensors_of[g]), f"{what}.{kind}[{m}]")
                named[name] = tensors_of[g][index]
                by_index[index] = name
            entry[kind] = named
            order = positions[g][0 if kind == "inputs" else 1]
            entry[kind[:-1] + "_order"] = [by_index.get(i) for i in order]
        out.signatures[key] = entry
    return out


def _shape_text(shape) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def check_tier_binary(
    data: bytes,
    *,
    tier: str,
    file: str,
    target: str,
    inputs: Sequence[Mapping[str, Any]],
    outputs: Sequence[Mapping[str, Any]],
    input_order: Sequence[str] | None = None,
    output_order: Sequence[str] | None = None,
    ops: Mapping[str, int] | None = None,
) -> TfliteModel:
    """Check a tier binary against its target and the manifest, before it is loaded.

    Args:
        data: the file's bytes.
        tier: the tier name (for errors).
        file: the file's path or name (for errors).
        target: ``"portable"`` or ``"lce"``.
        inputs: the manifest's input tensor entries ``[{name, shape, dtype, ...}]``
            (shapes with the batch dimension).
        outputs: the manifest's output tensor entries, likewise.
        input_order: the manifest's positional order of the inputs, when given.
        output_order: the manifest's positional order of the outputs, when given.
        ops: the manifest's operator counts, when given (their total is checked).

    Returns:
        The :class:`TfliteModel` read.

    Raises:
        ValueError: ``"Tier <tier> (<file>): ..."``: a malformed flatbuffer, an operator
            the target cannot resolve, no ``serving_default`` signature, or tensors that
            differ from the manifest.
    """
    prefix = f"Tier {tier} ({file})"
    try:
        model = _read(bytes(data))
    except _Corrupt as err:
        raise FormatError(
            f"{prefix}: corrupt TFLite file: {err}; convert the model again."
        ) from None
    if ops is not None and sum(ops.values()) != len(model.operators):
        raise FormatError(
            f"{prefix}: the binary has {len(model.operators)} operators, the manifest "
            f"counts {sum(ops.values())}; the file and manifest disagree."
        )
    allowed = LCE_CUSTOM_OPS if target == "lce" else frozenset()
    unresolved = sorted(model.custom_ops - allowed)
    if unresolved:
        hint = (
            " (larq-compute-engine operators: this is an lce binary, not a portable one)"
            if set(unresolved) & LCE_CUSTOM_OPS
            else ""
        )
        raise FormatError(
            f"{prefix}: the {target} target cannot resolve custom operator(s) "
            f"{', '.join(unresolved)}{hint}."
        )
    if SIGNATURE_KEY not in model.signatures:
        raise FormatError(
            f"{prefix}: no {SIGNATURE_KEY!r} signature (found {sorted(model.signatures)}); "
            "convert the model again."
        )
    signature = model.signatures[SIGNATURE_KEY]
    for kind, promised in (("inputs", inputs), ("outputs", outputs)):
        found = signature[kind]
        names = sorted(t["name"] for t in promised)
        if sorted(found) != names:
            raise FormatError(
                f"{prefix}: the binary's {kind} are {sorted(found)}, the manifest says {names}."
            )
        for t in promised:
            shape, dtype = found[t["name"]]
            if list(shape) != list(t["shape"]) or dtype != t["dtype"]:
                raise FormatError(
                    f"{prefix}: {kind[:-1]} {t['name']!r} is {dtype} {_shape_text(shape)} in the "
                    f"binary, the manifest says {t['dtype']} {_shape_text(t['shape'])}."
                )
    for kind, order in (("input_order", input_order), ("output_order", output_order)):
        if order is not None and list(order) != signature[kind]:
            raise FormatError(
                f"{prefix}: the manifest's {kind} does not match the binary's positional "
                f"order {signature[kind]} (manifest: {list(order)})."
            )
    return model


def check_manifest_tier(manifest, tier: str, target: str, data: bytes | None = None) -> TfliteModel:
    """:func:`check_tier_binary` of ``tier``'s ``target`` file, as a loaded manifest
    (:class:`ddnn_tf.core.manifest.Manifest`) describes it.

    Args:
        manifest: the loaded manifest (its directory holds the file).
        tier: the tier name.
        target: ``"portable"`` or ``"lce"``.
        data: the bytes to check instead of the file's (e.g. a corrupted copy).

    Returns / Raises:
        As :func:`check_tier_binary`; ``KeyError`` for a tier or target the manifest lacks.
    """
    path = manifest.path(tier, target)
    meta = manifest["tiers"][tier]
    entry = meta["files"][target]
    return check_tier_binary(
        path.read_bytes() if data is None else bytes(data),
        tier=tier,
        file=str(path),
        target=target,
        inputs=meta["inputs"],
        outputs=meta["outputs"],
        input_order=entry.get("input_order"),
        output_order=entry.get("output_order"),
        ops=entry.get("ops"),
    )
