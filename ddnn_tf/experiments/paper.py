"""The paper's five experiments (Section IV): Tables I-II and Figures 7-10.

Each ``<name>_experiment(lab)`` takes the :class:`~ddnn_tf.experiments.Lab` that trains
and caches the models, and returns an :class:`~ddnn_tf.experiments.ExperimentResult`:
the rows of its table, its markdown, plot and key figures. Nothing is written here.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ddnn_tf.errors import ConfigError
from ddnn_tf.experiments.lab import Lab
from ddnn_tf.experiments.report import (
    Column,
    ExperimentResult,
    assemble,
    figure,
    finish_axes,
    markdown_table,
    paired_bars,
    pct,
)

__all__ = [
    "EXPERIMENTS",
    "RUNNERS",
    "TABLE_I",
    "TABLE_II",
    "THRESHOLD_GRID",
    "aggregation_experiment",
    "device_memory_bytes",
    "fault_sets",
    "faults_experiment",
    "filters_experiment",
    "scaling_experiment",
    "threshold_experiment",
]

#: Two-letter scheme codes of Table I.
SCHEME_CODES = {"MP": "max", "AP": "avg", "CC": "concat"}

#: Table I (MVMC): scheme -> (local accuracy %, cloud accuracy %), in the paper's order.
TABLE_I: dict[str, tuple[float, float]] = {
    "MP-MP": (95, 91),
    "MP-CC": (98, 98),
    "AP-AP": (86, 98),
    "AP-CC": (75, 96),
    "CC-CC": (85, 94),
    "AP-MP": (88, 93),
    "MP-AP": (89, 97),
    "CC-MP": (77, 87),
    "CC-AP": (80, 94),
}

#: Table II (MVMC, f = 4): T -> (local exit %, overall accuracy %, bytes per device).
TABLE_II: dict[float, tuple[float, float, float]] = {
    0.1: (0.00, 96, 140),
    0.3: (0.58, 96, 139),
    0.5: (1.75, 96, 138),
    0.6: (2.92, 96, 136),
    0.7: (22.81, 96, 111),
    0.8: (60.82, 97, 62),
    0.9: (83.04, 96, 34),
    1.0: (100.00, 92, 12),
}

#: Thresholds of the threshold experiment: 0 to 1 in steps of 0.05 (a superset of Table II).
THRESHOLD_GRID: tuple[float, ...] = tuple(
    sorted({round(0.05 * i, 2) for i in range(21)} | set(TABLE_II))
)


# ----------------------------------------------------------------------------- shared
def _summary_row(result: dict[str, Any]) -> dict[str, Any]:
    """The common columns of an evaluate_run result."""
    acc, frac = result["accuracy"], result["exit_fraction"]
    return {
        "local_accuracy": acc.get("local"),
        "cloud_accuracy": acc["cloud"],
        "overall_accuracy": acc["overall"],
        "local_exit_fraction": frac.get("local"),
        "bytes_per_device": result["bytes_per_device"],
    }


# ----------------------------------------------------------------------------- aggregation
AGGREGATION_COLUMNS = [
    Column("scheme", "Scheme"),
    Column("local_agg", "Local agg."),
    Column("cloud_agg", "Cloud agg."),
    Column("local_accuracy", "Local acc. (%)", "pct"),
    Column("cloud_accuracy", "Cloud acc. (%)", "pct"),
    Column("overall_accuracy", "Overall acc. at T (%)", "pct"),
    Column("local_exit_fraction", "Local exit at T (%)", "pct"),
    Column("bytes_per_device", "Bytes / device", "num"),
    Column("paper_local_accuracy", "Paper local (%)", "paper"),
    Column("paper_cloud_accuracy", "Paper cloud (%)", "paper"),
]


def aggregation_experiment(lab: Lab) -> ExperimentResult:
    """Table I: local and cloud accuracy of the 9 local x cloud aggregation schemes."""
    rows = []
    for i, (scheme, paper) in enumerate(TABLE_I.items()):
        local, cloud = (SCHEME_CODES[c] for c in scheme.split("-"))
        label = f"[aggregation {i + 1}/{len(TABLE_I)}] {scheme}"
        run, data = lab.model(
            local_agg=local, cloud_agg=cloud, epochs=lab.settings.sweep, label=label
        )
        row = {"scheme": scheme, "local_agg": local, "cloud_agg": cloud}
        row.update(_summary_row(lab.evaluate(run, data)))
        row.update(paper_local_accuracy=paper[0], paper_cloud_accuracy=paper[1])
        lab.log(f"{label}: local {pct(row['local_accuracy'])}, cloud {pct(row['cloud_accuracy'])}")
        rows.append(row)

    by_cloud = sorted(rows, key=lambda r: -r["cloud_accuracy"])
    by_local = sorted(rows, key=lambda r: -r["local_accuracy"])
    mpcc = next(r for r in rows if r["scheme"] == "MP-CC")
    key = {
        "ranking_by_cloud": [r["scheme"] for r in by_cloud],
        "ranking_by_local": [r["scheme"] for r in by_local],
        "mp_cc": {"local": mpcc["local_accuracy"], "cloud": mpcc["cloud_accuracy"]},
        "best_cloud": {"scheme": by_cloud[0]["scheme"], "accuracy": by_cloud[0]["cloud_accuracy"]},
        "best_local": {"scheme": by_local[0]["scheme"], "accuracy": by_local[0]["local_accuracy"]},
    }
    highlights = [
        f"MP-CC: local {pct(mpcc['local_accuracy'])}, cloud {pct(mpcc['cloud_accuracy'])} "
        f"(paper, MVMC: 98% / 98%).",
        "Ranking by cloud accuracy: " + " > ".join(key["ranking_by_cloud"]) + ".",
        "Ranking by local accuracy: " + " > ".join(key["ranking_by_local"]) + ".",
    ]

    fig, ax = figure(width=8.5)
    paired_bars(
        ax,
        [r["scheme"] for r in rows],
        [
            ([r["local_accuracy"] for r in rows], "Local", "tab:red"),
            ([r["cloud_accuracy"] for r in rows], "Cloud", "tab:blue"),
        ],
    )
    ax.set_title(f"Aggregation schemes (local-cloud), {lab.dataset.name} — cf. Table I")

    return assemble(
        lab,
        "aggregation",
        "Aggregation schemes",
        "Aggregation schemes (Table I)",
        sweep=True,
        intro="Local and cloud accuracy are each over the whole test split (every sample exits "
        f"there); overall accuracy, local exit and bytes are at T = {lab.settings.threshold}. "
        "MP = max pooling, AP = average pooling, CC = concatenation; the first pair is the "
        "local aggregator, the second the cloud aggregator.",
        columns=AGGREGATION_COLUMNS,
        rows=rows,
        key=key,
        highlights=highlights,
        fig=fig,
    )


# ----------------------------------------------------------------------------- threshold
THRESHOLD_COLUMNS = [
    Column("threshold", "T", "t"),
    Column("local_exit_fraction", "Local exit (%)", "pct"),
    Column("overall_accuracy", "Overall acc. (%)", "pct"),
    Column("bytes_per_device", "Comm. (B)", "num"),
    Column("communication_reduction", "Reduction vs raw (x)", "num"),
    Column("paper_local_exit", "Paper local exit (%)", "paper"),
    Column("paper_overall_accuracy", "Paper overall (%)", "paper"),
    Column("paper_bytes", "Paper comm. (B)", "paper"),
]


def threshold_experiment(lab: Lab) -> ExperimentResult:
    """Table II and Figure 7: local exit, overall accuracy and bytes as T goes 0 -> 1."""
    from ddnn_tf.core.cost.traffic import hierarchy_bytes
    from ddnn_tf.core.exits import threshold_sweep
    from ddnn_tf.keras.train import predict_exits

    run = lab.default()
    data = lab.dataset
    raw = list(data.raw_bytes_per_device)
    lab.log(f"[threshold] sweeping {len(THRESHOLD_GRID)} thresholds")
    sweep = threshold_sweep(
        predict_exits(run.ddnn, data.test.x),
        data.test.y,
        THRESHOLD_GRID,
        bytes_fn=lambda f: hierarchy_bytes(run.topology, f, raw_bytes_per_device=raw)[
            "bytes_per_device"
        ],
    )
    raw_mean = float(np.mean(raw))
    rows = []
    for r in sweep:
        t = round(float(r["threshold"]), 2)
        paper = TABLE_II.get(t, (None, None, None))
        rows.append(
            {
                "threshold": t,
                "local_exit_fraction": r["exit_fraction"]["local"],
                "overall_accuracy": r["accuracy_overall"],
                "bytes_per_device": r["bytes_per_device"],
                "communication_reduction": raw_mean / r["bytes_per_device"],
                "paper_local_exit": paper[0],
                "paper_overall_accuracy": paper[1],
                "paper_bytes": paper[2],
            }
        )
    at = lab.evaluate(run)  # the chosen T, through the library's own evaluation
    best = max(rows, key=lambda r: (round(r["overall_accuracy"], 12), r["threshold"]))
    max_bytes = max(r["bytes_per_device"] for r in rows)
    calibrated = run.thresholds.get("local")
    cal = lab.evaluate(run, threshold=calibrated) if calibrated is not None else None
    t = lab.settings.threshold
    key = {
        "threshold": t,
        "local_exit_fraction": at["exit_fraction"]["local"],
        "overall_accuracy": at["accuracy"]["overall"],
        "local_accuracy": at["accuracy"]["local"],
        "cloud_accuracy": at["accuracy"]["cloud"],
        "bytes_per_device": at["bytes_per_device"],
        "raw_bytes_per_device": at["raw_bytes_per_device"],
        "communication_reduction": at["communication_reduction"],
        "max_bytes_per_device": max_bytes,
        "max_reduction": raw_mean / max_bytes,
        "best_test_threshold": best["threshold"],
        "best_test_accuracy": best["overall_accuracy"],
        "calibrated_threshold": calibrated,
        "calibrated_overall_accuracy": None if cal is None else cal["accuracy"]["overall"],
        "calibrated_local_exit_fraction": None if cal is None else cal["exit_fraction"]["local"],
    }
    highlights = [
        f"T = {t}: {pct(key['local_exit_fraction'])} exit locally, overall accuracy "
        f"{pct(key['overall_accuracy'])} (local {pct(key['local_accuracy'])}, cloud "
        f"{pct(key['cloud_accuracy'])}), {key['bytes_per_device']:.1f} B per device per sample: "
        f"{key['communication_reduction']:.1f}x less than sending the raw "
        f"{key['raw_bytes_per_device']:.0f} B (paper: 60.82%, 97%, 62 B of 3072 B).",
        f"Even at T = 0 (everything offloaded) a device sends {max_bytes:.1f} B: "
        f"{key['max_reduction']:.1f}x less than raw (paper: at most 140 B against 3072 B raw, over 20x).",
        f"Best overall accuracy on the test split: T = {best['threshold']:.2f} "
        f"({pct(best['overall_accuracy'])}).",
    ]
    if cal is not None:
        highlights.append(
            f"T searched on the validation split at training: {calibrated:.2f} -> test overall "
            f"{pct(key['calibrated_overall_accuracy'])}, {pct(key['calibrated_local_exit_fraction'])} local exit."
        )

    fig = _threshold_figure(rows, t, max_bytes, lab.dataset.name)
    table_ii = [r for r in rows if r["threshold"] in TABLE_II]
    return assemble(
        lab,
        "threshold",
        "Exit threshold",
        "Exit threshold (Table II, Figure 7)",
        sweep=False,
        intro="The default model (MP-CC, f = 4). Local exit = share of test samples whose local "
        "normalized entropy is <= T; overall accuracy = local exit for those, cloud exit for "
        "the rest; Comm. = the paper's cost formula, bytes per end device per sample "
        "(float32 class summary + bit-packed features when offloaded).",
        columns=THRESHOLD_COLUMNS,
        rows=rows,
        key=key,
        highlights=highlights,
        fig=fig,
        tables=["## Table II thresholds\n\n" + markdown_table(THRESHOLD_COLUMNS, table_ii)],
        appendix=[
            "## Every threshold (0 to 1 in steps of 0.05)\n\n"
            + markdown_table(THRESHOLD_COLUMNS[:5], rows)
        ],
    )


def _threshold_figure(rows: list[dict], t: float, max_bytes: float, dataset: str):
    """Figure 7: overall accuracy, local exit and bytes per device against T (chosen T
    marked)."""
    fig, ax = figure()
    ts = [r["threshold"] for r in rows]
    overall = [100 * r["overall_accuracy"] for r in rows]
    ax.plot(ts, overall, "o-", color="tab:blue", label="Overall accuracy")
    local = [100 * r["local_exit_fraction"] for r in rows]
    ax.plot(ts, local, "s--", color="tab:green", label="Local exit")
    ax.axvline(t, color="grey", lw=0.8, ls=":")
    finish_axes(
        ax,
        None,
        xlabel="Local exit threshold T",
        ylabel="%",
        ylim=(0, 100),
        title=f"Exit threshold, {dataset} — cf. Figure 7 / Table II",
    )
    ax2 = ax.twinx()
    bytes_ = [r["bytes_per_device"] for r in rows]
    ax2.plot(ts, bytes_, "^-", color="tab:red", label="Bytes per device")
    ax2.set(ylabel="Bytes per device per sample", ylim=(0, 1.1 * max_bytes))
    lines = ax.get_lines()[:2] + ax2.get_lines()
    ax.legend(lines, [ln.get_label() for ln in lines], loc="center left")
    return fig


# ----------------------------------------------------------------------------- scaling
SCALING_COLUMNS = [
    Column("num_devices", "Devices", "int"),
    Column("added_device", "Added device", "int"),
    Column("added_name", "Name"),
    Column("devices", "Devices used"),
    Column("individual_accuracy", "Individual (%)", "pct"),
    Column("local_accuracy", "Local (%)", "pct"),
    Column("cloud_accuracy", "Cloud (%)", "pct"),
    Column("overall_accuracy", "Overall at T (%)", "pct"),
    Column("local_exit_fraction", "Local exit at T (%)", "pct"),
    Column("bytes_per_device", "Bytes / device", "num"),
]


def scaling_experiment(lab: Lab) -> ExperimentResult:
    """Figure 8: accuracy as devices are added, worst individual accuracy first."""
    individual = lab.individual()
    order = sorted(range(len(individual)), key=lambda d: (individual[d], d))
    rows = []
    for k in range(1, len(order) + 1):
        devices = order[:k]
        label = f"[scaling {k}/{len(order)}] devices {devices}"
        run, data = lab.model(devices=devices, epochs=lab.settings.sweep, label=label)
        added = order[k - 1]
        row = {
            "num_devices": k,
            "added_device": added,
            "added_name": lab.dataset.device_names[added],
            "devices": list(devices),
            "individual_accuracy": individual[added],
        }
        row.update(_summary_row(lab.evaluate(run, data)))
        lab.log(
            f"{label}: local {pct(row['local_accuracy'])}, cloud {pct(row['cloud_accuracy'])}, overall {pct(row['overall_accuracy'])}"
        )
        rows.append(row)

    full = rows[-1]
    best_ind = max(individual)
    key = {
        "order": order,
        "individual_accuracy": individual,
        "overall_all_devices": full["overall_accuracy"],
        "cloud_all_devices": full["cloud_accuracy"],
        "local_all_devices": full["local_accuracy"],
        "gain_over_best_individual": full["overall_accuracy"] - best_ind,
        "overall_by_devices": [r["overall_accuracy"] for r in rows],
    }
    highlights = [
        f"Individual accuracy ranges {pct(min(individual))} to {pct(best_ind)} "
        f"(paper: under 40% to over 70%).",
        f"With all {len(order)} devices: local {pct(full['local_accuracy'])}, cloud "
        f"{pct(full['cloud_accuracy'])}, overall {pct(full['overall_accuracy'])}: "
        f"{100 * key['gain_over_best_individual']:+.2f} points over the best single device "
        f"(paper: over 20 points).",
    ]
    if len(rows) >= 3:
        change = rows[-3]["overall_accuracy"] - rows[-1]["overall_accuracy"]
        cloud = rows[-3]["cloud_accuracy"] - rows[-1]["cloud_accuracy"]
        key["change_all_to_minus_two"] = {"overall": change, "cloud": cloud}
        highlights.append(
            f"Going from {len(rows)} to {len(rows) - 2} devices changes overall accuracy by "
            f"{100 * change:+.2f} points and cloud accuracy by {100 * cloud:+.2f} points "
            "(paper: 6 -> 4 devices, -4 points overall)."
        )

    fig, ax = figure()
    x = np.arange(1, len(rows) + 1)
    for column, label, style in (
        ("individual_accuracy", "Individual", "o:"),
        ("local_accuracy", "Local", "s-"),
        ("cloud_accuracy", "Cloud", "^-"),
        ("overall_accuracy", f"Overall (T={lab.settings.threshold})", "D--"),
    ):
        ax.plot(x, [100 * r[column] for r in rows], style, label=label)
    ax.set_xticks(x, [f"+{r['added_device']}\n({r['num_devices']})" for r in rows])
    finish_axes(
        ax,
        xlabel="Device added (number of devices)",
        ylabel="Accuracy (%)",
        title=f"Scaling across end devices, {lab.dataset.name} — cf. Figure 8",
    )

    return assemble(
        lab,
        "scaling",
        "Scaling across devices",
        "Scaling across end devices (Figure 8)",
        sweep=True,
        intro="First each device's individual model (one ConvP block + FC exit, trained alone) "
        "is trained and tested on the whole test split. Devices are then sorted by that "
        "accuracy, worst first, and for k = 1..D a fresh MP-CC DDNN is trained on the first "
        'k devices only. "Individual" is the accuracy of the device added at that step.',
        columns=SCALING_COLUMNS,
        rows=rows,
        key=key,
        highlights=highlights,
        fig=fig,
    )


# ----------------------------------------------------------------------------- filters
FILTERS_COLUMNS = [
    Column("device_filters", "Filters f", "int"),
    Column("device_memory_bytes", "Device memory (B)", "int"),
    Column("threshold", "T (val)", "t"),
    Column("local_exit_fraction", "Local exit (%)", "pct"),
    Column("local_accuracy", "Local (%)", "pct"),
    Column("cloud_accuracy", "Cloud (%)", "pct"),
    Column("overall_accuracy", "Overall (%)", "pct"),
    Column("bytes_per_device", "Comm. (B)", "num"),
]


def device_memory_bytes(ddnn, device: int = 0) -> int:
    """Memory of a device tier's parameters: binary kernels at 1 bit, the rest at 4 bytes.

    Larq layers with a kernel quantizer store their kernel as bits (``size / 8`` bytes);
    every other weight (batch-norm gamma, beta, moving mean and variance, any bias) is
    a float32.

    Args:
        ddnn: a built :class:`~ddnn_tf.keras.model.DDNN`.
        device: which device tier.

    Returns:
        Bytes, the bits rounded up to whole bytes.
    """
    bits = 0
    floats = 0
    for layer in ddnn.devices[device].layers:
        binary = getattr(layer, "kernel_quantizer", None) is not None
        for weight in layer.weights:
            size = int(np.prod(weight.shape))
            if binary and weight is getattr(layer, "kernel", None):
                bits += size
            else:
                floats += size
    return math.ceil(bits / 8) + 4 * floats


def _threshold_for_local_fraction(run, data, target: float) -> float:
    """T such that ``target`` of the validation samples exit locally (entropy quantile)."""
    from ddnn_tf.core.exits import normalized_entropy
    from ddnn_tf.keras.train import predict_exits

    probs = predict_exits(run.ddnn, data.val.x)
    eta = normalized_entropy(probs["local"])
    return float(np.clip(np.quantile(eta, target), 0.0, 1.0))


def filters_experiment(lab: Lab) -> ExperimentResult:
    """Figure 9: accuracy, bytes and device memory as device filters grow.

    Raises:
        ValueError: a dataset whose devices are not images (no ConvP blocks).
    """
    if not all(len(s) == 3 for s in lab.dataset.input_shapes):
        raise ConfigError(
            "The filters experiment needs image devices (ConvP blocks); this dataset has "
            f"input shapes {lab.dataset.input_shapes}."
        )
    target = lab.settings.local_exit_target
    use_val = len(lab.dataset.val) > 0
    rows = []
    for f in range(1, lab.settings.max_filters + 1):
        label = f"[filters {f}/{lab.settings.max_filters}] f={f}"
        run, data = lab.model(device_filters=f, epochs=lab.settings.sweep, label=label)
        t = _threshold_for_local_fraction(run, data, target) if use_val else lab.settings.threshold
        row = {
            "device_filters": f,
            "device_memory_bytes": device_memory_bytes(run.ddnn),
            "threshold": t,
        }
        row.update(_summary_row(lab.evaluate(run, data, threshold=t)))
        lab.log(
            f"{label}: T={t:.3f}, local exit {pct(row['local_exit_fraction'])}, overall {pct(row['overall_accuracy'])}"
        )
        rows.append(row)

    gains = [r["overall_accuracy"] - r["local_accuracy"] for r in rows]
    picked = ("device_filters", "overall_accuracy", "local_accuracy", "bytes_per_device")
    key = {
        "local_exit_target": target,
        "overall_minus_local": gains,
        "mean_overall_minus_local": float(np.mean(gains)),
        "max_device_memory_bytes": max(r["device_memory_bytes"] for r in rows),
        "rows": [{k: r[k] for k in picked} for r in rows],
    }
    per_f = ", ".join(f"f={r['device_filters']}: {100 * g:+.2f}" for r, g in zip(rows, gains))
    highlights = [
        f"Offloading ~{100 * (1 - target):.0f}% of samples to the cloud raises accuracy over the "
        f"local exit by {100 * key['mean_overall_minus_local']:.2f} points on average "
        f"({per_f}; paper: ~5 points).",
        f"Device memory (binary weights at 1 bit, batch norm at 4 bytes): at most "
        f"{key['max_device_memory_bytes']} B (paper: under 2 KB).",
    ]
    if not use_val:
        highlights.append(f"No validation split: T = {lab.settings.threshold} was used instead.")

    fig, ax = figure()
    x = np.arange(len(rows))
    ax2 = ax.twinx()
    bytes_ = [r["bytes_per_device"] for r in rows]
    bars = ax2.bar(x, bytes_, 0.35, color="tab:grey", alpha=0.35, label="Comm. (B)")
    ax2.set(ylabel="Bytes per device per sample")
    for column, label, style in (
        ("local_accuracy", "Local", "s-"),
        ("cloud_accuracy", "Cloud", "^-"),
        ("overall_accuracy", "Overall", "D--"),
    ):
        ax.plot(x, [100 * r[column] for r in rows], style, label=label)
    ax.set_zorder(ax2.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.set_xticks(x, [f"f={r['device_filters']}\n{r['device_memory_bytes']} B" for r in rows])
    finish_axes(
        ax,
        None,
        xlabel="Device filters (device memory)",
        ylabel="Accuracy (%)",
        title=f"Device filters, {lab.dataset.name} — cf. Figure 9",
    )
    handles = [*ax.get_lines(), bars]
    ax.legend(handles, [h.get_label() for h in handles], loc="lower right")

    return assemble(
        lab,
        "filters",
        "Device filters",
        "Device filters (Figure 9)",
        sweep=True,
        intro=f"For each f the local threshold T is the {100 * target:.0f}% quantile of the "
        "local exit's normalized entropy on the validation split, so that ~"
        f"{100 * target:.0f}% of samples exit locally (the paper's setting for Figure 9); the "
        "test split's local exit share is shown. Device memory counts one device tier's "
        "parameters: Larq binary kernels at 1 bit, batch-norm parameters (gamma, beta, "
        "moving mean, moving variance) at 4 bytes.",
        columns=FILTERS_COLUMNS,
        rows=rows,
        key=key,
        highlights=highlights,
        fig=fig,
    )


# ----------------------------------------------------------------------------- faults
FAULTS_COLUMNS = [
    Column("kind", "Kind"),
    Column("num_failed", "Failed", "int"),
    Column("failed_devices", "Failed devices"),
    Column("failed_names", "Names"),
    Column("individual_accuracy", "Individual (%)", "pct"),
    Column("overall_accuracy", "Overall (%)", "pct"),
    Column("cloud_accuracy", "Cloud (%)", "pct"),
    Column("local_accuracy", "Local (%)", "pct"),
    Column("local_exit_fraction", "Local exit (%)", "pct"),
    Column("overall_drop", "Overall drop (points)", "pts"),
    Column("bytes_per_device", "Bytes / live device", "num"),
]

FAULTS_BY_K_COLUMNS = [
    Column("num_failed", "Failed devices", "int"),
    Column("sets", "Sets evaluated", "int"),
    Column("overall_mean", "Overall mean (%)", "pct"),
    Column("overall_min", "Overall min (%)", "pct"),
    Column("overall_max", "Overall max (%)", "pct"),
    Column("cloud_mean", "Cloud mean (%)", "pct"),
    Column("cloud_min", "Cloud min (%)", "pct"),
]


def fault_sets(num_devices: int, max_sets: int, seed: int) -> list[tuple[int, ...]]:
    """Failure sets of 2..D-1 devices, smallest first.

    Args:
        num_devices: D.
        max_sets: per size, all subsets when there are at most this many, otherwise
            this many distinct subsets drawn at random.
        seed: seed of the random draws.

    Returns:
        The sets, each a sorted tuple of device indices.
    """
    rng = np.random.default_rng([seed, 10])
    sets: list[tuple[int, ...]] = []
    for k in range(2, num_devices):
        combos = list(itertools.combinations(range(num_devices), k))
        if len(combos) > max_sets:
            pick = sorted(rng.choice(len(combos), size=max_sets, replace=False))
            combos = [combos[i] for i in pick]
        sets.extend(combos)
    return sets


def faults_experiment(lab: Lab) -> ExperimentResult:
    """Figure 10: the default model with failed devices (their messages never arrive)."""
    from tqdm.auto import tqdm

    run = lab.default()
    d = lab.dataset.num_devices
    names = lab.dataset.device_names
    individual = lab.individual() if lab.has_individual else None
    cases = (
        [()] + [(i,) for i in range(d)] + fault_sets(d, lab.settings.fault_sets, lab.settings.seed)
    )
    lab.log(f"[faults] evaluating {len(cases)} failure sets")
    rows = []
    for failed in tqdm(cases, desc="faults", disable=not lab.settings.verbose, leave=False):
        result = lab.evaluate(run, fail=list(failed) or None)
        one = len(failed) == 1
        row = {
            "kind": "none" if not failed else "single" if one else "multi",
            "num_failed": len(failed),
            "failed_devices": list(failed),
            "failed_names": [names[i] for i in failed],
            "individual_accuracy": individual[failed[0]] if individual and one else None,
        }
        row.update(_summary_row(result))
        rows.append(row)
    base = rows[0]["overall_accuracy"]
    for row in rows:
        row["overall_drop"] = 100 * (base - row["overall_accuracy"])

    single = [r for r in rows if r["kind"] == "single"]
    worst = max(single, key=lambda r: r["overall_drop"])
    by_k = _by_failed_count(rows)
    key = {
        "overall_no_failure": base,
        "worst_single": {
            "device": worst["failed_devices"][0],
            "overall": worst["overall_accuracy"],
            "drop_points": worst["overall_drop"],
        },
        "mean_single_drop_points": float(np.mean([r["overall_drop"] for r in single])),
        "min_single_overall": min(r["overall_accuracy"] for r in single),
        "cloud_no_failure": rows[0]["cloud_accuracy"],
        "single_cloud_range": [
            min(r["cloud_accuracy"] for r in single),
            max(r["cloud_accuracy"] for r in single),
        ],
        "by_num_failed": by_k,
    }
    highlights = _faults_highlights(key, worst, single, individual)
    fig = _faults_figure(single, base, by_k, lab.dataset.name)
    hidden = {"kind", "num_failed", "failed_devices"}
    if individual is None:
        hidden.add("individual_accuracy")
    single_columns = [
        Column("failed_devices", "Failed device"),
        *(c for c in FAULTS_COLUMNS if c.key not in hidden),
    ]
    s = lab.settings
    return assemble(
        lab,
        "faults",
        "Fault tolerance",
        "Fault tolerance (Figure 10)",
        sweep=False,
        intro=f"One trained default model (MP-CC, f = 4), evaluated at T = {s.threshold} "
        "with failed devices: their messages never arrive, so the local max pooling runs "
        "over the live devices and the cloud concatenation gets zeros in the failed slots. "
        "No retraining. For 2..D-1 failed devices every subset is evaluated when there are "
        f"at most {s.fault_sets}, otherwise {s.fault_sets} distinct subsets drawn at random "
        f"(seed {s.seed}); every set is a row of faults.csv.",
        columns=FAULTS_COLUMNS,
        rows=rows,
        key=key,
        highlights=highlights,
        fig=fig,
        tables=[
            "## One device failed\n\n" + markdown_table(single_columns, [rows[0], *single]),
            "## By number of failed devices\n\n" + markdown_table(FAULTS_BY_K_COLUMNS, by_k),
        ],
    )


def _faults_highlights(key: dict, worst: dict, single: list[dict], individual) -> list[str]:
    """The faults experiment's highlights (``key`` gains the drop of the best individual
    device, when there are individual baselines)."""
    highlights = [
        f"No failure: overall {pct(key['overall_no_failure'])}. With any one device failed "
        f"overall accuracy stays >= {pct(key['min_single_overall'])}; the worst is device {worst['failed_devices'][0]} "
        f"({worst['failed_names'][0]}): {-worst['overall_drop']:+.2f} points; mean change "
        f"{-key['mean_single_drop_points']:+.2f} points (paper: over 95% for any single failure, "
        "at most a 3-point drop).",
        f"The cloud exit alone: {pct(key['cloud_no_failure'])} without failure, "
        f"{pct(key['single_cloud_range'][0])} to {pct(key['single_cloud_range'][1])} with one "
        "device failed.",
    ]
    if individual is not None:
        best = int(np.argmax(individual))
        drop = next(r["overall_drop"] for r in single if r["failed_devices"][0] == best)
        key["drop_best_individual_failed"] = drop
        highlights.append(
            f"Failing the best individual device ({best}): {-drop:+.2f} points overall."
        )
    if len(key["by_num_failed"]) > 2:
        highlights.append(
            "Mean overall accuracy by number of failed devices: "
            + ", ".join(
                f"{g['num_failed']}: {pct(g['overall_mean'])}" for g in key["by_num_failed"]
            )
            + "."
        )
    return highlights


def _by_failed_count(rows: list[dict]) -> list[dict]:
    """The faults experiment's rows summarised per number of failed devices (the rows are
    ordered by it)."""
    by_k = []
    for k, group in itertools.groupby(rows, key=lambda r: r["num_failed"]):
        o, c = zip(*((r["overall_accuracy"], r["cloud_accuracy"]) for r in group))
        by_k.append(
            {
                "num_failed": k,
                "sets": len(o),
                "overall_mean": float(np.mean(o)),
                "overall_min": float(np.min(o)),
                "overall_max": float(np.max(o)),
                "cloud_mean": float(np.mean(c)),
                "cloud_min": float(np.min(c)),
            }
        )
    return by_k


def _faults_figure(single: list[dict], base: float, by_k: list[dict], dataset: str):
    """Figure 10: accuracy with one device failed, and by number of failed devices."""
    fig, (ax, ax2) = figure(ncols=2, width=10)
    paired_bars(
        ax,
        [str(r["failed_devices"][0]) for r in single],
        [
            ([r["overall_accuracy"] for r in single], "Overall", "tab:purple"),
            ([r["cloud_accuracy"] for r in single], "Cloud", "tab:blue"),
        ],
        reference=(base, "Overall, no failure"),
    )
    ax.set(xlabel="Failed device", title="One device failed — cf. Figure 10")
    ks = [g["num_failed"] for g in by_k]
    overall_mean = [100 * g["overall_mean"] for g in by_k]
    ax2.plot(ks, overall_mean, "D-", color="tab:purple", label="Overall (mean)")
    ax2.fill_between(
        ks,
        [100 * g["overall_min"] for g in by_k],
        [100 * g["overall_max"] for g in by_k],
        color="tab:purple",
        alpha=0.2,
        label="Overall (min-max)",
    )
    cloud_mean = [100 * g["cloud_mean"] for g in by_k]
    ax2.plot(ks, cloud_mean, "^-", color="tab:blue", label="Cloud (mean)")
    finish_axes(
        ax2,
        "lower left",
        xticks=ks,
        xlabel="Number of failed devices",
        ylabel="Accuracy (%)",
        title=f"Several devices failed, {dataset}",
    )
    return fig


#: Experiment name -> the function that runs it, in the paper's order.
RUNNERS: dict[str, Callable[[Lab], ExperimentResult]] = {
    "aggregation": aggregation_experiment,
    "threshold": threshold_experiment,
    "scaling": scaling_experiment,
    "filters": filters_experiment,
    "faults": faults_experiment,
}

#: Experiment names, in the paper's order.
EXPERIMENTS = tuple(RUNNERS)
