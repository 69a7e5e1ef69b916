"""What the experiments write: markdown tables, CSVs, PNG plots and the run's summary.

Every file is written to a temporary name and renamed, so a crash never leaves a
half-written table. These writers are numpy- and matplotlib-only (no TensorFlow).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ddnn_tf.experiments.lab import Lab

__all__ = [
    "Column",
    "ExperimentResult",
    "assemble",
    "figure",
    "finish_axes",
    "markdown_table",
    "outputs",
    "paired_bars",
    "pct",
    "png_bytes",
    "summary",
    "to_json",
    "write_result",
    "write_summary",
]

_DATA_NOTE = (
    "Our numbers are on `{data}`; the paper's are on MVMC (6 cameras, 3 classes, 680/171 "
    "samples, 100 epochs). The data differ, so compare trends, not values."
)
_NO_COMMAND = "Run through `ddnn_tf.experiments.run_experiments`."


@dataclass(frozen=True)
class Column:
    """A table column: row key, header, and how the markdown shows it."""

    key: str
    header: str
    kind: str = "str"  # "str" (left-aligned text) or a number kind of _MD_NUMBERS


@dataclass
class ExperimentResult:
    """What one experiment produced; :func:`write_result` writes it.

    Attributes:
        name: the experiment (``"faults"``).
        title: the heading of its section in the summary.
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
        """The rows as CSV: fractions in [0, 1], lists joined with ``;``."""
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


#: How each numeric column kind shows in markdown (the CSV keeps 8 significant digits).
_MD_NUMBERS = {
    "pct": lambda v: f"{100 * v:.2f}",  # a fraction, as %
    "num": lambda v: f"{v:.1f}",
    "num2": lambda v: f"{v:.2f}".replace("-0.00", "0.00"),
    "pts": lambda v: f"{v:+.2f}",  # signed percentage points
    "t": lambda v: f"{v:.2f}",  # a threshold
    "paper": lambda v: f"{v:g}",  # as the paper prints it
    "int": lambda v: str(int(v)),
}


def _md_value(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if kind in _MD_NUMBERS:
        return _MD_NUMBERS[kind](float(value))
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) or "none"
    return str(value)


def markdown_table(columns: Sequence[Column], rows: Sequence[dict[str, Any]]) -> str:
    """A GitHub markdown table of ``rows``; numbers right-aligned.

    Args:
        columns: the columns, in order; ``kind`` sets each cell's format.
        rows: one dict per row, keyed by ``Column.key`` (a missing key shows as "–").

    Returns:
        The table, without a trailing newline.
    """
    head = "| " + " | ".join(c.header for c in columns) + " |"
    rule = "|" + "|".join("---" if c.kind == "str" else "---:" for c in columns) + "|"
    body = [
        "| " + " | ".join(_md_value(r.get(c.key), c.kind) for c in columns) + " |" for r in rows
    ]
    return "\n".join([head, rule, *body])


# ----------------------------------------------------------------------------- files
def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def outputs(out: Path, name: str) -> list[Path]:
    """The files experiment ``name`` writes into ``out``: its .md, .csv and .png."""
    return [out / f"{name}.{ext}" for ext in ("md", "csv", "png")]


def write_result(result: ExperimentResult, out: str | Path) -> list[Path]:
    """Write ``<name>.md``, ``<name>.csv`` and ``<name>.png`` into ``out``.

    Each file is written to a temporary name and renamed, so a crash never leaves a
    half-written table. (Per file, not per directory: ``out`` holds the files of other
    experiments too, which a run of one experiment keeps.)

    Args:
        result: what the experiment produced.
        out: the output directory (created).

    Returns:
        The paths written: markdown, CSV, PNG.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    md, csv_path, png = outputs(out, result.name)
    _atomic_write(csv_path, result.csv_text().encode())
    _atomic_write(png, result.png)
    _atomic_write(md, result.markdown.encode())
    return [md, csv_path, png]


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def to_json(data: Any) -> str:
    """``data`` as indented JSON; numpy scalars become Python numbers."""
    return json.dumps(data, indent=2, default=_plain)


def write_summary(out: Path, markdown: str, data: dict[str, Any]) -> None:
    """Write ``summary.json`` and ``summary.md`` into ``out`` (atomically, in that order)."""
    _atomic_write(out / "summary.json", (to_json(data) + "\n").encode())
    _atomic_write(out / "summary.md", markdown.encode())


# ----------------------------------------------------------------------------- plots
def figure(ncols: int = 1, width: float = 7.0, height: float = 4.2):
    """A matplotlib figure and its axes (one row of ``ncols``)."""
    # A bare Figure renders with the Agg canvas without touching pyplot's global backend.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(1, ncols)


def finish_axes(ax, legend: str | None = "best", **props) -> None:
    """Set ``props`` (``xlabel``, ``ylabel``, ``title``...: ``Axes.set``), draw the plots'
    light grid and a legend at ``legend`` (None: none, or one drawn apart)."""
    ax.set(**props)
    ax.grid(alpha=0.3)
    if legend is not None:
        ax.legend(loc=legend)


def png_bytes(fig) -> bytes:
    """A matplotlib figure as PNG bytes (120 dpi)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    return buf.getvalue()


def paired_bars(ax, ticks, bars, reference: tuple[float, str] | None = None) -> None:
    """Two accuracy bars per tick; ``bars`` holds two ``(fractions, label, color)``."""
    x = np.arange(len(ticks))
    for offset, (values, label, color) in zip((-0.2, 0.2), bars):
        ax.bar(x + offset, [100 * v for v in values], 0.4, label=label, color=color)
    if reference is not None:
        ax.axhline(100 * reference[0], color="k", ls="--", lw=0.8, label=reference[1])
    ax.set_xticks(x, ticks)
    ax.set_ylabel("Accuracy (%)")
    low = min(min(values) for values, _, _ in bars)
    ax.set_ylim(max(0.0, 100 * low - 10), 100)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=3, frameon=False)
    ax.grid(axis="y", alpha=0.3)


# ----------------------------------------------------------------------------- markdown
def pct(x: float) -> str:
    """A fraction as a percentage with two decimals: ``0.9712 -> "97.12%"``."""
    return f"{100 * x:.2f}%"


def _data_note(name: str) -> str:
    if name == "mvmc":
        return "The paper's data (MVMC); the paper trained every model for 100 epochs."
    note = _DATA_NOTE.format(data=name)
    if name == "synthetic":
        note += " `synthetic` is generated data for tests and demos, not a measurement."
    return note


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
    intro = f"{_settings_line(lab, sweep=sweep)} {_data_note(lab.dataset.name)}"
    body = "\n\n".join(p.strip("\n") for p in parts if p)
    return f"# {title}\n\n{intro}\n\n{body}\n"


def assemble(
    lab: Lab,
    name: str,
    title: str,
    heading: str,
    *,
    sweep: bool,
    intro: str,
    columns: list[Column],
    rows: list[dict[str, Any]],
    key: dict[str, Any],
    highlights: list[str],
    fig,
    tables: Sequence[str] | None = None,
    appendix: Sequence[str] = (),
) -> ExperimentResult:
    """An experiment's result, with its markdown and PNG.

    The markdown: ``heading``, the data and training settings (``sweep``: of the sweep
    models), ``intro``, ``tables`` (default: ``rows`` in ``columns``), ``highlights`` as
    bullets, the plot, then ``appendix``. The other arguments are
    :class:`ExperimentResult`'s fields; ``fig`` is the matplotlib figure.
    """
    tables = [markdown_table(columns, rows)] if tables is None else tables
    bullets = "\n".join(f"- {h}" for h in highlights)
    parts = [intro, *tables, bullets, f"![{name}]({name}.png)", *appendix]
    md = _document(heading, lab, sweep=sweep, parts=parts)
    return ExperimentResult(name, title, columns, rows, md, png_bytes(fig), key, highlights)


def summary(
    results: dict[str, ExperimentResult], lab: Lab, *, command: str | None, seconds: float
) -> tuple[str, dict[str, Any]]:
    """The summary of a run of several experiments.

    Args:
        results: experiment name -> result, in the paper's order.
        lab: the :class:`Lab` they ran on.
        command: the command line to record (None: run from Python).
        seconds: wall time of the whole run.

    Returns:
        ``(markdown, data)``: ``summary.md`` and the ``summary.json`` object.
    """
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
    if s.sweep != s.epochs:
        models = f" Sweep models: {s.sweep} epochs."
    else:
        models = (
            " Every model: the same epochs; the default model (MP-CC, f = 4, all devices) "
            "is also the MP-CC entry of aggregation, the f = 4 entry of filters and the "
            "all-devices entry of scaling."
        )
    lines = [
        "# DDNN experiments: summary",
        "",
        f"Command: `{command}`" if command else _NO_COMMAND,
        "",
        _settings_line(lab, sweep=False) + models + f" Overall accuracy at T = {s.threshold}.",
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
    return "\n".join(lines), data
