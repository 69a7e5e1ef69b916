"""ddnn_tf.serve, ddnn_tf.device, ddnn_tf.deploy: the tiers as real services on loopback.

The services run as the user runs them (``python -m ddnn_tf.serve ...`` processes on free
127.0.0.1 ports); the model is the committed tflite_models/fmnist6_mpcc and the data the
real Fashion-MNIST test split.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
from conftest import ROOT

from ddnn_tf.deploy import deploy
from ddnn_tf.runtime import Hierarchy
from ddnn_tf.serve import create_cloud_app, model_id
from ddnn_tf.serve.process import READY_TIMEOUT_S, ServiceProcess, wait_ready
from ddnn_tf.serve.wire import FEATURES_TYPE, CloudSpec, encode_features_records

MODEL = ROOT / "tflite_models" / "fmnist6_mpcc"
TOKEN = "test-token-123"
LIMIT = 1000
pytestmark = pytest.mark.skipif(
    not (MODEL / "manifest.json").is_file(), reason="the committed model is missing"
)


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
        deadline = time.monotonic() + READY_TIMEOUT_S
        url = proc.url(deadline)
        with httpx.Client() as client:
            wait_ready(client, url, proc, deadline)
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
    from ddnn_tf.manifest import load_manifest

    spec = CloudSpec.from_manifest(load_manifest(MODEL, check_files=False))
    picked = {k: v[rows] for k, v in features.items()}
    n = len(picked["device_0"])
    present = np.ones((n, 6), bool) if presence is None else presence
    return encode_features_records(spec, present, picked)


# ------------------------------------------------------------------------------ purity
def test_services_import_no_tensorflow():
    code = f"""
import sys
import ddnn_tf.serve, ddnn_tf.serve.gateway, ddnn_tf.device, ddnn_tf.serve.__main__
from ddnn_tf.serve import create_cloud_app, create_gateway_app
create_cloud_app({str(MODEL)!r})
create_gateway_app({str(MODEL)!r}, "http://127.0.0.1:9")
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


def test_cloud_refuses_to_bind_beyond_loopback_without_token(monkeypatch):
    from ddnn_tf.serve.__main__ import cloud

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
    got = np.array([r.json()["results"][0]["probs"] for r in responses])
    np.testing.assert_array_equal(got, probs)
    assert app.state.batcher.calls < 64


# ------------------------------------------------------------------------------ deploy
def test_deploy_matches_the_offline_run(fmnist, hierarchy):
    result = deploy(MODEL, fmnist, limit=LIMIT, timeout_s=300)
    assert result["n_samples"] == LIMIT
    assert result["lost"] == 0 and result["degraded"] == 0
    assert result["mismatches_vs_offline"] == 0
    test = fmnist.test.subset(slice(0, LIMIT))
    run = hierarchy.run(test.x, batch_size=256)  # `run`'s defaults: all devices, manifest T
    assert result["bytes_per_device"] == run.bytes_per_device()
    assert result["exit_fraction"] == run.exit_fraction()
    assert result["accuracy"]["overall"] == run.accuracy(test.y)
    assert result["wire_bytes_per_device"] > result["bytes_per_device"]  # + HTTP framing
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p99"]
    assert result["samples_per_s"] > 0


def test_deploy_with_a_killed_device_and_a_downed_cloud(fmnist, hierarchy):
    result = deploy(
        MODEL,
        fmnist,
        limit=LIMIT,
        kill_device=2,
        kill_at=200,
        cloud_down_at=600,
        timeout_s=300,
        records=True,
    )
    assert result["lost"] == 0 and result["mismatches_vs_offline"] == 0
    assert result["degraded"] > 0 and result["failed_devices"] == [2]
    s = result["samples"]
    exits, degraded = np.array(s["exit"]), np.array(s["degraded"])
    presence = np.array(s["local_presence"])
    first = result["kill"]["first_sample_without_device"]
    assert (
        first is not None
        and not presence[first:, 2].any()
        and presence[first:, [0, 1, 3, 4, 5]].all()
    )
    assert (exits[degraded] == 0).all()  # answered by the local exit
    # Between the kill and the cloud going down: exactly `run --fail 2` on those samples.
    window = np.flatnonzero((np.arange(LIMIT) >= first) & ~degraded)
    window = window[window < np.flatnonzero(degraded)[0]]
    assert len(window) > 0
    test = fmnist.test.subset(slice(0, LIMIT))
    run = hierarchy.run([x[window] for x in test.x], fail="2", batch_size=256)
    np.testing.assert_array_equal(np.array(s["prediction"])[window], run.prediction)
    np.testing.assert_array_equal(exits[window], run.exit_index)
