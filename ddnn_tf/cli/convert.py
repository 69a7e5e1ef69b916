"""``ddnn convert``: a trained run split into per-tier binaries and a manifest
(:func:`ddnn_tf.keras.convert.convert`), checked against Keras on request
(:func:`ddnn_tf.keras.convert.parity`)."""

from __future__ import annotations

import sys
from pathlib import Path

from ddnn_tf.cli.flags import command
from ddnn_tf.core import manifest as mf
from ddnn_tf.core.calibration import Calibration

__all__ = ["convert"]


def _summary_table(out: Path) -> str:
    manifest = mf.load_manifest(out)
    lines = [f"wrote {out} (split {','.join(manifest['split'])}, quantize {manifest['quantize']})"]
    lines.append(f"{'tier':<18}{'target':<10}{'file':<30}{'bytes':>8}")
    for tier, entry in manifest["tiers"].items():
        for target, f in entry["files"].items():
            lines.append(f"{tier:<18}{target:<10}{f['file']:<30}{f['size_bytes']:>8}")
        if "c" in entry:
            fp = entry["c"]["footprint"]
            source = entry["c"]["source"]
            lines.append(
                f"{tier:<18}{'c':<10}{source['file'] + ' + .h':<30}{source['size_bytes']:>8}"
                f"  ({fp['board']}: {fp['flash_bytes']} B flash, {fp['ram_bytes']} B RAM)"
            )
        if "tflm" in entry:
            f = entry["tflm"]
            lines.append(
                f"{tier:<18}{'tflm':<10}{f['file']:<30}{f['size_bytes']:>8}"
                f"  (arena {f['arena_bytes']} B)"
            )
    return "\n".join(lines)


@command()
def convert(
    run: str,
    split=None,
    out: str | None = None,
    target="both",
    quantize="none",
    overwrite: bool = False,
    check: bool = False,
    check_only: bool = False,
    limit: int | None = None,
    calibrate: str | None = None,
    json: bool = False,  # noqa: A002  (the conventional flag name)
) -> None:
    """Convert a trained run into per-tier TFLite binaries plus manifest.json.

    Args:
        run: the run directory (``runs/NAME``).
        split: exits kept, bottom to top: cloud / local,cloud / edge,cloud /
            local,edge,cloud (by default all the model's exits).
        out: output directory (default ``tflite_models/NAME``).
        target: portable, lce, both, or a list such as portable,lce,c,tflm (c: C99 per
            device tier; tflm: a TensorFlow Lite Micro variant; both bring portable).
        quantize: none or int8 (portable target).
        overwrite: replace an existing output directory.
        check: after converting, compare every tier with Keras on the test split
            (exit status 1 if a float tier misses the parity criteria).
        check_only: only run that comparison on an existing output directory.
        limit: use only the first ``limit`` test samples for the check.
        calibrate: calibrate the exit thresholds again on the validation split with this
            rule ('risk:DELTA[,EPS]', 'within:D', 'accuracy' or 'bytes:B') instead of
            taking the run's; the manifest records it.
        json: print machine-readable JSON instead of tables.
    """
    import json as _json

    from ddnn_tf.core.files import check_output_dir
    from ddnn_tf.keras.convert import convert as convert_run
    from ddnn_tf.keras.convert import format_parity, parity
    from ddnn_tf.keras.rundir import load_run

    out_path = Path(out) if out is not None else Path("tflite_models") / Path(run).name
    if not check_only:  # before the run loads and converts (minutes)
        check_output_dir(
            out_path, overwrite=overwrite, what="Output directory", marker=mf.MANIFEST_FILE
        )
    loaded = load_run(run)
    if not check_only:
        convert_run(
            loaded,
            split,
            out=out_path,
            target=target,
            quantize=quantize,
            overwrite=overwrite,
            progress=not json,
            calibrate=None if calibrate is None else str(calibrate),
        )
        if not json:
            print(_summary_table(out_path))
            recorded = mf.load_manifest(out_path).get("calibration")
            if recorded is not None:
                line = Calibration.from_dict(recorded).describe()
                print(f"thresholds {recorded['thresholds']}: T calibrated by {line}")
    if check or check_only:
        report = parity(loaded, out_path, limit=limit)
        print(_json.dumps(report, indent=2) if json else format_parity(report))
        if not report["ok"]:
            sys.exit(1)
    elif json:
        print(_json.dumps(dict(mf.load_manifest(out_path)), indent=2))


COMMAND = convert
