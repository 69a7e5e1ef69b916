"""``python -m ddnn_tf.mcu MODEL_DIR --data fmnist6 [--limit N] [--board B] [--json]``: the
command line over :func:`ddnn_tf.mcu.check_model`."""

from __future__ import annotations

import json as _json
import sys

from ddnn_tf._cli import cli
from ddnn_tf.mcu.check import check_model, format_report

__all__ = ["main"]


def main(
    model: str,
    data: str = "fmnist6",
    limit: int | None = None,
    board: str = "mps2-an386",
    timeout_s: float | None = None,
    json: bool = False,  # noqa: A002  (the conventional flag name)
) -> None:
    """Run every device tier of a converted model on a microcontroller (or the host, or
    TensorFlow Lite Micro) and compare its wire messages with ai-edge-litert's.

    Args:
        model: a converted model directory (tflite_models/NAME).
        data: the dataset whose test split feeds the devices.
        limit: the first N test samples (default: all).
        board: mps2-an386 (Cortex-M4, QEMU), mps2-an385 (Cortex-M3, QEMU), host or tflm.
        timeout_s: seconds one device may run before it counts as hung.
        json: print machine-readable JSON instead of a table.
    """
    report = check_model(
        model, data, board=board, limit=limit, timeout_s=timeout_s, progress=not json
    )
    print(_json.dumps(report, indent=2) if json else format_report(report))
    if not report["ok"]:
        sys.exit(1)


if __name__ == "__main__":
    cli(main)
