"""``ddnn mcu MODEL [--data fmnist6] [--board B]``: every device tier of a converted model
on a microcontroller, compared byte for byte with ai-edge-litert
(:func:`ddnn_tf.mcu.check_model`); ``--count-instructions`` counts each tier's
instructions per sample on the emulated cores and records them in the manifest
(:func:`ddnn_tf.mcu.instructions.record_instructions`)."""

from __future__ import annotations

import sys

from ddnn_tf.cli.flags import AT_LEAST_1, command
from ddnn_tf.core.vocab import DEFAULT_BOARD

__all__ = ["mcu"]


def _instruction_table(written: dict) -> str:
    lines = [f"{'tier':<12}{'core':<16}{'measured':>12}{'modelled':>12}{'error':>9}  board"]
    for tier, cores in written.items():
        for core, e in cores.items():
            lines.append(
                f"{tier:<12}{core:<16}{e['measured']:>12,.0f}{e['modelled']:>12,.0f}"
                f"{e['error_percent']:>+8.1f}%  {e['board']} ({e['samples']} samples)"
            )
    return "\n".join(lines)


@command(samples=AT_LEAST_1)
def mcu(
    model: str,
    data: str | None = None,
    limit: int | None = None,
    board: str = DEFAULT_BOARD,
    timeout_s: float | None = None,
    count_instructions: bool = False,
    samples: int = 8,
    json: bool = False,  # noqa: A002  (the flag is --json)
) -> None:
    """Run the device tiers as C on a microcontroller and compare them with LiteRT.

    Every device tier of a converted model runs on an emulated Cortex-M board (or as the
    same C on the host, or as its TensorFlow Lite Micro variant); each sample's wire
    messages are compared byte for byte with ai-edge-litert's. Exit status 1 when a
    device mismatches, crashes or hangs.

    Args:
        model: a converted model directory (tflite_models/NAME).
        data: the dataset whose test split feeds the devices (default: the one the
            model's manifest records).
        limit: the first N test samples (default: all).
        board: mps2-an386 (Cortex-M4, QEMU), mps2-an385 (Cortex-M3, QEMU), host (the
            system gcc) or tflm (TensorFlow Lite Micro's interpreter).
        timeout_s: seconds one device may run before it counts as hung (default: 30 s
            plus 30 s per 1,000 samples).
        count_instructions: instead of the check, count each device tier's instructions
            per sample exactly on the emulated Cortex-M4F and Cortex-M0+ (QEMU), compare
            them with the static model and record both in the model's manifest
            (c.instructions), which ddnn cost reads.
        samples: test samples per count (the emulator logs every instruction: keep it small).
        json: print machine-readable JSON instead of a table.
    """
    import json as _json

    if count_instructions:
        from ddnn_tf.mcu.instructions import record_instructions

        written = record_instructions(model, data, samples=samples, progress=not json)
        print(_json.dumps(written, indent=2) if json else _instruction_table(written))
        return

    from ddnn_tf.mcu.check import check_model, format_report

    report = check_model(
        model, data, board=board, limit=limit, timeout_s=timeout_s, progress=not json
    )
    print(_json.dumps(report, indent=2) if json else format_report(report))
    if not report["ok"]:
        sys.exit(1)


COMMAND = mcu
