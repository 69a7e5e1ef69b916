"""Add the microcontroller targets to an existing converted model directory.

Usage::

    python scripts/add_mcu_targets.py tflite_models/fmnist6_mlpcc [--targets c,tflm]

Writes, for every device tier, ``<tier>.c`` + ``<tier>.h`` (``c``) and
``<tier>.tflm.tflite`` (``tflm``) beside the binaries and adds their entries to the
manifest (``ddnn_tf.mcu.export.add_targets``), generated from the portable binaries in
the directory; no binary is changed. This is how the committed models got theirs: their
training runs are not part of the repository, so ``ddnn convert RUN --target
portable,lce,c,tflm`` cannot remake them from a run. Exit status 2 with one ``error:``
line for a bad model, target or a missing toolchain.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ddnn_tf.errors import DDNNError  # noqa: E402
from ddnn_tf.mcu.export import add_targets  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a converted model directory")
    parser.add_argument("--targets", default="c,tflm", help="c, tflm or c,tflm")
    args = parser.parse_args(argv)
    try:
        written = add_targets(args.model, [t.strip() for t in args.targets.split(",")])
    except (DDNNError, OSError, ModuleNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
