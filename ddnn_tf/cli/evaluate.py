"""``ddnn evaluate``: a trained run's exits on a data set, in Keras
(:func:`ddnn_tf.keras.evaluate.evaluate_run`)."""

from __future__ import annotations

from ddnn_tf.cli.flags import POSITIVE, command

__all__ = ["evaluate"]


@command(rate=POSITIVE, battery_mah=POSITIVE)
def evaluate(
    run: str,
    data: str | None = None,
    path: str | None = None,
    threshold=None,
    sweep: bool = False,
    fail=None,
    split: str = "test",
    summary_encoding: str | None = None,
    calibrate: str | None = None,
    mcu: str | None = None,
    radio: str | None = None,
    wan: str = "broadband",
    rate: float = 1.0,
    battery_mah: float = 225.0,
    mode: str = "paper",
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
        split: test or val.
        summary_encoding: summary wire encoding for the byte count (default: the model's).
        calibrate: re-calibrate T on the validation split: 'risk:DELTA[,EPS]' (the most
            early exits whose accuracy drop is at most DELTA points with probability
            1 - EPS, EPS 0.1 by default), 'within:D' (the T exiting the most samples early
            within D points of the most accurate T), 'accuracy' or 'bytes:B' (the most
            accurate T within B bytes per device per sample).
        mcu: with --radio, add what a sample costs on this microcontroller profile
            (ddnn cost --list): energy, battery life, latency, baselines.
        radio: the devices' radio profile.
        wan: the gateway's WAN link profile.
        rate: samples per second (for the energy per sample and the battery life).
        battery_mah: battery capacity in mAh.
        mode: the device protocol priced: paper or eager.
        json: print one JSON object instead of the table.
    """
    from ddnn_tf.cli.cost import hardware_options
    from ddnn_tf.keras.evaluate import evaluate_saved_run

    result = evaluate_saved_run(
        run,
        data,
        path=path,
        threshold=threshold,
        sweep=sweep,
        fail=fail,
        split=split,
        summary_encoding=summary_encoding,
        calibrate=calibrate,
        hardware=hardware_options(mcu, radio, wan, rate, battery_mah, mode),
    )
    print(result.to_json() if json else result.format())


COMMAND = evaluate
