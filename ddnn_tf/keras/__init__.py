"""The TensorFlow side: Larq blocks and aggregators, the DDNN model, training, the run
directory, the Keras evaluation and the conversion to tier binaries.

Installed with ``pip install 'ddnn_tf[train]'``. Larq needs Keras 2 (tf-keras), so the
first import of this package sets ``TF_USE_LEGACY_KERAS=1`` before TensorFlow loads; if
TensorFlow was already imported with Keras 3 it raises an ImportError that says what to
do. Nothing outside this package imports TensorFlow, so :mod:`ddnn_tf.runtime` and
:mod:`ddnn_tf.serve` import into any process, TensorFlow loaded or not.
"""

from __future__ import annotations

import os
import sys

_LEGACY_ON = ("1", "true", "True", "yes")

if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") not in _LEGACY_ON:
    raise ImportError(
        "ddnn_tf.keras needs TensorFlow with legacy Keras (tf-keras), but TensorFlow was "
        "already imported with Keras 3. Import ddnn_tf.keras before tensorflow, or set "
        "the environment variable TF_USE_LEGACY_KERAS=1 before starting Python."
    )
os.environ["TF_USE_LEGACY_KERAS"] = "1"
# TensorFlow's Python-side logging level; its C++ start-up lines are kept off the terminal
# by ddnn_tf.core.logs.native_logs_hidden, and DDNN_TF_LOG=debug shows everything.
os.environ.setdefault(
    "TF_CPP_MIN_LOG_LEVEL",
    "0" if os.environ.get("DDNN_TF_LOG", "").strip().lower() == "debug" else "2",
)

__all__: list[str] = []
