"""The multi-view dataset types every loader returns: `Split` and `Dataset`.

A *split* holds one input array per end device (devices may differ in input shape), one
label per sample and a per-device presence mask. A *dataset* bundles the train,
validation and test splits with the metadata the rest of the toolkit needs (class and
device names, raw-offload cost per device, and the `spec` that reloads it).

Only numpy is imported here: the device-side runtime uses these types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ddnn_tf.errors import ConfigError

__all__ = ["Dataset", "Split"]


@dataclass(frozen=True, eq=False)
class Split:
    """One split (train, val or test) of a multi-view dataset.

    Attributes:
        x: One float32 array per device; the first axis indexes samples. Shapes after the
            first axis may differ between devices.
        y: int64 sample labels, shape `(N,)`.
        present: bool mask, shape `(N, D)`; `False` means device `d` does not see the
            object of sample `n` (its input is a blank view).

    The constructor normalises dtypes (`x` to float32, `y` to int64, `present` to bool)
    without copying arrays that already have them, and checks that every array has `N`
    samples.

    Example:
        >>> s = Split((np.zeros((4, 2), np.float32),), np.arange(4), np.ones((4, 1), bool))
        >>> len(s), s.num_devices, len(s.subset(slice(0, 2)))
        (4, 1, 2)

    Raises:
        ValueError: If there is no device, if lengths disagree, or if `present` does not
            have shape `(N, D)`.
    """

    x: tuple[np.ndarray, ...]
    y: np.ndarray
    present: np.ndarray

    def __post_init__(self) -> None:
        xs = tuple(np.asarray(a, dtype=np.float32) for a in self.x)
        if not xs:
            raise ConfigError("Expected a Split with at least one device array. Received x=().")
        y = np.asarray(self.y)
        if y.ndim != 1:
            raise ConfigError(f"Expected y of shape (N,). Received shape {y.shape}.")
        if y.size and y.dtype.kind not in "iu":
            raise ConfigError(f"Expected integer labels y. Received dtype {y.dtype}.")
        y = y.astype(np.int64, copy=False)
        n = len(y)
        for d, a in enumerate(xs):
            if a.ndim < 1 or a.shape[0] != n:
                raise ConfigError(
                    f"Expected x[{d}] to have {n} samples (the length of y). "
                    f"Received shape {a.shape}."
                )
        present = np.asarray(self.present, dtype=bool)
        if present.shape != (n, len(xs)):
            raise ConfigError(
                f"Expected present of shape (N, D) = {(n, len(xs))}. "
                f"Received shape {present.shape}."
            )
        object.__setattr__(self, "x", xs)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "present", present)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def num_devices(self) -> int:
        """Number of end devices (input arrays)."""
        return len(self.x)

    def subset(self, index: Any) -> Split:
        """Select samples.

        Args:
            index: A slice, an integer index array or a boolean mask of length `N`.

        Returns:
            A new `Split` holding the selected samples in every array (a slice gives
            views, an index array or mask gives copies).

        Raises:
            ValueError: If a boolean mask does not have length `N`.
            IndexError: If an integer index is out of range.
        """
        if not isinstance(index, slice):
            index = np.asarray(index)
            if index.dtype == bool and index.shape != (len(self),):
                raise ConfigError(
                    f"Expected a boolean mask of shape ({len(self)},). "
                    f"Received shape {index.shape}."
                )
            if index.dtype != bool and index.dtype.kind not in "iu":
                if index.size:
                    raise ConfigError(
                        "Expected a slice, an integer index array or a boolean mask. "
                        f"Received an array of dtype {index.dtype}."
                    )
                index = index.astype(np.int64)
        return Split(
            x=tuple(a[index] for a in self.x), y=self.y[index], present=self.present[index]
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Split):
            return NotImplemented
        return (
            self.num_devices == other.num_devices
            and all(
                a.shape == b.shape and np.array_equal(a, b)
                for a, b in zip(self.x, other.x, strict=True)
            )
            and np.array_equal(self.y, other.y)
            and np.array_equal(self.present, other.present)
        )

    __hash__ = None  # type: ignore[assignment]  # holds mutable arrays

    def __repr__(self) -> str:
        shapes = tuple(a.shape[1:] for a in self.x)
        return f"Split(n={len(self)}, devices={self.num_devices}, shapes={shapes})"


@dataclass(frozen=True, eq=False)
class Dataset:
    """A multi-view dataset: train / val / test splits plus metadata.

    Attributes:
        name: Loader name: `"fmnist6"`, `"mvmc"`, `"npz"` or `"synthetic"`.
        train: Training split (validation samples removed, `train_limit` applied).
        val: Validation split, carved from the training data with a fixed seed (never
            from test); used e.g. for exit-threshold search.
        test: Test split (`test_limit` applied).
        classes: Class names; label `k` is `classes[k]`.
        device_names: One name per end device.
        raw_bytes_per_device: Bytes one raw sample costs to send from each device (the
            raw-offload baseline of the communication study).
        input_scale: The factor raw uint8 values were multiplied by (`1/255`), or `None`
            if inputs are used as stored.
        spec: JSON-able dict; `load_dataset(**spec)` returns an equal dataset.

    Example:
        >>> from ddnn_tf.data import load_dataset
        >>> ds = load_dataset("synthetic", n_samples=100)
        >>> ds.input_shapes[0], ds.num_classes, ds.train.num_devices
        ((10, 14, 1), 3, 6)

    Raises:
        ValueError: If the splits disagree in number of devices or per-device shape, or
            the metadata tuples do not have one entry per device.
    """

    name: str
    train: Split
    val: Split
    test: Split
    classes: tuple[str, ...]
    device_names: tuple[str, ...]
    raw_bytes_per_device: tuple[int, ...]
    input_scale: float | None
    spec: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        object.__setattr__(self, "device_names", tuple(str(d) for d in self.device_names))
        object.__setattr__(
            self, "raw_bytes_per_device", tuple(int(b) for b in self.raw_bytes_per_device)
        )
        shapes = tuple(a.shape[1:] for a in self.train.x)
        for split_name in ("val", "test"):
            other = tuple(a.shape[1:] for a in getattr(self, split_name).x)
            if other != shapes:
                raise ConfigError(
                    f"Expected the {split_name} split to have the train per-device shapes "
                    f"{shapes}. Received {other}."
                )
        d = len(shapes)
        for attr in ("device_names", "raw_bytes_per_device"):
            if len(getattr(self, attr)) != d:
                raise ConfigError(
                    f"Expected one {attr} entry per device ({d}). Received {getattr(self, attr)!r}."
                )

    @property
    def input_shapes(self) -> tuple[tuple[int, ...], ...]:
        """Per-device input shape, without the sample axis."""
        return tuple(tuple(int(s) for s in a.shape[1:]) for a in self.train.x)

    @property
    def num_classes(self) -> int:
        """Number of classes (`len(classes)`)."""
        return len(self.classes)

    @property
    def num_devices(self) -> int:
        """Number of end devices."""
        return self.train.num_devices

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Dataset):
            return NotImplemented
        return (
            self.name == other.name
            and self.classes == other.classes
            and self.device_names == other.device_names
            and self.raw_bytes_per_device == other.raw_bytes_per_device
            and self.input_scale == other.input_scale
            and self.spec == other.spec
            and self.train == other.train
            and self.val == other.val
            and self.test == other.test
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, train={len(self.train)}, val={len(self.val)}, "
            f"test={len(self.test)}, classes={self.classes!r}, "
            f"input_shapes={self.input_shapes!r})"
        )
