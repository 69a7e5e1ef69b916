"""What end devices send: the wire encodings of summaries, feature maps and raw input.

Two kinds of payload leave an end device (Sec. III-D/E of the paper):

* a **class summary**, one value per class, sent to the local aggregator for every sample
  (:func:`encode_summary` / :func:`decode_summary`; float32 as in the paper, or float16,
  or int8 with a float32 scale);
* its **binary feature map**, sent upward (to its edge, or to the cloud) only for samples
  not exited locally (:func:`pack_features` / :func:`unpack_features`: one bit per value).

What these messages cost (bytes per device, energy and latency on a radio) is
:mod:`ddnn_tf.core.cost`.

All multi-byte values are little-endian. The module imports numpy and the standard library
only, so the device-side runtime can use it.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence

import numpy as np

from ddnn_tf.core.vocab import SUMMARY_ENCODINGS
from ddnn_tf.errors import ConfigError

__all__ = [
    "SUMMARY_ENCODINGS",
    "decode_raw",
    "decode_summaries",
    "decode_summary",
    "encode_raw",
    "encode_summaries",
    "encode_summary",
    "feature_nbytes",
    "pack_features",
    "pack_features_batch",
    "summary_nbytes",
    "unpack_features",
    "unpack_features_batch",
    "unpack_features_side_by_side",
]

#: Wire encodings of a class summary. ``int8`` is symmetric per-vector quantisation:
#: a float32 scale followed by one int8 per class, value = q * scale. ``int4`` carries a
#: summary that is already integer-valued in [-8, 7] (a device whose exit head rounds its
#: logits, see ``ddnn_tf.keras.blocks.SummaryQuantizer``): two's-complement nibbles, two per
#: byte, first class in the low nibble, no header; lossless for such summaries.

_F32 = np.dtype("<f4")
_F16 = np.dtype("<f2")
_INT8_SCALE_BYTES = 4
_INT8_MAX = 127
_F16_MAX = float(np.finfo(np.float16).max)
#: Range of the ``int4`` summary encoding.
INT4_RANGE = (-8, 7)


# --------------------------------------------------------------------------- summaries


def _check_encoding(encoding: str) -> str:
    if encoding not in SUMMARY_ENCODINGS:
        raise ConfigError(
            f"Expected `encoding` to be one of {', '.join(SUMMARY_ENCODINGS)}. "
            f"Received encoding={encoding!r}."
        )
    return encoding


def _check_num_classes(num_classes: int) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise ConfigError(f"Expected `num_classes` to be an int >= 1. Received {num_classes!r}.")
    if num_classes < 1:
        raise ConfigError(f"Expected `num_classes` to be an int >= 1. Received {num_classes}.")
    return int(num_classes)


def summary_nbytes(num_classes: int, encoding: str = "float32") -> int:
    """Size of one encoded class summary.

    Args:
        num_classes: ``|C|``.
        encoding: one of :data:`SUMMARY_ENCODINGS`.

    Returns:
        ``4 * C`` for float32, ``2 * C`` for float16, ``C + 4`` for int8 (the 4 bytes carry
        the float32 scale), ``ceil(C / 2)`` for int4.

    Raises:
        ValueError: on an unknown encoding or ``num_classes < 1``.

    Example:
        >>> [summary_nbytes(3, e) for e in SUMMARY_ENCODINGS]
        [12, 6, 7, 2]
    """
    c = _check_num_classes(num_classes)
    enc = _check_encoding(encoding)
    if enc == "float32":
        return 4 * c
    if enc == "float16":
        return 2 * c
    if enc == "int4":
        return (c + 1) // 2
    return c + _INT8_SCALE_BYTES


def encode_summary(values: np.ndarray, encoding: str = "float32") -> bytes:
    """Encode one sample's class summary for the wire.

    ``int8`` stores ``scale = max|v| / 127`` as a little-endian float32, then
    ``q = round(v / scale)`` as int8; decoding gives ``q * scale``, within ``scale / 2`` of
    ``v`` (all zeros encode with scale 0).

    Args:
        values: finite float vector ``(C,)`` (probabilities or logits).
        encoding: one of :data:`SUMMARY_ENCODINGS`.

    Returns:
        ``summary_nbytes(C, encoding)`` bytes.

    Raises:
        ValueError: on an unknown encoding, a non-1-D or empty vector, non-finite values,
            values beyond the float16 range with ``float16``, or values that are not
            integers in [-8, 7] with ``int4`` (it never rounds: it is lossless or refuses).

    Example:
        >>> len(encode_summary(np.array([0.1, 0.7, 0.2]), "int8"))
        7
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ConfigError(
            f"Expected one sample's summary as a vector of shape (C,). Received shape {v.shape}."
        )
    return encode_summaries(v[None], encoding)[0].tobytes()


def decode_summary(payload: bytes, num_classes: int, encoding: str = "float32") -> np.ndarray:
    """Decode a class summary written by :func:`encode_summary`.

    Args:
        payload: the received bytes.
        num_classes: ``|C|``.
        encoding: the encoding it was written with.

    Returns:
        float32 array ``(C,)`` (a fresh, writable array).

    Raises:
        ValueError: if the payload length is not ``summary_nbytes(num_classes, encoding)``,
            or on an unknown encoding.

    Example:
        >>> decode_summary(encode_summary(np.array([0.25, 0.75])), 2).tolist()
        [0.25, 0.75]
    """
    expected = summary_nbytes(num_classes, encoding)
    buf = bytes(payload)
    if len(buf) != expected:
        raise ConfigError(
            f"Expected {expected} bytes for a {encoding} summary of {num_classes} classes. "
            f"Received {len(buf)} bytes; check `num_classes` and `encoding` on both ends."
        )
    return decode_summaries(np.frombuffer(buf, np.uint8)[None], num_classes, encoding)[0]


def _int4_pairs() -> np.ndarray:
    """Byte -> its (low nibble, high nibble) as signed values, float32."""
    nibbles = np.stack([np.arange(256) & 0xF, np.arange(256) >> 4], axis=1)
    return np.where(nibbles > INT4_RANGE[1], nibbles - 16, nibbles).astype(np.float32)


_INT4_PAIRS = _int4_pairs()


def _int4_refused(v: np.ndarray) -> ConfigError:
    lo, hi = INT4_RANGE
    integral = bool(np.all(v == np.round(v)))
    return ConfigError(
        f"Expected an int4 summary of integers in [{lo}, {hi}] (a quantised exit head's "
        f"output). Received values in [{v.min():g}, {v.max():g}]"
        f"{'' if integral else ', not all integers'}; use "
        f"encoding='float32' or 'int8' for real-valued summaries."
    )


# --------------------------------------------------------------------------- features


#: The eight signs (-1.0 / +1.0, float32) a byte of packed features holds, most
#: significant bit first, for each of the 256 byte values.
_SIGNS = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).astype(np.float32) * 2 - 1


def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise ConfigError(
            f"Expected a shape as a sequence of non-negative ints. Received {shape!r}."
        ) from None
    if any(d < 0 for d in dims):
        raise ConfigError(f"Expected non-negative dimensions. Received shape {dims}.")
    return dims


def feature_nbytes(shape: Sequence[int]) -> int:
    """Bytes :func:`pack_features` produces for a ±1 tensor of ``shape``.

    Args:
        shape: the feature tensor's shape, e.g. ``(16, 16, 4)`` (h, w, f).

    Returns:
        ``ceil(prod(shape) / 8)``.

    Raises:
        ValueError: on a malformed shape.

    Example:
        >>> feature_nbytes((16, 16, 4)), feature_nbytes((5, 7, 4))
        (128, 18)
    """
    return (math.prod(_check_shape(shape)) + 7) // 8


def pack_features(features: np.ndarray) -> bytes:
    """Bit-pack one sample's binary (±1) feature tensor: +1 -> bit 1, -1 -> bit 0.

    Bits follow C order, most significant bit first (``np.packbits``); the last byte is
    padded with zero bits.

    Args:
        features: array of any shape holding only -1 and +1.

    Returns:
        ``feature_nbytes(features.shape)`` bytes.

    Raises:
        ValueError: if any value is not -1 or +1.

    Example:
        >>> pack_features(np.array([1, -1, -1, -1, -1, -1, -1, 1, 1]))
        b'\\x81\\x80'
    """
    x = np.asarray(features)
    return pack_features_batch(x.reshape(1, -1))[0].tobytes()


def unpack_features(payload: bytes, shape: Sequence[int]) -> np.ndarray:
    """Inverse of :func:`pack_features`.

    Args:
        payload: the received bytes.
        shape: the feature tensor's shape.

    Returns:
        float32 array of ``shape`` holding -1.0 and +1.0.

    Raises:
        ValueError: if the payload length is not ``feature_nbytes(shape)``, or if its padding
            bits are not zero (a sign that ``shape`` does not match the sender's).

    Example:
        >>> unpack_features(b'\\x81\\x80', (9,)).tolist()
        [1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, 1.0, 1.0]
    """
    dims = _check_shape(shape)
    n = math.prod(dims)
    expected = (n + 7) // 8
    buf = bytes(payload)
    if len(buf) != expected:
        raise ConfigError(
            f"Expected {expected} bytes for packed features of shape {dims}. "
            f"Received {len(buf)} bytes; check the feature shape on both ends."
        )
    return unpack_features_batch(np.frombuffer(buf, np.uint8)[None], dims)[0]


# --------------------------------------------------------------------------- batches
# The codecs proper, a whole batch at once: row ``i`` of a batch payload holds exactly the
# bytes of sample ``i``'s message (so its length is that message's size). The one-sample
# functions above are these with a batch of one.


def encode_summaries(values: np.ndarray, encoding: str = "float32") -> np.ndarray:
    """Encode the class summaries of a batch, one payload per row.

    Args:
        values: finite ``(N, C)`` array.
        encoding: one of :data:`SUMMARY_ENCODINGS`.

    Returns:
        uint8 ``(N, summary_nbytes(C, encoding))``; row ``i`` is
        ``encode_summary(values[i], encoding)``.

    Raises:
        ValueError: as :func:`encode_summary`, for any row.

    Example:
        >>> p = encode_summaries(np.array([[0.25, 0.75], [1.0, 0.0]]))
        >>> p.shape, p[0].tobytes() == encode_summary(np.array([0.25, 0.75]))
        ((2, 8), True)
    """
    enc = _check_encoding(encoding)
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] == 0:
        raise ConfigError(f"Expected summaries of shape (N, C). Received shape {v.shape}.")
    if not np.all(np.isfinite(v)):
        raise ConfigError(
            "Expected finite summary values. Received NaN or inf; a failed device should send "
            "nothing rather than a non-finite summary."
        )
    n = len(v)
    if enc == "float32":
        return np.ascontiguousarray(v.astype(_F32)).view(np.uint8).reshape(n, -1)
    if enc == "float16":
        peak = float(np.max(np.abs(v))) if v.size else 0.0
        if peak > _F16_MAX:
            raise ConfigError(
                f"Expected summary values within the float16 range (|v| <= {_F16_MAX:g}). "
                f"Received |v| = {peak:g}; use encoding='float32' or 'int8'."
            )
        return np.ascontiguousarray(v.astype(_F16)).view(np.uint8).reshape(n, -1)
    if enc == "int4":
        lo, hi = INT4_RANGE
        if v.size and not (np.all(v == np.round(v)) and v.min() >= lo and v.max() <= hi):
            raise _int4_refused(v)
        q = v.astype(np.int64) & 0xF
        if q.shape[1] % 2:
            q = np.pad(q, ((0, 0), (0, 1)))
        return (q[:, 0::2] | (q[:, 1::2] << 4)).astype(np.uint8)
    scale = (np.max(np.abs(v), axis=1) / _INT8_MAX).astype(_F32)
    safe = np.where(scale > 0, scale, 1).astype(np.float64)[:, None]
    q = np.clip(np.rint(v / safe), -_INT8_MAX, _INT8_MAX).astype(np.int8)
    q[scale == 0] = 0
    head = np.ascontiguousarray(scale).view(np.uint8).reshape(n, _INT8_SCALE_BYTES)
    return np.concatenate([head, q.view(np.uint8)], axis=1)


def decode_summaries(
    payload: np.ndarray, num_classes: int, encoding: str = "float32"
) -> np.ndarray:
    """Decode a batch of summaries written by :func:`encode_summaries`.

    Args:
        payload: uint8 ``(N, summary_nbytes(num_classes, encoding))``.
        num_classes: ``|C|``.
        encoding: the encoding it was written with.

    Returns:
        float32 ``(N, C)``; row ``i`` is ``decode_summary(payload[i], ...)``.

    Raises:
        ValueError: a payload of the wrong width, or an unknown encoding.
    """
    expected = summary_nbytes(num_classes, encoding)
    buf = np.ascontiguousarray(payload, dtype=np.uint8)
    if buf.ndim != 2 or buf.shape[1] != expected:
        raise ConfigError(
            f"Expected (N, {expected}) bytes for {encoding} summaries of {num_classes} classes. "
            f"Received shape {buf.shape}; check `num_classes` and `encoding` on both ends."
        )
    if encoding == "float32":
        return buf.view(_F32).astype(np.float32)
    if encoding == "float16":
        return buf.view(_F16).astype(np.float32)
    if encoding == "int4":
        return _INT4_PAIRS[buf].reshape(len(buf), -1)[:, :num_classes].copy()
    scale = np.ascontiguousarray(buf[:, :_INT8_SCALE_BYTES]).view(_F32)
    q = buf[:, _INT8_SCALE_BYTES:].view(np.int8)
    return (q.astype(np.float32) * scale).astype(np.float32)


def pack_features_batch(features: np.ndarray) -> np.ndarray:
    """Bit-pack a batch of ±1 feature tensors, one payload per row.

    Args:
        features: ``(N, ...)`` array holding only -1 and +1.

    Returns:
        uint8 ``(N, feature_nbytes(features.shape[1:]))``; row ``i`` is
        ``pack_features(features[i])``.

    Raises:
        ValueError: if any value is not -1 or +1.

    Example:
        >>> pack_features_batch(np.array([[1, -1, 1], [-1, -1, 1]])).tolist()
        [[160], [32]]
    """
    x = np.asarray(features)
    if x.ndim < 1:
        raise ConfigError(f"Expected a batch of features (N, ...). Received shape {x.shape}.")
    flat = x.reshape(len(x), -1)
    positive = flat == 1
    if not np.all(positive | (flat == -1)):
        bad = ~(positive | (flat == -1))
        raise ConfigError(
            f"Expected binary features with values in {{-1, +1}}. Received "
            f"{int(np.count_nonzero(bad))} of {x.size} values outside it, e.g. "
            f"{flat[bad][0]!r}; binarise with sign() first."
        )
    return np.packbits(positive, axis=1)


def unpack_features_batch(payload: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Inverse of :func:`pack_features_batch`.

    Args:
        payload: uint8 ``(N, feature_nbytes(shape))``.
        shape: one sample's feature shape.

    Returns:
        float32 ``(N, *shape)`` holding -1.0 and +1.0.

    Raises:
        ValueError: a payload of the wrong width, or non-zero padding bits.
    """
    (out,) = unpack_features_side_by_side(payload, [shape])
    return out


def unpack_features_side_by_side(
    payload: np.ndarray, shapes: Sequence[Sequence[int]]
) -> list[np.ndarray]:
    """Several senders' packed features, side by side in each row (each sender's
    :func:`pack_features_batch` bytes, one after the other), unpacked in one pass.

    Args:
        payload: uint8 ``(N, sum of feature_nbytes(shape))``.
        shapes: each sender's feature shape, in the order of the row.

    Returns:
        Per sender, float32 ``(N, *shape)`` holding -1.0 and +1.0.

    Raises:
        ValueError: a payload of the wrong width, or non-zero padding bits.
    """
    try:  # the layout of shapes seen before is looked up, not computed again
        key = tuple(tuple(shape) for shape in shapes)
    except TypeError:  # not a sequence: _check_shape says so
        key = tuple(_check_shape(shape) for shape in shapes)
    dims, bits, starts, padding = _layout(key)
    buf = np.asarray(payload, dtype=np.uint8)
    if buf.ndim != 2 or buf.shape[1] != len(padding):
        raise ConfigError(
            f"Expected (N, {len(padding)}) bytes for packed features of shape(s) "
            f"{', '.join(map(str, dims))}. Received shape {buf.shape}; check the feature "
            "shape on both ends."
        )
    if (buf & padding).any():
        bad = np.flatnonzero((buf & padding).any(axis=0))[0]
        b, d = next((b, d) for s, b, d in zip(starts, bits, dims, strict=True) if 8 * bad < s + b)
        raise ConfigError(
            f"Expected zero padding bits after {b} feature bits for shape {d}. "
            "Received non-zero padding; the payload was packed for another shape."
        )
    signs = _SIGNS[buf].reshape(len(buf), -1)  # one lookup per byte: its 8 signs
    return [
        np.ascontiguousarray(signs[:, start : start + b]).reshape(len(buf), *d)
        for start, b, d in zip(starts, bits, dims, strict=True)
    ]


@functools.lru_cache(maxsize=64)
def _layout(shapes: tuple[tuple[int, ...], ...]):
    """Where each sender's bits lie in a row of packed features side by side: its shape,
    its bit count, its first bit, and the row's padding bits (each sender's last byte's
    low bits) as a byte mask."""
    dims = [_check_shape(shape) for shape in shapes]
    bits = [math.prod(d) for d in dims]
    ends = list(itertools.accumulate((b + 7) // 8 for b in bits))
    padding = np.zeros(ends[-1] if ends else 0, np.uint8)
    for end, b in zip(ends, bits, strict=True):
        padding[end - 1] = (1 << (-b % 8)) - 1
    return dims, bits, [8 * (end - (b + 7) // 8) for end, b in zip(ends, bits)], padding


def encode_raw(x: np.ndarray, dtype: str = "float32", scale: float | None = None) -> np.ndarray:
    """Raw sensor input on the wire (configuration (a)), one payload per row.

    ``uint8`` sends ``clip(round(x / scale), 0, 255)``; ``float32`` (or another float
    dtype) sends the values little-endian.

    Args:
        x: ``(N, ...)`` float input.
        dtype: the wire dtype.
        scale: the value of one uint8 step (required for ``uint8``).

    Returns:
        uint8 ``(N, bytes per sample)``.

    Raises:
        ValueError: ``uint8`` without a scale.

    Example:
        >>> encode_raw(np.array([[0.0, 1.0]]), "uint8", 1 / 255).tolist()
        [[0, 255]]
    """
    x = np.asarray(x)
    n = len(x)
    if np.dtype(dtype) == np.uint8:
        if scale is None:
            raise ConfigError("Raw uint8 messages need a scale (the value of one step).")
        q = np.clip(np.rint(x / np.float32(scale)), 0, 255).astype(np.uint8)
        return q.reshape(n, -1)
    wire = np.dtype(dtype).newbyteorder("<")
    return np.ascontiguousarray(x.astype(wire)).view(np.uint8).reshape(n, -1)


def decode_raw(
    payload: np.ndarray, shape: Sequence[int], dtype: str = "float32", scale: float | None = None
) -> np.ndarray:
    """Inverse of :func:`encode_raw`: float32 ``(N, *shape)``.

    Raises:
        ValueError: ``uint8`` without a scale.
    """
    buf = np.ascontiguousarray(payload, dtype=np.uint8)
    dims = _check_shape(shape)
    if np.dtype(dtype) == np.uint8:
        if scale is None:
            raise ConfigError("Raw uint8 messages need a scale (the value of one step).")
        values = buf.astype(np.float32) * np.float32(scale)
    else:
        values = buf.view(np.dtype(dtype).newbyteorder("<")).astype(np.float32)
    return values.reshape(len(buf), *dims)
