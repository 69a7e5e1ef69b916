"""The edge tiers inside the gateway: device features in, an edge exit, edge features out.

When the topology has edges, the gateway hosts them (they sit between the end devices
and the cloud): the features of the samples that did not exit locally go through every
edge tier whose group has a present device; with an edge exit, the edge aggregator
combines the edges' summaries (encoded and decoded with the manifest's summary encoding,
as on a link) and the confident samples exit there; the others go to the cloud as the
edges' packed features, with the cloud's presence mask over the edges (an edge counts as
present when any of its devices is), exactly as :class:`ddnn_tf.runtime.Hierarchy` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ddnn_tf.core.comm import decode_summaries, encode_summaries, pack_features_batch
from ddnn_tf.core.exits import exit_points, softmax
from ddnn_tf.core.manifest import Manifest
from ddnn_tf.errors import ConfigError
from ddnn_tf.runtime.tiers import TierRunner
from ddnn_tf.serve.wire import CloudSpec, model_graph

__all__ = ["EdgeOutcome", "EdgeStage"]


@dataclass
class EdgeOutcome:
    """What the edge stage decided for ``m`` pending samples.

    Attributes:
        probs: ``(m, C)`` edge-exit probabilities (None without an edge exit).
        take: ``(m,)`` bool, samples that exit at the edge.
        edge_alive: ``(E,)`` bool, edges with a present device.
        payloads: per sample going to the cloud (``~take``), ``{edge: packed features}``.
    """

    probs: np.ndarray | None
    take: np.ndarray
    edge_alive: np.ndarray
    payloads: list[dict[str, bytes]]


class EdgeStage:
    """The edge tiers (and edge aggregator) of a manifest, run on device features.

    Args:
        manifest: a loaded manifest whose topology has edges.
        target: ``portable`` or ``lce``.
        threshold: T of the edge exit (ignored without one).

    Raises:
        ValueError: a manifest without edge tiers or with malformed edge inputs.
    """

    def __init__(self, manifest: Manifest, target: str, threshold: float | None) -> None:
        graph = model_graph(manifest)
        edges = graph.by_role("edge")
        if not edges:
            raise ConfigError(f"{manifest.directory}: the model has no edge tiers.")
        self.names = [t.name for t in edges]
        self.tiers = {t.name: t for t in edges}
        self.runners = {t: TierRunner.from_manifest(manifest, t, target) for t in self.names}
        # each edge's presence columns are its devices (one column per device, in order)
        self.groups = {t.name: list(t.devices) for t in edges}
        self.has_exit = "edge" in graph.split
        self.threshold = threshold
        self.aggregator = None
        if self.has_exit:
            (agg,) = graph.by_role("edge_aggregator")
            self.aggregator = TierRunner.from_manifest(manifest, agg.name, target)
            self.agg_inputs = agg.inputs
        self.num_classes = len(manifest["classes"])
        self.encoding = manifest["wire"]["summary"].get("encoding", "float32")
        self.cloud = CloudSpec.from_manifest(manifest)
        if list(self.cloud.senders) != self.names:
            raise ConfigError(
                f"{manifest.directory}: the cloud's senders {list(self.cloud.senders)} are not "
                f"the edges {self.names}."
            )

    def run(self, features: Mapping[int, np.ndarray], present: np.ndarray, m: int) -> EdgeOutcome:
        """Run the edges on ``m`` samples.

        Args:
            features: device index -> ``(m, *shape)`` float32 ±1 features (present devices).
            present: ``(D,)`` bool, the devices whose features arrived.
            m: number of samples.
        """
        alive = np.array([present[self.groups[t]].any() for t in self.names])
        outputs: dict[str, dict[str, np.ndarray]] = {}
        for j, t in enumerate(self.names):
            if not alive[j]:
                continue
            runner, feeds = self.runners[t], {}
            for port in self.tiers[t].inputs:
                shape = runner.input_shapes[port.name]
                if port.role == "presence":
                    row = present[self.groups[t]].astype(np.float32)
                    feeds[port.name] = np.broadcast_to(row, (m, len(row))).copy()
                else:  # a device's features: its column on the link is its index
                    d = port.source.column
                    feeds[port.name] = features.get(d, np.zeros((m, *shape), np.float32))
            outputs[t] = runner(feeds)
        take = np.zeros(m, bool)
        probs = None
        if self.has_exit:
            feeds = {}
            for port in self.agg_inputs:
                if port.role == "presence":
                    feeds[port.name] = np.broadcast_to(
                        alive.astype(np.float32), (m, len(alive))
                    ).copy()
                else:
                    t = port.source.tier
                    received = np.zeros((m, self.num_classes), np.float32)
                    if t in outputs:  # summaries cross a link: encode, then decode
                        payload = encode_summaries(outputs[t]["summary"], self.encoding)
                        received = decode_summaries(payload, self.num_classes, self.encoding)
                    feeds[port.name] = received
            probs = softmax(np.asarray(self.aggregator(feeds)["logits"], np.float64))
            take = exit_points([probs, probs], [self.threshold]) == 0
        rows = np.flatnonzero(~take)
        packed = {t: pack_features_batch(outputs[t]["features"][rows]) for t in outputs}
        payloads = [{t: packed[t][k].tobytes() for t in packed} for k in range(len(rows))]
        return EdgeOutcome(probs, take, alive, payloads)
