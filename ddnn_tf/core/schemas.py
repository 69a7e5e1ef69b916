"""Declared schemas of every JSON document ddnn_tf reads, and one validator for them.

A run directory's ``topology.json``, ``dataset.json``, ``train_config.json``,
``history.json``, ``thresholds.json``, ``calibration.json`` and ``individual.json``, and a converted model's
``manifest.json``, are checked against these JSON Schemas (draft 2020-12, validated by
``jsonschema``) before any code uses them, so a wrong type, a missing key or an unknown
key is one clear error naming the file and the key path instead of a TypeError later::

    manifest.json: tiers.cloud.inputs[0].dtype: 'float33' is not one of ['float32', ...]

Semantic rules a schema cannot express (exits in order, file hashes, one threshold per
early exit) stay with the code that owns them (:mod:`ddnn_tf.core.manifest`,
:class:`ddnn_tf.core.topology.Topology`). Standard library and ``jsonschema`` only: the
device-side runtime uses this module.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ddnn_tf.core.vocab import (
    AGGREGATION_SCHEMES,
    CLOUD_PRECISIONS,
    CORES,
    DOWNLINK_KINDS,
    EXITS,
    LOCAL_SCHEMES,
    LR_SCHEDULES,
    PRESET_NAMES,
    PROFILE_KINDS,
    ROLES,
    SENSOR_BITS,
    SUMMARY_BITS,
    SUMMARY_ENCODINGS,
    TARGETS,
    TENSOR_DTYPES,
    TENSOR_ROLES,
)
from ddnn_tf.errors import FormatError

__all__ = ["HARDWARE_FIGURES", "MODULATION_FIGURES", "SCHEMAS", "validate_document"]

_EXITS = list(EXITS)
_SCHEMES = list(AGGREGATION_SCHEMES)
_LOCAL_SCHEMES = list(LOCAL_SCHEMES)
# the rules of CALIBRATION_RULES; their values are checked by core.calibration.parse_calibrate
_CALIBRATE = {"type": "string", "pattern": "^(risk:.+|within(:.+)?|accuracy|bytes:.+)$"}
_DTYPES = list(TENSOR_DTYPES)
_ROLES = list(ROLES)
_TENSOR_ROLES = list(TENSOR_ROLES)

_POSITIVE = {"type": "integer", "minimum": 1}
_COUNT = {"type": "integer", "minimum": 0}
_FRACTION = {"type": "number", "minimum": 0, "maximum": 1}
_NAME = {"type": "string", "minLength": 1}
_NAMES = {"type": "array", "items": {"type": "string"}}
_SHAPE = {"type": "array", "items": _POSITIVE}
_NONEMPTY_SHAPE = {**_SHAPE, "minItems": 1}

TOPOLOGY = {
    "type": "object",
    "required": ["input_shapes", "num_classes"],
    "additionalProperties": False,
    "properties": {
        "input_shapes": {
            "type": "array",
            "minItems": 1,
            "items": {**_NONEMPTY_SHAPE, "maxItems": 3},
        },
        "num_classes": {"type": "integer", "minimum": 2},
        "edges": {"type": "array", "items": {"type": "array", "items": _COUNT}},
        "exits": {"type": "array", "minItems": 1, "items": {"enum": _EXITS}},
        "local_agg": {"enum": _LOCAL_SCHEMES},
        "edge_agg": {"enum": _SCHEMES},
        "cloud_agg": {"enum": _SCHEMES},
        "device_filters": _POSITIVE,
        "device_conv_layers": _POSITIVE,
        "device_units": _POSITIVE,
        "edge_filters": _POSITIVE,
        "edge_conv_layers": _POSITIVE,
        "cloud_filters": _POSITIVE,
        "cloud_conv_layers": _POSITIVE,
        "cloud_units": _POSITIVE,
        "local_units": _POSITIVE,
        "device_dropout": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
        "summary_bits": {"enum": sorted(SUMMARY_BITS)},
        "cloud_precision": {"enum": list(CLOUD_PRECISIONS)},
        "device_grid": {"type": "array", "items": _POSITIVE, "maxItems": 2},
        "sensor_bits": {"enum": sorted(SENSOR_BITS)},
    },
}

DATASET = {
    "type": "object",
    "required": ["spec"],
    "properties": {
        "spec": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": _NAME, "path": {"type": ["string", "null"]}},
        },
        "classes": _NAMES,
        "device_names": _NAMES,
        "raw_bytes_per_device": {"type": "array", "items": _COUNT},
        "input_scale": {"type": ["number", "null"], "exclusiveMinimum": 0},
    },
}

TRAIN_CONFIG = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "epochs": _POSITIVE,
        "batch_size": _POSITIVE,
        "learning_rate": {"type": "number", "exclusiveMinimum": 0},
        "beta_1": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
        "beta_2": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
        "epsilon": {"type": "number", "exclusiveMinimum": 0},
        "exit_weights": {
            "type": ["object", "null"],
            "propertyNames": {"enum": _EXITS},
            "additionalProperties": {"type": "number", "minimum": 0},
        },
        "seed": {"type": ["integer", "null"], "minimum": 0},
        "lr_schedule": {"enum": list(LR_SCHEDULES)},
        "calibrate": _CALIBRATE,
        "preset": {"enum": [*PRESET_NAMES, None]},
        "upper_epochs": _COUNT,
    },
}

HISTORY = {
    "type": "object",
    "additionalProperties": {"type": "array", "items": {"type": "number"}},
}

THRESHOLDS = {
    "type": "object",
    "propertyNames": {"enum": _EXITS[:-1]},
    "additionalProperties": _FRACTION,
}

_POINTS = {"type": ["number", "null"], "minimum": 0, "maximum": 100}

#: A quantised sensor (``ddnn_tf.core.sensors.SensorQuantizer.to_dict``): one scale and
#: zero point per channel; the binary reads ``code - zero_point``.
_QUANTIZER = {
    "type": "object",
    "required": ["bits", "scale", "zero_point"],
    "additionalProperties": False,
    "properties": {
        "bits": {"enum": [b for b in sorted(SENSOR_BITS) if b]},
        "dtype": {"enum": [d for d in SENSOR_BITS.values() if d]},
        "scale": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "number", "exclusiveMinimum": 0},
        },
        "zero_point": {"type": "array", "minItems": 1, "items": {"type": "integer"}},
    },
}

#: What a calibration rule picked and certified (``ddnn_tf.core.calibration.Calibration``):
#: ``calibration.json`` in a run directory, ``calibration`` in a manifest.
CALIBRATION = {
    "type": "object",
    "required": ["rule", "thresholds", "n_val"],
    "additionalProperties": False,
    "properties": {
        "rule": _CALIBRATE,
        "thresholds": THRESHOLDS,
        "n_val": _COUNT,
        "delta": _POINTS,
        "eps": {"type": ["number", "null"], "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "certified": {"type": ["boolean", "null"]},
        "bound": _POINTS,
        "val_risk": _POINTS,
        "min_delta": _POINTS,
        "note": {"type": ["string", "null"]},
    },
}

INDIVIDUAL = {
    "type": "object",
    "required": ["accuracy"],
    "properties": {"accuracy": {"type": "array", "items": _FRACTION}},
}

_TENSOR = {
    "type": "object",
    "required": ["name", "shape", "dtype", "role"],
    "properties": {
        "name": _NAME,
        "shape": _NONEMPTY_SHAPE,
        "dtype": {"enum": _DTYPES},
        "role": {"enum": _TENSOR_ROLES},
        "exit": {"enum": _EXITS},
        "columns": _NAMES,
        "from": {
            "type": "object",
            "required": ["tier", "output"],
            "properties": {"tier": _NAME, "output": _NAME},
        },
    },
}

_FILE = {
    "type": "object",
    "required": ["file", "sha256", "size_bytes"],
    "properties": {
        "file": _NAME,
        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "size_bytes": _COUNT,
        "input_order": _NAMES,
        "output_order": _NAMES,
        "ops": {"type": "object", "additionalProperties": _COUNT},
    },
}

#: A device tier's C target (``ddnn_tf.mcu.export``): its source, header and footprint.
_C_TARGET = {
    "type": "object",
    "required": ["source", "header", "entry", "footprint"],
    "properties": {
        "source": _FILE,
        "header": _FILE,
        "entry": _NAME,
        "sensor_bytes": _COUNT,
        "summary_bytes": _COUNT,
        "features_bytes": _COUNT,
        "scratch_bytes": _COUNT,
        "arithmetic": {"type": "object", "additionalProperties": {"enum": ["integer", "float"]}},
        # per core: the static model's instructions per sample (ddnn_tf.mcu.opcount) and,
        # once counted on the emulated board (ddnn mcu --count-instructions), the count
        "instructions": {
            "type": "object",
            "propertyNames": {"enum": list(CORES)},
            "additionalProperties": {
                "type": "object",
                "required": ["modelled"],
                "additionalProperties": False,
                "properties": {
                    "modelled": {"type": "number", "minimum": 0},
                    "measured": {"type": "number", "minimum": 0},
                    "error_percent": {"type": "number"},
                    "board": _NAME,
                    "samples": _POSITIVE,
                },
            },
        },
        "footprint": {
            "type": "object",
            "required": ["board", "flash_bytes", "ram_bytes"],
            "properties": {
                "board": _NAME,
                "flash_bytes": _COUNT,
                "ram_bytes": _COUNT,
                "static_ram_bytes": _COUNT,
                "stack_bytes": _COUNT,
            },
        },
    },
}

MANIFEST = {
    "type": "object",
    "required": [
        "format",
        "format_version",
        "name",
        "split",
        "topology",
        "classes",
        "device_names",
        "inputs",
        "aggregation",
        "thresholds",
        "thresholds_source",
        "wire",
        "targets",
        "tiers",
    ],
    "properties": {
        "format": {"const": "ddnn-tf-manifest"},
        "format_version": {"const": 1},
        "name": {"type": "string"},
        "split": {"type": "array", "minItems": 1, "items": {"enum": _EXITS}},
        "topology": TOPOLOGY,
        "dataset": {"type": ["object", "null"]},
        "classes": {**_NAMES, "minItems": 2},
        "device_names": _NAMES,
        "inputs": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["device", "name", "shape", "dtype", "scale", "raw_bytes"],
                "properties": {
                    "device": _COUNT,
                    "device_name": {"type": "string"},
                    "tier": _NAME,
                    "name": _NAME,
                    "shape": _NONEMPTY_SHAPE,
                    "dtype": {"enum": _DTYPES},
                    "scale": {"type": ["number", "null"], "exclusiveMinimum": 0},
                    "raw_dtype": {"enum": _DTYPES},
                    "raw_bytes": _COUNT,
                    "quantizer": _QUANTIZER,
                },
            },
        },
        "aggregation": {
            "type": "object",
            "properties": {
                "local": {"enum": _LOCAL_SCHEMES},
                "edge": {"enum": _SCHEMES},
                "cloud": {"enum": _SCHEMES},
                "edge_exit": {"enum": _LOCAL_SCHEMES},
            },
        },
        "training": {
            "type": "object",
            "properties": {  # as in the run's train_config.json
                k: TRAIN_CONFIG["properties"][k]
                for k in ("preset", "epochs", "upper_epochs", "calibrate")
            },
        },
        "thresholds": {
            "type": "object",
            "propertyNames": {"enum": _EXITS[:-1]},
            "additionalProperties": _FRACTION,
        },
        "thresholds_source": {"enum": ["validation", "paper"]},
        "calibration": CALIBRATION,
        "wire": {
            "type": "object",
            "required": ["summary", "features"],
            "properties": {
                "summary": {
                    "type": "object",
                    "required": ["shape"],
                    "properties": {
                        "encoding": {"enum": list(SUMMARY_ENCODINGS)},
                        "shape": _NONEMPTY_SHAPE,
                        "nbytes": _COUNT,
                        "byte_order": {"enum": ["little", "big"]},
                    },
                },
                "features": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "required": ["shape"],
                        "properties": {
                            "encoding": {"type": "string"},
                            "shape": _NONEMPTY_SHAPE,
                            "bits": _COUNT,
                            "nbytes": _COUNT,
                            "bit_order": {"type": "string"},
                        },
                    },
                },
                "raw": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "required": ["shape", "dtype"],
                        "properties": {
                            "shape": _NONEMPTY_SHAPE,
                            "dtype": {"enum": _DTYPES},
                            "nbytes": _COUNT,
                        },
                    },
                },
            },
        },
        "targets": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"enum": list(TARGETS)},
        },
        "quantize": {"enum": ["none", "int8"]},
        "tiers": {
            "type": "object",
            "required": ["cloud"],
            "additionalProperties": {
                "type": "object",
                "required": ["role", "files", "inputs", "outputs"],
                "properties": {
                    "role": {"enum": _ROLES},
                    "device": _COUNT,
                    "edge": _COUNT,
                    "files": {
                        "type": "object",
                        "propertyNames": {"enum": list(TARGETS)},
                        "additionalProperties": _FILE,
                    },
                    "inputs": {"type": "array", "minItems": 1, "items": _TENSOR},
                    "outputs": {"type": "array", "minItems": 1, "items": _TENSOR},
                    "memory": {"type": "object"},
                    "c": _C_TARGET,
                    "tflm": {
                        **_FILE,
                        "properties": {**_FILE["properties"], "arena_bytes": _POSITIVE},
                    },
                },
            },
        },
    },
}

#: One figure of a hardware profile: a number and where it comes from.
_FIGURE = {
    "type": "object",
    "required": ["value", "source"],
    "additionalProperties": False,
    "properties": {"value": {"type": "number", "minimum": 0}, "source": _NAME},
}


def _figures(names: tuple[str, ...]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(names),
        "additionalProperties": False,
        "properties": dict.fromkeys(names, _FIGURE),
    }


#: The figures each kind of hardware profile states (units in the names).
HARDWARE_FIGURES: dict[str, tuple[str, ...]] = {  # keys: PROFILE_KINDS
    "mcu": (
        "clock_mhz",
        "run_current_ua_per_mhz",
        "supply_v",
        "sleep_current_ua",
        "wakeup_us",
        "cpi",
        "flash_bytes",
        "ram_bytes",
    ),
    "radio": (
        "supply_v",
        "tx_current_ma",
        "rx_current_ma",
        "sleep_current_ua",
        "packet_overhead_bytes",
        "max_payload_bytes",
        "packet_fixed_us",
        "ack_us",
        "access_us",
        "access_wait_ms",
        "event_us",
        "event_current_ma",
        "downlink_delay_ms",
        "downlink_window_us",
        "listen_current_ma",
        "keepalive_interval_s",
        "keepalive_us",
        "session_setup_ms",
        "session_setup_current_ma",
        "session_tail_ms",
        "session_tail_current_ma",
        "duty_cycle",
        "parallel_uplinks",
    ),
    "wan": ("rtt_ms", "uplink_mbps", "downlink_mbps"),
    "compute": ("speed_factor",),
}
#: The figures of a radio's physical layer, by modulation.
MODULATION_FIGURES: dict[str, tuple[str, ...]] = {
    "fixed-rate": ("rate_bps",),
    "lora": (
        "lora_spreading_factor",
        "lora_bandwidth_hz",
        "lora_coding_rate",
        "lora_preamble_symbols",
        "lora_low_data_rate_optimize",
        "lora_uplink_crc",
        "lora_downlink_crc",
    ),
}


def _kind(kind: str, extra: dict[str, Any], figures: tuple[str, ...]) -> dict[str, Any]:
    return {
        "if": {"properties": {"kind": {"const": kind}}},
        "then": {
            "required": ["figures", *extra],
            "properties": {**extra, "figures": _figures(figures)},
        },
    }


HARDWARE = {
    "type": "object",
    "required": ["format", "kind", "name", "figures"],
    "additionalProperties": False,
    "properties": {
        "format": {"const": "ddnn-tf-hardware"},
        "kind": {"enum": list(PROFILE_KINDS)},
        "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$"},
        "description": {"type": "string"},
        "core": {"enum": list(CORES)},
        "modulation": {"enum": list(MODULATION_FIGURES)},
        "downlink": {"enum": list(DOWNLINK_KINDS)},
        "figures": {"type": "object"},
    },
    "allOf": [
        _kind("mcu", {"core": {"enum": list(CORES)}}, HARDWARE_FIGURES["mcu"]),
        *(
            {
                "if": {
                    "properties": {"kind": {"const": "radio"}, "modulation": {"const": m}},
                    "required": ["kind", "modulation"],
                },
                "then": {
                    "required": ["figures", "downlink"],
                    "properties": {"figures": _figures(HARDWARE_FIGURES["radio"] + extra)},
                },
            }
            for m, extra in MODULATION_FIGURES.items()
        ),
        {
            "if": {"properties": {"kind": {"const": "radio"}}},
            "then": {"required": ["modulation", "downlink"]},
        },
        _kind("wan", {}, HARDWARE_FIGURES["wan"]),
        _kind("compute", {}, HARDWARE_FIGURES["compute"]),
    ],
}

#: Schema of each document, by file name.
SCHEMAS: dict[str, dict[str, Any]] = {
    "topology.json": TOPOLOGY,
    "dataset.json": DATASET,
    "train_config.json": TRAIN_CONFIG,
    "history.json": HISTORY,
    "thresholds.json": THRESHOLDS,
    "calibration.json": CALIBRATION,
    "individual.json": INDIVIDUAL,
    "manifest.json": MANIFEST,
    "hardware profile": HARDWARE,
}

_JSON_TYPES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    type(None): "null",
}


def _key_path(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _message(error) -> str:
    """One readable sentence for a jsonschema error (large values shortened)."""
    kind, value = error.validator, error.instance
    if kind == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        got = _JSON_TYPES.get(type(value), type(value).__name__)
        return f"expected {expected}, got {got}" + ("" if value is None else f" {_short(value)}")
    if kind == "additionalProperties" and isinstance(value, dict):
        known = set(error.schema.get("properties", {}))
        extra = sorted(k for k in value if k not in known)
        return (
            f"unknown key(s) {extra} (known: {sorted(known)}); a newer version of "
            "ddnn_tf may have written this file"
        )
    if kind == "required" and isinstance(value, dict):
        return f"missing key(s) {[k for k in error.validator_value if k not in value]}"
    if kind == "propertyNames":
        return f"key {_short(value)} is not one of {error.validator_value.get('enum')}"
    if kind == "const":
        return f"expected {error.validator_value!r}, got {_short(value)}"
    text = error.message
    return text if len(text) <= 200 else text[:197] + "..."


def _non_finite(value: Any, path: tuple = ()) -> tuple | None:
    """Key path of the first NaN or infinity in a JSON document (Python's json reads them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return path
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in items:
        found = _non_finite(item, (*path, key))
        if found is not None:
            return found
    return None


def validate_document(document: Any, kind: str, file: str | Path | None = None) -> Any:
    """Check a parsed JSON document against its declared schema.

    Args:
        document: the parsed JSON value.
        kind: the document's file name, a key of :data:`SCHEMAS` (``"manifest.json"``).
        file: the path to name in errors (default ``kind``).

    Returns:
        ``document`` itself.

    Raises:
        FormatError: ``"<file>: <key path>: <what is wrong>"`` for the first problem found
            (a wrong type, a missing or unknown key, a value out of range, NaN/infinity).
        KeyError: ``kind`` has no schema.

    Example:
        >>> validate_document({"local": 1.5}, "thresholds.json", "runs/x/thresholds.json")
        Traceback (most recent call last):
        ddnn_tf.errors.FormatError: runs/x/thresholds.json: local: 1.5 is greater than the maximum of 1
    """
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    name = str(file if file is not None else kind)
    error = best_match(Draft202012Validator(SCHEMAS[kind]).iter_errors(document))
    if error is not None:
        where = _key_path(error.absolute_path)
        raise FormatError(f"{name}: {where + ': ' if where else ''}{_message(error)}")
    bad = _non_finite(document)
    if bad is not None:
        raise FormatError(
            f"{name}: {_key_path(bad) or 'value'}: expected a finite number, got NaN or infinity"
        )
    return document
