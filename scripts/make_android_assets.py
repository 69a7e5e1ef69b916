"""Make the phone app's bundled assets: its icons and a small sample of the fmnist6 test set.

    python scripts/make_android_assets.py [--samples 64] [--seed 0]

Writes ``android_demo/icons/*.png`` (drawn with Pillow) and
``android_demo/samples/fmnist6.json`` (test images chosen with a seeded generator, uint8
28x28, base64). Re-running it gives the same files.
"""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ddnn_tf.data.fmnist6 import load_fmnist6_arrays

APP = Path(__file__).resolve().parent.parent / "android_demo"
NAVY = (27, 42, 74, 255)
BLUE = (47, 111, 237, 255)
GREEN = (36, 170, 110, 255)
WHITE = (255, 255, 255, 255)


def draw_icon(size: int, *, maskable: bool = False) -> Image.Image:
    """Six device squares feeding a local exit and the cloud, on a navy tile."""
    s = 4  # draw large, then downsample for smooth edges
    n = size * s
    img = Image.new("RGBA", (n, n), NAVY if maskable else (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    pad = 0 if maskable else n // 16
    if not maskable:
        d.rounded_rectangle((pad, pad, n - pad, n - pad), radius=n // 5, fill=NAVY)
    inner = n * (0.62 if maskable else 0.74)
    x0 = (n - inner) / 2
    unit = inner / 10
    cloud = (n / 2, x0 + 1.6 * unit)
    d.ellipse(
        (
            cloud[0] - 1.6 * unit,
            cloud[1] - 1.2 * unit,
            cloud[0] + 1.6 * unit,
            cloud[1] + 1.2 * unit,
        ),
        fill=BLUE,
    )
    hub = (n / 2, x0 + 5.0 * unit)
    d.line((hub, cloud), fill=WHITE, width=int(unit * 0.35))
    for r in range(3):
        for c in range(2):
            cy = x0 + (7.2 + r * 1.25) * unit
            cx = n / 2 + (c - 0.5) * 3.2 * unit
            d.line(((cx, cy), hub), fill=(255, 255, 255, 150), width=int(unit * 0.18))
            d.rounded_rectangle(
                (cx - 0.9 * unit, cy - 0.5 * unit, cx + 0.9 * unit, cy + 0.5 * unit),
                radius=unit * 0.2,
                fill=WHITE,
            )
    d.ellipse(
        (hub[0] - 0.8 * unit, hub[1] - 0.8 * unit, hub[0] + 0.8 * unit, hub[1] + 0.8 * unit),
        fill=GREEN,
    )
    return img.resize((size, size), Image.LANCZOS)


def write_samples(count: int, seed: int) -> Path:
    arrays = load_fmnist6_arrays()
    rng = np.random.default_rng(seed)
    indices = np.sort(rng.choice(len(arrays.x_test), size=count, replace=False))
    images = np.ascontiguousarray(arrays.x_test[indices], dtype=np.uint8)
    out = APP / "samples" / "fmnist6.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "dataset": "fmnist6",
        "split": "test",
        "source": "Fashion-MNIST t10k (MIT licence), chosen with numpy default_rng(seed)",
        "seed": seed,
        "shape": [28, 28],
        "indices": [int(i) for i in indices],
        "labels": [int(y) for y in arrays.y_test[indices]],
        "images_base64": base64.b64encode(images.tobytes()).decode("ascii"),
    }
    out.write_text(json.dumps(payload) + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    icons = APP / "icons"
    icons.mkdir(parents=True, exist_ok=True)
    for size in (192, 512):
        draw_icon(size).save(icons / f"icon-{size}.png", optimize=True)
    draw_icon(512, maskable=True).save(icons / "icon-maskable-512.png", optimize=True)
    print("wrote", icons, "and", write_samples(args.samples, args.seed))


if __name__ == "__main__":
    main()
