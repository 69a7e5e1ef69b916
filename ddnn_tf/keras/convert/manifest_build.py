"""Assemble a converted model's manifest: tier entries, wire, inputs, thresholds.

The schema is :mod:`ddnn_tf.core.manifest`'s; this module only fills it in from the run, the
tier plans and the converted files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

import ddnn_tf
from ddnn_tf.core import manifest as mf
from ddnn_tf.core.calibration import Calibration, calibrate
from ddnn_tf.core.comm import feature_nbytes, summary_nbytes
from ddnn_tf.core.exits import PAPER_THRESHOLD
from ddnn_tf.core.graph import Tier, device_tier
from ddnn_tf.core.topology import Topology
from ddnn_tf.keras.convert.export import is_quantized, tier_memory, tier_models
from ddnn_tf.keras.model import DDNN
from ddnn_tf.keras.rundir import Run
from ddnn_tf.keras.train import predict_exits

__all__ = ["build_manifest", "dataset_meta", "tier_entry"]


def dataset_meta(run: Run, dataset=None) -> dict[str, Any]:
    """Class and device names, raw sizes and input scale, from the dataset or the run dir.

    Args:
        run: the trained run.
        dataset: its dataset; without one, the run directory's ``dataset.json`` is read
            (the dataset is loaded from the run's spec only when that file lacks a field).

    Returns:
        ``{"classes", "device_names", "raw_bytes", "scale"}``.
    """
    if dataset is None and run.path is not None and (Path(run.path) / "dataset.json").is_file():
        info = json.loads((Path(run.path) / "dataset.json").read_text())
        if all(k in info for k in ("classes", "device_names", "raw_bytes_per_device")):
            return {
                "classes": list(info["classes"]),
                "device_names": list(info["device_names"]),
                "raw_bytes": list(info["raw_bytes_per_device"]),
                "scale": info.get("input_scale"),
            }
    dataset = dataset if dataset is not None else run.load_data()
    return {
        "classes": list(dataset.classes),
        "device_names": list(dataset.device_names),
        "raw_bytes": list(dataset.raw_bytes_per_device),
        "scale": dataset.input_scale,
    }


def tier_entry(
    ddnn: DDNN, plan: Tier, files: dict[str, dict[str, Any]], *, quantize: str
) -> dict[str, Any]:
    """The manifest's ``tiers[plan.name]`` entry.

    Args:
        ddnn: the trained model (for the tier's parameter memory).
        plan: the tier.
        files: ``{target: file entry}`` (from :func:`ddnn_tf.core.manifest.file_entry`).
        quantize: ``none`` or ``int8``.

    Returns:
        ``{role, [device | edge], inputs, outputs, devices, sources, files, memory,
        quantized}`` (the graph's fields: :meth:`ddnn_tf.core.graph.Tier.manifest_fields`).
    """
    sizes = {target: f["size_bytes"] for target, f in files.items()}
    return {
        **plan.manifest_fields(),
        "files": files,
        "memory": {**tier_memory(tier_models(ddnn, plan)), "tflite_bytes": sizes},
        "quantized": is_quantized(plan, quantize, ddnn.topology),
    }


def _thresholds(
    run: Run, split: tuple[str, ...], dataset, rule: str | None = None
) -> tuple[dict[str, float], str, Calibration | None]:
    """Thresholds of the split's early exits and the calibration that chose them: the
    run's if it calibrated these exits (and no ``rule`` is given), else ``rule`` or the
    run's own rule applied now to the split's exits on the validation split, else the
    paper's T (with no calibration)."""
    early = split[:-1]
    if not early:
        return {}, "validation" if run.thresholds else "paper", None
    same = tuple(run.topology.exits[:-1]) == early and all(e in run.thresholds for e in early)
    if same and rule is None:
        thresholds = {e: float(run.thresholds[e]) for e in early}
        return thresholds, "validation", run.calibration
    dataset = dataset if dataset is not None else run.load_data()
    if len(dataset.val):
        probs = predict_exits(run.ddnn, dataset.val.x)
        calibration = calibrate(
            {e: probs[e] for e in split},
            dataset.val.y,
            run.topology,
            rule or run.config.calibrate,
            raw_bytes_per_device=dataset.raw_bytes_per_device,
        )
        return dict(calibration.thresholds), "validation", calibration
    return {e: PAPER_THRESHOLD for e in early}, "paper", None


def _wire(topology: Topology, plans: list[Tier], meta: dict[str, Any]) -> dict[str, Any]:
    c = topology.num_classes
    features = {
        plan.name: {
            "encoding": "bitpacked-pm1",
            "shape": list(port.shape),
            "bits": int(np.prod(port.shape)),
            "nbytes": feature_nbytes(port.shape),
            "bit_order": "c-order-msb-first",
        }
        for plan in plans
        if not plan.composed
        for port in plan.outputs
        if port.role == "features"
    }
    return {
        "summary": {
            "encoding": topology.summary_encoding,
            "shape": [c],
            "nbytes": summary_nbytes(c, topology.summary_encoding),
            "byte_order": "little",
        },
        "features": features,
        "raw": {
            device_tier(i): {
                "shape": list(s),
                "dtype": _raw_dtype(meta),
                "nbytes": int(meta["raw_bytes"][i]),
            }
            for i, s in enumerate(topology.input_shapes)
        },
    }


def _raw_dtype(meta: dict[str, Any]) -> str:
    return "uint8" if meta["scale"] is not None else "float32"


def _inputs_spec(plans: list[Tier], meta: dict[str, Any], quantizers) -> list[dict]:
    out = []
    for plan in plans:
        for port in plan.inputs:
            if port.role != "sensor":
                continue
            quantizer = quantizers[port.device]
            entry = {
                "device": port.device,
                "device_name": meta["device_names"][port.device],
                "tier": plan.name,
                "name": port.name,
                "shape": [1, *port.shape],
                "dtype": "float32",
                "scale": meta["scale"],
                "raw_dtype": _raw_dtype(meta),
                "raw_bytes": int(meta["raw_bytes"][port.device]),
            }
            if quantizer is not None:
                entry["quantizer"] = quantizer.to_dict()
            out.append(entry)
    return sorted(out, key=lambda e: e["device"])


def build_manifest(
    run: Run,
    split: tuple[str, ...],
    plans: list[Tier],
    tiers: dict[str, dict[str, Any]],
    meta: dict[str, Any],
    *,
    targets: tuple[str, ...],
    quantize: str,
    name: str | None = None,
    dataset=None,
    calibrate: str | None = None,
) -> dict[str, Any]:
    """The whole manifest of a conversion, validated (files are not checked).

    Args:
        run: the trained run.
        split: the exits kept, bottom to top.
        plans: the tiers (from :func:`~ddnn_tf.core.graph.tier_graph`).
        tiers: ``{tier name: entry}`` (from :func:`tier_entry`).
        meta: from :func:`dataset_meta`.
        targets: the targets converted.
        quantize: the quantisation applied.
        name: the model's name (default: the run directory's name).
        dataset: the run's dataset, if loaded (thresholds of another split need it:
            the run's own rule calibrates them on its validation split).
        calibrate: a rule to calibrate the thresholds with now instead of the run's.

    Returns:
        The manifest, as :mod:`ddnn_tf.core.manifest` describes it.

    Raises:
        ValueError: the manifest does not validate (a bug, not a user error).
    """
    topology = run.topology
    thresholds, source, calibration = _thresholds(run, split, dataset, calibrate)
    aggregation = {
        "local": topology.local_agg,
        "edge": topology.edge_agg,
        "cloud": topology.cloud_agg,
    }
    if "edge" in split:
        aggregation["edge_exit"] = (
            topology.local_agg
        )  # the edge aggregator pools like the local one
    manifest = {
        "format": mf.FORMAT,
        "format_version": mf.FORMAT_VERSION,
        "name": name or (Path(run.path).name if run.path is not None else "ddnn"),
        "generator": {"tool": "ddnn_tf.convert", "version": ddnn_tf.__version__},
        "training": {
            "preset": run.config.preset,
            "epochs": int(run.config.epochs),
            "upper_epochs": int(run.config.upper_epochs),
            "calibrate": run.config.calibrate,
        },
        "split": list(split),
        "topology": topology.to_dict(),
        "dataset": dict(run.dataset_spec),
        "classes": meta["classes"],
        "device_names": meta["device_names"],
        "inputs": _inputs_spec(plans, meta, run.ddnn.sensor_quantizers()),
        "aggregation": aggregation,
        "thresholds": thresholds,
        "thresholds_source": source,
        **({"calibration": calibration.to_dict()} if calibration is not None else {}),
        "wire": _wire(topology, plans, meta),
        "targets": list(targets),
        "quantize": quantize,
        "shapes_include_batch": True,
        "tiers": tiers,
    }
    mf.validate_manifest(manifest, check_files=False)
    return manifest
