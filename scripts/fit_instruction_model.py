"""Fit the static instruction model of the generated C (``ddnn_tf/mcu/instruction_model.json``).

Usage::

    python scripts/fit_instruction_model.py [--tiers 120] [--samples 2] [--seed 0]

Draws random device tiers covering every code path of ``ddnn_tf.mcu.codegen`` (ConvP
blocks on uint8 and float32 sensors, integer and float32 arithmetic, +-1 ConvP blocks,
FC blocks, the three exit heads, none), generates their C, counts their instructions
per sample exactly on both emulated cores (``ddnn_tf.mcu.instructions``: QEMU, two runs,
subtracted) and fits, per core, the instructions one pass of each loop body costs
(``ddnn_tf.mcu.opcount.loop_counts``) by non-negative least squares (relative errors).
The committed models' tiers are not in the fit; their manifests' modelled figures (and
errors against their counts, from ``ddnn mcu MODEL --count-instructions``) are updated
at the end. ``--rows FILE`` keeps the counts, ``--from-rows FILE`` refits from them. Takes a few minutes (the emulator logs every instruction); run it with
``nice -n 10`` on a shared machine. Needs the Cortex-M toolchain and QEMU (``make mcu``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ddnn_tf.core.graph import device_tier  # noqa: E402
from ddnn_tf.core.vocab import CORES  # noqa: E402
from ddnn_tf.mcu.boards import cross_compiler  # noqa: E402
from ddnn_tf.mcu.build import CFLAGS, _version  # noqa: E402
from ddnn_tf.mcu.codegen import generate_c  # noqa: E402
from ddnn_tf.mcu.exact import BlockPlan, TierPlan  # noqa: E402
from ddnn_tf.mcu.instructions import (  # noqa: E402
    CORE_BOARDS,
    count_instructions,
    refresh_modelled,
)
from ddnn_tf.mcu.opcount import MODEL_FILE, _model, loop_counts  # noqa: E402
from ddnn_tf.mcu.spec import ConvBlock, DenseBlock, Head, Sensor, TierSpec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "ddnn_tf" / "mcu" / MODEL_FILE
#: The committed models whose manifests' modelled figures follow the fitted model.
COMMITTED = [ROOT / "tflite_models" / "fmnist6_mlpcc", ROOT / "tflite_models" / "fmnist6_paper"]


def _pooled(n: int, size: int, stride: int) -> int:
    return -(-n // stride)


def _head(rng, in_size: int) -> tuple[Head | None, BlockPlan | None]:
    choice = rng.choice(["float32", "int4float", "int4int", "none"], p=[0.3, 0.35, 0.25, 0.1])
    if choice == "none":
        return None, None
    classes = int(rng.integers(2, 13))
    head = Head(
        in_size,
        classes,
        rng.random((classes, in_size)) < 0.5,
        rng.uniform(0.02, 0.2, classes).astype(np.float32),
        rng.normal(0, 1, classes).astype(np.float32),
        "float32" if choice == "float32" else "int4",
    )
    if choice == "int4int":
        t = np.sort(rng.integers(0, in_size + 2, (classes, 15)), axis=1)
        return head, BlockPlan("head", "integer", t)
    return head, BlockPlan("head", "float")


def image_tier(rng, name: str) -> tuple[TierSpec, TierPlan]:
    h, w = int(rng.integers(3, 13)), int(rng.integers(3, 15))
    c = int(rng.choice([1, 1, 1, 2, 3]))
    first = rng.choice(["u8int", "u8float", "f32float"], p=[0.6, 0.2, 0.2])
    sensor = (
        Sensor((h, w, c), "float32", None)
        if first == "f32float"
        else Sensor((h, w, c), "uint8", np.float32(1 / 255))
    )
    layers = int(rng.choice([1, 1, 1, 2, 2, 3]))
    blocks, plans = [], []
    shape = (h, w, c)
    for k in range(layers):
        if min(shape[:2]) < 2 and k:
            break
        f = int(rng.integers(1, 7))
        size, stride = [(3, 2), (3, 2), (3, 1), (2, 2)][int(rng.integers(0, 4))]
        out = (_pooled(shape[0], size, stride), _pooled(shape[1], size, stride), f)
        real = k == 0
        blocks.append(
            ConvBlock(
                shape,
                out,
                real,
                rng.random((f, 3, 3, shape[2])) < 0.5,
                (size, stride),
                rng.normal(0, 1, f).astype(np.float32),
                rng.normal(0, 1, f).astype(np.float32),
            )
        )
        taps = 9 * shape[2]
        if real and first != "u8int":
            plans.append(BlockPlan(f"conv{k + 1}", "float"))
        elif real:
            t = rng.integers(-60 * taps, 60 * taps, f)
            plans.append(BlockPlan(f"conv{k + 1}", "integer", t, rng.random(f) < 0.7))
        else:
            t = rng.integers(0, taps + 1, f)
            plans.append(BlockPlan(f"conv{k + 1}", "integer", t, rng.random(f) < 0.7))
        shape = out
    head, hplan = _head(rng, int(np.prod(shape)))
    return TierSpec(name, sensor, tuple(blocks), head), TierPlan(tuple(plans), hplan)


def device_like_tier(rng, name: str) -> tuple[TierSpec, TierPlan]:
    """A tier like the toolkit's image devices: one or two ConvP blocks of a few filters
    on a small uint8 view (pool 3/2), integer where exact, and an exit head."""
    h, w, c = int(rng.integers(6, 17)), int(rng.integers(6, 17)), int(rng.choice([1, 1, 3]))
    sensor = Sensor((h, w, c), "uint8", np.float32(1 / 255))
    blocks, plans, shape = [], [], (h, w, c)
    for k in range(int(rng.choice([1, 1, 2]))):
        f = int(rng.integers(2, 9))
        out = (_pooled(shape[0], 3, 2), _pooled(shape[1], 3, 2), f)
        blocks.append(
            ConvBlock(
                shape,
                out,
                k == 0,
                rng.random((f, 3, 3, shape[2])) < 0.5,
                (3, 2),
                rng.normal(0, 1, f).astype(np.float32),
                rng.normal(0, 1, f).astype(np.float32),
            )
        )
        taps = 9 * shape[2]
        t = rng.integers(-60 * taps, 60 * taps, f) if k == 0 else rng.integers(0, taps + 1, f)
        plans.append(BlockPlan(f"conv{k + 1}", "integer", t, rng.random(f) < 0.7))
        shape = out
    head, hplan = _head(rng, int(np.prod(shape)))
    return TierSpec(name, sensor, tuple(blocks), head), TierPlan(tuple(plans), hplan)


def vector_tier(rng, name: str) -> tuple[TierSpec, TierPlan]:
    k = int(rng.integers(4, 65))
    sensor = Sensor((k,), "uint8", np.float32(1 / 255))
    layers = int(rng.choice([1, 2, 2]))
    blocks, plans = [], []
    size = k
    for j in range(layers):
        units = int(rng.integers(3, 33))
        blocks.append(
            DenseBlock(
                size,
                units,
                j == 0,
                rng.random((units, size)) < 0.5,
                rng.uniform(0.02, 0.2, units).astype(np.float32),
                rng.normal(0, 1, units).astype(np.float32),
            )
        )
        if j == 0:
            plans.append(BlockPlan("fc1", "integer", rng.integers(-40 * size, 40 * size, units)))
        elif rng.random() < 0.5:
            plans.append(BlockPlan(f"fc{j + 1}", "integer", rng.integers(0, size + 1, units)))
        else:
            plans.append(BlockPlan(f"fc{j + 1}", "float"))
        size = units
    head, hplan = _head(rng, size)
    return TierSpec(name, sensor, tuple(blocks), head), TierPlan(tuple(plans), hplan)


def sensors_for(spec: TierSpec, rng, n: int) -> np.ndarray:
    if spec.sensor.dtype == "uint8":
        return rng.integers(0, 256, (n, spec.sensor.nbytes), dtype=np.uint8)
    values = rng.uniform(0, 1, (n, spec.sensor.size)).astype("<f4")
    return values.view(np.uint8).reshape(n, -1)


def fit(rows: list[dict], core: str) -> tuple[dict[str, float], np.ndarray]:
    from scipy.optimize import nnls

    names = sorted({k for r in rows for k in r["counts"]})
    a = np.array([[r["counts"].get(k, 0) for k in names] for r in rows], np.float64)
    y = np.array([r["measured"][core] for r in rows], np.float64)
    scale = np.maximum(y, 1.0)  # relative error matters, not absolute
    coef, _ = nnls(a / scale[:, None], y / scale, maxiter=50 * len(names))
    return {k: round(float(v), 4) for k, v in zip(names, coef)}, (a @ coef - y) / y


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiers", type=int, default=120)
    parser.add_argument("--samples", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", type=Path, help="also write the counts per tier here (JSON)")
    parser.add_argument("--from-rows", type=Path, help="refit from such a file, no emulation")
    args = parser.parse_args(argv)
    if args.from_rows is not None:
        rows = json.loads(args.from_rows.read_text())
        return write_model(rows, f"--from-rows {args.from_rows.name}", args)
    rng = np.random.default_rng(args.seed)
    rows = []
    start = time.perf_counter()
    for i in range(args.tiers):
        draw = rng.random()
        make = device_like_tier if draw < 0.3 else image_tier if draw < 0.8 else vector_tier
        spec, plan = make(rng, device_tier(i))
        sources = generate_c(spec, plan=plan)
        sensors = sensors_for(spec, rng, args.samples)
        measured = {
            core: count_instructions(sources, sensors, core=core).per_sample for core in CORES
        }
        rows.append(
            {"counts": loop_counts(spec, plan), "measured": measured, "samples": args.samples}
        )
        print(
            f"[{i + 1}/{args.tiers}] {time.perf_counter() - start:.0f} s "
            + " ".join(f"{c} {v:,.0f}" for c, v in measured.items()),
            file=sys.stderr,
        )
        if args.rows is not None:
            args.rows.write_text(json.dumps(rows))
    return write_model(
        rows, f"--tiers {args.tiers} --samples {args.samples} --seed {args.seed}", args
    )


def write_model(rows: list[dict], how: str, args) -> int:
    """Fit both cores on ``rows`` and write the model file."""
    cores = {}
    for core in CORES:
        coefficients, rel = fit(rows, core)
        board = CORE_BOARDS[core]
        cores[core] = {
            "board": board.machine,
            "cflags": " ".join((*CFLAGS, *board.cflags, "-Os")),
            "coefficients": coefficients,
            "fit": {
                "tiers": len(rows),
                "samples_per_tier": rows[0].get("samples", args.samples),
                "max_abs_error_percent": round(float(100 * np.abs(rel).max()), 2),
                "mean_abs_error_percent": round(float(100 * np.abs(rel).mean()), 2),
            },
        }
        print(f"{core}: {cores[core]['fit']}", file=sys.stderr)
    model = {
        "compiler": _version(cross_compiler()),
        "fitted_by": f"scripts/fit_instruction_model.py {how}",
        "cores": cores,
    }
    OUT.write_text(json.dumps(model, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT}", file=sys.stderr)
    _model.cache_clear()
    for directory in COMMITTED:
        for tier, entries in refresh_modelled(directory).items():
            print(
                f"{directory.name} {tier}: "
                + ", ".join(
                    f"{c} {e['modelled']:,.0f} ({e.get('error_percent', 0):+.1f} %)"
                    for c, e in entries.items()
                ),
                file=sys.stderr,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
