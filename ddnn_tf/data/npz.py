"""npz: bring your own sensors, as one `.npz` file (the generic multi-view format).

Keys:
    `x0` ... `x{D-1}`: one array per device, first axis = samples. `(N, k)` is a vector
        device (FC blocks), `(N, H, W, C)` an image device (conv blocks); `(N, H, W)` gets
        a channel axis and `(N,)` becomes `(N, 1)`. Shapes may differ between devices.
    `y`: integer labels `(N,)` (integral float values are accepted).
    `present` (optional): bool `(N, D)`; default all True.
    `split` (optional): `(N,)` with 0 = train, 1 = test; default a seeded stratified
        split with `test_fraction` of the samples in test.
    `classes` (optional): class names, at least `max(y) + 1` of them.
    `device_names` (optional): `D` names.

Any other key is rejected, so that a typo does not silently drop data.
"""

from __future__ import annotations

import os
import re
import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ddnn_tf.data.splits import stratified_pick
from ddnn_tf.data.types import Split
from ddnn_tf.errors import FormatError

__all__ = ["NpzContents", "load_npz_splits", "npz_array", "open_npz"]

_X_KEY = re.compile(r"^x(\d+)$")
_OPTIONAL = ("present", "split", "classes", "device_names")


class NpzContents(NamedTuple):
    """What `load_npz_splits` returns: the splits, and the metadata a `Dataset` takes,
    `(classes, device_names, raw_bytes_per_device, input_scale)`."""

    train: Split
    test: Split
    meta: tuple[tuple[str, ...], tuple[str, ...], tuple[int, ...], float | None]


def _bad(path: Path, key: str, expected: str, received: str) -> FormatError:
    return FormatError(f"Key {key!r} in {path}: expected {expected}. Received {received}.")


def _device_keys(path: Path, keys: list[str]) -> list[str]:
    indices = sorted(int(m.group(1)) for k in keys if (m := _X_KEY.match(k)))
    names = [k for k in keys if _X_KEY.match(k)]
    if "x0" not in keys:
        raise FormatError(
            f"Key 'x0' missing in {path}: expected device arrays x0, x1, ... "
            f"Found keys {sorted(keys)}."
        )
    if len(set(indices)) != len(names) or any(k != f"x{int(k[1:])}" for k in names):
        raise FormatError(
            f"Device keys in {path} must be x0, x1, ... without leading zeros. "
            f"Received {sorted(names)}."
        )
    for expected_index, index in enumerate(indices):
        if index != expected_index:
            raise FormatError(
                f"Key 'x{expected_index}' missing in {path}: device keys must run "
                f"x0..x{len(indices) - 1} without gaps. Received {sorted(names)}."
            )
    return [f"x{i}" for i in range(len(indices))]


# What numpy and zipfile raise for a file that is not a readable archive of plain arrays:
# pickled or object data (ValueError), a bad header, a truncated or corrupt member.
_UNREADABLE = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error)


def open_npz(path: Path) -> np.lib.npyio.NpzFile:
    """``np.load(path)`` of an ``.npz`` archive, without pickles.

    Raises:
        FormatError: the file is not an ``.npz`` archive (naming the file).
    """
    try:
        f = np.load(path, allow_pickle=False)
    except _UNREADABLE as exc:
        raise FormatError(f"Cannot read {path} as an .npz archive: {exc}") from None
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise FormatError(f"Expected {path} to be an .npz archive; it holds a single array.")
    return f


def npz_array(path: Path, f: np.lib.npyio.NpzFile, key: str) -> np.ndarray:
    """Array ``key`` of an open archive.

    Raises:
        FormatError: the member is not a readable array of plain values (an object array,
            a corrupt or truncated member, a member that is not ``.npy`` data), naming
            the key and the file.
    """
    try:
        a = f[key]
    except _UNREADABLE as exc:
        raise FormatError(f"Cannot read key {key!r} in {path}: {exc}") from None
    if not isinstance(a, np.ndarray):  # numpy hands a member without the .npy magic as bytes
        raise FormatError(f"Cannot read key {key!r} in {path}: it is not .npy array data.")
    return a


def _labels(path: Path, y: np.ndarray) -> np.ndarray:
    if y.ndim != 1:
        raise _bad(path, "y", "labels of shape (N,)", f"shape {y.shape}")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.array_equal(y, np.round(y)):
            raise _bad(path, "y", "integer labels", "non-integer values")
    elif y.dtype.kind not in "iu":
        raise _bad(path, "y", "integer labels", f"dtype {y.dtype}")
    if y.size and y.min() < 0:
        raise _bad(path, "y", "labels >= 0", f"minimum {y.min()}")
    return y.astype(np.int64)


def _device_array(path: Path, key: str, a: np.ndarray, n: int) -> np.ndarray:
    if a.dtype.kind not in "biuf":
        raise _bad(path, key, "a numeric array", f"dtype {a.dtype}")
    if a.ndim == 0 or a.shape[0] != n:
        raise _bad(path, key, f"{n} samples (the length of 'y')", f"shape {a.shape}")
    if a.ndim > 4:
        raise _bad(path, key, "(N,), (N, k), (N, H, W) or (N, H, W, C)", f"shape {a.shape}")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise _bad(path, key, "finite inputs", "NaN or inf values")
    if a.ndim == 1 or a.ndim == 3:
        a = a[..., None]
    if a.dtype == np.uint8:
        return a.astype(np.float32) * np.float32(1 / 255)
    return a.astype(np.float32)


def _names(path: Path, f: np.lib.npyio.NpzFile, key: str, count: int | None) -> tuple | None:
    if key not in f.files:
        return None
    a = npz_array(path, f, key)
    if a.ndim != 1 or a.dtype.kind not in "US":
        raise _bad(path, key, "a 1-D array of strings", f"{a.dtype} {a.shape}")
    if count is not None and len(a) != count:
        raise _bad(path, key, f"{count} names", f"{len(a)}")
    return tuple(str(s.decode() if isinstance(s, bytes) else s) for s in a.tolist())


def load_npz_splits(
    path: str | os.PathLike | None, *, seed: int = 0, test_fraction: float = 0.2
) -> NpzContents:
    """Read a multi-view `.npz` file and split it into train and test.

    Inputs are cast to float32. A uint8 device array is scaled by 1/255 (it is taken
    to hold pixels); other dtypes are used as stored. `input_scale` is 1/255 only if
    every device array is uint8, else None (a single number cannot describe mixed
    devices). `raw_bytes_per_device` is the size of one stored row (before the cast) in
    bytes of its stored dtype.

    Args:
        path: The `.npz` file.
        seed: Seed of the stratified train/test split (used when there is no `split`).
        test_fraction: Share of samples put in test when there is no `split`.

    Returns:
        An `NpzContents` with train and test splits and the metadata.

    Raises:
        FileNotFoundError: If `path` is None or the file does not exist.
        ValueError: If the file is not an npz archive, or a key is missing, malformed or
            inconsistent (the message names the key and the file).
    """
    if path is None:
        raise FileNotFoundError("The npz dataset needs `path`=/path/to/file.npz.")
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"npz dataset file {path} does not exist.")
    with open_npz(path) as f:
        keys = list(f.files)
        dev_keys = _device_keys(path, keys)
        if "y" not in keys:
            raise FormatError(
                f"Key 'y' missing in {path}: expected integer labels (N,). "
                f"Found keys {sorted(keys)}."
            )
        unknown = sorted(set(keys) - set(dev_keys) - {"y", *_OPTIONAL})
        if unknown:
            raise FormatError(
                f"Unknown key {unknown[0]!r} in {path}. Allowed keys: x0..x{{D-1}}, y, "
                f"{', '.join(_OPTIONAL)}."
            )
        y = _labels(path, npz_array(path, f, "y"))
        n, d = len(y), len(dev_keys)
        stored = [npz_array(path, f, k) for k in dev_keys]
        xs = tuple(_device_array(path, k, a, n) for k, a in zip(dev_keys, stored, strict=True))
        raw_bytes = tuple(int(np.prod(a.shape[1:], dtype=np.int64)) * a.itemsize for a in stored)
        input_scale = 1 / 255 if all(a.dtype == np.uint8 for a in stored) else None

        if "present" in keys:
            present = npz_array(path, f, "present")
            if present.shape != (n, d):
                raise _bad(path, "present", f"shape (N, D) = {(n, d)}", f"shape {present.shape}")
            if present.dtype != bool and not np.isin(present, (0, 1)).all():
                raise _bad(path, "present", "bool values", f"dtype {present.dtype}")
            present = present.astype(bool)
        else:
            present = np.ones((n, d), dtype=bool)

        if "split" in keys:
            split = npz_array(path, f, "split")
            if split.shape != (n,):
                raise _bad(path, "split", f"shape ({n},)", f"shape {split.shape}")
            if not np.isin(split, (0, 1)).all():
                raise _bad(path, "split", "0 = train, 1 = test", f"values {np.unique(split)}")
            is_test = split.astype(bool)
        else:
            is_test = np.zeros(n, dtype=bool)
            is_test[stratified_pick(y, test_fraction, np.random.default_rng([seed, 2]))] = True
        if is_test.all():
            raise _bad(path, "split", "at least one training sample (0)", "only test")

        num_classes = int(y.max()) + 1 if n else 0
        classes = _names(path, f, "classes", None)
        if classes is None:
            classes = tuple(str(k) for k in range(num_classes))
        elif len(classes) < num_classes:
            raise _bad(
                path, "classes", f"at least max(y) + 1 = {num_classes} names", f"{len(classes)}"
            )
        device_names = _names(path, f, "device_names", d)
        if device_names is None:
            device_names = tuple(f"device{i}" for i in range(d))

    full = Split(x=xs, y=y, present=present)
    meta = (classes, device_names, raw_bytes, input_scale)
    return NpzContents(full.subset(~is_test), full.subset(is_test), meta)
