"""The Hierarchy orchestrator: a converted DDNN's tiers, their messages, exits and failures.

:class:`Hierarchy` loads a converted model directory (``manifest.json`` and one binary per
tier), and classifies samples the way the deployed hierarchy would (Sec. III-D/E):

1. every end device that is alive runs its tier and sends its class summary to the local
   aggregator (encoded with :func:`ddnn_tf.core.comm.encode_summary`, decoded on arrival);
2. the local aggregator combines the summaries that arrived; a sample whose normalized
   entropy is ``<= T_local`` exits there;
3. otherwise every alive device bit-packs its feature map
   (:func:`ddnn_tf.core.comm.pack_features`) and sends it up: to its edge, which may exit the
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

The order of the tiers, what feeds each input and on which link each message travels
come from the tier graph (:func:`ddnn_tf.core.graph.tier_graph`), checked against the manifest
on load (:func:`ddnn_tf.core.manifest.check_tier_graph`). Messages are encoded for a whole
sub-batch at once (:func:`ddnn_tf.core.comm.encode_summaries`, :func:`~ddnn_tf.core.comm.pack_features_batch`);
each row is the exact payload one sample would send. Every tier is fed and every exit
decided by :mod:`ddnn_tf.runtime.step`, as in the live gateway: exit decisions use
:func:`ddnn_tf.core.exits.exits_here` (the rule of the Keras evaluation's
:func:`~ddnn_tf.core.exits.exit_points`) on probabilities from :func:`ddnn_tf.core.exits.softmax`,
so the two cannot drift apart.

Only numpy, the standard library and the interpreters are imported (no TensorFlow).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ddnn_tf.core import comm
from ddnn_tf.core.calibration import Calibration
from ddnn_tf.core.checks import check_views, failed_mask
from ddnn_tf.core.exits import exit_points, predictions, resolve_thresholds
from ddnn_tf.core.graph import LINKS, Port, Tier, tier_graph
from ddnn_tf.core.manifest import Manifest, check_tier_graph, load_manifest, raw_wire
from ddnn_tf.core.sensors import sensor_quantizer, sensor_values
from ddnn_tf.core.topology import Topology
from ddnn_tf.core.vocab import PROTOCOL_MODES
from ddnn_tf.errors import ConfigError
from ddnn_tf.runtime.result import RunResult
from ddnn_tf.runtime.step import TierStep, exit_decision
from ddnn_tf.runtime.tiers import TARGETS, TierRunner

__all__ = ["LINKS", "Hierarchy", "RunResult", "draw_presence"]


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
        raise ConfigError(
            f"expected a probability in [0, 1], got {fail_prob!r}.",
            argument="fail_prob",
        ) from None
    if not 0.0 <= p <= 1.0:
        raise ConfigError(
            f"expected a probability in [0, 1], got {fail_prob!r}.", argument="fail_prob"
        )
    present = np.broadcast_to(~failed_mask(fail, num_devices), (n, num_devices)).copy()
    if p > 0.0:
        rng = np.random.default_rng(seed)
        present &= rng.random((n, num_devices)) >= p
    return present


class _Batch:
    """Working state of one batch: who is alive and pending, and the tiers' outputs."""

    def __init__(self, xs: list[np.ndarray], present: np.ndarray, offset: int) -> None:
        self.xs = xs
        self.present = present
        self.size = len(present)
        self.offset = offset  # index of the batch's first sample in the whole run
        self.pending = present.any(axis=1)
        self.outputs: dict[str, dict[str, np.ndarray]] = {}  # (B, ...) arrays, 0 where not run
        self._alive: dict[tuple[int, ...], np.ndarray] = {}

    def alive(self, devices: tuple[int, ...]) -> np.ndarray:
        """``(B,)`` bool: any of ``devices`` present (cached per device group)."""
        mask = self._alive.get(devices)
        if mask is None:
            if len(devices) == 1:
                mask = self.present[:, devices[0]]
            else:
                mask = self.present[:, list(devices)].any(axis=1)
            self._alive[devices] = mask
        return mask


class Hierarchy:
    """A converted DDNN, ready to classify samples tier by tier.

    Args:
        model: a model directory written by ``ddnn convert`` (or its
            ``manifest.json``), or an already loaded :class:`~ddnn_tf.core.manifest.Manifest`.
        target: ``"portable"`` (ai-edge-litert) or ``"lce"`` (larq-compute-engine).
        num_threads: interpreter threads per tier.

    Raises:
        FileNotFoundError: no manifest, or a tier file is missing.
        ValueError: a malformed manifest, an unknown format version, a file whose sha256
            does not match, a target the model was not converted for, or tiers that
            disagree with the tier graph of the manifest's topology and split.

    Example:
        >>> h = Hierarchy("tflite_models/fmnist6_mlpcc")
        >>> h.graph.names[-2:], h.exits
        (['local_aggregator', 'cloud'], ('local', 'cloud'))
    """

    def __init__(
        self, model: str | Path | Manifest, *, target: str = "portable", num_threads: int = 1
    ):
        manifest = model if isinstance(model, Manifest) else load_manifest(model)
        if target not in TARGETS:
            raise ConfigError(
                f"expected one of {', '.join(TARGETS)}, got {target!r}.", argument="target"
            )
        if target not in manifest["targets"]:
            raise ConfigError(
                f"target {target}: the model in {manifest.directory} was converted for "
                f"{manifest['targets']} only; convert it with that target too."
            )
        self.manifest = manifest
        self.target = target
        self.topology = Topology.from_dict(manifest["topology"])
        self.graph = tier_graph(self.topology, manifest["split"])
        check_tier_graph(manifest, self.graph)
        self.exits = tuple(self.graph.split)
        self.classes = tuple(manifest["classes"])
        self.num_classes = len(self.classes)
        self.num_devices = self.topology.num_devices
        self.summary_encoding = manifest["wire"]["summary"].get("encoding", "float32")
        self.raw_wire = raw_wire(manifest, self.graph)
        self.tiers: dict[str, TierRunner] = {
            tier.name: TierRunner.from_manifest(
                manifest, tier.name, target, num_threads=num_threads
            )
            for tier in self.graph
        }
        # check_tier_graph made the manifest's (and so the runner's) input order the graph's
        self.steps = {tier.name: TierStep(tier, self.tiers[tier.name]) for tier in self.graph}
        self.device_tiers = [t.name for t in self.graph.by_role("device")]
        self.edge_tiers = [t.name for t in self.graph.by_role("edge")]
        self.thresholds = {e: float(manifest["thresholds"][e]) for e in self.exits[:-1]}
        by_device = {int(e["device"]): sensor_quantizer(e) for e in manifest["inputs"]}
        self.quantizers = [by_device.get(d) for d in range(self.num_devices)]
        recorded = manifest.get("calibration")
        self.calibration = None if recorded is None else Calibration.from_dict(recorded)
        self._messages = {tier.name: self._message_groups(tier) for tier in self.graph}

    def _message_groups(self, tier: Tier) -> list[tuple]:
        """The messages ``tier`` receives, grouped by kind, link and shape (and device for
        raw input): ``[(output, link, shape, ports, sender device groups, columns)]``."""
        groups: dict[tuple, list[Port]] = {}
        for port in tier.inputs:
            if port.source is not None:
                key = (port.source.output, port.source.link, port.shape)
                if port.source.output == "raw":
                    key += (port.device,)
                groups.setdefault(key, []).append(port)
        out = []
        for (output, link, shape, *_), ports in groups.items():
            senders = [
                (p.device,) if output == "raw" else self.graph[p.source.tier].devices for p in ports
            ]
            columns = np.array([p.source.column for p in ports])
            out.append((output, link, shape, ports, senders, columns))
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
        protocol: str = "paper",
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
            protocol: the devices' protocol whose bytes are counted: ``paper`` (the
                summary to the local aggregator; the features upward for the samples
                that do not exit locally) or ``eager`` (each device sends its summary and
                its packed features in one message to the local aggregator, counted on
                ``device_to_local``; ``device_to_upper`` then counts what the gateway
                forwards for the samples that go on). The answers are the same.

        Returns:
            A :class:`RunResult` with one entry per input sample.

        Raises:
            ValueError: bad inputs (count, shape, dtype, NaN), thresholds, failures or
                batch size.
        """
        xs = [np.ascontiguousarray(x, np.float32) for x in self._check_inputs(xs)]
        xs = sensor_values(self.quantizers, xs)  # a quantised sensor's codes, as devices do
        n = len(xs[0])
        presence = self._presence(n, presence, fail, fail_prob, seed)
        _check_run_options(batch_size, protocol)
        ts = resolve_thresholds(thresholds, self.exits[:-1], self.thresholds)
        c, d, e = self.num_classes, self.num_devices, self.topology.num_edges
        edges = self.topology.edges
        result = RunResult(
            exits=self.exits,
            thresholds=ts,
            exit_index=np.full(n, -1, np.int64),
            prediction=np.full(n, -1, np.int64),
            presence=presence,
            probs={x: np.full((n, c), np.nan) for x in self.exits},
            link_bytes={  # one column per sender on each link
                link: np.zeros((n, width), np.int64)
                for link, width in zip(LINKS, (d, d, e if "edge" in self.exits else 0, e))
            },
            tier_seconds={t: 0.0 for t in self.tiers},
            tier_samples={t: 0 for t in self.tiers},
            edge_alive=np.stack([presence[:, list(g)].any(axis=1) for g in edges], axis=1)
            if edges
            else None,
            batch_size=int(batch_size),
            all_exits=all_exits,
            protocol=protocol,
        )
        early = None if all_exits else ts
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            batch = _Batch([x[start:stop] for x in xs], presence[start:stop], start)
            self._run_batch(batch, early, result)
        if all_exits:
            probs = [result.probs[x] for x in self.exits]
            valid = presence.any(axis=1)
            result.exit_index = exit_points(probs, [ts[x] for x in self.exits[:-1]], valid)
            result.prediction = _predict(probs, result.exit_index)
        return result

    def _presence(self, n: int, presence, fail, fail_prob: float, seed: int) -> np.ndarray:
        """``presence`` checked, or drawn from ``fail`` and ``fail_prob`` when None."""
        if presence is None:
            return self.presence(n, fail=fail, fail_prob=fail_prob, seed=seed)
        presence = np.asarray(presence)
        if presence.shape != (n, self.num_devices) or presence.dtype != np.bool_:
            raise ConfigError(
                f"expected a bool mask of shape {(n, self.num_devices)}, got "
                f"{presence.dtype} {presence.shape}.",
                argument="presence",
            )
        return presence

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

    def _run_batch(self, batch: _Batch, early: dict[str, float] | None, result: RunResult):
        """Run the tiers in graph order on the samples still pending; exit confident ones."""
        for tier in self.graph:
            if not batch.pending.any():
                return
            rows = np.flatnonzero(batch.pending & batch.alive(tier.devices))
            if not len(rows):
                continue
            everyone = len(rows) == batch.size
            start = time.perf_counter()
            received = self._receive(tier, batch, result)
            result.wire_seconds += time.perf_counter() - start
            feeds = self.steps[tier.name].feeds(
                batch.present, received, batch.xs, None if everyone else rows
            )
            start = time.perf_counter()
            out = self.steps[tier.name].runner.run(feeds)
            result.tier_seconds[tier.name] += time.perf_counter() - start
            result.tier_samples[tier.name] += len(rows)
            if tier.exit is not None:
                self._exit(tier.exit, out["logits"], rows, batch, early, result)
            elif everyone:
                batch.outputs[tier.name] = out
            else:
                full = {}
                for key, value in out.items():
                    full[key] = np.zeros((batch.size, *value.shape[1:]), value.dtype)
                    full[key][rows] = value
                batch.outputs[tier.name] = full

    def _receive(self, tier: Tier, batch: _Batch, result: RunResult) -> dict[str, np.ndarray]:
        """The messages ``tier`` receives, sent now by every pending live sender.

        Messages of one kind and shape are encoded and decoded together (one payload per
        sample and sender), and each payload's length is counted on its link.

        Returns:
            ``{input name: (B, ...) float32}``, zeros where nothing arrived.
        """
        received = {}
        for output, link, shape, ports, senders, columns in self._messages[tier.name]:
            sent = np.stack([batch.alive(devices) for devices in senders]) & batch.pending
            values = np.stack([self._message(p, batch) for p in ports])  # (k, B, ...)
            who, rows = np.nonzero(sent)
            box = np.zeros((len(ports), batch.size, *shape), np.float32)
            if len(rows):
                payload = self._encode(output, ports[0], values[who, rows])
                box[who, rows] = self._decode(output, ports[0], payload)
                size = payload.shape[1]
                if result.protocol == "eager" and link == "device_to_local":
                    size += self._eager_features(ports, senders, who, rows, batch)
                result.link_bytes[link][batch.offset + rows, columns[who]] = size
            for k, port in enumerate(ports):
                received[port.name] = box[k]
        return received

    def _eager_features(self, ports, senders, who, rows, batch: _Batch) -> np.ndarray:
        """Bytes of the packed features each summary's sender adds to its eager message."""
        sizes = np.zeros(len(rows), np.int64)
        for k, port in enumerate(ports):
            mine = who == k
            if mine.any():
                features = batch.outputs[port.source.tier]["features"][rows[mine]]
                sizes[mine] = comm.pack_features_batch(features).shape[1]
        return sizes

    @staticmethod
    def _message(port: Port, batch: _Batch) -> np.ndarray:
        if port.source.output == "raw":
            return batch.xs[port.device]
        out = batch.outputs.get(port.source.tier)
        if out is None:  # the sender ran for no sample of this batch
            return np.zeros((batch.size, *port.shape), np.float32)
        return out[port.source.output]

    def _encode(self, output: str, port: Port, values: np.ndarray) -> np.ndarray:
        if output == "summary":
            return comm.encode_summaries(values, self.summary_encoding)
        if output == "raw":
            wire = self.raw_wire[port.device]
            return comm.encode_raw(values, wire["dtype"], wire["scale"])
        try:
            return comm.pack_features_batch(values)
        except ValueError as err:
            raise ConfigError(
                f"Tier {port.source.tier}: features output is not binary: {err}"
            ) from None

    def _decode(self, output: str, port: Port, payload: np.ndarray) -> np.ndarray:
        if output == "summary":
            return comm.decode_summaries(payload, self.num_classes, self.summary_encoding)
        if output == "raw":
            wire = self.raw_wire[port.device]
            return comm.decode_raw(payload, port.shape, wire["dtype"], wire["scale"])
        return comm.unpack_features_batch(payload, port.shape)

    def _exit(
        self,
        name: str,
        logits: np.ndarray,
        rows: np.ndarray,
        batch: _Batch,
        early: dict[str, float] | None,
        result: RunResult,
    ) -> None:
        """Record exit ``name``'s probabilities for ``rows``; exit the confident ones."""
        last = name == self.exits[-1]
        probs, take = exit_decision(logits, None if last or early is None else early[name])
        result.probs[name][batch.offset + rows] = probs
        if early is None and not last:
            return  # all-exits mode: decisions are taken afterwards, on every exit at once
        done = rows[take]
        k = self.exits.index(name)
        result.exit_index[batch.offset + done] = k
        result.prediction[batch.offset + done] = np.argmax(probs[take], axis=1)
        batch.pending[done] = False


def _check_run_options(batch_size, protocol: str) -> None:
    """:meth:`Hierarchy.run`'s ``batch_size`` and ``protocol``, checked."""
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):
        raise ConfigError(
            f"expected a positive integer, got {batch_size!r}.", argument="batch_size"
        )
    if protocol not in PROTOCOL_MODES:
        raise ConfigError(
            f"expected one of {', '.join(PROTOCOL_MODES)}, got {protocol!r}.", argument="protocol"
        )


def _predict(probs: list[np.ndarray], exit_index: np.ndarray) -> np.ndarray:
    # Rows of unclassified samples are NaN; their exit index is -1, so they are not read.
    return predictions([np.nan_to_num(p, nan=0.0) for p in probs], exit_index)
