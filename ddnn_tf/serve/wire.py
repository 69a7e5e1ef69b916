"""The services' binary message formats (model id, cloud records, masks, media types) as
the *Wire protocol* page specifies them, shared by devices, gateway, cloud and tests."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ddnn_tf.core.comm import (
    feature_nbytes,
    pack_features_batch,
    summary_nbytes,
    unpack_features_batch,
    unpack_features_side_by_side,
)
from ddnn_tf.core.graph import TierGraph, tier_graph
from ddnn_tf.core.manifest import MANIFEST_FILE, Manifest, check_tier_graph, sha256_hex
from ddnn_tf.core.topology import Topology
from ddnn_tf.errors import ConfigError, FormatError

__all__ = [
    "FEATURES_TYPE",
    "SUMMARY_TYPE",
    "DECISION_TYPE",
    "CloudRecords",
    "CloudSpec",
    "WireError",
    "decode_mask",
    "describe_model",
    "encode_cloud_records",
    "encode_features_records",
    "encode_mask",
    "model_graph",
    "model_id",
    "decode_cloud_records",
    "parse_cloud_records",
    "read_cloud_records",
    "summary_size",
]

FEATURES_TYPE = "application/vnd.ddnn.features"
SUMMARY_TYPE = "application/vnd.ddnn.summary"
DECISION_TYPE = "application/vnd.ddnn.decision"


class WireError(FormatError):
    """A message that does not parse; ``offset`` is the byte where parsing stopped."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


def model_id(model: str | Path | Manifest) -> str:
    """The model id: lowercase hex sha256 of the model directory's ``manifest.json`` bytes.

    Args:
        model: the model directory, its ``manifest.json``, or a loaded Manifest.

    Raises:
        FileNotFoundError: no manifest file.
    """
    path = model.directory if isinstance(model, Manifest) else Path(model)
    path = path / MANIFEST_FILE if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"No manifest at {path}.")
    return sha256_hex(path.read_bytes())


def describe_model(manifest: Mapping, mid: str) -> dict:
    """The ``GET /v1/model`` body: the model id and the manifest's own entries."""
    return {
        "model": mid,
        **{key: manifest[key] for key in ("name", "split", "classes", "thresholds", "wire")},
        "tiers": {
            name: {"role": t["role"], "inputs": t["inputs"], "outputs": t["outputs"]}
            for name, t in manifest["tiers"].items()
        },
        "inputs": manifest["inputs"],
    }


def model_graph(manifest: Mapping) -> TierGraph:
    """The tier graph a manifest was converted for (:func:`ddnn_tf.core.graph.tier_graph`
    of its topology and split), checked against its tiers: every service's wiring.

    Raises:
        ValueError: a manifest whose tiers or wire disagree with that graph.
    """
    graph = tier_graph(Topology.from_dict(manifest["topology"]), manifest["split"])
    check_tier_graph(manifest, graph)
    return graph


def summary_size(manifest: Mapping) -> int:
    """Bytes of one encoded class summary under the manifest's ``wire.summary``."""
    summary = manifest["wire"]["summary"]
    nbytes = summary.get("nbytes")
    if isinstance(nbytes, int) and nbytes > 0:
        return nbytes
    return summary_nbytes(len(manifest["classes"]), summary.get("encoding", "float32"))


def encode_mask(bits: Sequence[bool] | np.ndarray) -> bytes:
    """Pack booleans into bytes, most significant bit of byte 0 first, zero padded."""
    return np.packbits(np.asarray(bits, dtype=bool)).tobytes()


def decode_mask(payload: bytes, n: int, *, offset: int = 0) -> np.ndarray:
    """Inverse of :func:`encode_mask` for ``n`` bits.

    Raises:
        WireError: wrong length or non-zero padding bits.
    """
    nbytes = (n + 7) // 8
    if len(payload) != nbytes:
        raise WireError(f"expected a {nbytes}-byte mask of {n} bits, got {len(payload)} bytes.")
    bits = np.unpackbits(np.frombuffer(payload, np.uint8))
    if bits[n:].any():
        raise WireError(f"non-zero padding bits in the mask at byte offset {offset}.", offset)
    return bits[:n].astype(bool)


@dataclass(frozen=True)
class CloudSpec:
    """What the cloud tier receives: its upstream senders and their feature shapes.

    Attributes:
        senders: the cloud ``presence`` input's columns (devices, or edges), in order.
        shapes: per sender, its feature tensor shape (per sample).
        nbytes: per sender, its packed feature bytes.
        inputs: per sender, the cloud input tensor its features feed.
        presence_input: the name of the cloud's presence input.
        tier: the cloud tier's name.
    """

    senders: tuple[str, ...]
    shapes: dict[str, tuple[int, ...]]
    nbytes: dict[str, int]
    inputs: dict[str, str]
    presence_input: str
    tier: str

    @property
    def mask_bytes(self) -> int:
        return (len(self.senders) + 7) // 8

    @functools.cached_property
    def every_sender(self) -> bytes:
        """The presence mask of a record that carries every sender."""
        return encode_mask(np.ones(len(self.senders), bool))

    @functools.cached_property
    def padding(self) -> np.ndarray:
        """The padding bits of every sender's features side by side, as a byte mask."""
        return np.concatenate([_padding(self.shapes[s]) for s in self.senders])

    @classmethod
    def from_manifest(cls, manifest: Mapping) -> CloudSpec:
        """Read the cloud tier's senders from a manifest.

        Raises:
            ValueError: a model whose cloud takes raw inputs (configuration (a)), or a
                manifest whose tiers disagree with its tier graph.
        """
        (cloud,) = model_graph(manifest).by_role("cloud")
        presence = [p for p in cloud.inputs if p.role == "presence"]
        if cloud.composed or not presence:
            raise ConfigError(
                "The cloud tier of this model (split cloud) takes raw sensor inputs; "
                "only models with bit-packed features upstream of the cloud can be served "
                "(convert with a local or edge exit)."
            )
        senders = tuple(c.tier for c in presence[0].columns)
        inputs = {p.source.tier: p.name for p in cloud.inputs if p.role == "features"}
        wire = manifest["wire"]["features"]
        shapes, nbytes = {}, {}
        for s in senders:
            if s not in wire:
                raise ConfigError(f"Invalid manifest (wire.features): no entry for {s!r}.")
            shapes[s] = tuple(int(d) for d in wire[s]["shape"])
            nbytes[s] = int(wire[s].get("nbytes") or feature_nbytes(shapes[s]))
        return cls(senders, shapes, nbytes, inputs, presence[0].name, cloud.name)


def encode_cloud_records(
    spec: CloudSpec, presence: np.ndarray, payloads: Sequence[Mapping[str, bytes]]
) -> bytes:
    """Build a ``POST /v1/cloud`` body from already packed feature payloads.

    Args:
        presence: ``(n, U)`` bool, sender k's message arrived for sample i.
        payloads: per sample, ``{sender: packed features}`` for its present senders.
    """
    parts = []
    for row, sample in zip(np.asarray(presence, bool), payloads, strict=True):
        parts += [encode_mask(row), *(sample[s] for s, on in zip(spec.senders, row) if on)]
    return b"".join(parts)


def encode_features_records(
    spec: CloudSpec, presence: np.ndarray, features: Mapping[str, np.ndarray]
) -> bytes:
    """Build a ``POST /v1/cloud`` body from ±1 feature arrays ``{sender: (n, *shape)}``."""
    presence = np.asarray(presence, bool)
    payloads: list[dict[str, bytes]] = [{} for _ in range(len(presence))]
    for k, s in enumerate(spec.senders):  # only what is sent is packed
        rows = np.flatnonzero(presence[:, k])
        if len(rows):
            for i, payload in zip(rows, pack_features_batch(features[s][rows]), strict=True):
                payloads[i][s] = payload.tobytes()
    return encode_cloud_records(spec, presence, payloads)


def parse_cloud_records(spec: CloudSpec, body: bytes) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Parse a ``POST /v1/cloud`` body.

    Returns:
        ``(presence, features)``: ``(n, U)`` bool and ``{sender: (n, *shape) float32}``
        (zeros where a sender is absent, as the runtime feeds an absent sender).

    Raises:
        WireError: an empty body, a truncated record, a record with no sender present,
            non-zero padding bits (naming the byte offset).
    """
    return decode_cloud_records(spec, [read_cloud_records(spec, body)])


@dataclass(frozen=True)
class CloudRecords:
    """The records of one ``POST /v1/cloud`` body, checked (:func:`read_cloud_records`):
    ``packed``, ``(n, feature bytes)`` uint8, every sender's packed features side by side
    (zeros for an absent one), decoded with the rest of its batch by
    :func:`decode_cloud_records`; ``presence``, ``(n, U)`` bool, or None: every sender."""

    packed: np.ndarray
    presence: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.packed)


def read_cloud_records(spec: CloudSpec, body: bytes) -> CloudRecords:
    """Check a ``POST /v1/cloud`` body; its records stay packed for
    :func:`decode_cloud_records`.

    Raises:
        WireError: as :func:`parse_cloud_records`.
    """
    if not body:
        raise WireError("empty body: expected at least one record.", 0)
    mb, nbytes = spec.mask_bytes, [spec.nbytes[s] for s in spec.senders]
    width = mb + sum(nbytes)
    records = np.frombuffer(body, np.uint8).reshape(-1, width) if len(body) % width == 0 else None
    if records is not None and records[:, :mb].tobytes() == spec.every_sender * len(records):
        presence, packed = None, records[:, mb:]  # what a phone sends, or a full gateway
    else:
        presence, packed = _records_one_by_one(spec, body)  # names a bad record
    if (packed & spec.padding).any():  # name the first record whose padding bits are set
        for s, part in zip(spec.senders, np.split(packed, np.cumsum(nbytes)[:-1], axis=1)):
            bad = np.flatnonzero((part & _padding(spec.shapes[s])).any(axis=1))
            if len(bad):
                try:
                    unpack_features_batch(part[bad[:1]], spec.shapes[s])
                except ValueError as err:
                    raise WireError(f"record {bad[0]}, {s}: {err}") from None
    return CloudRecords(packed, presence)


def decode_cloud_records(
    spec: CloudSpec, items: Sequence[CloudRecords]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The records of several bodies, one after the other, unpacked in one pass, as
    :func:`parse_cloud_records` returns one body's."""
    packed = items[0].packed if len(items) == 1 else np.concatenate([r.packed for r in items])
    unpacked = unpack_features_side_by_side(packed, [spec.shapes[s] for s in spec.senders])
    every = np.ones((len(packed), len(spec.senders)), bool)
    if all(r.presence is None for r in items):
        return every, dict(zip(spec.senders, unpacked, strict=True))
    presence = np.concatenate([every[: r.n] if r.presence is None else r.presence for r in items])
    for k, features in enumerate(unpacked):  # an absent sender's are zeros, as the runtime feeds
        features[~presence[:, k]] = 0.0
    return presence, dict(zip(spec.senders, unpacked, strict=True))


def _padding(shape) -> np.ndarray:
    """The padding bits of a packed feature map, as a byte mask (the bits a map of +1 leaves
    clear)."""
    return ~pack_features_batch(np.ones((1, *shape)))[0]


def _records_one_by_one(spec: CloudSpec, body: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The records of a body, one after the other (any presence; a bad record is named):
    their presence and their senders' bytes side by side (zeros for an absent one)."""
    mb, total, offset = spec.mask_bytes, len(body), 0
    masks: list[np.ndarray] = []
    rows: list[bytes] = []

    def truncated(what: str) -> WireError:
        return WireError(
            f"truncated record {len(masks)} at byte offset {offset}: expected {what}, "
            f"{total - offset} byte(s) left.",
            offset,
        )

    while offset < total:
        i = len(masks)
        if offset + mb > total:
            raise truncated(f"a {mb}-byte presence mask")
        try:
            row = decode_mask(body[offset : offset + mb], len(spec.senders), offset=offset)
        except WireError as err:
            raise WireError(f"record {i}: {err}", offset) from None
        if not row.any():
            raise WireError(f"record {i} at byte offset {offset}: no sender present.", offset)
        offset += mb
        parts = []
        for sender, present in zip(spec.senders, row, strict=True):
            n = spec.nbytes[sender]
            if present and offset + n > total:
                raise truncated(f"{n} bytes of {sender} features")
            parts.append(body[offset : offset + n] if present else bytes(n))
            offset += n if present else 0
        masks.append(row)
        rows.append(b"".join(parts))
    return np.stack(masks), np.frombuffer(b"".join(rows), np.uint8).reshape(len(rows), -1)
