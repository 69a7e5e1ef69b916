"""The data a converted model runs on: the dataset its manifest records, or one named.

Shared by ``ddnn run`` (:mod:`ddnn_tf.runtime.report`), ``ddnn cost``
(:mod:`ddnn_tf.runtime.cost`), the benchmarks and the services. Numpy only.
"""

from __future__ import annotations

from ddnn_tf.core.vocab import SUBSETS
from ddnn_tf.errors import ConfigError
from ddnn_tf.runtime.orchestrator import Hierarchy

__all__ = ["load_data_for", "load_subset"]


def load_data_for(hierarchy: Hierarchy, data=None, path: str | None = None):
    """The dataset to evaluate on: ``data`` (a Dataset or a loader name), or the one the
    manifest records.

    Raises:
        ValueError: no dataset given and none recorded, or a dataset whose classes or
            device count differ from the model's.
    """
    from ddnn_tf.data import load_dataset

    if data is None:
        recorded = hierarchy.manifest.get("dataset")
        if recorded is None:
            raise ConfigError(
                f"{hierarchy.manifest.directory}/manifest.json records no dataset; give "
                "`data` (fmnist6, mvmc, npz, synthetic)."
            )
        spec = dict(recorded) if isinstance(recorded, dict) else {"name": str(recorded)}
        if path is not None:
            spec["path"] = path
        dataset = load_dataset(**spec)
    elif isinstance(data, str):
        dataset = load_dataset(data, path)
    else:
        dataset = data
    classes = tuple(hierarchy.classes)
    if tuple(dataset.classes) != classes:
        raise ConfigError(
            f"The dataset's classes {list(dataset.classes)} differ from the model's "
            f"{list(classes)}; evaluate on the data the model was trained for."
        )
    if dataset.num_devices != hierarchy.num_devices:
        raise ConfigError(
            f"The dataset has {dataset.num_devices} devices, the model "
            f"{hierarchy.num_devices}; evaluate on the data the model was trained for."
        )
    return dataset


def load_subset(
    hierarchy: Hierarchy, data=None, path: str | None = None, subset: str = "test", limit=None
):
    """The ``subset`` of the model's dataset, cut to its first ``limit`` samples.

    Args:
        hierarchy: the model (its manifest names the default dataset).
        data: as :func:`load_data_for`.
        path: as :func:`load_data_for`.
        subset: ``test`` or ``val``.
        limit: the first ``limit`` samples only (None: all).

    Returns:
        The subset (``x``, ``y``).

    Raises:
        ValueError / FileNotFoundError: as :func:`load_data_for`, or a bad ``subset`` or
            ``limit``.
    """
    if subset not in SUBSETS:
        raise ConfigError(f"expected 'test' or 'val', got {subset!r}.", argument="subset")
    samples = getattr(load_data_for(hierarchy, data, path), subset)
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"expected a positive integer, got {limit!r}.", argument="limit")
        samples = samples.subset(slice(0, limit))
    return samples
