"""ddnn_tf: Distributed Deep Neural Networks (cloud, edge, end devices) with Larq.

Importing the package sets ``TF_USE_LEGACY_KERAS=1`` before TensorFlow loads, so
that Larq (which needs Keras 2) works with TensorFlow >= 2.16. Nothing heavy is
imported here: the device-side modules (``exits``, ``comm``, ``data``, ``runtime``)
stay free of TensorFlow, and the Keras-side names are resolved lazily.
"""

from __future__ import annotations

import importlib
import os
import sys

_LEGACY_ON = ("1", "true", "True", "yes")

if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") not in _LEGACY_ON:
    raise ImportError(
        "ddnn_tf needs TensorFlow with legacy Keras (tf-keras), but TensorFlow was "
        "already imported with Keras 3. Import ddnn_tf before tensorflow, or set "
        "the environment variable TF_USE_LEGACY_KERAS=1 before starting Python."
    )
os.environ["TF_USE_LEGACY_KERAS"] = "1"
# Python-side TensorFlow logging; the C++ start-up lines are kept off the terminal by the
# CLIs (ddnn_tf._cli.native_logs_hidden), and DDNN_TF_LOG=debug shows everything.
_DEBUG = os.environ.get("DDNN_TF_LOG", "").strip().lower() == "debug"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if _DEBUG else "2")

try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("ddnn_tf")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+local"

# Public name -> module that defines it. Resolved on first access so that
# `import ddnn_tf.runtime` never drags TensorFlow in.
_LAZY = {
    "Topology": "ddnn_tf.topology",
    "build_ddnn": "ddnn_tf.model",
    "DDNN": "ddnn_tf.model",
    "train": "ddnn_tf.train",
    "load_run": "ddnn_tf.rundir",
    "save_run": "ddnn_tf.rundir",
    "tier_graph": "ddnn_tf.graph",
    "Evaluation": "ddnn_tf.evaluation",
    "load_dataset": "ddnn_tf.data",
    "evaluate_run": "ddnn_tf.evaluate",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ddnn_tf' has no attribute {name!r}")
