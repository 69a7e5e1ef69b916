"""Bytes per end device per sample: the paper's cost formula and its generalisation.

The paper counts the bytes per end device per sample as (eq. 1)

    c = 4 * |C| + (1 - l) * f * o / 8

with ``l`` the fraction of samples exited locally, ``f`` filters and ``o`` the output size
of one filter. :func:`paper_bytes_per_device` is that formula verbatim (a test oracle);
:func:`expected_bytes_per_device` generalises it to any summary encoding and real packed
sizes, and :func:`hierarchy_bytes` applies it to every link of a hierarchy's tier graph
(edges, no local exit, configuration (a)'s raw offload). What those bytes cost in energy
and time on a given radio is :mod:`ddnn_tf.core.cost.price`.

Numpy and the standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from ddnn_tf.core.comm import feature_nbytes, summary_nbytes
from ddnn_tf.core.graph import tier_graph
from ddnn_tf.errors import ConfigError

__all__ = ["expected_bytes_per_device", "hierarchy_bytes", "paper_bytes_per_device"]


def _fraction(exit_fraction: Mapping[str, float], name: str, *, required: bool) -> float:
    if name not in exit_fraction:
        if required:
            raise ConfigError(
                f"Expected `exit_fraction` to contain {name!r}. Received keys "
                f"{sorted(exit_fraction)}."
            )
        return 0.0
    return float(exit_fraction[name])


def _check_fractions(exit_fraction: Mapping[str, float]) -> None:
    if not isinstance(exit_fraction, Mapping):
        raise ConfigError(
            "Expected `exit_fraction` to be a mapping exit name -> fraction, e.g. "
            f"{{'local': 0.6, 'cloud': 0.4}}. Received {type(exit_fraction).__name__}."
        )
    for name, value in exit_fraction.items():
        if not 0.0 <= float(value) <= 1.0:
            raise ConfigError(
                f"Expected exit fractions in [0, 1] (not percentages). Received {name}={value!r}."
            )
    total = sum(float(v) for v in exit_fraction.values())
    if total > 1.0 + 1e-6:
        raise ConfigError(
            f"Expected exit fractions summing to at most 1. Received a sum of {total:g} "
            f"from {dict(exit_fraction)}."
        )


def _check_nbytes(value: float, name: str) -> float:
    v = float(value)
    if not (math.isfinite(v) and v >= 0.0):
        raise ConfigError(f"Expected `{name}` to be a non-negative byte count. Received {value!r}.")
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
        raise ConfigError(
            f"Expected `local_exit_fraction` in [0, 1] (not a percentage). Received {lf!r}."
        )
    return summary_bytes_per_class * num_classes + (1.0 - lf) * filters * output_size / 8


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
    the edge); :func:`hierarchy_bytes` adds the edge -> cloud traffic.

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
            raise ConfigError(
                "Expected no 'local' exit fraction with has_local=False. Received "
                f"{dict(exit_fraction)}; pass has_local=True for a hierarchy with a local exit."
            )
        return features
    summary = _check_nbytes(summary_nbytes, "summary_nbytes")
    local = _fraction(exit_fraction, "local", required=True)
    return summary + (1.0 - local) * features


def hierarchy_bytes(
    topology,
    exit_fraction: Mapping[str, float],
    *,
    raw_bytes_per_device: Sequence[float],
    summary_encoding: str = "float32",
    failed: Sequence[bool] | None = None,
) -> dict[str, float]:
    """Expected bytes per sample on the links of a :class:`~ddnn_tf.core.topology.Topology`.

    Every link of its tier graph (:func:`ddnn_tf.core.graph.tier_graph`) is charged with the
    size of its message times the fraction of samples that send it: summaries to the
    local aggregator always; features (or raw input) upward for the samples not exited
    locally; an edge's features to the cloud for the samples neither the local nor the
    edge exit classified. Unclassified samples are charged like samples that went up, as
    in eq. (1).

    Args:
        topology: the hierarchy.
        exit_fraction: fractions per exit name, e.g. ``ExitReport.exit_fraction``.
        raw_bytes_per_device: raw input bytes per device (what configuration (a) sends).
        summary_encoding: wire encoding of class summaries.
        failed: optional bool per device; failed devices send nothing and are left out
            of the per-device mean (an edge counts while any of its devices is live).

    Returns:
        ``{"bytes_per_device": mean over live devices, "raw_bytes_per_device": mean
        raw bytes over live devices, "edge_to_cloud": mean per live edge (0 without
        edges)}``.

    Raises:
        ValueError: fractions outside [0, 1] or summing past 1.

    Example:
        >>> from ddnn_tf.core.topology import Topology
        >>> t = Topology(input_shapes=[(10, 14, 1)] * 6, num_classes=10)
        >>> hierarchy_bytes(t, {"local": 0.5, "cloud": 0.5}, raw_bytes_per_device=[140] * 6)
        {'bytes_per_device': 49.0, 'raw_bytes_per_device': 140.0, 'edge_to_cloud': 0.0}
    """
    _check_fractions(exit_fraction)
    graph = tier_graph(topology)
    n = topology.num_devices
    live = [d for d in range(n) if not (failed is not None and failed[d])]
    fractions = {k: v for k, v in exit_fraction.items() if k in topology.exits}
    upward = 1.0 - fractions.get("local", 0.0)
    forwarded = max(0.0, upward - fractions.get("edge", 0.0))
    summary = summary_nbytes(topology.num_classes, summary_encoding)
    per_device = dict.fromkeys(live, 0.0)
    edges = []
    for source, _ in graph.links:
        sender = None if source.output == "raw" else graph[source.tier]
        if sender is not None and not any(d in per_device for d in sender.devices):
            continue  # a failed device, or an edge whose devices all failed
        if source.output == "raw":
            if source.column in per_device:
                per_device[source.column] += float(raw_bytes_per_device[source.column])
        elif source.link == "device_to_local":
            per_device[source.column] += summary
        elif source.link == "device_to_upper":
            size = feature_nbytes(sender.output("features").shape)
            per_device[source.column] += upward * size
        elif source.link == "edge_to_cloud":
            edges.append(forwarded * feature_nbytes(sender.output("features").shape))
    return {
        "bytes_per_device": float(np.mean(list(per_device.values()))) if live else 0.0,
        "raw_bytes_per_device": float(np.mean([raw_bytes_per_device[d] for d in live]))
        if live
        else 0.0,
        "edge_to_cloud": float(np.mean(edges)) if edges else 0.0,
    }
