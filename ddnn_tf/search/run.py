"""``ddnn search``: a multi-objective hierarchy search, and the export of one of its trials.

:func:`run_search` checks every input before any work (the data, the board, the
objectives and limits, the space, the storage, the study), then runs trials until the
study holds ``trials`` of them (however many workers share it), and reports the front
(:mod:`ddnn_tf.search.report`). :func:`export_trial` converts a trial's run directory
into a model directory that ``ddnn run``, ``ddnn deploy`` and ``ddnn mcu`` accept.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna

from ddnn_tf.core.files import check_output_dir
from ddnn_tf.core.manifest import MANIFEST_FILE
from ddnn_tf.core.vocab import DEFAULT_BOARD
from ddnn_tf.data import Dataset, load_dataset
from ddnn_tf.errors import ConfigError
from ddnn_tf.keras.compat import tf
from ddnn_tf.keras.presets import PRESETS, TrainConfig, preset_config, preset_topology
from ddnn_tf.search.hardware import SearchHardware, least_costs, resolve_hardware, sensor_dtype
from ddnn_tf.search.measure import measure_run
from ddnn_tf.search.objectives import (
    DEFAULT_OBJECTIVES,
    METRICS,
    PRICED_OBJECTIVES,
    RATE,
    Limit,
    Metric,
    parse_objectives,
)
from ddnn_tf.search.report import (
    SearchReport,
    check_feasible,
    format_report,
    make_report,
    write_report,
)
from ddnn_tf.search.space import Space, default_space, narrow, parse_fixed, read_space_file
from ddnn_tf.search.study import (
    counted,
    default_storage,
    open_storage,
    open_study,
    sampler_seed,
    storage_label,
)
from ddnn_tf.search.trial import SearchSetup, TrialFailed, run_trial, trial_dir

__all__ = ["DEFAULT_STUDY", "PRUNERS", "export_trial", "format_search", "run_search"]

#: The study name unless ``study`` says otherwise.
DEFAULT_STUDY = "ddnn-search"
#: Pruners on the per-epoch validation accuracy: a trial whose best accuracy so far is
#: below the 25th percentile (or the median) of the complete trials at the same epoch
#: stops, after its first epoch and once 4 trials completed.
PRUNERS = ("percentile", "median", "none")


def _pruner(name: str) -> optuna.pruners.BasePruner | None:
    if name == "percentile":
        # Optuna's percentile is the share it keeps when maximising: keep the top 75 %.
        return optuna.pruners.PercentilePruner(75.0, n_startup_trials=4, n_warmup_steps=1)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1)
    if name == "none":
        return None
    raise ConfigError(f"expected one of {', '.join(PRUNERS)}, got {name!r}.", argument="pruner")


#: The limit each argument sets: ``argument: (metric name, upper bound?)``.
_LIMITS = {
    "max_flash": ("flash", True),
    "max_ram": ("ram", True),
    "min_accuracy": ("accuracy", False),
    "max_energy_uj": ("energy", True),
    "max_latency_ms": ("latency", True),
}


def _limits(bounds: Mapping[str, float | None], hardware: SearchHardware) -> tuple[Limit, ...]:
    """The limits given (``{argument: value}`` of :data:`_LIMITS`' arguments) and, on priced
    hardware, the sample rate: a trial whose radio cannot carry it is over a limit."""
    limits = [
        Limit(METRICS[_LIMITS[arg][0]], float(value), _LIMITS[arg][1], arg)
        for arg, value in bounds.items()
        if value is not None
    ]
    if hardware.priced:
        limits.append(Limit(RATE, hardware.rate_hz, False, "radio"))
    return tuple(limits)


def _check_priced(
    objectives: Sequence[Metric], limits: Sequence[Limit], hardware: SearchHardware
) -> None:
    """Refuse an objective or a limit the cost model measures when nothing prices it."""
    if hardware.priced:
        return
    for name, metrics in (
        ("objectives", objectives),
        *((lim.argument, [lim.metric]) for lim in limits),
    ):
        needs = [m for m in metrics if m.source == "cost model"]
        if needs:
            how = (
                f"{hardware.board.name} is a board; name a microcontroller profile as `mcu`"
                if hardware.mcu is None
                else "pass `radio`"
            )
            raise ConfigError(
                f"{needs[0].label} comes from the cost model, which prices a trial on a "
                f"microcontroller profile and a radio: {how} (e.g. nrf52840 with ble-1m).",
                argument=name,
            )


def _space(
    base_topology, base_config: dict[str, Any], space_file: str | None, fix: Sequence[str]
) -> Space:
    space = default_space(base_topology, base_config)
    if space_file is not None:
        space = narrow(space, read_space_file(space_file), str(space_file))
    if fix:
        space = narrow(space, parse_fixed(list(fix)), "fix")
    return space


def _describe_devices(topology) -> str:
    """A configuration's device side in words, for messages."""
    vectors = len(topology.input_shapes[0]) == 1
    width = f"{topology.device_units} units" if vectors else f"{topology.device_filters} filters"
    bits = topology.summary_bits
    summary = f", {'float32' if bits == 0 else f'int{bits}'} summaries"
    return f"{topology.device_conv_layers} device block(s) of {width}{summary}"


def _check_reachable(
    space: Space, limits: Sequence[Limit], hardware: SearchHardware, dataset: Dataset
) -> None:
    """Refuse limits that no configuration of the space can meet, by what each device
    configuration costs at the least (:func:`ddnn_tf.search.hardware.least_costs`)."""
    checked = [lim for lim in limits if lim.metric.key != "accuracy"]
    if not checked:
        return
    best: dict[str, tuple[float, Any, float]] = {}
    for topology in space.device_configurations():
        least = least_costs(
            topology,
            hardware,
            samples=len(dataset.val),
            sensor_dtype=sensor_dtype(topology, dataset.input_scale),
        )
        for lim in checked:
            value = least[lim.metric.key]
            excess = lim.excess(value)
            if lim.argument not in best or excess < best[lim.argument][0]:
                best[lim.argument] = (excess, topology, value)
    for lim in checked:
        excess, topology, value = best[lim.argument]
        if excess > 0:
            raise ConfigError(
                f"no configuration of the search space can meet {lim.describe()}: the "
                f"closest ({_describe_devices(topology)}) has "
                f"{lim.bound_text(value).removeprefix(lim.metric.label + ' ')}, "
                f"{lim.miss(value)}.",
                argument=lim.argument,
            )


def _data_identity(dataset_spec: Mapping[str, Any]) -> dict[str, Any]:
    """What makes the data and its validation split the same on every machine: not where
    its files are, nor how many training or test samples a run kept."""
    return {k: v for k, v in dataset_spec.items() if k not in ("path", "train_limit", "test_limit")}


def _check_references(compare: Sequence[str], dataset: Dataset | None = None) -> list[Path]:
    """The reference run directories, each checked to be one and, given the search's data,
    to have been trained on it with the same validation split."""
    from ddnn_tf.keras.rundir import RUN_MARKER

    paths = [Path(p) for p in compare]
    for path in paths:
        if not (path / RUN_MARKER).is_file():
            raise FileNotFoundError(f"{path} is not a run directory (no {RUN_MARKER}).")
        if dataset is None:
            continue
        spec = json.loads((path / "dataset.json").read_text()).get("spec", {})
        theirs, ours = _data_identity(spec), _data_identity(dataset.spec)
        if theirs != ours:
            differ = ", ".join(
                f"{k} {theirs.get(k)!r} (the search: {ours.get(k)!r})"
                for k in sorted(set(theirs) | set(ours))
                if theirs.get(k) != ours.get(k)
            )
            raise ConfigError(
                f"{path} was trained on other data or another validation split: {differ}.",
                argument="compare",
            )
    return paths


def _references(
    paths: Sequence[Path], dataset: Dataset, hardware: SearchHardware
) -> list[tuple[str, dict]]:
    """Reference runs measured like a trial: the validation split at their own T, their
    device tiers compiled for the board, their exits priced on the hardware."""
    from ddnn_tf.keras.rundir import load_run

    return [(path.name, measure_run(load_run(path), dataset, hardware)[0]) for path in paths]


def _energy(m: Mapping[str, Any]) -> str:
    """A trial's energy and p95 latency, when priced, for one-line summaries."""
    if m.get("energy_uj_per_sample") is None:
        return ""
    return f", {m['energy_uj_per_sample']:,.4g} uJ, p95 {m['latency_p95_ms']:,.4g} ms"


def _trial_line(trial: optuna.trial.FrozenTrial) -> str:
    """One line saying how a trial ended."""
    attrs = trial.user_attrs
    if trial.state == optuna.trial.TrialState.COMPLETE:
        m = attrs["metrics"]
        fit = "" if all(v <= 0 for v in trial.constraints.values()) else " (over a limit)"
        return (
            f"trial {trial.number}: accuracy {m['accuracy']:.4f}, {m['bytes_per_device']:.1f} "
            f"B/device{_energy(m)}, flash {m['flash_bytes']:,} B, RAM {m['ram_bytes']:,} B{fit} "
            f"({attrs.get('seconds', 0):.0f} s)"
        )
    if "rejected" in attrs:
        return f"trial {trial.number}: rejected before training: {attrs['rejected']}"
    if trial.state == optuna.trial.TrialState.PRUNED:
        return f"trial {trial.number}: pruned after epoch {attrs.get('pruned_after_epoch')}"
    return f"trial {trial.number}: failed: {attrs.get('error', 'interrupted')}"


def _best_feasible(study: optuna.Study, objectives: Sequence[Metric]) -> str:
    """The most accurate complete trial within the limits, for the progress bar."""
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    ok = [t for t in done if all(v <= 0 for v in t.constraints.values())]
    if not ok:
        return "no feasible trial yet"
    best = max(ok, key=lambda t: t.user_attrs["metrics"]["accuracy"])
    m = best.user_attrs["metrics"]
    cost = f"{m['bytes_per_device']:.1f} B"
    if m.get("energy_uj_per_sample") is not None:
        cost += f", {m['energy_uj_per_sample']:,.4g} uJ"
    return f"best feasible: #{best.number} acc {m['accuracy']:.4f}, {cost}"


def run_search(
    data: str | Dataset = "fmnist6",
    *,
    path: str | None = None,
    out: str | Path = "runs/search",
    trials: int = 20,
    mcu: str = DEFAULT_BOARD,
    radio: str | None = None,
    wan: str | None = None,
    rate_hz: float | None = None,
    objectives: Sequence[str] | None = None,
    max_flash: float | None = None,
    max_ram: float | None = None,
    min_accuracy: float | None = None,
    max_energy_uj: float | None = None,
    max_latency_ms: float | None = None,
    storage: str | None = None,
    study: str = DEFAULT_STUDY,
    preset: str = "default",
    epochs: int | None = None,
    calibrate: str | None = None,
    space: str | None = None,
    fix: Sequence[str] = (),
    compare: Sequence[str] = (),
    pruner: str = "percentile",
    seed: int = 0,
    train_limit: int | None = None,
    timeout_s: float | None = None,
    progress: bool = True,
) -> SearchReport:
    """Search Topologies and training choices for the Pareto front under device limits.

    Args:
        data: a data set name (``fmnist6``, ``mvmc``, ``npz``, ``synthetic``) or a
            :class:`~ddnn_tf.data.Dataset`.
        path: the data's file or directory, for file-based loaders.
        out: the output directory: the SQLite study (default storage), one run
            directory per complete trial (``trials/trial_NNNN``), ``front.json``,
            ``front.md`` and ``front.png``. A search continues in an existing one.
        trials: run trials until the study holds this many (complete, pruned, rejected
            or failed, by any worker; a worker that starts with the count reached runs
            none and reports).
        mcu: a board the device tiers are compiled for (``mps2-an386``, ``mps2-an385``,
            ``host``), or a microcontroller profile (``nrf52840``, ``stm32l4``,
            ``cortex-m0plus`` or a ``.json`` file) whose core picks the board
            (:func:`~ddnn_tf.search.hardware.resolve_hardware`).
        radio: the devices' radio profile: price every trial with the cost model
            (energy per device per sample, p95 latency); needs an MCU profile.
        wan: the gateway's WAN link profile (with ``radio``; default ``broadband``).
        rate_hz: samples per second (with ``radio``; default 1); a trial whose radio
            cannot carry it is over a limit.
        objectives: metric names (:data:`~ddnn_tf.search.objectives.METRICS`); default
            accuracy and energy with ``radio``, else accuracy and bytes.
        max_flash: flash per device tier, bytes.
        max_ram: RAM per device tier (static data + stack), bytes.
        min_accuracy: the least validation accuracy at the calibrated T.
        max_energy_uj: energy per sample of every device, microjoules (with ``radio``).
        max_latency_ms: p95 latency from sensor to answer, milliseconds (with ``radio``).
        storage: a database URL (``postgresql://...``) shared by several workers;
            default: ``sqlite:///OUT/study.db``.
        study: the study's name in the storage.
        preset: the base preset: what a trial does not choose.
        epochs: the joint epochs of every trial (default: the preset's).
        calibrate: the threshold rule of every trial (default: the preset's).
        space: a JSON search-space file narrowing or fixing dimensions.
        fix: ``KEY=VALUE`` items fixing dimensions.
        compare: run directories (trained on the same data) to compare with the front.
        pruner: ``percentile``, ``median`` or ``none``.
        seed: the seed of the data split, every trial's weights and the sampler.
        train_limit: keep only the first N training samples.
        timeout_s: start no trial after this many seconds.
        progress: a progress bar and one line per trial on stderr.

    Returns:
        The :class:`~ddnn_tf.search.report.SearchReport`, also written to ``out``.

    Raises:
        ConfigError / FileNotFoundError / DeploymentError: bad input, found before any
            trial runs; or, after the search, no complete trial within the limits.
    """
    started = time.monotonic()
    hardware = resolve_hardware(mcu, radio, wan, rate_hz)
    # the limit arguments, in the order of _LIMITS
    bounds = dict(zip(_LIMITS, (max_flash, max_ram, min_accuracy, max_energy_uj, max_latency_ms)))
    objectives, limits = _objectives_and_limits(objectives, bounds, hardware)
    pruner_obj = _pruner(pruner)
    preset_config(preset)  # an unknown preset fails before the data loads
    _check_references(compare)
    out = _output_dir(out)
    dataset = _dataset(data, path, seed, train_limit)
    search_space = _preset_space(dataset, preset, epochs, calibrate, space, fix)
    _check_reachable(search_space, limits, hardware, dataset)
    references = _check_references(compare, dataset)
    setup = SearchSetup(dataset, search_space, objectives, limits, hardware, out, seed, pruner_obj)
    url = _open_study(setup, storage, study, trials, preset)
    ran = _optimize(setup.study, setup, trials, timeout_s, started, progress)
    return _report(setup, _references(references, dataset, hardware), storage_label(url), ran)


def _objectives_and_limits(
    names: Sequence[str] | None, bounds: Mapping[str, float | None], hardware: SearchHardware
) -> tuple[tuple[Metric, ...], tuple[Limit, ...]]:
    """The objectives (by default those ``hardware`` can measure) and the limits, checked
    against what ``hardware`` prices."""
    if names is None:
        names = PRICED_OBJECTIVES if hardware.priced else DEFAULT_OBJECTIVES
    objectives = parse_objectives(names)
    limits = _limits(bounds, hardware)
    _check_priced(objectives, limits, hardware)
    return objectives, limits


def _output_dir(out: str | Path) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} exists and is not a directory.", argument="out")
    return out


def _dataset(data: str | Dataset, path: str | None, seed: int, train_limit: int | None) -> Dataset:
    if isinstance(data, Dataset):
        return data
    return load_dataset(data, path, seed=seed, train_limit=train_limit)


def _preset_space(
    dataset: Dataset,
    preset: str,
    epochs: int | None,
    calibrate: str | None,
    space_file: str | None,
    fix: Sequence[str],
) -> Space:
    """The search space around ``preset`` on ``dataset``: training ``epochs`` epochs and
    calibrating with the rule ``calibrate`` (None: the preset's)."""
    base_topology = preset_topology(dataset, preset)
    config = {**PRESETS[preset]["config"], "preset": preset}
    config.update({k: v for k, v in {"epochs": epochs, "calibrate": calibrate}.items() if v})
    TrainConfig(**config)  # a bad epochs or rule fails here
    return _space(base_topology, config, space_file, fix)


def _open_study(
    setup: SearchSetup, storage: str | None, study: str, trials: int, preset: str
) -> str:
    """Open (or create) the study ``setup`` runs in, in ``storage`` (default: a SQLite
    file in the output directory), as this worker; the storage's URL."""
    setup.out.mkdir(parents=True, exist_ok=True)
    url = storage or default_storage(setup.out)
    sampler = _sampler(setup.seed, setup.worker if storage is not None else None, trials)
    identity = {
        "space": setup.space.to_dict(),
        "objectives": [m.name for m in setup.objectives],
        "limits": [lim.describe() for lim in setup.limits],
        "data": _data_identity(setup.dataset.spec),
        "board": setup.hardware.board.name,
        "hardware": setup.hardware.identity(),
        "preset": preset,
        "seed": setup.seed,
    }
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    tf.get_logger().setLevel("ERROR")  # Keras' retracing warnings, one per trial
    setup.study = open_study(
        open_storage(url),
        study,
        identity,
        directions=[m.direction for m in setup.objectives],
        sampler=sampler,
        first=setup.space.base_params(),
    )
    return url


def _report(
    setup: SearchSetup, references: list[tuple[str, dict]], storage: str, ran: list[int]
) -> SearchReport:
    """The search's report, written to the output directory; checked for a feasible trial."""
    report = make_report(
        setup.study,
        setup.objectives,
        setup.limits,
        dataset=setup.dataset,
        references=references,
        storage=storage,
        ran_here=ran,
        hardware=setup.hardware.describe(),
    )
    write_report(setup.study, report, setup.objectives, setup.out)
    check_feasible(report, setup.study, setup.limits)
    return report


def _sampler(seed: int, worker: str | None, trials: int) -> optuna.samplers.TPESampler:
    """The multi-objective TPE sampler of a worker (``worker``: its name on a shared
    storage, so that workers sample differently; None alone)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=sampler_seed(seed, worker),
            n_startup_trials=max(3, min(10, trials // 3)),
            multivariate=True,
            group=True,
            constant_liar=True,
        )


def _optimize(
    study: optuna.Study,
    setup: SearchSetup,
    trials: int,
    timeout_s: float | None,
    started: float,
    progress: bool,
) -> list[int]:
    """Run trials until the study counts ``trials``; the numbers of those run here."""
    from tqdm import tqdm

    def count() -> int:
        return sum(1 for t in study.get_trials(deepcopy=False) if counted(t))

    ran: list[int] = []
    bar = tqdm(
        total=trials,
        initial=min(count(), trials),
        desc="search",
        unit="trial",
        file=sys.stderr,
        disable=not progress,
    )
    bar.set_postfix_str(_best_feasible(study, setup.objectives))

    def after(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        ran.append(trial.number)
        if progress:
            bar.write(_trial_line(trial), file=sys.stderr)
        bar.n = min(count(), trials)
        bar.set_postfix_str(_best_feasible(study, setup.objectives))

    try:
        while count() < trials:
            if timeout_s is not None and time.monotonic() - started > timeout_s:
                break
            study.optimize(
                lambda trial: run_trial(trial, setup),
                n_trials=1,
                catch=(TrialFailed,),
                callbacks=[after],
                gc_after_trial=True,
            )
    finally:
        bar.close()
    return ran


def format_search(report: SearchReport) -> str:
    """The report as ``ddnn search`` prints it."""
    return format_report(report) + (f"\nplot: {report.plot}" if report.plot else "")


def export_trial(
    out: str | Path,
    trial: int,
    to: str | Path,
    *,
    storage: str | None = None,
    study: str = DEFAULT_STUDY,
    overwrite: bool = False,
) -> Path:
    """Convert a complete trial into a model directory: portable tier binaries (what
    ``ddnn run`` and ``ddnn deploy`` load), C device tiers with their footprints (``ddnn
    mcu``), and the trial's calibrated T in the manifest. ``ddnn convert`` on the trial's
    run directory makes the other targets.

    Args:
        out: the search's output directory.
        trial: the trial's number (the front table's first column).
        to: the model directory to write.
        storage: the study's storage (default: ``sqlite:///OUT/study.db``).
        study: the study's name.
        overwrite: replace an existing model directory.

    Returns:
        ``to``.

    Raises:
        ConfigError: no such study or trial, or a trial that did not complete.
        FileNotFoundError: its run directory is not on this machine.
    """
    from ddnn_tf.keras.convert import convert

    out = Path(out)
    if storage is None and not (out / "study.db").is_file():
        raise FileNotFoundError(f"{out} holds no search (no study.db); give the search's --out.")
    to = check_output_dir(to, overwrite=overwrite, what="Output directory", marker=MANIFEST_FILE)
    st = open_study(open_storage(storage or default_storage(out)), study, {})
    trials = {t.number: t for t in st.get_trials(deepcopy=False)}
    complete = sorted(n for n, t in trials.items() if t.state == optuna.trial.TrialState.COMPLETE)
    if trial not in complete:
        state = f"is {trials[trial].state.name.lower()}" if trial in trials else "does not exist"
        raise ConfigError(
            f"trial {trial} {state} in study {st.study_name!r}; the complete trials are "
            f"{', '.join(map(str, complete)) or 'none'}.",
            argument="export",
        )
    t = trials[trial]
    run_dir = Path(t.user_attrs.get("run_dir", trial_dir(out, trial)))
    if not run_dir.is_dir():
        run_dir = trial_dir(out, trial)
    if not run_dir.is_dir():
        raise FileNotFoundError(
            f"trial {trial}'s run directory {t.user_attrs.get('run_dir')} is not on this "
            f"machine (worker {t.user_attrs.get('worker')} ran it): export it there."
        )
    name = f"{st.study_name}_trial{trial}"
    return convert(run_dir, out=to, target=("portable", "c"), overwrite=overwrite, name=name)
