"""The microcontroller targets of a converted model: C sources and a TFLM variant per device.

``c``: ``<tier>.c`` + ``<tier>.h`` generated from the tier's portable binary
(:mod:`ddnn_tf.mcu.codegen`), with the footprint of the tier's object file for the
default board. ``tflm``: ``<tier>.tflm.tflite``, the portable binary with its ste_signs
written as ``GREATER_EQUAL`` + ``SELECT_V2`` (:mod:`ddnn_tf.mcu.tflm`), with the tensor
arena TensorFlow Lite Micro needs. Each device tier's manifest entry gets a ``c`` and/or
``tflm`` key naming its files with their sha256 (see :mod:`ddnn_tf.core.manifest`); the
portable and lce binaries are not touched.

:func:`mcu_files` makes them from bytes (the converter calls it on the binaries it has
just made); :func:`add_targets` adds them to an existing model directory. TensorFlow-free.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ddnn_tf.core import manifest as mf
from ddnn_tf.core.sensors import SensorQuantizer, sensor_quantizer
from ddnn_tf.core.vocab import CORES, DEFAULT_BOARD, MCU_TARGETS
from ddnn_tf.errors import ConfigError
from ddnn_tf.mcu import build, tflm
from ddnn_tf.mcu.boards import BOARDS
from ddnn_tf.mcu.codegen import CSources, generate_c
from ddnn_tf.mcu.lower import lower_tier
from ddnn_tf.mcu.opcount import modelled_instructions
from ddnn_tf.mcu.spec import TierSpec
from ddnn_tf.runtime.flatbuffer import op_counts, read_model

__all__ = [
    "FOOTPRINT_BOARD",
    "MCU_TARGETS",
    "add_targets",
    "c_entry",
    "mcu_files",
    "parse_targets",
    "sensor_scale",
]

#: The board whose object sizes the manifest records.
FOOTPRINT_BOARD = DEFAULT_BOARD
TFLM_SUFFIX = ".tflm.tflite"


def sensor_scale(entry: dict[str, Any]) -> float | None:
    """The uint8 scale of a manifest ``inputs[]`` entry; None when the sensor sends floats."""
    return entry["scale"] if entry.get("raw_dtype", "float32") == "uint8" else None


def parse_targets(targets: Iterable[str]) -> tuple[str, ...]:
    """The known microcontroller targets among ``targets``, in canonical order.

    Raises:
        ConfigError: an unknown target.
    """
    items = tuple(targets)
    bad = [t for t in items if t not in MCU_TARGETS]
    if bad or not items:
        raise ConfigError(
            f"expected some of {', '.join(MCU_TARGETS)}, got {', '.join(bad) or 'none'}.",
            argument="targets",
        )
    return tuple(t for t in MCU_TARGETS if t in items)


def c_entry(sources: CSources, footprint: build.Footprint, board: str) -> tuple[dict, dict]:
    """The files and manifest entry of a tier's C target, with the static model's
    instructions per sample on every core (``ddnn mcu --count-instructions`` adds the
    counts)."""

    files = {sources.source: sources.c.encode(), sources.header: sources.h.encode()}
    entry = {
        "source": mf.file_entry(sources.source, files[sources.source]),
        "header": mf.file_entry(sources.header, files[sources.header]),
        "entry": sources.entry,
        "sensor_bytes": sources.sensor_bytes,
        "summary_bytes": sources.summary_bytes,
        "features_bytes": sources.features_bytes,
        "scratch_bytes": sources.scratch_bytes,
        "arithmetic": sources.arithmetic,
        "instructions": {
            core: {
                "modelled": round(modelled_instructions(sources.spec, sources.plan, core=core), 1)
            }
            for core in CORES
        },
        "footprint": {"board": board, **footprint.to_dict()},
    }
    return files, entry


def _sample(spec: TierSpec) -> list[np.ndarray]:
    return [np.zeros((1, *spec.sensor.shape), np.float32)]


def mcu_files(
    tier: str,
    portable: bytes,
    *,
    scale: float | None,
    quantizer: SensorQuantizer | None = None,
    targets: Iterable[str] = MCU_TARGETS,
    origin: str | None = None,
    spec: TierSpec | None = None,
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The microcontroller files of one device tier and its manifest keys.

    Args:
        tier: the tier name (``device_0``).
        portable: its portable ``.tflite`` bytes.
        scale: the manifest's ``inputs[].scale`` of the device (None: float32 sensor).
        quantizer: the device's sensor quantiser (the manifest's ``inputs[].quantizer``),
            when its sensor sends int8 / int16 codes.
        targets: ``c`` and/or ``tflm``.
        origin: the portable file's name, for the C comments.
        spec: the tier's description, when already lowered.

    Returns:
        ``({file name: bytes}, {"c": {...}, "tflm": {...}})``.

    Raises:
        ConfigError: a tier the C target cannot express, or TFLM cannot run.
        FileNotFoundError: the cross compiler (``c``) is not installed.
    """
    targets = parse_targets(targets)
    files: dict[str, bytes] = {}
    keys: dict[str, Any] = {}
    spec = spec or lower_tier(tier, portable, scale=scale, quantizer=quantizer)
    if "c" in targets:
        sources = generate_c(spec, origin=origin or mf.tier_filename(tier, "portable"))
        with tempfile.TemporaryDirectory(prefix="ddnn_c_") as tmp:
            fp = build.footprint(sources, BOARDS[FOOTPRINT_BOARD], Path(tmp))
        c_files, keys["c"] = c_entry(sources, fp, FOOTPRINT_BOARD)
        files.update(c_files)
    if "tflm" in targets:
        data = tflm.tflm_variant(portable)
        name = f"{tier}{TFLM_SUFFIX}"
        files[name] = data
        keys["tflm"] = {
            **mf.file_entry(name, data),
            "ops": op_counts(read_model(data)),
            "arena_bytes": tflm.arena_bytes(data, _sample(spec)),
        }
    return files, keys


def add_targets(model: str | Path, targets: Iterable[str] = MCU_TARGETS) -> dict[str, Any]:
    """Add the microcontroller targets of every device tier to a converted model directory.

    The portable binaries (and every other file) stay as they are; the C sources and TFLM
    variants are written beside them and the manifest gains each device's ``c`` /
    ``tflm`` keys. Running it again replaces them.

    Args:
        model: the model directory.
        targets: ``c`` and/or ``tflm``.

    Returns:
        ``{tier: {"c": {...}, "tflm": {...}}}`` as written.

    Raises:
        ConfigError / FileNotFoundError: as :func:`mcu_files`; FormatError: an invalid
            model.
    """
    manifest = mf.load_manifest(model)
    targets = parse_targets(targets)
    written: dict[str, Any] = {}
    data = json.loads(json.dumps(dict(manifest)))
    for entry in manifest["inputs"]:
        tier = entry["tier"]
        if manifest["tiers"][tier]["role"] != "device":
            continue
        portable = manifest.path(tier, "portable").read_bytes()
        files, keys = mcu_files(
            tier,
            portable,
            scale=sensor_scale(entry),
            quantizer=sensor_quantizer(entry),
            targets=targets,
            origin=manifest["tiers"][tier]["files"]["portable"]["file"],
        )
        for name, blob in files.items():
            (manifest.directory / name).write_bytes(blob)
        data["tiers"][tier].update(keys)
        written[tier] = keys
    mf.write_manifest(data, manifest.directory)
    return written
