"""Input checks shared by training, evaluation and the runtime (numpy only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ddnn_tf.errors import ConfigError

__all__ = ["check_views", "check_labels", "failed_mask"]


def check_views(
    input_shapes: Sequence[Sequence[int]], xs: Sequence[np.ndarray], *, where: str = "inputs"
) -> list[np.ndarray]:
    """Check one array per device against the expected shapes; return them as float32.

    Raises:
        ValueError: wrong number of device inputs, a wrong shape, unequal sample
            counts, or NaN/inf values; the message names the device and what was expected.
    """
    if len(xs) != len(input_shapes):
        raise ConfigError(
            f"expected {len(input_shapes)} device inputs (one per end device), got {len(xs)}.",
            argument=where,
        )
    out = []
    for i, (x, shape) in enumerate(zip(xs, input_shapes)):
        x = np.asarray(x)
        if x.dtype.kind not in "fiu":
            raise ConfigError(
                f"device {i} input has dtype {x.dtype}, expected a real float or "
                "integer array (float32 pixels in [0, 1]).",
                argument=where,
            )
        if x.ndim == len(shape) and tuple(x.shape[1:]) + (1,) == tuple(shape):
            x = x[..., None]  # (N, H, W) image without its channel axis
        if tuple(x.shape[1:]) != tuple(shape):
            raise ConfigError(
                f"device {i} input has shape {tuple(x.shape)}, expected "
                f"(N, {', '.join(map(str, shape))}).",
                argument=where,
            )
        x = x.astype(np.float32, copy=False)
        finite = np.isfinite(x.reshape(len(x), -1)).all(axis=1)
        if not finite.all():
            first = int(np.flatnonzero(~finite)[0])
            raise ConfigError(
                f"device {i} input has NaN or inf values in "
                f"{int((~finite).sum())} sample(s), the first is sample {first}.",
                argument=where,
            )
        out.append(x)
    counts = {len(x) for x in out}
    if len(counts) > 1:
        raise ConfigError(
            f"device inputs differ in sample count: {[len(x) for x in out]}.",
            argument=where,
        )
    return out


def check_labels(
    y: np.ndarray, num_classes: int, n: int | None = None, *, where: str = "labels"
) -> np.ndarray:
    """Check integer labels in ``[0, num_classes)``; return them as int64."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ConfigError(f"expected a 1-D label array, got shape {y.shape}.", argument=where)
    if n is not None and len(y) != n:
        raise ConfigError(f"{len(y)} labels for {n} samples.", argument=where)
    if not np.issubdtype(y.dtype, np.integer):
        raise ConfigError(f"labels must be integers, got dtype {y.dtype}.", argument=where)
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise ConfigError(
            f"labels must be in [0, {num_classes - 1}], got range [{y.min()}, {y.max()}].",
            argument=where,
        )
    return y.astype(np.int64)


def failed_mask(fail, num_devices: int) -> np.ndarray:
    """Parse failed devices (``"0,3"``, ``5``, ``[0, 3]`` or None) into a bool mask (D,)."""
    mask = np.zeros(num_devices, dtype=bool)
    if fail is None or fail == "" or fail == ():
        return mask
    if isinstance(fail, str):
        items = [s for s in fail.replace(" ", "").split(",") if s]
    elif isinstance(fail, (int, np.integer)) and not isinstance(fail, bool):
        items = [fail]
    elif isinstance(fail, (list, tuple, np.ndarray)):
        items = list(fail)
    else:
        raise ConfigError(f"expected device indices like 0,3; got {fail!r}.", argument="fail")
    for item in items:
        if isinstance(item, str) and item.strip().lstrip("+").isdigit():
            item = int(item)
        if isinstance(item, bool) or not isinstance(item, (int, np.integer)):
            raise ConfigError(f"expected device indices like 0,3; got {fail!r}.", argument="fail")
        d = int(item)
        if not 0 <= d < num_devices:
            raise ConfigError(
                f"device {d} does not exist; devices are 0..{num_devices - 1}.", argument="fail"
            )
        mask[d] = True
    return mask
