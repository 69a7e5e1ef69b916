"""The Hierarchy orchestrator: a converted DDNN's tiers, their messages, exits and failures.

:class:`Hierarchy` loads a converted model directory (``manifest.json`` and one binary per
tier), and classifies samples the way the deployed hierarchy would (Sec. III-D/E):

1. every end device that is alive runs its tier and sends its class summary to the local
   aggregator (encoded with :func:`ddnn_tf.comm.encode_summary`, decoded on arrival);
2. the local aggregator combines the summaries that arrived; a sample whose normalized
   entropy is ``<= T_local`` exits there;
3. otherwise every alive device bit-packs its feature map
   (:func:`ddnn_tf.comm.pack_features`) and sends it up: to its edge, which may exit the
   sample at ``T_edge`` (through the edge aggregator) or forward its own packed features
   to the cloud, or straight to the cloud;
4. the last exit (the cloud) classifies every sample still pending.

Messages are emulated for real: the bytes counted on a link are the lengths of the
payloads actually encoded, and a receiving tier only sees the decoded payloads. A sample
that exits at one tier never runs the tiers above it; in batched execution the upper
tiers run on the sub-batch still pending.

**Failures.** A failed device sends nothing (and computes nothing). The aggregators see it
as absent through their ``presence`` input, built from the messages that arrived: max and
avg combine the present inputs only, and concatenation fills a missing input's slot with
zeros (that logic lives inside the converted aggregator and cloud binaries). An edge
counts as present when any of its devices is. A sample whose every device failed is
*unclassified*: exit index ``-1``, prediction ``-1``, no tier runs for it. Every input
sample gets exactly one result.

Exit decisions use :func:`ddnn_tf.exits.exit_points` (the Keras evaluation's own code) on
probabilities from :func:`ddnn_tf.exits.softmax`, so the two cannot drift apart.

Only numpy, the standard library and the interpreters are imported (no TensorFlow).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ddnn_tf.checks import check_views, failed_mask
from ddnn_tf.comm import decode_summary, encode_summary, pack_features, unpack_features
from ddnn_tf.exits import exit_points, predictions, resolve_thresholds, softmax
from ddnn_tf.manifest import Manifest, load_manifest
from ddnn_tf.runtime.tiers import TARGETS, TierRunner
from ddnn_tf.topology import Topology

__all__ = ["LINKS", "Hierarchy", "RunResult", "draw_presence"]

#: Links whose bytes are recorded per sample: ``(N, D)`` for device links, ``(N, E)`` for
#: edge links.
LINKS = ("device_to_local", "device_to_upper", "edge_to_aggregator", "edge_to_cloud")

_FEATURE_ENCODING = "bitpacked-pm1"


def draw_presence(
    n: int, num_devices: int, *, fail=None, fail_prob: float = 0.0, seed: int = 0
) -> np.ndarray:
    """Which devices' messages arrive, per sample: ``(n, num_devices)`` bool.

    Args:
        n: number of samples.
        num_devices: number of end devices.
        fail: devices that fail on every sample (``"0,3"``, ``5``, ``[0, 3]`` or None).
        fail_prob: probability that each other device fails on a sample, drawn
            independently per sample and device from a generator seeded with ``seed``.
        seed: the seed; the draw does not depend on the batch size.

    Raises:
        ValueError: an unknown device index, or ``fail_prob`` outside ``[0, 1]``.

    Example:
        >>> draw_presence(2, 3, fail="1").tolist()
        [[True, False, True], [True, False, True]]
    """
    try:
        p = float(fail_prob)
    except (TypeError, ValueError):
        raise ValueError(
            f"--fail-prob: expected a probability in [0, 1], got {fail_prob!r}."
        ) from None
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"--fail-prob: expected a probability in [0, 1], got {fail_prob!r}.")
    present = np.broadcast_to(~failed_mask(fail, num_devices), (n, num_devices)).copy()
    if p > 0.0:
        rng = np.random.default_rng(seed)
        present &= rng.random((n, num_devices)) >= p
    return present


@dataclass
class RunResult:
    """Per-sample results of :meth:`Hierarchy.run`.

    Attributes:
        exits: exit names, bottom to top.
        thresholds: ``{exit: T}`` used for every non-last exit.
        exit_index: ``(N,)`` int64, the exit each sample left at; ``-1`` = unclassified.
        prediction: ``(N,)`` int64 class predicted at that exit; ``-1`` = unclassified.
        presence: ``(N, D)`` bool, the devices whose messages arrived.
        probs: ``{exit: (N, C) float64}`` class probabilities at every exit a sample
            reached (NaN rows where the exit did not run for it).
        link_bytes: ``{link: int array}`` bytes actually sent per sample: ``(N, D)`` for
            ``device_to_local`` (encoded summaries) and ``device_to_upper`` (packed
            features, or raw input for configuration (a)); ``(N, E)`` for
            ``edge_to_aggregator`` and ``edge_to_cloud``.
        tier_seconds: ``{tier: seconds}`` spent inside each tier's interpreter.
        tier_samples: ``{tier: samples}`` the tier processed.
        wire_seconds: time spent encoding and decoding messages (all links).
        batch_size: samples per interpreter call (1 = one by one).
        all_exits: True when every tier ran on every sample (no early exit).
        edge_alive: ``(N, E)`` bool, edges with at least one live device (None without edges).
    """

    exits: tuple[str, ...]
    thresholds: dict[str, float]
    exit_index: np.ndarray
    prediction: np.ndarray
    presence: np.ndarray
    probs: dict[str, np.ndarray]
    link_bytes: dict[str, np.ndarray]
    tier_seconds: dict[str, float] = field(default_factory=dict)
    tier_samples: dict[str, int] = field(default_factory=dict)
    wire_seconds: float = 0.0
    batch_size: int = 1
    all_exits: bool = False
    edge_alive: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.exit_index)

    @property
    def valid(self) -> np.ndarray:
        """``(N,)`` bool: samples at least one device saw (the others are unclassified)."""
        return self.presence.any(axis=1)

    def exit_name(self, i: int) -> str:
        k = int(self.exit_index[i])
        return "unclassified" if k < 0 else self.exits[k]

    def exit_fraction(self) -> dict[str, float]:
        """Fraction of samples per exit, plus ``"unclassified"``; sums to 1."""
        n = len(self)
        counts = np.bincount(self.exit_index + 1, minlength=len(self.exits) + 1)
        out = {e: float(counts[k + 1]) / n if n else 0.0 for k, e in enumerate(self.exits)}
        out["unclassified"] = float(counts[0]) / n if n else 0.0
        return out

    def accuracy(self, labels: np.ndarray) -> float:
        """Overall accuracy: unclassified samples count as wrong."""
        y = np.asarray(labels)
        if y.shape != self.prediction.shape:
            raise ValueError(f"Expected {len(self)} labels, got an array of shape {y.shape}.")
        return float(np.mean(self.prediction == y)) if len(y) else 0.0

    def device_bytes(self) -> np.ndarray:
        """``(N, D)`` bytes each device sent per sample (summary + upward payload)."""
        return self.link_bytes["device_to_local"] + self.link_bytes["device_to_upper"]

    def bytes_per_device(self) -> float:
        """Mean bytes one alive device sends per sample (the paper's ``c``, measured)."""
        alive = self.presence
        return float(self.device_bytes()[alive].mean()) if alive.any() else 0.0

    def edge_to_cloud_bytes(self) -> float:
        """Mean bytes one live edge sends to the cloud per sample (0 without edges)."""
        b = self.link_bytes["edge_to_cloud"]
        alive = self.edge_alive if self.edge_alive is not None else np.ones(b.shape, bool)
        return float(b[alive].mean()) if alive.any() else 0.0

    def latency(self) -> dict[str, dict[str, float]]:
        """Per tier: ``total_ms``, ``mean_ms`` per sample it processed, and ``samples``."""
        out = {}
        for tier, seconds in self.tier_seconds.items():
            count = self.tier_samples.get(tier, 0)
            out[tier] = {
                "total_ms": 1e3 * seconds,
                "mean_ms": 1e3 * seconds / count if count else 0.0,
                "samples": int(count),
            }
        return out

    def wire_latency(self) -> dict[str, float]:
        """Message encoding and decoding time: ``total_ms`` and ``mean_ms`` per sample."""
        n = len(self)
        return {
            "total_ms": 1e3 * self.wire_seconds,
            "mean_ms": 1e3 * self.wire_seconds / n if n else 0.0,
        }

    def sample(self, i: int) -> dict[str, Any]:
        """One sample's record: exit, prediction, bytes per link and device."""
        return {
            "exit": self.exit_name(i),
            "prediction": int(self.prediction[i]),
            "present_devices": [int(d) for d in np.flatnonzero(self.presence[i])],
            "bytes": {k: [int(b) for b in v[i]] for k, v in self.link_bytes.items() if v.size},
        }


class _Batch:
    """Working state of one batch: who is alive, who is pending, received messages."""

    def __init__(self, xs: list[np.ndarray], alive: np.ndarray, tier_alive: dict) -> None:
        self.xs = xs
        self.alive = alive
        self.size = len(alive)
        self.tier_alive = tier_alive
        self.pending = alive.any(axis=1)
        self.offset = 0  # index of the batch's first sample in the whole run
        self.inbox: dict[tuple[str, str], np.ndarray] = {}
        self.outputs: dict[str, dict[str, np.ndarray]] = {}


class Hierarchy:
    """A converted DDNN, ready to classify samples tier by tier.

    Args:
        model: a model directory written by ``python -m ddnn_tf.convert`` (or its
            ``manifest.json``), or an already loaded :class:`~ddnn_tf.manifest.Manifest`.
        target: ``"portable"`` (ai-edge-litert) or ``"lce"`` (larq-compute-engine).
        num_threads: interpreter threads per tier.

    Raises:
        FileNotFoundError: no manifest, or a tier file is missing.
        ValueError: a malformed manifest, an unknown format version, a file whose sha256
            does not match, a target the model was not converted for, or a tier binary
            that disagrees with the manifest.

    Example:
        >>> h = Hierarchy("tflite_models/fmnist6_mpcc")
        >>> result = h.run(dataset.test.x, thresholds=0.8, batch_size=256)
        >>> result.exit_fraction(), result.bytes_per_device()
    """

    def __init__(
        self, model: str | Path | Manifest, *, target: str = "portable", num_threads: int = 1
    ):
        manifest = model if isinstance(model, Manifest) else load_manifest(model)
        if target not in TARGETS:
            raise ValueError(f"--target: expected one of {', '.join(TARGETS)}, got {target!r}.")
        if target not in manifest["targets"]:
            raise ValueError(
                f"--target {target}: the model in {manifest.directory} was converted for "
                f"{manifest['targets']} only; convert it with that target too."
            )
        self.manifest = manifest
        self.target = target
        self.topology = Topology.from_dict(manifest["topology"])
        self.exits = tuple(manifest["split"])
        self.classes = tuple(manifest["classes"])
        self.num_classes = len(self.classes)
        self.num_devices = self.topology.num_devices
        self.raw_offload = self.exits == ("cloud",)
        wire = manifest["wire"]
        self.summary_encoding = wire["summary"].get("encoding", "float32")
        self._tier_meta: dict[str, dict] = dict(manifest["tiers"])
        self.tiers: dict[str, TierRunner] = {
            name: TierRunner.from_manifest(manifest, name, target, num_threads=num_threads)
            for name in self._tier_meta
        }
        roles: dict[str, list[str]] = {}
        for name, meta in self._tier_meta.items():
            roles.setdefault(meta["role"], []).append(name)
        self.device_tiers = self._indexed(roles.get("device", []), "device")
        self.edge_tiers = self._indexed(roles.get("edge", []), "edge")
        self._check_structure(roles)
        self.feature_shapes = self._wire_shapes(wire.get("features", {}), "features")
        self.raw_wire = self._raw_wire(wire.get("raw", {})) if self.raw_offload else {}
        self.thresholds = {e: float(manifest["thresholds"][e]) for e in self.exits[:-1]}

    # ------------------------------------------------------------------ construction
    def _indexed(self, names: list[str], key: str) -> list[str]:
        by_index = {}
        for name in names:
            index = self._tier_meta[name].get(key)
            if not isinstance(index, int):
                raise ValueError(f"Invalid manifest (tiers.{name}): missing its {key!r} index.")
            by_index[index] = name
        if sorted(by_index) != list(range(len(by_index))):
            raise ValueError(
                f"Invalid manifest (tiers): {key} tiers should be numbered 0..{len(names) - 1}, "
                f"got {sorted(by_index)}."
            )
        return [by_index[k] for k in range(len(by_index))]

    def _check_structure(self, roles: dict[str, list[str]]) -> None:
        for name, meta in self._tier_meta.items():  # every message has a sender
            for spec in meta["inputs"]:
                if spec["role"] in ("summary", "features"):
                    source = spec.get("from") or self._default_source(
                        name, spec["name"], spec["role"]
                    )
                    sender = self.tiers.get(source["tier"])
                    if sender is None or source["output"] not in sender.output_names:
                        raise ValueError(
                            f"Invalid manifest (tiers.{name}): input {spec['name']!r} comes "
                            f"from {source['tier']}.{source['output']}, which no tier produces."
                        )
        needed = {"cloud": 1}
        if not self.raw_offload:
            needed["device"] = self.num_devices
        if "local" in self.exits:
            needed["local_aggregator"] = 1
        if "edge" in self.exits:
            needed["edge_aggregator"] = 1
            needed["edge"] = self.topology.num_edges
        for role, count in needed.items():
            if len(roles.get(role, [])) != count:
                raise ValueError(
                    f"Invalid manifest (tiers): split {list(self.exits)} of this topology needs "
                    f"{count} {role} tier(s), found {roles.get(role, [])}."
                )

    def _wire_shapes(self, entries: Mapping[str, Any], what: str) -> dict[str, tuple[int, ...]]:
        shapes = {}
        senders = [] if self.raw_offload else [*self.device_tiers, *self.edge_tiers]
        for sender in senders:
            if sender not in entries:
                raise ValueError(f"Invalid manifest (wire.{what}): no entry for {sender!r}.")
            entry = entries[sender]
            if entry.get("encoding", _FEATURE_ENCODING) != _FEATURE_ENCODING:
                raise ValueError(
                    f"Invalid manifest (wire.{what}.{sender}): encoding "
                    f"{entry.get('encoding')!r} is not supported; expected {_FEATURE_ENCODING!r}."
                )
            shape = tuple(int(d) for d in entry["shape"])
            produced = self.tiers[sender].output_shapes.get("features")
            if produced is not None and produced != shape:
                raise ValueError(
                    f"Invalid manifest (wire.{what}.{sender}): shape {shape} differs from the "
                    f"tier's features output {produced}."
                )
            shapes[sender] = shape
        return shapes

    def _raw_wire(self, entries: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
        out = {}
        for entry in self.manifest["inputs"]:
            d = int(entry["device"])
            wire = entries.get(f"device_{d}", {})
            dtype = wire.get("dtype", entry.get("raw_dtype", "float32"))
            scale = entry.get("scale")
            if dtype == "uint8" and scale is None:
                raise ValueError(
                    f"Invalid manifest (inputs[{d}]): raw uint8 messages need a scale."
                )
            out[d] = {"dtype": np.dtype(dtype), "scale": scale}
        return out

    # ------------------------------------------------------------------ inputs
    def _check_inputs(self, xs) -> list[np.ndarray]:
        return check_views(
            self.topology.input_shapes, list(getattr(xs, "x", xs)), where="run inputs"
        )

    def presence(self, n: int, *, fail=None, fail_prob: float = 0.0, seed: int = 0) -> np.ndarray:
        """:func:`draw_presence` for this hierarchy's devices."""
        return draw_presence(n, self.num_devices, fail=fail, fail_prob=fail_prob, seed=seed)

    # ------------------------------------------------------------------ running
    def run(
        self,
        xs,
        *,
        thresholds: Mapping[str, float] | float | None = None,
        fail=None,
        fail_prob: float = 0.0,
        seed: int = 0,
        presence: np.ndarray | None = None,
        batch_size: int = 1,
        all_exits: bool = False,
    ) -> RunResult:
        """Classify samples through the hierarchy.

        Args:
            xs: one ``(N, *input_shape)`` array per device (or a ``Split``).
            thresholds: ``T`` for every early exit, ``{exit: T}``, ``"paper"`` (0.8), or
                None / ``"calibrated"`` for the manifest's thresholds.
            fail: devices failed on every sample (``"0,3"``, ``5``, ``[0, 3]``).
            fail_prob: probability that each device fails on each sample (seeded).
            seed: seed of the random failures.
            presence: explicit ``(N, D)`` bool mask of arriving devices (overrides
                ``fail`` and ``fail_prob``).
            batch_size: samples per interpreter call; results do not depend on it.
            all_exits: run every tier on every sample (no early exit) and record every
                exit's probabilities; exits and predictions are still decided with
                ``thresholds``. Used for per-exit accuracies and threshold sweeps.

        Returns:
            A :class:`RunResult` with one entry per input sample.

        Raises:
            ValueError: bad inputs (count, shape, dtype, NaN), thresholds, failures or
                batch size.
        """
        xs = self._check_inputs(xs)
        n = len(xs[0])
        if presence is None:
            presence = self.presence(n, fail=fail, fail_prob=fail_prob, seed=seed)
        else:
            presence = np.asarray(presence)
            if presence.shape != (n, self.num_devices) or presence.dtype != np.bool_:
                raise ValueError(
                    f"presence: expected a bool mask of shape {(n, self.num_devices)}, got "
                    f"{presence.dtype} {presence.shape}."
                )
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, (int, np.integer))
            or batch_size < 1
        ):
            raise ValueError(f"--batch-size: expected a positive integer, got {batch_size!r}.")
        ts = resolve_thresholds(thresholds, self.exits[:-1], self.thresholds)
        d, e, c = self.num_devices, len(self.edge_tiers), self.num_classes
        result = RunResult(
            exits=self.exits,
            thresholds=ts,
            exit_index=np.full(n, -1, np.int64),
            prediction=np.full(n, -1, np.int64),
            presence=presence,
            probs={x: np.full((n, c), np.nan) for x in self.exits},
            link_bytes={
                "device_to_local": np.zeros((n, d), np.int64),
                "device_to_upper": np.zeros((n, d), np.int64),
                "edge_to_aggregator": np.zeros((n, e if "edge" in self.exits else 0), np.int64),
                "edge_to_cloud": np.zeros((n, e), np.int64),
            },
            tier_seconds={t: 0.0 for t in self.tiers},
            tier_samples={t: 0 for t in self.tiers},
            edge_alive=np.stack(
                [presence[:, list(g)].any(axis=1) for g in self.topology.edges], axis=1
            )
            if self.topology.edges
            else None,
            batch_size=int(batch_size),
            all_exits=all_exits,
        )
        early = None if all_exits else [ts[x] for x in self.exits[:-1]]
        for start in range(0, n, batch_size):
            rows = slice(start, min(start + batch_size, n))
            self._run_batch([x[rows] for x in xs], presence[rows], early, result, rows)
        if all_exits:
            probs = [result.probs[x] for x in self.exits]
            valid = presence.any(axis=1)
            result.exit_index = exit_points(probs, [ts[x] for x in self.exits[:-1]], valid)
            result.prediction = _predict(probs, result.exit_index)
        return result

    def stream(
        self,
        samples: Iterable[Sequence[np.ndarray]],
        *,
        thresholds=None,
        fail=None,
        fail_prob: float = 0.0,
        seed: int = 0,
    ) -> Iterable[dict[str, Any]]:
        """Classify a stream of samples one at a time (one tuple of device inputs each).

        Yields one :meth:`RunResult.sample` record per sample, with ``latency_ms`` per
        tier. Random failures are drawn per sample from one generator seeded with ``seed``.
        """
        draw_presence(0, self.num_devices, fail=fail, fail_prob=fail_prob)  # validates both
        rng = np.random.default_rng(seed)
        fixed = failed_mask(fail, self.num_devices)
        for sample in samples:
            present = ~fixed & (rng.random(self.num_devices) >= fail_prob)
            one = self.run(
                [np.asarray(x)[None] for x in sample], thresholds=thresholds, presence=present[None]
            )
            record = one.sample(0)
            record["latency_ms"] = {
                t: v["total_ms"] for t, v in one.latency().items() if v["samples"]
            }
            yield record

    def _tier_alive(self, alive: np.ndarray) -> dict[str, np.ndarray]:
        out = {f"device_{i}": alive[:, i] for i in range(self.num_devices)}
        for j, name in enumerate(self.edge_tiers):
            group = self.topology.edges[j]
            out[name] = alive[:, list(group)].any(axis=1)
        return out

    def _invoke(self, tier: str, batch: _Batch, rows: np.ndarray, result: RunResult) -> dict:
        """Run ``tier`` on the batch rows ``rows`` (bool mask), feeding it by name."""
        runner = self.tiers[tier]
        feeds = {}
        for spec in self._tier_meta[tier]["inputs"]:
            feeds[spec["name"]] = self._feed(tier, spec, batch)[rows]
        start = time.perf_counter()
        out = runner(feeds)
        result.tier_seconds[tier] += time.perf_counter() - start
        result.tier_samples[tier] += int(rows.sum())
        full = {}
        for key, value in out.items():
            array = np.zeros((batch.size, *value.shape[1:]), value.dtype)
            array[rows] = value
            full[key] = array
        batch.outputs[tier] = full
        return full

    def _feed(self, tier: str, spec: Mapping[str, Any], batch: _Batch) -> np.ndarray:
        role = spec["role"]
        name = spec["name"]
        if role == "sensor":
            d = int(spec.get("device", self._tier_meta[tier].get("device", -1)))
            if self.raw_offload:
                return batch.inbox[(f"device_{d}", "raw")]
            return batch.xs[d]
        if role == "presence":
            columns = spec.get("columns") or self._default_columns(tier)
            return np.stack([batch.tier_alive[c] for c in columns], axis=1).astype(np.float32)
        source = spec.get("from") or self._default_source(tier, name, role)
        key = (source["tier"], source["output"])
        if key not in batch.inbox:
            shape = self.tiers[tier].input_shapes[name]
            batch.inbox[key] = np.zeros((batch.size, *shape), np.float32)
        return batch.inbox[key]

    def _default_columns(self, tier: str) -> list[str]:
        role = self._tier_meta[tier]["role"]
        if role == "edge":
            j = int(self._tier_meta[tier]["edge"])
            return [f"device_{d}" for d in self.topology.edges[j]]
        if role == "edge_aggregator" or (role == "cloud" and self.edge_tiers):
            return list(self.edge_tiers)
        return [f"device_{d}" for d in range(self.num_devices)]

    def _default_source(self, tier: str, name: str, role: str) -> dict[str, str]:
        k = name.rsplit("_", 1)[-1]
        meta_role = self._tier_meta[tier]["role"]
        upper = meta_role == "edge_aggregator" or (meta_role == "cloud" and self.edge_tiers)
        return {"tier": f"edge_{k}" if upper else f"device_{k}", "output": role}

    @staticmethod
    def _on_wire(send, *args) -> None:
        """Run a ``_send_*`` step, timing it as message encoding and decoding."""
        result = next(a for a in args if isinstance(a, RunResult))
        start = time.perf_counter()
        send(*args)
        result.wire_seconds += time.perf_counter() - start

    def _send_summaries(self, senders: list[str], batch: _Batch, result: RunResult, link: str):
        for k, sender in enumerate(senders):
            rows = np.flatnonzero(batch.pending & batch.tier_alive[sender])
            received = np.zeros((batch.size, self.num_classes), np.float32)
            values = batch.outputs[sender].get("summary")
            for r in rows:
                payload = encode_summary(values[r], self.summary_encoding)
                result.link_bytes[link][batch.offset + r, k] = len(payload)
                received[r] = decode_summary(payload, self.num_classes, self.summary_encoding)
            batch.inbox[(sender, "summary")] = received

    def _send_features(self, senders: list[str], batch: _Batch, result: RunResult, link: str):
        for k, sender in enumerate(senders):
            rows = np.flatnonzero(batch.pending & batch.tier_alive[sender])
            shape = self.feature_shapes[sender]
            received = np.zeros((batch.size, *shape), np.float32)
            values = batch.outputs[sender].get("features")
            for r in rows:
                try:
                    payload = pack_features(values[r])
                except ValueError as err:
                    raise ValueError(
                        f"Tier {sender}: features output is not binary: {err}"
                    ) from None
                result.link_bytes[link][batch.offset + r, k] = len(payload)
                received[r] = unpack_features(payload, shape)
            batch.inbox[(sender, "features")] = received

    def _send_raw(self, batch: _Batch, result: RunResult) -> None:
        for d in range(self.num_devices):
            rows = np.flatnonzero(batch.pending & batch.alive[:, d])
            wire = self.raw_wire[d]
            x = batch.xs[d]
            received = np.zeros_like(x)
            for r in rows:
                if wire["dtype"] == np.uint8:
                    scale = np.float32(wire["scale"])
                    q = np.clip(np.rint(x[r] / scale), 0, 255).astype(np.uint8)
                    payload = q.tobytes()
                    decoded = np.frombuffer(payload, np.uint8).astype(np.float32) * scale
                else:
                    payload = x[r].astype(wire["dtype"].newbyteorder("<")).tobytes()
                    decoded = np.frombuffer(payload, wire["dtype"].newbyteorder("<")).astype(
                        np.float32
                    )
                result.link_bytes["device_to_upper"][batch.offset + r, d] = len(payload)
                received[r] = decoded.reshape(x.shape[1:])
            batch.inbox[(f"device_{d}", "raw")] = received

    def _exit_stage(
        self, k: int, tier: str, batch: _Batch, early: list[float] | None, result: RunResult
    ) -> None:
        """Run the aggregator (or cloud) of exit ``k`` on pending rows; exit the confident ones."""
        rows = batch.pending.copy()
        if not rows.any():
            return
        logits = self._invoke(tier, batch, rows, result)["logits"]
        probs = softmax(np.asarray(logits[rows], np.float64))
        index = np.flatnonzero(rows)
        result.probs[self.exits[k]][batch.offset + index] = probs
        last = k == len(self.exits) - 1
        if early is None and not last:
            return  # all-exits mode: decisions are taken afterwards, on every exit at once
        if last:
            take = np.ones(len(index), bool)
        else:
            # exit_points over (this exit, a stand-in for the exits above): index 0 means
            # the sample leaves here. This is the evaluation's own decision rule.
            take = exit_points([probs, probs], [early[k]]) == 0
        done = index[take]
        result.exit_index[batch.offset + done] = k
        result.prediction[batch.offset + done] = np.argmax(probs[take], axis=1)
        batch.pending[done] = False

    def _run_batch(
        self,
        xs: list[np.ndarray],
        alive: np.ndarray,
        early: list[float] | None,
        result: RunResult,
        rows: slice,
    ) -> None:
        batch = _Batch(xs, alive, self._tier_alive(alive))
        batch.offset = rows.start
        if not batch.pending.any():
            return
        k = 0
        if self.raw_offload:
            self._on_wire(self._send_raw, batch, result)
        else:
            for i, tier in enumerate(self.device_tiers):
                run = batch.pending & alive[:, i]
                if run.any():
                    self._invoke(tier, batch, run, result)
                else:
                    batch.outputs[tier] = {}
            if "local" in self.exits:
                self._on_wire(
                    self._send_summaries, self.device_tiers, batch, result, "device_to_local"
                )
                self._exit_stage(k, "local_aggregator", batch, early, result)
                k += 1
            self._on_wire(self._send_features, self.device_tiers, batch, result, "device_to_upper")
            if self.edge_tiers:
                for tier in self.edge_tiers:
                    run = batch.pending & batch.tier_alive[tier]
                    if run.any():
                        self._invoke(tier, batch, run, result)
                    else:
                        batch.outputs[tier] = {}
                if "edge" in self.exits:
                    self._on_wire(
                        self._send_summaries, self.edge_tiers, batch, result, "edge_to_aggregator"
                    )
                    self._exit_stage(k, "edge_aggregator", batch, early, result)
                    k += 1
                self._on_wire(self._send_features, self.edge_tiers, batch, result, "edge_to_cloud")
        self._exit_stage(k, "cloud", batch, early, result)


def _predict(probs: list[np.ndarray], exit_index: np.ndarray) -> np.ndarray:
    # Rows of unclassified samples are NaN; their exit index is -1, so they are not read.
    return predictions([np.nan_to_num(p, nan=0.0) for p in probs], exit_index)
