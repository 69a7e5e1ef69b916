"""``ddnn bench serve``: the cloud service on uvicorn vs Ray Serve, each in its own process
(``ddnn serve cloud``), against a bare FastAPI endpoint (:mod:`ddnn_tf.serve.bare`) measured
in the same run; the Serving page says how and shows the figures.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ddnn_tf.core.options import AT_LEAST_1, Options, choice_list, option
from ddnn_tf.core.vocab import ENGINES
from ddnn_tf.serve.settings import settings_of

__all__ = ["ServeBench", "bench_serve", "format_serve"]


def _bodies(model_dir: str, data: str, path, n_requests: int, records: int):
    import numpy as np

    from ddnn_tf.runtime import Hierarchy
    from ddnn_tf.runtime.dataset import load_subset
    from ddnn_tf.serve.wire import CloudSpec, encode_features_records

    h = Hierarchy(model_dir)
    test = load_subset(h, data, path, "test", n_requests * records)
    n = len(test)
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
    """Send every body (after a warm-up), ``concurrency`` in flight; per-request
    milliseconds, the wall time and whether every answer equals ``expected`` (None: not
    checked), checked once the clock stopped: the client's work while timed is the same
    for every engine. aiohttp's client takes about 0.1 ms of CPU per request here, httpx's
    2 ms."""
    import asyncio
    import json

    import aiohttp
    import numpy as np

    latencies, answers = [0.0] * len(bodies), [None] * len(bodies)
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        url, headers=headers, connector=connector, timeout=timeout
    ) as c:
        for body in bodies[:50]:  # warm-up (connections, first batches)
            async with c.post("/v1/cloud", data=body) as r:
                r.raise_for_status()
                await r.read()
        queue = list(range(len(bodies)))[::-1]

        async def worker():
            while queue:
                i = queue.pop()
                t = time.perf_counter()
                async with c.post("/v1/cloud", data=bodies[i]) as r:
                    answer = await r.read()
                latencies[i] = time.perf_counter() - t
                answers[i] = answer if r.status == 200 else None

        start = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        wall = time.perf_counter() - start
    identical = expected is None or all(
        a is not None and np.array_equal([x["probs"] for x in json.loads(a)["results"]], e)
        for a, e in zip(answers, expected, strict=True)
    )
    return np.array(latencies) * 1e3, wall, identical


@dataclass(frozen=True, kw_only=True)
class ServeBench(Options):
    """What ``ddnn bench serve`` measures."""

    model: str = option(help="a converted model directory (tflite_models/NAME)", positional=True)
    data: str = option("fmnist6", "the dataset whose test split gives the device features")
    path: str | None = option(None, "data file or directory for file-based loaders")
    requests: int = option(2000, "requests per engine (after 50 warm-up requests)", AT_LEAST_1)
    records: int = option(1, "samples per request (1 = one phone's sample)", AT_LEAST_1)
    concurrency: int = option(32, "requests in flight", AT_LEAST_1)
    engines: list[str] = option(
        ENGINES, "the engines measured after the bare baseline: uvicorn, ray",
        parse=choice_list(ENGINES, "uvicorn and/or ray"),
    )  # fmt: skip
    replicas: int = option(1, "Ray Serve replicas", AT_LEAST_1)


def bench_serve(bench: ServeBench | str, **options) -> dict[str, Any]:
    """Cloud service throughput and latency: the bare baseline, uvicorn and Ray Serve.

    Args:
        bench: what to measure (:class:`ServeBench`), or the model directory (then
            ``options`` are its other fields).

    Returns:
        ``{"model", "requests", "records", "concurrency", "cpus", "rows": [{engine,
        replicas, samples_per_s, requests_per_s, of_bare, p50_ms, p99_ms, identical}]}``.

    Raises:
        FileNotFoundError, FormatError, ConfigError: a bad model, dataset or option.
        DeploymentError: a service that does not start.
    """
    import asyncio
    import secrets

    import httpx
    import numpy as np

    from ddnn_tf.serve.fleet import ServiceProcess, child_env
    from ddnn_tf.serve.settings import TOKEN_ENV, CloudSettings
    from ddnn_tf.serve.wire import FEATURES_TYPE, model_id

    b = settings_of(ServeBench, bench, options)
    bodies, expected = _bodies(b.model, b.data, b.path, b.requests, b.records)
    token = secrets.token_urlsafe(24)
    headers = {
        "Content-Type": FEATURES_TYPE,
        "X-DDNN-Model": model_id(b.model),
        "Authorization": f"Bearer {token}",
    }
    rows = []
    for engine in ["bare", *b.engines]:
        with tempfile.TemporaryDirectory(prefix="ddnn-bench-") as tmp, httpx.Client() as client:
            if engine == "bare":
                server = ["-m", "ddnn_tf.serve.bare"]
            else:
                ray = str(Path(tmp) / "ray") if engine == "ray" else None
                server = CloudSettings(
                    model=b.model, port=0, engine=engine, replicas=b.replicas, ray_temp_dir=ray
                )
            proc = ServiceProcess(
                f"cloud-{engine}", server, Path(tmp), child_env(**{TOKEN_ENV: token})
            )
            try:
                url = proc.ready(client)
                want = None if engine == "bare" else expected
                lat, wall, identical = asyncio.run(
                    _drive(url, headers, bodies, want, b.concurrency)
                )
            finally:
                proc.stop()
        rows.append(
            {
                "engine": engine,
                "replicas": b.replicas if engine == "ray" else 1,
                "samples_per_s": len(bodies) * b.records / wall,
                "requests_per_s": len(bodies) / wall,
                "of_bare": len(bodies) / wall / rows[0]["requests_per_s"] if rows else 1.0,
                "p50_ms": float(np.percentile(lat, 50)),
                "p99_ms": float(np.percentile(lat, 99)),
                "identical": None if engine == "bare" else identical,
            }
        )
    return {
        "model": b.model,
        "requests": len(bodies),
        "records": b.records,
        "concurrency": b.concurrency,
        "cpus": os.cpu_count(),
        "rows": rows,
    }


def format_serve(result: dict[str, Any]) -> str:
    """A readable table of :func:`bench_serve` figures."""
    lines = [
        f"{result['model']}: POST /v1/cloud, {result['requests']} requests of "
        f"{result['records']} sample(s), {result['concurrency']} in flight, "
        f"{result['cpus']} CPU(s)",
        f"{'engine':<10}{'replicas':>9}{'samples/s':>11}{'of bare':>9}{'p50 ms':>9}"
        f"{'p99 ms':>9}  identical",
    ]
    for r in result["rows"]:
        same = "-" if r["identical"] is None else r["identical"]
        lines.append(
            f"{r['engine']:<10}{r['replicas']:>9}{r['samples_per_s']:>11.0f}"
            f"{r['of_bare']:>9.0%}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}  {same}"
        )
    return "\n".join(lines)
