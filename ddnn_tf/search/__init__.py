"""The hierarchy search: Topologies and training choices, trained and measured, for the
Pareto front of accuracy against energy (or bytes, or latency) under device limits.

``ddnn search --data fmnist6 --mcu nrf52840 --radio ble-1m --max-flash 2048 --max-ram 2048``
(:mod:`ddnn_tf.cli.search`) runs :func:`run_search`: each trial chooses from the
:class:`~ddnn_tf.search.space.Space`, is rejected before training when the least it can
cost (its device tiers' footprint bound; the energy and latency of every sample exiting
locally) breaks a limit, is trained with its T calibrated on the validation split, and is
measured there (accuracy, bytes per device), as compiled C on the board (flash, RAM) and,
priced by the cost model on the microcontroller and radio profiles
(:mod:`~ddnn_tf.search.hardware`), as energy per sample and p95 latency. Trials live in
an Optuna study: a SQLite file in the output
directory, or a PostgreSQL database that workers on several machines share.
:func:`export_trial` turns a front member into a model directory.

Needs ``pip install 'ddnn_tf[search]'`` (Optuna, TensorFlow and Larq, matplotlib) and the
board's compiler.
"""

import optuna  # noqa: F401  (first: without the [search] extra, the error names it)

from ddnn_tf.search.objectives import DEFAULT_OBJECTIVES, METRICS, Limit, Metric
from ddnn_tf.search.report import SearchReport, format_report
from ddnn_tf.search.run import DEFAULT_STUDY, PRUNERS, export_trial, format_search, run_search
from ddnn_tf.search.space import DIMENSIONS, Dimension, Space, default_space

__all__ = [
    "DEFAULT_OBJECTIVES",
    "DEFAULT_STUDY",
    "DIMENSIONS",
    "METRICS",
    "PRUNERS",
    "Dimension",
    "Limit",
    "Metric",
    "SearchReport",
    "Space",
    "default_space",
    "export_trial",
    "format_report",
    "format_search",
    "run_search",
]
