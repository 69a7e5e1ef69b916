"""Exit-threshold calibration rules: the most accurate T, or the most accurate T within a
byte budget per device (``--calibrate accuracy`` / ``--calibrate bytes:20``).

numpy only (with :mod:`ddnn_tf.core.exits` and :mod:`ddnn_tf.core.comm`): the Keras training, the
evaluation and the TensorFlow-free runtime share it.
"""

from __future__ import annotations

import numpy as np

from ddnn_tf.core.comm import hierarchy_bytes
from ddnn_tf.core.exits import search_threshold, threshold_sweep
from ddnn_tf.core.topology import Topology
from ddnn_tf.errors import ConfigError

__all__ = ["calibrate_threshold", "parse_calibrate"]


def parse_calibrate(rule: str) -> float | None:
    """``"accuracy"`` -> None; ``"bytes:20"`` -> 20.0 (bytes per device per sample).

    Raises:
        ValueError: any other rule.
    """
    text = str(rule).strip()
    if text == "accuracy":
        return None
    if text.startswith("bytes:"):
        try:
            budget = float(text[len("bytes:") :])
        except ValueError:
            budget = -1.0
        if budget > 0:
            return budget
    raise ConfigError(
        f"expected 'accuracy' or 'bytes:B' with B > 0 bytes per device per "
        f"sample (e.g. bytes:20), got {rule!r}.",
        argument="calibrate",
    )


def calibrate_threshold(
    probs: dict[str, np.ndarray],
    labels: np.ndarray,
    topology: Topology,
    rule: str = "accuracy",
    *,
    raw_bytes_per_device=None,
) -> float:
    """The exit threshold T a calibration rule picks on validation probabilities.

    ``accuracy``: the most accurate T (ties to the larger T). ``bytes:B``: the most
    accurate T whose expected bytes per device (summary + features of the samples that
    did not exit) are at most B; when no T fits, the cheapest one.

    Args:
        probs: exit name -> (N, |C|) probabilities, bottom to top (e.g. from
            ``ddnn_tf.keras.train.predict_exits``, or a hierarchy's all-exits run, on the
            validation split).
        labels: (N,) labels.
        topology: the hierarchy (its wire sizes give the bytes).
        rule: ``"accuracy"`` or ``"bytes:B"``.
        raw_bytes_per_device: raw input bytes per device (only raw offload uses them).

    Returns:
        The threshold, from the default grid.

    Raises:
        ValueError: an invalid rule.
    """
    budget = parse_calibrate(rule)
    if budget is None:
        return float(search_threshold(probs, labels))
    raw = list(raw_bytes_per_device or [0] * topology.num_devices)

    def cost(fractions):
        return hierarchy_bytes(
            topology,
            fractions,
            raw_bytes_per_device=raw,
            summary_encoding=topology.summary_encoding,
        )["bytes_per_device"]

    rows = threshold_sweep(probs, labels, bytes_fn=cost)
    fitting = [r for r in rows if r["bytes_per_device"] <= budget + 1e-9]
    if not fitting:
        return float(min(rows, key=lambda r: (r["bytes_per_device"], -r["threshold"]))["threshold"])
    best = max(fitting, key=lambda r: (r["accuracy_overall"], r["threshold"]))
    return float(best["threshold"])
