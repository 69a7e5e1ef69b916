"""The run directory: a trained DDNN with what it was trained on, saved and reloaded.

:func:`save_run` writes (atomically: a temporary directory, then a rename)::

    runs/NAME/
      topology.json      the hierarchy (Topology.to_json)
      dataset.json       how to reload the data (load_dataset(**spec)) + classes
      train_config.json  preset, epochs, batch size, optimiser, lr schedule, exit weights,
                         threshold calibration rule, seed, epochs of the upper tiers
      history.json       per-epoch losses and accuracies of every exit
      thresholds.json    exit thresholds calibrated on the validation split
      calibration.json   the rule that chose them, the validation size and, for
                         risk:DELTA,EPS, the certified bound
      weights.h5         weights of the composed model (all tiers)
      individual.json    (with --individual) per-device baseline accuracies

and :func:`load_run` rebuilds the identical model from it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ddnn_tf.core.calibration import Calibration
from ddnn_tf.core.files import atomic_directory, read_json
from ddnn_tf.core.schemas import validate_document
from ddnn_tf.core.topology import Topology
from ddnn_tf.data import Dataset, load_dataset
from ddnn_tf.errors import FormatError
from ddnn_tf.keras.model import DDNN, build_ddnn
from ddnn_tf.keras.presets import TrainConfig

__all__ = ["RUN_MARKER", "WEIGHTS_FILE", "Run", "load_run", "save_run"]

WEIGHTS_FILE = "weights.h5"
RUN_MARKER = "topology.json"  # a directory with it was written by save_run


@dataclass
class Run:
    """A trained DDNN with what it was trained on.

    Attributes:
        topology: the hierarchy.
        ddnn: the tier models and the composed model.
        dataset_spec: ``load_dataset(**spec)`` reloads the data.
        config: the :class:`~ddnn_tf.keras.presets.TrainConfig` it was trained with.
        history: per-epoch losses and accuracies.
        thresholds: ``{exit: T}`` calibrated on the validation split.
        calibration: what chose them (None for a run written before it was recorded).
        individual: the per-device baselines, if trained.
        path: the run directory, once saved or loaded.
    """

    topology: Topology
    ddnn: DDNN
    dataset_spec: dict[str, Any]
    config: TrainConfig
    history: dict[str, list[float]] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    calibration: Calibration | None = None
    individual: dict[str, Any] | None = None
    path: Path | None = None

    def load_data(self) -> Dataset:
        """The dataset the run was trained on, reloaded from its spec."""
        return load_dataset(**self.dataset_spec)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def save_run(
    run: Run, out: str | Path, *, dataset: Dataset | None = None, overwrite: bool = False
) -> Path:
    """Write ``run`` to directory ``out`` atomically (temporary dir, then rename).

    Args:
        run: the trained run.
        out: the run directory to write.
        dataset: its dataset, whose class and device names and raw sizes are recorded
            (so converting the run needs no data).
        overwrite: replace an existing directory.

    Returns:
        ``out``; ``run.path`` is set to it.

    Raises:
        ValueError: ``out`` exists and ``overwrite`` is False.
    """
    out = Path(out)
    with atomic_directory(out, overwrite=overwrite, what="Run directory") as tmp:
        run.topology.to_json(tmp / "topology.json")
        data_info = {"spec": run.dataset_spec}
        if dataset is not None:
            data_info.update(
                classes=list(dataset.classes),
                device_names=list(dataset.device_names),
                raw_bytes_per_device=list(dataset.raw_bytes_per_device),
                input_scale=dataset.input_scale,
            )
        _write_json(tmp / "dataset.json", data_info)
        _write_json(tmp / "train_config.json", dataclasses.asdict(run.config))
        _write_json(tmp / "history.json", run.history)
        _write_json(tmp / "thresholds.json", run.thresholds)
        if run.calibration is not None:
            _write_json(tmp / "calibration.json", run.calibration.to_dict())
        run.ddnn.model.save_weights(str(tmp / WEIGHTS_FILE))
        if run.individual is not None:
            _write_json(tmp / "individual.json", run.individual)
    run.path = out
    return out


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: {path.parent} is not a complete run directory "
            "(training writes one)."
        )
    return validate_document(
        read_json(path), path.name, path
    )  # its declared schema (ddnn_tf.core.schemas)


def load_run(path: str | Path) -> Run:
    """Reload a run directory into an identical model.

    Args:
        path: the run directory.

    Returns:
        The :class:`Run`, with ``path`` set.

    Raises:
        FileNotFoundError: the directory or one of its files is missing.
        FormatError: a file is corrupt or the weights do not fit the topology.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"Run directory not found: {path}")
    topology = Topology.from_dict(_read_json(path / "topology.json"))
    data_info = _read_json(path / "dataset.json")
    config = TrainConfig(**_read_json(path / "train_config.json"))
    history = _read_json(path / "history.json")
    thresholds = _read_json(path / "thresholds.json") if (path / "thresholds.json").exists() else {}
    calibration = (
        Calibration.from_dict(_read_json(path / "calibration.json"))
        if (path / "calibration.json").exists()
        else None
    )
    if calibration is not None and calibration.thresholds != thresholds:
        raise FormatError(
            f"{path / 'calibration.json'}: thresholds: expected thresholds.json's "
            f"{thresholds}, got {calibration.thresholds}."
        )
    individual = (
        _read_json(path / "individual.json") if (path / "individual.json").exists() else None
    )
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} is missing: the run has no trained weights.")
    ddnn = build_ddnn(topology)
    try:
        ddnn.model.load_weights(str(weights))
    except (OSError, ValueError, KeyError) as err:
        raise FormatError(f"Cannot read weights {weights}: {err}") from None
    return Run(
        topology=topology,
        ddnn=ddnn,
        dataset_spec=data_info["spec"],
        config=config,
        history=history,
        thresholds=thresholds,
        calibration=calibration,
        individual=individual,
        path=path,
    )
