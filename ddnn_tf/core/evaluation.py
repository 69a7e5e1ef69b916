"""One evaluation result, whoever computed it: the Keras evaluation or the deployed tiers.

:func:`ddnn_tf.keras.evaluate.evaluate_run` (Keras) and :func:`ddnn_tf.runtime.evaluate_model`
(the converted tiers under the orchestrator) both return an :class:`Evaluation`; its JSON
(:meth:`Evaluation.to_dict`) is what the CLIs' ``--json`` prints and the experiments
read, and :meth:`Evaluation.format` is the CLIs' text report. It reads like the dict it
replaces (``result["accuracy"]``).

Numpy and the standard library only (no TensorFlow).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ddnn_tf.core.calibration import Calibration

__all__ = ["Evaluation", "format_exits", "format_sweep", "reduction"]


def reduction(raw_bytes: float, sent_bytes: float) -> float | None:
    """How many times fewer bytes than raw offload; None when nothing was sent.

    Example:
        >>> reduction(140, 56), reduction(140, 0)
        (2.5, None)
    """
    return raw_bytes / sent_bytes if sent_bytes > 0 else None


@dataclass
class Evaluation(Mapping):
    """Accuracy, exits and bytes of a DDNN on one data split.

    Attributes:
        split: ``test`` or ``val``.
        n_samples: samples evaluated.
        exits: exit names, bottom to top.
        accuracy: per exit (every sample exits there) and ``overall`` (each exits where
            the thresholds send it).
        exit_fraction: fraction of samples per exit, plus ``unclassified``.
        thresholds: ``{exit: T}`` of every early exit.
        bytes_per_device: mean bytes a live device sends per sample.
        raw_bytes_per_device: what raw offload would send.
        failed_devices: devices whose messages never arrived.
        summary_encoding: the class summaries' wire encoding.
        edge_to_cloud_bytes: mean bytes per live edge to the cloud (hierarchies with edges).
        sweep: the threshold sweep rows ``{threshold, exit_fraction, accuracy_overall,
            bytes_per_device}``, if asked for.
        calibration: the :class:`~ddnn_tf.core.calibration.Calibration` (as a dict) that
            chose ``thresholds``; None when the thresholds were given by hand.
        runtime: what only a run of the deployed tiers measures (``model``, ``target``,
            ``batch_size``, ``fail_prob``, ``seed``, ``unclassified``, ``latency_ms``,
            ``wire_ms``, ``samples_per_s``, ``staged_matches_all_exits``); None for Keras.
        cost: what a sample costs on hardware profiles
            (:meth:`ddnn_tf.core.cost.price.Cost.to_dict` and
            ``instructions_per_sample``), when profiles were given; its sweep columns
            are in ``sweep``.

    Example:
        >>> e = Evaluation("test", 2, ["local", "cloud"], {"local": 0.5, "cloud": 1.0,
        ...     "overall": 1.0}, {"local": 0.5, "cloud": 0.5, "unclassified": 0.0},
        ...     {"local": 0.8}, 58.0, 140.0)
        >>> e["communication_reduction"], e.to_dict()["accuracy"]["overall"]
        (2.413793103448276, 1.0)
    """

    split: str
    n_samples: int
    exits: list[str]
    accuracy: dict[str, float]
    exit_fraction: dict[str, float]
    thresholds: dict[str, float]
    bytes_per_device: float
    raw_bytes_per_device: float
    failed_devices: list[int] = field(default_factory=list)
    summary_encoding: str = "float32"
    edge_to_cloud_bytes: float | None = None
    sweep: list[dict[str, Any]] | None = None
    runtime: dict[str, Any] | None = None
    calibration: dict[str, Any] | None = None
    cost: dict[str, Any] | None = None

    @property
    def communication_reduction(self) -> float | None:
        """Raw offload bytes over the bytes sent (None when nothing was sent)."""
        return reduction(self.raw_bytes_per_device, self.bytes_per_device)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able dict the CLIs print with ``--json``."""
        out: dict[str, Any] = {}
        if self.runtime is not None:
            out.update(model=self.runtime.get("model"), target=self.runtime.get("target"))
        out.update(
            split=self.split,
            n_samples=int(self.n_samples),
            exits=list(self.exits),
            accuracy=dict(self.accuracy),
            exit_fraction=dict(self.exit_fraction),
            thresholds=dict(self.thresholds),
            bytes_per_device=float(self.bytes_per_device),
            raw_bytes_per_device=float(self.raw_bytes_per_device),
            communication_reduction=self.communication_reduction,
            failed_devices=[int(d) for d in self.failed_devices],
            summary_encoding=self.summary_encoding,
        )
        if self.runtime is not None:
            out.update({k: v for k, v in self.runtime.items() if k not in ("model", "target")})
        if self.edge_to_cloud_bytes is not None:
            out["edge_to_cloud_bytes"] = float(self.edge_to_cloud_bytes)
        if self.calibration is not None:
            out["calibration"] = dict(self.calibration)
        if self.sweep is not None:
            out["sweep"] = self.sweep
        if self.cost is not None:
            out["cost"] = self.cost
        return out

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)

    # Read like the dict it replaces.
    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    def format(self) -> str:
        """The text report (``ddnn evaluate``'s, or ``ddnn run``'s for the tiers)."""
        result = self.to_dict()
        if self.runtime is None:
            lines = [f"{result['n_samples']} {result['split']} samples"]
            if result["failed_devices"]:
                lines.append(f"failed devices: {result['failed_devices']}")
            lines += format_exits(result) + format_sweep(result)
            return "\n".join(lines + _cost_lines(result))
        lines = [
            f"{result['model']} ({result['target']}): {result['n_samples']} "
            f"{result['split']} samples, batch size {result['batch_size']}"
        ]
        if result["failed_devices"] or result["fail_prob"]:
            lines.append(
                f"failed devices: {result['failed_devices'] or 'none'}; random failure "
                f"probability {result['fail_prob']:g} (seed {result['seed']}); "
                f"{result['unclassified']} sample(s) unclassified"
            )
        lines += format_exits(result, measured=True)
        lines += ["", f"{'tier':<18}{'samples':>8}{'total ms':>11}{'ms/sample':>11}"]
        for tier, v in result["latency_ms"].items():
            lines.append(f"{tier:<18}{v['samples']:>8}{v['total_ms']:>11.1f}{v['mean_ms']:>11.4f}")
        wire = result["wire_ms"]
        lines.append(
            f"{'(message coding)':<18}{result['n_samples']:>8}{wire['total_ms']:>11.1f}"
            f"{wire['mean_ms']:>11.4f}"
        )
        lines.append(f"throughput: {result['samples_per_s']:.0f} samples/s")
        lines += format_sweep(result)
        return "\n".join(lines + _cost_lines(result))


def _cost_lines(result: Mapping[str, Any]) -> list[str]:
    if result.get("cost") is None:
        return []
    from ddnn_tf.core.cost.report import format_cost

    return ["", format_cost(result["cost"])]


def format_exits(result: Mapping[str, Any], *, measured: bool = False) -> list[str]:
    """Report lines on exits, accuracies and bytes of an evaluation.

    Args:
        result: an :class:`Evaluation` (or its dict).
        measured: the bytes were counted on the wire (the deployed tiers).

    Returns:
        The lines.
    """
    acc = result["accuracy"]
    lines = [
        f"  {e:>6} accuracy (all samples exit there): {acc[e]:.4f}"
        for e in result["exits"]
        if e in acc
    ]
    t = ", ".join(f"{k}={v:.2f}" for k, v in result["thresholds"].items()) or "-"
    fr = ", ".join(
        f"{k} {100 * v:.2f}%"
        for k, v in result["exit_fraction"].items()
        if v or k != "unclassified"
    )
    factor = result["communication_reduction"]
    lines.append(f"  overall accuracy at T ({t}): {acc['overall']:.4f}")
    if result.get("calibration") is not None:
        lines.append(f"  T calibrated by {Calibration.from_dict(result['calibration']).describe()}")
    lines += [
        f"  exits: {fr}",
        f"  bytes per device per sample{' (measured)' if measured else ''}: "
        f"{result['bytes_per_device']:.1f} (raw offload {result['raw_bytes_per_device']:.0f}; "
        f"{'n/a' if factor is None else f'{factor:.1f}x'} less)",
    ]
    if result.get("edge_to_cloud_bytes") is not None:
        lines.append(
            f"  bytes per edge to the cloud per sample: {result['edge_to_cloud_bytes']:.1f}"
        )
    return lines


def format_sweep(result: Mapping[str, Any]) -> list[str]:
    """The threshold sweep as a table (the paper's Table II), or nothing without one.

    Args:
        result: an :class:`Evaluation` (or its dict).

    Returns:
        The lines.
    """
    if result.get("sweep") is None:
        return []
    first = result["exits"][0]
    priced = "energy_uj_per_sample" in result["sweep"][0]
    head = f"{'T':>5} {first + ' exit %':>14} {'overall acc %':>14} {'bytes':>8}"
    lines = ["", head + (f" {'energy uJ':>11} {'p95 ms':>9}" if priced else "")]
    for row in result["sweep"]:
        line = (
            f"{row['threshold']:>5.2f} {100 * row['exit_fraction'][first]:>14.2f} "
            f"{100 * row['accuracy_overall']:>14.2f} {row['bytes_per_device']:>8.1f}"
        )
        if priced:
            line += f" {row['energy_uj_per_sample']:>11,.1f} {row['latency_p95_ms']:>9,.1f}"
        lines.append(line)
    return lines
