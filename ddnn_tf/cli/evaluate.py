"""``ddnn evaluate``: a trained run's exits on a data set, in Keras
(:func:`ddnn_tf.keras.evaluate.evaluate_run`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ddnn_tf.cli.cost import HardwareFlags
from ddnn_tf.cli.flags import command, with_options
from ddnn_tf.core.options import Options, option
from ddnn_tf.errors import ConfigError

__all__ = ["Recalibration", "evaluate", "report_keywords"]


@dataclass(frozen=True, kw_only=True)
class Recalibration(Options):
    """``--calibrate RULE`` of ``ddnn evaluate`` and ``ddnn run``."""

    calibrate: str | None = option(
        None, "re-calibrate T on the validation split: 'risk:DELTA[,EPS]' (the most early "
        "exits whose accuracy drop is at most DELTA points with probability 1 - EPS, EPS "
        "0.1 by default), 'within:D' (the T exiting the most samples early within D points "
        "of the most accurate T), 'accuracy' or 'bytes:B' (the most accurate T within B "
        "bytes per device per sample)",
    )  # fmt: skip


def report_keywords(
    recalibration: Recalibration | None, hardware: HardwareFlags | None
) -> dict[str, Any]:
    """The library keywords of the flags that ``ddnn evaluate`` and ``ddnn run`` share:
    ``--calibrate`` and the hardware profiles (the report's cost block)."""
    return {
        "calibrate": (recalibration or Recalibration()).calibrate,
        "hardware": hardware.hardware() if hardware is not None else None,
    }


@command()
@with_options(Recalibration, "recalibration")
@with_options(HardwareFlags, "hardware")
def evaluate(
    run: str,
    data: str | None = None,
    path: str | None = None,
    threshold=None,
    sweep: bool = False,
    fail=None,
    subset: str = "test",
    summary_encoding: str | None = None,
    recalibration: Recalibration | None = None,
    hardware: HardwareFlags | None = None,
    json: bool = False,  # noqa: A002  (the flag is --json)
) -> None:
    """Evaluate a run directory.

    Args:
        run: the run directory (runs/NAME).
        data: dataset name; by default the one the run was trained on.
        path: data file or directory for file-based loaders.
        threshold: T for every early exit, 'paper' (0.8) or 'calibrated' (default: the
            run's calibrated thresholds, as the converted model's manifest holds them).
        sweep: print the threshold sweep (Table II).
        fail: failed devices, e.g. 0,3.
        subset: the data subset: test or val.
        summary_encoding: summary wire encoding for the byte count (default: the model's).
        json: print one JSON object instead of the table.
    """
    from ddnn_tf.core.vocab import SUBSETS
    from ddnn_tf.keras.evaluate import evaluate_saved_run

    if subset not in SUBSETS:
        raise ConfigError(f"expected test or val, got {subset!r}.", argument="subset")

    result = evaluate_saved_run(
        run,
        data,
        path=path,
        threshold=threshold,
        sweep=sweep,
        fail=fail,
        split=subset,
        summary_encoding=summary_encoding,
        **report_keywords(recalibration, hardware),
    )
    print(result.to_json() if json else result.format())


COMMAND = evaluate
