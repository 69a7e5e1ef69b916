"""Beyond the paper: overall accuracy against bytes per device, over the exit threshold.

``ddnn experiments pareto --data fmnist6`` trains the paper's model and the
toolkit's default (``ddnn_tf.keras.presets.PRESETS``) and sweeps T from 0 to 1 on the test split:
each T is one point (bytes per device per sample, overall accuracy). Not part of
``all``, which stays the paper's experiments.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ddnn_tf.experiments.lab import Lab
from ddnn_tf.experiments.report import (
    Column,
    ExperimentResult,
    assemble,
    figure,
    finish_axes,
    pct,
)

__all__ = ["PARETO_COLUMNS", "PARETO_GRID", "pareto_experiment", "pareto_front"]

#: Thresholds of the sweep: 0 to 1 in steps of 0.05.
PARETO_GRID = [round(0.05 * i, 2) for i in range(21)]
PARETO_COLUMNS = [
    Column("preset", "Model"),
    Column("threshold", "T", "t"),
    Column("local_exit_fraction", "Local exit (%)", "pct"),
    Column("overall_accuracy", "Overall acc. (%)", "pct"),
    Column("bytes_per_device", "Bytes / device", "num"),
    Column("pareto", "On the front"),
]
_PRESETS = ("paper", "default")


def pareto_front(points: list[tuple[float, float]]) -> list[bool]:
    """Which (bytes, accuracy) points no other point beats (fewer or equal bytes and a
    higher accuracy, or fewer bytes and an equal accuracy)."""
    flags = []
    for b, a in points:
        beaten = any(
            (b2 <= b and a2 > a) or (b2 < b and a2 >= a) for b2, a2 in points if (b2, a2) != (b, a)
        )
        flags.append(not beaten)
    return flags


def pareto_experiment(lab: Lab) -> ExperimentResult:
    """Accuracy vs bytes per device over T for the paper preset and the default."""
    from ddnn_tf.core.cost.traffic import hierarchy_bytes
    from ddnn_tf.core.exits import threshold_sweep
    from ddnn_tf.keras.train import predict_exits

    data = lab.dataset
    raw = list(data.raw_bytes_per_device)
    rows: list[dict[str, Any]] = []
    key: dict[str, Any] = {}
    highlights = []
    for name in _PRESETS:
        run = lab.preset(name)
        topology = run.topology
        lab.log(f"[pareto] sweeping the {name} preset")
        sweep = threshold_sweep(
            predict_exits(run.ddnn, data.test.x),
            data.test.y,
            PARETO_GRID,
            bytes_fn=lambda f, t=topology: hierarchy_bytes(
                t, f, raw_bytes_per_device=raw, summary_encoding=t.summary_encoding
            )["bytes_per_device"],
        )
        points = [(r["bytes_per_device"], r["accuracy_overall"]) for r in sweep]
        front = pareto_front(points)
        for r, on in zip(sweep, front):
            rows.append(
                {
                    "preset": name,
                    "threshold": round(float(r["threshold"]), 2),
                    "local_exit_fraction": r["exit_fraction"]["local"],
                    "overall_accuracy": r["accuracy_overall"],
                    "bytes_per_device": r["bytes_per_device"],
                    "pareto": "yes" if on else "",
                }
            )
        at = lab.evaluate(run, threshold=None)  # the run's calibrated T
        best = max(points, key=lambda p: p[1])
        within20 = [a for b, a in points if b <= 20.0]
        key[name] = {
            "calibrated_threshold": at["thresholds"].get("local"),
            "calibrate": run.config.calibrate,
            "local_exit_fraction": at["exit_fraction"].get("local"),
            "overall_accuracy": at["accuracy"]["overall"],
            "bytes_per_device": at["bytes_per_device"],
            "local_accuracy": at["accuracy"].get("local"),
            "cloud_accuracy": at["accuracy"]["cloud"],
            "best_accuracy": best[1],
            "best_accuracy_bytes": best[0],
            "best_accuracy_within_20_bytes": max(within20) if within20 else None,
        }
        k = key[name]
        highlights.append(
            f"{name}: at the calibrated T = {k['calibrated_threshold']} ({k['calibrate']}) "
            f"{pct(k['local_exit_fraction'])} of the samples exit locally, overall "
            f"{pct(k['overall_accuracy'])} with {k['bytes_per_device']:.1f} B per device "
            f"(cloud {pct(k['cloud_accuracy'])}); best over T {pct(best[1])} at {best[0]:.1f} B"
            + (
                f"; best within 20 B {pct(k['best_accuracy_within_20_bytes'])}."
                if within20
                else "; no T within 20 B."
            )
        )

    fig = _pareto_figure(rows, key, data.name)
    return assemble(
        lab,
        "pareto",
        "Accuracy vs bytes",
        "Accuracy vs bytes per device (paper preset and default)",
        sweep=False,
        intro="Each row is one exit threshold T on the test split: the share of samples that "
        "exit locally, the overall accuracy, and the bytes an end device sends per sample "
        "(its class summary in the model's wire encoding, float32 for the paper and int4 "
        "for the default, plus its bit-packed features when the sample goes to the cloud). "
        "'On the front': no other T of the same model is both cheaper and more accurate. "
        "The settings line above is the paper preset's; the default preset trains with its "
        "own (a learned local aggregator, Adam 3e-3 with a cosine decay, batch 256, then 5 "
        "epochs of the upper tiers on the frozen devices, T calibrated by risk:0.5, the most "
        "local exits whose accuracy drop against all-cloud is certified to stay under 0.5 "
        "points with probability 0.9; see Training in the docs).",
        columns=PARETO_COLUMNS,
        rows=rows,
        key=key,
        highlights=highlights,
        fig=fig,
    )


def _pareto_figure(rows: list[dict], key: dict, dataset: str):
    """Accuracy against bytes per device over T, per preset, its calibrated T starred and
    the local-exit share along the curve."""
    fig, ax = figure()
    styles = {"paper": ("s--", "tab:grey"), "default": ("o-", "tab:blue")}
    for name in _PRESETS:
        pts = sorted(
            (r["bytes_per_device"], 100 * r["overall_accuracy"])
            for r in rows
            if r["preset"] == name
        )
        style, color = styles[name]
        ax.plot(*np.array(pts).T, style, color=color, label=f"{name} preset", ms=4)
        k = key[name]
        ax.plot(
            k["bytes_per_device"],
            100 * k["overall_accuracy"],
            "*",
            color=color,
            ms=14,
            label=f"{name}: calibrated T = {k['calibrated_threshold']:.2f}, "
            f"{100 * k['local_exit_fraction']:.1f} % local exits",
        )
        labelled = None  # the local-exit share along the curve, every 0.2 of T, apart
        for r in rows:
            at_step = round(r["threshold"] * 100) % 20 == 0
            if r["preset"] == name and at_step:
                share = r["local_exit_fraction"]
                if labelled is not None and abs(share - labelled) < 0.1:
                    continue  # too close to the previous label to read
                labelled = share
                ax.annotate(
                    f"{100 * r['local_exit_fraction']:.0f} %",
                    (r["bytes_per_device"], 100 * r["overall_accuracy"]),
                    textcoords="offset points",
                    xytext=(4, -10),
                    fontsize=7,
                    color=color,
                )
    ax.axvline(20, color="tab:red", lw=0.8, ls=":", label="20 B")
    finish_axes(
        ax,
        "center",
        xlabel="Bytes per device per sample",
        ylabel="Overall accuracy (%)",
        title=f"Accuracy vs communication over T, {dataset} (labels: share of local exits)",
    )
    return fig
