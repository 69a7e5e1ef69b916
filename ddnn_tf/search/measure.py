"""What a trained model measures: its figures on the validation split, its device tiers
compiled for a board, and what a sample costs on the hardware.

:func:`measure_run` is what a trial and a reference run are both judged by: the overall
accuracy at the run's calibrated T, the bytes per device and the share of local exits on
the validation split, and the flash and RAM of its device tiers. Each device tier is
converted to its portable binary (as ``ddnn convert`` does), lowered and generated as C
(:mod:`ddnn_tf.mcu`), and compiled alone for the board
(:func:`ddnn_tf.mcu.build.footprint`): the same figures ``ddnn mcu`` and the manifest's
``c.footprint`` report. The largest device counts. On priced hardware
(:mod:`ddnn_tf.search.hardware`) the validation split's exits are also priced by the cost
model, with the instructions the static model gives each tier's generated C (what the
manifest's ``c.instructions`` records as ``modelled``).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from ddnn_tf.core.graph import tier_graph
from ddnn_tf.data import Dataset
from ddnn_tf.keras.convert.export import convert_tier
from ddnn_tf.keras.evaluate import evaluate_run
from ddnn_tf.keras.model import DDNN
from ddnn_tf.keras.rundir import Run
from ddnn_tf.mcu import build
from ddnn_tf.mcu.boards import Board
from ddnn_tf.mcu.codegen import generate_c
from ddnn_tf.mcu.lower import lower_tier
from ddnn_tf.mcu.opcount import modelled_instructions
from ddnn_tf.search.hardware import SearchHardware, priced_metrics

__all__ = ["DeviceFootprints", "measure_devices", "measure_run"]


@dataclass(frozen=True)
class DeviceFootprints:
    """Flash and RAM of every device tier (RAM: static data + the entry point's stack), and
    its instructions per sample as the static model gives them.

    Attributes:
        board: the board they were compiled for.
        flash_bytes / ram_bytes: per device, in order.
        instructions: per device, on the core asked for (empty when none was).
    """

    board: str
    flash_bytes: tuple[int, ...]
    ram_bytes: tuple[int, ...]
    instructions: tuple[float, ...] = ()


def measure_devices(
    ddnn: DDNN, board: Board, *, scale: float | None, core: str | None = None
) -> DeviceFootprints:
    """Compile every device tier of a trained model for ``board`` and measure it.

    Args:
        ddnn: the trained model.
        board: a compiler board (:func:`ddnn_tf.search.hardware.compiler_board`).
        scale: the sensors' uint8 scale (the dataset's ``input_scale``), None for float32.
        core: also model each tier's instructions per sample on this core
            (:func:`ddnn_tf.mcu.opcount.modelled_instructions` of its generated C).

    Raises:
        ConfigError: a device tier the C target cannot express exactly.
        DeploymentError: the compiler failed.
    """
    flash, ram, instructions = [], [], []
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
            if core is not None:
                instructions.append(modelled_instructions(sources.spec, sources.plan, core=core))
    return DeviceFootprints(board.name, tuple(flash), tuple(ram), tuple(instructions))


def measure_run(
    run: Run, dataset: Dataset, hardware: SearchHardware
) -> tuple[dict, DeviceFootprints]:
    """A trained run's metrics (keyed as :data:`ddnn_tf.search.objectives.METRICS`) on the
    validation split at its calibrated T, with its device tiers compiled for the board
    and, on priced hardware, its exits priced by the cost model.

    Returns:
        ``(metrics, footprints)``: ``accuracy``, ``bytes_per_device``, ``flash_bytes``,
        ``ram_bytes`` (the largest device's), ``local_exit_fraction``, ``threshold`` and
        ``exit_accuracy`` (each exit's, every sample exiting there); when priced,
        ``energy_uj_per_sample`` (the largest device's, expected at T),
        ``device_energy_uj``, ``latency_p95_ms``, ``max_rate_hz`` and
        ``instructions_per_sample`` (per device).

    Raises:
        ConfigError: a device tier the C target cannot express exactly.
        DeploymentError: the compiler failed.
    """
    footprints = measure_devices(
        run.ddnn, hardware.board, scale=dataset.input_scale, core=hardware.core
    )
    priced = hardware.priced
    keywords = hardware.price_keywords(footprints.instructions) if priced else None
    evaluation = evaluate_run(run, dataset, split="val", hardware=keywords)
    metrics = {
        "accuracy": float(evaluation["accuracy"]["overall"]),
        "bytes_per_device": float(evaluation["bytes_per_device"]),
        "flash_bytes": max(footprints.flash_bytes),  # the largest device tier's
        "ram_bytes": max(footprints.ram_bytes),
        "local_exit_fraction": float(evaluation["exit_fraction"].get("local", 0.0)),
        "threshold": evaluation["thresholds"].get("local"),
        "exit_accuracy": {e: float(evaluation["accuracy"][e]) for e in run.topology.exits},
    }
    if priced:
        metrics.update(priced_metrics(evaluation.cost))
    return metrics, footprints
