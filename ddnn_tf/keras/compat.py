"""The one place that imports Keras: tf-keras (Keras 2), as Larq requires.

Importing :mod:`ddnn_tf.keras` first (which this module's package does) selects legacy
Keras before TensorFlow loads.
"""

from __future__ import annotations

from ddnn_tf.core.logs import native_logs_hidden

with native_logs_hidden():  # TensorFlow's C++ start-up lines (absl, oneDNN, cudart)
    import larq as lq
    import tensorflow as tf
    import tf_keras as keras

__all__ = ["keras", "lq", "tf"]
