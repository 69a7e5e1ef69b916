"""Measure the phone app in a real browser and take its screenshot.

    python scripts/android_demo_figures.py [--samples 1000] [--model tflite_models/fmnist6_mlpcc]
        [--screenshot docs/android_demo.png] [--chromium /usr/bin/chromium]

Starts ``python -m ddnn_tf.serve demo`` on loopback, opens the app in chromium with
Playwright's Pixel 7 profile (viewport, touch, mobile user agent; the CPU is this
machine's, not a phone's), and prints: the LiteRT.js runtime and tier load times, the mean
time of each tier per sample, and samples per second through ``window.ddnn.classifyViews``
at the manifest's T (local exits plus HTTP round trips to the cloud) and at T = 1 (every
sample exits on the phone); at the manifest's T, how many exits and predictions equal the
Python orchestrator's (``Hierarchy.run`` on the same images) and how close the page's local
entropies are to it. Then it shows one test sample and saves a screenshot.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ddnn_tf.data.fmnist6 import load_fmnist6_arrays  # noqa: E402

ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
RUN = """async ([samples, threshold]) => {
  const decode = (b) => Uint8Array.from(atob(b), (c) => c.charCodeAt(0));
  const inputs = samples.map((views) => views.map(decode));
  const results = [];
  const start = performance.now();
  for (const views of inputs) results.push(await window.ddnn.classifyViews(views, { threshold }));
  return { results, seconds: (performance.now() - start) / 1000 };
}"""


def raw_views(images: np.ndarray) -> list[list[str]]:
    padded = np.zeros((len(images), 30, 28), np.uint8)
    padded[:, 1:29] = images
    return [
        [
            base64.b64encode(np.ascontiguousarray(img[r * 10 : r * 10 + 10, c * 14 : c * 14 + 14]).tobytes()).decode()
            for r in range(3)
            for c in (0, 1)
        ]
        for img in padded
    ]  # fmt: skip


def summarize(answer: dict, label: str) -> None:
    results = answer["results"]
    n = len(results)
    exits = [r["exit"] for r in results]
    tiers: dict[str, list[float]] = {}
    for r in results:
        for tier, ms in r["timings_ms"].items():
            tiers.setdefault(tier, []).append(ms)
    print(
        f"{label}: {n} samples in {answer['seconds']:.2f} s = {n / answer['seconds']:.0f} samples/s"
    )
    print(
        "  exits: "
        + ", ".join(f"{e} {100 * exits.count(e) / n:.1f}%" for e in sorted(set(exits)))
        + f"; bytes sent off the phone per sample: {np.mean([r['bytes_up'] for r in results]):.1f}"
    )
    device = [ms for t, v in tiers.items() if t.startswith("device_") for ms in v]
    rows = {"device tier (each)": device}
    rows.update({t: v for t, v in tiers.items() if not t.startswith("device_")})
    for tier, values in rows.items():
        v = np.asarray(values)
        print(f"  {tier:<20} mean {v.mean():.3f} ms  median {np.median(v):.3f} ms  ({len(v)} runs)")


def compare(answer: dict, images: np.ndarray, model: str, threshold: float) -> None:
    """The page's decisions against the Python orchestrator's, sample by sample."""
    from ddnn_tf.core.exits import normalized_entropy
    from ddnn_tf.data.fmnist6 import fmnist6_views
    from ddnn_tf.runtime import Hierarchy

    results = answer["results"]
    expected = Hierarchy(model).run(fmnist6_views(images), thresholds=threshold, batch_size=64)
    same = sum(
        (r["exit"], r["prediction"]) == (expected.exit_name(i), int(expected.prediction[i]))
        for i, r in enumerate(results)
    )
    eta = normalized_entropy(expected.probs["local"])
    got = np.array([r["entropy"] for r in results])
    diff = np.abs(got - eta)
    closest = np.min(np.abs(eta - threshold))
    print(
        f"  vs the Python orchestrator: {same}/{len(results)} same exit and prediction; local "
        f"entropies identical for {100 * np.mean(diff == 0):.1f} %, max |diff| {diff.max():.1e}; "
        f"closest sample to T: |eta - T| = {closest:.1e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--model", default=str(ROOT / "tflite_models" / "fmnist6_mlpcc"))
    parser.add_argument("--screenshot", default=str(ROOT / "docs" / "android_demo.png"))
    parser.add_argument(
        "--chromium", default=os.environ.get("DDNN_TF_CHROMIUM", "/usr/bin/chromium")
    )
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    arrays = load_fmnist6_arrays()
    samples = raw_views(arrays.x_test[: args.samples])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "ddnn_tf.serve", "demo", args.model, "--port", "0", "--noqr"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    try:
        url = json.loads(server.stdout.readline())["url"]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=ARGS)
            context = browser.new_context(**p.devices["Pixel 7"])
            page = context.new_page()
            page.goto(url)
            page.wait_for_function("window.ddnn && window.ddnn.load", timeout=60_000)
            load = page.evaluate("window.ddnn.load")
            threshold = page.evaluate(
                "window.ddnn.ready.then(() => Number(document.querySelector('#threshold').value))"
            )
            print(f"chromium {browser.version}, Pixel 7 profile, {url}")
            print(
                f"load: manifest {load['manifest_ms']:.0f} ms, LiteRT.js runtime (WASM) "
                f"{load['runtime_ms']:.0f} ms, 7 tiers {load['tiers_ms']:.0f} ms, "
                f"page to ready {load['total_ms']:.0f} ms"
            )
            at_t = page.evaluate(RUN, [samples, threshold])
            summarize(at_t, f"classifyViews at T = {threshold}")
            compare(at_t, arrays.x_test[: args.samples], args.model, threshold)
            summarize(page.evaluate(RUN, [samples, 1.0]), "classifyViews at T = 1 (all local)")
            page.evaluate("Math.random = () => 0.37")  # one fixed bundled sample
            page.click("#random")
            page.wait_for_function("window.ddnn.last !== undefined")
            page.wait_for_timeout(300)
            Path(args.screenshot).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=args.screenshot)
            print("screenshot:", args.screenshot)
            browser.close()
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
