"""Evaluate a converted DDNN on a dataset split: the runtime's side of ``ddnn evaluate``.

:func:`evaluate_model` returns the same :class:`~ddnn_tf.core.evaluation.Evaluation` as
:func:`ddnn_tf.keras.evaluate.evaluate_run`, with the same JSON keys
(``accuracy``, ``exit_fraction``, ``bytes_per_device``, ``raw_bytes_per_device``,
``thresholds``, ``failed_devices``, ``sweep`` ...), measured on the tier binaries, plus
per-tier latency and throughput.

Two passes run over the samples:

* the **staged** pass is the deployed behaviour: samples exit as soon as an exit is
  confident, upper tiers run only on what is left. Exit fractions, overall accuracy,
  bytes and latency come from it;
* the **all-exits** pass runs every tier on every sample, for the per-exit accuracies
  (the paper's "local/cloud accuracy": every sample exits there) and the threshold
  sweep. Its exit decisions at the chosen thresholds must equal the staged ones; the
  report says whether they do (``staged_matches_all_exits``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ddnn_tf.core.calibration import Calibration, applied_record, calibrate, parse_calibrate
from ddnn_tf.core.checks import check_labels, failed_mask
from ddnn_tf.core.evaluation import Evaluation
from ddnn_tf.core.exits import evaluate_exits
from ddnn_tf.errors import ConfigError
from ddnn_tf.runtime.cost import check_hardware, device_instructions, price_run, priced_sweep
from ddnn_tf.runtime.dataset import load_data_for, load_subset
from ddnn_tf.runtime.orchestrator import Hierarchy

__all__ = ["evaluate_model", "load_data_for", "load_subset"]


def _calibrated(h: Hierarchy, val_split, rule: str, batch_size: int) -> Calibration:
    """What ``rule`` picks on the validation split, run through the binaries."""
    if not len(val_split):
        raise ConfigError("calibrate needs a validation split; the data has none.")
    val = h.run(val_split.x, all_exits=True, batch_size=batch_size)
    raw = [float(entry["raw_bytes"]) for entry in h.manifest["inputs"]]
    y = check_labels(val_split.y, h.num_classes, where="val labels")
    return calibrate(
        {e: val.probs[e] for e in h.exits}, y, h.topology, rule, raw_bytes_per_device=raw
    )


def evaluate_model(
    model: str | Path | Hierarchy,
    data=None,
    *,
    path: str | None = None,
    target: str = "portable",
    threshold=None,
    sweep: bool = False,
    fail=None,
    fail_prob: float = 0.0,
    seed: int = 0,
    batch_size: int = 256,
    limit: int | None = None,
    subset: str = "test",
    num_threads: int = 1,
    exit_accuracy: bool = True,
    calibrate: str | None = None,
    hardware: Mapping[str, Any] | None = None,
) -> Evaluation:
    """Run a converted model's hierarchy on a dataset split and report it.

    Args:
        model: the converted model directory, or a :class:`Hierarchy`.
        data: a ``Dataset`` or a loader name; default: the dataset the manifest records.
        path: data file or directory for file-based loaders.
        target: ``portable`` or ``lce``.
        threshold: ``T`` for every early exit, ``"paper"`` (0.8); None = the manifest's.
        sweep: add the threshold sweep (``ddnn evaluate``'s grid).
        fail: devices failed on every sample, e.g. ``"0,3"``.
        fail_prob: probability that each device fails on each sample (seeded).
        seed: seed of the random failures.
        batch_size: samples per interpreter call (1 = one by one).
        limit: evaluate the first ``limit`` samples only.
        subset: ``test`` or ``val``.
        num_threads: interpreter threads per tier.
        exit_accuracy: run the all-exits pass for per-exit accuracies (implied by
            ``sweep``); without it ``accuracy`` holds ``overall`` only.
        calibrate: re-calibrate T on the validation split run through the binaries,
            ``risk:DELTA[,EPS]``, ``within:D``, ``accuracy`` or ``bytes:B``
            (:func:`ddnn_tf.core.calibration.calibrate`), instead of ``threshold``.
        hardware: price the run on hardware profiles: the keyword arguments of
            :func:`ddnn_tf.runtime.cost.model_pricer` (``mcu``, ``radio``, ``wan``,
            ``rate_hz``, ``battery_mah``, ``mode``); the result's ``cost`` holds the
            priced run and the sweep rows gain ``energy_uj_per_sample`` and
            ``latency_p95_ms``.

    Returns:
        An :class:`~ddnn_tf.core.evaluation.Evaluation`; its JSON has ``ddnn evaluate``'s
        keys (``calibration`` from the manifest, or from ``calibrate``) plus ``model``,
        ``target``, ``cost`` (with ``hardware``),
        ``batch_size``, ``fail_prob``, ``seed``, ``unclassified`` (count),
        ``latency_ms`` (per tier ``{total_ms, mean_ms, samples}``), ``wire_ms``
        (message encoding and decoding, ``{total_ms, mean_ms}``), ``samples_per_s``
        and ``staged_matches_all_exits``.

    Raises:
        FileNotFoundError / ValueError: a bad model directory, dataset, option or input.
    """
    h = (
        model
        if isinstance(model, Hierarchy)
        else Hierarchy(model, target=target, num_threads=num_threads)
    )
    if hardware is not None:  # bad profiles, or no C target, fail before anything runs
        device_instructions(h.manifest, check_hardware(**hardware))
    samples = load_subset(h, data, path, subset, limit)
    y = check_labels(samples.y, h.num_classes, where=f"{subset} labels")
    failed = failed_mask(fail, h.num_devices)
    if failed.all():
        raise ConfigError("fail names every device: nothing would reach any exit.")
    presence = h.presence(len(y), fail=fail, fail_prob=fail_prob, seed=seed)
    calibration = h.calibration
    if calibrate is not None and len(h.exits) > 1:
        parse_calibrate(calibrate)  # a bad rule fails before anything runs
        calibration = _calibrated(h, load_subset(h, data, path, "val"), calibrate, batch_size)
        threshold = calibration.thresholds

    start = time.perf_counter()
    staged = h.run(samples.x, thresholds=threshold, presence=presence, batch_size=batch_size)
    wall = time.perf_counter() - start
    result = _evaluation(
        h, staged, y, subset, failed, calibration, wall, fail_prob, seed, batch_size
    )
    pricer = None
    if hardware is not None:
        pricer, detail, cost = price_run(h, staged, samples.x, subset, **hardware)
        result.cost = {"instructions_per_sample": detail, **cost.to_dict()}
    if exit_accuracy or sweep:
        _add_all_exits(result, h, samples.x, y, staged, sweep, pricer, batch_size)
    return result


def _evaluation(h: Hierarchy, staged, y, subset, failed, calibration, wall, fail_prob, seed, batch):
    """The :class:`Evaluation` of a staged run of ``h`` on labels ``y``."""
    raw = [float(entry["raw_bytes"]) for entry in h.manifest["inputs"]]
    return Evaluation(
        split=subset,
        n_samples=int(len(y)),
        exits=list(h.exits),
        accuracy={"overall": staged.accuracy(y)},
        exit_fraction=staged.exit_fraction(),
        thresholds=dict(staged.thresholds),
        bytes_per_device=staged.bytes_per_device(),
        raw_bytes_per_device=float(np.mean([raw[d] for d in np.flatnonzero(~failed)])),
        failed_devices=[int(d) for d in np.flatnonzero(failed)],
        summary_encoding=h.summary_encoding,
        edge_to_cloud_bytes=staged.edge_to_cloud_bytes() if h.edge_tiers else None,
        calibration=applied_record(calibration, staged.thresholds),
        runtime={
            "model": str(h.manifest.directory),
            "target": h.target,
            "fail_prob": float(fail_prob),
            "seed": int(seed),
            "unclassified": int(np.count_nonzero(staged.exit_index < 0)),
            "batch_size": int(batch),
            "latency_ms": staged.latency(),
            "wire_ms": staged.wire_latency(),
            "samples_per_s": len(y) / wall if wall > 0 else 0.0,
        },
    )


def _add_all_exits(result: Evaluation, h: Hierarchy, x, y, staged, sweep, pricer, batch_size):
    """Run every exit on every sample (the staged run's presence and T): each exit's
    accuracy, whether the staged run agrees, and with ``sweep`` the threshold sweep."""
    full = h.run(
        x,
        thresholds=staged.thresholds,
        presence=staged.presence,
        batch_size=batch_size,
        all_exits=True,
    )
    probs = {e: full.probs[e] for e in h.exits}
    report = evaluate_exits(probs, y, staged.thresholds or 1.0, valid=full.valid)
    overall = result.accuracy["overall"]
    result.accuracy = {**{e: report.accuracy[e] for e in h.exits}, "overall": overall}
    result.runtime["staged_matches_all_exits"] = bool(
        np.array_equal(full.exit_index, staged.exit_index)
        and np.array_equal(full.prediction, staged.prediction)
    )
    if sweep and len(h.exits) > 1:
        result.sweep = priced_sweep(full, y, h.exits, pricer)
