"""fmnist6: Fashion-MNIST with each image split over six end devices.

Each 28x28 image is padded with one zero row on top and one at the bottom (30x28) and
cut into a 3-row x 2-column grid of 10x14x1 patches; device index = row * 2 + col.

The IDX files are looked for, in order: the directory the user names; the Debian/Ubuntu
package directory `/usr/share/datasets/fashion-mnist`; the Keras cache
`~/.keras/datasets/fashion-mnist`; finally a download of the same files into that cache
(the standard library's ``urllib``: this module needs numpy alone).
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ddnn_tf.errors import FormatError

__all__ = [
    "FMNIST_CLASSES",
    "FMNIST6_DEVICE_NAMES",
    "SYSTEM_DIR",
    "fmnist6_merge_views",
    "fmnist6_views",
    "load_fmnist6_arrays",
    "read_idx",
]

FMNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FMNIST6_DEVICE_NAMES = (
    "top-left",
    "top-right",
    "middle-left",
    "middle-right",
    "bottom-left",
    "bottom-right",
)
SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"
GRID = (3, 2)  # patch rows x patch cols
PATCH = (10, 14)  # patch height x width
RAW_BYTES_PER_DEVICE = PATCH[0] * PATCH[1]  # uint8 pixels
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_IDX_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class Fmnist6Arrays(NamedTuple):
    """Raw Fashion-MNIST arrays: uint8 images (N, 28, 28) and uint8 labels (N,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # the directory they were read from


# Parsed arrays keyed by (file path, size, mtime) so that repeated loads are instant.
_CACHE: dict[tuple, Fmnist6Arrays] = {}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed if its name ends in `.gz`).

    Args:
        path: The file.

    Returns:
        The array stored in the file, with the shape its header declares (read-only
        for single-byte types, as it shares the decompressed buffer; copy to modify).

    Raises:
        ValueError: If the file is not valid IDX (bad gzip data, wrong magic number, or
            a length that does not match the header); the message names the file.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise FormatError(f"Corrupt IDX file {path}: cannot decompress it ({exc}).") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise FormatError(
            f"Corrupt IDX file {path}: expected a magic number 0x0000TTNN "
            f"(TT = data type), received {data[:4].hex() or 'an empty file'}."
        )
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise FormatError(f"Corrupt IDX file {path}: truncated header.")
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise FormatError(
            f"Corrupt IDX file {path}: header declares shape {shape} ({expected} bytes of "
            f"data), but the file holds {len(data) - header} bytes."
        )
    return (
        np.frombuffer(data, dtype=dtype, offset=header)
        .reshape(shape)
        .astype(dtype.newbyteorder("="), copy=False)
    )


def _find_file(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def _read_dir(directory: Path) -> Fmnist6Arrays:
    files = {key: _find_file(directory, stem) for key, stem in FILES.items()}
    missing = [f"{FILES[k]}.gz" for k, p in files.items() if p is None]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST directory {directory} lacks {', '.join(missing)} "
            "(the un-gzipped names are accepted too)."
        )
    key = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files.values())
    if key in _CACHE:
        return _CACHE[key]
    arrays = {k: read_idx(p) for k, p in files.items()}
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
            raise FormatError(
                f"Expected {files[part + '_images']} to hold uint8 images of shape "
                f"(N, 28, 28). Received {images.dtype} {images.shape}."
            )
        if labels.shape != (len(images),) or labels.size and labels.max() > 9:
            raise FormatError(
                f"Expected {files[part + '_labels']} to hold {len(images)} labels in 0..9. "
                f"Received shape {labels.shape}."
            )
    result = Fmnist6Arrays(
        arrays["train_images"],
        arrays["train_labels"],
        arrays["test_images"],
        arrays["test_labels"],
        str(directory),
    )
    _CACHE[key] = result
    return result


def _keras_cache_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("KERAS_HOME"):
        dirs.append(Path(os.environ["KERAS_HOME"]) / "datasets" / "fashion-mnist")
    dirs.append(Path.home() / ".keras" / "datasets" / "fashion-mnist")
    return dirs


#: Where Keras' own loader fetches Fashion-MNIST from (the same four gzipped IDX files).
DOWNLOAD_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"


def _download() -> Fmnist6Arrays:
    """Last resort: download the four IDX files into the Keras cache directory."""
    import tempfile
    import urllib.request

    target = _keras_cache_dirs()[-1]
    target.mkdir(parents=True, exist_ok=True)
    for stem in FILES.values():
        if _find_file(target, stem) is None:
            with tempfile.NamedTemporaryFile(dir=target, delete=False) as part:
                with urllib.request.urlopen(DOWNLOAD_URL + stem + ".gz", timeout=60) as r:
                    part.write(r.read())
            os.replace(part.name, target / (stem + ".gz"))
    return _read_dir(target)


def load_fmnist6_arrays(path: str | os.PathLike | None = None) -> Fmnist6Arrays:
    """Find and parse the four Fashion-MNIST IDX files.

    Args:
        path: Directory holding the files. When given, only this directory is tried.
            When `None`: `/usr/share/datasets/fashion-mnist`, the Keras cache, then a
            download into the Keras cache.

    Returns:
        The raw uint8 arrays (cached per file, so a second call is instant).

    Raises:
        FileNotFoundError: If `path` is given and lacks a file (the message names the
            path and the file), or if no source works (the message lists every option).
        ValueError: If a file is corrupt.
    """
    if path is not None:
        directory = Path(path).expanduser()
        if not directory.is_dir():
            problem = "is not a directory" if directory.exists() else "does not exist"
            raise FileNotFoundError(
                f"Expected path={str(path)!r} to be a directory holding the Fashion-MNIST "
                f"IDX files ({', '.join(s + '.gz' for s in FILES.values())}). "
                f"It {problem}."
            )
        return _read_dir(directory)
    tried = []
    for directory in [Path(SYSTEM_DIR), *_keras_cache_dirs()]:
        if directory.is_dir() and all(_find_file(directory, s) for s in FILES.values()):
            return _read_dir(directory)
        tried.append(str(directory))
    try:
        return _download()
    except Exception as exc:  # noqa: BLE001  (any failure: reported in full below)
        raise FileNotFoundError(
            "Fashion-MNIST was not found. Options: pass `path`=DIR naming a "
            "directory with the four IDX files; or run `apt-get install -y "
            "dataset-fashion-mnist` (puts the files in /usr/share/datasets/fashion-mnist); "
            f"or put them in the Keras cache dir {tried[-1]}; or go online so that they "
            f"can be downloaded there. Looked in: {', '.join(tried)}. "
            f"The download from {DOWNLOAD_URL} failed with: {type(exc).__name__}: {exc}"
        ) from exc


def fmnist6_views(images: np.ndarray) -> tuple[np.ndarray, ...]:
    """Cut 28x28 images into the six device views.

    Args:
        images: uint8 (or float) array of shape `(N, 28, 28)`.

    Returns:
        Six float32 arrays of shape `(N, 10, 14, 1)`, device index = row * 2 + col. uint8
        input is scaled by 1/255 to [0, 1]; float input is kept as is.

    Raises:
        ValueError: If `images` does not have shape `(N, 28, 28)`.

    Example:
        >>> views = fmnist6_views(np.zeros((2, 28, 28), np.uint8))
        >>> len(views), views[0].shape
        (6, (2, 10, 14, 1))
    """
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise FormatError(f"Expected images of shape (N, 28, 28). Received {images.shape}.")
    scale = 1.0 / 255.0 if images.dtype == np.uint8 else 1.0
    padded = np.zeros((len(images), 30, 28), np.float32)
    padded[:, 1:29] = images
    padded *= np.float32(scale)
    grid = padded.reshape(len(images), GRID[0], PATCH[0], GRID[1], PATCH[1])
    return tuple(
        np.ascontiguousarray(grid[:, r, :, c, :, None])
        for r in range(GRID[0])
        for c in range(GRID[1])
    )


def fmnist6_merge_views(views: tuple[np.ndarray, ...] | list[np.ndarray]) -> np.ndarray:
    """Reassemble six device views into 28x28 images (inverse of `fmnist6_views`).

    Args:
        views: Six arrays of shape `(N, 10, 14, 1)` (or `(N, 10, 14)`).

    Returns:
        Images of shape `(N, 28, 28)`, same dtype as the views (padding rows dropped).

    Raises:
        ValueError: If there are not six views of shape `(N, 10, 14[, 1])`.
    """
    if len(views) != GRID[0] * GRID[1]:
        raise FormatError(f"Expected 6 views. Received {len(views)}.")
    views = [np.asarray(v) for v in views]
    views = [v[..., 0] if v.ndim == 4 and v.shape[-1] == 1 else v for v in views]
    n = len(views[0])
    for d, v in enumerate(views):
        if v.shape != (n, *PATCH):
            raise FormatError(f"Expected view {d} of shape ({n}, 10, 14, 1). Received {v.shape}.")
    rows = [np.concatenate(views[2 * r : 2 * r + 2], axis=2) for r in range(GRID[0])]
    return np.concatenate(rows, axis=1)[:, 1:29]
