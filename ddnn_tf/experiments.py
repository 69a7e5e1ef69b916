"""The paper's evaluation (Section IV): Tables I-II and Figures 7-10 as tables and plots.

``python -m ddnn_tf.experiments EXPERIMENT --data fmnist6 --out results/NAME`` with
EXPERIMENT one of ``aggregation, threshold, scaling, filters, faults`` (or several,
comma separated) or ``all``. Each experiment writes, when it has finished::

    <exp>.md    a markdown table (with the paper's MVMC numbers beside ours where the
                paper prints them: Tables I and II)
    <exp>.csv   the same rows for machines (accuracies and exit fractions in [0, 1],
                bytes per end device per sample)
    <exp>.png   the plot (matplotlib, Agg canvas)

and a run of several experiments (or ``all``) adds ``summary.md`` / ``summary.json``
with the key figures and the exact command. What each experiment does:

* ``aggregation`` (Table I): one DDNN per local x cloud scheme (MP-MP, MP-CC, AP-AP,
  AP-CC, CC-CC, AP-MP, MP-AP, CC-MP, CC-AP); local and cloud accuracy.
* ``threshold`` (Table II, Figure 7): the default MP-CC model at T = 0, 0.05, ..., 1:
  local exit fraction, overall accuracy, bytes per device.
* ``scaling`` (Figure 8): individual baselines per device; devices sorted by individual
  accuracy, worst first; for k = 1..D a DDNN trained on the first k devices.
* ``filters`` (Figure 9): device filters f = 1..max_filters; T chosen on the validation
  split so that ~75% of samples exit locally; accuracy, bytes and device memory.
* ``faults`` (Figure 10): the default model with each single device failed, and with
  2..D-1 failed devices (all subsets, or a seeded random sample of them).

Trained models are shared where the paper's experiment allows: the default MP-CC model
(all devices, f = 4) serves ``threshold`` and ``faults``, and is the MP-CC entry of
``aggregation``, the f = 4 entry of ``filters`` and the k = D entry of ``scaling`` when
those are trained for as many epochs (``--sweep-epochs`` unset or equal to ``--epochs``).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
import math
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ddnn_tf._cli import cli
from ddnn_tf.exits import PAPER_THRESHOLD

__all__ = [
    "EXPERIMENTS",
    "TABLE_I",
    "TABLE_II",
    "ExperimentResult",
    "ExperimentSettings",
    "Lab",
    "device_memory_bytes",
    "fault_sets",
    "markdown_table",
    "parse_experiments",
    "run_experiment",
    "run_experiments",
    "subset_devices",
    "write_result",
]

#: Experiment names, in the paper's order.
EXPERIMENTS = ("aggregation", "threshold", "scaling", "filters", "faults")

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

#: Section IV-F: "we configure the local exit threshold T such that around 75% of samples
#: are exited locally".
LOCAL_EXIT_TARGET = 0.75

_DATA_NOTE = (
    "Our numbers are on `{data}`; the paper's are on MVMC (6 cameras, 3 classes, 680/171 "
    "samples, 100 epochs). The data differ, so compare trends, not values."
)


def _data_note(name: str) -> str:
    if name == "mvmc":
        return "The paper's data (MVMC); the paper trained every model for 100 epochs."
    note = _DATA_NOTE.format(data=name)
    if name == "synthetic":
        note += " `synthetic` is generated data for tests and demos, not a measurement."
    return note


# ----------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class ExperimentSettings:
    """Options shared by every experiment, validated once.

    Args:
        epochs: training epochs of the default model (MP-CC, all devices, f = 4).
        sweep_epochs: epochs of the models the sweeps train (aggregation schemes,
            scaling subsets and individual baselines, filter counts); None = ``epochs``.
        batch_size: training batch size.
        seed: seed of training and of the random device-failure sets.
        threshold: T of every "overall" accuracy (the paper's 0.8).
        max_filters: the filters experiment trains f = 1..max_filters.
        fault_sets: for each number k of failed devices (2..D-1), evaluate every subset
            when there are at most this many, else a seeded random sample of this many.
        local_exit_target: fraction of validation samples the filters experiment exits
            locally (the paper's ~75%).
        verbose: 0 silent, 1 progress lines, 2 also Keras' per-epoch lines.
    """

    epochs: int = 5
    sweep_epochs: int | None = None
    batch_size: int = 128
    seed: int = 0
    threshold: float = PAPER_THRESHOLD
    max_filters: int = 4
    fault_sets: int = 10
    local_exit_target: float = LOCAL_EXIT_TARGET
    verbose: int = 1

    def __post_init__(self) -> None:
        for name, low in (
            ("epochs", 1),
            ("batch_size", 1),
            ("max_filters", 1),
            ("fault_sets", 1),
            ("seed", 0),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                flag = name.replace("_", "-")
                raise ValueError(f"--{flag} must be an integer >= {low}, got {value!r}.")
        if self.sweep_epochs is not None and (
            isinstance(self.sweep_epochs, bool)
            or not isinstance(self.sweep_epochs, (int, np.integer))
            or self.sweep_epochs < 1
        ):
            raise ValueError(
                f"--sweep-epochs must be an integer >= 1 (or unset), got {self.sweep_epochs!r}."
            )
        if not 0.0 <= float(self.threshold) <= 1.0:
            raise ValueError(f"--threshold must be in [0, 1], got {self.threshold!r}.")
        if not 0.0 < float(self.local_exit_target) < 1.0:
            raise ValueError(
                f"--local-exit-target must be in (0, 1), got {self.local_exit_target!r}."
            )

    @property
    def sweep(self) -> int:
        """Epochs of the sweep models."""
        return int(self.sweep_epochs or self.epochs)


# ----------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Column:
    """A table column: row key, header, and how the markdown shows it."""

    key: str
    header: str
    kind: str = "str"  # "pct" (fraction shown as %), "num" (1 decimal), "int", "str", "paper"


@dataclass
class ExperimentResult:
    """What one experiment produced; :func:`write_result` writes it.

    Attributes:
        name: the experiment (``"faults"``).
        title: the heading of its markdown file.
        columns: the CSV columns, in order.
        rows: one dict per row (keys of ``columns``).
        markdown: the whole markdown document.
        png: the plot, PNG bytes.
        key: key figures (JSON-able) for the summary.
        highlights: one-line statements of the key figures for the summary.
        seconds: wall time of the experiment.
    """

    name: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    markdown: str
    png: bytes
    key: dict[str, Any] = field(default_factory=dict)
    highlights: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def csv_text(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow([c.key for c in self.columns])
        for row in self.rows:
            writer.writerow([_csv_value(row.get(c.key)) for c in self.columns])
        return buf.getvalue()


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ";".join(str(v) for v in value)
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.8g}"
    return str(value)


def _md_value(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if kind == "pct":
        return f"{100 * float(value):.2f}"
    if kind == "num":
        return f"{float(value):.1f}"
    if kind == "pts":
        return f"{float(value):+.2f}"
    if kind == "paper":
        return f"{float(value):g}"
    if kind == "int":
        return str(int(value))
    if kind == "t":
        return f"{float(value):.2f}"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) or "none"
    return str(value)


def markdown_table(columns: Sequence[Column], rows: Sequence[dict[str, Any]]) -> str:
    """A GitHub markdown table of ``rows``; numbers right-aligned."""
    head = "| " + " | ".join(c.header for c in columns) + " |"
    rule = "|" + "|".join("---" if c.kind == "str" else "---:" for c in columns) + "|"
    body = [
        "| " + " | ".join(_md_value(r.get(c.key), c.kind) for c in columns) + " |" for r in rows
    ]
    return "\n".join([head, rule, *body])


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _outputs(out: Path, name: str) -> list[Path]:
    return [out / f"{name}.{ext}" for ext in ("md", "csv", "png")]


def write_result(result: ExperimentResult, out: str | Path) -> list[Path]:
    """Write ``<name>.md``, ``<name>.csv`` and ``<name>.png`` into ``out``; return the paths.

    Each file is written to a temporary name and renamed, so a crash never leaves a
    half-written table.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    md, csv_path, png = _outputs(out, result.name)
    _atomic_write(csv_path, result.csv_text().encode())
    _atomic_write(png, result.png)
    _atomic_write(md, result.markdown.encode())
    return [md, csv_path, png]


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    return buf.getvalue()


def _figure(ncols: int = 1, width: float = 7.0, height: float = 4.2):
    # A bare Figure renders with the Agg canvas without touching pyplot's global backend.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols)
    return fig, axes


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


# ----------------------------------------------------------------------------- the lab
def subset_devices(dataset, devices: Sequence[int]):
    """A copy of ``dataset`` that keeps only the views of ``devices`` (in that order).

    The arrays are shared, not copied. The returned dataset's ``spec`` still reloads the
    full dataset (plus a ``devices`` note), so save no run trained on it as if it did.
    """
    from ddnn_tf.data import Split

    devices = [int(d) for d in devices]
    if not devices or any(not 0 <= d < dataset.num_devices for d in devices):
        raise ValueError(f"Expected device indices in 0..{dataset.num_devices - 1}, got {devices}.")

    def cut(split):
        return Split(
            x=tuple(split.x[d] for d in devices), y=split.y, present=split.present[:, devices]
        )

    return dataclasses.replace(
        dataset,
        train=cut(dataset.train),
        val=cut(dataset.val),
        test=cut(dataset.test),
        device_names=tuple(dataset.device_names[d] for d in devices),
        raw_bytes_per_device=tuple(dataset.raw_bytes_per_device[d] for d in devices),
        spec={**dataset.spec, "devices": devices},
    )


def device_memory_bytes(ddnn, device: int = 0) -> int:
    """Memory of a device tier's parameters: binary kernels at 1 bit, the rest at 4 bytes.

    Larq layers with a kernel quantizer store their kernel as bits (``size / 8`` bytes);
    every other weight (batch-norm gamma, beta, moving mean and variance, any bias) is
    a float32.
    """
    bits = 0
    floats = 0
    for layer in ddnn.tiers[f"device_{device}"].layers:
        binary = getattr(layer, "kernel_quantizer", None) is not None
        for weight in layer.weights:
            size = int(np.prod(weight.shape))
            if binary and weight is getattr(layer, "kernel", None):
                bits += size
            else:
                floats += size
    return math.ceil(bits / 8) + 4 * floats


class Lab:
    """Trains, caches and evaluates the models the experiments share.

    Args:
        dataset: the data (a :class:`~ddnn_tf.data.Dataset`).
        settings: the :class:`ExperimentSettings`.
        log: where progress lines go (default: print when ``settings.verbose``).
        train_fn: trains one DDNN, called as ``train_fn(dataset, topology, config,
            verbose=...)`` and returning a :class:`~ddnn_tf.train.Run`; default
            :func:`ddnn_tf.train.train`.
    """

    def __init__(
        self,
        dataset,
        settings: ExperimentSettings | None = None,
        *,
        log: Callable[[str], None] | None = None,
        train_fn: Callable[..., Any] | None = None,
    ):
        self.dataset = dataset
        self.settings = settings or ExperimentSettings()
        self._log = log
        self._train_fn = train_fn
        self._runs: dict[tuple, Any] = {}
        self._individual: list[float] | None = None
        self.trainings = 0
        self.start = time.perf_counter()

    def log(self, message: str) -> None:
        if self._log is not None:
            self._log(message)
        elif self.settings.verbose:
            elapsed = time.perf_counter() - self.start
            print(f"[{elapsed:7.1f}s] {message}", flush=True)

    @property
    def data_name(self) -> str:
        return self.dataset.name

    def _train_config(self, epochs: int):
        from ddnn_tf.train import TrainConfig

        return TrainConfig(
            epochs=int(epochs), batch_size=self.settings.batch_size, seed=self.settings.seed
        )

    def model(
        self,
        *,
        local_agg: str = "max",
        cloud_agg: str = "concat",
        device_filters: int = 4,
        devices: Sequence[int] | None = None,
        epochs: int | None = None,
        label: str = "",
    ):
        """The trained run of one configuration (trained on first use, then cached).

        Returns:
            ``(run, dataset)``: the run, and the dataset it was trained on (the lab's, or
            its subset of ``devices``).
        """
        from ddnn_tf.train import topology_for, train

        n = self.dataset.num_devices
        devices = tuple(range(n)) if devices is None else tuple(sorted(int(d) for d in devices))
        epochs = int(epochs or self.settings.epochs)
        key = (local_agg, cloud_agg, int(device_filters), devices, epochs)
        data = self.dataset if devices == tuple(range(n)) else subset_devices(self.dataset, devices)
        if key not in self._runs:
            topology = topology_for(
                data, local_agg=local_agg, cloud_agg=cloud_agg, device_filters=int(device_filters)
            )
            self.log(f"training {label or key} ({epochs} epochs, {len(data.train)} samples)")
            t0 = time.perf_counter()
            run = (self._train_fn or train)(
                data,
                topology,
                self._train_config(epochs),
                verbose=2 if self.settings.verbose >= 2 else 0,
            )
            self.trainings += 1
            self.log(f"  trained in {time.perf_counter() - t0:.0f}s")
            self._runs[key] = run
        return self._runs[key], data

    def default(self):
        """The paper's model: MP-CC, all devices, f = 4, ``settings.epochs`` epochs."""
        run, _ = self.model(label="default model MP-CC f=4")
        return run

    def individual(self) -> list[float]:
        """Test accuracy of each device's individual baseline (trained once)."""
        if self._individual is None:
            from ddnn_tf.train import topology_for, train_individual

            self.log(
                f"training {self.dataset.num_devices} individual baselines ({self.settings.sweep} epochs)"
            )
            t0 = time.perf_counter()
            result = train_individual(
                self.dataset,
                topology_for(self.dataset),
                self._train_config(self.settings.sweep),
                verbose=2 if self.settings.verbose >= 2 else 0,
            )
            self.trainings += self.dataset.num_devices
            self._individual = [float(a) for a in result["accuracy"]]
            self.log(
                f"  trained in {time.perf_counter() - t0:.0f}s: "
                + ", ".join(f"{a:.3f}" for a in self._individual)
            )
        return self._individual

    @property
    def has_individual(self) -> bool:
        return self._individual is not None

    def evaluate(self, run, data=None, **options) -> dict[str, Any]:
        from ddnn_tf.evaluate import evaluate_run

        options.setdefault("threshold", self.settings.threshold)
        return evaluate_run(run, data if data is not None else self.dataset, **options)


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


def _settings_line(lab: Lab, *, sweep: bool) -> str:
    s = lab.settings
    epochs = s.sweep if sweep else s.epochs
    ds = lab.dataset
    return (
        f"Data `{ds.name}`: {len(ds.train)} train / {len(ds.val)} val / {len(ds.test)} test samples, "
        f"{ds.num_devices} devices, {ds.num_classes} classes. Training: {epochs} epoch{'s' if epochs != 1 else ''}, "
        f"batch {s.batch_size}, Adam 1e-3, equal exit weights, seed {s.seed}. "
        f"Accuracies on the test split, in %."
    )


def _document(title: str, lab: Lab, *, sweep: bool, parts: Sequence[str]) -> str:
    note = _data_note(lab.data_name)
    body = "\n\n".join(p.strip("\n") for p in parts if p)
    return f"# {title}\n\n{_settings_line(lab, sweep=sweep)} {note}\n\n{body}\n"


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
        lab.log(
            f"{label}: local {_pct(row['local_accuracy'])}, cloud {_pct(row['cloud_accuracy'])}"
        )
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
        f"MP-CC: local {_pct(mpcc['local_accuracy'])}, cloud {_pct(mpcc['cloud_accuracy'])} "
        f"(paper, MVMC: 98% / 98%).",
        "Ranking by cloud accuracy: " + " > ".join(key["ranking_by_cloud"]) + ".",
        "Ranking by local accuracy: " + " > ".join(key["ranking_by_local"]) + ".",
    ]

    fig, ax = _figure(width=8.5)
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [100 * r["local_accuracy"] for r in rows], 0.4, label="Local", color="tab:red")
    ax.bar(x + 0.2, [100 * r["cloud_accuracy"] for r in rows], 0.4, label="Cloud", color="tab:blue")
    ax.set_xticks(x, [r["scheme"] for r in rows])
    ax.set_ylabel("Accuracy (%)")
    low = min(min(r["local_accuracy"], r["cloud_accuracy"]) for r in rows)
    ax.set_ylim(max(0.0, 100 * low - 10), 100)
    ax.set_title(f"Aggregation schemes (local-cloud), {lab.data_name} — cf. Table I")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=3, frameon=False)
    ax.grid(axis="y", alpha=0.3)

    t = lab.settings.threshold
    md = _document(
        "Aggregation schemes (Table I)",
        lab,
        sweep=True,
        parts=[
            "Local and cloud accuracy are each over the whole test split (every sample exits "
            f"there); overall accuracy, local exit and bytes are at T = {t}. MP = max pooling, "
            "AP = average pooling, CC = concatenation; the first pair is the local aggregator, "
            "the second the cloud aggregator.",
            markdown_table(AGGREGATION_COLUMNS, rows),
            "\n".join(f"- {h}" for h in highlights),
            "![aggregation](aggregation.png)",
        ],
    )
    return ExperimentResult(
        "aggregation",
        "Aggregation schemes",
        AGGREGATION_COLUMNS,
        rows,
        md,
        _png(fig),
        key,
        highlights,
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
    from ddnn_tf.comm import hierarchy_bytes
    from ddnn_tf.exits import threshold_sweep
    from ddnn_tf.train import predict_exits

    run = lab.default()
    data = lab.dataset
    topology = run.topology
    raw = list(data.raw_bytes_per_device)
    lab.log(f"[threshold] sweeping {len(THRESHOLD_GRID)} thresholds")
    probs = predict_exits(run.ddnn, data.test.x)
    sweep = threshold_sweep(
        probs,
        data.test.y,
        THRESHOLD_GRID,
        bytes_fn=lambda f: hierarchy_bytes(topology, f, raw_bytes_per_device=raw)[
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
        "max_bytes_per_device": max(r["bytes_per_device"] for r in rows),
        "max_reduction": raw_mean / max(r["bytes_per_device"] for r in rows),
        "best_test_threshold": best["threshold"],
        "best_test_accuracy": best["overall_accuracy"],
        "calibrated_threshold": calibrated,
        "calibrated_overall_accuracy": None if cal is None else cal["accuracy"]["overall"],
        "calibrated_local_exit_fraction": None if cal is None else cal["exit_fraction"]["local"],
    }
    highlights = [
        f"T = {t}: {_pct(key['local_exit_fraction'])} exit locally, overall accuracy "
        f"{_pct(key['overall_accuracy'])} (local {_pct(key['local_accuracy'])}, cloud "
        f"{_pct(key['cloud_accuracy'])}), {key['bytes_per_device']:.1f} B per device per sample: "
        f"{key['communication_reduction']:.1f}x less than sending the raw "
        f"{key['raw_bytes_per_device']:.0f} B (paper: 60.82%, 97%, 62 B of 3072 B).",
        f"Even at T = 0 (everything offloaded) a device sends {key['max_bytes_per_device']:.1f} B: "
        f"{key['max_reduction']:.1f}x less than raw (paper: at most 140 B against 3072 B raw, over 20x).",
        f"Best overall accuracy on the test split: T = {best['threshold']:.2f} "
        f"({_pct(best['overall_accuracy'])}).",
    ]
    if cal is not None:
        highlights.append(
            f"T searched on the validation split at training: {calibrated:.2f} -> test overall "
            f"{_pct(key['calibrated_overall_accuracy'])}, {_pct(key['calibrated_local_exit_fraction'])} local exit."
        )

    fig, ax = _figure()
    ts = [r["threshold"] for r in rows]
    ax.plot(
        ts,
        [100 * r["overall_accuracy"] for r in rows],
        "o-",
        color="tab:blue",
        label="Overall accuracy",
    )
    ax.plot(
        ts,
        [100 * r["local_exit_fraction"] for r in rows],
        "s--",
        color="tab:green",
        label="Local exit",
    )
    ax.axvline(t, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("Local exit threshold T")
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(
        ts, [r["bytes_per_device"] for r in rows], "^-", color="tab:red", label="Bytes per device"
    )
    ax2.set_ylabel("Bytes per device per sample")
    ax2.set_ylim(0, 1.1 * max(r["bytes_per_device"] for r in rows))
    lines = ax.get_lines()[:2] + ax2.get_lines()
    ax.legend(lines, [ln.get_label() for ln in lines], loc="center left")
    ax.set_title(f"Exit threshold, {lab.data_name} — cf. Figure 7 / Table II")

    table_ii = [r for r in rows if r["threshold"] in TABLE_II]
    md = _document(
        "Exit threshold (Table II, Figure 7)",
        lab,
        sweep=False,
        parts=[
            "The default model (MP-CC, f = 4). Local exit = share of test samples whose local "
            "normalized entropy is <= T; overall accuracy = local exit for those, cloud exit for "
            "the rest; Comm. = the paper's cost formula, bytes per end device per sample "
            "(float32 class summary + bit-packed features when offloaded).",
            "## Table II thresholds\n\n" + markdown_table(THRESHOLD_COLUMNS, table_ii),
            "\n".join(f"- {h}" for h in highlights),
            "![threshold](threshold.png)",
            "## Every threshold (0 to 1 in steps of 0.05)\n\n"
            + markdown_table(THRESHOLD_COLUMNS[:5], rows),
        ],
    )
    return ExperimentResult(
        "threshold", "Exit threshold", THRESHOLD_COLUMNS, rows, md, _png(fig), key, highlights
    )


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
            f"{label}: local {_pct(row['local_accuracy'])}, cloud {_pct(row['cloud_accuracy'])}, overall {_pct(row['overall_accuracy'])}"
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
        f"Individual accuracy ranges {_pct(min(individual))} to {_pct(best_ind)} "
        f"(paper: under 40% to over 70%).",
        f"With all {len(order)} devices: local {_pct(full['local_accuracy'])}, cloud "
        f"{_pct(full['cloud_accuracy'])}, overall {_pct(full['overall_accuracy'])}: "
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

    fig, ax = _figure()
    x = np.arange(1, len(rows) + 1)
    for k_, label, style in (
        ("individual_accuracy", "Individual", "o:"),
        ("local_accuracy", "Local", "s-"),
        ("cloud_accuracy", "Cloud", "^-"),
        ("overall_accuracy", f"Overall (T={lab.settings.threshold})", "D--"),
    ):
        ax.plot(x, [100 * r[k_] for r in rows], style, label=label)
    ax.set_xticks(x, [f"+{r['added_device']}\n({r['num_devices']})" for r in rows])
    ax.set_xlabel("Device added (number of devices)")
    ax.set_ylabel("Accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    ax.set_title(f"Scaling across end devices, {lab.data_name} — cf. Figure 8")

    md = _document(
        "Scaling across end devices (Figure 8)",
        lab,
        sweep=True,
        parts=[
            "First each device's individual model (one ConvP block + FC exit, trained alone) "
            "is trained and tested on the whole test split. Devices are then sorted by that "
            "accuracy, worst first, and for k = 1..D a fresh MP-CC DDNN is trained on the first "
            'k devices only. "Individual" is the accuracy of the device added at that step.',
            markdown_table(SCALING_COLUMNS, rows),
            "\n".join(f"- {h}" for h in highlights),
            "![scaling](scaling.png)",
        ],
    )
    return ExperimentResult(
        "scaling", "Scaling across devices", SCALING_COLUMNS, rows, md, _png(fig), key, highlights
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


def _threshold_for_local_fraction(run, data, target: float) -> float:
    """T such that ``target`` of the validation samples exit locally (entropy quantile)."""
    from ddnn_tf.exits import normalized_entropy
    from ddnn_tf.train import predict_exits

    probs = predict_exits(run.ddnn, data.val.x)
    eta = normalized_entropy(probs["local"])
    return float(np.clip(np.quantile(eta, target), 0.0, 1.0))


def filters_experiment(lab: Lab) -> ExperimentResult:
    """Figure 9: accuracy, bytes and device memory as device filters grow."""
    if not all(len(s) == 3 for s in lab.dataset.input_shapes):
        raise ValueError(
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
            f"{label}: T={t:.3f}, local exit {_pct(row['local_exit_fraction'])}, overall {_pct(row['overall_accuracy'])}"
        )
        rows.append(row)

    gains = [r["overall_accuracy"] - r["local_accuracy"] for r in rows]
    key = {
        "local_exit_target": target,
        "overall_minus_local": gains,
        "mean_overall_minus_local": float(np.mean(gains)),
        "max_device_memory_bytes": max(r["device_memory_bytes"] for r in rows),
        "rows": [
            {
                k: r[k]
                for k in (
                    "device_filters",
                    "overall_accuracy",
                    "local_accuracy",
                    "bytes_per_device",
                )
            }
            for r in rows
        ],
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

    fig, ax = _figure()
    x = np.arange(len(rows))
    ax2 = ax.twinx()
    bars = ax2.bar(
        x,
        [r["bytes_per_device"] for r in rows],
        0.35,
        color="tab:grey",
        alpha=0.35,
        label="Comm. (B)",
    )
    ax2.set_ylabel("Bytes per device per sample")
    for k_, label, style in (
        ("local_accuracy", "Local", "s-"),
        ("cloud_accuracy", "Cloud", "^-"),
        ("overall_accuracy", "Overall", "D--"),
    ):
        ax.plot(x, [100 * r[k_] for r in rows], style, label=label)
    ax.set_zorder(ax2.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.set_xticks(x, [f"f={r['device_filters']}\n{r['device_memory_bytes']} B" for r in rows])
    ax.set_xlabel("Device filters (device memory)")
    ax.set_ylabel("Accuracy (%)")
    ax.grid(alpha=0.3)
    handles = [*ax.get_lines(), bars]
    ax.legend(handles, [h.get_label() for h in handles], loc="lower right")
    ax.set_title(f"Device filters, {lab.data_name} — cf. Figure 9")

    how = (
        f"For each f the local threshold T is the {100 * target:.0f}% quantile of the local exit's "
        "normalized entropy on the validation split, so that ~"
        f"{100 * target:.0f}% of samples exit locally (the paper's setting for Figure 9); the "
        "test split's local exit share is shown. Device memory counts one device tier's "
        "parameters: Larq binary kernels at 1 bit, batch-norm parameters (gamma, beta, "
        "moving mean, moving variance) at 4 bytes."
    )
    md = _document(
        "Device filters (Figure 9)",
        lab,
        sweep=True,
        parts=[
            how,
            markdown_table(FILTERS_COLUMNS, rows),
            "\n".join(f"- {h}" for h in highlights),
            "![filters](filters.png)",
        ],
    )
    return ExperimentResult(
        "filters", "Device filters", FILTERS_COLUMNS, rows, md, _png(fig), key, highlights
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


def fault_sets(num_devices: int, max_sets: int, seed: int) -> list[tuple[int, ...]]:
    """Failure sets of 2..D-1 devices: all subsets of a size when there are at most
    ``max_sets``, otherwise ``max_sets`` distinct subsets drawn with ``seed``."""
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
        kind = "none" if not failed else "single" if len(failed) == 1 else "multi"
        row = {
            "kind": kind,
            "num_failed": len(failed),
            "failed_devices": list(failed),
            "failed_names": [names[i] for i in failed],
            "individual_accuracy": individual[failed[0]]
            if individual and len(failed) == 1
            else None,
        }
        row.update(_summary_row(result))
        rows.append(row)
    base = rows[0]["overall_accuracy"]
    for row in rows:
        row["overall_drop"] = 100 * (base - row["overall_accuracy"])

    single = [r for r in rows if r["kind"] == "single"]
    worst = max(single, key=lambda r: r["overall_drop"])
    by_k = []
    for k in range(0, d):
        group = [r for r in rows if r["num_failed"] == k]
        if group:
            o = [r["overall_accuracy"] for r in group]
            c = [r["cloud_accuracy"] for r in group]
            by_k.append(
                {
                    "num_failed": k,
                    "sets": len(group),
                    "overall_mean": float(np.mean(o)),
                    "overall_min": float(np.min(o)),
                    "overall_max": float(np.max(o)),
                    "cloud_mean": float(np.mean(c)),
                    "cloud_min": float(np.min(c)),
                }
            )
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
    highlights = [
        f"No failure: overall {_pct(base)}. With any one device failed overall accuracy stays "
        f">= {_pct(key['min_single_overall'])}; the worst is device {worst['failed_devices'][0]} "
        f"({worst['failed_names'][0]}): {-worst['overall_drop']:+.2f} points; mean change "
        f"{-key['mean_single_drop_points']:+.2f} points (paper: over 95% for any single failure, "
        "at most a 3-point drop).",
        f"The cloud exit alone: {_pct(key['cloud_no_failure'])} without failure, "
        f"{_pct(key['single_cloud_range'][0])} to {_pct(key['single_cloud_range'][1])} with one "
        "device failed.",
    ]
    if individual is not None:
        best = int(np.argmax(individual))
        drop = next(r["overall_drop"] for r in single if r["failed_devices"][0] == best)
        key["drop_best_individual_failed"] = drop
        highlights.append(
            f"Failing the best individual device ({best}): {-drop:+.2f} points overall."
        )
    if len(by_k) > 2:
        highlights.append(
            "Mean overall accuracy by number of failed devices: "
            + ", ".join(f"{g['num_failed']}: {_pct(g['overall_mean'])}" for g in by_k)
            + "."
        )

    fig, (ax, ax2) = _figure(ncols=2, width=10)
    x = np.arange(d)
    ax.bar(
        x - 0.2,
        [100 * r["overall_accuracy"] for r in single],
        0.4,
        label="Overall",
        color="tab:purple",
    )
    ax.bar(
        x + 0.2, [100 * r["cloud_accuracy"] for r in single], 0.4, label="Cloud", color="tab:blue"
    )
    ax.axhline(100 * base, color="k", ls="--", lw=0.8, label="Overall, no failure")
    ax.set_xticks(x, [str(i) for i in range(d)])
    ax.set_xlabel("Failed device")
    ax.set_ylabel("Accuracy (%)")
    low = min(min(r["overall_accuracy"], r["cloud_accuracy"]) for r in single)
    ax.set_ylim(max(0.0, 100 * low - 10), 100)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=3, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("One device failed — cf. Figure 10")
    ks = [g["num_failed"] for g in by_k]
    ax2.plot(
        ks,
        [100 * g["overall_mean"] for g in by_k],
        "D-",
        color="tab:purple",
        label="Overall (mean)",
    )
    ax2.fill_between(
        ks,
        [100 * g["overall_min"] for g in by_k],
        [100 * g["overall_max"] for g in by_k],
        color="tab:purple",
        alpha=0.2,
        label="Overall (min-max)",
    )
    ax2.plot(
        ks, [100 * g["cloud_mean"] for g in by_k], "^-", color="tab:blue", label="Cloud (mean)"
    )
    ax2.set_xticks(ks)
    ax2.set_xlabel("Number of failed devices")
    ax2.set_ylabel("Accuracy (%)")
    ax2.grid(alpha=0.3)
    ax2.legend(loc="lower left")
    ax2.set_title(f"Several devices failed, {lab.data_name}")

    by_k_columns = [
        Column("num_failed", "Failed devices", "int"),
        Column("sets", "Sets evaluated", "int"),
        Column("overall_mean", "Overall mean (%)", "pct"),
        Column("overall_min", "Overall min (%)", "pct"),
        Column("overall_max", "Overall max (%)", "pct"),
        Column("cloud_mean", "Cloud mean (%)", "pct"),
        Column("cloud_min", "Cloud min (%)", "pct"),
    ]
    single_columns = [
        c for c in FAULTS_COLUMNS if c.key not in ("kind", "num_failed", "failed_devices")
    ]
    single_columns.insert(0, Column("failed_devices", "Failed device"))
    if individual is None:
        single_columns = [c for c in single_columns if c.key != "individual_accuracy"]
    md = _document(
        "Fault tolerance (Figure 10)",
        lab,
        sweep=False,
        parts=[
            f"One trained default model (MP-CC, f = 4), evaluated at T = {lab.settings.threshold} "
            "with failed devices: their messages never arrive, so the local max pooling runs "
            "over the live devices and the cloud concatenation gets zeros in the failed slots. "
            "No retraining. For 2..D-1 failed devices every subset is evaluated when there are "
            f"at most {lab.settings.fault_sets}, otherwise {lab.settings.fault_sets} distinct "
            f"subsets drawn at random (seed {lab.settings.seed}); every set is a row of faults.csv.",
            "## One device failed\n\n" + markdown_table(single_columns, [rows[0], *single]),
            "## By number of failed devices\n\n" + markdown_table(by_k_columns, by_k),
            "\n".join(f"- {h}" for h in highlights),
            "![faults](faults.png)",
        ],
    )
    return ExperimentResult(
        "faults", "Fault tolerance", FAULTS_COLUMNS, rows, md, _png(fig), key, highlights
    )


# ----------------------------------------------------------------------------- driver
_RUNNERS: dict[str, Callable[[Lab], ExperimentResult]] = {
    "aggregation": aggregation_experiment,
    "threshold": threshold_experiment,
    "scaling": scaling_experiment,
    "filters": filters_experiment,
    "faults": faults_experiment,
}


def parse_experiments(experiment: str | Sequence[str]) -> list[str]:
    """``"all"``, one name or several (comma separated or a list) -> names in paper order.

    Raises:
        ValueError: an unknown name; the message lists the valid ones.
    """
    if isinstance(experiment, (list, tuple)):
        items = [str(e) for e in experiment]
    else:
        items = str(experiment).split(",")
    items = [e.strip() for e in items if e.strip()]
    valid = ", ".join((*EXPERIMENTS, "all"))
    if not items:
        raise ValueError(f"Expected an experiment name, one of {valid}. Received {experiment!r}.")
    unknown = [e for e in items if e not in (*EXPERIMENTS, "all")]
    if unknown:
        raise ValueError(
            f"Unknown experiment {unknown[0]!r}. Expected one of {valid} (or several, comma separated)."
        )
    if "all" in items:
        return list(EXPERIMENTS)
    return [e for e in EXPERIMENTS if e in items]


def run_experiment(name: str, lab: Lab) -> ExperimentResult:
    """Run one experiment on ``lab`` and return its result (nothing is written)."""
    (name,) = parse_experiments(name)
    t0 = time.perf_counter()
    result = _RUNNERS[name](lab)
    result.seconds = time.perf_counter() - t0
    return result


# Run order: the sweep that trains the default model's siblings first, so that the
# individual baselines (scaling) exist when faults annotates its single failures.
_RUN_ORDER = ("threshold", "aggregation", "filters", "scaling", "faults")


def run_experiments(
    experiments: str | Sequence[str],
    dataset,
    *,
    out: str | Path,
    settings: ExperimentSettings | None = None,
    command: str | None = None,
    lab: Lab | None = None,
) -> dict[str, ExperimentResult]:
    """Run experiments and write each one's files into ``out`` as soon as it finishes.

    Old files of the experiments about to run (and the summary) are removed first, so a
    crash leaves the finished experiments' files and nothing stale or half-written.
    With more than one experiment, ``summary.md`` and ``summary.json`` are written last.

    Args:
        experiments: ``"all"``, a name, or several (comma separated or a list).
        dataset: the data (:func:`~ddnn_tf.data.load_dataset`).
        out: output directory (created).
        settings: the :class:`ExperimentSettings`.
        command: the command line to record in the summary.
        lab: an existing :class:`Lab` (to share trained models); else a new one.

    Returns:
        Experiment name -> :class:`ExperimentResult`, in the paper's order.

    Example:
        >>> from ddnn_tf.data import load_dataset
        >>> ds = load_dataset("synthetic", train_limit=300)
        >>> results = run_experiments("faults", ds, out="results/quick",
        ...                           settings=ExperimentSettings(epochs=1, verbose=0))
        >>> sorted(results)
        ['faults']
    """
    names = parse_experiments(experiments)
    out = Path(out)
    lab = lab or Lab(dataset, settings)
    settings = lab.settings
    out.mkdir(parents=True, exist_ok=True)
    summary = len(names) > 1
    stale = [p for n in names for p in _outputs(out, n)]
    if summary:
        stale += [out / "summary.md", out / "summary.json"]
    for path in stale:
        path.unlink(missing_ok=True)
    results: dict[str, ExperimentResult] = {}
    start = time.perf_counter()
    for name in (n for n in _RUN_ORDER if n in names):
        lab.log(f"== {name} ==")
        results[name] = run_experiment(name, lab)
        for path in write_result(results[name], out):
            lab.log(f"wrote {path}")
        lab.log(f"== {name} done in {results[name].seconds:.0f}s ==")
    results = {n: results[n] for n in names}
    if summary:
        total = time.perf_counter() - start
        md, data = _summary(results, lab, command=command, seconds=total)
        _atomic_write(out / "summary.json", (json.dumps(data, indent=2) + "\n").encode())
        _atomic_write(out / "summary.md", md.encode())
        lab.log(f"wrote {out / 'summary.md'} ({total / 60:.1f} min, {lab.trainings} trainings)")
    return results


def _summary(
    results: dict[str, ExperimentResult], lab: Lab, *, command: str | None, seconds: float
):
    s = lab.settings
    ds = lab.dataset
    data = {
        "command": command,
        "dataset": ds.spec,
        "settings": dataclasses.asdict(s),
        "seconds": seconds,
        "trainings": lab.trainings,
        "experiments": {n: {"seconds": r.seconds, "key": r.key} for n, r in results.items()},
    }
    lines = [
        "# DDNN experiments: summary",
        "",
        f"Command: `{command}`"
        if command
        else "Run through `ddnn_tf.experiments.run_experiments`.",
        "",
        _settings_line(lab, sweep=False)
        + (
            f" Sweep models: {s.sweep} epochs."
            if s.sweep != s.epochs
            else " Every model: the same epochs; the default model (MP-CC, f = 4, all devices) "
            "is also the MP-CC entry of aggregation, the f = 4 entry of filters and the "
            "all-devices entry of scaling."
        )
        + f" Overall accuracy at T = {s.threshold}.",
        "",
        _data_note(ds.name),
        "",
        f"Wall time {seconds / 60:.1f} min for {lab.trainings} trainings "
        f"({', '.join(f'{n} {r.seconds / 60:.1f} min' for n, r in results.items())}).",
        "",
    ]
    for name, r in results.items():
        lines += [f"## {r.title} ([table]({name}.md), [csv]({name}.csv), [plot]({name}.png))", ""]
        lines += [f"- {h}" for h in r.highlights] + [""]
    return "\n".join(lines), _jsonable(data)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return value


# ----------------------------------------------------------------------------- CLI
def main(
    experiment: str,
    data: str = "fmnist6",
    out: str | None = None,
    path: str | None = None,
    epochs: int = 5,
    sweep_epochs: int | None = None,
    batch_size: int = 128,
    seed: int = 0,
    train_limit: int | None = None,
    test_limit: int | None = None,
    threshold: float = PAPER_THRESHOLD,
    max_filters: int = 4,
    fault_sets: int = 10,
    local_exit_target: float = LOCAL_EXIT_TARGET,
    verbose: int = 1,
    json: bool = False,  # noqa: A002  (the flag is --json)
) -> None:
    """Run the paper's experiments and write tables, CSVs and plots.

    Args:
        experiment: aggregation, threshold, scaling, filters, faults (comma separated
            for several) or all.
        data: dataset name (fmnist6, mvmc, npz, synthetic).
        out: output directory (default results/EXPERIMENT).
        path: data file or directory for file-based loaders.
        epochs: epochs of the default model (and of every model unless --sweep-epochs).
        sweep_epochs: epochs of the aggregation / scaling / filters models.
        train_limit: keep only the first N training samples (quick runs).
        test_limit: keep only the first N test samples (quick runs).
        threshold: T for overall accuracy (the paper's 0.8).
        max_filters: the filters experiment trains f = 1..N.
        fault_sets: random failure sets per number of failed devices (all when fewer).
        local_exit_target: local exit share the filters experiment aims for.
        verbose: 0 quiet, 1 progress lines, 2 also Keras epoch lines.
        json: print the key figures as one JSON object at the end.
    """
    names = parse_experiments(experiment)  # fail fast, before TensorFlow loads
    settings = ExperimentSettings(
        epochs=epochs,
        sweep_epochs=sweep_epochs,
        batch_size=batch_size,
        seed=seed,
        threshold=float(threshold),
        max_filters=max_filters,
        fault_sets=fault_sets,
        local_exit_target=float(local_exit_target),
        verbose=int(verbose),
    )
    from ddnn_tf.data import load_dataset

    name = "all" if len(names) == len(EXPERIMENTS) else ",".join(names)
    out = out or f"results/{name.replace(',', '_')}"
    dataset = load_dataset(data, path, seed=seed, train_limit=train_limit, test_limit=test_limit)
    command = "python -m ddnn_tf.experiments " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    results = run_experiments(names, dataset, out=out, settings=settings, command=command)
    if json:
        print(_json.dumps(_jsonable({n: r.key for n, r in results.items()}), indent=2))
    else:
        for r in results.values():
            print(f"{r.title}:")
            for h in r.highlights:
                print(f"  - {h}")
        print(f"wrote {out}")


_json = json

if __name__ == "__main__":
    cli(main)
