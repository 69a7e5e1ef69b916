"""Add the microcontroller targets to an existing converted model directory.

Usage::

    python scripts/add_mcu_targets.py tflite_models/fmnist6_mpcc [--targets c,tflm]

Writes, for every device tier, ``<tier>.c`` + ``<tier>.h`` (``c``) and
``<tier>.tflm.tflite`` (``tflm``) beside the binaries and adds their entries to the
manifest (``ddnn_tf.mcu.export.add_targets``), generated from the portable binaries in
the directory; no binary is changed. This is how the committed models got theirs: their
training runs are not part of the repository, so ``python -m ddnn_tf.convert RUN
--target portable,lce,c,tflm`` cannot remake them from a run.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ddnn_tf._cli import cli  # noqa: E402
from ddnn_tf.mcu.export import add_targets  # noqa: E402


def main(model: str, targets="c,tflm") -> None:
    """Add the C and/or TFLM targets of every device tier of MODEL.

    Args:
        model: a converted model directory.
        targets: c, tflm or c,tflm.
    """
    items = targets.split(",") if isinstance(targets, str) else list(targets)
    written = add_targets(model, [str(t).strip() for t in items])
    for tier, keys in written.items():
        parts = []
        if "c" in keys:
            fp = keys["c"]["footprint"]
            parts.append(
                f"{keys['c']['source']['file']}: {fp['flash_bytes']} B flash, "
                f"{fp['ram_bytes']} B RAM on {fp['board']}"
            )
        if "tflm" in keys:
            parts.append(f"{keys['tflm']['file']}: arena {keys['tflm']['arena_bytes']} B")
        print(f"{tier}: " + "; ".join(parts))


if __name__ == "__main__":
    cli(main)
