"""Run every device tier of a converted model on a board and compare it byte for byte.

For each device tier: the sensor messages of the test split (``uint8`` values, int8 /
int16 codes of a quantised sensor, or float32 bytes, as the manifest's ``inputs`` say), the tier's wire messages from the board (the C
tier on an emulated Cortex-M or on the host; the TFLM variant in TensorFlow Lite Micro),
and the same messages from the portable binary run by ai-edge-litert (through
:class:`ddnn_tf.runtime.tiers.TierRunner`) on the decoded sensor values, encoded by
:mod:`ddnn_tf.core.comm`. A sample matches when its summary and its features are the same
bytes. A crashed, failed or hung run is reported for its device; the others still run.

TensorFlow-free: numpy, the interpreters, the compilers and QEMU.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ddnn_tf.core import comm
from ddnn_tf.core.manifest import Manifest, load_manifest, sha256_hex
from ddnn_tf.core.sensors import sensor_quantizer, sensor_values
from ddnn_tf.core.tflite_check import check_tier_binary
from ddnn_tf.core.vocab import DEFAULT_BOARD, SIGNATURE_KEY
from ddnn_tf.errors import ConfigError, FormatError
from ddnn_tf.mcu import build, tflm
from ddnn_tf.mcu.boards import Board, require_tools
from ddnn_tf.mcu.boards import board as find_board
from ddnn_tf.mcu.codegen import CSources, generate_c
from ddnn_tf.mcu.exact import Ambiguity
from ddnn_tf.mcu.export import sensor_scale
from ddnn_tf.mcu.lower import lower_tier
from ddnn_tf.mcu.spec import TierSpec
from ddnn_tf.runtime.flatbuffer import op_counts, read_model
from ddnn_tf.runtime.tiers import TierRunner

__all__ = [
    "check_model",
    "device_tiers",
    "format_report",
    "reference_messages",
    "sensor_messages",
    "tier_sources",
]

#: Seconds an emulated board may take per 1,000 samples (plus a fixed start-up allowance)
#: before it counts as hung.
TIMEOUT_PER_1000 = 30.0
TIMEOUT_BASE = 30.0
_REPEATS = 3  # passes of the host speed measurements


def device_tiers(manifest: Manifest) -> list[str]:
    """The device tiers of a manifest, in order."""
    return [name for name, tier in manifest["tiers"].items() if tier["role"] == "device"]


def sensor_input(manifest: Manifest, tier: str) -> dict[str, Any]:
    """The manifest's ``inputs`` entry of a device tier (its sensor)."""
    entry = next((e for e in manifest["inputs"] if e["tier"] == tier), None)
    if entry is None:  # a manifest whose devices read no sensor: not a device tier
        raise FormatError(f"{tier}: the manifest lists no sensor input for it.")
    return entry


def tier_spec(manifest: Manifest, tier: str) -> TierSpec:
    """The :class:`TierSpec` of a device tier, read from its portable binary."""
    entry = sensor_input(manifest, tier)
    data = manifest.path(tier, "portable").read_bytes()
    return lower_tier(tier, data, scale=sensor_scale(entry), quantizer=sensor_quantizer(entry))


def tier_sources(manifest: Manifest, tier: str) -> tuple[CSources, str]:
    """A device tier's C: the model directory's files when the manifest lists them (their
    hashes were checked on load), else generated now from the portable binary.

    Returns:
        ``(sources, origin)`` with origin ``"model directory"`` or ``"generated"``.
    """
    entry = manifest["tiers"][tier]
    generated = generate_c(tier_spec(manifest, tier), origin=entry["files"]["portable"]["file"])
    c_entry = entry.get("c")
    if c_entry is None:
        return generated, "generated"
    c = (manifest.directory / c_entry["source"]["file"]).read_text()
    h = (manifest.directory / c_entry["header"]["file"]).read_text()
    return dataclasses.replace(generated, c=c, h=h), "model directory"


def sensor_messages(manifest: Manifest, tier: str, x: np.ndarray) -> np.ndarray:
    """The device's sensor messages ``(N, bytes)`` for its binary's inputs ``x``: uint8
    values, int8 / int16 codes (little-endian) of a quantised sensor, or float32 bytes."""
    entry = sensor_input(manifest, tier)
    quantizer = sensor_quantizer(entry)
    if quantizer is not None:
        codes = quantizer.uncentre(x).astype(np.dtype(quantizer.dtype).newbyteorder("<"))
        return np.ascontiguousarray(codes).view(np.uint8).reshape(len(codes), -1)
    return comm.encode_raw(x, entry.get("raw_dtype", "float32"), sensor_scale(entry))


def _decoded(manifest: Manifest, tier: str, sensors: np.ndarray) -> np.ndarray:
    """The binary's inputs from sensor messages (the inverse of :func:`sensor_messages`)."""
    entry = sensor_input(manifest, tier)
    shape = entry["shape"][1:]
    quantizer = sensor_quantizer(entry)
    if quantizer is not None:
        wire = np.dtype(quantizer.dtype).newbyteorder("<")
        codes = np.ascontiguousarray(sensors).view(wire).reshape(len(sensors), *shape)
        return quantizer.centre(codes)
    dtype = entry.get("raw_dtype", "float32")
    return comm.decode_raw(sensors, shape, dtype, sensor_scale(entry))


def _encode(manifest: Manifest, tier: str, outputs: dict[str, np.ndarray]) -> np.ndarray:
    parts = []
    if "summary" in outputs:
        encoding = manifest["wire"]["summary"]["encoding"]
        parts.append(comm.encode_summaries(outputs["summary"], encoding))
    parts.append(comm.pack_features_batch(outputs["features"]))
    return np.ascontiguousarray(np.concatenate(parts, axis=1))


def reference_messages(manifest: Manifest, tier: str, sensors: np.ndarray) -> np.ndarray:
    """The portable binary's wire messages ``(N, summary + features bytes)`` for the sensor
    messages ``sensors`` (ai-edge-litert): what every board must send byte for byte."""
    runner = TierRunner.from_manifest(manifest, tier, "portable")
    name = sensor_input(manifest, tier)["name"]
    return _encode(manifest, tier, runner({name: _decoded(manifest, tier, sensors)}))


def _litert_rate(runner: TierRunner, x: np.ndarray) -> float:
    """Samples/s of ai-edge-litert with one invoke per sample: CPU time of the fastest of
    three passes over (up to) 2,000 samples, like the C program's figure."""
    x = x[:2000]
    rows = [x[i : i + 1] for i in range(len(x))]
    best = float("inf")
    for _ in range(_REPEATS):
        t0 = time.process_time()
        for row in rows:
            runner.run([row])
        best = min(best, time.process_time() - t0)
    return len(x) / max(best, 1e-9)


def _head_sums(spec: TierSpec, bits: np.ndarray, cls: int) -> np.ndarray:
    """The binary's float32 head sum of class ``cls`` for some samples' feature ``bits``
    (its own order)."""
    head = spec.head
    agree = bits == head.signs[cls][None, :]
    acc = np.full(len(bits), head.bias[cls], np.float32)
    s = np.float32(head.scale[cls])
    for i in range(head.in_size):
        acc = (acc + np.where(agree[:, i], s, -s)).astype(np.float32)
    return acc


def _near_steps(spec: TierSpec, ambiguities: tuple[Ambiguity, ...], want: np.ndarray) -> list[dict]:
    """Test samples whose head sum lies within rounding of a step, and what the sum is."""
    out = []
    if spec.head is not None:  # the features' bits, as the head reads them
        bits = np.unpackbits(want[:, spec.summary_nbytes :], axis=1)[:, : spec.head.in_size]
        bits = bits.astype(bool)
    for a in ambiguities:
        entry = {
            "layer": a.layer,
            "channel": a.channel,
            "value": a.value,
            "exact": a.exact,
            "bound": a.bound,
            "samples": None,
        }
        if a.layer == "head" and spec.head is not None:
            agree = (bits == spec.head.signs[a.channel][None, :]).sum(axis=1)
            rows = np.flatnonzero(agree == a.value)
            entry["samples"] = int(len(rows))
            if len(rows):
                acc = _head_sums(spec, bits[rows[:1]], a.channel)[0]
                entry["first_sample"] = int(rows[0])
                entry["float32_sum"] = float(acc)
        out.append(entry)
    return out


def run_timeout(n: int, timeout_s: float | None = None) -> float:
    """``timeout_s``, or by default the seconds a board may take for ``n`` samples."""
    return timeout_s if timeout_s is not None else TIMEOUT_BASE + TIMEOUT_PER_1000 * n / 1000


def _compare(got: np.ndarray, want: np.ndarray, summary_bytes: int) -> dict[str, int]:
    diff_s = (got[:, :summary_bytes] != want[:, :summary_bytes]).any(axis=1)
    diff_f = (got[:, summary_bytes:] != want[:, summary_bytes:]).any(axis=1)
    return {
        "mismatches": int((diff_s | diff_f).sum()),
        "summary_mismatches": int(diff_s.sum()),
        "features_mismatches": int(diff_f.sum()),
    }


def _c_device(
    manifest: Manifest,
    tier: str,
    b: Board,
    sensors: np.ndarray,
    want: np.ndarray,
    workdir: Path,
    timeout_s: float | None,
) -> dict[str, Any]:
    sources, origin = tier_sources(manifest, tier)
    fp = build.footprint(sources, b, workdir / "object")
    n = len(sensors)
    row = {
        "samples": n,
        "source": origin,
        "arithmetic": sources.arithmetic,
        "flash_bytes": fp.flash_bytes,
        "static_ram_bytes": fp.static_ram_bytes,
        "stack_bytes_static": fp.stack_bytes,
    }
    if b.kind == "qemu":
        elf = build.build_firmware(sources, b, workdir / "firmware")
        run = build.run_firmware(elf, b, sensors.tobytes(), timeout_s=run_timeout(n, timeout_s))
    else:
        exe = build.build_host(sources, workdir / "host")
        run = build.run_host(
            exe, sensors.tobytes(), timeout_s=run_timeout(n, timeout_s), repeats=_REPEATS
        )
        if run.status == "ok":
            row["samples_per_s"] = n / max(run.seconds, 1e-9)
            runner = TierRunner.from_manifest(manifest, tier, "portable")
            row["litert_samples_per_s"] = _litert_rate(runner, _decoded(manifest, tier, sensors))
    row["status"] = run.status
    if run.status != "ok":
        row.update(detail=run.detail, mismatches=n, ram_bytes=None)
        return row
    stack = run.stack_bytes if run.stack_bytes is not None else fp.stack_bytes
    row["stack_bytes"] = stack
    row["ram_bytes"] = fp.static_ram_bytes + stack
    got = np.frombuffer(run.messages, np.uint8)
    if got.size != want.size:
        row.update(
            status="failed", detail=f"{got.size} output bytes, expected {want.size}", mismatches=n
        )
        return row
    row.update(_compare(got.reshape(want.shape), want, sources.summary_bytes))
    ambiguities = sources.plan.ambiguities
    if ambiguities:
        row["near_steps"] = _near_steps(sources.spec, ambiguities, want)
    return row


def _tflm_device(manifest: Manifest, tier: str, x: np.ndarray, want: np.ndarray) -> dict[str, Any]:
    entry = manifest["tiers"][tier]
    listed = entry.get("tflm")
    if listed is not None:
        file = listed["file"]
        data = (manifest.directory / file).read_bytes()
        origin = "model directory"
    else:
        file = entry["files"]["portable"]["file"] + " (TFLM variant)"
        data = tflm.tflm_variant(manifest.path(tier, "portable").read_bytes())
        origin = "generated"
    # the variant keeps the portable binary's signature: the manifest's tensors
    info = check_tier_binary(
        data,
        tier=tier,
        file=file,
        target="portable",
        inputs=entry["inputs"],
        outputs=entry["outputs"],
    ).signatures[SIGNATURE_KEY]
    name = sensor_input(manifest, tier)["name"]
    arena = tflm.arena_bytes(data, [x[:1]])
    outputs = tflm.run_tflm(
        data,
        {name: x},
        input_order=info["input_order"],
        output_order=info["output_order"],
        arena=arena,
    )
    got = _encode(manifest, tier, outputs)
    summary_bytes = manifest["wire"]["summary"]["nbytes"] if "summary" in outputs else 0
    row = {
        "samples": len(x),
        "source": origin,
        "status": "ok",
        "flash_bytes": len(data),
        "ram_bytes": arena,
        "arena_bytes": arena,
        "ops": op_counts(read_model(data)),
        "sha256": sha256_hex(data),
    }
    row.update(_compare(got, want, summary_bytes))
    return row


def check_model(
    model: str | Path | Manifest,
    dataset=None,
    *,
    board: str = DEFAULT_BOARD,
    limit: int | None = None,
    timeout_s: float | None = None,
    workdir: str | Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Run each device tier on ``board`` and compare its messages with ai-edge-litert's.

    Args:
        model: a converted model directory (or its loaded manifest).
        dataset: a :class:`ddnn_tf.data.Dataset` (its test split is used), a dataset
            name for :func:`ddnn_tf.data.load_dataset`, or None for the one the manifest
            records.
        board: ``mps2-an386`` (Cortex-M4, QEMU), ``mps2-an385`` (Cortex-M3, QEMU),
            ``host`` (system gcc) or ``tflm`` (TensorFlow Lite Micro).
        limit: the first ``limit`` test samples (default: all).
        timeout_s: seconds one device's run may take before it counts as hung (default:
            30 s plus 30 s per 1,000 samples).
        workdir: where to build (default: a temporary directory, removed after).
        progress: a progress bar over the devices on stderr.

    Returns:
        ``{"board", "description", "model", "devices": {tier: {samples, mismatches,
        summary_mismatches, features_mismatches, status, flash_bytes, ram_bytes, ...}},
        "ok"}``; ``ok`` is true when every device ran and matched on every sample.

    Raises:
        ConfigError: an unknown board, a tier the C target cannot express, a dataset that
            does not fit the model.
        ModuleNotFoundError: ``tflite_micro`` for board ``tflm`` (the ``mcu`` extra).
        FileNotFoundError: a missing compiler, newlib, QEMU (naming what to install).
    """
    b = find_board(board)
    require_tools(b)
    manifest = model if isinstance(model, Manifest) else load_manifest(model)
    if dataset is None or isinstance(dataset, str):
        from ddnn_tf.data import load_dataset

        recorded = manifest.get("dataset")
        if dataset is None and not recorded:
            raise ConfigError(f"{manifest.directory}: the manifest records no dataset; give one.")
        dataset = load_dataset(dataset) if dataset is not None else load_dataset(**recorded)
    tiers = device_tiers(manifest)
    xs = dataset.test.x
    if len(xs) != len(manifest["inputs"]):
        raise ConfigError(
            f"The dataset has {len(xs)} device views, the model {len(manifest['inputs'])} devices."
        )
    n = len(xs[0]) if limit is None else min(int(limit), len(xs[0]))
    report: dict[str, Any] = {
        "board": b.name,
        "description": b.description,
        "model": manifest["name"],
        "devices": {},
    }
    iterator = tiers
    if progress:
        from tqdm import tqdm

        iterator = tqdm(tiers, desc=f"devices on {b.name}", unit="device", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="ddnn_mcu_") as tmp:
        root = Path(workdir) if workdir is not None else Path(tmp)
        for tier in iterator:
            device = manifest["tiers"][tier]["device"]
            x = np.asarray(xs[device][:n])
            entry = sensor_input(manifest, tier)
            expected = tuple(entry["shape"][1:])
            if x.shape[1:] != expected:
                raise ConfigError(
                    f"{tier}: the dataset's view has shape {x.shape[1:]}, the model expects {expected}."
                )
            x = sensor_values([sensor_quantizer(entry)], [x])[0]
            sensors = sensor_messages(manifest, tier, x)
            want = reference_messages(manifest, tier, sensors)
            if b.kind == "tflm":
                row = _tflm_device(manifest, tier, _decoded(manifest, tier, sensors), want)
            else:
                row = _c_device(manifest, tier, b, sensors, want, root / tier, timeout_s)
            report["devices"][tier] = row
    report["ok"] = all(
        r["status"] == "ok" and r["mismatches"] == 0 for r in report["devices"].values()
    )
    return report


def format_report(report: dict[str, Any]) -> str:
    """A readable table of :func:`check_model`'s report."""
    b = report["board"]
    lines = [f"{report['model']} on {b} ({report['description']})"]
    tflm_board = b == "tflm"
    head = f"{'device':<10}{'samples':>8}{'mismatch':>9}{'flash B':>9}{'RAM B':>7}"
    head += f"{'arena B':>9}" if tflm_board else f"{'stack B':>9}  arithmetic"
    if b == "host":
        head += f"{'':>14}{'C /s':>10}{'LiteRT /s':>11}"
    lines.append(head)
    for tier, r in report["devices"].items():
        ram = "-" if r.get("ram_bytes") is None else str(r["ram_bytes"])
        line = f"{tier:<10}{r['samples']:>8}{r['mismatches']:>9}{r['flash_bytes']:>9}{ram:>7}"
        if tflm_board:
            line += f"{r['arena_bytes']:>9}"
        else:
            stack = r.get("stack_bytes", "-")
            arith = ", ".join(f"{k} {v}" for k, v in r.get("arithmetic", {}).items())
            line += f"{stack!s:>9}  {arith:<24}"
            if b == "host" and "samples_per_s" in r:
                line += f"{r['samples_per_s']:>10.0f}{r['litert_samples_per_s']:>11.0f}"
        if r["status"] != "ok":
            line += f"  {r['status'].upper()}: {r.get('detail', '')}"
        lines.append(line)
    for tier, r in report["devices"].items():
        for s in r.get("near_steps", []):
            where = f"{tier} {s['layer']} channel {s['channel']}, value {s['value']}"
            text = f"  near a step: {where}: exact {s['exact']:.9g} +- {s['bound']:.2g}"
            if s.get("samples"):
                text += (
                    f"; {s['samples']} test samples, e.g. #{s['first_sample']} (float32 sum "
                    f"{s['float32_sum']:.9g}), computed in float32 in the binary's order"
                )
            elif s.get("samples") == 0:
                text += "; no test sample reaches it"
            lines.append(text)
    lines.append("all devices match" if report["ok"] else "MISMATCHES or failed devices")
    return "\n".join(lines)
