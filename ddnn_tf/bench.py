"""Benchmarks (not timed tests): ``python -m ddnn_tf.bench <command> ...``.

* ``tiers tflite_models/NAME``: per tier and target, the file size, the weight bytes
  and the single-sample latency (median of many invocations, one thread) of the
  converted binaries on this CPU.

* ``serve tflite_models/NAME``: the cloud service on uvicorn vs Ray Serve (samples/s,
  p50/p99 per request), from :mod:`ddnn_tf.serve.bench`.

* ``train``: training throughput (samples/s, s/epoch) of the default model on fmnist6.

Each command is a function ``bench_<name>`` that returns its figures (and prints them);
TensorFlow is never imported at module level.
"""

from __future__ import annotations

import functools
import json as _json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ddnn_tf._cli import cli
from ddnn_tf.serve.bench import bench_serve

__all__ = ["COMMANDS", "bench_train", "bench_tiers", "format_tiers"]


def _sample_input(spec: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """One batch-1 input of the kind the tier receives (values do not change the timing
    of these kernels, but stay realistic: +-1 features, 0/1 presence)."""
    shape = tuple(spec["shape"])
    if spec["role"] == "features":
        return np.where(rng.random(shape) < 0.5, -1.0, 1.0).astype(np.float32)
    if spec["role"] == "presence":
        return np.ones(shape, np.float32)
    if spec["role"] == "summary":
        return rng.normal(size=shape).astype(np.float32)
    return rng.random(shape, dtype=np.float32)


def _portable_timer(path: Path, tier: dict[str, Any], inputs: dict[str, np.ndarray], threads: int):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    runner = interpreter.get_signature_runner("serving_default")
    in_index = {k: v["index"] for k, v in runner.get_input_details().items()}
    out_index = [v["index"] for v in runner.get_output_details().values()]

    def once() -> None:
        for name, x in inputs.items():
            interpreter.set_tensor(in_index[name], x)
        interpreter.invoke()
        for index in out_index:
            interpreter.get_tensor(index)

    return once


def _lce_timer(path: Path, entry: dict[str, Any], inputs: dict[str, np.ndarray], threads: int):
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    interpreter = Interpreter(path.read_bytes(), num_threads=threads)
    ordered = [inputs[name] for name in entry["input_order"]]

    def once() -> None:
        interpreter.interpreter.predict(ordered)

    return once


def bench_tiers(
    model_dir: str,
    repeats: int = 500,
    warmup: int = 50,
    threads: int = 1,
    json: bool = False,  # noqa: A002  (the conventional flag name)
) -> dict[str, Any]:
    """Size, weight bytes and single-sample latency of every tier binary, per target.

    Latency is one invocation on one batch-1 sample, inputs copied in and outputs out,
    the median (and 90th percentile) over ``repeats`` invocations after ``warmup``.
    ``portable`` runs in ai-edge-litert (its default XNNPACK delegate), ``lce`` in
    larq-compute-engine's interpreter (optimised bit-packed kernels on Arm; portable C++
    kernels elsewhere).

    Args:
        model_dir: a converted model directory (``tflite_models/NAME``).
        repeats: timed invocations per tier and target.
        warmup: untimed invocations first.
        threads: interpreter threads.
        json: print JSON instead of a table.

    Returns:
        ``{"model", "threads", "repeats", "rows": [{tier, target, file_bytes,
        binary_weight_bytes, float_param_bytes, median_us, p90_us}]}``.

    Raises:
        FileNotFoundError / ValueError: no valid converted model at ``model_dir``.
    """
    from ddnn_tf.manifest import load_manifest
    from ddnn_tf.tflite_check import check_manifest_tier

    if int(repeats) < 1 or int(warmup) < 0 or int(threads) < 1:
        raise ValueError(
            f"Expected repeats >= 1, warmup >= 0, threads >= 1. Received "
            f"repeats={repeats}, warmup={warmup}, threads={threads}."
        )
    manifest = load_manifest(model_dir)
    rng = np.random.default_rng(0)
    rows = []
    for tier, meta in manifest["tiers"].items():
        inputs = {spec["name"]: _sample_input(spec, rng) for spec in meta["inputs"]}
        memory = meta.get("memory", {})
        for target, entry in meta["files"].items():
            path = manifest.path(tier, target)
            check_manifest_tier(manifest, tier, target)  # before an interpreter loads it
            make = _portable_timer if target == "portable" else _lce_timer
            once = make(path, meta if target == "portable" else entry, inputs, int(threads))
            for _ in range(int(warmup)):
                once()
            times = np.empty(int(repeats))
            for k in range(int(repeats)):
                start = time.perf_counter_ns()
                once()
                times[k] = time.perf_counter_ns() - start
            rows.append(
                {
                    "tier": tier,
                    "target": target,
                    "file_bytes": entry["size_bytes"],
                    "binary_weight_bytes": memory.get("binary_weight_bytes"),
                    "float_param_bytes": memory.get("float_param_bytes"),
                    "median_us": float(np.median(times) / 1e3),
                    "p90_us": float(np.percentile(times, 90) / 1e3),
                }
            )
    result = {
        "model": str(model_dir),
        "quantize": manifest.get("quantize", "none"),
        "threads": int(threads),
        "repeats": int(repeats),
        "rows": rows,
    }
    print(_json.dumps(result, indent=2) if json else format_tiers(result))
    return result


def format_tiers(result: dict[str, Any]) -> str:
    """A readable table of :func:`bench_tiers` figures."""
    lines = [
        f"{result['model']} (quantize={result['quantize']}): single-sample latency, "
        f"{result['threads']} thread(s), median of {result['repeats']} invocations",
        f"{'tier':<18}{'target':<10}{'file B':>8}{'binary W B':>12}{'float P B':>11}"
        f"{'median us':>11}{'p90 us':>9}",
    ]
    for r in result["rows"]:
        lines.append(
            f"{r['tier']:<18}{r['target']:<10}{r['file_bytes']:>8}"
            f"{r['binary_weight_bytes'] if r['binary_weight_bytes'] is not None else '-':>12}"
            f"{r['float_param_bytes'] if r['float_param_bytes'] is not None else '-':>11}"
            f"{r['median_us']:>11.1f}{r['p90_us']:>9.1f}"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------ run (ddnn_tf.runtime)
def bench_run(
    model_dir: str,
    data: str | None = "fmnist6",
    path: str | None = None,
    batch_size: int = 256,
    targets: str | tuple = "portable,lce",
    threshold=None,
    limit: int | None = None,
    threads: int = 1,
    run: str | None = None,
    json: bool = False,  # noqa: A002  (the conventional flag name)
) -> dict[str, Any]:
    """Orchestrator throughput over a test set: batched vs one by one, per target.

    Runs the whole hierarchy (:class:`ddnn_tf.runtime.Hierarchy`: tiers, summary and
    feature encoding, exits) on every test sample twice per target, with ``batch_size``
    samples per interpreter call and one by one, and checks that both give the same
    exits, predictions and bytes. The lce interpreter cannot resize its batch dimension,
    so its "batched" run still invokes each tier once per sample (only the orchestration
    around it is batched).

    Args:
        model_dir: a converted model directory (``tflite_models/NAME``).
        data: dataset name (default fmnist6; None = the manifest's dataset).
        path: data file or directory for file-based loaders.
        batch_size: samples per interpreter call in the batched run.
        targets: comma-separated targets to run (those the model has).
        threshold: T for every early exit (default: the manifest's).
        limit: use the first ``limit`` test samples only.
        threads: interpreter threads per tier.
        run: the trained run directory the model was converted from: also time Keras
            ``model.predict`` of it on the same samples (every exit for every sample,
            ``batch_size`` per call) in this process, and compare.
        json: print JSON instead of a table.

    Returns:
        ``{"model", "n_samples", "batch_size", "threads", "rows": [{target, mode,
        batch_size, seconds, samples_per_s, accuracy, first_exit_fraction,
        bytes_per_device, identical_to_one_by_one}]}``; with ``run`` also
        ``keras_samples_per_s`` and ``speedup_vs_keras`` (the first target's batched
        samples/s over Keras').

    Raises:
        FileNotFoundError / ValueError: a bad model directory, dataset or option.
    """
    from ddnn_tf.runtime import Hierarchy
    from ddnn_tf.runtime.report import load_data_for

    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit: expected a positive integer, got {limit!r}.")
    names = targets.split(",") if isinstance(targets, str) else list(targets)
    rows = []
    n = 0
    for target in [t.strip() for t in names if t.strip()]:
        h = Hierarchy(model_dir, target=target, num_threads=int(threads))
        test = load_data_for(h, data, path).test
        if limit is not None:
            test = test.subset(slice(0, limit))
        n = len(test)
        results = {}
        for mode, size in (("batched", int(batch_size)), ("one-by-one", 1)):
            start = time.perf_counter()
            r = h.run(test.x, thresholds=threshold, batch_size=size)
            seconds = time.perf_counter() - start
            results[mode] = r
            rows.append(
                {
                    "target": target,
                    "mode": mode,
                    "batch_size": size,
                    "seconds": seconds,
                    "samples_per_s": n / seconds if seconds > 0 else 0.0,
                    "accuracy": r.accuracy(test.y),
                    "first_exit_fraction": r.exit_fraction()[h.exits[0]],
                    "bytes_per_device": r.bytes_per_device(),
                }
            )
        a, b = results["batched"], results["one-by-one"]
        same = (
            np.array_equal(a.exit_index, b.exit_index)
            and np.array_equal(a.prediction, b.prediction)
            and all(np.array_equal(a.link_bytes[k], b.link_bytes[k]) for k in a.link_bytes)
        )
        for row in rows[-2:]:
            row["identical_to_one_by_one"] = bool(same)
    result = {
        "model": str(model_dir),
        "n_samples": n,
        "batch_size": int(batch_size),
        "threads": int(threads),
        "rows": rows,
    }
    if run is not None:
        keras_rate = _keras_predict_rate(run, test.x, int(batch_size))
        result["run"] = str(run)
        result["keras_samples_per_s"] = keras_rate
        result["speedup_vs_keras"] = rows[0]["samples_per_s"] / keras_rate
    print(_json.dumps(result, indent=2) if json else format_run(result))
    return result


def _keras_predict_rate(run_dir: str, xs: list[np.ndarray], batch_size: int) -> float:
    """Samples/s of Keras ``model.predict`` of a trained run (every exit, every sample)."""
    from ddnn_tf.rundir import load_run

    model = load_run(run_dir).ddnn.model
    model.predict([x[:batch_size] for x in xs], batch_size=batch_size, verbose=0)  # warm up
    start = time.perf_counter()
    model.predict(xs, batch_size=batch_size, verbose=0)
    seconds = time.perf_counter() - start
    return len(xs[0]) / seconds if seconds > 0 else 0.0


def format_run(result: dict[str, Any]) -> str:
    """A readable table of :func:`bench_run` figures."""
    lines = [
        f"{result['model']}: orchestrator throughput over {result['n_samples']} samples, "
        f"{result['threads']} thread(s) per tier",
        f"{'target':<10}{'mode':<12}{'batch':>6}{'seconds':>9}{'samples/s':>11}"
        f"{'accuracy':>10}{'1st exit %':>11}{'B/device':>10}  same",
    ]
    for r in result["rows"]:
        lines.append(
            f"{r['target']:<10}{r['mode']:<12}{r['batch_size']:>6}{r['seconds']:>9.2f}"
            f"{r['samples_per_s']:>11.0f}{r['accuracy']:>10.4f}"
            f"{100 * r['first_exit_fraction']:>11.2f}{r['bytes_per_device']:>10.2f}  "
            f"{'yes' if r['identical_to_one_by_one'] else 'NO'}"
        )
    if "keras_samples_per_s" in result:
        first = result["rows"][0]
        lines.append(
            f"keras    predict     {result['batch_size']:>6}{'':>9}"
            f"{result['keras_samples_per_s']:>11.0f}   (run {result['run']}: every exit, "
            f"every sample)"
        )
        lines.append(
            f"{first['target']} {first['mode']} / keras predict: {result['speedup_vs_keras']:.2f}x"
        )
    return "\n".join(lines)


def bench_train(
    data: str = "fmnist6",
    path: str | None = None,
    epochs: int = 2,
    batch_size: int = 128,
    train_limit: int | None = None,
    json: bool = False,  # noqa: A002  (the conventional flag name)
) -> dict[str, Any]:
    """Training throughput of the default model (the paper's MP-CC, f = 4) on this machine.

    Trains for ``epochs`` epochs without validation and reports samples per second and
    seconds per epoch for each epoch; the first epoch includes graph tracing, so the
    steady figure is the median of the later ones.
    """
    import ddnn_tf  # noqa: F401  (legacy Keras before TensorFlow)
    from ddnn_tf.data import load_dataset
    from ddnn_tf.model import build_ddnn
    from ddnn_tf.train import EpochTimer, TrainConfig, compile_ddnn, topology_for

    dataset = load_dataset(data, path, train_limit=train_limit)
    topology = topology_for(dataset)
    config = TrainConfig(epochs=int(epochs), batch_size=int(batch_size))
    ddnn = build_ddnn(topology)
    compile_ddnn(ddnn, config)
    n = len(dataset.train)
    timer = EpochTimer()
    y = {e: dataset.train.y for e in topology.exits}
    ddnn.model.fit(
        list(dataset.train.x),
        y,
        epochs=int(epochs),
        batch_size=int(batch_size),
        verbose=0,
        callbacks=[timer],
    )
    times = timer.seconds
    steady = float(np.median(times[1:])) if len(times) > 1 else times[0]
    result = {
        "data": data,
        "n_train": n,
        "batch_size": int(batch_size),
        "epoch_seconds": times,
        "seconds_per_epoch": steady,
        "samples_per_s": n / steady,
    }
    if json:
        print(_json.dumps(result, indent=2))
    else:
        print(
            f"training {data} ({n} samples, batch {batch_size}): "
            f"{result['samples_per_s']:.0f} samples/s, {steady:.1f} s/epoch "
            f"(epochs: {', '.join(f'{t:.1f}' for t in times)} s)"
        )
    return result


def _command(fn):
    """``fn`` as a CLI command: it prints its figures, so fire should not print the return."""

    @functools.wraps(fn)
    def command(*args, **kwargs) -> None:
        fn(*args, **kwargs)

    return command


#: Subcommands of ``python -m ddnn_tf.bench`` (each wraps a ``bench_<name>`` function).
COMMANDS = {
    "train": _command(bench_train),
    "tiers": _command(bench_tiers),
    "run": _command(bench_run),
    "serve": _command(bench_serve),
}


if __name__ == "__main__":
    cli(COMMANDS)
