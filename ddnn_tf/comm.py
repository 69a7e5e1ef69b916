"""What end devices send, and what it costs: wire encodings and the paper's cost formula.

Two kinds of payload leave an end device (Sec. III-D/E of the paper):

* a **class summary**, one value per class, sent to the local aggregator for every sample
  (:func:`encode_summary` / :func:`decode_summary`; float32 as in the paper, or float16,
  or int8 with a float32 scale);
* its **binary feature map**, sent upward (to its edge, or to the cloud) only for samples
  not exited locally (:func:`pack_features` / :func:`unpack_features`: one bit per value).

The paper counts the bytes per end device per sample as (eq. 1)

    c = 4 * |C| + (1 - l) * f * o / 8

with ``l`` the fraction of samples exited locally, ``f`` filters and ``o`` the output size
of one filter. :func:`paper_bytes_per_device` is that formula verbatim (a test oracle);
:func:`expected_bytes_per_device` and :class:`LinkCosts` generalise it to any summary
encoding, real packed sizes, hierarchies with an edge and hierarchies without a local exit
(configuration (a) of Fig. 2, raw offload).

All multi-byte values are little-endian. The module imports numpy and the standard library
only, so the device-side runtime can use it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "SUMMARY_ENCODINGS",
    "LinkCosts",
    "decode_summary",
    "edge_bytes_per_sample",
    "encode_summary",
    "expected_bytes_per_device",
    "feature_nbytes",
    "hierarchy_bytes",
    "pack_features",
    "paper_bytes_per_device",
    "raw_offload_bytes",
    "summary_nbytes",
    "unpack_features",
]

#: Wire encodings of a class summary. ``int8`` is symmetric per-vector quantisation:
#: a float32 scale followed by one int8 per class, value = q * scale. ``int4`` carries a
#: summary that is already integer-valued in [-8, 7] (a device whose exit head rounds its
#: logits, see ``ddnn_tf.blocks.SummaryQuantizer``): two's-complement nibbles, two per
#: byte, first class in the low nibble, no header; lossless for such summaries.
SUMMARY_ENCODINGS = ("float32", "float16", "int8", "int4")

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
        raise ValueError(
            f"Expected `encoding` to be one of {', '.join(SUMMARY_ENCODINGS)}. "
            f"Received encoding={encoding!r}."
        )
    return encoding


def _check_num_classes(num_classes: int) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise ValueError(f"Expected `num_classes` to be an int >= 1. Received {num_classes!r}.")
    if num_classes < 1:
        raise ValueError(f"Expected `num_classes` to be an int >= 1. Received {num_classes}.")
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
    enc = _check_encoding(encoding)
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(
            f"Expected one sample's summary as a vector of shape (C,). Received shape {v.shape}."
        )
    if not np.all(np.isfinite(v)):
        raise ValueError(
            "Expected finite summary values. Received NaN or inf; a failed device should send "
            "nothing rather than a non-finite summary."
        )
    if enc == "float32":
        return v.astype(_F32).tobytes()
    if enc == "float16":
        peak = float(np.max(np.abs(v)))
        if peak > _F16_MAX:
            raise ValueError(
                f"Expected summary values within the float16 range (|v| <= {_F16_MAX:g}). "
                f"Received |v| = {peak:g}; use encoding='float32' or 'int8'."
            )
        return v.astype(_F16).tobytes()
    if enc == "int4":
        return _encode_int4(v)
    scale = np.float32(np.max(np.abs(v)) / _INT8_MAX)
    if scale > 0:
        q = np.clip(np.rint(v / np.float64(scale)), -_INT8_MAX, _INT8_MAX).astype(np.int8)
    else:
        q = np.zeros(v.shape, dtype=np.int8)
    return np.array([scale], dtype=_F32).tobytes() + q.tobytes()


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
        raise ValueError(
            f"Expected {expected} bytes for a {encoding} summary of {num_classes} classes. "
            f"Received {len(buf)} bytes; check `num_classes` and `encoding` on both ends."
        )
    if encoding == "float32":
        return np.frombuffer(buf, dtype=_F32).astype(np.float32)
    if encoding == "float16":
        return np.frombuffer(buf, dtype=_F16).astype(np.float32)
    if encoding == "int4":
        return _decode_int4(buf, num_classes)
    scale = np.frombuffer(buf[:_INT8_SCALE_BYTES], dtype=_F32)[0]
    q = np.frombuffer(buf[_INT8_SCALE_BYTES:], dtype=np.int8)
    return (q.astype(np.float32) * scale).astype(np.float32)


def _int4_pairs() -> np.ndarray:
    """Byte -> its (low nibble, high nibble) as signed values, float32."""
    nibbles = np.stack([np.arange(256) & 0xF, np.arange(256) >> 4], axis=1)
    return np.where(nibbles > INT4_RANGE[1], nibbles - 16, nibbles).astype(np.float32)


_INT4_PAIRS = _int4_pairs()


def _encode_int4(v: np.ndarray) -> bytes:
    lo, hi = INT4_RANGE
    values = v.tolist()  # ten or so values: plain Python beats numpy's per-call overhead
    nibbles = [int(x) for x in values]
    if nibbles != values or min(nibbles) < lo or max(nibbles) > hi:
        integral = bool(np.all(v == np.round(v)))
        raise ValueError(
            f"Expected an int4 summary of integers in [{lo}, {hi}] (a quantised exit head's "
            f"output). Received values in [{v.min():g}, {v.max():g}]"
            f"{'' if integral else ', not all integers'}; use "
            f"encoding='float32' or 'int8' for real-valued summaries."
        )
    if len(nibbles) % 2:
        nibbles.append(0)
    return bytes(((a & 0xF) | ((b & 0xF) << 4)) for a, b in zip(nibbles[0::2], nibbles[1::2]))


def _decode_int4(buf: bytes, num_classes: int) -> np.ndarray:
    return _INT4_PAIRS[np.frombuffer(buf, dtype=np.uint8)].reshape(-1)[:num_classes].copy()


# --------------------------------------------------------------------------- features


def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise ValueError(
            f"Expected a shape as a sequence of non-negative ints. Received {shape!r}."
        ) from None
    if any(d < 0 for d in dims):
        raise ValueError(f"Expected non-negative dimensions. Received shape {dims}.")
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
    bad = ~((x == 1) | (x == -1))
    if np.any(bad):
        raise ValueError(
            f"Expected binary features with values in {{-1, +1}}. Received "
            f"{int(np.count_nonzero(bad))} of {x.size} values outside it, e.g. "
            f"{x[bad].ravel()[0]!r}; binarise with sign() first."
        )
    return np.packbits((x > 0).ravel(order="C")).tobytes()


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
        raise ValueError(
            f"Expected {expected} bytes for packed features of shape {dims}. "
            f"Received {len(buf)} bytes; check the feature shape on both ends."
        )
    bits = np.unpackbits(np.frombuffer(buf, dtype=np.uint8))
    if np.any(bits[n:]):
        raise ValueError(
            f"Expected zero padding bits after {n} feature bits for shape {dims}. "
            "Received non-zero padding; the payload was packed for another shape."
        )
    return (bits[:n].astype(np.float32) * 2.0 - 1.0).reshape(dims)


# --------------------------------------------------------------------------- cost model


def _fraction(exit_fraction: Mapping[str, float], name: str, *, required: bool) -> float:
    if name not in exit_fraction:
        if required:
            raise ValueError(
                f"Expected `exit_fraction` to contain {name!r}. Received keys "
                f"{sorted(exit_fraction)}."
            )
        return 0.0
    return float(exit_fraction[name])


def _check_fractions(exit_fraction: Mapping[str, float]) -> None:
    if not isinstance(exit_fraction, Mapping):
        raise ValueError(
            "Expected `exit_fraction` to be a mapping exit name -> fraction, e.g. "
            f"{{'local': 0.6, 'cloud': 0.4}}. Received {type(exit_fraction).__name__}."
        )
    for name, value in exit_fraction.items():
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(
                f"Expected exit fractions in [0, 1] (not percentages). Received {name}={value!r}."
            )
    total = sum(float(v) for v in exit_fraction.values())
    if total > 1.0 + 1e-6:
        raise ValueError(
            f"Expected exit fractions summing to at most 1. Received a sum of {total:g} "
            f"from {dict(exit_fraction)}."
        )


def _check_nbytes(value: float, name: str) -> float:
    v = float(value)
    if not (math.isfinite(v) and v >= 0.0):
        raise ValueError(f"Expected `{name}` to be a non-negative byte count. Received {value!r}.")
    return v


def paper_bytes_per_device(
    num_classes: int,
    filters: int,
    output_size: int,
    local_exit_fraction: float,
    summary_bytes_per_class: float = 4,
) -> float:
    """The paper's eq. (1): bytes per end device per sample, without rounding.

    ``c = summary_bytes_per_class * |C| + (1 - l) * f * o / 8``.

    Args:
        num_classes: ``|C|``.
        filters: ``f``, filters of the device's last ConvP block.
        output_size: ``o``, the output size of one filter (``h * w``).
        local_exit_fraction: ``l`` in ``[0, 1]``.
        summary_bytes_per_class: 4 in the paper (one float32 per class).

    Returns:
        Expected bytes, a float.

    Raises:
        ValueError: if ``local_exit_fraction`` is outside ``[0, 1]``.

    Example:
        >>> round(paper_bytes_per_device(3, 4, 16 * 16, 0.6082), 4)  # Table II, T = 0.8: 62 B
        62.1504
    """
    lf = float(local_exit_fraction)
    if not 0.0 <= lf <= 1.0:
        raise ValueError(
            f"Expected `local_exit_fraction` in [0, 1] (not a percentage). Received {lf!r}."
        )
    return summary_bytes_per_class * num_classes + (1.0 - lf) * filters * output_size / 8


@dataclass(frozen=True)
class LinkCosts:
    """Expected bytes per sample on each link type of a DDNN hierarchy.

    Attributes:
        device_to_local: per end device: its class summary to the local aggregator (0
            without a local exit).
        device_to_upper: per end device: its features (or raw input) to its edge, or to the
            cloud when there is no edge.
        edge_to_cloud: per edge: the edge's features to the cloud (0 without an edge).

    Example:
        >>> costs = LinkCosts.from_exit_fraction(
        ...     summary_nbytes=12, feature_nbytes=128, exit_fraction={"local": 0.5, "cloud": 0.5})
        >>> costs.per_device, costs.total(num_devices=6)
        (76.0, 456.0)
    """

    device_to_local: float
    device_to_upper: float
    edge_to_cloud: float = 0.0

    @property
    def per_device(self) -> float:
        """Bytes one end device sends per sample (the paper's ``c``)."""
        return self.device_to_local + self.device_to_upper

    def total(self, *, num_devices: int, num_edges: int = 0) -> float:
        """Bytes on all links together per sample, for ``num_devices`` and ``num_edges``."""
        if num_devices < 0 or num_edges < 0:
            raise ValueError(
                f"Expected non-negative counts. Received num_devices={num_devices}, "
                f"num_edges={num_edges}."
            )
        return num_devices * self.per_device + num_edges * self.edge_to_cloud

    def to_dict(self) -> dict[str, float]:
        """JSON-able dict of the three link costs and ``per_device``."""
        return {
            "device_to_local": float(self.device_to_local),
            "device_to_upper": float(self.device_to_upper),
            "edge_to_cloud": float(self.edge_to_cloud),
            "per_device": float(self.per_device),
        }

    @classmethod
    def from_exit_fraction(
        cls,
        *,
        summary_nbytes: float,
        feature_nbytes: float,
        exit_fraction: Mapping[str, float],
        has_local: bool = True,
        edge_feature_nbytes: float | None = None,
    ) -> LinkCosts:
        """Link costs from exit fractions; see :func:`expected_bytes_per_device` and
        :func:`edge_bytes_per_sample` for the formulas.

        Args:
            summary_nbytes: bytes of one encoded class summary.
            feature_nbytes: bytes of one device's packed features (or raw input).
            exit_fraction: fractions per exit name, e.g. ``ExitReport.exit_fraction``.
            has_local: whether the hierarchy has a local exit.
            edge_feature_nbytes: bytes an edge sends to the cloud per sample it does not
                exit; required when ``exit_fraction`` has an ``"edge"`` entry.

        Raises:
            ValueError: as the two functions, or if ``exit_fraction`` has ``"edge"`` but
                ``edge_feature_nbytes`` is missing.
        """
        device = expected_bytes_per_device(
            summary_nbytes=summary_nbytes,
            feature_nbytes=feature_nbytes,
            exit_fraction=exit_fraction,
            has_local=has_local,
        )
        to_local = _check_nbytes(summary_nbytes, "summary_nbytes") if has_local else 0.0
        edge = 0.0
        if "edge" in exit_fraction:
            if edge_feature_nbytes is None:
                raise ValueError(
                    "Expected `edge_feature_nbytes` for a hierarchy with an edge exit. "
                    "Received None; pass the bytes an edge forwards to the cloud per sample."
                )
            edge = edge_bytes_per_sample(
                edge_feature_nbytes=edge_feature_nbytes, exit_fraction=exit_fraction
            )
        return cls(device_to_local=to_local, device_to_upper=device - to_local, edge_to_cloud=edge)


def expected_bytes_per_device(
    *,
    summary_nbytes: float,
    feature_nbytes: float,
    exit_fraction: Mapping[str, float],
    has_local: bool = True,
) -> float:
    """Expected bytes one end device sends per sample: eq. (1) generalised.

    With a local exit, every device sends its summary to the local aggregator for every
    sample, and its features upward (to its edge, or to the cloud) for every sample not
    exited locally: ``summary_nbytes + (1 - l) * feature_nbytes``, ``l =
    exit_fraction["local"]``. With an edge the device bytes are the same (the features go to
    the edge); edge -> cloud traffic is :func:`edge_bytes_per_sample`.

    Without a local exit (``has_local=False``) no summary is sent and ``summary_nbytes`` is
    ignored: the device sends ``feature_nbytes`` every sample. Configuration (a) of the
    paper, raw offload, is ``has_local=False`` with ``feature_nbytes`` = raw input bytes.

    Unclassified samples (``exit_fraction["unclassified"]``) are charged like samples that
    went upward, as in eq. (1), which knows no failures; measured bytes come from the
    runtime, not from here.

    Args:
        summary_nbytes: bytes of one encoded summary, e.g. ``comm.summary_nbytes(3)``.
        feature_nbytes: bytes of one device's packed features, e.g.
            ``comm.feature_nbytes((16, 16, 4))``, or of its raw input.
        exit_fraction: fractions per exit name (``ExitReport.exit_fraction``); must contain
            ``"local"`` when ``has_local``, and must not when not.
        has_local: whether the hierarchy has a local exit.

    Returns:
        Expected bytes per device per sample, a float (not rounded).

    Raises:
        ValueError: on negative byte counts, fractions outside ``[0, 1]`` or summing past 1,
            or a ``"local"`` entry that contradicts ``has_local``.

    Example:
        >>> expected_bytes_per_device(summary_nbytes=12, feature_nbytes=128,
        ...                           exit_fraction={"local": 0.75, "cloud": 0.25})
        44.0
        >>> expected_bytes_per_device(summary_nbytes=0, feature_nbytes=3072,
        ...                           exit_fraction={"cloud": 1.0}, has_local=False)
        3072.0
    """
    _check_fractions(exit_fraction)
    features = _check_nbytes(feature_nbytes, "feature_nbytes")
    if not has_local:
        if "local" in exit_fraction:
            raise ValueError(
                "Expected no 'local' exit fraction with has_local=False. Received "
                f"{dict(exit_fraction)}; pass has_local=True for a hierarchy with a local exit."
            )
        return features
    summary = _check_nbytes(summary_nbytes, "summary_nbytes")
    local = _fraction(exit_fraction, "local", required=True)
    return summary + (1.0 - local) * features


def edge_bytes_per_sample(
    *, edge_feature_nbytes: float, exit_fraction: Mapping[str, float]
) -> float:
    """Expected bytes one edge sends to the cloud per sample.

    ``(1 - l - e) * edge_feature_nbytes`` with ``l = exit_fraction.get("local", 0)`` and
    ``e = exit_fraction["edge"]``: the edge forwards its features for every sample that
    neither the local nor the edge exit classified.

    Args:
        edge_feature_nbytes: bytes of the edge's (packed) output per sample.
        exit_fraction: fractions per exit name; must contain ``"edge"``.

    Returns:
        Expected bytes per edge per sample, a float.

    Raises:
        ValueError: if ``"edge"`` is missing, on fractions outside ``[0, 1]`` or summing
            past 1, or a negative byte count.

    Example:
        >>> edge_bytes_per_sample(edge_feature_nbytes=64,
        ...                       exit_fraction={"local": 0.5, "edge": 0.25, "cloud": 0.25})
        16.0
    """
    _check_fractions(exit_fraction)
    nbytes = _check_nbytes(edge_feature_nbytes, "edge_feature_nbytes")
    local = _fraction(exit_fraction, "local", required=False)
    edge = _fraction(exit_fraction, "edge", required=True)
    return max(0.0, 1.0 - local - edge) * nbytes


def raw_offload_bytes(
    raw_bytes_per_device: float | Sequence[int],
    *,
    bytes_per_value: int = 1,
    num_devices: int = 1,
) -> float:
    """Bytes per sample of configuration (a): every device sends its raw input every sample.

    Args:
        raw_bytes_per_device: the raw input size in bytes, or its shape (e.g.
            ``(32, 32, 3)``), multiplied by ``bytes_per_value``.
        bytes_per_value: bytes per raw value when a shape is given (1 for uint8 pixels).
        num_devices: devices that offload; the result is summed over them.

    Returns:
        Bytes per sample over ``num_devices`` devices (per device with the default 1).

    Raises:
        ValueError: on a negative size or count.

    Example:
        >>> raw_offload_bytes((32, 32, 3))  # the paper's 3072 B per image (Sec. IV-H)
        3072.0
    """
    if isinstance(raw_bytes_per_device, (int, float, np.integer, np.floating)):
        per_device = _check_nbytes(raw_bytes_per_device, "raw_bytes_per_device")
    else:
        per_device = float(math.prod(_check_shape(raw_bytes_per_device)) * bytes_per_value)
    if num_devices < 0 or bytes_per_value < 0:
        raise ValueError(
            f"Expected non-negative counts. Received num_devices={num_devices}, "
            f"bytes_per_value={bytes_per_value}."
        )
    return per_device * num_devices


def hierarchy_bytes(
    topology,
    exit_fraction: Mapping[str, float],
    *,
    raw_bytes_per_device: Sequence[float],
    summary_encoding: str = "float32",
    failed: Sequence[bool] | None = None,
) -> dict[str, float]:
    """Expected bytes per sample of a :class:`~ddnn_tf.topology.Topology`'s links.

    Args:
        topology: the hierarchy (its feature shapes give each device's packed size).
        exit_fraction: fractions per exit name, e.g. ``ExitReport.exit_fraction``.
        raw_bytes_per_device: raw input bytes per device (what configuration (a) sends).
        summary_encoding: wire encoding of class summaries.
        failed: optional bool per device; failed devices send nothing and are left out
            of the per-device mean.

    Returns:
        ``{"bytes_per_device": mean over live devices, "raw_bytes_per_device": mean
        raw bytes over live devices, "edge_to_cloud": per edge (0 without edges)}``.
    """
    n = topology.num_devices
    live = [d for d in range(n) if not (failed is not None and failed[d])]
    fractions = {k: v for k, v in exit_fraction.items() if k in topology.exits}
    summary = summary_nbytes(topology.num_classes, summary_encoding)
    per_device = []
    for d in live:
        if topology.offloads_raw:
            per_device.append(float(raw_bytes_per_device[d]))
        else:
            per_device.append(
                expected_bytes_per_device(
                    summary_nbytes=summary,
                    feature_nbytes=feature_nbytes(topology.feature_shape(d)),
                    exit_fraction=fractions,
                    has_local=topology.has_local,
                )
            )
    # Each live edge forwards its packed features for every sample neither the local nor
    # the edge exit classified.
    live_edges = [g for g in range(topology.num_edges) if any(d in live for d in topology.edges[g])]
    forwarded = max(0.0, 1.0 - fractions.get("local", 0.0) - fractions.get("edge", 0.0))
    sizes = [feature_nbytes(topology.edge_feature_shape(g)) for g in live_edges]
    edge = forwarded * float(np.mean(sizes)) if sizes else 0.0
    return {
        "bytes_per_device": float(np.mean(per_device)) if per_device else 0.0,
        "raw_bytes_per_device": float(np.mean([raw_bytes_per_device[d] for d in live]))
        if live
        else 0.0,
        "edge_to_cloud": float(edge),
    }
