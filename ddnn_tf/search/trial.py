"""One trial of a hierarchy search: choose, bound, train, calibrate, measure, record.

:func:`run_trial` is the Optuna objective. A trial

1. chooses its params from the :class:`~ddnn_tf.search.space.Space`;
2. rejects the configuration before training when the least it can cost
   (:func:`ddnn_tf.search.hardware.least_costs`: the footprint bound of its device tiers
   and, on priced hardware, the energy and latency of every sample exiting locally)
   already breaks a limit (pruned, with its constraints set: it stays in the study, never
   on the front);
3. trains it (:func:`ddnn_tf.keras.train.train`, which calibrates T on the validation
   split with the run's rule), reporting the validation accuracy of the top exit after
   every epoch to the pruner, which stops hopeless trials;
4. evaluates it on the validation split at that T (accuracy, bytes per device, local
   exits), compiles its device tiers for the board (flash, RAM) and, on priced hardware,
   prices its exits (energy per device per sample, p95 latency, the highest rate);
5. records its metrics and constraints and writes its run directory (what
   ``--export`` converts).

A user error inside a trial (a diverged loss, a tier the C target cannot express, a
compiler failure) fails that trial, with its reason, and the search goes on.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import optuna

from ddnn_tf.data import Dataset
from ddnn_tf.errors import DDNNError
from ddnn_tf.keras.compat import keras
from ddnn_tf.keras.presets import TrainConfig
from ddnn_tf.keras.rundir import save_run
from ddnn_tf.keras.train import train
from ddnn_tf.search.hardware import SearchHardware, least_costs, sensor_dtype
from ddnn_tf.search.measure import measure_run
from ddnn_tf.search.objectives import Limit, Metric, violations
from ddnn_tf.search.space import Space

__all__ = ["CURVE", "SearchSetup", "run_trial", "trial_dir"]

#: User attribute holding a trial's validation accuracy of the top exit after each epoch.
CURVE = "val_accuracy_per_epoch"


@dataclass
class SearchSetup:
    """What every trial of one worker needs.

    Attributes:
        dataset: the data (train split to fit, validation split for T and the objectives).
        space: the search space.
        objectives: the metrics optimised, in order.
        limits: the bounds every trial must meet.
        hardware: the board the device tiers are compiled for, and the profiles trials
            are priced on.
        out: the output directory (trial run directories go to ``out/trials``).
        seed: the seed of every trial's weights and shuffling.
        pruner: an Optuna pruner on the per-epoch validation accuracy, or None.
        study: the study, for the pruner's view of the other trials.
    """

    dataset: Dataset
    space: Space
    objectives: tuple[Metric, ...]
    limits: tuple[Limit, ...]
    hardware: SearchHardware
    out: Path
    seed: int = 0
    pruner: optuna.pruners.BasePruner | None = None
    study: optuna.Study | None = None
    worker: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")


def trial_dir(out: Path, number: int) -> Path:
    """The run directory of trial ``number`` under a search's output directory."""
    return Path(out) / "trials" / f"trial_{number:04d}"


class TrialFailed(DDNNError):
    """A trial that failed for a reason of its own; the search goes on."""


# ---------------------------------------------------------------------- pruning
class _Curves:
    """The study as an Optuna pruner reads it: each trial's per-epoch validation accuracy
    as its intermediate values, maximised. (A multi-objective study cannot hold
    intermediate values, so the curves live in a user attribute.)"""

    direction = optuna.study.StudyDirection.MAXIMIZE

    def __init__(self, study: optuna.Study) -> None:
        self._study = study

    def get_trials(self, deepcopy: bool = False, states=None) -> list[optuna.trial.FrozenTrial]:
        trials = self._study.get_trials(deepcopy=False, states=states)
        return [curve_trial(t.number, t.user_attrs.get(CURVE, []), t.state) for t in trials]


def curve_trial(
    number: int, curve, state=optuna.trial.TrialState.RUNNING
) -> optuna.trial.FrozenTrial:
    """A trial as a pruner reads it: its accuracy curve as intermediate values."""
    return optuna.trial.FrozenTrial(
        number=number,
        state=state,
        value=None,
        values=None,
        datetime_start=None,
        datetime_complete=None,
        params={},
        distributions={},
        user_attrs={},
        system_attrs={},
        intermediate_values=dict(enumerate(curve)),
        trial_id=number,
    )


class _EpochCheck(keras.callbacks.Callback):
    """Records the top exit's validation accuracy after each epoch (of both training
    phases) and asks the pruner whether to stop."""

    def __init__(self, trial: optuna.Trial, setup: SearchSetup, top_exit: str) -> None:
        super().__init__()
        self.trial = trial
        self.setup = setup
        self.top_exit = top_exit
        self.curve: list[float] = []

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        keys = [k for k in logs if k.startswith(f"val_{self.top_exit}") and "accuracy" in k]
        if not keys:
            return
        self.curve.append(float(logs[keys[0]]))
        self.trial.set_user_attr(CURVE, self.curve)
        pruner, study = self.setup.pruner, self.setup.study
        if pruner is None or study is None:
            return
        me = curve_trial(self.trial.number, self.curve)
        if pruner.prune(_Curves(study), me):
            self.trial.set_user_attr("pruned_after_epoch", len(self.curve))
            raise optuna.TrialPruned(
                f"validation accuracy {self.curve[-1]:.4f} after epoch {len(self.curve)} is "
                "below the pruner's cut"
            )


# ---------------------------------------------------------------------- the trial
def _reject_by_bound(trial: optuna.Trial, setup: SearchSetup, topology) -> None:
    """Prune the trial, without training, when what it costs at the least breaks a limit."""
    bound = least_costs(
        topology,
        setup.hardware,
        samples=len(setup.dataset.val),
        sensor_dtype=sensor_dtype(topology, setup.dataset.input_scale),
    )
    trial.set_user_attr("least_costs", bound)
    broken = [lim for lim in setup.limits if lim.metric.key in bound]
    excess = {lim.metric.key: lim.excess(bound[lim.metric.key]) for lim in broken}
    if not any(v > 0 for v in excess.values()):
        return
    for key, value in excess.items():
        trial.set_constraint(key, value)
    why = "; ".join(
        lim.bound_text(bound[lim.metric.key]) for lim in broken if excess[lim.metric.key] > 0
    )
    trial.set_user_attr("rejected", why)
    raise optuna.TrialPruned(f"rejected before training: {why}")


def run_trial(trial: optuna.Trial, setup: SearchSetup) -> tuple[float, ...]:
    """Train and measure one configuration; the Optuna objective.

    Returns:
        The objective values, in the order of ``setup.objectives``.

    Raises:
        optuna.TrialPruned: rejected by the footprint bound, or stopped by the pruner.
        TrialFailed: a user error inside the trial (recorded as its ``error``).
    """
    started = time.perf_counter()
    trial.set_user_attr("worker", setup.worker)
    try:
        params = setup.space.suggest(trial)
        trial.set_user_attr("choices", params)
        topology, options = setup.space.settings(params)
        config = TrainConfig(**{**options, "seed": setup.seed})
        _reject_by_bound(trial, setup, topology)
        keras.backend.clear_session()
        check = _EpochCheck(trial, setup, topology.exits[-1])
        run = train(setup.dataset, topology, config, verbose=0, callbacks=[check])
        metrics, footprints = measure_run(run, setup.dataset, setup.hardware)
    except DDNNError as err:
        trial.set_user_attr("error", str(err))
        raise TrialFailed(str(err)) from None
    except KeyboardInterrupt:  # run it again when the search resumes
        trial.set_user_attr("interrupted", True)
        trial.study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        raise
    out = trial_dir(setup.out, trial.number)
    save_run(run, out, dataset=setup.dataset, overwrite=True)
    trial.set_user_attr("metrics", metrics)
    trial.set_user_attr("device_flash_bytes", list(footprints.flash_bytes))
    trial.set_user_attr("device_ram_bytes", list(footprints.ram_bytes))
    trial.set_user_attr("board", footprints.board)
    trial.set_user_attr("calibrate", run.config.calibrate)
    trial.set_user_attr("run_dir", str(out.resolve()))
    trial.set_user_attr("seconds", round(time.perf_counter() - started, 1))
    for key, excess in violations(metrics, setup.limits).items():
        trial.set_constraint(key, excess)
    return tuple(float(metrics[m.key]) for m in setup.objectives)
