"""Split a trained DDNN into per-tier TFLite binaries plus a manifest.

``ddnn convert runs/NAME --split local,cloud [--out tflite_models/NAME]
[--target portable|lce|both|portable,lce,c,tflm] [--quantize none|int8] [--overwrite]
[--check]``

Every tier of the split becomes one binary per target, converted from the trained
tier model itself (compose, don't cut): ``device_{i}``, ``local_aggregator``,
``edge_{j}``, ``edge_aggregator``, ``cloud``. Each binary has one signature
(``serving_default``) whose inputs and outputs carry the Keras tier model's names
(``image`` -> ``summary``, ``features``; ``summary_k`` + ``presence`` -> ``logits`` ...);
consumers bind by name, never by position (TFLite reorders outputs).

Targets:

* ``portable``: TFLite builtin ops only (ai-edge-litert, Android LiteRT, LiteRT.js).
  Binary layers become float ops on +-1 values.
* ``c`` and ``tflm`` (device tiers only, beside ``portable``): C99 sources for a
  microcontroller and a TensorFlow Lite Micro variant, see :mod:`ddnn_tf.mcu`.
* ``lce``: larq-compute-engine's converter; binary convolutions become bit-packed
  ``LceBconv2d`` kernels (needs LCE's interpreter). Exit heads and FC blocks on image
  maps are whole-window binary convolutions (see ``ddnn_tf.keras.blocks``), so they are
  bit-packed too; a binary dense layer on a *vector* (vector devices, or a cloud over
  heterogeneous devices) stays a float ``FULLY_CONNECTED`` with +-1 weights.

Both are exported with the batch dimension fixed to 1 (LiteRT.js rejects dynamic batch
dims); the Python interpreters resize it for batching.

``--quantize int8`` (portable target) is post-training full-integer quantisation of the
device, edge and cloud tiers, calibrated on training samples, with float32 inputs and
outputs kept, so the tier interfaces do not change. The aggregators stay float32: max
and average pooling are a handful of element-wise ops, and the large constant that masks
a failed device out of a max would wreck an int8 calibration range; the learned ``mlp``
aggregator runs at the gateway, where float32 costs nothing. larq-compute-engine's converter has
no post-training calibration (it quantises only models trained with fake-quantisation
nodes), so ``--quantize int8 --target lce`` is refused rather than silently ignored.

Splits (the exits kept, bottom to top) and the tiers they produce:

* ``cloud``: configuration (a), raw offload: one ``cloud`` binary that runs the device
  sections (and edges) and the cloud on ``input_{i}`` raw device tensors + ``presence``.
* ``local,cloud``: devices (``summary`` + ``features``), local aggregator, cloud.
* ``edge,cloud``: devices (``features`` only), edges, edge aggregator, cloud.
* ``local,edge,cloud``: all of them.

A hierarchy with edges keeps its edge tiers in every split but ``cloud`` (without the
edge exit they output ``features`` only).

This package holds the pipeline (:func:`convert_run`, :func:`save_conversion`,
:func:`convert`); its parts live in ``export``
(a Keras tier as TFLite bytes, flatbuffer facts, parameter memory),
``manifest_build`` (the manifest's fields), ``parity`` (binaries vs Keras, run on the
runtime's ``TierRunner``) and ``__main__`` (the CLI); the tiers and their wiring come
from :mod:`ddnn_tf.core.graph`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ddnn_tf.core import manifest as mf
from ddnn_tf.core.calibration import parse_calibrate
from ddnn_tf.core.files import atomic_directory, check_output_dir
from ddnn_tf.core.graph import SPLITS, check_split, tier_graph
from ddnn_tf.core.vocab import MCU_TARGETS, TARGETS
from ddnn_tf.errors import ConfigError
from ddnn_tf.keras.convert.c_target import add_mcu_targets
from ddnn_tf.keras.convert.export import (
    LCE_INT8,
    _tier_function,  # noqa: F401  (used by the tests)
    calibration_feeds,
    convert_tier,
    keras_tier_outputs,
)
from ddnn_tf.keras.convert.manifest_build import build_manifest, dataset_meta, tier_entry
from ddnn_tf.keras.convert.parity import PARITY_TOLERANCE, format_parity, parity
from ddnn_tf.keras.rundir import Run, load_run
from ddnn_tf.runtime.flatbuffer import tflite_info

__all__ = [
    "SPLITS",
    "TARGETS",
    "QUANTIZE",
    "PARITY_TOLERANCE",
    "Conversion",
    "check_split",
    "convert",
    "convert_run",
    "convert_tier",
    "format_parity",
    "keras_tier_outputs",
    "parity",
    "save_conversion",
    "tflite_info",
]

QUANTIZE = ("none", "int8")


@dataclass
class Conversion:
    """A converted model in memory: file name -> bytes, and its manifest."""

    manifest: dict[str, Any]
    files: dict[str, bytes]


def _parse_targets(target: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(binary targets, microcontroller targets)``; ``c``/``tflm`` bring ``portable``."""
    if isinstance(target, (list, tuple)):
        parts = tuple(str(t).strip() for t in target)
    else:
        text = str(target)
        parts = TARGETS if text == "both" else tuple(p.strip() for p in text.split(","))
    known = (*TARGETS, *MCU_TARGETS)
    bad = [t for t in parts if t not in known]
    if bad or not parts:
        raise ConfigError(
            f"expected portable, lce or both, or a list of {', '.join(known)}; got {target!r}.",
            argument="target",
        )
    if any(t in MCU_TARGETS for t in parts):  # made from (and checked against) portable
        parts = ("portable", *parts)
    return tuple(t for t in TARGETS if t in parts), tuple(t for t in MCU_TARGETS if t in parts)


def _parse_quantize(quantize: Any) -> str:
    q = "none" if quantize is None or quantize is False else str(quantize)
    if q not in QUANTIZE:
        raise ConfigError(f"expected none or int8, got {quantize!r}.", argument="quantize")
    return q


def convert_run(
    run: Run | str | Path,
    *,
    split: Any = None,
    target: Any = "both",
    quantize: str = "none",
    dataset=None,
    name: str | None = None,
    progress: bool = False,
    calibrate: str | None = None,
) -> Conversion:
    """Convert a trained run into per-tier TFLite binaries and their manifest (in memory).

    Args:
        run: a :class:`~ddnn_tf.keras.rundir.Run` or the path of a run directory.
        split: the exits kept (see :data:`SPLITS`); None for all the model's exits.
        target: ``portable``, ``lce``, ``both``, or a list of them and ``c`` (C99 per
            device tier, :mod:`ddnn_tf.keras.convert.c_target`) / ``tflm`` (a TensorFlow
            Lite Micro variant per device tier); those two bring ``portable`` with them.
        quantize: ``none`` or ``int8`` (portable only).
        dataset: the run's dataset; loaded from the run's spec when needed (int8
            calibration, thresholds of a reduced split, a run without dataset.json).
        name: the model's name in the manifest (default: the run directory's name).
        progress: show a progress bar over the tiers.
        calibrate: calibrate the thresholds again on the validation split with this rule
            (:func:`ddnn_tf.core.calibration.parse_calibrate`; the manifest records it)
            instead of taking the run's.

    Returns:
        A :class:`Conversion`; write it with :func:`save_conversion`.

    Raises:
        FileNotFoundError / ValueError: a missing or corrupt run, an unknown or
            unavailable split, target or quantisation.

    Example (with a run directory trained by ``ddnn train``)::

        conv = convert_run("runs/default", split="local,cloud", target="portable")
        sorted(conv.files)[:2]  # ['cloud.tflite', 'device_0.tflite']
    """
    if not isinstance(run, Run):
        run = load_run(run)
    topology = run.topology
    split = check_split(topology, split)
    targets, mcu_targets = _parse_targets(target)
    quantize = _parse_quantize(quantize)
    if calibrate is not None:
        parse_calibrate(calibrate)  # a bad rule fails before anything converts
    if quantize == "int8" and "lce" in targets:
        raise ConfigError(LCE_INT8, argument="quantize")
    plans = tier_graph(topology, split)
    meta = dataset_meta(run, dataset)
    if len(meta["classes"]) != topology.num_classes:
        raise ConfigError(
            f"The run's dataset has {len(meta['classes'])} classes, its topology "
            f"{topology.num_classes}; the run directory is inconsistent."
        )
    calibration: dict[str, dict] = {}
    if quantize == "int8":
        dataset = dataset if dataset is not None else run.load_data()
        calibration = calibration_feeds(run.ddnn, plans, dataset.train.x)

    files, tiers = _convert_tiers(run, plans, targets, quantize, calibration, progress)
    if mcu_targets:  # a uint8 scale, or None for float32 sensors (manifest_build._raw_dtype)
        add_mcu_targets(run.ddnn, plans, files, tiers, scale=meta["scale"], targets=mcu_targets)

    manifest = build_manifest(
        run,
        split,
        plans,
        tiers,
        meta,
        targets=targets,
        quantize=quantize,
        name=name,
        dataset=dataset,
        calibrate=calibrate,
    )
    return Conversion(manifest=manifest, files=files)


def _convert_tiers(run: Run, plans, targets, quantize: str, calibration: dict, progress: bool):
    """Every tier's binaries (``{filename: bytes}``) and manifest entries (``{tier: entry}``)."""
    files: dict[str, bytes] = {}
    tiers: dict[str, Any] = {}
    iterator = plans
    if progress:
        from tqdm import tqdm

        iterator = tqdm(plans, desc="converting tiers", unit="tier", file=sys.stderr)
    for plan in iterator:
        binaries = convert_tier(
            run.ddnn,
            plan,
            targets=targets,
            quantize=quantize,
            representative=calibration.get(plan.name),
        )
        entries = {}
        for tgt, data in binaries.items():
            filename = mf.tier_filename(plan.name, tgt)
            info = tflite_info(data)
            files[filename] = data
            entries[tgt] = mf.file_entry(
                filename,
                data,
                input_order=info["input_order"],
                output_order=info["output_order"],
                ops=info["ops"],
            )
        tiers[plan.name] = tier_entry(run.ddnn, plan, entries, quantize=quantize)
    return files, tiers


def save_conversion(conversion: Conversion, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write a conversion to directory ``out`` atomically (temporary dir, then rename).

    Args:
        conversion: from :func:`convert_run`.
        out: the directory to create.
        overwrite: replace an existing converted model directory.

    Returns:
        ``out``.

    Raises:
        ValueError: ``out`` exists and ``overwrite`` is not set, or ``out`` exists and is
            not a converted model directory (nothing is deleted then).
    """
    out = Path(out)
    if overwrite and out.exists():
        if not out.is_dir() or (any(out.iterdir()) and not (out / mf.MANIFEST_FILE).is_file()):
            raise ConfigError(
                f"{out} exists and is not a converted model directory (no {mf.MANIFEST_FILE}); "
                f"refusing to replace it. Choose another `out`."
            )
    with atomic_directory(out, overwrite=overwrite, what="Output directory") as tmp:
        for filename, data in conversion.files.items():
            (tmp / filename).write_bytes(data)
        mf.write_manifest(conversion.manifest, tmp)
    return out


def convert(
    run: Run | str | Path,
    split: Any = None,
    *,
    out: str | Path | None = None,
    target: Any = "both",
    quantize: str = "none",
    overwrite: bool = False,
    dataset=None,
    name: str | None = None,
    progress: bool = False,
    calibrate: str | None = None,
) -> Path:
    """Convert a run and write ``out`` (default ``tflite_models/<run dir name>``).

    Checks ``out`` before the (slow) conversion, and writes it atomically after.

    Returns:
        The output directory.

    Raises:
        FileNotFoundError / ValueError: as :func:`convert_run` and :func:`save_conversion`.
    """
    if out is None:
        path = run.path if isinstance(run, Run) else run
        if path is None:
            raise ConfigError("give `out` for a run that has no directory.", argument="convert")
        out = Path("tflite_models") / Path(path).name
    out = check_output_dir(
        out, overwrite=overwrite, what="Output directory", marker=mf.MANIFEST_FILE
    )
    conversion = convert_run(
        run,
        split=split,
        target=target,
        quantize=quantize,
        dataset=dataset,
        name=name or out.name,
        progress=progress,
        calibrate=calibrate,
    )
    return save_conversion(conversion, out, overwrite=overwrite)
