"""Exit-threshold calibration rules: the T that exits the most samples early while staying
within D points of the best validation accuracy (``within:0.25``, the default preset's),
the most accurate T (``accuracy``), or the most accurate T within a byte budget per device
(``bytes:20``).

numpy only (with :mod:`ddnn_tf.core.exits` and :mod:`ddnn_tf.core.comm`): the Keras training, the
evaluation and the TensorFlow-free runtime share it.
"""

from __future__ import annotations

import math

import numpy as np

from ddnn_tf.core.cost.traffic import hierarchy_bytes
from ddnn_tf.core.exits import search_threshold, threshold_sweep
from ddnn_tf.core.topology import Topology
from ddnn_tf.errors import ConfigError

__all__ = ["DEFAULT_WITHIN_POINTS", "calibrate_threshold", "parse_calibrate"]

#: Accuracy (in points) the ``within`` rule may give up for early exits, by default.
DEFAULT_WITHIN_POINTS = 0.25


def _finite(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_calibrate(rule: str) -> tuple[str, float | None]:
    """Split a calibration rule into its kind (one of
    :data:`~ddnn_tf.core.vocab.CALIBRATION_RULES`) and its value.

    Args:
        rule: ``"within:D"`` (D in [0, 100] accuracy points; ``"within"`` alone is
            ``within:0.25``), ``"accuracy"`` or ``"bytes:B"`` (B > 0 bytes per device per
            sample).

    Returns:
        ``(kind, value)``; ``value`` is None for ``accuracy``.

    Raises:
        ConfigError: any other rule.

    Example:
        >>> parse_calibrate("within:0.25"), parse_calibrate("bytes:20")
        (('within', 0.25), ('bytes', 20.0))
        >>> parse_calibrate("accuracy"), parse_calibrate("within")
        (('accuracy', None), ('within', 0.25))
    """
    text = str(rule).strip()
    kind, sep, arg = text.partition(":")
    value = _finite(arg) if sep else None
    if text == "accuracy":
        return "accuracy", None
    if text == "within":
        return "within", DEFAULT_WITHIN_POINTS
    if value is not None and kind == "bytes" and value > 0:
        return "bytes", value
    if value is not None and kind == "within" and 0 <= value <= 100:
        return "within", value
    raise ConfigError(
        f"expected 'within:D' (D from 0 to 100 accuracy points, e.g. within:0.25), 'accuracy' or "
        f"'bytes:B' (B > 0 bytes per device per sample, e.g. bytes:20), got {rule!r}.",
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

    Every rule searches the default grid (0.0, 0.1, ..., 1.0). ``within:D``: among the T
    whose validation accuracy is within D points of the best one, the T exiting the most
    samples early (ties to the larger T): a DDNN's purpose is to answer most samples low
    in the hierarchy, and the most accurate T is often one that sends nearly everything
    to the cloud for a hundredth of a point. (A finer grid exits a few more samples
    early but follows the validation split's noise: on fmnist6 it lost up to 0.31 points
    of test accuracy against the model's all-cloud accuracy where the 0.1 grid lost at
    most 0.16.) ``accuracy``: the most accurate T (ties to the larger T). ``bytes:B``:
    the most accurate T whose expected bytes per device (summary + features of the
    samples that did not exit) are at most B; when no T fits, the cheapest one.

    Args:
        probs: exit name -> (N, |C|) probabilities, bottom to top (e.g. from
            ``ddnn_tf.keras.train.predict_exits``, or a hierarchy's all-exits run, on the
            validation split).
        labels: (N,) labels.
        topology: the hierarchy (its wire sizes give the bytes).
        rule: ``"within:D"``, ``"accuracy"`` or ``"bytes:B"`` (:func:`parse_calibrate`).
        raw_bytes_per_device: raw input bytes per device (only raw offload uses them).

    Returns:
        The threshold, from the default grid.

    Raises:
        ValueError: an invalid rule.
    """
    kind, value = parse_calibrate(rule)
    if kind == "accuracy":
        return float(search_threshold(probs, labels))
    if kind == "within":
        return float(search_threshold(probs, labels, margin=value / 100.0))
    budget = value
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
