"""``ddnn train``: train a DDNN and write a run directory
(:func:`ddnn_tf.keras.train.train_preset`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ddnn_tf.cli.flags import (
    AT_LEAST_1,
    NON_NEGATIVE,
    POSITIVE,
    Range,
    command,
    flag_items,
    with_options,
)
from ddnn_tf.core.options import Options, option
from ddnn_tf.core.vocab import EXITS
from ddnn_tf.errors import ConfigError

__all__ = ["TopologyFlags", "train"]


def _exit_weights(value) -> dict[str, float] | list[float] | None:
    """``local=1,cloud=0.5`` (by name) or ``1,0.5`` (bottom to top)."""
    if value is None or isinstance(value, dict):
        return value
    parts = flag_items(value)
    try:
        if all("=" in p for p in parts):
            return {k.strip(): float(v) for k, v in (p.split("=", 1) for p in parts)}
        return [float(p) for p in parts]
    except ValueError:
        raise ConfigError(
            f"--exit-weights: expected e.g. local=1,cloud=1 or 1,1; got {value!r}."
        ) from None


def _edges(value) -> list[list[int]]:
    """``0,1,2;3,4,5`` (or ``[[0,1,2],[3,4,5]]`` as fire parses it): one group per edge."""
    if isinstance(value, str):
        groups = flag_items(value, ";")
    elif isinstance(value, (list, tuple)) and all(isinstance(g, (list, tuple)) for g in value):
        groups = list(value)
    else:
        groups = [value]
    return [[int(d) for d in flag_items(g)] for g in groups]


@dataclass(frozen=True, kw_only=True)
class TopologyFlags(Options):
    """The flags of ``ddnn train`` that override the preset's Topology."""

    local_agg: str | None = option(
        None, "local aggregator: max, avg, concat (+ a linear layer) or mlp (a ReLU layer "
        "of --local-units over the summaries and the presence mask, then a linear one)",
    )  # fmt: skip
    cloud_agg: str | None = option(None, "how the cloud combines the devices' (or edges') features")
    edge_agg: str | None = option(None, "how an edge combines its devices' features")
    device_filters: int | None = option(
        None, "filters of each device's binary conv layers (the paper's f)", AT_LEAST_1
    )
    cloud_filters: int | None = option(
        None, "filters of the cloud's binary conv layers", AT_LEAST_1
    )
    cloud_layers: int | None = option(None, "conv blocks in the cloud", AT_LEAST_1)
    cloud_units: int | None = option(
        None, "width of the real-valued cloud's dense layers", AT_LEAST_1
    )
    local_units: int | None = option(
        None, "width of the mlp local aggregator's hidden layer", AT_LEAST_1
    )
    edges: str | None = option(None, 'device groups, one per edge, e.g. "0,1,2;3,4,5"')
    exits: str | None = option(
        None, 'e.g. "local,cloud" (default), "local,edge,cloud" (needs --edges), "cloud"'
    )
    device_dropout: float | None = option(
        None, "probability that a device is dropped from a training sample",
        Range(0, 1, high_open=True),
    )  # fmt: skip
    summary_bits: int | None = option(
        None, "bits per class of the devices' summaries: 0 (float32) or 4 (int4)"
    )
    sensor_bits: int | None = option(
        None, "quantise real-valued sensors at the device to int8 (8) or int16 (16) codes, "
        "scale and zero point per channel from the training data, so the device computes "
        "on integers and its C is exact; 0 feeds the values as they are (default: 8 for "
        "real-valued sensors, 0 for uint8 pixels)",
    )  # fmt: skip
    cloud_precision: str | None = option(None, "binary (the paper's blocks) or float")
    device_grid: Any = option(
        None, '"ROWS,COLS" when the devices\' views tile one image (fmnist6: 3,2): the '
        "cloud lays their maps out in that grid",
    )  # fmt: skip

    def options(self) -> dict[str, Any]:
        """The Topology options given (those left out are the preset's)."""
        parsed = ("cloud_layers", "edges", "exits", "device_grid")  # the others as given
        options = {k: v for k, v in asdict(self).items() if v is not None and k not in parsed}
        if self.cloud_layers is not None:
            options["cloud_conv_layers"] = self.cloud_layers
        if self.edges is not None:
            options["edges"] = _edges(self.edges)
            options["exits"] = EXITS
        if self.exits:
            options["exits"] = tuple(flag_items(self.exits))
        if self.device_grid is not None:
            options["device_grid"] = [int(g) for g in flag_items(self.device_grid)]
        return options


@command(learning_rate=POSITIVE, upper_epochs=NON_NEGATIVE)
@with_options(TopologyFlags, "topology")
def train(
    data: str = "fmnist6",
    out: str = "runs/default",
    path: str | None = None,
    preset: str = "default",
    epochs: int | None = None,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    lr_schedule: str | None = None,
    topology: TopologyFlags | None = None,
    exit_weights=None,
    upper_epochs: int | None = None,
    calibrate: str | None = None,
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
        preset: "default" (4-bit summaries, a learned local aggregator, a real-valued
            dense cloud, device dropout, cosine schedule, 5 epochs of the upper tiers on
            the frozen devices, T certified by risk:0.5), "best" (the default with two
            binary conv blocks of 16 filters per device and a 512-unit cloud, 30 epochs)
            or "paper" (the paper's MP-CC and Adam, the most accurate T); other flags
            override it.
        epochs: joint training epochs (default: the preset's, 5; best: 30).
        batch_size: samples per step (default: the preset's).
        learning_rate: Adam's learning rate (default: the preset's).
        lr_schedule: constant or cosine (default: the preset's).
        exit_weights: per-exit loss weights, "local=1,cloud=1" or "1,1" (bottom to top).
        upper_epochs: after the joint epochs, epochs of the tiers above the devices
            (aggregators, edges, cloud) trained on the frozen devices' outputs (default:
            the preset's; 0 for none).
        calibrate: threshold rule on the validation split: "risk:DELTA[,EPS]" (the most
            early exits whose accuracy drop against the top exit is at most DELTA points
            with probability 1 - EPS, EPS 0.1 by default), "within:D" (the T exiting the
            most samples locally within D accuracy points of the most accurate T),
            "accuracy" (the most accurate T) or "bytes:B" (the most accurate T within B
            bytes per device per sample); default: the preset's (default and best:
            risk:0.5; paper: accuracy).
        seed: seed of the split, the initial weights and the shuffling.
        train_limit: keep only the first N training samples.
        individual: also train each device's individual baseline.
        overwrite: replace an existing run directory.
        verbose: 0 quiet, 1 progress bar, 2 one line per epoch.
    """
    from ddnn_tf.keras.train import train_preset

    overrides = dict(
        batch_size=batch_size,
        learning_rate=learning_rate,
        lr_schedule=lr_schedule,
        upper_epochs=upper_epochs,
    )
    run = train_preset(
        data,
        out,
        path=path,
        preset=preset,
        epochs=epochs,
        seed=seed,
        train_limit=train_limit,
        topology_options=(topology or TopologyFlags()).options(),
        config_options={k: v for k, v in overrides.items() if v is not None},
        exit_weights=_exit_weights(exit_weights),
        calibrate=None if calibrate is None else str(calibrate),
        individual=individual,
        overwrite=overwrite,
        verbose=verbose,
    )
    print(_summary(run, out, preset))


def _summary(run, out: str, preset: str) -> str:
    """What ``ddnn train`` prints: the last validation accuracies, T, the epochs' times."""
    prefix = "upper_" if run.config.upper_epochs else ""  # the tiers as trained last
    last = {
        k[len(prefix) :]: v[-1]
        for k, v in run.history.items()
        if k.startswith(f"{prefix}val_") and k.endswith("accuracy")
    }
    lines = [f"wrote {out} (preset {preset})"]
    lines += [f"  {key}: {value:.4f}" for key, value in sorted(last.items())]
    lines.append(f"  calibrated thresholds: {run.thresholds}")
    if run.calibration is not None:
        lines.append(f"  T calibrated by {run.calibration.describe()}")
    seconds = run.history["epoch_seconds"]
    lines.append(f"  seconds per epoch: {', '.join(f'{t:.1f}' for t in seconds)}")
    if run.config.upper_epochs:
        upper = run.history["upper_epoch_seconds"]
        lines.append(
            f"  seconds per epoch of the upper tiers: {', '.join(f'{t:.1f}' for t in upper)}"
        )
    return "\n".join(lines)


COMMAND = train
