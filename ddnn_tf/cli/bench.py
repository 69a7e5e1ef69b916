"""``ddnn bench tiers|run|train|serve``: benchmarks, not timed tests.

* ``tiers MODEL``: per tier and target, file size, weight bytes and single-sample latency
  of the converted binaries (:func:`ddnn_tf.runtime.bench.bench_tiers`);
* ``run MODEL``: the orchestrator's throughput, batched and one by one, and with
  ``--run RUN`` Keras ``predict`` beside it (:func:`ddnn_tf.runtime.bench.bench_run`);
* ``train``: training throughput of the paper's model (:func:`ddnn_tf.keras.bench.bench_train`);
* ``serve MODEL``: the cloud service on uvicorn vs Ray Serve, against a bare FastAPI
  endpoint (:func:`ddnn_tf.serve.bench.bench_serve`).
"""

from __future__ import annotations

import json as _json

from ddnn_tf.cli.flags import AT_LEAST_1, NON_NEGATIVE, command, settings_command
from ddnn_tf.runtime.bench import RunBench
from ddnn_tf.serve.bench import ServeBench

__all__ = ["run", "serve", "tiers", "train"]


def _show(result: dict, json: bool, format_fn) -> None:
    print(_json.dumps(result, indent=2) if json else format_fn(result))


@command(repeats=AT_LEAST_1, warmup=NON_NEGATIVE)
def tiers(
    model_dir: str,
    repeats: int = 500,
    warmup: int = 50,
    threads: int = 1,
    json: bool = False,  # noqa: A002  (the flag is --json)
) -> None:
    """Size, weight bytes and single-sample latency of every tier binary, per target.

    Args:
        model_dir: a converted model directory (tflite_models/NAME).
        repeats: timed invocations per tier and target.
        warmup: untimed invocations first.
        threads: interpreter threads.
        json: print JSON instead of a table.
    """
    from ddnn_tf.runtime.bench import bench_tiers, format_tiers

    _show(
        bench_tiers(model_dir, repeats=repeats, warmup=warmup, threads=threads), json, format_tiers
    )


def _run(bench, run: str | None = None, json: bool = False) -> None:  # noqa: A002
    from ddnn_tf.runtime.bench import bench_run, format_run

    compare = None
    if run is not None:
        from ddnn_tf.keras.bench import keras_predict_rate

        def compare(xs):
            return keras_predict_rate(run, xs, bench.batch_size)

    result = bench_run(bench, compare=compare)
    if run is not None:
        result["run"] = str(run)
        result["compare"] = "keras predict"
        result["keras_samples_per_s"] = result["compare_samples_per_s"]
        result["speedup_vs_keras"] = result["speedup"]
    _show(result, json, format_run)


run = settings_command(
    RunBench,
    _run,
    "Orchestrator throughput over a test set: batched vs one by one, per target.",
    extra={
        "run": (
            "str | None",
            None,
            "the trained run directory the model was converted from: also time Keras "
            "predict of it on the same samples (every exit for every sample)",
        ),
        "json": ("bool", False, "print JSON instead of a table"),
    },
)


@command()
def train(
    data: str = "fmnist6",
    path: str | None = None,
    epochs: int = 2,
    batch_size: int = 128,
    train_limit: int | None = None,
    json: bool = False,  # noqa: A002  (the flag is --json)
) -> None:
    """Training throughput of the paper's model (MP-CC, f = 4) on this machine.

    Args:
        data: dataset name (fmnist6, mvmc, npz, synthetic).
        path: data file or directory for file-based loaders.
        epochs: epochs to time (the first includes graph tracing).
        batch_size: samples per step.
        train_limit: keep only the first N training samples.
        json: print JSON instead of a line.
    """
    from ddnn_tf.data import load_dataset
    from ddnn_tf.keras.bench import bench_train

    dataset = load_dataset(data, path, train_limit=train_limit)
    result = bench_train(dataset, epochs=epochs, batch_size=batch_size)

    def line(r: dict) -> str:
        return (
            f"training {r['data']} ({r['n_train']} samples, batch {r['batch_size']}): "
            f"{r['samples_per_s']:.0f} samples/s, {r['seconds_per_epoch']:.1f} s/epoch "
            f"(epochs: {', '.join(f'{t:.1f}' for t in r['epoch_seconds'])} s)"
        )

    _show(result, json, line)


def _serve(bench, json: bool = False) -> None:  # noqa: A002  (the flag is --json)
    from ddnn_tf.serve.bench import bench_serve, format_serve

    _show(bench_serve(bench), json, format_serve)


serve = settings_command(
    ServeBench,
    _serve,
    "Cloud service throughput and latency: a bare FastAPI baseline, uvicorn, Ray Serve.",
    extra={"json": ("bool", False, "print JSON instead of a table")},
)


COMMANDS = {"tiers": tiers, "run": run, "train": train, "serve": serve}
