"""The edge tiers inside the gateway: device features in, an edge exit, edge features out
(docs/serving.md, *The services one by one*). Each tier is fed and each exit decided by
:mod:`ddnn_tf.runtime.step`, as :class:`ddnn_tf.runtime.Hierarchy` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ddnn_tf.core.comm import decode_summaries, encode_summaries, pack_features_batch
from ddnn_tf.core.graph import TierGraph
from ddnn_tf.core.manifest import Manifest
from ddnn_tf.runtime.step import TierStep, exit_decision
from ddnn_tf.runtime.tiers import TierRunner

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
    """The edge tiers (and edge aggregator) of a model, run on device features.

    Args:
        manifest: a loaded manifest whose topology has edges.
        graph: its tier graph.
        target: ``portable`` or ``lce``.
        threshold: T of the edge exit (ignored without one).
    """

    def __init__(self, manifest: Manifest, graph: TierGraph, target: str, threshold) -> None:
        self.steps = [
            TierStep(t, TierRunner.from_manifest(manifest, t.name, target))
            for t in graph.by_role("edge")
        ]
        self.aggregator = None
        if "edge" in graph.split:
            (agg,) = graph.by_role("edge_aggregator")
            self.aggregator = TierStep(agg, TierRunner.from_manifest(manifest, agg.name, target))
        self.threshold = threshold
        self.num_classes = len(manifest["classes"])
        self.encoding = manifest["wire"]["summary"].get("encoding", "float32")

    def run(self, features: Mapping[int, np.ndarray], present: np.ndarray, m: int) -> EdgeOutcome:
        """Run the edges on ``m`` samples.

        Args:
            features: device index -> ``(m, *shape)`` float32 ±1 features (present devices).
            present: ``(D,)`` bool, the devices whose features arrived.
            m: number of samples.
        """
        presence = np.broadcast_to(present, (m, len(present)))
        alive = np.array([present[list(s.tier.devices)].any() for s in self.steps])
        outputs: dict[str, dict[str, np.ndarray]] = {}
        for step in (s for s, up in zip(self.steps, alive, strict=True) if up):
            ports = [p for p in step.tier.inputs if p.role == "features"]
            sent = {p.name: features[p.source.column] for p in ports if p.source.column in features}
            outputs[step.tier.name] = step(presence, sent)
        probs, take = None, np.zeros(m, bool)
        if self.aggregator is not None:
            received = {}  # summaries cross a link: encoded, then decoded
            for port in self.aggregator.tier.inputs:
                if port.source is not None and port.source.tier in outputs:
                    payload = encode_summaries(outputs[port.source.tier]["summary"], self.encoding)
                    received[port.name] = decode_summaries(payload, self.num_classes, self.encoding)
            logits = self.aggregator(presence, received)["logits"]
            probs, take = exit_decision(logits, self.threshold)
        rows = np.flatnonzero(~take)
        packed = {t: pack_features_batch(outputs[t]["features"][rows]) for t in outputs}
        payloads = [{t: packed[t][k].tobytes() for t in packed} for k in range(len(rows))]
        return EdgeOutcome(probs, take, alive, payloads)
