"""The phone app in a real browser: Debian's chromium (Playwright, Pixel 7 profile) against
the real ``python -m ddnn_tf.serve demo`` server on loopback.

* fmnist6 test samples through ``window.ddnn.classifyViews`` give the Python
  orchestrator's prediction, exit and uplink bytes, sample by sample; the codecs match
  ``ddnn_tf.core.comm`` byte for byte;
* with the server stopped, a local exit still answers, a cloud sample comes back degraded
  within its deadline, and the app reopens from its service worker;
* a photo through the file input shows the six views and gets the orchestrator's answer.

Without chromium or LiteRT.js these tests fail with the command that installs them.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import DEFAULT_MODEL, ROOT

from ddnn_tf.core.comm import encode_summary
from ddnn_tf.core.exits import normalized_entropy
from ddnn_tf.data.fmnist6 import fmnist6_views, load_fmnist6_arrays
from ddnn_tf.runtime import Hierarchy

MODEL = DEFAULT_MODEL
CHROMIUM = os.environ.get("DDNN_TF_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
N_SAMPLES = 240
CLOUD_TIMEOUT_MS = 3000


def _start_demo(*extra: str) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ddnn_tf.serve",
            "demo",
            str(MODEL),
            "--port",
            "0",
            "--noqr",
            *extra,
        ],  # fmt: skip
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    line = proc.stdout.readline()
    if not line:
        proc.wait(10)
        pytest.fail(f"serve demo did not start: {proc.stderr.read()}")
    return proc, json.loads(line)["url"]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    for stream in (proc.stdout, proc.stderr):
        stream.close()


@pytest.fixture(scope="module")
def chromium():
    if shutil.which(CHROMIUM) is None:
        pytest.fail(
            f"chromium not found at {CHROMIUM}: install Debian's browser with "
            "`apt-get install -y chromium` (make test does this as root), or set "
            "DDNN_TF_CHROMIUM to a chromium binary."
        )
    if not (ROOT / "android_demo" / "node_modules" / "@litertjs" / "core").is_dir():
        pytest.fail("LiteRT.js is not installed: run `npm ci --prefix android_demo`.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield p, browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def page(chromium):
    """One Pixel 7 page on one demo server, shared by the tests that keep the server up."""
    proc, url = _start_demo()
    try:
        context, page = _open(chromium, url, REQUESTS)
        page.evaluate("window.ddnn.offline")  # the service worker's caching is done too
        yield page
        context.close()
    finally:
        _stop(proc)


REQUESTS: list[str] = []  # every URL the shared page requested


def _open(chromium, url: str, requests: list[str] | None = None):
    """A Pixel 7 page on the app, with its model loaded."""
    p, browser = chromium
    context = browser.new_context(**p.devices["Pixel 7"])
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    if requests is not None:
        context.on("request", lambda request: requests.append(request.url))
    page.goto(f"{url}{'&' if '?' in url else '?'}cloud_timeout_ms={CLOUD_TIMEOUT_MS}")
    page.wait_for_function("window.ddnn && window.ddnn.load", timeout=30_000)
    assert not errors, errors
    return context, page


@pytest.fixture(scope="module")
def test_images():
    arrays = load_fmnist6_arrays()
    return arrays.x_test[:N_SAMPLES], arrays.y_test[:N_SAMPLES]


def _raw_views(images: np.ndarray) -> list[list[str]]:
    """Per sample, six base64 uint8 views exactly as fmnist6 cuts them (before 1/255)."""
    padded = np.zeros((len(images), 30, 28), np.uint8)
    padded[:, 1:29] = images
    out = []
    for img in padded:
        views = [
            img[r * 10 : (r + 1) * 10, c * 14 : (c + 1) * 14] for r in range(3) for c in (0, 1)
        ]
        out.append([base64.b64encode(np.ascontiguousarray(v).tobytes()).decode() for v in views])
    return out


_CLASSIFY_ALL = """async (samples) => {
  const decode = (b) => Uint8Array.from(atob(b), (c) => c.charCodeAt(0));
  const inputs = samples.map((views) => views.map(decode));
  const out = [];
  const start = performance.now();
  for (const views of inputs) out.push(await window.ddnn.classifyViews(views));
  return { results: out, seconds: (performance.now() - start) / 1000 };
}"""


def test_classify_views_matches_the_orchestrator(page, test_images):
    images, _ = test_images
    answer = page.evaluate(_CLASSIFY_ALL, _raw_views(images))
    results = answer["results"]
    hierarchy = Hierarchy(MODEL)
    expected = hierarchy.run(fmnist6_views(images), batch_size=64)
    up = expected.link_bytes["device_to_upper"].sum(axis=1)
    summaries = expected.link_bytes["device_to_local"].sum(axis=1)
    local_eta = normalized_entropy(expected.probs["local"])
    mismatches = []
    for i, got in enumerate(results):
        want = (expected.exit_name(i), int(expected.prediction[i]), int(up[i]))
        if (got["exit"], got["prediction"], got["bytes_up"]) != want or got["degraded"]:
            mismatches.append((i, got["exit"], got["prediction"], got["bytes_up"], want))
        assert got["bytes_local"] == summaries[i]  # encoded summaries, on the phone
        # float64 like numpy; Math.exp/log may differ from numpy's by an ulp
        assert got["entropy"] == pytest.approx(local_eta[i], rel=0, abs=1e-14)
        assert np.allclose(got["probs"], expected.probs[got["exit"]][i], rtol=0, atol=1e-14)
    assert not mismatches, f"{len(mismatches)} samples differ, e.g. {mismatches[:5]}"
    exits = [r["exit"] for r in results]
    assert exits.count("local") >= 10 and exits.count("cloud") >= 10, exits
    assert {r["bytes_up"] for r in results if r["exit"] == "local"} == {0}
    assert len(results) == N_SAMPLES and answer["seconds"] > 0


@pytest.mark.parametrize("mode", ["eager", "paper"])
def test_the_page_as_a_gateways_devices(chromium, test_images, mode):
    """``ddnn serve demo --mode eager`` (``paper``): the page plays the six end devices of
    the demo's gateway. In the eager protocol each sends a sample's summary and features in
    one message and the gateway forwards the features to the cloud for the samples that do
    not exit locally; in the paper protocol the devices send their features when the
    decision asks for them. The answers are the orchestrator's either way; each device sent
    its protocol's bytes."""
    import httpx

    images, _ = test_images
    n = 16
    images = images[:n]
    expected = Hierarchy(MODEL).run(fmnist6_views(images), batch_size=64)
    sent = Hierarchy(MODEL).run(fmnist6_views(images), batch_size=64, protocol=mode)
    proc, url = _start_demo("--mode", mode)
    try:
        assert url.endswith(f"/?mode={mode}")
        context, page = _open(chromium, url)
        assert page.evaluate("window.ddnn.model.mode") == mode
        results = page.evaluate(_CLASSIFY_ALL, _raw_views(images))["results"]
        context.close()
        base = url.split("?")[0]
        rows = httpx.get(f"{base}gateway/v1/results", timeout=10).json()["results"]
    finally:
        _stop(proc)
    got = [(r["exit"], r["prediction"], r["degraded"]) for r in results]
    want = [(expected.exit_name(i), int(expected.prediction[i]), False) for i in range(n)]
    assert got == want
    assert {expected.exit_name(i) for i in range(n)} == {"local", "cloud"}
    up = sent.link_bytes["device_to_upper"].sum(axis=1)
    if mode == "eager":  # the features went up with every summary
        up = np.full(n, 6 * 18)
    assert [r["bytes_up"] for r in results] == up.tolist()
    assert [r[0] for r in rows] == list(range(n))  # the gateway's samples, in order
    np.testing.assert_array_equal([r[7] for r in rows], sent.device_bytes())


def test_nothing_is_loaded_from_elsewhere(page):
    origin = page.evaluate("location.origin")
    assert any(u.endswith(".wasm") for u in REQUESTS) and any(
        u.endswith(".tflite") for u in REQUESTS
    )
    assert [u for u in REQUESTS if not u.startswith(origin + "/")] == []


_CODECS = """async (vectors) => {
  const wire = await import('./js/wire.js');
  const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  const out = {};
  for (const name of ['float32', 'float16', 'int8', 'int4']) {
    const codec = wire.summaryCodec(name);
    out[name] = vectors.filter((v) => name !== 'int4' || v.every(Number.isInteger)).map((v) => {
      const bytes = codec.encode(v);
      return { hex: hex(bytes), decoded: Array.from(codec.decode(bytes, v.length)) };
    });
  }
  let unknown = null;
  try { wire.summaryCodec('int3'); } catch (err) { unknown = err.message; }
  return { out, unknown };
}"""


def test_summary_codecs_write_what_comm_writes(page):
    rng = np.random.default_rng(3)
    vectors = [rng.normal(0, 10.0 ** rng.uniform(-6, 3), 10) for _ in range(200)]
    vectors += [np.zeros(10), np.array([0.5] * 10), np.array([1e-9, -3.0, 65504.0, 2.5, 0.0])]
    # int4 carries integer summaries in [-8, 7] (a rounding exit head); odd |C| pads a nibble
    vectors += [rng.integers(-8, 8, size).astype(float) for size in (10, 9, 1) for _ in range(30)]
    answer = page.evaluate(_CODECS, [v.tolist() for v in vectors])
    from ddnn_tf.core.comm import decode_summary

    integral = [v for v in vectors if np.all(v == np.round(v))]
    assert len(answer["out"]["int4"]) == len(integral) >= 90
    for name, rows in answer["out"].items():
        for v, row in zip(integral if name == "int4" else vectors, rows, strict=True):
            payload = encode_summary(v, name)
            assert row["hex"] == payload.hex(), (name, v)
            assert row["decoded"] == decode_summary(payload, len(v), name).tolist()
    assert "int3" in answer["unknown"] and "int4" in answer["unknown"]


_QUANTIZE = """async ([values, quantizers]) => {
  const ddnn = await import('./js/ddnn.js');
  return quantizers.map((q) => Array.from(ddnn.quantizeSensor(values, q)));
}"""


def test_sensor_quantiser_gives_the_codes_numpy_gives(page):
    """The page reads a quantised sensor's manifest entry and computes the very codes the
    runtime and the C do: on values drawn wide, on exact half steps and out of range."""
    from ddnn_tf.core.sensors import SensorQuantizer

    rng = np.random.default_rng(5)
    train = rng.normal(0, 1, (500, 3)) * np.array([0.01, 300.0, 2.0]) + [0.0, 900.0, -1.0]
    quantizers = [SensorQuantizer.fit(train.astype(np.float32), bits) for bits in (8, 16)]
    values = rng.normal(0, 1, (400, 3)) * np.array([0.02, 600.0, 4.0]) + [0.0, 900.0, -1.0]
    values = values.astype(np.float32)
    for q in quantizers:  # values on exact half steps of every channel: the rounding's ties
        steps = np.arange(-20, 21, dtype=np.float32) + np.float32(0.5)
        half = steps[:, None] * np.asarray(q.scale, np.float32)[None, :]
        values = np.concatenate([values, half.astype(np.float32)])
    got = page.evaluate(_QUANTIZE, [values.ravel().tolist(), [q.to_dict() for q in quantizers]])
    for q, codes in zip(quantizers, got, strict=True):
        want = q.centred(values).ravel()
        assert np.array_equal(np.asarray(codes, np.float32), want), q.bits
        assert len(np.unique(want)) > 100  # many distinct codes: the comparison means something


def test_server_stopped_local_exit_answers_cloud_degrades(chromium, test_images):
    proc, url = _start_demo()
    try:
        _offline_checks(chromium, proc, url, test_images)
    finally:
        _stop(proc)


def _offline_checks(chromium, proc, url, test_images):
    context, page = _open(chromium, url)
    cached = page.evaluate("window.ddnn.offline")
    assert cached >= 10  # the runtime, its .wasm, the tiers and the app
    page.wait_for_function(
        "document.querySelector('#status').textContent.endsWith('works offline')"
    )
    images, _ = test_images
    expected = Hierarchy(MODEL).run(fmnist6_views(images), batch_size=len(images))
    local = next(i for i in range(len(images)) if expected.exit_name(i) == "local")
    cloud = next(i for i in range(len(images)) if expected.exit_name(i) == "cloud")
    samples = _raw_views(images[[local, cloud]])
    _stop(proc)

    start = time.monotonic()
    answer = page.evaluate(_CLASSIFY_ALL, samples)["results"]
    elapsed = time.monotonic() - start
    assert elapsed < CLOUD_TIMEOUT_MS / 1000 + 2
    on_phone, degraded = answer
    assert (on_phone["exit"], on_phone["degraded"]) == ("local", False)
    assert on_phone["prediction"] == expected.prediction[local]
    assert degraded["degraded"] is True and degraded["exit"] == "local"
    assert degraded["bytes_up"] == 0 and "cloud" in degraded["error"]
    assert degraded["prediction"] == int(np.argmax(expected.probs["local"][cloud]))

    # the app reopens with no server: the service worker has the page, runtime and tiers
    page.reload()
    page.wait_for_function("window.ddnn && window.ddnn.load", timeout=30_000)
    again = page.evaluate(_CLASSIFY_ALL, samples[:1])["results"][0]
    assert (again["exit"], again["prediction"]) == ("local", expected.prediction[local])
    page.wait_for_function("document.querySelector('#net').textContent === 'offline'")
    context.close()


def _photo(image: np.ndarray) -> bytes:
    """A 'photo' of a data set image: dark object on a light, slightly noisy backdrop."""
    from PIL import Image

    big = np.asarray(Image.fromarray(image).resize((224, 224), Image.BILINEAR), np.float64)
    canvas = np.full((320, 300), 235.0)
    canvas[40:264, 50:274] -= big * 0.8
    canvas += np.random.default_rng(0).normal(0, 3, canvas.shape)
    rgb = np.repeat(np.clip(canvas, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="JPEG", quality=92)
    return out.getvalue()


def _uneven_photo(image: np.ndarray) -> bytes:
    """A harder 'photo': smaller, off centre, under a lighting gradient, tinted and noisy."""
    from PIL import Image

    big = np.asarray(Image.fromarray(image).resize((160, 160), Image.BILINEAR), np.float64)
    yy, xx = np.mgrid[0:480, 0:360]
    canvas = 190 + 60 * xx / 360 + 10 * yy / 480
    canvas[120:280, 170:330] -= big * 0.7
    canvas += np.random.default_rng(1).normal(0, 6, canvas.shape)
    rgb = np.stack([canvas * 0.95, canvas, canvas * 1.05], axis=-1)
    out = io.BytesIO()
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(out, format="JPEG", quality=85)
    return out.getvalue()


def _send_photo(page, path: Path) -> dict:
    page.evaluate("window.ddnn.last = undefined")
    page.set_input_files("#gallery", str(path))
    page.wait_for_function("window.ddnn.last !== undefined", timeout=10_000)
    return page.evaluate("Array.from(window.ddnn.last.image)")


def test_photo_under_uneven_light_is_preprocessed_like_the_data(page, test_images, tmp_path):
    images, _ = test_images
    path = tmp_path / "uneven.jpg"
    path.write_bytes(_uneven_photo(images[1]))
    image = np.array(_send_photo(page, path), np.uint8).reshape(28, 28)
    assert np.corrcoef(image.ravel(), images[1].ravel())[0, 1] > 0.85
    # the backdrop (gradient, tint, noise) becomes the data's black background
    assert np.percentile(image[images[1] == 0], 75) < 20


def test_photo_shows_six_views_and_a_prediction(page, test_images, tmp_path):
    images, _ = test_images
    original = images[1]
    path = tmp_path / "photo.jpg"
    path.write_bytes(_photo(original))
    _send_photo(page, path)
    page.wait_for_function("window.ddnn.last !== undefined", timeout=10_000)
    last = page.evaluate(
        "({image: Array.from(window.ddnn.last.image), views: window.ddnn.last.views.map("
        "(v) => Array.from(v)), result: window.ddnn.last.result})"
    )
    shown = page.evaluate(
        """() => [...document.querySelectorAll('#views canvas')].map((c) => {
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let lit = 0; for (let i = 0; i < d.length; i += 4) lit += d[i] > 40; return lit; })"""
    )
    prediction = page.locator("#prediction").inner_text()
    page.screenshot(path=str(tmp_path / "phone.png"))

    image = np.array(last["image"], np.uint8).reshape(28, 28)
    # preprocessing recovers the data set's look: bright object on black, close to the original
    assert np.corrcoef(image.ravel(), original.ravel())[0, 1] > 0.9
    assert len(shown) == 6 and sum(n > 0 for n in shown) >= 5
    padded = np.zeros((30, 28), np.uint8)
    padded[1:29] = image
    assert np.array_equal(np.array(last["views"][3], np.uint8).reshape(10, 14), padded[10:20, 14:])
    expected = Hierarchy(MODEL).run(fmnist6_views(image[None]), batch_size=1)
    assert last["result"]["prediction"] == expected.prediction[0]
    assert last["result"]["exit"] == expected.exit_name(0)
    assert (
        prediction
        == json.loads((MODEL / "manifest.json").read_text())["classes"][expected.prediction[0]]
    )


def test_failed_devices_match_the_orchestrator(page, test_images):
    images, _ = test_images
    images = images[:40]
    presence = np.ones((len(images), 6), bool)
    presence[::2, 5] = False  # device 5 fails on every other sample
    presence[1::4, [0, 3]] = False  # devices 0 and 3 on every fourth
    samples = _raw_views(images)
    for i, views in enumerate(samples):
        for d in np.flatnonzero(~presence[i]):
            views[d] = None
    answer = page.evaluate(
        _CLASSIFY_ALL.replace("views.map(decode)", "views.map((b) => b && decode(b))"), samples
    )["results"]
    expected = Hierarchy(MODEL).run(fmnist6_views(images), presence=presence, batch_size=40)
    up = expected.link_bytes["device_to_upper"].sum(axis=1)
    got = [(r["exit"], r["prediction"], r["bytes_up"], r["degraded"]) for r in answer]
    want = [
        (expected.exit_name(i), int(expected.prediction[i]), int(up[i]), False) for i in range(40)
    ]
    assert got == want
    assert any(r["exit"] == "cloud" and r["bytes_up"] < 108 for r in answer)


def test_https_with_a_token(chromium, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cert_dir = tmp_path / "tls"
    command = [sys.executable, "-m", "ddnn_tf.serve", "demo", str(MODEL), "--port", "0"]
    command += ["--https", "--cert-dir", str(cert_dir), "--token", "s3cret"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)  # fmt: skip
    try:
        url = json.loads(proc.stdout.readline())["url"]
        printed = [proc.stdout.readline() for _ in range(5)]
        assert url.startswith("https://127.0.0.1:") and url.endswith("/?token=s3cret")
        assert printed[0].strip() == f"Open on the phone: {url}"
        assert "adb reverse" in printed[1] and str(cert_dir / "cert.pem") in printed[2]
        assert "█" in printed[3]  # the QR code follows
        import httpx

        base = url.split("?")[0]
        with httpx.Client(verify=str(cert_dir / "cert.pem"), timeout=10) as client:
            assert client.get(base).status_code == 200  # the certificate is valid for it
            assert client.get(base + "v1/model").status_code == 401
        p, browser = chromium
        context = browser.new_context(**p.devices["Pixel 7"], ignore_https_errors=True)
        page = context.new_page()
        page.goto(url)
        page.wait_for_function("window.ddnn && window.ddnn.load", timeout=30_000)
        image = load_fmnist6_arrays().x_test[:40]
        expected = Hierarchy(MODEL).run(fmnist6_views(image), batch_size=40)
        cloud = next(i for i in range(40) if expected.exit_name(i) == "cloud")
        got = page.evaluate(_CLASSIFY_ALL, _raw_views(image[cloud : cloud + 1]))["results"][0]
        context.close()
        assert (got["exit"], got["degraded"], got["prediction"]) == (
            "cloud",
            False,
            expected.prediction[cloud],
        )
    finally:
        _stop(proc)


def test_demo_cli_errors_are_one_line():
    from conftest import run_cli

    missing = run_cli("ddnn_tf.serve", "demo", "no/such/model", "--port", "0", timeout=60)
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: ") and "no/such/model" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1 and not missing.stdout
    # the server that ships the device tiers never imports TensorFlow
    code = "import sys, ddnn_tf.serve.demo; print('tensorflow' in sys.modules)"
    check = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert check.stdout.strip() == "False", check.stderr


def test_self_signed_cert_is_reused_while_it_fits(tmp_path):
    from cryptography import x509

    from ddnn_tf.serve.demo import self_signed_cert

    cert, key = self_signed_cert(tmp_path, ["192.168.1.20", "localhost"])
    first = cert.read_bytes()
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert self_signed_cert(tmp_path, ["localhost"])[0].read_bytes() == first
    self_signed_cert(tmp_path, ["10.0.0.7"])  # another address: a new certificate
    names = x509.load_pem_x509_certificate(cert.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert cert.read_bytes() != first and "10.0.0.7" in str(names.value)


def test_threshold_slider_and_bundled_sample(page):
    page.evaluate("window.ddnn.last = undefined")
    page.locator("#threshold").fill("1")
    assert page.locator("#t-value").inner_text() == "1.00"
    page.click("#random")
    page.wait_for_function("window.ddnn.last !== undefined", timeout=10_000)
    last = page.evaluate("window.ddnn.last.result")
    caption = page.locator("#image-caption").inner_text()
    classes = json.loads((MODEL / "manifest.json").read_text())["classes"]
    # T = 1: every sample exits on the phone; the caption names the test image and its label
    assert last["exit"] == "local" and last["bytes_up"] == 0
    assert page.locator("#exit").inner_text() == "local exit"
    assert page.locator("#prediction").inner_text() == classes[last["prediction"]]
    assert caption.startswith("test #") and caption.split(" · ")[1] in classes
    manifest = json.loads((MODEL / "manifest.json").read_text())
    calibrated = manifest["thresholds"]["local"]
    # the calibrated T and the rule that chose it, both from the manifest
    rule = manifest["calibration"]["rule"]
    assert rule == "risk:0.5,0.1" and page.evaluate("window.ddnn.model.calibration") == rule
    assert page.locator("#t-calibrated").inner_text() == f"{calibrated:.2f}"
    assert page.locator("#t-rule").inner_text().strip() == f"by {rule}"
    certified = (
        "on 6000 validation samples: drop vs. all-cloud ≤ 0.50 points with probability ≥ 0.90"
    )
    assert page.evaluate("window.ddnn.model.certified") == certified
    assert page.locator("#t-certified").inner_text().strip() == certified
    page.locator("#threshold").fill(str(calibrated))  # back to the manifest's T


def test_bad_input_is_refused_with_a_clear_message(page):
    errors = page.evaluate(
        """async () => {
          const ok = () => Array.from({ length: 6 }, () => new Uint8Array(140));
          const tries = [
            [ok().slice(1), {}],
            [[...ok().slice(1), new Uint8Array(139)], {}],
            [[...ok().slice(1), new Float32Array(140)], {}],
            [ok(), { threshold: 2 }],
          ];
          const out = [];
          for (const [views, options] of tries) {
            try { await window.ddnn.classifyViews(views, options); out.push(null); }
            catch (err) { out.push(err.message); }
          }
          out.push((await window.ddnn.classifyViews(ok())).exit);  // still serving
          return out;
        }"""
    )
    assert "expected 6 views" in errors[0] and "got 5" in errors[0]
    assert "view 5 must be a Uint8Array of 140 values (10x14x1)" in errors[1]
    assert "view 5 must be a Uint8Array" in errors[2]
    assert "threshold must be in [0, 1], got 2" in errors[3]
    assert errors[4] in ("local", "cloud")


def test_installable_web_app(page):
    # the service worker takes the page over once it is active (clients.claim)
    page.wait_for_function("!!navigator.serviceWorker.controller", timeout=10_000)
    info = page.evaluate(
        """async () => {
          const manifest = await (await fetch('app.webmanifest')).json();
          const icons = [];
          for (const icon of manifest.icons) {
            const bitmap = await createImageBitmap(await (await fetch(icon.src)).blob());
            icons.push({ sizes: icon.sizes, type: icon.type, actual: `${bitmap.width}x${bitmap.height}` });
          }
          const link = document.querySelector('link[rel=manifest]').href;
          return { manifest, icons, link, controlled: !!navigator.serviceWorker.controller };
        }"""
    )
    manifest = info["manifest"]
    assert manifest["display"] == "standalone" and manifest["start_url"] == "./"
    assert manifest["name"] and manifest["short_name"] and info["link"].endswith("/app.webmanifest")
    assert {i["sizes"] for i in info["icons"]} >= {"192x192", "512x512"}
    assert all(i["sizes"] == i["actual"] and i["type"] == "image/png" for i in info["icons"])
    assert info["controlled"]  # the service worker serves the page (offline, install)
