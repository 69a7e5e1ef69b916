"""One tier step: a tier's inputs from its ports, its binary, and its exit.

The orchestrator (:class:`ddnn_tf.runtime.Hierarchy`), the gateway's local aggregator
and the edge tiers the gateway hosts (:mod:`ddnn_tf.serve.edges`) run every tier through
:class:`TierStep` and decide every exit with :func:`exit_decision`, so the emulated
hierarchy and the live one feed a tier and exit a sample the same way:

* a ``presence`` input's column is 1 for the samples where any of that column's devices
  is present (a device, an edge with a present device);
* a received input is the decoded message, zeros where none arrived;
* a ``sensor`` input is the device's own view.

>>> probs, take = exit_decision(np.array([[4.0, 0.0], [0.0, 0.0]]), 0.5)
>>> take.tolist()
[True, False]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ddnn_tf.core.exits import exits_here, softmax
from ddnn_tf.core.graph import Tier
from ddnn_tf.runtime.tiers import TierRunner

__all__ = ["TierStep", "exit_decision"]


def exit_decision(logits: np.ndarray, threshold: float | None) -> tuple[np.ndarray, np.ndarray]:
    """An exit's probabilities (float64 softmax of its logits) and which rows leave there:
    normalized entropy ``<= threshold`` (:func:`~ddnn_tf.core.exits.exits_here`); every
    row at the last exit (``threshold`` None)."""
    probs = softmax(np.asarray(logits, np.float64))
    take = np.ones(len(probs), bool) if threshold is None else exits_here(probs, threshold)
    return probs, take


class TierStep:
    """A tier of the tier graph and its binary, fed from the tier's ports.

    Args:
        tier: the tier (:class:`~ddnn_tf.core.graph.Tier`).
        runner: its loaded binary, whose inputs are in the tier's port order (as
            :func:`~ddnn_tf.core.manifest.check_tier_graph` makes them).
    """

    def __init__(self, tier: Tier, runner: TierRunner) -> None:
        self.tier = tier
        self.runner = runner

    def feeds(
        self,
        presence: np.ndarray,
        messages: Mapping[str, np.ndarray],
        sensors: Sequence[np.ndarray] | None = None,
        rows: np.ndarray | None = None,
    ) -> list[np.ndarray]:
        """The tier's inputs in port order.

        Args:
            presence: ``(n, D)`` bool, the devices present per sample.
            messages: input name -> ``(n, ...)`` float32 decoded message; an input not
                given is fed zeros (nothing arrived).
            sensors: per device, its ``(n, ...)`` view (device tiers).
            rows: feed only these of the ``n`` samples.
        """
        out = []
        for port in self.tier.inputs:
            if port.role == "presence":
                x = np.stack([presence[:, list(c.devices)].any(axis=1) for c in port.columns], 1)
                x = x.astype(np.float32)
            elif port.source is None:  # the device's own sensor
                x = sensors[port.device]
            elif port.name in messages:
                x = messages[port.name]
            else:
                x = np.zeros((len(presence), *port.shape), np.float32)
            out.append(np.ascontiguousarray(x if rows is None else x[rows]))
        return out

    def __call__(self, *args, **kwargs) -> dict[str, np.ndarray]:
        """Run the tier on :meth:`feeds` (same arguments); its outputs by name."""
        return self.runner.run(self.feeds(*args, **kwargs))
