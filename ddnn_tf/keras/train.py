"""Joint training of all exits, the upper tiers on frozen devices, the individual baselines.

:func:`train` fits a DDNN's exits together (then, with ``upper_epochs``, the tiers above
the devices alone, :func:`train_upper`) and returns (and optionally writes) a
:class:`~ddnn_tf.keras.rundir.Run`; :func:`train_preset` is what ``ddnn train`` runs: a
preset (:mod:`ddnn_tf.keras.presets`) with overrides, on a named data set, written to a
run directory whose files :mod:`ddnn_tf.keras.rundir` lists.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ddnn_tf.core.calibration import calibrate
from ddnn_tf.core.checks import check_labels, check_views
from ddnn_tf.core.files import check_output_dir
from ddnn_tf.core.topology import Topology
from ddnn_tf.data import Dataset, Split, load_dataset
from ddnn_tf.errors import ConfigError
from ddnn_tf.keras.compat import keras, tf
from ddnn_tf.keras.model import DDNN, build_ddnn, build_individual, build_upper
from ddnn_tf.keras.presets import TrainConfig, preset_config, preset_topology, topology_for
from ddnn_tf.keras.rundir import RUN_MARKER, Run, save_run

__all__ = [
    "EpochTimer",
    "StopOnNonFiniteLoss",
    "compile_ddnn",
    "predict_exits",
    "train",
    "train_individual",
    "train_preset",
    "train_upper",
]


def _seed(seed: int | None) -> None:
    if seed is not None:
        keras.utils.set_random_seed(int(seed))
        tf.config.experimental.enable_op_determinism()


def _checked(topology: Topology, split: Split, where: str) -> tuple[list[np.ndarray], np.ndarray]:
    xs = check_views(topology.input_shapes, split.x, where=where)
    y = check_labels(split.y, topology.num_classes, len(xs[0]), where=f"{where} labels")
    return xs, y


def _optimizer(config: TrainConfig, steps: int | None = None):
    lr: Any = config.learning_rate
    if config.lr_schedule == "cosine" and steps:
        lr = keras.optimizers.schedules.CosineDecay(config.learning_rate, int(steps))
    return keras.optimizers.Adam(
        learning_rate=lr,
        beta_1=config.beta_1,
        beta_2=config.beta_2,
        epsilon=config.epsilon,
    )


def compile_ddnn(ddnn: DDNN, config: TrainConfig, steps: int | None = None) -> None:
    """Compile the composed model: softmax cross-entropy per exit, weighted sum.

    ``steps``: total optimiser steps of the training (a cosine schedule decays over them).
    """
    _compile(ddnn.model, ddnn.topology, config, steps)


def _compile(model, topology: Topology, config: TrainConfig, steps: int | None) -> None:
    """Compile a model with one output per exit of ``topology`` (the composed DDNN, or
    its upper tiers alone)."""
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(
        optimizer=_optimizer(config, steps),
        loss={e: loss for e in topology.exits},
        loss_weights=config.weights_for(topology),
        metrics={e: ["accuracy"] for e in topology.exits},
    )


def _steps(epochs: int, n: int, config: TrainConfig) -> int:
    """Optimiser steps of ``epochs`` epochs over ``n`` samples."""
    return int(epochs) * -(-n // int(config.batch_size))


def predict_exits(
    ddnn: DDNN, xs, presence: np.ndarray | None = None, *, batch_size: int = 1024
) -> dict[str, np.ndarray]:
    """Class probabilities of every exit, bottom to top.

    Args:
        ddnn: the model.
        xs: one array per device.
        presence: optional (N, D) or (D,) 0/1 mask of devices whose messages arrive
            (failed devices are 0); by default every device is present.

    Returns:
        Ordered dict exit name -> (N, |C|) float64 probabilities.
    """
    from ddnn_tf.core.exits import softmax

    topology = ddnn.topology
    xs = check_views(topology.input_shapes, xs)
    n = len(xs[0])
    if presence is None:
        presence = np.ones((n, topology.num_devices), np.float32)
    presence = np.broadcast_to(np.asarray(presence, np.float32), (n, topology.num_devices))
    logits = ddnn.eval_model.predict([*xs, presence], batch_size=batch_size, verbose=0)
    return {e: softmax(np.asarray(logits[e], np.float64)) for e in topology.exits}


class EpochTimer(keras.callbacks.Callback):
    """Records the wall time of every epoch (training and validation) in ``seconds``."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training with a ValueError at the first batch whose loss is NaN or infinite.

    Keras' ``TerminateOnNaN`` only stops quietly, leaving a run that looks finished; a
    diverged run must fail, so that nothing is written.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise ConfigError(
                f"Training diverged: the loss is {float(loss)} at epoch "
                f"{getattr(self, '_epoch', 0) + 1}, batch {batch + 1}; nothing was written. "
                "Lower the learning rate or check the exit weights and the data."
            )


def _history_by_exit(history: dict[str, list], exits) -> dict[str, list[float]]:
    out = {}
    for key, values in history.items():
        name = key
        for e in exits:  # "val_local_exit_accuracy" -> "val_local_accuracy"
            name = name.replace(f"{e}_exit_", f"{e}_")
        out[name] = [float(v) for v in values]
    return out


def train(
    dataset: Dataset,
    topology: Topology | None = None,
    config: TrainConfig | None = None,
    *,
    out: str | Path | None = None,
    overwrite: bool = False,
    individual: bool = False,
    verbose: int = 1,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> Run:
    """Train all exits of a DDNN jointly.

    Args:
        dataset: the data (train split for fitting, val split for monitoring and
            threshold calibration; the test split is never touched).
        topology: the hierarchy; by default the paper's, sized for the dataset.
        config: training settings; by default the paper's optimiser, 5 epochs. With
            ``upper_epochs``, the joint epochs are followed by :func:`train_upper` (its
            history keys are prefixed ``upper_``), and T is calibrated after it.
        out: a run directory to write (written to a temporary directory and renamed
            at the end, so a failed run leaves nothing half-written).
        overwrite: replace an existing ``out``.
        individual: also train the per-device individual baselines.
        verbose: Keras progress bar level (0, 1 or 2).
        callbacks: more Keras callbacks for every epoch of both phases (the upper phase's
            epochs follow the joint ones), e.g. a search's pruning check.

    Returns:
        The trained :class:`Run`.

    Raises:
        ValueError: bad inputs or labels, an existing ``out`` without ``overwrite``.
    """
    topology = topology or topology_for(dataset)
    config = config or TrainConfig()
    if out is not None:
        out = check_output_dir(out, overwrite=overwrite, what="Run directory", marker=RUN_MARKER)
    xs, y = _checked(topology, dataset.train, "train split")
    val_xs, val_y = _checked(topology, dataset.val, "validation split")

    _seed(config.seed)
    ddnn = build_ddnn(topology)
    for layer, x in zip(ddnn.sensors, xs):  # scale and zero point from the training data
        layer.fit(x)
    compile_ddnn(ddnn, config, _steps(config.epochs, len(y), config))
    targets = {e: y for e in topology.exits}
    val = (val_xs, {e: val_y for e in topology.exits}) if len(val_y) else None
    history = _fit(ddnn.model, xs, targets, val, int(config.epochs), config, verbose, callbacks)
    if config.upper_epochs:
        upper = train_upper(
            ddnn, xs, y, config, val=(val_xs, val_y), verbose=verbose, callbacks=callbacks
        )
        history.update({f"upper_{k}": v for k, v in upper.items()})

    calibration = None
    if len(val_y) and len(topology.exits) > 1:
        calibration = calibrate(
            predict_exits(ddnn, val_xs),
            val_y,
            topology,
            config.calibrate,
            raw_bytes_per_device=dataset.raw_bytes_per_device,
        )
    run = Run(
        topology=topology,
        ddnn=ddnn,
        dataset_spec=dict(dataset.spec),
        config=config,
        history=history,
        thresholds=dict(calibration.thresholds) if calibration else {},
        calibration=calibration,
    )
    if individual:
        run.individual = train_individual(dataset, topology, config, verbose=verbose)
    if out is not None:
        save_run(run, out, dataset=dataset, overwrite=overwrite)
    return run


def _device_outputs(ddnn: DDNN, xs, *, batch_size: int = 2048) -> list[np.ndarray]:
    """Every device's outputs (inference mode), ordered as :func:`build_upper`'s inputs."""
    xs = ddnn.sensor_values(xs)
    outs = [m.predict(x, batch_size=batch_size, verbose=0) for m, x in zip(ddnn.devices, xs)]
    summaries = [o["summary"] for o in outs] if ddnn.topology.has_local else []
    return [*summaries, *(o["features"] for o in outs)]


def train_upper(
    ddnn: DDNN,
    xs,
    y: np.ndarray,
    config: TrainConfig,
    *,
    val=None,
    verbose: int = 1,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> dict[str, list[float]]:
    """Train the tiers above the devices for ``config.upper_epochs`` on frozen devices.

    The devices' outputs are computed once, in inference mode (their batch norms use the
    moving statistics, as a deployed device does), so the aggregators and the cloud learn
    the very bits and summaries they will receive; during joint training they only saw
    batch-statistics outputs of devices that kept changing. Adam with the config's
    settings, a fresh cosine decay over this phase (with ``lr_schedule="cosine"``), the
    topology's device dropout, the config's exit weights.

    Args:
        ddnn: the jointly trained model; its upper tiers are trained in place.
        xs: the training inputs, one array per device.
        y: the training labels.
        config: the settings (``upper_epochs``, ``batch_size``, the optimiser's).
        val: optional ``(xs, y)`` validation split, monitored every epoch.
        verbose: Keras progress level (0, 1 or 2).
        callbacks: more Keras callbacks for the phase's epochs.

    Returns:
        The phase's history: loss and accuracy per exit (``val_`` ones with ``val``), and
        ``epoch_seconds``.
    """
    topology = ddnn.topology
    upper = build_upper(ddnn)
    _compile(upper, topology, config, _steps(config.upper_epochs, len(y), config))
    validation = None
    if val is not None and len(val[1]):
        validation = (_device_outputs(ddnn, val[0]), {e: val[1] for e in topology.exits})
    targets = {e: y for e in topology.exits}
    inputs = _device_outputs(ddnn, xs)
    epochs = int(config.upper_epochs)
    return _fit(upper, inputs, targets, validation, epochs, config, verbose, callbacks)


def _fit(
    model, xs, targets, val, epochs: int, config: TrainConfig, verbose: int, callbacks=()
) -> dict:
    """``model.fit`` as every training phase runs it; returns the history by exit, with
    ``epoch_seconds``."""
    timer = EpochTimer()
    fit = model.fit(
        xs,
        targets,
        validation_data=val,
        epochs=epochs,
        batch_size=int(config.batch_size),
        shuffle=True,
        verbose=verbose,
        callbacks=[timer, StopOnNonFiniteLoss(), *callbacks],
    )
    history = _history_by_exit(fit.history, list(targets))
    history["epoch_seconds"] = timer.seconds
    return history


def train_individual(
    dataset: Dataset, topology: Topology, config: TrainConfig, *, verbose: int = 1
) -> dict[str, Any]:
    """Train each device's individual baseline (one device section + its own exit).

    Views where the object is absent are excluded from that device's training data.
    Accuracy is over the whole test split (as in the paper's Figure 8).

    Returns:
        ``{"accuracy": [test accuracy of each device's model]}``.
    """
    accuracies = []
    test_xs, test_y = _checked(topology, dataset.test, "test split")
    for i in range(topology.num_devices):
        _seed(None if config.seed is None else config.seed + 1 + i)
        model = build_individual(topology, i)
        if topology.sensor_bits:
            model.get_layer(f"sensor_{i}").fit(dataset.train.x[i])
        model.compile(
            optimizer=_optimizer(config),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        seen = dataset.train.present[:, i]
        if verbose:
            print(f"individual model of device {i}: {int(seen.sum())} training views")
        model.fit(
            np.asarray(dataset.train.x[i][seen], np.float32),
            dataset.train.y[seen],
            epochs=int(config.epochs),
            batch_size=int(config.batch_size),
            verbose=verbose,
            callbacks=[StopOnNonFiniteLoss()],
        )
        pred = model.predict(test_xs[i], batch_size=1024, verbose=0).argmax(axis=1)
        accuracies.append(float((pred == test_y).mean()))
    return {"accuracy": accuracies}


def _exit_weights(
    weights: Mapping[str, float] | Sequence[float] | None, exits: tuple[str, ...]
) -> dict[str, float] | None:
    """Per-exit loss weights by name, from a mapping or a list bottom to top."""
    if weights is None or isinstance(weights, Mapping):
        return None if weights is None else dict(weights)
    values = list(weights)
    if len(values) != len(exits):
        raise ConfigError(
            f"{len(values)} weights for {len(exits)} exits {list(exits)}.",
            argument="exit_weights",
        )
    return dict(zip(exits, values))


def train_preset(
    data: str = "fmnist6",
    out: str | Path = "runs/default",
    *,
    path: str | None = None,
    preset: str = "default",
    epochs: int | None = None,
    seed: int = 0,
    train_limit: int | None = None,
    topology_options: Mapping[str, Any] | None = None,
    config_options: Mapping[str, Any] | None = None,
    exit_weights: Mapping[str, float] | Sequence[float] | None = None,
    calibrate: str | None = None,
    individual: bool = False,
    overwrite: bool = False,
    verbose: int = 1,
) -> Run:
    """Train a preset (with overrides) on a named data set and write its run directory.

    Args:
        data: data set name (``fmnist6``, ``mvmc``, ``npz``, ``synthetic``).
        out: the run directory to write.
        path: data file or directory for file-based loaders.
        preset: ``default``, ``best`` or ``paper`` (:data:`~ddnn_tf.keras.presets.PRESETS`).
        epochs: joint training epochs; None for the preset's (5; ``best``: 30).
        seed: seed of the data split, the initial weights and the shuffling.
        train_limit: keep only the first N training samples.
        topology_options: :class:`~ddnn_tf.core.topology.Topology` fields that override
            the preset's (``local_agg``, ``edges``, ``device_filters``, ...).
        config_options: :class:`~ddnn_tf.keras.presets.TrainConfig` fields that override
            the preset's (``batch_size``, ``learning_rate``, ``lr_schedule``,
            ``upper_epochs``).
        exit_weights: per-exit loss weights, by exit name or bottom to top.
        calibrate: the threshold rule on the validation split (``risk:DELTA[,EPS]``,
            ``within:D``, ``accuracy``, ``bytes:B``); None for the preset's (``default``:
            ``risk:0.5``).
        individual: also train the per-device individual baselines.
        overwrite: replace an existing run directory.
        verbose: Keras progress level (0, 1 or 2).

    Returns:
        The trained :class:`~ddnn_tf.keras.rundir.Run`, also written to ``out``.

    Raises:
        ConfigError: an unknown preset or data set, a bad option.
        FileExistsError: ``out`` exists and ``overwrite`` is false.
    """
    preset_config(preset)  # an unknown preset fails before the data loads
    check_output_dir(out, overwrite=overwrite, what="Run directory", marker=RUN_MARKER)
    dataset = load_dataset(data, path, seed=seed, train_limit=train_limit)
    topology = preset_topology(dataset, preset, **dict(topology_options or {}))
    overrides = {"epochs": epochs, "calibrate": calibrate}
    config = preset_config(
        preset,
        exit_weights=_exit_weights(exit_weights, topology.exits),
        seed=seed,
        **{k: v for k, v in overrides.items() if v is not None},
        **dict(config_options or {}),
    )
    return train(
        dataset,
        topology,
        config,
        out=out,
        overwrite=overwrite,
        individual=individual,
        verbose=verbose,
    )
