"""``ddnn search``: the multi-objective hierarchy search (:func:`ddnn_tf.search.run_search`),
and ``--export K --to MODEL_DIR`` (:func:`ddnn_tf.search.export_trial`)."""

from __future__ import annotations

from ddnn_tf.cli.flags import NON_NEGATIVE, POSITIVE, Range, command, flag_items
from ddnn_tf.errors import ConfigError

__all__ = ["search"]


@command(
    trials=NON_NEGATIVE,
    max_flash=POSITIVE,
    max_ram=POSITIVE,
    min_accuracy=Range(0, 1),
    max_energy_uj=POSITIVE,
    max_latency_ms=POSITIVE,
    export=NON_NEGATIVE,
)
def search(
    data: str = "fmnist6",
    path: str | None = None,
    mcu: str = "mps2-an386",
    radio: str | None = None,
    wan: str | None = None,
    rate: float | None = None,
    trials: int = 20,
    max_flash: float | None = None,
    max_ram: float | None = None,
    min_accuracy: float | None = None,
    max_energy_uj: float | None = None,
    max_latency_ms: float | None = None,
    objectives: str | None = None,
    storage: str | None = None,
    study: str = "ddnn-search",
    out: str = "runs/search",
    epochs: int | None = None,
    timeout_s: float | None = None,
    space: str | None = None,
    fix: str | None = None,
    preset: str = "default",
    calibrate: str | None = None,
    compare: str | None = None,
    pruner: str = "percentile",
    seed: int = 0,
    train_limit: int | None = None,
    export: int | None = None,
    to: str | None = None,
    overwrite: bool = False,
    json: bool = False,  # noqa: A002  (the flag is --json)
) -> None:
    """Search device blocks, filters, summaries, aggregator, cloud and training for the
    Pareto front of accuracy against energy (or bytes) under flash, RAM, energy and
    latency limits per device.

    Every trial trains a configuration, calibrates its exit threshold with the preset's
    rule on the validation split, measures accuracy and bytes per device there, and
    compiles its device tiers as C for the board (flash and RAM from the object files).
    With a microcontroller profile and a radio, the cost model prices its exits: energy
    per device per sample and p95 latency.
    Trials stay in an Optuna study (a SQLite file in --out, or --storage), so a search
    continues where it stopped, and several workers can share one study. Writes the
    front as front.md, front.json and front.png in --out.

    Args:
        data: dataset name (fmnist6, mvmc, npz, synthetic).
        path: data file or directory for file-based loaders.
        mcu: a microcontroller profile (nrf52840, stm32l4, cortex-m0plus, or your own
            .json; ddnn cost --list), whose core picks the emulated board the device
            tiers are compiled for; or a board alone: mps2-an386 (Cortex-M4F),
            mps2-an385 (Cortex-M3) or host (the system gcc), which prices nothing.
        radio: the devices' radio profile (ble-1m, lora-sf7, nbiot, ...): price every
            trial (energy per device per sample, p95 latency); needs a profile as --mcu.
        wan: the gateway's link to the cloud (with --radio; default broadband).
        rate: samples per second (with --radio; default 1); a trial whose radio cannot
            carry it is over a limit.
        trials: run trials until the study holds this many (by every worker; 0 only
            reports).
        max_flash: flash per device tier, bytes.
        max_ram: RAM per device tier (static data + stack), bytes.
        min_accuracy: validation accuracy at the calibrated T, 0 to 1.
        max_energy_uj: energy per sample of every device, microjoules (with --radio).
        max_latency_ms: p95 latency from sensor to answer, milliseconds (with --radio).
        objectives: comma-separated, from accuracy, bytes, flash, ram, energy, latency
            (default: accuracy,energy with --radio, else accuracy,bytes).
        storage: the study database shared by several workers, e.g.
            postgresql://USER@HOST:PORT/DB (default: sqlite in --out).
        study: the study's name in the storage.
        out: output directory: the study file, one run directory per complete trial, the
            front's table, JSON and plot.
        epochs: joint training epochs of every trial (default: the preset's, 5).
        timeout_s: start no new trial after this many seconds.
        space: a JSON file narrowing the search space, e.g. {"device_filters": [4, 8],
            "learning_rate": {"low": 0.001, "high": 0.005}, "cloud_precision": "float"}.
        fix: fix dimensions, e.g. "device_blocks=2,cloud_precision=float".
        preset: the preset a trial starts from (default, best or paper); the first
            trial tries it as far as the space allows.
        calibrate: the threshold rule of every trial (default: the preset's).
        compare: run directories trained on the same data (e.g. runs/default,runs/best),
            evaluated like a trial and marked on the plot.
        pruner: stop hopeless trials on their per-epoch validation accuracy: percentile
            (the best so far below the 25th percentile of the complete trials), median,
            or none.
        seed: seed of the data split, every trial's weights and the sampler.
        train_limit: keep only the first N training samples.
        export: convert this trial (a number from the front table) into --to instead of
            searching.
        to: the model directory --export writes.
        overwrite: let --export replace an existing model directory.
        json: print machine-readable JSON instead of the table.
    """
    import json as _json

    from ddnn_tf.search import export_trial, format_search, run_search

    if export is not None or to is not None:
        if export is None or to is None:
            raise ConfigError("--export K and --to MODEL_DIR go together.", argument="export")
        written = export_trial(out, export, to, storage=storage, study=study, overwrite=overwrite)
        print(f"wrote {written} (trial {export} of study {study!r})")
        return
    if rate is not None and radio is None:  # the library names it rate_hz
        raise ConfigError("prices a trial with --radio, which was not given.", argument="rate")
    report = run_search(
        data,
        path=path,
        out=out,
        trials=trials,
        mcu=mcu,
        radio=radio,
        wan=wan,
        rate_hz=rate,
        objectives=flag_items(objectives) if objectives is not None else None,
        max_flash=max_flash,
        max_ram=max_ram,
        min_accuracy=min_accuracy,
        max_energy_uj=max_energy_uj,
        max_latency_ms=max_latency_ms,
        storage=storage,
        study=study,
        preset=preset,
        epochs=epochs,
        calibrate=None if calibrate is None else str(calibrate),
        space=space,
        fix=flag_items(fix) if fix is not None else (),
        compare=flag_items(compare) if compare is not None else (),
        pruner=pruner,
        seed=seed,
        train_limit=train_limit,
        timeout_s=timeout_s,
        progress=not json,
    )
    print(_json.dumps(report.to_dict(), indent=2) if json else format_search(report))


COMMAND = search
