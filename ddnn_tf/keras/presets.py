"""Training settings and presets (numpy and the standard library only).

:class:`TrainConfig` holds what a run was trained with (``train_config.json`` in the run
directory); :data:`PRESETS` names the configurations ``ddnn train --preset`` offers:
``default`` (the toolkit's DDNN), ``best`` (the default with deeper devices, trained
longer) and ``paper`` (the paper's MP-CC and optimiser).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ddnn_tf.core.calibration import parse_calibrate
from ddnn_tf.core.topology import Topology
from ddnn_tf.core.vocab import LR_SCHEDULES, PRESET_NAMES
from ddnn_tf.data import Dataset
from ddnn_tf.errors import ConfigError

__all__ = [
    "DEFAULT_SENSOR_BITS",
    "PAPER_ADAM",
    "PRESETS",
    "TrainConfig",
    "preset_config",
    "preset_topology",
    "topology_for",
]

#: The paper's optimiser (Section IV-A): Adam, alpha 1e-3, beta1 0.9, beta2 0.999, eps 1e-8.
PAPER_ADAM = {"learning_rate": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8}

_DEFAULT_TOPOLOGY: dict[str, Any] = {
    "summary_bits": 4,
    "local_agg": "mlp",
    "local_units": 256,
    "cloud_precision": "float",
    "cloud_conv_layers": 2,
    "cloud_units": 256,
    "device_dropout": 0.15,
}
_DEFAULT_CONFIG: dict[str, Any] = {
    "learning_rate": 3e-3,
    "lr_schedule": "cosine",
    "batch_size": 256,
    "upper_epochs": 5,
    "calibrate": "risk:0.5",
}

#: ``paper``: the paper's MP-CC DDNN and optimiser. ``default``: the same binary devices
#: (f = 4, one ConvP block, 1 bit per feature) with a 4-bit summary, a learned local
#: aggregator (a ReLU layer of 256 over the six summaries and the presence mask), a
#: real-valued cloud (two ReLU dense layers over the concatenated binary features),
#: device dropout, a cosine-decayed higher learning rate, a second phase of 5 epochs
#: training the aggregator and the cloud on the frozen devices' outputs, and T calibrated
#: by ``risk:0.5``: the most local exits whose accuracy drop against the cloud exit is at
#: most 0.5 points with probability 0.9 (500 validation samples are enough to certify
#: it; docs/training.md, "Calibrating the threshold", says why 0.5).
#: ``best``: the default with deeper devices (two binary ConvP blocks of 16 filters: a
#: 3x4x16 map, 24 bytes; 546 bytes of binary weights) and a 512-unit cloud, trained for
#: 30 epochs, the same rule (docs/training.md, "The default model").
#: Keyed by :data:`ddnn_tf.core.vocab.PRESET_NAMES`.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {"topology": {}, "config": {}},
    "default": {"topology": dict(_DEFAULT_TOPOLOGY), "config": dict(_DEFAULT_CONFIG)},
    "best": {
        "topology": {
            **_DEFAULT_TOPOLOGY,
            "device_filters": 16,
            "device_conv_layers": 2,
            "cloud_units": 512,
        },
        "config": {**_DEFAULT_CONFIG, "epochs": 30},
    },
}


def _check_preset(preset: Any) -> None:
    if preset not in PRESET_NAMES:
        raise ConfigError(
            f"expected one of {', '.join(PRESET_NAMES)}, got {preset!r}.", argument="preset"
        )


def _check_number(
    name: str,
    value: Any,
    *,
    integer: bool = False,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    argument: str | None = None,
) -> None:
    """Raise ConfigError naming ``name`` unless ``value`` is a finite number in range."""
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    ok = isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (low is None or value > low or (value == low and not low_open))
    ok = ok and (high is None or value < high or (value == high and not high_open))
    if not ok:
        kind = "an integer" if integer else "a finite number"
        bounds = [f"{'>' if low_open else '>='} {low}" if low is not None else ""]
        bounds.append(f"{'<' if high_open else '<='} {high}" if high is not None else "")
        limits = " and ".join(b for b in bounds if b)
        raise ConfigError(
            f"{name} must be {kind}{' ' + limits if limits else ''}, got {value!r}.",
            argument=argument or name,
        )


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; the defaults are the paper's (equal exit weights, Adam).

    ``preset`` names the preset the settings came from (:func:`preset_config` sets it);
    ``None`` for settings made by hand. ``calibrate`` is the threshold rule on the
    validation split (:func:`ddnn_tf.core.calibration.parse_calibrate`). ``upper_epochs``:
    epochs of a second phase after the joint ones, the devices frozen and the tiers
    above them (aggregators, edges, cloud) trained on what the devices send, computed
    once in inference mode as deployed (:func:`ddnn_tf.keras.train.train_upper`).
    """

    epochs: int = 5
    batch_size: int = 128
    learning_rate: float = PAPER_ADAM["learning_rate"]
    beta_1: float = PAPER_ADAM["beta_1"]
    beta_2: float = PAPER_ADAM["beta_2"]
    epsilon: float = PAPER_ADAM["epsilon"]
    exit_weights: dict[str, float] | None = None  # None: 1.0 for every exit
    seed: int | None = 0
    lr_schedule: str = "constant"  # or "cosine": decays to 0 over all epochs
    calibrate: str = "accuracy"  # or "risk:DELTA[,EPS]", "within:D", "bytes:B" (core.calibration)
    preset: str | None = None
    upper_epochs: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            _check_number(name, getattr(self, name), integer=True, low=1)
        _check_number("learning_rate", self.learning_rate, low=0, low_open=True)
        for name in ("beta_1", "beta_2"):
            _check_number(name, getattr(self, name), low=0, high=1, high_open=True)
        _check_number("epsilon", self.epsilon, low=0, low_open=True)
        _check_number("upper_epochs", self.upper_epochs, integer=True, low=0)
        if self.seed is not None:
            _check_number("seed", self.seed, integer=True, low=0)
        if self.exit_weights is not None:
            if not isinstance(self.exit_weights, dict):
                raise ConfigError(
                    f"exit_weights must map exit names to weights, got {self.exit_weights!r}."
                )
            for exit_name, weight in self.exit_weights.items():
                _check_number(exit_name, weight, low=0, argument="exit_weights")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(
                f"expected one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}.",
                argument="lr_schedule",
            )
        if self.preset is not None:
            _check_preset(self.preset)
        parse_calibrate(self.calibrate)

    def weights_for(self, topology: Topology) -> dict[str, float]:
        weights = dict(self.exit_weights or {})
        unknown = sorted(set(weights) - set(topology.exits))
        if unknown:
            raise ConfigError(
                f"names exit(s) {unknown}, but the model's exits are {list(topology.exits)}.",
                argument="exit_weights",
            )
        return {e: float(weights.get(e, 1.0)) for e in topology.exits}


#: Bits of the sensor quantiser given to data sets whose sensors are real-valued.
DEFAULT_SENSOR_BITS = 8


def topology_for(dataset: Dataset, **options: Any) -> Topology:
    """A topology matching a dataset's devices and classes; options override defaults.

    Real-valued sensors (a data set with no uint8 ``input_scale``) get an int8 sensor
    quantiser at each device unless ``sensor_bits`` is given (0 for none): the device
    then computes on integers from its sensor on, and its C target is exact.
    """
    if dataset.input_scale is None and "sensor_bits" not in options:
        options = {**options, "sensor_bits": DEFAULT_SENSOR_BITS}
    return Topology(input_shapes=dataset.input_shapes, num_classes=dataset.num_classes, **options)


def preset_topology(dataset: Dataset, preset: str = "default", **options: Any) -> Topology:
    """The topology of a preset, sized for ``dataset``; ``options`` override the preset.

    Raises:
        ConfigError: an unknown preset or an invalid option.
    """
    _check_preset(preset)
    return topology_for(dataset, **{**PRESETS[preset]["topology"], **options})


def preset_config(preset: str = "default", **options: Any) -> TrainConfig:
    """The training settings of a preset; ``options`` override them."""
    _check_preset(preset)
    return TrainConfig(**{**PRESETS[preset]["config"], "preset": preset, **options})
