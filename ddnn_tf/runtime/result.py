"""What :meth:`ddnn_tf.runtime.Hierarchy.run` returns: per-sample exits, predictions,
bytes on every link and time in every tier, with the figures derived from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ddnn_tf.errors import ConfigError

__all__ = ["RunResult"]


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
        protocol: ``paper`` or ``eager`` (see :meth:`Hierarchy.run`): in ``eager`` a
            device's message to the local aggregator carries its features too, and
            ``device_to_upper`` is what the gateway forwards, not what the device sends.
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
    protocol: str = "paper"

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
            raise ConfigError(f"Expected {len(self)} labels, got an array of shape {y.shape}.")
        return float(np.mean(self.prediction == y)) if len(y) else 0.0

    def device_bytes(self) -> np.ndarray:
        """``(N, D)`` bytes each device sent per sample (summary + upward payload; in the
        eager protocol its one message, summary and features)."""
        if self.protocol == "eager":
            return self.link_bytes["device_to_local"].copy()
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
