"""``ddnn search``: the multi-objective hierarchy search (:func:`ddnn_tf.search.run_search`),
and ``--export K --to MODEL_DIR`` (:func:`ddnn_tf.search.export_trial`)."""

from __future__ import annotations

from ddnn_tf.cli.flags import AT_LEAST_1, NON_NEGATIVE, POSITIVE, Range, command, flag_items
from ddnn_tf.errors import ConfigError

__all__ = ["search"]


@command(
    trials=NON_NEGATIVE,
    max_flash=POSITIVE,
    max_ram=POSITIVE,
    min_accuracy=Range(0, 1),
    epochs=AT_LEAST_1,
    timeout_s=POSITIVE,
    seed=Range(0, 2**32 - 1),
    train_limit=AT_LEAST_1,
    export=NON_NEGATIVE,
)
def search(
    data: str = "fmnist6",
    path: str | None = None,
    mcu: str = "mps2-an386",
    trials: int = 20,
    max_flash: float | None = None,
    max_ram: float | None = None,
    min_accuracy: float | None = None,
    objectives: str = "accuracy,bytes",
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
    Pareto front of accuracy against bytes under flash and RAM limits per device.

    Every trial trains a configuration, calibrates its exit threshold with the preset's
    rule on the validation split, measures accuracy and bytes per device there, and
    compiles its device tiers as C for the board (flash and RAM from the object files).
    Trials stay in an Optuna study (a SQLite file in --out, or --storage), so a search
    continues where it stopped, and several workers can share one study. Writes the
    front as front.md, front.json and front.png in --out.

    Args:
        data: dataset name (fmnist6, mvmc, npz, synthetic).
        path: data file or directory for file-based loaders.
        mcu: the board the device tiers are compiled for: mps2-an386 (Cortex-M4F),
            mps2-an385 (Cortex-M3) or host (the system gcc).
        trials: run trials until the study holds this many (by every worker; 0 only
            reports).
        max_flash: flash per device tier, bytes.
        max_ram: RAM per device tier (static data + stack), bytes.
        min_accuracy: validation accuracy at the calibrated T, 0 to 1.
        objectives: comma-separated, from accuracy, bytes, flash, ram.
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
            (below the 25th percentile of the complete trials), median, or none.
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
    report = run_search(
        data,
        path=path,
        out=out,
        trials=trials,
        mcu=mcu,
        objectives=flag_items(objectives),
        max_flash=max_flash,
        max_ram=max_ram,
        min_accuracy=min_accuracy,
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
