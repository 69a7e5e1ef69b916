"""`load_dataset`: one entry point for every dataset, returning a `Dataset`."""

from __future__ import annotations

import numbers
import os
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ddnn_tf.data import fmnist6, mvmc, npz, synthetic
from ddnn_tf.data.splits import stratified_pick
from ddnn_tf.data.types import Dataset, Split
from ddnn_tf.errors import ConfigError

__all__ = ["DATASETS", "load_dataset"]

DATASETS: tuple[str, ...] = ("fmnist6", "mvmc", "npz", "synthetic", "cancer3")
_NPZ_DEFAULTS = {"test_fraction": 0.2}
#: The packaged ``cancer3`` file (``scripts/make_cancer3.py`` writes it).
CANCER3_FILE = "cancer3.npz"


def _check_options(name: str, options: dict[str, Any], allowed: dict[str, Any]) -> dict:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        valid = ", ".join(allowed) if allowed else "none"
        raise ConfigError(
            f"Unknown option {unknown[0]!r} for dataset {name!r}. Valid options: {valid}."
        )
    return {**allowed, **options}


def _check_limit(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"Expected {name} to be a positive integer or None. Received {value!r}.")
    return int(value)


def load_dataset(
    name: str,
    path: str | os.PathLike | None = None,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    train_limit: int | None = None,
    test_limit: int | None = None,
    **options: Any,
) -> Dataset:
    """Load a multi-view dataset by name.

    Args:
        name: One of `DATASETS`: `"fmnist6"` (Fashion-MNIST over 6 devices), `"mvmc"`
            (the paper's MVMC.npz, user supplied), `"npz"` (your own multi-view .npz),
            `"synthetic"` (generated scenes), `"cancer3"` (the Wisconsin breast-cancer
            data over 3 real-valued sensor groups of 9, 6 and 15 features, shipped with
            the package).
        path: fmnist6: directory with the IDX files (default: search the system package
            dir, the Keras cache, then download); mvmc / npz: the `.npz` file (required);
            synthetic, cancer3: unused, must be None.
        val_fraction: Share of the training data carved out (seeded, stratified by label)
            as the validation split, in `[0, 1)`.
        seed: Fixes the validation split, the npz train/test split when the file has
            none, and the synthetic generator.
        train_limit: Keep only the first N training samples (after the validation split
            is carved); None keeps all (a limit above the size keeps all).
        test_limit: Keep only the first N test samples; None keeps all.
        **options: Loader options. npz: `test_fraction` (0.2). synthetic: see
            `ddnn_tf.data.synthetic.make_synthetic_splits`. fmnist6 and mvmc have none.

    Returns:
        The `Dataset`; `load_dataset(**ds.spec)` returns an equal one.

    Raises:
        ValueError: On an unknown name (listing the valid ones), an unknown option
            (naming it), a bad argument value, or a malformed data file.
        FileNotFoundError: If the data files cannot be found.

    Example:
        >>> ds = load_dataset("synthetic", n_samples=200, seed=3)
        >>> len(ds.train), len(ds.val), len(ds.test)
        (144, 16, 40)
    """
    if name not in DATASETS:
        raise ConfigError(
            f"Expected dataset name to be one of {', '.join(DATASETS)}. Received {name!r}."
        )
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, numbers.Real):
        raise ConfigError(f"Expected val_fraction to be a number. Received {val_fraction!r}.")
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"Expected val_fraction in [0, 1). Received {val_fraction!r}.")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ConfigError(f"Expected seed to be a non-negative integer. Received {seed!r}.")
    seed = int(seed)
    train_limit = _check_limit("train_limit", train_limit)
    test_limit = _check_limit("test_limit", test_limit)
    abs_path = None if path is None else str(Path(path).expanduser().resolve())
    common = (name, abs_path, val_fraction, seed, train_limit, test_limit)

    if name == "fmnist6":
        _check_options(name, options, {})
        arrays = fmnist6.load_fmnist6_arrays(abs_path)
        # Carve and limit on the uint8 images, before the (larger) float views exist.
        keep, val_index = _carve(arrays.y_train, val_fraction, seed, train_limit)
        test_index = slice(0, test_limit)
        ds_splits = tuple(
            _fmnist6_split(arrays.x_train[i], arrays.y_train[i]) for i in (keep, val_index)
        ) + (_fmnist6_split(arrays.x_test[test_index], arrays.y_test[test_index]),)
        meta = (
            fmnist6.FMNIST_CLASSES,
            fmnist6.FMNIST6_DEVICE_NAMES,
            (fmnist6.RAW_BYTES_PER_DEVICE,) * 6,
            1 / 255,
        )
        return _dataset(*common, {}, ds_splits, meta)
    train, test, resolved, meta = _LOADERS[name](path, abs_path, seed, options)
    keep, val_index = _carve(train.y, val_fraction, seed, train_limit)
    ds_splits = (train.subset(keep), train.subset(val_index), test.subset(slice(0, test_limit)))
    return _dataset(*common, resolved, ds_splits, meta)


def _mvmc(path, abs_path, seed: int, options: dict):
    """The MVMC ``.npz``: its train and test splits, no options, the metadata."""
    _check_options("mvmc", options, {})
    train, test = mvmc.load_mvmc_splits(abs_path)
    meta = (mvmc.MVMC_CLASSES, mvmc.MVMC_DEVICE_NAMES, (mvmc.RAW_BYTES_PER_DEVICE,) * 6, 1 / 255)
    return train, test, {}, meta


def _cancer3(path, abs_path, seed: int, options: dict):
    """The breast-cancer archive shipped with the package."""
    _check_options("cancer3", options, {})
    if path is not None:
        raise ConfigError(
            f"Dataset 'cancer3' ships with the package; it takes no path. Received path={path!r}."
        )
    with resources.as_file(resources.files("ddnn_tf.data").joinpath(CANCER3_FILE)) as file:
        train, test, meta = npz.load_npz_splits(file)
    return train, test, {}, meta


def _npz(path, abs_path, seed: int, options: dict):
    """A user's multi-view ``.npz`` (option ``test_fraction`` when it has no test split)."""
    resolved = _check_options("npz", options, _NPZ_DEFAULTS)
    tf_ = resolved["test_fraction"]
    if isinstance(tf_, bool) or not isinstance(tf_, numbers.Real) or not 0 < tf_ < 1:
        raise ConfigError(f"Expected test_fraction in (0, 1). Received {tf_!r}.")
    resolved["test_fraction"] = float(tf_)
    train, test, meta = npz.load_npz_splits(
        abs_path, seed=seed, test_fraction=resolved["test_fraction"]
    )
    return train, test, resolved, meta


def _synthetic(path, abs_path, seed: int, options: dict):
    """Generated scenes (the options of ``make_synthetic_splits``)."""
    if path is not None:
        raise ConfigError(f"Dataset 'synthetic' takes no path. Received path={path!r}.")
    train, test, resolved = synthetic.make_synthetic_splits(seed=seed, **options)
    h, w = resolved["image_size"]
    d = resolved["num_devices"]
    meta = (
        synthetic.SHAPE_NAMES[: resolved["num_classes"]],
        tuple(f"camera{i}" for i in range(d)),
        (h * w * resolved["channels"],) * d,
        1 / 255,
    )
    return train, test, resolved, meta


#: The loaders of the data sets other than fmnist6 (whose images are carved as uint8):
#: ``(path, absolute path, seed, options) -> (train, test, resolved options, metadata)``.
_LOADERS = {"mvmc": _mvmc, "cancer3": _cancer3, "npz": _npz, "synthetic": _synthetic}


def _carve(
    y: np.ndarray, val_fraction: float, seed: int, train_limit: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the kept training samples (limited) and of the validation samples."""
    val_index = stratified_pick(y, val_fraction, np.random.default_rng([seed, 1]))
    keep = np.ones(len(y), dtype=bool)
    keep[val_index] = False
    return np.flatnonzero(keep)[:train_limit], val_index


def _fmnist6_split(images: np.ndarray, labels: np.ndarray) -> Split:
    present = np.ones((len(labels), 6), dtype=bool)
    return Split(fmnist6.fmnist6_views(images), labels.astype(np.int64), present)


def _dataset(
    name: str,
    abs_path: str | None,
    val_fraction: float,
    seed: int,
    train_limit: int | None,
    test_limit: int | None,
    resolved: dict[str, Any],
    splits: tuple[Split, Split, Split],
    meta: tuple,
) -> Dataset:
    spec = {
        "name": name,
        "path": abs_path,
        "val_fraction": float(val_fraction),
        "seed": seed,
        "train_limit": train_limit,
        "test_limit": test_limit,
        **resolved,
    }
    classes, device_names, raw_bytes, input_scale = meta
    train, val, test = splits
    return Dataset(
        name=name,
        train=train,
        val=val,
        test=test,
        classes=classes,
        device_names=device_names,
        raw_bytes_per_device=raw_bytes,
        input_scale=input_scale,
        spec=spec,
    )
