"""Run experiments by name and write their files as each one finishes."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from ddnn_tf.errors import ConfigError
from ddnn_tf.experiments.calibration import calibration_experiment
from ddnn_tf.experiments.lab import ExperimentSettings, Lab
from ddnn_tf.experiments.paper import EXPERIMENTS, RUNNERS
from ddnn_tf.experiments.pareto import pareto_experiment
from ddnn_tf.experiments.report import (
    ExperimentResult,
    outputs,
    summary,
    write_result,
    write_summary,
)

__all__ = ["parse_experiments", "run_experiment", "run_experiments"]

# Run order: the sweep that trains the default model's siblings first, so that the
# individual baselines (scaling) exist when faults annotates its single failures.
_RUN_ORDER = (
    "threshold",
    "aggregation",
    "filters",
    "scaling",
    "faults",
    "pareto",
    "calibration",
)
#: Experiments beyond the paper: run by name, never by ``all``.
EXTRA_RUNNERS = {"pareto": pareto_experiment, "calibration": calibration_experiment}


def parse_experiments(experiment: str | Sequence[str]) -> list[str]:
    """``"all"``, one name or several (comma separated or a list) -> names in paper order.

    Args:
        experiment: the names, e.g. ``"faults,aggregation"`` or ``["threshold"]``.

    Returns:
        The names, in the paper's order (:data:`EXPERIMENTS`).

    Raises:
        ValueError: an unknown name; the message lists the valid ones.
    """
    if isinstance(experiment, (list, tuple)):
        items = [str(e) for e in experiment]
    else:
        items = str(experiment).split(",")
    items = [e.strip() for e in items if e.strip()]
    known = (*EXPERIMENTS, *EXTRA_RUNNERS)
    valid = ", ".join((*known, "all"))
    if not items:
        raise ConfigError(f"Expected an experiment name, one of {valid}. Received {experiment!r}.")
    unknown = [e for e in items if e not in (*known, "all")]
    if unknown:
        raise ConfigError(
            f"Unknown experiment {unknown[0]!r}. Expected one of {valid} (or several, comma separated)."
        )
    if "all" in items:
        return list(EXPERIMENTS) + [e for e in EXTRA_RUNNERS if e in items]
    return [e for e in known if e in items]


def run_experiment(name: str, lab: Lab) -> ExperimentResult:
    """Run one experiment on ``lab`` and return its result (nothing is written).

    Args:
        name: one of :data:`EXPERIMENTS`.
        lab: the :class:`Lab` (its trained models are reused and kept).

    Returns:
        The result, with ``seconds`` set.
    """
    (name,) = parse_experiments(name)
    t0 = time.perf_counter()
    result = {**RUNNERS, **EXTRA_RUNNERS}[name](lab)
    result.seconds = time.perf_counter() - t0
    return result


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
        >>> import tempfile
        >>> from ddnn_tf.data import load_dataset
        >>> ds = load_dataset("synthetic", n_samples=150)
        >>> results = run_experiments("faults", ds, out=tempfile.mkdtemp(),
        ...     settings=ExperimentSettings(epochs=1, fault_sets=1, verbose=0))
        >>> sorted(results)
        ['faults']
    """
    names = parse_experiments(experiments)
    out = Path(out)
    lab = lab or Lab(dataset, settings)
    out.mkdir(parents=True, exist_ok=True)
    with_summary = len(names) > 1
    stale = [p for n in names for p in outputs(out, n)]
    if with_summary:
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
    if with_summary:
        total = time.perf_counter() - start
        write_summary(out, *summary(results, lab, command=command, seconds=total))
        lab.log(f"wrote {out / 'summary.md'} ({total / 60:.1f} min, {lab.trainings} trainings)")
    return results
