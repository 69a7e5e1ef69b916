"""Evaluate a trained run's exits: accuracies, exit fractions, bytes, threshold sweep.

``python -m ddnn_tf.evaluate runs/NAME --data fmnist6 [--threshold 0.8] [--sweep]
[--fail 0,3] [--json]``

Failed devices (``--fail``) never deliver a message: the aggregators see them as
absent (max/avg over the devices present; concatenation fills the missing slots with
zeros), and they send no bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ddnn_tf._cli import cli
from ddnn_tf.checks import check_labels, failed_mask
from ddnn_tf.comm import hierarchy_bytes
from ddnn_tf.exits import evaluate_exits, resolve_thresholds, threshold_sweep

__all__ = [
    "evaluate_run",
    "format_exits",
    "format_report",
    "format_sweep",
    "reduction",
]


def reduction(raw_bytes: float, sent_bytes: float) -> float | None:
    """How many times fewer bytes than raw offload; None when nothing was sent."""
    return raw_bytes / sent_bytes if sent_bytes > 0 else None


def evaluate_run(
    run,
    dataset=None,
    *,
    threshold: float | str | None = None,
    sweep: bool = False,
    fail=None,
    split: str = "test",
    summary_encoding: str | None = None,
    calibrate: str | None = None,
) -> dict[str, Any]:
    """Evaluate every exit of a trained run on one split.

    Args:
        run: a :class:`~ddnn_tf.train.Run` or the path of a run directory.
        dataset: the data; by default the run's own dataset spec is reloaded.
        threshold: exit threshold T for every non-last exit, ``"paper"`` (0.8) or
            ``"calibrated"`` (searched on the validation split at training); None = the
            calibrated thresholds when the run has them (the ones its converted manifest
            carries), else the paper's.
        sweep: add the threshold sweep (the paper's Table II thresholds and 0..1).
        fail: failed devices, e.g. ``"0,3"``: their messages never arrive.
        split: ``"test"`` (default) or ``"val"``.
        summary_encoding: wire encoding of the summaries for the byte count; by default
            the model's own (``Topology.summary_encoding``: what its manifest declares).
        calibrate: re-calibrate T on the validation split with this rule (``accuracy`` or
            ``bytes:B``, see :func:`~ddnn_tf.train.calibrate_threshold`) instead of using
            ``threshold``.

    Returns:
        A JSON-able dict: ``n_samples``, ``accuracy`` (per exit and ``overall``),
        ``exit_fraction``, ``bytes_per_device``, ``raw_bytes_per_device``,
        ``communication_reduction``, ``thresholds``, ``failed_devices`` and, with
        ``sweep``, ``sweep`` rows ``{threshold, exit_fraction, accuracy_overall,
        bytes_per_device}``.
    """
    from ddnn_tf.train import load_run, predict_exits

    if not hasattr(run, "ddnn"):
        run = load_run(run)
    topology = run.topology
    dataset = dataset if dataset is not None else run.load_data()
    if split not in ("test", "val"):
        raise ValueError(f"--split: expected 'test' or 'val', got {split!r}.")
    if dataset.num_classes != topology.num_classes:
        raise ValueError(
            f"The data ({dataset.name}) has {dataset.num_classes} classes, but the model was "
            f"trained for {topology.num_classes}: evaluate it on data like its own (--data)."
        )
    data = getattr(dataset, split)
    y = check_labels(data.y, topology.num_classes, where=f"{split} labels")
    failed = failed_mask(fail, topology.num_devices)
    if failed.all():
        raise ValueError("--fail names every device: nothing would reach any exit.")
    if summary_encoding is None:
        summary_encoding = topology.summary_encoding
    probs = predict_exits(run.ddnn, data.x, presence=(~failed).astype(np.float32))
    if calibrate is not None and len(topology.exits) > 1:
        from ddnn_tf.train import calibrate_threshold

        if not len(dataset.val):
            raise ValueError("--calibrate needs a validation split; the data has none.")
        t = calibrate_threshold(
            predict_exits(run.ddnn, dataset.val.x),
            check_labels(dataset.val.y, topology.num_classes, where="val labels"),
            topology,
            calibrate,
            raw_bytes_per_device=dataset.raw_bytes_per_device,
        )
        threshold = t
    thresholds = resolve_thresholds(threshold, topology.exits[:-1], run.thresholds)
    report = evaluate_exits(probs, y, thresholds if thresholds else 1.0)
    raw = list(dataset.raw_bytes_per_device)

    def costs(fractions):
        return hierarchy_bytes(
            topology,
            fractions,
            raw_bytes_per_device=raw,
            summary_encoding=summary_encoding,
            failed=failed,
        )

    cost = costs(report.exit_fraction)
    result: dict[str, Any] = {
        "split": split,
        "n_samples": int(len(y)),
        "exits": list(topology.exits),
        "accuracy": report.accuracy,
        "exit_fraction": report.exit_fraction,
        "thresholds": report.thresholds,
        "bytes_per_device": cost["bytes_per_device"],
        "raw_bytes_per_device": cost["raw_bytes_per_device"],
        "communication_reduction": reduction(
            cost["raw_bytes_per_device"], cost["bytes_per_device"]
        ),
        "failed_devices": [int(d) for d in np.flatnonzero(failed)],
        "summary_encoding": summary_encoding,
    }
    if topology.edges:
        result["edge_to_cloud_bytes"] = cost["edge_to_cloud"]
    if sweep and len(topology.exits) > 1:
        # The default grid, 0.0 to 1.0 in steps of 0.1, holds every T of Table II.
        result["sweep"] = threshold_sweep(probs, y, bytes_fn=lambda f: costs(f)["bytes_per_device"])
    return result


def format_exits(result: dict[str, Any], *, measured: bool = False) -> list[str]:
    """Report lines on exits, accuracies and bytes (shared with ``python -m ddnn_tf.run``)."""
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
    lines += [
        f"  overall accuracy at T ({t}): {acc['overall']:.4f}",
        f"  exits: {fr}",
        f"  bytes per device per sample{' (measured)' if measured else ''}: "
        f"{result['bytes_per_device']:.1f} (raw offload {result['raw_bytes_per_device']:.0f}; "
        f"{_times(result['communication_reduction'])} less)",
    ]
    if "edge_to_cloud_bytes" in result:
        lines.append(
            f"  bytes per edge to the cloud per sample: {result['edge_to_cloud_bytes']:.1f}"
        )
    return lines


def _times(factor: float | None) -> str:
    return "n/a" if factor is None else f"{factor:.1f}x"


def format_sweep(result: dict[str, Any]) -> list[str]:
    """The threshold sweep as a table (the paper's Table II), or nothing without one."""
    if "sweep" not in result:
        return []
    first = result["exits"][0]
    lines = ["", f"{'T':>5} {first + ' exit %':>14} {'overall acc %':>14} {'bytes':>8}"]
    for row in result["sweep"]:
        lines.append(
            f"{row['threshold']:>5.2f} {100 * row['exit_fraction'][first]:>14.2f} "
            f"{100 * row['accuracy_overall']:>14.2f} {row['bytes_per_device']:>8.1f}"
        )
    return lines


def format_report(result: dict[str, Any]) -> str:
    """A readable text report of :func:`evaluate_run`'s result."""
    lines = [f"{result['n_samples']} {result['split']} samples"]
    if result["failed_devices"]:
        lines.append(f"failed devices: {result['failed_devices']}")
    return "\n".join(lines + format_exits(result) + format_sweep(result))


def main(
    run: str,
    data: str | None = None,
    path: str | None = None,
    threshold=None,
    sweep: bool = False,
    fail=None,
    split: str = "test",
    summary_encoding: str | None = None,
    calibrate: str | None = None,
    json: bool = False,  # noqa: A002  (the flag is --json)
) -> None:
    """Evaluate a run directory.

    Args:
        run: the run directory (runs/NAME).
        data: dataset name; by default the one the run was trained on.
        path: data file or directory for file-based loaders.
        threshold: T for every early exit, 'paper' (0.8) or 'calibrated' (default: the
            run's calibrated thresholds, as the converted model's manifest holds them).
        sweep: print the threshold sweep (Table II).
        fail: failed devices, e.g. 0,3.
        summary_encoding: summary wire encoding for the byte count (default: the model's).
        calibrate: re-calibrate T on the validation split: 'accuracy' or 'bytes:B'.
        json: print one JSON object instead of the table.
    """
    from ddnn_tf.data import load_dataset
    from ddnn_tf.train import load_run

    loaded = load_run(Path(run))
    dataset = None
    if data is not None:
        spec = dict(loaded.dataset_spec)
        if data != spec.get("name") or path is not None:
            spec = {"name": data, "path": path}
        dataset = load_dataset(**spec)
    result = evaluate_run(
        loaded,
        dataset,
        threshold=threshold,
        sweep=sweep,
        fail=fail,
        split=split,
        summary_encoding=summary_encoding,
        calibrate=calibrate,
    )
    print(_json.dumps(result, indent=2) if json else format_report(result))


_json = json

if __name__ == "__main__":
    cli(main)
