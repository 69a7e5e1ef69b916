"""Write the ``cancer3`` data set: scikit-learn's bundled breast-cancer data cut into
three sensor groups of different sizes.

The Wisconsin diagnostic breast-cancer data (569 fine-needle aspirates, 212 malignant
and 357 benign; 30 real-valued features: ten measurements of the cell nuclei in a
digitised image, each as its mean, standard error and worst value) becomes three end
devices, one per kind of measurement, each sending all three statistics of its own::

    device 0  size     radius, perimeter, area                                  9 features
    device 1  texture  texture, smoothness                                     6 features
    device 2  shape    compactness, concavity, concave points, symmetry,
                       fractal dimension                                       15 features

The values stay as measured (float32; areas in the hundreds, fractal dimensions near
0.06), and the file holds a seeded stratified 80 / 20 train / test split.

Usage::

    python scripts/make_cancer3.py [--out ddnn_tf/data/cancer3.npz]

scikit-learn is needed here only (the ``dev`` extra); the package ships the file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

#: The measurements of each device, in order.
GROUPS = {
    "size": ("radius", "perimeter", "area"),
    "texture": ("texture", "smoothness"),
    "shape": ("compactness", "concavity", "concave points", "symmetry", "fractal dimension"),
}
TEST_FRACTION = 0.2
SEED = 0


def columns(feature_names: list[str], measurements: tuple[str, ...]) -> list[int]:
    """The column of each measurement's mean, standard error and worst value, in that order."""
    index = {name: k for k, name in enumerate(feature_names)}
    return [index[name] for m in measurements for name in (f"mean {m}", f"{m} error", f"worst {m}")]


def make_arrays() -> dict[str, np.ndarray]:
    """The ``.npz`` arrays (``x0``, ``x1``, ``x2``, ``y``, ``split``, ``classes``,
    ``device_names``), from scikit-learn's bundled copy of the data."""
    from sklearn.datasets import load_breast_cancer

    from ddnn_tf.data.splits import stratified_pick

    data = load_breast_cancer()
    names = [str(n) for n in data.feature_names]
    x = np.asarray(data.data, np.float32)
    y = np.asarray(data.target, np.int64)
    split = np.zeros(len(y), np.int64)
    split[stratified_pick(y, TEST_FRACTION, np.random.default_rng(SEED))] = 1
    arrays = {f"x{d}": x[:, columns(names, group)] for d, group in enumerate(GROUPS.values())}
    arrays.update(
        y=y,
        split=split,
        classes=np.array([str(c) for c in data.target_names]),
        device_names=np.array(list(GROUPS)),
    )
    return arrays


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path("ddnn_tf") / "data" / "cancer3.npz"))
    args = parser.parse_args(argv)
    arrays = make_arrays()
    np.savez_compressed(args.out, **arrays)
    shapes = ", ".join(f"{k} {arrays[k].shape}" for k in ("x0", "x1", "x2"))
    print(f"wrote {args.out}: {len(arrays['y'])} samples, {shapes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
