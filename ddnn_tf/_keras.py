"""The one place that imports Keras: tf-keras (Keras 2), as Larq requires."""

from __future__ import annotations

import ddnn_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from ddnn_tf._cli import native_logs_hidden

with native_logs_hidden():  # TensorFlow's C++ start-up lines (absl, oneDNN, cudart)
    import larq as lq
    import tensorflow as tf
    import tf_keras as keras

__all__ = ["keras", "lq", "tf"]
