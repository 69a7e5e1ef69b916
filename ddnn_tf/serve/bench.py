"""``ddnn bench serve``: the cloud service on uvicorn vs Ray Serve.

Each engine serves the cloud tier in its own process (``ddnn serve cloud``)
on a free loopback port; a client in this process sends ``requests`` ``POST /v1/cloud``
requests (``records`` samples each, real device features of the test split) with
``concurrency`` requests in flight, and measures per-request latency and throughput.
Every answer is checked against the offline runtime (``identical``).
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from ddnn_tf.errors import ConfigError

__all__ = ["bench_serve", "format_serve"]


def _bodies(model_dir: str, data: str, path, n_requests: int, records: int):
    import numpy as np

    from ddnn_tf.runtime import Hierarchy
    from ddnn_tf.runtime.report import load_data_for
    from ddnn_tf.serve.wire import CloudSpec, encode_features_records

    h = Hierarchy(model_dir)
    test = load_data_for(h, data, path).test
    n = min(len(test), n_requests * records)
    test = test.subset(slice(0, n))
    features = {  # what each device sends upward (its sensor input is its only input)
        t.name: h.tiers[t.name]({t.inputs[0].name: test.x[t.device]})["features"]
        for t in h.graph.by_role("device")
    }
    want = h.run(test.x, all_exits=True, batch_size=256).probs["cloud"]
    spec = CloudSpec.from_manifest(h.manifest)
    bodies, expected = [], []
    for i in range(n_requests):
        rows = [(i * records + k) % n for k in range(records)]
        picked = {s: v[rows] for s, v in features.items()}
        bodies.append(
            encode_features_records(spec, np.ones((records, len(features)), bool), picked)
        )
        expected.append(want[rows])
    return bodies, expected


async def _drive(url: str, headers: dict, bodies: list, expected: list, concurrency: int):
    import asyncio

    import httpx
    import numpy as np

    latencies = [0.0] * len(bodies)
    identical = [False] * len(bodies)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    transport = httpx.AsyncHTTPTransport(
        limits=limits, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    )
    async with httpx.AsyncClient(
        base_url=url, headers=headers, transport=transport, timeout=60
    ) as c:
        for body in bodies[: min(50, len(bodies))]:  # warm-up (connections, first batches)
            (await c.post("/v1/cloud", content=body)).raise_for_status()
        queue = list(range(len(bodies)))[::-1]

        async def worker():
            while queue:
                i = queue.pop()
                t = time.perf_counter()
                r = await c.post("/v1/cloud", content=bodies[i])
                latencies[i] = time.perf_counter() - t
                if r.status_code == 200:
                    got = np.array([x["probs"] for x in r.json()["results"]])
                    identical[i] = bool(np.array_equal(got, expected[i]))

        start = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        wall = time.perf_counter() - start
    return np.array(latencies) * 1e3, wall, all(identical)


def bench_serve(
    model_dir: str,
    data: str | None = "fmnist6",
    path: str | None = None,
    requests: int = 2000,
    records: int = 1,
    concurrency: int = 32,
    engines: str | tuple = "uvicorn,ray",
    replicas: int = 1,
) -> dict[str, Any]:
    """Cloud service throughput and latency, uvicorn vs Ray Serve, side by side.

    Args:
        model_dir: a converted model directory (``tflite_models/NAME``).
        data: dataset name (default fmnist6).
        path: data file or directory for file-based loaders.
        requests: requests per engine (after 50 warm-up requests).
        records: samples per request (1 = one phone's sample).
        concurrency: requests in flight.
        engines: comma-separated engines: uvicorn, ray.
        replicas: Ray Serve replicas.

    Returns:
        ``{"model", "requests", "records", "concurrency", "rows": [{engine, replicas,
        samples_per_s, requests_per_s, p50_ms, p99_ms, identical}]}``.

    Raises:
        FileNotFoundError, FormatError, ConfigError: a bad model, dataset or option.
        DeploymentError: a service that does not start.
    """
    import asyncio
    import secrets

    import httpx
    import numpy as np

    from ddnn_tf.serve.process import READY_TIMEOUT_S, ServiceProcess, wait_ready
    from ddnn_tf.serve.wire import FEATURES_TYPE, model_id

    names = [e.strip() for e in (engines.split(",") if isinstance(engines, str) else engines)]
    for e in names:
        if e not in ("uvicorn", "ray"):
            raise ConfigError(f"expected uvicorn and/or ray, got {e!r}.", argument="engines")
    for name, value in (
        ("requests", requests),
        ("records", records),
        ("concurrency", concurrency),
        ("replicas", replicas),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"expected a positive integer, got {value!r}.", argument=name)
    bodies, expected = _bodies(model_dir, data, path, requests, records)
    token = secrets.token_urlsafe(24)
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "DDNN_TF_TOKEN": token, "PYTHONPATH": root}
    headers = {
        "Content-Type": FEATURES_TYPE,
        "X-DDNN-Model": model_id(model_dir),
        "Authorization": f"Bearer {token}",
    }
    rows = []
    for engine in names:
        with tempfile.TemporaryDirectory(prefix="ddnn-bench-") as tmp:
            args = ["-m", "ddnn_tf.serve", "cloud", str(model_dir), "--port", "0"]
            if engine == "ray":
                args += [
                    "--engine",
                    "ray",
                    "--replicas",
                    str(replicas),
                    "--ray-temp-dir",
                    str(Path(tmp) / "ray"),
                ]
            proc = ServiceProcess(f"cloud-{engine}", args, Path(tmp), env)
            try:
                deadline = time.monotonic() + READY_TIMEOUT_S
                url = proc.url(deadline)
                with httpx.Client(headers=headers) as client:
                    wait_ready(client, url, proc, deadline)
                lat, wall, identical = asyncio.run(
                    _drive(url, headers, bodies, expected, concurrency)
                )
            finally:
                proc.stop()
        rows.append(
            {
                "engine": engine,
                "replicas": replicas if engine == "ray" else 1,
                "samples_per_s": len(bodies) * records / wall,
                "requests_per_s": len(bodies) / wall,
                "p50_ms": float(np.percentile(lat, 50)),
                "p99_ms": float(np.percentile(lat, 99)),
                "identical": identical,
            }
        )
    result = {
        "model": str(model_dir),
        "requests": len(bodies),
        "records": records,
        "concurrency": concurrency,
        "cpus": os.cpu_count(),
        "rows": rows,
    }
    return result


def format_serve(result: dict[str, Any]) -> str:
    """A readable table of :func:`bench_serve` figures."""
    lines = [
        f"{result['model']}: POST /v1/cloud, {result['requests']} requests of "
        f"{result['records']} sample(s), {result['concurrency']} in flight, "
        f"{result['cpus']} CPU(s)",
        f"{'engine':<10}{'replicas':>9}{'samples/s':>11}{'p50 ms':>9}{'p99 ms':>9}  identical",
    ]
    for r in result["rows"]:
        lines.append(
            f"{r['engine']:<10}{r['replicas']:>9}{r['samples_per_s']:>11.0f}"
            f"{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}  {r['identical']}"
        )
    return "\n".join(lines)
