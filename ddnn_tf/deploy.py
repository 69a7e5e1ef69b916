"""The whole hierarchy as real processes on loopback, in one command.

``python -m ddnn_tf.deploy MODEL_DIR --data fmnist6 [--limit N] [--threshold T]
[--engine uvicorn|ray] [--replicas N] [--batch 64] [--json] [--kill-device D --kill-at K]
[--cloud-down-at K]``

Starts the cloud (``python -m ddnn_tf.serve cloud``), the gateway (``serve gateway``) and
one OS process per end device (``python -m ddnn_tf.device``) on 127.0.0.1 free ports,
with a fresh shared token, streams the data split through them, stops everything it
started (also on an error or Ctrl-C) and reports ``python -m ddnn_tf.run``'s keys
measured live, plus what only a network shows:

* ``wire_bytes_per_device``: bytes one live device put on its socket per sample (payload
  plus HTTP framing), ``wire_received_bytes_per_device`` what it read back;
* ``latency_ms`` ``{p50, p99}``: per sample, from the moment its devices started
  (the earliest device's clock before running its tier) to its answer at the gateway;
* ``samples_per_s``; ``lost`` (samples without an answer); ``degraded`` (answered by the
  exit below the cloud, local or edge, because the cloud was unreachable);
* ``mismatches_vs_offline``: answered samples whose exit or prediction differs from
  :meth:`ddnn_tf.runtime.Hierarchy.run` on the same data, ``T`` and the device
  presence the gateway observed (a degraded sample is expected at the exit below the
  cloud).

Faults: ``--kill-device D --kill-at K`` SIGKILLs device D's process once K samples were
answered; ``--cloud-down-at K`` stops the cloud once K samples were answered (SIGKILL
for uvicorn, an outage; SIGTERM for Ray, whose driver then stops the Ray instance).
"""

from __future__ import annotations

import json as _json
import os
import secrets
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ddnn_tf._cli import cli
from ddnn_tf.serve.process import ServiceProcess, wait_ready

__all__ = ["deploy", "main"]

_READY_TIMEOUT_S = 120.0


def _check_count(value, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}: expected a non-negative integer, got {value!r}.")
    return value


def deploy(
    model: str | Path,
    data: str = "fmnist6",
    *,
    path: str | None = None,
    split: str = "test",
    limit: int | None = None,
    threshold=None,
    engine: str = "uvicorn",
    replicas: int = 1,
    batch: int = 64,
    target: str = "portable",
    kill_device: int | None = None,
    kill_at: int | None = None,
    cloud_down_at: int | None = None,
    timeout_s: float = 900.0,
    gather_s: float = 2.0,
    records: bool = False,
    mcu_devices=(),
) -> dict[str, Any]:
    """Run the hierarchy as processes on loopback and report it (see the module docstring).

    ``data`` may also be a loaded ``Dataset``. With ``records`` the result also holds
    ``samples``: per sample ``exit`` (index, -1 = none), ``prediction``, ``degraded`` and
    ``local_presence`` (the devices whose summaries arrived).

    Returns:
        The report as a JSON-able dict.

    Raises:
        ValueError / FileNotFoundError: bad options, a bad model or dataset, a service
            that does not start, a device that fails, or the run exceeding ``timeout_s``.
    """
    import httpx

    from ddnn_tf.exits import resolve_thresholds
    from ddnn_tf.manifest import load_manifest
    from ddnn_tf.runtime import Hierarchy
    from ddnn_tf.runtime.report import load_split

    if engine not in ("uvicorn", "ray"):
        raise ValueError(f"engine: expected uvicorn or ray, got {engine!r}.")
    if (kill_device is None) != (kill_at is None):
        raise ValueError("kill_device and kill_at go together (--kill-device, --kill-at).")
    kill_at = _check_count(kill_at, "kill_at")
    cloud_down_at = _check_count(cloud_down_at, "cloud_down_at")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch: expected a positive integer, got {batch!r}.")
    if not isinstance(gather_s, (int, float)) or isinstance(gather_s, bool) or gather_s <= 0:
        raise ValueError(f"gather_s: expected a positive number of seconds, got {gather_s!r}.")
    manifest = load_manifest(model)
    h = Hierarchy(manifest, target=target)
    # the gateway applies the threshold; refuse a bad one before any data or process
    resolve_thresholds(threshold, h.exits[:-1], manifest["thresholds"])
    if kill_device is not None and (
        isinstance(kill_device, bool)
        or not isinstance(kill_device, int)
        or not 0 <= kill_device < h.num_devices
    ):
        raise ValueError(
            f"kill_device: expected a device index in [0, {h.num_devices}), got {kill_device!r}."
        )
    mcu_devices = _device_list(mcu_devices, h.num_devices)
    samples = load_split(h, data, path, split, limit)
    xs = h._check_inputs(samples.x)
    token = secrets.token_urlsafe(24)
    env = {**os.environ, "DDNN_TF_TOKEN": token, "PYTHONUNBUFFERED": "1"}
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    procs: list[ServiceProcess] = []
    killed_at = cloud_down = None
    with tempfile.TemporaryDirectory(prefix="ddnn-deploy-") as tmp:
        folder = Path(tmp)
        for d, x in enumerate(xs):
            np.save(folder / f"view_{d}.npy", x)
        headers = {"Authorization": f"Bearer {token}"}
        try:
            with httpx.Client(headers=headers, timeout=30.0) as client:
                deadline = time.monotonic() + _READY_TIMEOUT_S
                cloud_args = [
                    "-m",
                    "ddnn_tf.serve",
                    "cloud",
                    str(model),
                    "--port",
                    "0",
                    "--target",
                    target,
                ]
                if engine == "ray":
                    cloud_args += [
                        "--engine",
                        "ray",
                        "--replicas",
                        str(replicas),
                        "--ray-temp-dir",
                        str(folder / "ray"),
                    ]
                cloud = ServiceProcess("cloud", cloud_args, folder, env)
                procs.append(cloud)
                gateway_args = [
                    "-m",
                    "ddnn_tf.serve",
                    "gateway",
                    str(model),
                    "--port",
                    "0",
                    "--target",
                    target,
                    "--cloud",
                ]
                cloud_url = cloud.url(deadline)
                wait_ready(client, cloud_url, cloud, deadline)
                gateway_args.append(cloud_url)
                gateway_args += ["--gather-s", str(float(gather_s))]
                if threshold is not None:
                    gateway_args += ["--threshold", str(threshold)]
                gateway = ServiceProcess("gateway", gateway_args, folder, env)
                procs.append(gateway)
                gateway_url = gateway.url(deadline)
                wait_ready(client, gateway_url, gateway, deadline)
                devices = []
                for d in range(h.num_devices):
                    args = [
                        "-m",
                        "ddnn_tf.device",
                        str(model),
                        "--index",
                        str(d),
                        "--gateway",
                        gateway_url,
                        "--data",
                        str(folder / f"view_{d}.npy"),
                        "--batch",
                        str(batch),
                        "--target",
                        target,
                        *(["--mcu", "qemu"] if d in mcu_devices else []),
                    ]
                    devices.append(ServiceProcess(h.device_tiers[d], args, folder, env))
                procs.extend(devices)
                stop_at = time.monotonic() + timeout_s
                while any(p.alive() for p in devices):
                    if time.monotonic() > stop_at:
                        raise ValueError(f"the deployment did not finish within {timeout_s:g} s.")
                    for p in devices:
                        if p.proc.poll() not in (None, 0) and p.proc.returncode != -signal.SIGKILL:
                            raise ValueError(f"{p.name} failed: {p.tail()}")
                    if kill_at is not None or cloud_down_at is not None:
                        answered = client.get(f"{gateway_url}/v1/progress").json()["answered"]
                        if kill_at is not None and killed_at is None and answered >= kill_at:
                            devices[kill_device].stop(signal.SIGKILL)
                            killed_at = answered
                        if (
                            cloud_down_at is not None
                            and cloud_down is None
                            and (answered >= cloud_down_at)
                        ):
                            # An outage, not a shutdown: uvicorn's graceful stop would go on
                            # answering the requests in flight. Ray's driver must stop Ray.
                            cloud.stop(signal.SIGKILL if engine == "uvicorn" else signal.SIGTERM)
                            cloud_down = answered
                    time.sleep(0.02)
                for p in devices:
                    if p.proc.returncode not in (0, -signal.SIGKILL):
                        raise ValueError(f"{p.name} failed: {p.tail()}")
                answers = client.get(f"{gateway_url}/v1/results").json()
                rounds = [p.records() for p in devices]
        finally:
            for p in reversed(procs):
                p.stop()
    return _report(
        h,
        samples,
        xs,
        answers,
        rounds,
        engine=engine,
        batch=batch,
        split=split,
        kill_device=kill_device,
        killed_at=killed_at,
        cloud_down=cloud_down,
        records=records,
        mcu_devices=mcu_devices,
    )


def _device_list(value, num_devices: int) -> list[int]:
    """Device indices from ``0,1,2`` or a sequence (the devices run on an emulated board)."""
    if isinstance(value, str):
        items = value.split(",")
    else:
        items = [value] if isinstance(value, int) else list(value or ())
    try:
        devices = sorted({int(str(v).strip()) for v in items if str(v).strip()})
    except ValueError:
        raise ValueError(
            f"mcu_devices: expected device indices such as 0,1,2, got {value!r}."
        ) from None
    if any(not 0 <= d < num_devices for d in devices):
        raise ValueError(f"mcu_devices: expected indices in [0, {num_devices}), got {value!r}.")
    return devices


def _report(h, samples, xs, answers, rounds, **info) -> dict[str, Any]:
    from ddnn_tf.evaluate import reduction
    from ddnn_tf.exits import exit_points

    n, d = len(samples.y), h.num_devices
    rows = answers["results"]
    answered = np.zeros(n, bool)
    exit_index = np.full(n, -1, np.int64)
    prediction = np.full(n, -1, np.int64)
    degraded = np.zeros(n, bool)
    local_p = np.zeros((n, d), bool)
    cloud_p = np.zeros((n, d), bool)
    t_done = np.full(n, np.nan)
    payload = np.zeros((n, d), np.int64)
    bits = 1 << np.arange(d)
    for s, e, p, deg, lm, cm, t, sent in rows:
        answered[s] = True
        exit_index[s], prediction[s], degraded[s] = e, p, deg
        local_p[s] = (lm & bits) > 0
        cloud_p[s] = (cm & bits) > 0
        t_done[s] = t
        payload[s] = sent
    ts = answers.get("thresholds") or {"local": float(answers["threshold"])}
    exits = list(h.exits)
    # The offline reference: the same data, T and observed presence.
    full = h.run(xs, thresholds=ts, presence=local_p, all_exits=True, batch_size=256)
    staged = h.run(xs, thresholds=ts, presence=local_p, batch_size=256)
    want_exit = full.exit_index.copy()
    want_pred = full.prediction.copy()
    probs = {e: np.nan_to_num(full.probs[e], nan=0.0) for e in exits}
    mixed = answered & (full.exit_index > 0) & (cloud_p != local_p).any(axis=1)
    if mixed.any():  # a device's summary arrived but its features did not
        idx = np.flatnonzero(mixed)
        other = h.run(
            [x[idx] for x in xs],
            thresholds=ts,
            presence=cloud_p[idx],
            all_exits=True,
            batch_size=256,
        )
        upper = [np.nan_to_num(other.probs[e], nan=0.0) for e in exits[1:]]
        for e, p in zip(exits[1:], upper, strict=True):
            probs[e][idx] = p
        want_exit[idx] = 1 + exit_points(upper, [ts[e] for e in exits[1:-1]])
    for k, e in enumerate(exits):
        sel = mixed & (want_exit == k)
        want_pred[sel] = np.argmax(probs[e][sel], axis=1)
    fallback = len(exits) - 2  # a degraded sample is answered by the exit below the cloud
    want_exit[degraded] = fallback
    want_pred[degraded] = np.argmax(probs[exits[fallback]][degraded], axis=1)
    mismatches = int(
        np.count_nonzero(answered & ((exit_index != want_exit) | (prediction != want_pred)))
    )
    y = samples.y
    live_pairs = local_p & answered[:, None]
    bytes_per_device = float(payload[live_pairs].mean()) if live_pairs.any() else 0.0
    counts = np.bincount(exit_index + 1, minlength=len(h.exits) + 1)
    exit_fraction = {e: float(counts[k + 1]) / n for k, e in enumerate(h.exits)}
    exit_fraction["unclassified"] = float(counts[0]) / n
    accuracy = {
        e: float(np.mean(np.argmax(np.nan_to_num(full.probs[e], nan=-1.0), axis=1) == y) * 1.0)
        for e in h.exits
    }
    for e in h.exits:  # samples nobody saw count as wrong, as in run
        accuracy[e] = float(
            np.mean((np.argmax(np.nan_to_num(full.probs[e], nan=0.0), axis=1) == y) & full.valid)
        )
    accuracy["overall"] = float(np.mean(prediction == y))
    raw = [float(entry["raw_bytes"]) for entry in h.manifest["inputs"]]
    raw_mean = float(np.mean(raw))
    t0 = {}
    sent = received = pairs = 0
    for device_rounds in rounds:
        for r in device_rounds:
            if "start" not in r:
                continue
            t0[r["start"]] = min(t0.get(r["start"], np.inf), r["t0"])
            sent += r["sent"]
            received += r["received"]
            pairs += r["n"]
    start_of = np.array([t0.get((s // info["batch"]) * info["batch"], np.nan) for s in range(n)])
    latency = (t_done - start_of)[answered] * 1e3
    latency = latency[np.isfinite(latency)]
    wall = float(np.nanmax(t_done) - min(t0.values())) if t0 and answered.any() else 0.0
    failed = [] if info["killed_at"] is None else [int(info["kill_device"])]
    result: dict[str, Any] = {
        "model": str(h.manifest.directory),
        "target": h.target,
        "split": info["split"],
        "n_samples": int(n),
        "exits": list(h.exits),
        "accuracy": accuracy,
        "exit_fraction": exit_fraction,
        "thresholds": {k: float(v) for k, v in ts.items()},
        "bytes_per_device": bytes_per_device,
        "raw_bytes_per_device": raw_mean,
        "communication_reduction": reduction(raw_mean, bytes_per_device),
        "failed_devices": failed,
        "fail_prob": 0.0,
        "seed": 0,
        "unclassified": int(np.count_nonzero(answered & (exit_index < 0))),
        "summary_encoding": h.summary_encoding,
        "batch_size": int(info["batch"]),
        "latency_ms": {
            "p50": float(np.percentile(latency, 50)) if latency.size else None,
            "p99": float(np.percentile(latency, 99)) if latency.size else None,
        },
        "samples_per_s": float(answered.sum() / wall) if wall > 0 else 0.0,
        "staged_matches_all_exits": bool(
            np.array_equal(full.exit_index, staged.exit_index)
            and np.array_equal(full.prediction, staged.prediction)
        ),
        "engine": info["engine"],
        "wire_bytes_per_device": sent / pairs if pairs else 0.0,
        "wire_received_bytes_per_device": received / pairs if pairs else 0.0,
        "offline_bytes_per_device": staged.bytes_per_device(),
        "mismatches_vs_offline": mismatches,
        "lost": int(n - answered.sum()),
        "degraded": int(degraded.sum()),
        "kill": None
        if info["killed_at"] is None
        else {
            "device": int(info["kill_device"]),
            "answered_before_kill": int(info["killed_at"]),
            "first_sample_without_device": _first_absent(
                local_p, answered, int(info["kill_device"])
            ),
        },
        "cloud_down_after": info["cloud_down"],
        "mcu_devices": info["mcu_devices"],
    }
    if info["records"]:
        result["samples"] = {
            "exit": exit_index.tolist(),
            "prediction": prediction.tolist(),
            "degraded": degraded.tolist(),
            "local_presence": local_p.tolist(),
        }
    return result


def _first_absent(presence: np.ndarray, answered: np.ndarray, device: int) -> int | None:
    absent = np.flatnonzero(answered & ~presence[:, device])
    return int(absent[0]) if absent.size else None


def format_report(result: dict[str, Any]) -> str:
    """A short readable report of :func:`deploy`'s result."""
    acc = result["accuracy"]
    lines = [
        f"{result['model']} on {result['engine']}: {result['n_samples']} {result['split']} "
        f"samples in rounds of {result['batch_size']}",
        "accuracy: " + ", ".join(f"{k} {v:.4f}" for k, v in acc.items()),
        "exit fraction: " + ", ".join(f"{k} {v:.4f}" for k, v in result["exit_fraction"].items()),
        f"payload bytes per device per sample: {result['bytes_per_device']:.2f} "
        f"(offline run: {result['offline_bytes_per_device']:.2f}); on the socket: "
        f"{result['wire_bytes_per_device']:.2f} sent, "
        f"{result['wire_received_bytes_per_device']:.2f} received",
        f"latency p50 {result['latency_ms']['p50']:.1f} ms, p99 "
        f"{result['latency_ms']['p99']:.1f} ms; {result['samples_per_s']:.0f} samples/s",
        f"mismatches vs offline: {result['mismatches_vs_offline']}; lost: {result['lost']}; "
        f"degraded: {result['degraded']}",
    ]
    if result.get("mcu_devices"):
        lines.append(f"devices on an emulated Cortex-M4 (C tier in QEMU): {result['mcu_devices']}")
    if result["kill"]:
        lines.append(f"killed: {result['kill']}")
    if result["cloud_down_after"] is not None:
        lines.append(f"cloud stopped after {result['cloud_down_after']} answers")
    return "\n".join(lines)


def main(
    model: str,
    data: str = "fmnist6",
    path: str | None = None,
    split: str = "test",
    limit: int | None = None,
    threshold=None,
    engine: str = "uvicorn",
    replicas: int = 1,
    batch: int = 64,
    target: str = "portable",
    kill_device: int | None = None,
    kill_at: int | None = None,
    cloud_down_at: int | None = None,
    timeout_s: float = 900.0,
    gather_s: float = 2.0,
    mcu_devices=None,
    json: bool = False,  # noqa: A002  (the flag is --json)
) -> None:
    """Run a converted model's hierarchy as processes on loopback and report it.

    Args:
        model: the converted model directory (tflite_models/NAME).
        data: dataset name (fmnist6, mvmc, npz, synthetic).
        path: data file or directory for file-based loaders.
        split: test or val.
        limit: stream the first N samples only.
        threshold: T of every early exit, or 'paper' (default: the manifest's).
        engine: the cloud's engine: uvicorn or ray.
        replicas: Ray Serve replicas (engine ray).
        batch: samples per device round.
        target: portable (ai-edge-litert) or lce (larq-compute-engine).
        kill_device: the device to kill (with --kill-at).
        kill_at: kill it once this many samples were answered.
        cloud_down_at: stop the cloud once this many samples were answered.
        timeout_s: give up (and stop everything) after this many seconds of streaming.
        gather_s: how long the gateway waits for a silent device before counting it absent.
        mcu_devices: devices (e.g. 0,1,2,3,4,5) whose tier runs as C on an emulated Cortex-M4.
        json: print one JSON object instead of the text report.
    """
    try:
        result = deploy(
            model,
            data,
            path=path,
            split=split,
            limit=limit,
            threshold=threshold,
            engine=engine,
            replicas=replicas,
            batch=batch,
            target=target,
            kill_device=kill_device,
            kill_at=kill_at,
            cloud_down_at=cloud_down_at,
            timeout_s=timeout_s,
            gather_s=gather_s,
            mcu_devices=mcu_devices,
        )
    except KeyboardInterrupt:
        print("error: interrupted; every process deploy started was stopped.", file=sys.stderr)
        sys.exit(130)
    print(_json.dumps(result, indent=2) if json else format_report(result))


if __name__ == "__main__":
    cli(main)
