"""Joint training of all exits and the individual baselines.

``python -m ddnn_tf.train --data fmnist6 --out runs/NAME`` trains the default DDNN
(``--preset paper``: the paper's configuration, 6 devices, MP-CC, f = 4, with its Adam
defaults and equal exit weights) and writes a run directory, whose files
:mod:`ddnn_tf.rundir` lists (:class:`~ddnn_tf.rundir.Run`, :func:`~ddnn_tf.rundir.save_run`,
:func:`~ddnn_tf.rundir.load_run`, also importable from here); :func:`load_run` reloads it
into an identical model.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ddnn_tf._cli import cli
from ddnn_tf._files import check_output_dir
from ddnn_tf._keras import keras, tf
from ddnn_tf.calibration import calibrate_threshold, parse_calibrate
from ddnn_tf.checks import check_labels, check_views
from ddnn_tf.data import Dataset, Split, load_dataset
from ddnn_tf.model import DDNN, build_ddnn, build_individual
from ddnn_tf.rundir import RUN_MARKER, Run, load_run, save_run  # noqa: F401  (load_run: ddnn_tf.train.load_run)
from ddnn_tf.topology import Topology

__all__ = [
    "PAPER_ADAM",
    "PRESETS",
    "calibrate_threshold",
    "preset_config",
    "preset_topology",
    "EpochTimer",
    "StopOnNonFiniteLoss",
    "TrainConfig",
    "Run",
    "train",
    "load_run",
    "predict_exits",
    "topology_for",
    "train_individual",
]

#: The paper's optimiser (Section IV-A): Adam, alpha 1e-3, beta1 0.9, beta2 0.999, eps 1e-8.
PAPER_ADAM = {"learning_rate": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8}
LR_SCHEDULES = ("constant", "cosine")

#: ``paper``: the paper's MP-CC DDNN and optimiser. ``default``: the same binary devices
#: (f = 4, one ConvP block, 1 bit per feature) with a 4-bit summary, a real-valued cloud
#: (two ReLU dense layers over the concatenated binary features), device dropout, and a
#: cosine-decayed higher learning rate (README, "Beyond the paper").
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {"topology": {}, "config": {}},
    "default": {
        "topology": {
            "summary_bits": 4,
            "cloud_precision": "float",
            "cloud_conv_layers": 2,
            "cloud_units": 256,
            "device_dropout": 0.15,
        },
        "config": {"learning_rate": 3e-3, "lr_schedule": "cosine", "batch_size": 256},
    },
}


def _check_number(
    name: str,
    value: Any,
    *,
    integer: bool = False,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Raise ValueError naming ``name`` unless ``value`` is a finite number in range."""
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    ok = isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (low is None or value > low or (value == low and not low_open))
    ok = ok and (high is None or value < high or (value == high and not high_open))
    if not ok:
        kind = "an integer" if integer else "a finite number"
        bounds = [f"{'>' if low_open else '>='} {low}" if low is not None else ""]
        bounds.append(f"{'<' if high_open else '<='} {high}" if high is not None else "")
        limits = " and ".join(b for b in bounds if b)
        raise ValueError(f"{name} must be {kind}{' ' + limits if limits else ''}, got {value!r}.")


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; the defaults are the paper's (equal exit weights, Adam)."""

    epochs: int = 5
    batch_size: int = 128
    learning_rate: float = PAPER_ADAM["learning_rate"]
    beta_1: float = PAPER_ADAM["beta_1"]
    beta_2: float = PAPER_ADAM["beta_2"]
    epsilon: float = PAPER_ADAM["epsilon"]
    exit_weights: dict[str, float] | None = None  # None: 1.0 for every exit
    seed: int | None = 0
    lr_schedule: str = "constant"  # or "cosine": decays to 0 over all epochs
    calibrate: str = "accuracy"  # or "bytes:B": best accuracy within B bytes per device
    preset: str = "paper"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            _check_number(name, getattr(self, name), integer=True, low=1)
        _check_number("learning_rate", self.learning_rate, low=0, low_open=True)
        for name in ("beta_1", "beta_2"):
            _check_number(name, getattr(self, name), low=0, high=1, high_open=True)
        _check_number("epsilon", self.epsilon, low=0, low_open=True)
        if self.seed is not None:
            _check_number("seed", self.seed, integer=True, low=0)
        if self.exit_weights is not None:
            if not isinstance(self.exit_weights, dict):
                raise ValueError(
                    f"exit_weights must map exit names to weights, got {self.exit_weights!r}."
                )
            for exit_name, weight in self.exit_weights.items():
                _check_number(f"exit_weights: {exit_name}", weight, low=0)
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"lr_schedule: expected one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}."
            )
        if self.preset not in PRESETS:
            raise ValueError(f"preset: expected one of {', '.join(PRESETS)}, got {self.preset!r}.")
        parse_calibrate(self.calibrate)

    def weights_for(self, topology: Topology) -> dict[str, float]:
        weights = dict(self.exit_weights or {})
        unknown = sorted(set(weights) - set(topology.exits))
        if unknown:
            raise ValueError(
                f"exit_weights names exit(s) {unknown}, but the model's exits are "
                f"{list(topology.exits)}."
            )
        return {e: float(weights.get(e, 1.0)) for e in topology.exits}


def topology_for(dataset: Dataset, **options: Any) -> Topology:
    """A topology matching a dataset's devices and classes; options override defaults."""
    return Topology(input_shapes=dataset.input_shapes, num_classes=dataset.num_classes, **options)


def preset_topology(dataset: Dataset, preset: str = "default", **options: Any) -> Topology:
    """The topology of a preset, sized for ``dataset``; ``options`` override the preset.

    Raises:
        ValueError: an unknown preset or an invalid option.
    """
    if preset not in PRESETS:
        raise ValueError(f"--preset: expected one of {', '.join(PRESETS)}, got {preset!r}.")
    return topology_for(dataset, **{**PRESETS[preset]["topology"], **options})


def preset_config(preset: str = "default", **options: Any) -> TrainConfig:
    """The training settings of a preset; ``options`` override them."""
    if preset not in PRESETS:
        raise ValueError(f"--preset: expected one of {', '.join(PRESETS)}, got {preset!r}.")
    return TrainConfig(**{**PRESETS[preset]["config"], "preset": preset, **options})


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
    exits = ddnn.topology.exits
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    ddnn.model.compile(
        optimizer=_optimizer(config, steps),
        loss={e: loss for e in exits},
        loss_weights=config.weights_for(ddnn.topology),
        metrics={e: ["accuracy"] for e in exits},
    )


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
    from ddnn_tf.exits import softmax

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
            raise ValueError(
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
) -> Run:
    """Train all exits of a DDNN jointly.

    Args:
        dataset: the data (train split for fitting, val split for monitoring and
            threshold calibration; the test split is never touched).
        topology: the hierarchy; by default the paper's, sized for the dataset.
        config: training settings; by default the paper's optimiser, 5 epochs.
        out: a run directory to write (written to a temporary directory and renamed
            at the end, so a failed run leaves nothing half-written).
        overwrite: replace an existing ``out``.
        individual: also train the per-device individual baselines.
        verbose: Keras progress bar level (0, 1 or 2).

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
    steps = int(config.epochs) * -(-len(y) // int(config.batch_size))
    compile_ddnn(ddnn, config, steps)
    targets = {e: y for e in topology.exits}
    val = (val_xs, {e: val_y for e in topology.exits}) if len(val_y) else None
    timer = EpochTimer()
    fit = ddnn.model.fit(
        xs,
        targets,
        validation_data=val,
        epochs=int(config.epochs),
        batch_size=int(config.batch_size),
        shuffle=True,
        verbose=verbose,
        callbacks=[timer, StopOnNonFiniteLoss()],
    )
    history = _history_by_exit(fit.history, topology.exits)
    history["epoch_seconds"] = timer.seconds

    thresholds: dict[str, float] = {}
    if len(val_y) and len(topology.exits) > 1:
        probs = predict_exits(ddnn, val_xs)
        t = calibrate_threshold(
            probs,
            val_y,
            topology,
            config.calibrate,
            raw_bytes_per_device=dataset.raw_bytes_per_device,
        )
        thresholds = {e: t for e in topology.exits[:-1]}
    run = Run(
        topology=topology,
        ddnn=ddnn,
        dataset_spec=dict(dataset.spec),
        config=config,
        history=history,
        thresholds=thresholds,
    )
    if individual:
        run.individual = train_individual(dataset, topology, config, verbose=verbose)
    if out is not None:
        save_run(run, out, dataset=dataset, overwrite=overwrite)
    return run


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


# ----------------------------------------------------------------------------- CLI
def _flag_items(value, sep: str = ",") -> list[str]:
    """Items of a comma-separated flag; fire hands ``a,b`` over as a tuple, ``3`` as an int."""
    if isinstance(value, (list, tuple)):
        value = sep.join(map(str, value))
    return [item.strip() for item in str(value).split(sep) if item.strip()]


def _parse_weights(exit_weights, exits: tuple[str, ...]) -> dict[str, float] | None:
    """``"local=1,cloud=0.5"``, ``"1,0.5"`` (bottom to top, one per exit) or a dict."""
    if exit_weights is None or isinstance(exit_weights, dict):
        return exit_weights
    parts = _flag_items(exit_weights)
    try:
        if all("=" in p for p in parts):
            return {k.strip(): float(v) for k, v in (p.split("=", 1) for p in parts)}
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(
            f"--exit-weights: expected e.g. local=1,cloud=1 or 1,1; got {exit_weights!r}."
        ) from None
    if len(values) != len(exits):
        raise ValueError(
            f"--exit-weights gives {len(values)} weights for {len(exits)} exits {list(exits)}."
        )
    return dict(zip(exits, values))


def main(
    data: str = "fmnist6",
    out: str = "runs/default",
    path: str | None = None,
    preset: str = "default",
    epochs: int = 5,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    lr_schedule: str | None = None,
    local_agg: str | None = None,
    cloud_agg: str | None = None,
    edge_agg: str | None = None,
    device_filters: int | None = None,
    cloud_filters: int | None = None,
    cloud_layers: int | None = None,
    cloud_units: int | None = None,
    edges: str | None = None,
    exits: str | None = None,
    device_dropout: float | None = None,
    summary_bits: int | None = None,
    cloud_precision: str | None = None,
    device_grid=None,
    exit_weights=None,
    calibrate: str = "accuracy",
    seed: int = 0,
    train_limit: int | None = None,
    individual: bool = False,
    overwrite: bool = False,
    verbose: int = 1,
) -> None:
    """Train a DDNN and write a run directory.

    Args:
        data: dataset name (fmnist6, mvmc, npz, synthetic).
        out: run directory to write.
        path: data file or directory for file-based loaders.
        preset: "default" (4-bit summaries, float grid cloud, device dropout, cosine
            schedule) or "paper" (the paper's MP-CC and Adam); other flags override it.
        edges: device groups, one per edge, e.g. "0,1,2;3,4,5".
        exits: e.g. "local,cloud" (default), "local,edge,cloud" (needs --edges), "cloud".
        exit_weights: per-exit loss weights, "local=1,cloud=1" or "1,1" (bottom to top).
        device_grid: "ROWS,COLS" when the devices' views tile one image (fmnist6: 3,2):
            the cloud lays their maps out in that grid.
        calibrate: threshold rule on the validation split: "accuracy" or "bytes:B" (the
            most accurate T within B bytes per device per sample).
    """
    if preset not in PRESETS:
        raise ValueError(f"preset: expected one of {', '.join(PRESETS)}, got {preset!r}.")
    check_output_dir(out, overwrite=overwrite, what="Run directory", marker=RUN_MARKER)
    dataset = load_dataset(data, path, seed=seed, train_limit=train_limit)
    flags = dict(
        local_agg=local_agg,
        cloud_agg=cloud_agg,
        edge_agg=edge_agg,
        device_filters=device_filters,
        cloud_filters=cloud_filters,
        cloud_conv_layers=cloud_layers,
        cloud_units=cloud_units,
        device_dropout=device_dropout,
        summary_bits=summary_bits,
        cloud_precision=cloud_precision,
    )
    options: dict[str, Any] = {k: v for k, v in flags.items() if v is not None}
    for key in (
        "device_filters",
        "cloud_filters",
        "cloud_conv_layers",
        "cloud_units",
        "summary_bits",
    ):
        if key in options:
            options[key] = int(options[key])
    if "device_dropout" in options:
        options["device_dropout"] = float(options["device_dropout"])
    if edges is not None:
        if isinstance(edges, str):
            groups = _flag_items(edges, ";")
        elif isinstance(edges, (list, tuple)) and all(isinstance(g, (list, tuple)) for g in edges):
            groups = list(edges)  # --edges "[[0,1,2],[3,4,5]]"
        else:
            groups = [edges]
        options["edges"] = [[int(d) for d in _flag_items(g)] for g in groups]
        options["exits"] = ("local", "edge", "cloud")
    if exits:
        options["exits"] = tuple(_flag_items(exits))
    if device_grid is not None:
        options["device_grid"] = [int(g) for g in _flag_items(device_grid)]
    topology = preset_topology(dataset, preset, **options)
    weights = _parse_weights(exit_weights, topology.exits)
    overrides = dict(batch_size=batch_size, learning_rate=learning_rate, lr_schedule=lr_schedule)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    config = preset_config(
        preset,
        epochs=int(epochs),
        exit_weights=weights,
        seed=seed,
        calibrate=str(calibrate),
        **overrides,
    )
    run = train(
        dataset,
        topology,
        config,
        out=out,
        overwrite=overwrite,
        individual=individual,
        verbose=verbose,
    )
    last = {
        k: v[-1] for k, v in run.history.items() if k.startswith("val_") and k.endswith("accuracy")
    }
    print(f"wrote {out} (preset {preset})")
    for key, value in sorted(last.items()):
        print(f"  {key}: {value:.4f}")
    print(f"  calibrated thresholds ({config.calibrate}): {run.thresholds}")
    seconds = run.history["epoch_seconds"]
    print(f"  seconds per epoch: {', '.join(f'{t:.1f}' for t in seconds)}")


if __name__ == "__main__":
    cli(main)
