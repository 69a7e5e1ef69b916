"""``ddnn experiments EXPERIMENT --data fmnist6 --out results/NAME``: the paper's
evaluation (:func:`ddnn_tf.experiments.run.run_experiments`)."""

from __future__ import annotations

import shlex
import sys

from ddnn_tf.cli.flags import AT_LEAST_1, PROBABILITY, command, flag_items
from ddnn_tf.core.exits import PAPER_THRESHOLD
from ddnn_tf.errors import ConfigError
from ddnn_tf.experiments.lab import LOCAL_EXIT_TARGET

__all__ = ["command_line", "experiments"]


def _sizes(value) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in flag_items(value))
    except ValueError:
        raise ConfigError(
            f"--val-sizes: expected integers such as 200,500,2000, got {value!r}."
        ) from None


@command(
    sweep_epochs=AT_LEAST_1,
    test_limit=AT_LEAST_1,
    threshold=PROBABILITY,
    max_filters=AT_LEAST_1,
    fault_sets=AT_LEAST_1,
    local_exit_target=PROBABILITY,
    draws=AT_LEAST_1,
)
def experiments(
    experiment: str,
    data: str = "fmnist6",
    out: str | None = None,
    path: str | None = None,
    epochs: int = 5,
    sweep_epochs: int | None = None,
    batch_size: int = 128,
    seed: int = 0,
    train_limit: int | None = None,
    test_limit: int | None = None,
    threshold: float = PAPER_THRESHOLD,
    max_filters: int = 4,
    fault_sets: int = 10,
    local_exit_target: float = LOCAL_EXIT_TARGET,
    verbose: int = 1,
    model: str | None = None,
    draws: int = 200,
    val_sizes: str = "200,500,1000,2000",
    rule: str | None = None,
    baseline: str = "within:0.25",
    json: bool = False,  # noqa: A002  (the flag is --json)
) -> None:
    """Run the paper's experiments and write tables, CSVs and plots.

    Args:
        experiment: aggregation, threshold, scaling, filters, faults (comma separated
            for several) or all; pareto and calibration (by name only).
        data: dataset name (fmnist6, mvmc, npz, synthetic).
        out: output directory (default results/EXPERIMENT).
        path: data file or directory for file-based loaders.
        epochs: epochs of the default model (and of every model unless --sweep-epochs).
        sweep_epochs: epochs of the aggregation / scaling / filters models.
        train_limit: keep only the first N training samples (quick runs).
        test_limit: keep only the first N test samples (quick runs).
        threshold: T for overall accuracy (the paper's 0.8).
        max_filters: the filters experiment trains f = 1..N.
        fault_sets: random failure sets per number of failed devices (all when fewer).
        local_exit_target: local exit share the filters experiment aims for.
        verbose: 0 quiet, 1 progress lines, 2 also Keras epoch lines.
        model: calibration: a converted model directory whose binaries give the exits'
            probabilities (default: train the default preset).
        draws: calibration: validation subsets drawn per size.
        val_sizes: calibration: subset sizes (the whole validation
            split is added).
        rule: calibration: the rule under test (default: the default preset's, risk:0.5).
        baseline: calibration: the rule it is compared with.
        json: print the key figures as one JSON object at the end.
    """
    from ddnn_tf.core.files import check_output_dir
    from ddnn_tf.experiments.lab import ExperimentSettings
    from ddnn_tf.experiments.paper import EXPERIMENTS
    from ddnn_tf.experiments.report import to_json
    from ddnn_tf.experiments.run import parse_experiments, run_experiments

    names = parse_experiments(experiment)  # fail fast, before TensorFlow loads
    settings = ExperimentSettings(
        epochs=epochs,
        sweep_epochs=sweep_epochs,
        batch_size=batch_size,
        seed=seed,
        threshold=float(threshold),
        max_filters=max_filters,
        fault_sets=fault_sets,
        local_exit_target=float(local_exit_target),
        verbose=int(verbose),
        model=None if model is None else str(model),
        draws=draws,
        val_sizes=_sizes(val_sizes),
        rule=None if rule is None else str(rule),
        baseline=str(baseline),
    )
    from ddnn_tf.data import load_dataset

    name = "all" if len(names) == len(EXPERIMENTS) else ",".join(names)
    out = out or f"results/{name.replace(',', '_')}"
    # Experiments add their files to an existing directory: only a file in the way, or a
    # parent that cannot be written, stops them (before the data loads).
    check_output_dir(out, overwrite=True, what="Output directory")
    dataset = load_dataset(data, path, seed=seed, train_limit=train_limit, test_limit=test_limit)
    command = command_line(sys.argv)
    results = run_experiments(names, dataset, out=out, settings=settings, command=command)
    if json:
        print(to_json({n: r.key for n, r in results.items()}))
    else:
        for r in results.values():
            print(f"{r.title}:")
            for h in r.highlights:
                print(f"  - {h}")
        print(f"wrote {out}")


COMMAND = experiments


def command_line(argv: list[str]) -> str:
    """The command an experiment run records in its summary, as ``ddnn experiments ...``.

    ``argv`` is ``sys.argv`` of either form: ``ddnn experiments ARGS`` or
    ``python -m ddnn_tf.experiments ARGS``.

    >>> command_line(["/usr/bin/ddnn", "experiments", "all", "--out", "a b"])
    "ddnn experiments all --out 'a b'"
    >>> command_line(["/x/ddnn_tf/experiments/__main__.py", "faults", "--epochs", "1"])
    'ddnn experiments faults --epochs 1'
    """
    args = list(argv[1:])
    if args[:1] == ["experiments"]:  # the console script: ddnn experiments ...
        args = args[1:]
    return " ".join(["ddnn experiments", *(shlex.quote(a) for a in args)])
