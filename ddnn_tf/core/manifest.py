"""The manifest of a converted DDNN: what a runtime needs to run the tier binaries.

``ddnn convert`` writes one directory per converted model::

    tflite_models/NAME/
      manifest.json                 this schema
      device_{i}.tflite             portable target (TFLite builtin ops)
      device_{i}.lce.tflite         lce target (larq-compute-engine bit-packed kernels)
      local_aggregator[.lce].tflite edge_{j}[.lce].tflite edge_aggregator[.lce].tflite
      cloud[.lce].tflite

A runtime never needs TensorFlow or the training code: it reads the manifest with
:func:`load_manifest` (standard library and jsonschema: the whole document is checked
against its schema, and the file hashes, on load), opens each tier's file for its target
and binds tensors **by name**.

Schema (``format_version`` 1). Tensor shapes (``tiers.*.inputs/outputs[].shape`` and
``inputs[].shape``) **include the batch dimension**, fixed to 1 as exported (LiteRT.js
rejects dynamic batch dims; Python interpreters may resize it for batching). Wire shapes
(``wire``) are per sample, without a batch dimension.

* ``format`` ``"ddnn-tf-manifest"``, ``format_version`` 1, ``name``.
* ``split``: the exits kept, bottom to top (``["local", "cloud"]``); ``["cloud"]`` is
  the paper's configuration (a): one ``cloud`` tier takes the raw device inputs.
* ``topology``: ``Topology.to_dict()`` of the trained model; ``classes``; ``device_names``.
* ``inputs``: per device ``{device, device_name, tier, name, shape, dtype, scale,
  raw_dtype, raw_bytes, [quantizer]}``: the sensor tensor ``name`` of tier ``tier``;
  ``scale`` is the factor raw ``uint8`` values were multiplied by (``1/255``), or null for
  raw floats; ``quantizer`` (real-valued sensors of a model trained with ``sensor_bits``):
  ``{bits, dtype, scale, zero_point}`` per channel (the last axis): the device computes
  ``code = clip(floor(x / scale + 0.5) + zero_point)`` in int8 or int16 and its binary
  reads ``code - zero_point`` (:mod:`ddnn_tf.core.sensors`).
* ``aggregation``: ``{local, edge, cloud}`` schemes (+ ``edge_exit`` when there is one).
* ``thresholds``: ``{exit: T}`` for every non-last exit of ``split``;
  ``thresholds_source``: ``"validation"`` (calibrated) or ``"paper"`` (T = 0.8).
* ``training`` (optional): ``{preset, epochs, upper_epochs, calibrate}`` of the run it was
  converted from (``calibrate``: the rule the run was trained with, e.g. ``risk:0.5``).
* ``calibration`` (optional; absent with the paper's T): what chose ``thresholds``:
  ``{rule, thresholds, n_val, delta, eps, certified, bound, val_risk, min_delta, note}``
  (:class:`ddnn_tf.core.calibration.Calibration`): the rule written out in full, the
  validation samples, and for ``risk:DELTA,EPS`` whether the bound ``bound`` (points of
  accuracy drop against the top exit, with probability at least 1 - ``eps``) was
  certified.
* ``wire``: ``summary`` ``{encoding, shape: [|C|], nbytes, byte_order}``, encoding
  ``"float32"`` (the paper) or ``"int4"`` (integer summaries in [-8, 7], ``ddnn_tf.core.comm``);
  ``features`` ``{sender tier: {encoding: "bitpacked-pm1", shape, bits, nbytes,
  bit_order}}`` (bit order as ``ddnn_tf.core.comm.pack_features``: C order, most significant
  bit first, +1 -> 1, -1 -> 0, last byte zero padded); ``raw`` ``{device_{i}: {shape,
  dtype, nbytes}}`` (the raw-offload message of configuration (a)).
* ``targets``: e.g. ``["portable", "lce"]``; ``quantize``: ``"none"`` or ``"int8"``.
* ``tiers``: ``{tier name: {role, [device | edge], files, inputs, outputs, memory}}``:

  - ``role``: ``device``, ``local_aggregator``, ``edge``, ``edge_aggregator``, ``cloud``;
  - ``files``: ``{target: {file, sha256, size_bytes, input_order, output_order, ops}}``;
    ``input_order``/``output_order`` are the signature names in the flatbuffer
    subgraph's positional order (for interpreters without a signature API, such as
    larq-compute-engine's); ``ops`` counts the operators of the file;
  - ``inputs``/``outputs``: ``[{name, shape, dtype, role, ...}]`` with role
    ``sensor | summary | features | presence | logits``; an input also says where it
    comes from (``from: {tier, output}``, or ``device`` for a sensor); a ``presence``
    input lists its ``columns`` (tier names: column k is 1 when that tier's message
    arrived; an edge counts as arrived when any of its devices did); a ``logits``
    output names its ``exit``;
  - ``devices`` (the end devices the tier depends on: it runs for a sample when any is
    present) and ``sources`` (``[{input, tier, output, link, column}]``: for each
    received input, the sending tier and output, the link it travels on and the
    sender's column there); presence inputs also give ``column_devices`` (each
    column's devices). These come from :func:`ddnn_tf.core.graph.tier_graph`, and
    :func:`check_tier_graph` checks a manifest's tiers against it;
  - ``memory``: ``{binary_weight_bytes (binary weights / 8), float_param_bytes
    (4 x float parameters, batch norm folded to a scale and an offset per channel),
    tflite_bytes: {target: size}}``;
  - device tiers, optionally (targets ``c`` / ``tflm``, :mod:`ddnn_tf.mcu.export`):
    ``c`` ``{source, header (file entries), entry, sensor_bytes, summary_bytes,
    features_bytes, scratch_bytes, arithmetic, footprint: {board, flash_bytes, ram_bytes,
    static_ram_bytes, stack_bytes, ...}}`` (C99 for a microcontroller) and ``tflm`` (a
    file entry + ``arena_bytes``: the binary with its signs as ``GREATER_EQUAL`` +
    ``SELECT_V2``, for TensorFlow Lite Micro).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from ddnn_tf.core.files import read_json
from ddnn_tf.core.schemas import validate_document
from ddnn_tf.core.vocab import EXITS, TARGET_SUFFIX, TARGETS
from ddnn_tf.errors import ConfigError, FormatError

__all__ = [
    "check_tier_graph",
    "raw_wire",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "Manifest",
    "file_entry",
    "load_manifest",
    "sha256_hex",
    "tier_filename",
    "validate_manifest",
    "write_manifest",
]

FORMAT = "ddnn-tf-manifest"
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"


class Manifest(dict):
    """A validated manifest: the JSON object, plus the directory its files live in.

    Attributes:
        directory: the directory holding ``manifest.json`` and the tier files.
    """

    def __init__(self, data: dict[str, Any], directory: str | Path):
        super().__init__(data)
        self.directory = Path(directory)

    @property
    def tier_names(self) -> list[str]:
        """Tier names, bottom to top (devices first, cloud last)."""
        return list(self["tiers"])

    def path(self, tier: str, target: str) -> Path:
        """Path of ``tier``'s binary for ``target``.

        Raises:
            KeyError: unknown tier or a target the manifest does not hold.
        """
        if tier not in self["tiers"]:
            raise ConfigError(f"No tier {tier!r} in the manifest; tiers: {self.tier_names}.")
        files = self["tiers"][tier]["files"]
        if target not in files:
            raise ConfigError(f"No {target!r} file for tier {tier!r}; targets: {sorted(files)}.")
        return self.directory / files[target]["file"]


def tier_filename(tier: str, target: str) -> str:
    """File name of a tier's binary: ``device_0.tflite`` or ``device_0.lce.tflite``.

    Raises:
        ValueError: unknown target.
    """
    if target not in TARGET_SUFFIX:
        raise FormatError(f"Expected a target in {TARGETS}. Received target={target!r}.")
    return f"{tier}{TARGET_SUFFIX[target]}"


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def file_entry(filename: str, data: bytes, **extra: Any) -> dict[str, Any]:
    """The ``files[target]`` entry of a tier: ``{file, sha256, size_bytes, **extra}``."""
    return {"file": filename, "sha256": sha256_hex(data), "size_bytes": len(data), **extra}


# --------------------------------------------------------------------------- validation


def _fail(where: str, message: str) -> None:
    raise FormatError(f"Invalid manifest ({where}): {message}")


def _check_file(entry: dict, directory: Path, where: str) -> None:
    path = directory / entry["file"]
    if Path(entry["file"]).name != entry["file"]:
        _fail(where, f"file {entry['file']!r} must be a plain name inside the model directory.")
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing ({where}); the model directory is incomplete.")
    data = path.read_bytes()
    if len(data) != entry["size_bytes"] or sha256_hex(data) != entry["sha256"]:
        raise FormatError(
            f"{path} does not match its manifest entry ({where}): expected "
            f"{entry['size_bytes']} bytes with sha256 {entry['sha256'][:12]}..., found "
            f"{len(data)} bytes with sha256 {sha256_hex(data)[:12]}...; the file was "
            f"modified or corrupted, regenerate it with `python -m ddnn_tf.convert`."
        )


def _check_quantizer(q: dict[str, Any], channels: int, where: str) -> None:
    """The rules of a sensor quantiser the schema cannot express (``ddnn_tf.core.sensors``)."""
    bits = q["bits"]
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if q.get("dtype", f"int{bits}") != f"int{bits}":
        _fail(where, f"bits {bits} with dtype {q['dtype']!r}.")
    if not len(q["scale"]) == len(q["zero_point"]) == channels:
        _fail(
            where,
            f"expected one scale and zero point per channel ({channels}), got "
            f"{len(q['scale'])} and {len(q['zero_point'])}.",
        )
    if not all(low <= z <= high for z in q["zero_point"]):
        _fail(where, f"zero points must lie in [{low}, {high}], got {q['zero_point']}.")


def validate_manifest(
    manifest: dict[str, Any], directory: str | Path | None = None, *, check_files: bool = True
) -> dict[str, Any]:
    """Check a whole manifest against its schema, its semantic rules and (optionally) its files.

    The structure and types are checked against :data:`ddnn_tf.core.schemas.MANIFEST` (every
    key, at every depth); then the rules a schema cannot express: exits in order, one
    threshold per early exit (the calibration's own), a summary of one value per class, one file per target,
    unique tensor names, and each file's size and sha256.

    Args:
        manifest: the parsed JSON object.
        directory: where the tier files are; needed when ``check_files``.
        check_files: also check that every file exists with the recorded size and sha256.

    Returns:
        ``manifest`` itself.

    Raises:
        ValueError: wrong format or version, a value of the wrong type or out of range
            (naming its key path), a broken rule, or a file whose size or sha256 does not
            match.
        FileNotFoundError: a tier file is missing.
    """
    if isinstance(manifest, dict) and manifest.get("format") == FORMAT:
        version = manifest.get("format_version")
        if version != FORMAT_VERSION:
            _fail(
                "format_version",
                f"this ddnn_tf reads version {FORMAT_VERSION}, the manifest is version "
                f"{version!r}; convert the model again with this version of ddnn_tf.",
            )
    label = Path(directory) / MANIFEST_FILE if directory is not None else MANIFEST_FILE
    validate_document(manifest, MANIFEST_FILE, label)
    split = manifest["split"]
    if split[-1] != "cloud" or split != sorted(set(split), key=EXITS.index):
        _fail("split", f"expected exits bottom to top ending with 'cloud', got {split!r}.")
    targets = manifest["targets"]
    num_classes = len(manifest["classes"])
    thresholds = manifest["thresholds"]
    if sorted(thresholds) != sorted(split[:-1]):
        _fail("thresholds", f"expected one threshold per exit of {split[:-1]}, got {thresholds!r}.")
    if "calibration" in manifest and manifest["calibration"]["thresholds"] != thresholds:
        _fail(
            "calibration.thresholds",
            f"expected the manifest's thresholds {thresholds!r} (the calibration that chose "
            f"them), got {manifest['calibration']['thresholds']!r}.",
        )
    for k, entry in enumerate(manifest["inputs"]):
        if "quantizer" in entry:
            _check_quantizer(entry["quantizer"], entry["shape"][-1], f"inputs[{k}].quantizer")
    if manifest["wire"]["summary"]["shape"] != [num_classes]:
        _fail("wire.summary", f"expected shape [{num_classes}] (one value per class).")
    for name, tier in manifest["tiers"].items():
        where = f"tiers.{name}"
        if sorted(tier["files"]) != sorted(targets):
            _fail(
                f"{where}.files",
                f"expected one file per target {targets}, got {sorted(tier['files'])}.",
            )
        mcu = [(f"c.{k}", tier["c"][k]) for k in ("source", "header") if "c" in tier]
        mcu += [("tflm", tier["tflm"])] if "tflm" in tier else []
        for target, entry in [*(("files." + t, e) for t, e in tier["files"].items()), *mcu]:
            if check_files:
                if directory is None:
                    raise FormatError(
                        "validate_manifest: `directory` is needed to check the files."
                    )
                _check_file(entry, Path(directory), f"{where}.{target}")
        for kind in ("inputs", "outputs"):
            names = [tensor["name"] for tensor in tier[kind]]
            if len(set(names)) != len(names):
                _fail(f"{where}.{kind}", f"tensor names must be unique, got {names}.")
    return manifest


def load_manifest(path: str | Path, *, check_files: bool = True) -> Manifest:
    """Read and validate a converted model's manifest.

    Args:
        path: the model directory, or its ``manifest.json``.
        check_files: verify every tier file's size and sha256 (the default).

    Returns:
        A :class:`Manifest` (a dict with a ``directory`` attribute).

    Raises:
        FileNotFoundError: no manifest, or a tier file is missing.
        ValueError: the manifest is not valid JSON, has another format or version,
            lacks keys, or a file does not match its hash.

    Example:
        >>> m = load_manifest("tflite_models/fmnist6_mlpcc")
        >>> m["split"], m.path("device_0", "portable").name
        (['local', 'cloud'], 'device_0.tflite')
    """
    path = Path(path)
    file = path / MANIFEST_FILE if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(
            f"No manifest at {file}: expected a directory written by `python -m ddnn_tf.convert`."
        )
    data = read_json(file)
    validate_manifest(data, file.parent, check_files=check_files)
    return Manifest(data, file.parent)


def write_manifest(manifest: dict[str, Any], directory: str | Path) -> Path:
    """Validate ``manifest`` against the files in ``directory`` and write ``manifest.json``.

    Returns:
        The path written.

    Raises:
        ValueError / FileNotFoundError: as :func:`validate_manifest`.
    """
    directory = Path(directory)
    validate_manifest(manifest, directory)
    path = directory / MANIFEST_FILE
    path.write_text(_compact_json(manifest) + "\n")
    return path


def _compact_json(data: Any) -> str:
    """Indented JSON with every list of scalars (shapes, names) on one line."""
    text = json.dumps(data, indent=2)
    # json.dumps escapes newlines inside strings, so ",\n" only ever separates items.
    return re.sub(
        r"\[([^\[\]{}]*)\]",
        lambda m: (
            "[" + ", ".join(item.strip() for item in m.group(1).split(",\n")) + "]"
            if m.group(1).strip()
            else "[]"
        ),
        text,
    )


# ------------------------------------------------------------------ the tier graph
_FEATURE_ENCODING = "bitpacked-pm1"


def _ports(entries: list[dict[str, Any]]) -> list[tuple[str, str, tuple[int, ...]]]:
    return [(e["name"], e["role"], tuple(e["shape"][1:])) for e in entries]


def check_tier_graph(manifest: dict[str, Any], graph: Any) -> None:
    """Check that a manifest's tiers and wire are those of ``graph``.

    ``graph`` is :func:`ddnn_tf.core.graph.tier_graph` of the manifest's topology and split.
    Manifests written before tiers carried ``devices`` and ``sources`` are accepted;
    when present, those keys must match too.

    Args:
        manifest: a validated manifest.
        graph: its :class:`ddnn_tf.core.graph.TierGraph`.

    Raises:
        ValueError: naming the tier or wire entry that differs from the graph.
    """
    tiers = manifest["tiers"]
    if sorted(tiers) != sorted(graph.names):
        raise FormatError(
            f"Invalid manifest (tiers): split {list(graph.split)} of this topology has tiers "
            f"{graph.names}, the manifest lists {list(tiers)}."
        )
    for tier in graph:
        entry, where = tiers[tier.name], f"tiers.{tier.name}"
        expected = {f.name: f for f in [*tier.inputs, *tier.outputs]}
        for kind, ports in (("inputs", tier.inputs), ("outputs", tier.outputs)):
            want = [(p.name, p.role, tuple(p.shape)) for p in ports]
            if entry["role"] != tier.role or _ports(entry[kind]) != want:
                raise FormatError(
                    f"Invalid manifest ({where}): expected role {tier.role!r} and {kind} "
                    f"{want} (name, role, shape), found role {entry['role']!r} and "
                    f"{_ports(entry[kind])}."
                )
        fields = tier.manifest_fields()
        for spec in entry["inputs"]:
            want = expected[spec["name"]].to_dict()
            for key in ("from", "device", "columns", "column_devices"):
                if key in spec and spec[key] != want.get(key):
                    raise FormatError(
                        f"Invalid manifest ({where}): input {spec['name']!r} has {key} "
                        f"{spec[key]!r}, the tier graph says {want.get(key)!r}."
                    )
        for key in ("devices", "sources"):
            if key in entry and entry[key] != fields[key]:
                raise FormatError(
                    f"Invalid manifest ({where}.{key}): {entry[key]!r}, the tier graph says "
                    f"{fields[key]!r}."
                )
    features = manifest["wire"]["features"]
    for source, _ in graph.links:
        if source.output != "features":
            continue
        if source.tier not in features:
            raise FormatError(f"Invalid manifest (wire.features): no entry for {source.tier!r}.")
        wire = features[source.tier]
        if wire.get("encoding", _FEATURE_ENCODING) != _FEATURE_ENCODING:
            raise FormatError(
                f"Invalid manifest (wire.features.{source.tier}): encoding "
                f"{wire.get('encoding')!r} is not supported; expected {_FEATURE_ENCODING!r}."
            )
        shape = tuple(graph[source.tier].output("features").shape)
        if tuple(int(d) for d in wire["shape"]) != shape:
            raise FormatError(
                f"Invalid manifest (wire.features.{source.tier}): shape {wire['shape']} "
                f"differs from the tier's features output {shape}."
            )


def raw_wire(manifest: dict[str, Any], graph: Any) -> dict[int, dict[str, Any]]:
    """How each device's raw input travels in configuration (a).

    Args:
        manifest: a validated manifest.
        graph: its :class:`ddnn_tf.core.graph.TierGraph` (the raw messages are its links with
            output ``raw``).

    Returns:
        ``{device: {"dtype": "uint8" | "float32", "scale": float | None}}``.

    Raises:
        ValueError: a uint8 wire without a scale.
    """
    inputs = {int(e["device"]): e for e in manifest["inputs"]}
    raw = manifest["wire"].get("raw", {})
    out = {}
    for source, _ in graph.links:
        if source.output != "raw":
            continue
        d = source.column
        entry = inputs.get(d, {})
        dtype = raw.get(source.tier, {}).get("dtype", entry.get("raw_dtype", "float32"))
        scale = entry.get("scale")
        if dtype == "uint8" and scale is None:
            raise FormatError(f"Invalid manifest (inputs[{d}]): raw uint8 messages need a scale.")
        out[d] = {"dtype": dtype, "scale": scale}
    return out
