"""ddnn_tf: Distributed Deep Neural Networks over the cloud, the edge and end devices.

The package is layered; a module's folder says what it may import (the import-linter
contracts in ``pyproject.toml`` keep it so):

* :mod:`ddnn_tf.core`: numpy and the standard library only (topology, tier graph, exits,
  codecs, manifest, schemas, tier-binary checks);
* :mod:`ddnn_tf.data`: the data sets, numpy only;
* :mod:`ddnn_tf.runtime`: runs tier binaries and the hierarchy with an interpreter, no
  TensorFlow;
* :mod:`ddnn_tf.keras`: TensorFlow, tf-keras and Larq: model, training, conversion
  (``pip install 'ddnn_tf[train]'``);
* :mod:`ddnn_tf.serve`: the tiers as network services (``pip install 'ddnn_tf[serve]'``);
* :mod:`ddnn_tf.experiments`: the paper's tables and figures;
* :mod:`ddnn_tf.cli`: the ``ddnn`` command.

Importing ``ddnn_tf`` (or any of its TensorFlow-free layers) loads nothing heavy and
changes nothing in the process; the public names below resolve on first use.
"""

from __future__ import annotations

import importlib

try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("ddnn_tf")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+local"

# Public name -> module that defines it, imported on first access so that importing
# ddnn_tf never drags TensorFlow in.
_LAZY = {
    "Topology": "ddnn_tf.core.topology",
    "tier_graph": "ddnn_tf.core.graph",
    "Evaluation": "ddnn_tf.core.evaluation",
    "load_manifest": "ddnn_tf.core.manifest",
    "load_dataset": "ddnn_tf.data",
    "Hierarchy": "ddnn_tf.runtime",
    "build_ddnn": "ddnn_tf.keras.model",
    "DDNN": "ddnn_tf.keras.model",
    "TrainConfig": "ddnn_tf.keras.presets",
    "load_run": "ddnn_tf.keras.rundir",
    "save_run": "ddnn_tf.keras.rundir",
    "evaluate_run": "ddnn_tf.keras.evaluate",
    "DDNNError": "ddnn_tf.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ddnn_tf' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
