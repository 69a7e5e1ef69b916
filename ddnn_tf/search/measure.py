"""What a trained model measures: its figures on the validation split, and its device
tiers compiled for a board.

:func:`measure_run` is what a trial and a reference run are both judged by: the overall
accuracy at the run's calibrated T, the bytes per device and the share of local exits on
the validation split, and the flash and RAM of its device tiers. Each device tier is
converted to its portable binary (as ``ddnn convert`` does), lowered and generated as C
(:mod:`ddnn_tf.mcu`), and compiled alone for the board
(:func:`ddnn_tf.mcu.build.footprint`): the same figures ``ddnn mcu`` and the manifest's
``c.footprint`` report. The largest device counts.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from ddnn_tf.core.graph import tier_graph
from ddnn_tf.data import Dataset
from ddnn_tf.errors import ConfigError
from ddnn_tf.keras.convert.export import convert_tier
from ddnn_tf.keras.evaluate import evaluate_run
from ddnn_tf.keras.model import DDNN
from ddnn_tf.keras.rundir import Run
from ddnn_tf.mcu import build
from ddnn_tf.mcu.boards import Board, require_tools
from ddnn_tf.mcu.boards import board as find_board
from ddnn_tf.mcu.codegen import generate_c
from ddnn_tf.mcu.lower import lower_tier

__all__ = ["DeviceFootprints", "compiler_board", "measure_devices", "measure_run"]


@dataclass(frozen=True)
class DeviceFootprints:
    """Flash and RAM of every device tier (RAM: static data + the entry point's stack).

    Attributes:
        board: the board they were compiled for.
        flash_bytes / ram_bytes: per device, in order.
    """

    board: str
    flash_bytes: tuple[int, ...]
    ram_bytes: tuple[int, ...]

    @property
    def max_flash(self) -> int:
        return max(self.flash_bytes)

    @property
    def max_ram(self) -> int:
        return max(self.ram_bytes)


def compiler_board(name: str, *, argument: str = "mcu") -> Board:
    """The board ``name``, if the device tiers compile for it, with its tools checked.

    Raises:
        ConfigError: an unknown board, or one that is no compiler target (``tflm``).
        FileNotFoundError: its compiler is not installed (naming the packages).
    """
    b = find_board(name, argument=argument)
    if b.kind not in ("qemu", "host"):
        raise ConfigError(
            f"{name} is an interpreter, not a compiler target: the search compiles the "
            f"device tiers as C; choose mps2-an386, mps2-an385 or host.",
            argument=argument,
        )
    require_tools(b)
    return b


def measure_devices(ddnn: DDNN, board: Board, *, scale: float | None) -> DeviceFootprints:
    """Compile every device tier of a trained model for ``board`` and measure it.

    Args:
        ddnn: the trained model.
        board: a compiler board (:func:`compiler_board`).
        scale: the sensors' uint8 scale (the dataset's ``input_scale``), None for float32.

    Raises:
        ConfigError: a device tier the C target cannot express exactly.
        DeploymentError: the compiler failed.
    """
    flash, ram = [], []
    plans = [p for p in tier_graph(ddnn.topology, None) if p.role == "device"]
    quantizers = ddnn.sensor_quantizers()  # real-valued sensors: their int codes
    with tempfile.TemporaryDirectory(prefix="ddnn_search_c_") as tmp:
        for plan in plans:
            portable = convert_tier(ddnn, plan, targets=("portable",))["portable"]
            q = quantizers[plan.device]
            spec = lower_tier(plan.name, portable, scale=None if q else scale, quantizer=q)
            sources = generate_c(spec)
            fp = build.footprint(sources, board, Path(tmp) / plan.name)
            flash.append(fp.flash_bytes)
            ram.append(fp.ram_bytes)
    return DeviceFootprints(board.name, tuple(flash), tuple(ram))


def measure_run(run: Run, dataset: Dataset, board: Board) -> tuple[dict, DeviceFootprints]:
    """A trained run's metrics (keyed as :data:`ddnn_tf.search.objectives.METRICS`) on the
    validation split at its calibrated T, with its device tiers compiled for ``board``.

    Returns:
        ``(metrics, footprints)``: ``accuracy``, ``bytes_per_device``, ``flash_bytes``,
        ``ram_bytes`` (the largest device's), ``local_exit_fraction``, ``threshold`` and
        ``exit_accuracy`` (each exit's, every sample exiting there).

    Raises:
        ConfigError: a device tier the C target cannot express exactly.
        DeploymentError: the compiler failed.
    """
    evaluation = evaluate_run(run, dataset, split="val")
    footprints = measure_devices(run.ddnn, board, scale=dataset.input_scale)
    metrics = {
        "accuracy": float(evaluation["accuracy"]["overall"]),
        "bytes_per_device": float(evaluation["bytes_per_device"]),
        "flash_bytes": footprints.max_flash,
        "ram_bytes": footprints.max_ram,
        "local_exit_fraction": float(evaluation["exit_fraction"].get("local", 0.0)),
        "threshold": evaluation["thresholds"].get("local"),
        "exit_accuracy": {e: float(evaluation["accuracy"][e]) for e in run.topology.exits},
    }
    return metrics, footprints
