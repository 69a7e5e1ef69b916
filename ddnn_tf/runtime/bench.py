"""Benchmarks of converted models on this CPU (no TensorFlow): the tier binaries one by
one (:func:`bench_tiers`) and the whole hierarchy (:func:`bench_run`).

Each function returns its figures; ``ddnn bench`` prints them. Speed targets are checked
with these, never with timed tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ddnn_tf.core.options import AT_LEAST_1, Options, choice_list, option
from ddnn_tf.core.vocab import SIGNATURE_KEY, TARGETS
from ddnn_tf.errors import ConfigError
from ddnn_tf.runtime.tiers import load_lce_interpreter

__all__ = ["RunBench", "bench_run", "bench_tiers", "format_run", "format_tiers"]


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
    runner = interpreter.get_signature_runner(SIGNATURE_KEY)
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
    lce = load_lce_interpreter()
    interpreter = lce(path.read_bytes(), threads, False, False, False)
    ordered = [inputs[name] for name in entry["input_order"]]

    def once() -> None:
        interpreter.predict(ordered)

    return once


def bench_tiers(
    model_dir: str,
    repeats: int = 500,
    warmup: int = 50,
    threads: int = 1,
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

    Returns:
        ``{"model", "threads", "repeats", "rows": [{tier, target, file_bytes,
        binary_weight_bytes, float_param_bytes, median_us, p90_us}]}``.

    Raises:
        FileNotFoundError, FormatError: no valid converted model at ``model_dir``.
        ConfigError: a count out of range.
    """
    from ddnn_tf.core.manifest import load_manifest
    from ddnn_tf.core.tflite_check import check_manifest_tier

    if int(repeats) < 1 or int(warmup) < 0 or int(threads) < 1:
        raise ConfigError(
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
    return result


#: How :func:`format_tiers` and :func:`format_run` show a row: ``(header, format spec,
#: row key or row -> value)``; the header takes the spec's alignment and width.
_Columns = tuple[tuple[str, str, str | Callable[[dict[str, Any]], Any]], ...]


def _or_dash(value: Any) -> Any:
    return "-" if value is None else value


_TIER_COLUMNS: _Columns = (
    ("tier", "<18", "tier"),
    ("target", "<10", "target"),
    ("file B", ">8", "file_bytes"),
    ("binary W B", ">12", lambda r: _or_dash(r["binary_weight_bytes"])),
    ("float P B", ">11", lambda r: _or_dash(r["float_param_bytes"])),
    ("median us", ">11.1f", "median_us"),
    ("p90 us", ">9.1f", "p90_us"),
)
_RUN_COLUMNS: _Columns = (
    ("target", "<10", "target"),
    ("mode", "<12", "mode"),
    ("batch", ">6", "batch_size"),
    ("seconds", ">9.2f", "seconds"),
    ("samples/s", ">11.0f", "samples_per_s"),
    ("accuracy", ">10.4f", "accuracy"),
    ("1st exit %", ">11.2f", lambda r: 100 * r["first_exit_fraction"]),
    ("B/device", ">10.2f", "bytes_per_device"),
    ("  same", "", lambda r: "  yes" if r["identical_to_one_by_one"] else "  NO"),
)


def _table(columns: _Columns, rows: list[dict[str, Any]]) -> list[str]:
    """A header line and one line per row."""

    def cell(row: dict[str, Any], spec: str, get) -> str:
        return format(get(row) if callable(get) else row[get], spec)

    lines = ["".join(format(header, spec.split(".")[0]) for header, spec, _ in columns)]
    return lines + ["".join(cell(r, spec, get) for _, spec, get in columns) for r in rows]


def format_tiers(result: dict[str, Any]) -> str:
    """A readable table of :func:`bench_tiers` figures."""
    title = (
        f"{result['model']} (quantize={result['quantize']}): single-sample latency, "
        f"{result['threads']} thread(s), median of {result['repeats']} invocations"
    )
    return "\n".join([title, *_table(_TIER_COLUMNS, result["rows"])])


@dataclass(frozen=True, kw_only=True)
class RunBench(Options):
    """What ``ddnn bench run`` measures."""

    model: str = option(help="a converted model directory (tflite_models/NAME)", positional=True)
    data: str | None = option(
        "fmnist6", "dataset name (default fmnist6; None = the manifest's dataset)"
    )
    path: str | None = option(None, "data file or directory for file-based loaders")
    batch_size: int = option(256, "samples per interpreter call in the batched run", AT_LEAST_1)
    targets: list[str] = option(
        ("portable", "lce"), "comma-separated targets to run (those the model has)",
        parse=choice_list(TARGETS, f"targets among {', '.join(TARGETS)}"),
    )  # fmt: skip
    threshold: object = option(None, "T for every early exit (default: the manifest's)")
    limit: int | None = option(None, "use the first N test samples only", AT_LEAST_1)
    threads: int = option(1, "interpreter threads per tier", AT_LEAST_1)


def bench_run(
    bench: RunBench | str,
    *,
    compare: Callable[[list[np.ndarray]], float] | None = None,
    **options,
) -> dict[str, Any]:
    """Orchestrator throughput over a test set: batched vs one by one, per target.

    Runs the whole hierarchy (:class:`ddnn_tf.runtime.Hierarchy`: tiers, summary and
    feature encoding, exits) on every test sample twice per target, with ``batch_size``
    samples per interpreter call and one by one, and checks that both give the same
    exits, predictions and bytes. The lce interpreter cannot resize its batch dimension,
    so its "batched" run still invokes each tier once per sample (only the orchestration
    around it is batched).

    Args:
        bench: what to measure (:class:`RunBench`), or the model directory (then
            ``options`` are its other fields).
        compare: another way to classify the same samples (e.g. Keras ``predict`` of
            the run the model was converted from): called with the test views, it returns
            its samples/s, reported beside the orchestrator's.

    Returns:
        ``{"model", "n_samples", "batch_size", "threads", "rows": [{target, mode,
        batch_size, seconds, samples_per_s, accuracy, first_exit_fraction,
        bytes_per_device, identical_to_one_by_one}]}``; with ``compare`` also
        ``compare_samples_per_s`` and ``speedup`` (the first target's batched samples/s
        over it).

    Raises:
        FileNotFoundError, FormatError, ConfigError: a bad model directory, dataset or
            option.
    """
    from ddnn_tf.runtime import Hierarchy
    from ddnn_tf.runtime.report import load_data_for

    b = bench if isinstance(bench, RunBench) else RunBench(model=str(bench), **options)
    model_dir, data, path, batch_size, threshold, limit, threads = (
        b.model, b.data, b.path, b.batch_size, b.threshold, b.limit, b.threads
    )  # fmt: skip
    rows = []
    n = 0
    for target in b.targets:
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
    if compare is not None:
        rate = compare(test.x)
        result["compare_samples_per_s"] = rate
        result["speedup"] = rows[0]["samples_per_s"] / rate if rate > 0 else float("inf")
    return result


def format_run(result: dict[str, Any]) -> str:
    """A readable table of :func:`bench_run` figures."""
    lines = [
        f"{result['model']}: orchestrator throughput over {result['n_samples']} samples, "
        f"{result['threads']} thread(s) per tier",
        *_table(_RUN_COLUMNS, result["rows"]),
    ]
    if "compare_samples_per_s" in result:
        first = result["rows"][0]
        what = result.get("compare", "compared")
        lines.append(
            f"{what:<22}{result['batch_size']:>6}{'':>9}{result['compare_samples_per_s']:>11.0f}"
        )
        lines.append(f"{first['target']} {first['mode']} / {what}: {result['speedup']:.2f}x")
    return "\n".join(lines)
