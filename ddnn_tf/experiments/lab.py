"""What the experiments share: their settings, and a lab that trains and caches models."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ddnn_tf.core.calibration import parse_calibrate
from ddnn_tf.core.exits import PAPER_THRESHOLD
from ddnn_tf.errors import ConfigError

__all__ = ["LOCAL_EXIT_TARGET", "ExperimentSettings", "Lab", "subset_devices"]

#: Section IV-F: "we configure the local exit threshold T such that around 75% of samples
#: are exited locally".
LOCAL_EXIT_TARGET = 0.75


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass(frozen=True)
class ExperimentSettings:
    """Options shared by every experiment, validated once.

    Args:
        epochs: training epochs of the default model (MP-CC, all devices, f = 4).
        sweep_epochs: epochs of the models the sweeps train (aggregation schemes,
            scaling subsets and individual baselines, filter counts); None = ``epochs``.
        batch_size: training batch size.
        seed: seed of training and of the random device-failure sets.
        threshold: T of every "overall" accuracy (the paper's 0.8).
        max_filters: the filters experiment trains f = 1..max_filters.
        fault_sets: for each number k of failed devices (2..D-1), evaluate every subset
            when there are at most this many, else a seeded random sample of this many.
        local_exit_target: fraction of validation samples the filters experiment exits
            locally (the paper's ~75%).
        verbose: 0 silent, 1 progress lines, 2 also Keras' per-epoch lines.
        model: the calibration experiment: a converted model whose binaries give the
            exits' probabilities (None: train the ``default`` preset).
        draws: the calibration experiment: validation subsets drawn per size.
        val_sizes: the calibration experiment: the subset sizes (the whole validation
            split is added).
        rule: the calibration experiment: the rule under test (None: the ``default``
            preset's).
        baseline: the calibration experiment: the rule it is compared with.

    Raises:
        ValueError: an option out of range; the message names its CLI flag.
    """

    epochs: int = 5
    sweep_epochs: int | None = None
    batch_size: int = 128
    seed: int = 0
    threshold: float = PAPER_THRESHOLD
    max_filters: int = 4
    fault_sets: int = 10
    local_exit_target: float = LOCAL_EXIT_TARGET
    verbose: int = 1
    model: str | None = None
    draws: int = 200
    val_sizes: tuple[int, ...] = (200, 500, 1000, 2000)
    rule: str | None = None
    baseline: str = "within:0.25"

    def __post_init__(self) -> None:
        for name, low in (
            ("epochs", 1),
            ("batch_size", 1),
            ("max_filters", 1),
            ("fault_sets", 1),
            ("seed", 0),
            ("draws", 1),
        ):
            value = getattr(self, name)
            if not _is_int(value) or value < low:
                raise ConfigError(
                    f"{name} must be an integer >= {low}, got {value!r}.", argument=name
                )
        if self.sweep_epochs is not None and not (
            _is_int(self.sweep_epochs) and self.sweep_epochs >= 1
        ):
            raise ConfigError(
                f"sweep_epochs must be an integer >= 1 (or unset), got {self.sweep_epochs!r}.",
                argument="sweep_epochs",
            )
        sizes = tuple(self.val_sizes)
        if not sizes or not all(_is_int(v) and v >= 1 for v in sizes):
            raise ConfigError(
                f"val_sizes must be integers >= 1 (e.g. 200,500,2000), got {self.val_sizes!r}.",
                argument="val_sizes",
            )
        object.__setattr__(self, "val_sizes", tuple(int(v) for v in sizes))
        for name in ("rule", "baseline"):
            value = getattr(self, name)
            if value is not None:
                try:
                    parse_calibrate(value)
                except ConfigError as err:
                    message = str(err).removeprefix("calibrate: ")
                    raise ConfigError(f"{name}: {message}", argument=name) from None
        if not 0.0 <= float(self.threshold) <= 1.0:
            raise ConfigError(
                f"threshold must be in [0, 1], got {self.threshold!r}.", argument="threshold"
            )
        if not 0.0 < float(self.local_exit_target) < 1.0:
            raise ConfigError(
                f"local_exit_target must be in (0, 1), got {self.local_exit_target!r}.",
                argument="local_exit_target",
            )

    @property
    def sweep(self) -> int:
        """Epochs of the sweep models."""
        return int(self.sweep_epochs or self.epochs)


def subset_devices(dataset, devices: Sequence[int]):
    """A copy of ``dataset`` that keeps only the views of ``devices`` (in that order).

    The arrays are shared, not copied. The returned dataset's ``spec`` still reloads the
    full dataset (plus a ``devices`` note), so save no run trained on it as if it did.

    Args:
        dataset: a :class:`~ddnn_tf.data.Dataset`.
        devices: device indices to keep.

    Returns:
        The dataset of those devices.

    Raises:
        ValueError: an index outside ``0..D-1``, or no index.
    """
    from ddnn_tf.data import Split

    devices = [int(d) for d in devices]
    if not devices or any(not 0 <= d < dataset.num_devices for d in devices):
        raise ConfigError(
            f"Expected device indices in 0..{dataset.num_devices - 1}, got {devices}."
        )

    def cut(split):
        return Split(
            x=tuple(split.x[d] for d in devices), y=split.y, present=split.present[:, devices]
        )

    return dataclasses.replace(
        dataset,
        train=cut(dataset.train),
        val=cut(dataset.val),
        test=cut(dataset.test),
        device_names=tuple(dataset.device_names[d] for d in devices),
        raw_bytes_per_device=tuple(dataset.raw_bytes_per_device[d] for d in devices),
        spec={**dataset.spec, "devices": devices},
    )


class Lab:
    """Trains, caches and evaluates the models the experiments share.

    Args:
        dataset: the data (a :class:`~ddnn_tf.data.Dataset`).
        settings: the :class:`ExperimentSettings`.
        train_fn: trains one DDNN, called as ``train_fn(dataset, topology, config,
            verbose=...)`` and returning a :class:`~ddnn_tf.keras.rundir.Run`; default
            :func:`ddnn_tf.keras.train.train`.
    """

    def __init__(
        self,
        dataset,
        settings: ExperimentSettings | None = None,
        *,
        train_fn: Callable[..., Any] | None = None,
    ):
        self.dataset = dataset
        self.settings = settings or ExperimentSettings()
        self._train_fn = train_fn
        self._runs: dict[tuple, Any] = {}
        self._individual: list[float] | None = None
        self.trainings = 0
        self.start = time.perf_counter()

    def log(self, message: str) -> None:
        """Print a progress line with the elapsed time (when ``settings.verbose``)."""
        if self.settings.verbose:
            elapsed = time.perf_counter() - self.start
            print(f"[{elapsed:7.1f}s] {message}", flush=True)

    def _config(self, epochs: int):
        from ddnn_tf.keras.presets import TrainConfig

        s = self.settings
        return TrainConfig(epochs=int(epochs), batch_size=s.batch_size, seed=s.seed)

    @property
    def _keras_verbose(self) -> int:
        return 2 if self.settings.verbose >= 2 else 0

    def model(
        self,
        *,
        local_agg: str = "max",
        cloud_agg: str = "concat",
        device_filters: int = 4,
        devices: Sequence[int] | None = None,
        epochs: int | None = None,
        label: str = "",
    ):
        """The trained run of one configuration (trained on first use, then cached).

        Args:
            local_agg: the local aggregation scheme.
            cloud_agg: the cloud aggregation scheme.
            device_filters: filters of each device's ConvP block.
            devices: train on these devices only (default: all).
            epochs: training epochs (default ``settings.epochs``).
            label: how progress lines name the model.

        Returns:
            ``(run, dataset)``: the run, and the dataset it was trained on (the lab's, or
            its subset of ``devices``).
        """
        from ddnn_tf.keras.presets import topology_for
        from ddnn_tf.keras.train import train

        n = self.dataset.num_devices
        devices = tuple(range(n)) if devices is None else tuple(sorted(int(d) for d in devices))
        epochs = int(epochs or self.settings.epochs)
        key = (local_agg, cloud_agg, int(device_filters), devices, epochs)
        data = self.dataset if devices == tuple(range(n)) else subset_devices(self.dataset, devices)
        if key not in self._runs:
            topology = topology_for(
                data, local_agg=local_agg, cloud_agg=cloud_agg, device_filters=int(device_filters)
            )
            self.log(f"training {label or key} ({epochs} epochs, {len(data.train)} samples)")
            t0 = time.perf_counter()
            self._runs[key] = (self._train_fn or train)(
                data, topology, self._config(epochs), verbose=self._keras_verbose
            )
            self.trainings += 1
            self.log(f"  trained in {time.perf_counter() - t0:.0f}s")
        return self._runs[key], data

    def default(self):
        """The paper's model: MP-CC, all devices, f = 4, ``settings.epochs`` epochs."""
        run, _ = self.model(label="default model MP-CC f=4")
        return run

    def preset(self, name: str, epochs: int | None = None):
        """The trained run of a training preset (``paper`` or ``default``), cached.

        ``paper`` is :meth:`default`'s model; ``default`` the toolkit's default
        (``ddnn_tf.keras.presets.PRESETS``), trained with its own optimiser settings.
        """
        from ddnn_tf.keras.presets import preset_config, preset_topology
        from ddnn_tf.keras.train import train

        if name == "paper" and epochs is None:
            return self.default()
        epochs = int(epochs or self.settings.epochs)
        key = ("preset", name, epochs)
        if key not in self._runs:
            topology = preset_topology(self.dataset, name)
            config = preset_config(name, epochs=epochs, seed=self.settings.seed)
            self.log(
                f"training the {name} preset ({epochs} epochs, {len(self.dataset.train)} samples)"
            )
            t0 = time.perf_counter()
            self._runs[key] = (self._train_fn or train)(
                self.dataset, topology, config, verbose=self._keras_verbose
            )
            self.trainings += 1
            self.log(f"  trained in {time.perf_counter() - t0:.0f}s")
        return self._runs[key]

    def individual(self) -> list[float]:
        """Test accuracy of each device's individual baseline (trained once)."""
        if self._individual is None:
            from ddnn_tf.keras.presets import topology_for
            from ddnn_tf.keras.train import train_individual

            n, epochs = self.dataset.num_devices, self.settings.sweep
            self.log(f"training {n} individual baselines ({epochs} epochs)")
            t0 = time.perf_counter()
            result = train_individual(
                self.dataset,
                topology_for(self.dataset),
                self._config(epochs),
                verbose=self._keras_verbose,
            )
            self.trainings += n
            self._individual = [float(a) for a in result["accuracy"]]
            self.log(
                f"  trained in {time.perf_counter() - t0:.0f}s: "
                + ", ".join(f"{a:.3f}" for a in self._individual)
            )
        return self._individual

    @property
    def has_individual(self) -> bool:
        """Whether the individual baselines are trained already."""
        return self._individual is not None

    def evaluate(self, run, data=None, **options) -> dict[str, Any]:
        """:func:`ddnn_tf.keras.evaluate.evaluate_run` on the lab's data, at ``settings.threshold``."""
        from ddnn_tf.keras.evaluate import evaluate_run

        options.setdefault("threshold", self.settings.threshold)
        return evaluate_run(run, data if data is not None else self.dataset, **options)
