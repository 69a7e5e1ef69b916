"""mvmc: the DDNN paper's multi-view multi-camera dataset (user supplied `MVMC.npz`).

`X` is uint8 (851, 6, 3, 32, 32) (sample, camera, channel, row, col); `y` is (851, 6)
with per-camera labels 0 = car, 1 = bus, 2 = person and 3 = object not in that camera's
view. The train/test split is the authors' permutation, shipped as package data
(`mvmc_split.json`): its first 680 entries are train, the remaining 171 test.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

import numpy as np

from ddnn_tf.data.npz import npz_array, open_npz
from ddnn_tf.data.types import Split
from ddnn_tf.errors import FormatError

__all__ = [
    "MVMC_CLASSES",
    "MVMC_DEVICE_NAMES",
    "load_mvmc_split_permutation",
    "load_mvmc_splits",
]

MVMC_CLASSES = ("car", "bus", "person")
MVMC_DEVICE_NAMES = tuple(f"camera{d}" for d in range(6))
ABSENT = 3
X_SHAPE = (851, 6, 3, 32, 32)
RAW_BYTES_PER_DEVICE = 32 * 32 * 3


def load_mvmc_split_permutation() -> tuple[np.ndarray, int]:
    """The authors' sample order and the number of training samples.

    Returns:
        `(permutation, n_train)`: an int64 permutation of `range(851)` and 680.

    Raises:
        ValueError: If the packaged split file is damaged.
    """
    text = resources.files("ddnn_tf.data").joinpath("mvmc_split.json").read_text()
    meta = json.loads(text)
    perm = np.asarray(meta["permutation"], dtype=np.int64)
    n = int(meta["n_samples"])
    if len(perm) != n or not np.array_equal(np.sort(perm), np.arange(n)):
        raise FormatError("Packaged mvmc_split.json does not hold a permutation of its samples.")
    return perm, int(n * float(meta["train_fraction"]))


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open_npz(path) as f:
        missing = [k for k in ("X", "y") if k not in f.files]
        if missing:
            raise FormatError(
                f"Expected {path} to hold arrays 'X' and 'y' (the authors' MVMC.npz). "
                f"Missing key {missing[0]!r}; found keys {sorted(f.files)}."
            )
        return npz_array(path, f, "X"), npz_array(path, f, "y")


def load_mvmc_splits(path: str | os.PathLike | None) -> tuple[Split, Split]:
    """Load MVMC.npz and split it 680/171 with the authors' permutation.

    Args:
        path: The user-supplied `MVMC.npz` file.

    Returns:
        `(train, test)` splits: six camera views each, float32 (32, 32, 3) in [0, 1];
        labels = max over cameras of the per-camera labels (absent mapped to -1);
        presence = per-camera label is not "absent".

    Raises:
        FileNotFoundError: If `path` is None or the file does not exist.
        ValueError: If `X` or `y` has the wrong shape, dtype or values, or a sample is
            absent from every camera.
    """
    if path is None:
        raise FileNotFoundError(
            "The mvmc dataset is user supplied: pass `path`=/path/to/MVMC.npz, the "
            "file published by the DDNN paper authors. It is not bundled or downloadable."
        )
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"MVMC file {path} does not exist. The mvmc dataset is user supplied: pass "
            "the path of the authors' MVMC.npz."
        )
    x, y = _read_npz(path)
    if x.shape != X_SHAPE or x.dtype != np.uint8:
        raise FormatError(
            f"Expected 'X' in {path} to be uint8 of shape {X_SHAPE} (sample, camera, "
            f"channel, row, col). Received {x.dtype} {x.shape}."
        )
    if y.shape != X_SHAPE[:2] or y.dtype.kind not in "iu":
        raise FormatError(
            f"Expected 'y' in {path} to be integer of shape {X_SHAPE[:2]}. "
            f"Received {y.dtype} {y.shape}."
        )
    if y.min() < 0 or y.max() > ABSENT:
        raise FormatError(
            f"Expected 'y' in {path} to hold 0 = car, 1 = bus, 2 = person, 3 = absent. "
            f"Received values in [{y.min()}, {y.max()}]."
        )
    present = y != ABSENT
    labels = np.where(present, y, -1).max(axis=1).astype(np.int64)
    if (labels < 0).any():
        bad = np.flatnonzero(labels < 0)
        raise FormatError(
            f"Expected every sample in {path} to be seen by at least one camera. "
            f"{len(bad)} are absent from all six (first: {bad[:5].tolist()})."
        )
    views = np.ascontiguousarray(x.transpose(0, 1, 3, 4, 2))  # channels-last
    xs = tuple((views[:, d].astype(np.float32) * np.float32(1 / 255)) for d in range(6))
    full = Split(x=xs, y=labels, present=present)
    perm, n_train = load_mvmc_split_permutation()
    if len(perm) != len(labels):
        raise FormatError(f"The packaged split has {len(perm)} samples; {path} has {len(labels)}.")
    return full.subset(perm[:n_train]), full.subset(perm[n_train:])
