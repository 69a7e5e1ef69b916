"""``ddnn search``: the multi-objective hierarchy search (:func:`ddnn_tf.search.run_search`),
and ``--export K --to MODEL_DIR`` (:func:`ddnn_tf.search.export_trial`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ddnn_tf.cli.flags import NON_NEGATIVE, POSITIVE, Range, command, flag_items, with_options
from ddnn_tf.core.options import Options, option
from ddnn_tf.core.vocab import DEFAULT_BOARD
from ddnn_tf.errors import ConfigError

__all__ = ["ExportFlags", "LimitFlags", "PriceFlags", "search"]


@dataclass(frozen=True, kw_only=True)
class PriceFlags(Options):
    """The board a search compiles for and the profiles it prices trials on."""

    mcu: str = option(
        DEFAULT_BOARD, "a microcontroller profile (nrf52840, stm32l4, cortex-m0plus, or your "
        "own .json; ddnn cost --list), whose core picks the emulated board the device tiers "
        "are compiled for; or a board alone: mps2-an386 (Cortex-M4F), mps2-an385 "
        "(Cortex-M3) or host (the system gcc), which prices nothing",
    )  # fmt: skip
    radio: str | None = option(
        None, "the devices' radio profile (ble-1m, lora-sf7, nbiot, ...): price every trial "
        "(energy per device per sample, p95 latency); needs a profile as --mcu",
    )  # fmt: skip
    wan: str | None = option(
        None, "the gateway's link to the cloud (with --radio; default broadband)"
    )
    rate: float | None = option(
        None, "samples per second (with --radio; default 1); a trial whose radio cannot "
        "carry it is over a limit", POSITIVE,
    )  # fmt: skip

    def keywords(self) -> dict[str, Any]:
        """:func:`~ddnn_tf.search.run_search`'s keywords.

        Raises:
            ConfigError: ``--rate`` without ``--radio``.
        """
        if self.rate is not None and self.radio is None:  # the library names it rate_hz
            raise ConfigError("prices a trial with --radio, which was not given.", argument="rate")
        return {"mcu": self.mcu, "radio": self.radio, "wan": self.wan, "rate_hz": self.rate}


@dataclass(frozen=True, kw_only=True)
class LimitFlags(Options):
    """What every trial of a search must meet, per device."""

    max_flash: float | None = option(None, "flash per device tier, bytes", POSITIVE)
    max_ram: float | None = option(
        None, "RAM per device tier (static data + stack), bytes", POSITIVE
    )
    min_accuracy: float | None = option(
        None, "validation accuracy at the calibrated T, 0 to 1", Range(0, 1)
    )
    max_energy_uj: float | None = option(
        None, "energy per sample of every device, microjoules (with --radio)", POSITIVE
    )
    max_latency_ms: float | None = option(
        None, "p95 latency from sensor to answer, milliseconds (with --radio)", POSITIVE
    )


@dataclass(frozen=True, kw_only=True)
class ExportFlags(Options):
    """``--export K --to MODEL_DIR``: convert a trial instead of searching."""

    export: int | None = option(
        None, "convert this trial (a number from the front table) into --to instead of "
        "searching", NON_NEGATIVE,
    )  # fmt: skip
    to: str | None = option(None, "the model directory --export writes")
    overwrite: bool = option(False, "let --export replace an existing model directory")

    def run(self, out: str, storage: str | None, study: str) -> bool:
        """Export the trial if ``--export`` or ``--to`` was given; whether it was.

        Raises:
            ConfigError: one of ``--export`` and ``--to`` without the other.
        """
        from ddnn_tf.search import export_trial

        if self.export is None and self.to is None:
            return False
        if self.export is None or self.to is None:
            raise ConfigError("--export K and --to MODEL_DIR go together.", argument="export")
        written = export_trial(
            out, self.export, self.to, storage=storage, study=study, overwrite=self.overwrite
        )
        print(f"wrote {written} (trial {self.export} of study {study!r})")
        return True


@command(trials=NON_NEGATIVE)
@with_options(PriceFlags, "hardware")
@with_options(LimitFlags, "limits")
@with_options(ExportFlags, "exporting")
def search(
    data: str = "fmnist6",
    path: str | None = None,
    hardware: PriceFlags | None = None,
    trials: int = 20,
    limits: LimitFlags | None = None,
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
    exporting: ExportFlags | None = None,
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
        trials: run trials until the study holds this many (by every worker; 0 only
            reports).
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
        json: print machine-readable JSON instead of the table.
    """
    import json as _json

    from ddnn_tf.search import format_search, run_search

    if exporting is not None and exporting.run(out, storage, study):
        return
    report = run_search(
        data,
        path=path,
        out=out,
        trials=trials,
        **(hardware or PriceFlags()).keywords(),
        objectives=flag_items(objectives) if objectives is not None else None,
        **asdict(limits or LimitFlags()),
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
