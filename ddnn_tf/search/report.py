"""A search's results: the Pareto front as a table, JSON and a plot, beside reference runs.

The front holds the complete trials that meet every limit and that no other such trial
dominates on the objectives (Optuna's ``best_trials``). Each member's test accuracy is
computed here, after the search, from its run directory: the search itself only ever
sees the validation split. Reference runs (``--compare runs/default,runs/best``) are
evaluated on the same validation split and compiled for the same board, so the table
says which front members dominate them.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ddnn_tf.data import Dataset
from ddnn_tf.errors import ConfigError
from ddnn_tf.search.objectives import Limit, Metric, dominates
from ddnn_tf.search.study import counted

__all__ = [
    "FRONT_JSON",
    "FRONT_PLOT",
    "FRONT_TABLE",
    "SearchReport",
    "describe_params",
    "format_report",
    "front_row",
    "make_report",
    "reference_row",
    "write_report",
]

FRONT_JSON = "front.json"
FRONT_TABLE = "front.md"
FRONT_PLOT = "front.png"
_METRIC_KEYS = (
    "accuracy",
    "bytes_per_device",
    "flash_bytes",
    "ram_bytes",
    "energy_uj_per_sample",
    "latency_p95_ms",
    "local_exit_fraction",
)


@dataclass
class SearchReport:
    """What a search found, as ``--json`` prints it (:meth:`to_dict`).

    Attributes:
        study / storage: the study's name and its storage (password hidden).
        objectives: the objectives' names; ``limits`` the bounds as text.
        counts: trials by outcome (``trials``, ``feasible``, ``complete``, ``pruned``,
            ``rejected``, ``failed``, ``running``).
        front: one row per front member (:func:`front_row`), best accuracy first.
        references: one row per reference run (:func:`reference_row`).
        plot: the plot's path, if drawn.
        ran_here: the trials this worker ran.
        hardware: the board and, when trials are priced, the profiles, the rate and where
            each priced input comes from (:meth:`~ddnn_tf.search.hardware.SearchHardware.describe`).
    """

    study: str
    storage: str
    objectives: list[str]
    limits: list[str]
    counts: dict[str, int]
    front: list[dict[str, Any]]
    references: list[dict[str, Any]] = field(default_factory=list)
    plot: str | None = None
    ran_here: list[int] = field(default_factory=list)
    hardware: dict[str, Any] = field(default_factory=dict)

    @property
    def priced(self) -> bool:
        return "radio" in self.hardware

    def to_dict(self) -> dict[str, Any]:
        return {
            "trials": self.counts["trials"],
            "feasible": self.counts["feasible"],
            "front": self.front,
            "references": self.references,
            "counts": self.counts,
            "study": self.study,
            "storage": self.storage,
            "objectives": self.objectives,
            "limits": self.limits,
            "plot": self.plot,
            "ran_here": self.ran_here,
            "hardware": self.hardware,
        }


def _feasible(trial: FrozenTrial) -> bool:
    return all(v <= 0 for v in trial.constraints.values())


def _test_key(number: int) -> str:
    """The study attribute holding trial ``number``'s test figures (a finished trial's
    own attributes cannot change)."""
    return f"test_of_trial_{number}"


def front_row(trial: FrozenTrial, test: dict[str, Any] | None = None) -> dict[str, Any]:
    """A front member's row: its metrics (``None`` for what nothing measured), the
    per-device footprints, T, its test figures (once computed) and its params."""
    metrics = trial.user_attrs.get("metrics", {})
    row: dict[str, Any] = {"trial": trial.number}
    row.update({k: metrics.get(k) for k in _METRIC_KEYS})
    test = test or {}
    row.update(
        {
            "test_accuracy": test.get("accuracy"),
            "threshold": metrics.get("threshold"),
            "device_flash_bytes": trial.user_attrs.get("device_flash_bytes"),
            "device_ram_bytes": trial.user_attrs.get("device_ram_bytes"),
            "device_energy_uj": metrics.get("device_energy_uj"),
            "instructions_per_sample": metrics.get("instructions_per_sample"),
            "max_rate_hz": metrics.get("max_rate_hz"),
            "seconds": trial.user_attrs.get("seconds"),
            "params": dict(trial.user_attrs.get("choices", trial.params)),
            "run_dir": trial.user_attrs.get("run_dir"),
            "worker": trial.user_attrs.get("worker"),
        }
    )
    return row


def reference_row(
    name: str,
    metrics: dict[str, Any],
    front: Sequence[dict[str, Any]],
    objectives: Sequence[Metric],
) -> dict[str, Any]:
    """A reference run's row, with the front members that dominate it."""
    row = {"name": name, **{k: metrics.get(k) for k in _METRIC_KEYS}}
    row["threshold"] = metrics.get("threshold")
    row["dominated_by"] = [r["trial"] for r in front if dominates(r, metrics, objectives)]
    return row


def test_figures(trial: FrozenTrial, study: optuna.Study, dataset: Dataset) -> dict | None:
    """A front member's test figures: evaluated once, on the test split, from its run
    directory, and kept in the study; None when its run directory is on another machine."""
    key = _test_key(trial.number)
    if key in study.user_attrs:
        return study.user_attrs[key]
    run_dir = trial.user_attrs.get("run_dir")
    if not run_dir or not Path(run_dir).is_dir():
        return None
    from ddnn_tf.keras.evaluate import evaluate_run
    from ddnn_tf.keras.rundir import load_run

    evaluation = evaluate_run(load_run(run_dir), dataset, split="test")
    test = {
        "accuracy": float(evaluation["accuracy"]["overall"]),
        "bytes_per_device": float(evaluation["bytes_per_device"]),
        "local_exit_fraction": float(evaluation["exit_fraction"].get("local", 0.0)),
    }
    study.set_user_attr(key, test)
    return test


def _counts(trials: Sequence[FrozenTrial]) -> dict[str, int]:
    def n(pred) -> int:
        return sum(1 for t in trials if pred(t))

    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    return {
        "trials": n(lambda t: counted(t) and t.state != TrialState.RUNNING),
        "feasible": sum(1 for t in complete if _feasible(t)),
        "complete": len(complete),
        "pruned": n(lambda t: t.state == TrialState.PRUNED and "rejected" not in t.user_attrs),
        "rejected": n(lambda t: "rejected" in t.user_attrs),
        "failed": n(lambda t: t.state == TrialState.FAIL and "error" in t.user_attrs),
        "running": n(lambda t: t.state == TrialState.RUNNING),
    }


def make_report(
    study: optuna.Study,
    objectives: Sequence[Metric],
    limits: Sequence[Limit],
    *,
    dataset: Dataset | None = None,
    references: Sequence[tuple[str, dict[str, Any]]] = (),
    storage: str = "",
    ran_here: Sequence[int] = (),
    hardware: dict[str, Any] | None = None,
) -> SearchReport:
    """Collect a study's front (with test figures when ``dataset`` is given)."""
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    front = study.best_trials if complete else []
    front = [t for t in front if _feasible(t)]
    tests = {t.number: study.user_attrs.get(_test_key(t.number)) for t in front}
    if dataset is not None:
        tests = {t.number: test_figures(t, study, dataset) for t in front}
    rows = sorted((front_row(t, tests[t.number]) for t in front), key=lambda r: -r["accuracy"])
    refs = [reference_row(name, m, rows, objectives) for name, m in references]
    return SearchReport(
        study=study.study_name,
        storage=storage,
        objectives=[m.name for m in objectives],
        limits=[lim.describe() for lim in limits],
        counts=_counts(trials),
        front=rows,
        references=refs,
        ran_here=list(ran_here),
        hardware=dict(hardware or {}),
    )


def describe_params(params: dict[str, Any]) -> dict[str, str]:
    """A trial's choices as short table cells."""
    blocks = params.get("device_blocks", "")
    width = params.get("device_filters", params.get("device_units", ""))
    agg = params.get("local_agg", "")
    cloud = params.get("cloud_precision", "")
    cloud_width = (
        params.get("cloud_units", "") if cloud != "binary" else params.get("cloud_filters", "")
    )
    bits = params.get("summary_bits")
    lr = params.get("learning_rate")
    return {
        "device": f"{blocks}x{width}",
        "summary": "" if bits is None else ("float32" if bits == 0 else f"int{bits}"),
        "local": f"{agg} {params['local_units']}" if "local_units" in params else str(agg),
        "cloud": f"{cloud} {params.get('cloud_layers', '')}x{cloud_width}",
        "dropout": _num(params.get("device_dropout"), ".2f"),
        "upper": str(params.get("upper_epochs", "")),
        "lr": "" if lr is None else f"{lr:.2g}",
    }


def _num(value, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


def _hardware_line(hardware: dict[str, Any]) -> str:
    if "radio" not in hardware:
        return f"board: {hardware['board']}" if hardware else ""
    return (
        f"priced on {hardware['mcu']} ({hardware['core']}, compiled for {hardware['board']}) "
        f"+ {hardware['radio']}, WAN {hardware['wan']}, {hardware['rate_hz']:g} sample(s)/s, "
        f"{hardware['mode']} protocol; energy: the largest device's per sample, expected at "
        "each trial's T on the validation split; instructions modelled, upper tiers not timed"
    )


def format_report(report: SearchReport) -> str:
    """The front as a Markdown table, with the counts and the references."""
    c = report.counts
    priced = report.priced
    lines = [
        f"study {report.study!r} ({report.storage}): {c['trials']} trials: {c['complete']} "
        f"complete ({c['feasible']} within the limits), {c['pruned']} pruned, "
        f"{c['rejected']} rejected before training, {c['failed']} failed"
        + (f", {c['running']} running" if c["running"] else ""),
        f"objectives: {', '.join(report.objectives)}; limits: {'; '.join(report.limits) or 'none'}",
    ]
    if report.hardware:
        lines.append(_hardware_line(report.hardware))
    cost_head = " energy uJ | p95 ms |" if priced else ""
    lines += [
        "",
        "| trial | device | summary | local | cloud | dropout | upper | lr | val acc | "
        f"test acc | B/device |{cost_head} local exits | flash B | RAM B |",
        "|---:|---|---|---|---|---:|---:|---:|---:|---:|---:|"
        + ("---:|---:|" if priced else "")
        + "---:|---:|---:|",
    ]
    for r in report.front:
        p = describe_params(r["params"])
        cost = (
            f" {_num(r['energy_uj_per_sample'], ',.4g')} | {_num(r['latency_p95_ms'], ',.4g')} |"
            if priced
            else ""
        )
        lines.append(
            f"| {r['trial']} | {p['device']} | {p['summary']} | {p['local']} | {p['cloud']} | "
            f"{p['dropout']} | {p['upper']} | {p['lr']} | {_num(r['accuracy'], '.4f')} | "
            f"{_num(r['test_accuracy'], '.4f')} | {_num(r['bytes_per_device'], '.1f')} |{cost} "
            f"{_num(r['local_exit_fraction'] and 100 * r['local_exit_fraction'], '.1f')} % | "
            f"{_num(r['flash_bytes'], ',')} | {_num(r['ram_bytes'], ',')} |"
        )
    if not report.front:
        lines.append("| (no complete trial within the limits yet) |" + "|" * (15 if priced else 13))
    for ref in report.references:
        beaten = ", ".join(f"trial {k}" for k in ref["dominated_by"]) or "no front member"
        energy = (
            f", {_num(ref['energy_uj_per_sample'], ',.4g')} uJ, p95 "
            f"{_num(ref['latency_p95_ms'], ',.4g')} ms"
            if priced
            else ""
        )
        lines.append(
            f"\nreference {ref['name']}: val acc {_num(ref['accuracy'], '.4f')}, "
            f"{_num(ref['bytes_per_device'], '.1f')} B/device{energy}, flash "
            f"{_num(ref['flash_bytes'], ',')} B, RAM {_num(ref['ram_bytes'], ',')} B: "
            f"dominated by {beaten}"
        )
    return "\n".join(lines)


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def plot_front(
    study: optuna.Study, report: SearchReport, objectives: Sequence[Metric], path: Path
) -> Path:
    """Accuracy against the first cost objective (energy, else bytes, else the next one):
    every complete trial, the front as a line, the reference runs as stars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    costs = [m for m in objectives if not m.maximize]
    x = next((m for m in costs if m.name == "energy"), costs[0] if costs else None)
    if x is None:
        from ddnn_tf.search.objectives import METRICS

        x = METRICS["bytes"]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    feasible, infeasible = [], []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        m = t.user_attrs.get("metrics", {})
        if m.get(x.key) is None:
            continue
        (feasible if _feasible(t) else infeasible).append((m[x.key], 100 * m["accuracy"]))
    if feasible:
        ax.plot(*zip(*feasible), "o", color="tab:blue", alpha=0.45, ms=5, label="trials")
    if infeasible:
        ax.plot(
            *zip(*infeasible), "x", color="tab:red", alpha=0.6, ms=6, label="trials over a limit"
        )
    front = sorted(
        (r[x.key], 100 * r["accuracy"], r["trial"])
        for r in report.front
        if r.get(x.key) is not None
    )
    if front:
        ax.plot(
            [p[0] for p in front],
            [p[1] for p in front],
            "o-",
            color="tab:green",
            ms=7,
            label="Pareto front",
        )
        for fx, fy, k in front:
            ax.annotate(f"#{k}", (fx, fy), textcoords="offset points", xytext=(5, 4), fontsize=8)
    for ref in report.references:
        if ref.get(x.key) is None:
            continue
        ax.plot(ref[x.key], 100 * ref["accuracy"], "*", ms=14, label=f"{ref['name']}")
    ax.set_xlabel(f"{x.label} ({x.unit})" if x.unit else x.label)
    ax.set_ylabel("validation accuracy (%)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"Search {report.study!r}: {report.counts['trials']} trials")
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
        plt.close(fig)
    return path


def write_report(
    study: optuna.Study, report: SearchReport, objectives: Sequence[Metric], out: Path
) -> None:
    """Write ``front.json``, ``front.md`` and ``front.png`` into ``out`` (each atomically)."""
    out = Path(out)
    report.plot = str(plot_front(study, report, objectives, out / FRONT_PLOT))
    _write_atomic(out / FRONT_JSON, (json.dumps(report.to_dict(), indent=2) + "\n").encode())
    _write_atomic(out / FRONT_TABLE, (format_report(report) + "\n").encode())


def check_feasible(report: SearchReport, study: optuna.Study, limits: Sequence[Limit]) -> None:
    """Raise when trials completed but none met the limits, saying for each limit broken
    how much the closest trial missed it by."""
    if report.front or not report.counts["complete"]:
        return
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    misses = []
    for lim in limits:
        key = lim.metric.key
        excess, number, value = min(
            (t.constraints.get(key, 0.0), t.number, t.user_attrs["metrics"][key]) for t in complete
        )
        if excess > 0:
            misses.append(
                f"{lim.describe()}: the closest trial ({number}) has "
                f"{lim.metric.amount(value)}, {lim.miss(value)}"
            )
    raise ConfigError(
        f"no complete trial meets the limits ({report.counts['complete']} completed): "
        + "; ".join(misses)
        + "."
    )
