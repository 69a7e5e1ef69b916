"""Multi-view datasets for DDNN: one input array per end device.

Every loader returns a `Dataset` of three `Split`s (train, val carved from train with a
fixed seed, test). Datasets:

- `fmnist6`: Fashion-MNIST, each image cut into a 3x2 grid of 10x14 patches (6 devices).
- `mvmc`: the paper's multi-view multi-camera data (user-supplied `MVMC.npz`).
- `npz`: your own sensors, one `.npz` file with `x0..x{D-1}`, `y`, ...
- `synthetic`: generated multi-camera scenes for tests and demos (not real data).
- `cancer3`: the Wisconsin diagnostic breast-cancer data (569 samples, 2 classes) over 3
  real-valued sensor groups of 9, 6 and 15 features, shipped with the package.

This package imports numpy and the standard library only (the device-side runtime uses
it); the last-resort download of Fashion-MNIST into the Keras cache directory uses
``urllib``, not Keras.

Example:
    >>> from ddnn_tf.data import load_dataset
    >>> ds = load_dataset("synthetic", n_samples=200)
    >>> ds.num_devices, ds.input_shapes[0], ds.classes
    (6, (10, 14, 1), ('bar', 'column', 'blob'))
"""

from __future__ import annotations

from ddnn_tf.data.fmnist6 import FMNIST_CLASSES, fmnist6_merge_views, fmnist6_views
from ddnn_tf.data.load import DATASETS, load_dataset
from ddnn_tf.data.types import Dataset, Split

__all__ = [
    "DATASETS",
    "FMNIST_CLASSES",
    "Dataset",
    "Split",
    "fmnist6_merge_views",
    "fmnist6_views",
    "load_dataset",
]
