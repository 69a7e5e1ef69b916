"""Fuzz the tier-binary checks: corrupt a converted model's files, load what passes.

``python scripts/fuzz_tier_binaries.py tflite_models/fmnist6_mlpcc --variants 300 --seed 11``

Each variant truncates a tier file at a random length or flips a few random bytes. A
variant :func:`ddnn_tf.core.tflite_check.check_tier_binary` refuses is counted as
``refused by the reader``; every other one is loaded by :class:`TierRunner` (which
runs the same check, then the interpreter) and invoked once, in a fresh process, so a
crash shows as a signal instead of killing this script. Prints the counts; exit status 1
if any variant ended in a signal or an error other than a clean refusal.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ddnn_tf.core.manifest import load_manifest  # noqa: E402
from ddnn_tf.core.tflite_check import check_manifest_tier  # noqa: E402

CHILD = """
import sys
import numpy as np
from ddnn_tf.core.manifest import load_manifest
from ddnn_tf.runtime.tiers import TierRunner
model_dir, tier, target, path = sys.argv[1:5]
m = load_manifest(model_dir)
meta, entry = m["tiers"][tier], m["tiers"][tier]["files"][target]
runner = TierRunner(tier, open(path, "rb").read(), target=target, inputs=meta["inputs"],
                    outputs=meta["outputs"], input_order=entry.get("input_order"),
                    output_order=entry.get("output_order"), file=path)
runner({t["name"]: np.zeros(t["shape"], t["dtype"]) for t in meta["inputs"]})
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a converted model directory")
    parser.add_argument("--variants", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    manifest = load_manifest(args.model)
    files = [(t, g) for t, meta in manifest["tiers"].items() for g in meta["files"]]
    rng = random.Random(args.seed)
    counts = dict.fromkeys(
        ["refused by the reader", "refused by the interpreter", "other error", "ran", "signal"], 0
    )
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.variants):
            tier, target = rng.choice(files)
            data = bytearray(manifest.path(tier, target).read_bytes())
            if rng.random() < 0.3:
                data = data[: rng.randrange(len(data))]
            else:
                for _ in range(rng.randrange(1, 6)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
            try:
                check_manifest_tier(manifest, tier, target, data)
            except ValueError:
                counts["refused by the reader"] += 1
                continue
            path = Path(tmp) / f"variant{k}_{manifest.path(tier, target).name}"
            path.write_bytes(data)
            res = subprocess.run(
                [sys.executable, "-c", CHILD, args.model, tier, target, str(path)],
                capture_output=True,
                text=True,
                timeout=120,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            if res.returncode < 0:
                counts["signal"] += 1
                print(f"variant {k} ({tier}, {target}) ended in signal {-res.returncode}")
            elif "interpreter refused the file" in res.stderr:
                counts["refused by the interpreter"] += 1
            elif res.returncode:
                counts["other error"] += 1
                print(f"variant {k} ({tier}, {target}): {res.stderr.strip().splitlines()[-1]}")
            else:
                counts["ran"] += 1
    print(", ".join(f"{name}: {n}" for name, n in counts.items()))
    return 1 if counts["signal"] or counts["other error"] else 0


if __name__ == "__main__":
    sys.exit(main())
