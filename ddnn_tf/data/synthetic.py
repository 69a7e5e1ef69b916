"""synthetic: procedurally generated multi-camera scenes (for tests and quick demos).

This is generated data, not a recording of anything. Each sample is one object of a
class (a horizontal bar, a vertical column, a blob, ...) at a random position and size,
seen by `num_devices` cameras. Every camera has its own fixed offset, scale, contrast
and noise level: the noise grows with the camera index (camera 0 is the cleanest,
the last one the noisiest), so individual cameras differ in quality and combining them
helps. With probability `absent_prob` a camera does not see the object: its view is grey
noise and its presence flag is False; every sample is seen by at least one camera.

Images are quantised to uint8 levels and scaled by 1/255 (like real pixels), so the
raw-offload cost is `H * W * C` bytes per device.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from ddnn_tf.data.types import Split
from ddnn_tf.errors import ConfigError

__all__ = ["SHAPE_NAMES", "SYNTHETIC_DEFAULTS", "make_synthetic_splits"]

# Mask of each shape in object units (dy, dx: offsets from the object centre / its scale).
_SHAPES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "bar": lambda dy, dx: (np.abs(dy) <= 0.5) & (np.abs(dx) <= 1.8),
    "column": lambda dy, dx: (np.abs(dx) <= 0.5) & (np.abs(dy) <= 1.8),
    "blob": lambda dy, dx: dy * dy + dx * dx <= 1.2,
    "cross": lambda dy, dx: (
        ((np.abs(dy) <= 0.4) & (np.abs(dx) <= 1.6)) | ((np.abs(dx) <= 0.4) & (np.abs(dy) <= 1.6))
    ),
    "ring": lambda dy, dx: (dy * dy + dx * dx >= 0.8) & (dy * dy + dx * dx <= 2.6),
    "diagonal": lambda dy, dx: (np.abs(dx - dy) <= 0.55) & (np.abs(dx + dy) <= 2.6),
    "antidiagonal": lambda dy, dx: (np.abs(dx + dy) <= 0.55) & (np.abs(dx - dy) <= 2.6),
    "checker": lambda dy, dx: (
        ((np.floor(dy) + np.floor(dx)) % 2 == 0) & (np.abs(dy) <= 1.6) & (np.abs(dx) <= 1.6)
    ),
}
SHAPE_NAMES = tuple(_SHAPES)

SYNTHETIC_DEFAULTS: dict[str, Any] = {
    "n_samples": 1200,
    "num_devices": 6,
    "num_classes": 3,
    "image_size": (10, 14),
    "channels": 1,
    "absent_prob": 0.1,
    "noise": 0.1,
    "test_fraction": 0.2,
}
_BACKGROUND = 0.1
_ABSENT_GREY = 0.5


def _int(name: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"Expected {name} to be an integer. Received {name}={value!r}.")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in {low}..{high}"
        raise ConfigError(f"Expected {name} {bound}. Received {name}={value!r}.")
    return int(value)


def _float(name: str, value: Any, low: float, high: float, *, high_open: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"Expected {name} to be a number. Received {name}={value!r}.")
    if not (low <= value < high if high_open else low <= value <= high):
        bracket = ")" if high_open else "]"
        raise ConfigError(f"Expected {name} in [{low}, {high}{bracket}. Received {value!r}.")
    return float(value)


def resolve_synthetic_options(**options: Any) -> dict[str, Any]:
    """Fill in defaults and validate the synthetic options.

    Args:
        **options: Any of `SYNTHETIC_DEFAULTS`.

    Returns:
        The full option dict (JSON-able: `image_size` as a list).

    Raises:
        ValueError: On an unknown option or a value out of range.
    """
    unknown = sorted(set(options) - set(SYNTHETIC_DEFAULTS))
    if unknown:
        raise ConfigError(
            f"Unknown option {unknown[0]!r} for dataset 'synthetic'. "
            f"Valid options: {', '.join(SYNTHETIC_DEFAULTS)}."
        )
    o = {**SYNTHETIC_DEFAULTS, **options}
    size = o["image_size"]
    if isinstance(size, (str, bytes)) or not hasattr(size, "__len__") or len(size) != 2:
        raise ConfigError(f"Expected image_size=(H, W). Received image_size={size!r}.")
    return {
        "n_samples": _int("n_samples", o["n_samples"], 10),
        "num_devices": _int("num_devices", o["num_devices"], 1),
        "num_classes": _int("num_classes", o["num_classes"], 2, len(SHAPE_NAMES)),
        "image_size": [_int("image_size[0]", size[0], 4), _int("image_size[1]", size[1], 4)],
        "channels": _int("channels", o["channels"], 1),
        "absent_prob": _float("absent_prob", o["absent_prob"], 0.0, 1.0, high_open=True),
        "noise": _float("noise", o["noise"], 0.0, 10.0, high_open=False),
        "test_fraction": _float("test_fraction", o["test_fraction"], 0.01, 0.99, high_open=False),
    }


def make_synthetic_splits(seed: int = 0, **options: Any) -> tuple[Split, Split, dict[str, Any]]:
    """Generate a synthetic multi-camera dataset.

    Args:
        seed: Fixes everything generated (same seed and options, same arrays).
        **options: `n_samples` (total, default 1200), `num_devices` (6), `num_classes`
            (3, at most 8), `image_size` ((10, 14)), `channels` (1), `absent_prob`
            (0.1), `noise` (0.1: base noise std; camera d gets `noise * (0.5 + 1.5 *
            d / (D - 1))`), `test_fraction` (0.2: the last samples form the test split).

    Returns:
        `(train, test, resolved_options)`.

    Raises:
        ValueError: On an unknown option or a value out of range.

    Example:
        >>> train, test, opts = make_synthetic_splits(seed=1, n_samples=100)
        >>> len(train), len(test), train.x[0].shape[1:]
        (80, 20, (10, 14, 1))
    """
    opts = resolve_synthetic_options(**options)
    n, d, k = opts["n_samples"], opts["num_devices"], opts["num_classes"]
    (h, w), c = opts["image_size"], opts["channels"]
    rng = np.random.default_rng(seed)
    unit = min(h, w) / 4.0  # object scale in pixels

    # Fixed per-camera properties.
    cam_noise = opts["noise"] * (0.5 + 1.5 * np.arange(d) / max(d - 1, 1))
    cam_contrast = rng.uniform(0.6, 1.0, d)
    cam_scale = rng.uniform(0.85, 1.15, d)
    cam_offset = rng.uniform(-0.08, 0.08, (d, 2)) * (h, w)
    cam_gain = rng.uniform(0.5, 1.0, (d, c)) if c > 1 else np.ones((d, 1))

    # Per-sample object, then per-view placement.
    y = rng.integers(0, k, n)
    pos = rng.uniform(-1.0, 1.0, (n, 1, 2)) * (0.1 * h, 0.1 * w)
    size = rng.uniform(0.8, 1.2, (n, 1))
    center = np.array([(h - 1) / 2, (w - 1) / 2]) + cam_offset + pos
    center = center + rng.normal(0.0, 0.3, (n, d, 2))
    scale = unit * size * cam_scale  # (n, d)
    yy = np.arange(h, dtype=np.float32)[None, None, :, None]
    xx = np.arange(w, dtype=np.float32)[None, None, None, :]
    dy = (yy - center[..., 0, None, None].astype(np.float32)) / scale[..., None, None]
    dx = (xx - center[..., 1, None, None].astype(np.float32)) / scale[..., None, None]
    mask = np.zeros((n, d, h, w), dtype=bool)
    for label, shape_name in enumerate(SHAPE_NAMES[:k]):
        rows = y == label
        mask[rows] = _SHAPES[shape_name](dy[rows], dx[rows])

    present = rng.random((n, d)) >= opts["absent_prob"]
    unseen = np.flatnonzero(~present.any(axis=1))
    present[unseen, rng.integers(0, d, len(unseen))] = True

    amplitude = (cam_contrast[:, None] * cam_gain).astype(np.float32)[None, :, None, None, :]
    clean = np.float32(_BACKGROUND) + amplitude * mask[..., None]  # (n, d, h, w, c)
    clean = np.where(present[:, :, None, None, None], clean, np.float32(_ABSENT_GREY))
    grain = rng.standard_normal((n, d, h, w, c), dtype=np.float32)
    noisy = clean + grain * cam_noise[None, :, None, None, None].astype(np.float32)
    pixels = np.clip(np.rint(noisy * np.float32(255)), 0, 255).astype(np.uint8)

    xs = tuple(pixels[:, i].astype(np.float32) * np.float32(1 / 255) for i in range(d))
    full = Split(x=xs, y=y.astype(np.int64), present=present)
    n_test = int(round(opts["test_fraction"] * n))
    return full.subset(slice(0, n - n_test)), full.subset(slice(n - n_test, n)), opts
