"""The one place that imports Keras: tf-keras (Keras 2), as Larq requires."""

from __future__ import annotations

import larq as lq
import tensorflow as tf
import tf_keras as keras

import ddnn_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

__all__ = ["keras", "lq", "tf"]
