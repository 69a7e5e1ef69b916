"""The default preset's ablation: each lever added to the paper's model in turn, and each
removed from the default, trained and evaluated on the same data in one process.

Usage::

    python scripts/ablation.py --data fmnist6 --epochs 5 --out docs/results/ablation

writes ``ablation.md`` and ``ablation.json`` into ``--out``: per configuration the local
and cloud accuracy (every sample exiting there), the rule that calibrated T on the
validation split and that T, the share of test samples exiting locally there, the overall
accuracy and the bytes per device per sample there, the worst drop of overall accuracy
when any single device fails (``ddnn evaluate --fail k``, k = 0..D-1, at the same T) and
the training time. Every row is the command line given in the table. A row that differs
from an earlier one only in its calibration rule reuses that row's trained model (the
training is the same; only the rule that picks T differs) and re-calibrates it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

_PAPER_PLUS = {"summary_bits": 4, "cloud_precision": "float", "cloud_units": 256}
_PREVIOUS_DEFAULT = ({"local_agg": "max"}, {"upper_epochs": 0, "calibrate": "accuracy"})
#: The rule the ablation's rows were calibrated with, the default's until risk:0.5 (which
#: certifies the same T on the default's model, row 8).
_WITHIN = {"calibrate": "within:0.25"}

#: (name, preset, topology overrides, training overrides), in the table's order.
ROWS: list[tuple[str, str, dict, dict]] = [
    ("paper (MP-CC, f = 4)", "paper", {}, {}),
    ("+ 4-bit summary", "paper", {"summary_bits": 4}, {}),
    ("+ float dense cloud", "paper", dict(_PAPER_PLUS), {}),
    ("+ device dropout 0.15", "paper", {**_PAPER_PLUS, "device_dropout": 0.15}, {}),
    ("+ lr 3e-3 cosine, batch 256 (the earlier default)", "default", *_PREVIOUS_DEFAULT),
    (
        "+ T with the most local exits within 0.25 points",
        "default",
        {"local_agg": "max"},
        {"upper_epochs": 0, **_WITHIN},
    ),
    ("+ learned local aggregator (mlp, 256)", "default", {}, {"upper_epochs": 0, **_WITHIN}),
    ("+ 5 epochs of the upper tiers = default", "default", {}, dict(_WITHIN)),
    ("default, max pooling local aggregator", "default", {"local_agg": "max"}, dict(_WITHIN)),
    (
        "default, concat + linear local aggregator",
        "default",
        {"local_agg": "concat"},
        dict(_WITHIN),
    ),
    ("default, most accurate T", "default", {}, {"calibrate": "accuracy"}),
    ("default, float32 summary", "default", {"summary_bits": 0}, dict(_WITHIN)),
    ("default, no device dropout", "default", {"device_dropout": 0.0}, dict(_WITHIN)),
]

_FLAGS = {
    "summary_bits": "--summary-bits",
    "cloud_precision": "--cloud-precision",
    "cloud_units": "--cloud-units",
    "cloud_filters": "--cloud-filters",
    "device_dropout": "--device-dropout",
    "device_grid": "--device-grid",
    "local_agg": "--local-agg",
    "local_units": "--local-units",
    "upper_epochs": "--upper-epochs",
    "calibrate": "--calibrate",
}


def command(preset: str, topology: dict, training: dict, epochs: int) -> str:
    """The ``ddnn train`` command line of a row."""
    parts = [f"ddnn train --data fmnist6 --preset {preset} --epochs {epochs}"]
    for key, value in {**topology, **training}.items():
        text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
        parts.append(f"{_FLAGS[key]} {text}")
    return " ".join(parts)


def _training_key(topology, config) -> str:
    """What the trained weights depend on: everything but the calibration rule."""
    from dataclasses import asdict

    settings = {k: v for k, v in asdict(config).items() if k != "calibrate"}
    return json.dumps([topology.to_dict(), settings], sort_keys=True, default=str)


def measure(dataset, topology, config, *, trained=None):
    """Train one configuration (or take ``trained``: ``(run, seconds)`` of the same
    training) and evaluate it at the T its rule calibrates; returns the row's figures."""
    from ddnn_tf.keras.evaluate import evaluate_run
    from ddnn_tf.keras.train import train

    if trained is None:
        start = time.perf_counter()
        run = train(dataset, topology, config, verbose=0)  # calibrates with config.calibrate
        seconds = time.perf_counter() - start
        at = evaluate_run(run, dataset)
    else:  # the same weights, another rule: calibrate again
        run, seconds = trained
        at = evaluate_run(run, dataset, calibrate=config.calibrate)
    threshold = at["thresholds"]["local"]
    drops = [
        at["accuracy"]["overall"]
        - evaluate_run(run, dataset, threshold=threshold, fail=k)["accuracy"]["overall"]
        for k in range(topology.num_devices)
    ]
    return run, {
        "calibrate": config.calibrate,
        "local": at["accuracy"]["local"],
        "cloud": at["accuracy"]["cloud"],
        "threshold": threshold,
        "local_exits": at["exit_fraction"]["local"],
        "overall": at["accuracy"]["overall"],
        "bytes": at["bytes_per_device"],
        "fault_drops": drops,
        "worst_fault_drop": max(drops),
        "train_seconds": seconds,
        "epoch_seconds": run.history["epoch_seconds"],
        "upper_epoch_seconds": run.history.get("upper_epoch_seconds", []),
    }


def markdown(rows: list[dict]) -> str:
    """The ablation table and its commands."""
    head = (
        "| configuration | local | cloud | rule | T | local exits | overall at T | bytes "
        "| worst single-device failure | training |\n"
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for r in rows:
        seconds = f"{r['train_seconds']:.0f} s"
        if r.get("same_model_as"):
            seconds = f"row {r['same_model_as']}'s model"
        lines.append(
            f"| {r['name']} | {100 * r['local']:.2f} % | {100 * r['cloud']:.2f} % | "
            f"`{r['calibrate']}` | {r['threshold']:.1f} | {100 * r['local_exits']:.1f} % | "
            f"{100 * r['overall']:.2f} % | {r['bytes']:.1f} B | "
            f"−{100 * r['worst_fault_drop']:.2f} points | {seconds} |"
        )
    commands = "\n".join(f"{i + 1}. `{r['command']}`" for i, r in enumerate(rows))
    return (
        head
        + "\n".join(lines)
        + "\n\nCommands (then `ddnn evaluate RUN [--fail k]`):\n\n"
        + commands
        + "\n"
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
    from ddnn_tf.keras.presets import preset_config, preset_topology

    dataset = load_dataset(args.data, seed=args.seed)
    chosen = range(len(ROWS))
    if args.rows:
        chosen = [int(i) - 1 for i in args.rows.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, trained = [], {}
    for i in chosen:
        name, preset, topology, training = ROWS[i]
        print(f"[{time.strftime('%H:%M:%S')}] {name}", flush=True)
        t = preset_topology(dataset, preset, **topology)
        config = preset_config(preset, epochs=args.epochs, seed=args.seed, **training)
        key = _training_key(t, config)
        earlier = trained.get(key)
        run, row = measure(dataset, t, config, trained=None if earlier is None else earlier[1:])
        if earlier is None:
            trained[key] = (i + 1, run, row["train_seconds"])
        else:
            row["same_model_as"] = earlier[0]
        row.update(name=name, command=command(preset, topology, training, args.epochs))
        rows.append(row)
        print(json.dumps(row), flush=True)
        (out / "ablation.json").write_text(json.dumps(rows, indent=2) + "\n")
        (out / "ablation.md").write_text(markdown(rows))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
