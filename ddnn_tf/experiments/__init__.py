"""The paper's evaluation (Section IV): Tables I-II and Figures 7-10 as tables and plots.

``ddnn experiments EXPERIMENT --data fmnist6 --out results/NAME`` with
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

Beyond the paper, by name only: ``pareto`` (accuracy against bytes over T, both presets)
and ``calibration`` (the risk rule's guarantee on random validation subsets).

The package: ``lab`` (settings; the lab that trains, caches and evaluates models),
``paper`` (the five experiments), ``pareto``, ``calibration``, ``report`` (tables, CSVs,
plots, summary), ``run`` (run by name, write files) and ``__main__`` (the CLI).
"""

from __future__ import annotations

from ddnn_tf.experiments.lab import LOCAL_EXIT_TARGET, ExperimentSettings, Lab, subset_devices
from ddnn_tf.experiments.paper import (
    EXPERIMENTS,
    TABLE_I,
    TABLE_II,
    THRESHOLD_GRID,
    device_memory_bytes,
    fault_sets,
)
from ddnn_tf.experiments.report import Column, ExperimentResult, markdown_table, write_result
from ddnn_tf.experiments.run import parse_experiments, run_experiment, run_experiments

__all__ = [
    "EXPERIMENTS",
    "LOCAL_EXIT_TARGET",
    "TABLE_I",
    "TABLE_II",
    "THRESHOLD_GRID",
    "Column",
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
