"""The default preset's ablation: each lever added to the paper's model, and each removed
from the default, trained and evaluated on the same data in one process.

Usage::

    python scripts/ablation.py --data fmnist6 --epochs 5 --out docs/results/ablation

writes ``ablation.md`` and ``ablation.json`` into ``--out``: per configuration the local,
cloud and overall accuracy at the T calibrated on the validation split (most accurate T),
the bytes per device there, the overall accuracy and bytes at the T calibrated under a
20-byte budget (``--calibrate bytes:20``), the worst drop of overall accuracy when any
single device fails (``evaluate --fail k``, k = 0..D-1, at the calibrated T) and the
training time. Every row is the command line given in the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

#: (name, preset, topology overrides, training overrides), in the table's order.
ROWS: list[tuple[str, str, dict, dict]] = [
    ("paper (MP-CC, f = 4)", "paper", {}, {}),
    ("+ 4-bit summary", "paper", {"summary_bits": 4}, {}),
    (
        "+ float dense cloud",
        "paper",
        {"summary_bits": 4, "cloud_precision": "float", "cloud_units": 256},
        {},
    ),
    (
        "+ device dropout 0.15",
        "paper",
        {
            "summary_bits": 4,
            "cloud_precision": "float",
            "cloud_units": 256,
            "device_dropout": 0.15,
        },
        {},
    ),
    ("+ lr 3e-3 cosine, batch 256 = default", "default", {}, {}),
    ("default, float32 summary", "default", {"summary_bits": 0}, {}),
    ("default, no device dropout", "default", {"device_dropout": 0.0}, {}),
    (
        "default, grid conv cloud",
        "default",
        {"device_grid": (3, 2), "cloud_filters": 32, "cloud_units": 128},
        {},
    ),
]

_FLAGS = {
    "summary_bits": "--summary-bits",
    "cloud_precision": "--cloud-precision",
    "cloud_units": "--cloud-units",
    "cloud_filters": "--cloud-filters",
    "device_dropout": "--device-dropout",
    "device_grid": "--device-grid",
}


def command(preset: str, topology: dict, epochs: int) -> str:
    """The ``python -m ddnn_tf.train`` command line of a row."""
    parts = [f"python -m ddnn_tf.train --data fmnist6 --preset {preset} --epochs {epochs}"]
    for key, value in topology.items():
        text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
        parts.append(f"{_FLAGS[key]} {text}")
    return " ".join(parts)


def measure(dataset, preset: str, topology: dict, training: dict, epochs: int, seed: int):
    """Train one configuration and evaluate it; returns the row's figures."""
    from ddnn_tf.keras.evaluate import evaluate_run
    from ddnn_tf.keras.presets import preset_config, preset_topology
    from ddnn_tf.keras.train import train

    t = preset_topology(dataset, preset, **topology)
    config = preset_config(preset, epochs=epochs, seed=seed, **training)
    start = time.perf_counter()
    run = train(dataset, t, config, verbose=0)
    seconds = time.perf_counter() - start
    at = evaluate_run(run, dataset)
    budget = evaluate_run(run, dataset, calibrate="bytes:20")
    drops = [
        at["accuracy"]["overall"] - evaluate_run(run, dataset, fail=k)["accuracy"]["overall"]
        for k in range(t.num_devices)
    ]
    return {
        "local": at["accuracy"]["local"],
        "cloud": at["accuracy"]["cloud"],
        "threshold": at["thresholds"]["local"],
        "overall": at["accuracy"]["overall"],
        "bytes": at["bytes_per_device"],
        "threshold_20": budget["thresholds"]["local"],
        "overall_20": budget["accuracy"]["overall"],
        "bytes_20": budget["bytes_per_device"],
        "fault_drops": drops,
        "worst_fault_drop": max(drops),
        "train_seconds": seconds,
        "epoch_seconds": run.history["epoch_seconds"],
    }


def markdown(rows: list[dict]) -> str:
    """The ablation table."""
    head = (
        "| configuration | local | cloud | overall at calibrated T (bytes) | "
        "overall within 20 B (bytes) | worst single-device failure | training |\n"
        "|---|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for r in rows:
        lines.append(
            f"| {r['name']} | {100 * r['local']:.2f} % | {100 * r['cloud']:.2f} % | "
            f"{100 * r['overall']:.2f} % (T = {r['threshold']:.1f}, {r['bytes']:.1f} B) | "
            f"{100 * r['overall_20']:.2f} % (T = {r['threshold_20']:.1f}, {r['bytes_20']:.1f} B) | "
            f"−{100 * r['worst_fault_drop']:.2f} points | {r['train_seconds']:.0f} s |"
        )
    commands = "\n".join(f"{i + 1}. `{r['command']}`" for i, r in enumerate(rows))
    return (
        head
        + "\n".join(lines)
        + "\n\nCommands (then `python -m ddnn_tf.evaluate RUN "
        + ("[--calibrate bytes:20] [--fail k]`):\n\n" + commands + "\n")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="fmnist6")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", default=None, help="comma-separated row numbers (1-based)")
    parser.add_argument("--out", default="docs/results/ablation")
    args = parser.parse_args(argv)
    from ddnn_tf.data import load_dataset

    dataset = load_dataset(args.data, seed=args.seed)
    chosen = range(len(ROWS))
    if args.rows:
        chosen = [int(i) - 1 for i in args.rows.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in chosen:
        name, preset, topology, training = ROWS[i]
        print(f"[{time.strftime('%H:%M:%S')}] {name}", flush=True)
        row = measure(dataset, preset, topology, training, args.epochs, args.seed)
        row.update(name=name, command=command(preset, topology, args.epochs))
        rows.append(row)
        print(json.dumps(row), flush=True)
        (out / "ablation.json").write_text(json.dumps(rows, indent=2) + "\n")
        (out / "ablation.md").write_text(markdown(rows))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
