"""Evaluate a trained run's exits: accuracies, exit fractions, bytes, threshold sweep.

``python -m ddnn_tf.evaluate runs/NAME --data fmnist6 [--threshold 0.8] [--sweep]
[--fail 0,3] [--json]``

Failed devices (``--fail``) never deliver a message: the aggregators see them as
absent (max/avg over the devices present; concatenation fills the missing slots with
zeros), and they send no bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ddnn_tf._cli import cli
from ddnn_tf.checks import check_labels, failed_mask
from ddnn_tf.comm import hierarchy_bytes
from ddnn_tf.evaluation import Evaluation, format_exits, format_sweep, reduction
from ddnn_tf.exits import evaluate_exits, resolve_thresholds, threshold_sweep

__all__ = [
    "Evaluation",
    "evaluate_run",
    "format_exits",
    "format_report",
    "format_sweep",
    "reduction",
]


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
) -> Evaluation:
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
        An :class:`~ddnn_tf.evaluation.Evaluation`; its JSON has ``n_samples``,
        ``accuracy`` (per exit and ``overall``), ``exit_fraction``, ``bytes_per_device``,
        ``raw_bytes_per_device``, ``communication_reduction``, ``thresholds``,
        ``failed_devices`` and, with ``sweep``, ``sweep`` rows ``{threshold,
        exit_fraction, accuracy_overall, bytes_per_device}``.
    """
    from ddnn_tf.rundir import load_run
    from ddnn_tf.train import predict_exits

    if not hasattr(run, "ddnn"):
        run = load_run(run)
    topology = run.topology
    dataset = dataset if dataset is not None else run.load_data()
    if split not in ("test", "val"):
        raise ValueError(f"split: expected 'test' or 'val', got {split!r}.")
    if dataset.num_classes != topology.num_classes:
        raise ValueError(
            f"The data ({dataset.name}) has {dataset.num_classes} classes, but the model was "
            f"trained for {topology.num_classes}: evaluate it on data like its own (--data)."
        )
    data = getattr(dataset, split)
    y = check_labels(data.y, topology.num_classes, where=f"{split} labels")
    failed = failed_mask(fail, topology.num_devices)
    if failed.all():
        raise ValueError("fail names every device: nothing would reach any exit.")
    if summary_encoding is None:
        summary_encoding = topology.summary_encoding
    probs = predict_exits(run.ddnn, data.x, presence=(~failed).astype(np.float32))
    if calibrate is not None and len(topology.exits) > 1:
        from ddnn_tf.calibration import calibrate_threshold

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
    sweep_rows = None
    if sweep and len(topology.exits) > 1:
        # The default grid, 0.0 to 1.0 in steps of 0.1, holds every T of Table II.
        sweep_rows = threshold_sweep(probs, y, bytes_fn=lambda f: costs(f)["bytes_per_device"])
    return Evaluation(
        split=split,
        n_samples=int(len(y)),
        exits=list(topology.exits),
        accuracy=report.accuracy,
        exit_fraction=report.exit_fraction,
        thresholds=report.thresholds,
        bytes_per_device=cost["bytes_per_device"],
        raw_bytes_per_device=cost["raw_bytes_per_device"],
        failed_devices=[int(d) for d in np.flatnonzero(failed)],
        summary_encoding=summary_encoding,
        edge_to_cloud_bytes=cost["edge_to_cloud"] if topology.edges else None,
        sweep=sweep_rows,
    )


def format_report(result: Evaluation) -> str:
    """A readable text report of :func:`evaluate_run`'s result (:meth:`Evaluation.format`)."""
    return result.format()


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
    from ddnn_tf.rundir import load_run

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
    print(result.to_json() if json else result.format())


if __name__ == "__main__":
    cli(main)
