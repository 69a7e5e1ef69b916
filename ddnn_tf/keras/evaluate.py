"""Evaluate a trained run's exits in Keras: accuracies, exit fractions, bytes, threshold
sweep (``ddnn evaluate``).

Failed devices (``fail``) never deliver a message: the aggregators see them as
absent (max/avg over the devices present; concatenation fills the missing slots with
zeros), and they send no bytes.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ddnn_tf.core.calibration import applied_record, parse_calibrate
from ddnn_tf.core.calibration import calibrate as calibrate_rule
from ddnn_tf.core.checks import check_labels, failed_mask
from ddnn_tf.core.cost.traffic import hierarchy_bytes
from ddnn_tf.core.evaluation import Evaluation
from ddnn_tf.core.exits import evaluate_exits, resolve_thresholds, threshold_sweep
from ddnn_tf.core.vocab import SUBSETS
from ddnn_tf.data import load_dataset
from ddnn_tf.errors import ConfigError
from ddnn_tf.keras.rundir import load_run
from ddnn_tf.keras.train import predict_exits

__all__ = ["evaluate_run", "evaluate_saved_run"]


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
    hardware: Mapping[str, Any] | None = None,
) -> Evaluation:
    """Evaluate every exit of a trained run on one split.

    Args:
        run: a :class:`~ddnn_tf.keras.rundir.Run` or the path of a run directory.
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
        calibrate: re-calibrate T on the validation split with this rule (``risk:DELTA``,
            ``within:D``, ``accuracy`` or ``bytes:B``, see
            :func:`~ddnn_tf.core.calibration.calibrate`) instead of using ``threshold``.
        hardware: price the exits on hardware profiles: the keyword arguments of
            :func:`ddnn_tf.core.cost.price.price` that name them (``mcu``, ``radio``,
            ``wan``, ``rate_hz``, ``battery_mah``, ``mode``). The device instructions
            are ``instructions`` when given (one per device, e.g. the static model's
            of the tiers' generated C), else the static model's for the topology
            (:func:`ddnn_tf.mcu.opcount.topology_instructions`); ``sources`` overrides
            what the cost says about its inputs. The upper tiers are not timed (a Keras
            model is not what the gateway runs); ``ddnn cost`` on the converted model
            measures both.

    Returns:
        An :class:`~ddnn_tf.core.evaluation.Evaluation`; its JSON has ``n_samples``,
        ``accuracy`` (per exit and ``overall``), ``exit_fraction``, ``bytes_per_device``,
        ``raw_bytes_per_device``, ``communication_reduction``, ``thresholds``,
        ``failed_devices``, ``calibration`` (what chose the thresholds, when they are
        the run's or ``calibrate``'s) and, with ``sweep``, ``sweep`` rows ``{threshold,
        exit_fraction, accuracy_overall, bytes_per_device}``.
    """
    if not hasattr(run, "ddnn"):
        run = load_run(run)
    topology = run.topology
    dataset = dataset if dataset is not None else run.load_data()
    data = _subset(dataset, split, topology)
    y = check_labels(data.y, topology.num_classes, where=f"{split} labels")
    failed = failed_mask(fail, topology.num_devices)
    if failed.all():
        raise ConfigError("fail names every device: nothing would reach any exit.")
    if summary_encoding is None:
        summary_encoding = topology.summary_encoding
    probs = predict_exits(run.ddnn, data.x, presence=(~failed).astype(np.float32))
    calibration, thresholds = _chosen(run, dataset, threshold, calibrate)
    report = evaluate_exits(probs, y, thresholds if thresholds else 1.0)
    costs = functools.partial(  # the bytes of exit fractions
        hierarchy_bytes,
        topology,
        raw_bytes_per_device=list(dataset.raw_bytes_per_device),
        summary_encoding=summary_encoding,
        failed=failed,
    )
    cost = costs(report.exit_fraction)
    sweep_rows = None
    if sweep and len(topology.exits) > 1:
        # The default grid, 0.0 to 1.0 in steps of 0.1, holds every T of Table II.
        sweep_rows = threshold_sweep(probs, y, bytes_fn=lambda f: costs(f)["bytes_per_device"])
    priced = None
    if hardware is not None:
        priced = _price(topology, probs, thresholds, failed, summary_encoding, hardware)
        for row in sweep_rows or []:
            d = priced["pricer"](row["exit_fraction"]).to_dict()
            energy = [v for v in d["energy_uj_per_sample"].values() if v is not None]
            row["energy_uj_per_sample"] = float(np.mean(energy))
            row["latency_p95_ms"] = d["latency_ms"]["overall"]["p95"]
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
        calibration=applied_record(calibration, report.thresholds),
        cost=priced["block"] if priced is not None else None,
    )


def _subset(dataset, split: str, topology):
    """``dataset``'s ``split`` subset, checked against the model's classes."""
    if split not in SUBSETS:
        raise ConfigError(f"expected 'test' or 'val', got {split!r}.", argument="split")
    if dataset.num_classes != topology.num_classes:
        raise ConfigError(
            f"The data ({dataset.name}) has {dataset.num_classes} classes, but the model was "
            f"trained for {topology.num_classes}: evaluate it on data like its own (`data`)."
        )
    return getattr(dataset, split)


def _chosen(run, dataset, threshold, calibrate: str | None):
    """The calibration record and the thresholds :func:`evaluate_run` uses: ``threshold``
    (or the run's), or what ``calibrate``'s rule picks on the validation split."""
    topology = run.topology
    calibration = run.calibration
    if calibrate is not None and len(topology.exits) > 1:
        parse_calibrate(calibrate)  # a bad rule fails before anything runs
        if not len(dataset.val):
            raise ConfigError("needs a validation split; the data has none.", argument="calibrate")
        calibration = calibrate_rule(
            predict_exits(run.ddnn, dataset.val.x),
            check_labels(dataset.val.y, topology.num_classes, where="val labels"),
            topology,
            calibrate,
            raw_bytes_per_device=dataset.raw_bytes_per_device,
        )
        threshold = calibration.thresholds
    return calibration, resolve_thresholds(threshold, topology.exits[:-1], run.thresholds)


def _price(topology, probs, thresholds, failed, encoding, hardware) -> dict[str, Any]:
    """The cost block of a Keras evaluation (see :func:`evaluate_run`'s ``hardware``)."""
    from ddnn_tf.core import comm
    from ddnn_tf.core.cost.price import price
    from ddnn_tf.core.cost.profiles import load_profile
    from ddnn_tf.core.exits import exit_points
    from ddnn_tf.core.graph import device_tier
    from ddnn_tf.mcu.opcount import topology_instructions

    hardware = dict(hardware)
    core = load_profile(hardware["mcu"], "mcu").core
    instructions = hardware.pop("instructions", None)
    given = hardware.pop("sources", {})
    if instructions is None:
        instructions = topology_instructions(topology, core=core)
    present = np.broadcast_to(~failed, (len(next(iter(probs.values()))), len(failed)))
    index = exit_points(
        list(probs.values()), [thresholds[e] for e in topology.exits[:-1]], present.any(axis=1)
    )
    summary = comm.summary_nbytes(topology.num_classes, encoding) if topology.has_local else 0
    pricer = functools.partial(
        price,
        topology,
        instructions=instructions,
        summary_nbytes=summary,
        sources={
            "instructions": "modelled: the static op count of the topology's device tiers",
            "bytes": f"from the topology ({encoding} summaries, packed feature maps)",
            "exits": f"measured: {len(index)} samples in Keras",
            "tier_ms": "not measured in a Keras evaluation: 0 ms (ddnn cost measures them)",
            **given,
        },
        **hardware,
    )
    block = pricer(index, presence=present.copy()).to_dict()
    detail = {
        device_tier(i): {"measured": None, "modelled": v, "core": core}
        for i, v in enumerate(instructions)
    }
    return {"pricer": pricer, "block": {"instructions_per_sample": detail, **block}}


def evaluate_saved_run(
    run: str | Path,
    data: str | None = None,
    *,
    path: str | None = None,
    **options: Any,
) -> Evaluation:
    """:func:`evaluate_run` on a run directory, on its own data set or a named one.

    Args:
        run: the run directory (``runs/NAME``).
        data: a data set name; by default the one the run was trained on.
        path: data file or directory for file-based loaders.
        **options: :func:`evaluate_run`'s keywords (``threshold``, ``sweep``, ``fail``...).
    """
    loaded = load_run(Path(run))
    dataset = None
    if data is not None:
        spec = dict(loaded.dataset_spec)
        if data != spec.get("name") or path is not None:
            spec = {"name": data, "path": path}
        dataset = load_dataset(**spec)
    return evaluate_run(loaded, dataset, **options)
