"""ddnn_tf.serve, ddnn_tf.device, ddnn_tf.deploy: the tiers as real services on loopback.

The services run as the user runs them (``python -m ddnn_tf.serve ...`` processes on free
127.0.0.1 ports); the model is the committed tflite_models/fmnist6_mlpcc and the data the
real Fashion-MNIST test split.
"""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import numpy as np
import pytest
from conftest import DEFAULT_MODEL, ROOT

from ddnn_tf.runtime import Hierarchy
from ddnn_tf.serve import create_cloud_app, model_id
from ddnn_tf.serve.deploy import deploy
from ddnn_tf.serve.fleet import ServiceProcess
from ddnn_tf.serve.wire import FEATURES_TYPE, CloudSpec, encode_features_records

MODEL = DEFAULT_MODEL
TOKEN = "test-token-123"
LIMIT = 1000


@pytest.fixture(scope="module")
def fmnist():
    from ddnn_tf.data import load_dataset

    return load_dataset("fmnist6")


@pytest.fixture(scope="module")
def hierarchy():
    return Hierarchy(MODEL)


@pytest.fixture(scope="module")
def offline(hierarchy, fmnist):
    """Device features of the first 64 test samples and the offline cloud probabilities."""
    test = fmnist.test.subset(slice(0, 64))
    full = hierarchy.run(test.x, all_exits=True, batch_size=64)
    features = {
        f"device_{d}": hierarchy.tiers[f"device_{d}"]({"image": x})["features"]
        for d, x in enumerate(test.x)
    }
    return features, full.probs["cloud"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def cloud_url(tmp_path_factory):
    """``serve cloud`` with a token and a 4 KiB body limit, on a free loopback port."""
    folder = tmp_path_factory.mktemp("cloud")
    args = [
        "-m",
        "ddnn_tf.serve",
        "cloud",
        str(MODEL),
        "--port",
        "0",
        "--token",
        TOKEN,
        "--max-body-bytes",
        "4096",
    ]
    proc = ServiceProcess("cloud", args, folder, _env())
    try:
        with httpx.Client() as client:
            url = proc.ready(client)
        yield url
    finally:
        proc.stop()
    assert proc.proc.returncode is not None


def _headers(**extra: str) -> dict[str, str]:
    return {
        "Content-Type": FEATURES_TYPE,
        "X-DDNN-Model": model_id(MODEL),
        "Authorization": f"Bearer {TOKEN}",
        **extra,
    }


def _body(features, rows, presence=None) -> bytes:
    from ddnn_tf.core.manifest import load_manifest

    spec = CloudSpec.from_manifest(load_manifest(MODEL, check_files=False))
    picked = {k: v[rows] for k, v in features.items()}
    n = len(picked["device_0"])
    present = np.ones((n, 6), bool) if presence is None else presence
    return encode_features_records(spec, present, picked)


# ------------------------------------------------------------------------------ wire
def test_cloud_spec_is_the_tier_graph_and_records_round_trip():
    from ddnn_tf.core.graph import device_tier
    from ddnn_tf.core.manifest import load_manifest
    from ddnn_tf.serve.wire import WireError, model_graph, parse_cloud_records

    manifest = load_manifest(MODEL, check_files=False)
    spec = CloudSpec.from_manifest(manifest)
    (cloud,) = model_graph(manifest).by_role("cloud")
    assert spec.tier == cloud.name
    assert spec.senders == tuple(device_tier(d) for d in range(6))
    assert [spec.inputs[s] for s in spec.senders] == [
        p.name for p in cloud.inputs if p.role == "features"
    ]
    # senders with padding bits; absent senders' rows are never packed (zeros there)
    spec = CloudSpec(("a", "b"), {"a": (5,), "b": (3,)}, {"a": 1, "b": 1}, {}, "p", "cloud")
    rng = np.random.default_rng(0)
    features = {"a": np.sign(rng.normal(size=(3, 5))), "b": np.sign(rng.normal(size=(3, 3)))}
    features["a"][2] = 0.0
    present = np.array([[1, 1], [1, 0], [0, 1]], bool)
    body = encode_features_records(spec, present, features)
    assert len(body) == 3 + 4  # a mask byte per record, one byte per present sender
    got_present, got = parse_cloud_records(spec, body)
    assert (got_present == present).all()
    assert np.array_equal(got["a"][:2], features["a"][:2]) and not got["a"][2].any()
    assert np.array_equal(got["b"][[0, 2]], features["b"][[0, 2]]) and not got["b"][1].any()
    bad = body[:-1] + bytes([body[-1] | 1])  # a padding bit in record 2's b
    with pytest.raises(WireError, match=r"^record 2, b: .*padding"):
        parse_cloud_records(spec, bad)


# ------------------------------------------------------------------------------ purity
def test_services_import_no_tensorflow():
    code = f"""
import sys
import ddnn_tf.serve, ddnn_tf.serve.gateway, ddnn_tf.serve.device, ddnn_tf.cli.serve
from ddnn_tf.serve import create_cloud_app, create_gateway_app
create_cloud_app({str(MODEL)!r})
create_gateway_app({str(MODEL)!r}, cloud="http://127.0.0.1:9")
heavy = {{'tensorflow', 'tf_keras', 'keras', 'larq', 'ray'}}
mods = {{m.split('.')[0] for m in sys.modules}}
assert not heavy & mods, sorted(heavy & mods)
print('ok')
"""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("ok")


# ------------------------------------------------------------------------------ cloud
def test_cloud_answers_equal_the_runtime_one_and_many_records(cloud_url, offline):
    features, probs = offline
    with httpx.Client(base_url=cloud_url) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json() == {"status": "ready"}
        info = client.get("/v1/model", headers=_headers()).json()
        assert info["model"] == model_id(MODEL) and info["split"] == ["local", "cloud"]
        assert set(info["tiers"]) >= {"cloud", "local_aggregator", "device_0"}
        r = client.post("/v1/cloud", content=_body(features, slice(0, 30)), headers=_headers())
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["model"] == model_id(MODEL) and out["exit"] == "cloud"
        got = np.array([x["probs"] for x in out["results"]])
        np.testing.assert_array_equal(got, probs[:30])  # float64 softmax, exactly
        assert [x["prediction"] for x in out["results"]] == list(np.argmax(probs[:30], 1))


def test_cloud_absent_senders_match_a_failed_device(cloud_url, offline, hierarchy, fmnist):
    features, _ = offline
    present = np.ones((8, 6), bool)
    present[:, 2] = False
    body = _body(features, slice(0, 8), present)
    assert len(body) == 8 * (1 + 5 * 18)  # absent senders send nothing
    test = fmnist.test.subset(slice(0, 8))
    want = hierarchy.run(test.x, all_exits=True, fail="2", batch_size=8).probs["cloud"]
    with httpx.Client(base_url=cloud_url) as client:
        r = client.post("/v1/cloud", content=body, headers=_headers())
    np.testing.assert_array_equal(np.array([x["probs"] for x in r.json()["results"]]), want)


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("wrong_model", 409, "model_mismatch"),
        ("no_model", 409, "model_mismatch"),
        ("no_token", 401, "unauthorized"),
        ("wrong_token", 401, "unauthorized"),
        ("non_ascii_token", 401, "unauthorized"),
        ("truncated", 400, "bad_body"),
        ("no_sender", 400, "bad_body"),
        ("empty", 400, "bad_body"),
        ("oversized", 413, "too_large"),
        ("content_type", 415, "unsupported_media_type"),
    ],
)
def test_cloud_bad_requests_get_json_errors_and_it_keeps_serving(
    cloud_url, offline, case, status, code
):
    features, probs = offline
    body, headers = _body(features, slice(0, 4)), _headers()
    if case == "wrong_model":
        headers["X-DDNN-Model"] = "0" * 64
    elif case == "no_model":
        del headers["X-DDNN-Model"]
    elif case == "no_token":
        del headers["Authorization"]
    elif case == "wrong_token":
        headers["Authorization"] = "Bearer nope"
    elif case == "non_ascii_token":
        headers["Authorization"] = "Bearer é".encode()
    elif case == "truncated":
        body = body[:-5]
    elif case == "no_sender":
        body = b"\x00" + body[1:]
    elif case == "empty":
        body = b""
    elif case == "oversized":
        body = _body(features, slice(0, 40))  # 40 x 109 bytes > 4096
    elif case == "content_type":
        headers["Content-Type"] = "application/json"
    with httpx.Client(base_url=cloud_url) as client:
        r = client.post("/v1/cloud", content=body, headers=headers)
        assert r.status_code == status, r.text
        assert r.headers["content-type"].startswith("application/json")
        error = r.json()["error"]
        assert error["code"] == code and error["message"]
        if case == "truncated":
            assert "byte offset" in error["message"]
        ok = client.post("/v1/cloud", content=_body(features, slice(0, 2)), headers=_headers())
        assert ok.status_code == 200
        np.testing.assert_array_equal(
            np.array([x["probs"] for x in ok.json()["results"]]), probs[:2]
        )


def test_a_bug_in_a_service_is_answered_internal_in_the_protocol_body(monkeypatch, capsys):
    """An unexpected exception is answered 500 ``internal`` with the protocol's error body
    (over MQTT too: tests/test_mqtt.py), its traceback on standard error."""
    import asyncio

    from ddnn_tf.serve import create_gateway_app

    app = create_gateway_app(MODEL, cloud="http://127.0.0.1:9")
    gw = app.state.gateway

    async def bug(*_):
        raise RuntimeError("a bug")

    monkeypatch.setattr(gw, "answer", bug)

    async def go():
        await gw.start()
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                headers = {"X-DDNN-Model": model_id(MODEL), "X-DDNN-Device": "0"}
                return await client.post("/v1/join", headers=headers)
        finally:
            await gw.stop()

    r = asyncio.run(go())
    assert r.status_code == 500
    assert r.json() == {"error": {"code": "internal", "message": "RuntimeError: a bug"}}
    assert "RuntimeError: a bug" in capsys.readouterr().err


def test_random_requests_get_the_protocol_s_answers_from_the_cloud_and_the_gateway(offline):
    """1,200 seeded random requests, in-process: odd header values (non-ASCII, BOMs,
    non-ASCII digits, huge numbers), wrong tokens, schemes and media types, bodies cut,
    flipped or random, every route and method. No answer is a 5xx but 503/504, and every
    other non-200 answer is the protocol's JSON error body."""
    import asyncio
    import json
    import random

    from ddnn_tf.core.comm import encode_summary
    from ddnn_tf.serve import create_gateway_app
    from ddnn_tf.serve.wire import SUMMARY_TYPE

    rng = random.Random(25)
    features, _ = offline
    odd = ["", "0", "-1", "3", "1.5", "1e3", "0x1", " 1", "\ufeff0", "\u0663", "\u00b2", "9" * 20]
    cloud_body = _body(features, slice(0, 3))
    summaries = encode_summary(np.full(6, 1 / 6, np.float32)) * 16
    routes = {
        "cloud": ["/v1/cloud", "/v1/model", "/healthz", "/readyz", "/v1/none"],
        "gateway": ["/v1/join", "/v1/summary", "/v1/features", "/v1/progress", "/v1/results",
                    "/v1/model", "/healthz"],
    }  # fmt: skip

    def body() -> bytes:
        base = rng.choice([cloud_body, summaries, rng.randbytes(rng.choice([1, 97, 5000]))])
        cut = base[: rng.randint(0, len(base))]
        k = rng.randrange(len(cut)) if cut and rng.random() < 0.5 else None
        return cut if k is None else cut[:k] + bytes([cut[k] ^ 0xFF]) + cut[k + 1 :]

    def request(service: str) -> tuple[str, str, dict, bytes]:
        path = rng.choice(routes[service])
        method = rng.choice(["POST", "POST", "GET", "PUT"])
        token = {"cloud": TOKEN, "gateway": "gw"}[service]
        given = rng.choice([f"Bearer {token}"] * 4 + ["Bearer x", "Basic x", "Bearer é", ""])
        headers = {
            "Authorization": given,
            "Content-Type": rng.choice([FEATURES_TYPE, SUMMARY_TYPE, "text/plain", ""]),
            "X-DDNN-Model": rng.choice([model_id(MODEL)] * 3 + ["\ufeff" + model_id(MODEL), "m"]),
            "X-DDNN-Device": rng.choice([*odd, "0", "1", "5", "6"]),
            "X-DDNN-Start": rng.choice([*odd, "0", "0", "16"]),
        }
        headers = {k: v.encode() for k, v in headers.items() if rng.random() < 0.9}
        return method, path, headers, body() if method != "GET" else b""

    cloud = create_cloud_app(MODEL, token=TOKEN)
    gateway = create_gateway_app(
        MODEL, cloud="http://cloud", token="gw", cloud_token=TOKEN, threshold=0.1,
        gather_s=0.05, join_s=0.05, deadline_s=0.5,
    )  # fmt: skip
    gw, seen, bad = gateway.state.gateway, set(), []

    async def go():
        async with cloud.router.lifespan_context(cloud):
            await gw.start(httpx.ASGITransport(app=cloud))
            apps = {"cloud": cloud, "gateway": gateway}
            for _ in range(1200):
                service = rng.choice(list(apps))
                method, path, headers, content = request(service)
                transport = httpx.ASGITransport(app=apps[service], raise_app_exceptions=False)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                    r = await client.request(method, path, headers=headers, content=content)
                seen.add((service, r.status_code))
                if r.status_code == 200:
                    continue
                try:
                    error = json.loads(r.text)["error"]
                    ok = r.status_code < 500 or r.status_code in (503, 504)
                    ok = ok and isinstance(error["code"], str) and bool(error["message"])
                except (ValueError, KeyError, TypeError):
                    ok = False
                if not ok:
                    bad.append((service, method, path, r.status_code, r.text[:200]))
            await gw.stop()

    asyncio.run(go())
    assert not bad, bad[:5]
    assert {("cloud", 200), ("gateway", 200), ("cloud", 401), ("gateway", 400)} <= seen


def test_cloud_refuses_to_bind_beyond_loopback_without_token(monkeypatch):
    from ddnn_tf.cli.serve import cloud

    monkeypatch.delenv("DDNN_TF_TOKEN", raising=False)
    with pytest.raises(ValueError, match="needs a shared token"):
        cloud(str(MODEL), host="0.0.0.0")


def test_cloud_app_batches_concurrent_requests(offline):
    """Concurrent single-record requests share interpreter calls and get their own answers."""
    import asyncio

    features, probs = offline
    app = create_cloud_app(MODEL)
    bodies = [_body(features, slice(i, i + 1)) for i in range(64)]

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            headers = {"Content-Type": FEATURES_TYPE, "X-DDNN-Model": model_id(MODEL)}
            return await asyncio.gather(
                *[client.post("/v1/cloud", content=b, headers=headers) for b in bodies]
            )

    responses = asyncio.run(go())
    failed = [r.text for r in responses if r.status_code != 200]
    assert not failed, failed[:2]
    got = np.array([r.json()["results"][0]["probs"] for r in responses])
    np.testing.assert_array_equal(got, probs)
    assert app.state.batcher.calls < 64


# ------------------------------------------------------------------------------ deploy
def test_deploy_matches_the_offline_run_in_both_protocols(fmnist, hierarchy):
    """The paper protocol and the eager one (summaries and features in one message) on the
    same samples: the same answers, sample by sample, as the offline run's; each sends its
    own protocol's payload bytes."""
    test = fmnist.test.subset(slice(0, LIMIT))
    run = hierarchy.run(test.x, batch_size=256)  # `run`'s defaults: all devices, manifest T
    answers = {}
    for mode in ("paper", "eager"):
        result = deploy(MODEL, fmnist, limit=LIMIT, timeout_s=300, mode=mode, records=True)
        assert result["n_samples"] == LIMIT and result["mode"] == mode
        assert result["lost"] == 0 and result["degraded"] == 0
        assert result["mismatches_vs_offline"] == 0
        assert result["exit_fraction"] == run.exit_fraction()
        assert result["accuracy"]["overall"] == run.accuracy(test.y)
        assert result["wire_bytes_per_device"] > result["bytes_per_device"]  # + HTTP framing
        assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p99"]
        assert set(result["latency_ms"]) == {"p50", "p99", "local", "cloud"}
        assert result["samples_per_s"] > 0
        answers[mode] = result["samples"]
        bytes_run = hierarchy.run(test.x, batch_size=256, protocol=mode)
        assert result["bytes_per_device"] == bytes_run.bytes_per_device()
    assert answers["eager"] == answers["paper"]
    np.testing.assert_array_equal(answers["eager"]["prediction"], run.prediction)
    summary, features = 5, 18  # int4 summaries of 10 classes, 5 x 7 x 4 bits of features
    assert result["bytes_per_device"] == summary + features  # eager: every sample's both


@pytest.fixture(scope="module")
def edge_model(edge_run, tiny_dataset, tmp_path_factory):
    """A 6-device DDNN with two edges and an edge exit, trained briefly, converted."""
    from ddnn_tf.keras.convert import convert

    out = tmp_path_factory.mktemp("serve_edge") / "model"
    return convert(edge_run, "local,edge,cloud", out=out, target="portable", dataset=tiny_dataset)


def test_deploy_with_edges_a_killed_device_and_a_downed_cloud(edge_model, tiny_dataset):
    """The gateway hosts the edges (edge exit, edge features to the cloud). A device is
    killed, then the cloud goes down: every sample is still answered once, as the offline
    run with the observed presence answers it: before the kill exactly as `run`, between
    the kill and the outage exactly as `run --fail D`."""
    n = len(tiny_dataset.test.y)
    h = Hierarchy(edge_model)
    result = deploy(
        edge_model,
        tiny_dataset,
        batch=8,
        kill_device=1,
        kill_at=16,
        cloud_down_at=48,
        # deploy holds the devices before the round of each fault's count until the fault
        # is applied, so the kill and the outage land at 16 and 48 answers however far
        # the answer reader is behind
        cloud_retry_s=2,  # the first round without the cloud waits that long
        timeout_s=300,
        records=True,
    )
    assert result["lost"] == 0 and result["mismatches_vs_offline"] == 0
    assert result["degraded"] > 0, (result["kill"], result["cloud_down_after"])
    assert result["failed_devices"] == [1]
    # the devices waited at each fault: it landed at its count (a round boundary), however
    # far the answer reader was behind
    assert result["kill"]["answered_before_kill"] == 16 and result["cloud_down_after"] == 48
    s = result["samples"]
    exits, degraded = np.array(s["exit"]), np.array(s["degraded"])
    presence = np.array(s["local_presence"])
    first = result["kill"]["first_sample_without_device"]
    assert first is not None and not presence[first:, 1].any()
    assert presence[first:, [0, 2, 3, 4, 5]].all()
    assert (exits[degraded] == 1).all()  # answered by the edge exit, below the cloud
    window = np.arange(first, np.flatnonzero(degraded)[0])
    assert len(window) > 0
    after = h.run([x[window] for x in tiny_dataset.test.x], fail="1", batch_size=64)
    np.testing.assert_array_equal(np.array(s["prediction"])[window], after.prediction)
    np.testing.assert_array_equal(exits[window], after.exit_index)
    # Before the kill, every device was there: exactly `run`, edge exits included.
    before = h.run([x[:first] for x in tiny_dataset.test.x], batch_size=64)
    np.testing.assert_array_equal(np.array(s["prediction"])[:first], before.prediction)
    np.testing.assert_array_equal(exits[:first], before.exit_index)
    assert ((exits == 1) & ~degraded).any()  # the edge exit answered samples itself
    assert n == result["n_samples"]


@pytest.mark.slow
def test_deploy_on_ray_serve_matches_the_offline_run(fmnist):
    """The cloud tier as a Ray Serve deployment (local Ray with token auth): same answers."""
    result = deploy(MODEL, fmnist, limit=200, engine="ray", timeout_s=300)
    assert result["engine"] == "ray"
    assert result["lost"] == 0 and result["degraded"] == 0
    assert result["mismatches_vs_offline"] == 0
    assert result["exit_fraction"]["cloud"] > 0  # the Ray cloud answered samples
    assert _ray_processes_of_deploys() == []  # ray.shutdown stopped the local instance


def _ray_processes_of_deploys() -> list[str]:
    """Live processes of a Ray instance started by a deploy of this checkout (its files
    live in deploy's temporary folder, and its programs in this checkout's environment,
    which their command lines name; another checkout's deploy may run meanwhile)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "ddnn-deploy-" in cmd and "ray" in cmd and f"{ROOT}{os.sep}" in cmd:
            found.append(f"{entry}: {cmd[:120]}")
    return found


# ------------------------------------------------------------------------------ gateway
def test_gateway_round_protocol_and_errors(cloud_url, fmnist, hierarchy):
    """One round of 16 samples from six in-process clients through the gateway app: the
    decision mask is the offline local exit rule, the answers are the offline run's, and
    bad requests get JSON errors without disturbing the round."""
    import asyncio

    from ddnn_tf.core.comm import encode_summary, pack_features
    from ddnn_tf.serve import create_gateway_app
    from ddnn_tf.serve.wire import SUMMARY_TYPE, decode_mask

    n = 16
    test = fmnist.test.subset(slice(0, n))
    want = hierarchy.run(test.x, thresholds=0.1, batch_size=n)
    assert 0 < (want.exit_index == 1).sum() < n  # both exits in the round
    outs = [hierarchy.tiers[f"device_{d}"]({"image": x}) for d, x in enumerate(test.x)]
    app = create_gateway_app(MODEL, cloud=cloud_url, token="gw", cloud_token=TOKEN, threshold=0.1)
    gw = app.state.gateway
    mid = model_id(MODEL)

    def headers(d: int, content_type: str | None = None, **extra) -> dict:
        h = {
            "X-DDNN-Model": mid,
            "X-DDNN-Device": str(d),
            "X-DDNN-Start": "0",
            "Authorization": "Bearer gw",
        }
        if content_type:
            h["Content-Type"] = content_type
        return {**h, **extra}

    async def go():
        await gw.start()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
            joins = await asyncio.gather(
                *[c.post("/v1/join", headers=headers(d)) for d in range(6)]
            )
            assert all(r.status_code == 200 for r in joins)
            summaries = [
                b"".join(encode_summary(v, gw.encoding) for v in o["summary"]) for o in outs
            ]
            bad = [
                (headers(0, SUMMARY_TYPE, **{"X-DDNN-Model": "f" * 64}), summaries[0], 409),
                ({**headers(0, SUMMARY_TYPE), "Authorization": "Bearer no"}, summaries[0], 401),
                (headers(0, "text/plain"), summaries[0], 415),
                (headers(0, SUMMARY_TYPE), summaries[0][:-3], 400),
                (headers(0, SUMMARY_TYPE, **{"X-DDNN-Device": "9"}), summaries[0], 400),
            ]
            for h, body, status in bad:
                r = await c.post("/v1/summary", content=body, headers=h)
                assert r.status_code == status and r.json()["error"]["code"], r.text
            decisions = await asyncio.gather(
                *[
                    c.post("/v1/summary", content=summaries[d], headers=headers(d, SUMMARY_TYPE))
                    for d in range(6)
                ]
            )
            masks = [decode_mask(r.content, n) for r in decisions]
            for m in masks:
                np.testing.assert_array_equal(m, want.exit_index == 1)
            send = masks[0]
            feats = [b"".join(pack_features(f) for f in o["features"][send]) for o in outs]
            r = await c.post(
                "/v1/features", content=feats[0][:-1], headers=headers(0, FEATURES_TYPE)
            )
            assert r.status_code == 400 and "byte offset" in r.json()["error"]["message"]
            done = await asyncio.gather(
                *[
                    c.post("/v1/features", content=feats[d], headers=headers(d, FEATURES_TYPE))
                    for d in range(6)
                ]
            )
            assert all(r.status_code == 200 for r in done)
            return (await c.get("/v1/results", headers=headers(0))).json()["results"]

    rows = asyncio.run(go())
    assert [r[0] for r in rows] == list(range(n))
    np.testing.assert_array_equal([r[1] for r in rows], want.exit_index)
    np.testing.assert_array_equal([r[2] for r in rows], want.prediction)
    assert not any(r[3] for r in rows)  # nothing degraded: the cloud answered
    sent = np.array([r[7] for r in rows])
    np.testing.assert_array_equal(sent, want.device_bytes())  # the paper's bytes, per sample


def test_gateway_eager_round_and_errors(cloud_url, fmnist, hierarchy):
    """The eager protocol in-process: each device's one message carries its summaries and
    every sample's packed features; the gateway answers as the paper protocol does,
    forwarding the flagged samples' features, and refuses a features message and a body
    of the wrong length or with non-zero padding bits."""
    import asyncio

    from ddnn_tf.core.comm import encode_summary, pack_features
    from ddnn_tf.serve import create_gateway_app
    from ddnn_tf.serve.wire import SUMMARY_TYPE, decode_mask

    n = 16
    test = fmnist.test.subset(slice(0, n))
    want = hierarchy.run(test.x, thresholds=0.1, batch_size=n)
    eager = hierarchy.run(test.x, thresholds=0.1, batch_size=n, protocol="eager")
    assert 0 < (want.exit_index == 1).sum() < n  # both exits in the round
    outs = [hierarchy.tiers[f"device_{d}"]({"image": x}) for d, x in enumerate(test.x)]
    app = create_gateway_app(
        MODEL, cloud=cloud_url, token="gw", cloud_token=TOKEN, threshold=0.1, mode="eager"
    )
    gw = app.state.gateway
    mid = model_id(MODEL)

    def headers(d: int, content_type: str | None = None) -> dict:
        h = {"X-DDNN-Model": mid, "X-DDNN-Device": str(d), "X-DDNN-Start": "0"}
        h["Authorization"] = "Bearer gw"
        return {**h, "Content-Type": content_type} if content_type else h

    async def go():
        await gw.start()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
            joins = await asyncio.gather(
                *[c.post("/v1/join", headers=headers(d)) for d in range(6)]
            )
            assert {r.json()["mode"] for r in joins} == {"eager"}
            bodies = [
                b"".join(encode_summary(v, gw.encoding) for v in o["summary"])
                + b"".join(pack_features(f) for f in o["features"])
                for o in outs
            ]
            r = await c.post(
                "/v1/summary", content=bodies[0][:-1], headers=headers(0, SUMMARY_TYPE)
            )
            assert r.status_code == 400 and "packed features" in r.json()["error"]["message"]
            padded = bodies[0][:-1] + b"\x01"  # a padding bit set in the last map
            r = await c.post("/v1/summary", content=padded, headers=headers(0, SUMMARY_TYPE))
            assert r.status_code == 400 and r.json()["error"]["code"] == "bad_body"
            r = await c.post("/v1/features", content=bodies[0], headers=headers(0, FEATURES_TYPE))
            assert r.status_code == 409 and r.json()["error"]["code"] == "not_expected"
            answered = await asyncio.gather(
                *[
                    c.post("/v1/summary", content=bodies[d], headers=headers(d, SUMMARY_TYPE))
                    for d in range(6)
                ]
            )
            for r in answered:  # held until the round was answered
                np.testing.assert_array_equal(decode_mask(r.content, n), want.exit_index == 1)
            return (await c.get("/v1/results", headers=headers(0))).json()["results"]

    rows = asyncio.run(go())
    assert [r[0] for r in rows] == list(range(n))
    np.testing.assert_array_equal([r[1] for r in rows], want.exit_index)
    np.testing.assert_array_equal([r[2] for r in rows], want.prediction)
    assert not any(r[3] for r in rows)
    np.testing.assert_array_equal([r[7] for r in rows], eager.device_bytes())


def test_cloud_app_cors_for_a_page_served_elsewhere():
    import asyncio

    app = create_cloud_app(MODEL, token="t", cors_origins=["http://127.0.0.1:9000"])

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            preflight = await client.options(
                "/v1/cloud",
                headers={
                    "Origin": "http://127.0.0.1:9000",
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization,x-ddnn-model,content-type",
                },
            )
            other = await client.get("/healthz", headers={"Origin": "http://evil.example"})
            return preflight, other

    preflight, other = asyncio.run(go())
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://127.0.0.1:9000"
    assert "access-control-allow-origin" not in other.headers


def test_bench_serve_measures_a_bare_baseline_in_the_same_run():
    """``ddnn bench serve``: the bare FastAPI endpoint first, then the cloud with the same
    client; the cloud's answers checked against the offline runtime."""
    from ddnn_tf.serve.bench import bench_serve, format_serve

    result = bench_serve(str(MODEL), requests=60, concurrency=4, engines="uvicorn")
    bare, cloud = result["rows"]
    assert (bare["engine"], bare["identical"], bare["of_bare"]) == ("bare", None, 1.0)
    assert cloud["engine"] == "uvicorn" and cloud["identical"] is True
    assert cloud["of_bare"] == pytest.approx(cloud["requests_per_s"] / bare["requests_per_s"])
    assert 0 < bare["p50_ms"] <= bare["p99_ms"] and 0 < cloud["p50_ms"] <= cloud["p99_ms"]
    assert format_serve(result).splitlines()[2].startswith("bare")
