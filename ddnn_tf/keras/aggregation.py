"""Aggregators (Section III-B): max pooling, average pooling and concatenation.

Every aggregator also takes a presence mask ``(batch, n)`` (1 = the input arrived,
0 = its device failed), so the same layer serves training, fault-tolerance studies and
the deployed tiers:

* ``max``: component-wise maximum over the inputs that arrived;
* ``avg``: component-wise mean over the inputs that arrived;
* ``concat``: concatenation along the last axis, a missing input's slot filled with 0.

When nothing arrived the result is meaningless (the runtime reports such a sample as
unclassified instead of using it).
"""

from __future__ import annotations

from ddnn_tf.core.topology import SCHEMES
from ddnn_tf.errors import ConfigError
from ddnn_tf.keras.compat import keras, tf

__all__ = ["Aggregate", "DevicePresence", "SCHEMES"]

# Added to a missing input before the max, so that it never wins while any input is present.
_ABSENT = 1e9


@keras.utils.register_keras_serializable(package="ddnn_tf")
class Aggregate(keras.layers.Layer):
    """Combine ``n`` same-rank tensors under a presence mask.

    Call it on ``[x_0, ..., x_{n-1}, presence]`` with ``presence`` of shape ``(batch, n)``.

    Args:
        scheme: ``"max"``, ``"avg"`` or ``"concat"``.

    Example:
        >>> a, b = tf.constant([[1.0, 5.0]]), tf.constant([[3.0, 2.0]])
        >>> Aggregate("max")([a, b, tf.ones((1, 2))]).numpy().tolist()  # tf.maximum(a, b)
        [[3.0, 5.0]]
        >>> Aggregate("max")([a, b, tf.constant([[0.0, 1.0]])]).numpy().tolist()  # a failed
        [[3.0, 2.0]]
        >>> Aggregate("concat")([a, b, tf.constant([[0.0, 1.0]])]).numpy().tolist()
        [[0.0, 0.0, 3.0, 2.0]]
    """

    def __init__(self, scheme: str, **kwargs):
        super().__init__(**kwargs)
        if scheme not in SCHEMES:
            raise ConfigError(f"Unknown aggregation scheme {scheme!r}; expected one of {SCHEMES}.")
        self.scheme = scheme

    def call(self, inputs):
        *xs, presence = inputs
        rank = len(xs[0].shape)
        masks = []
        for i in range(len(xs)):
            m = presence[:, i : i + 1]
            masks.append(tf.reshape(m, [-1] + [1] * (rank - 1)))
        if self.scheme == "concat":
            return tf.concat([x * m for x, m in zip(xs, masks)], axis=-1)
        if self.scheme == "max":
            out = xs[0] + (masks[0] - 1.0) * _ABSENT
            for x, m in zip(xs[1:], masks[1:]):
                out = tf.maximum(out, x + (m - 1.0) * _ABSENT)
            return out
        total = xs[0] * masks[0]
        for x, m in zip(xs[1:], masks[1:]):
            total = total + x * m
        count = tf.maximum(tf.reduce_sum(presence, axis=1), 1.0)
        return total / tf.reshape(count, [-1] + [1] * (rank - 1))

    def get_config(self):
        return {**super().get_config(), "scheme": self.scheme}


@keras.utils.register_keras_serializable(package="ddnn_tf")
class DevicePresence(keras.layers.Layer):
    """All-ones presence mask ``(batch, n)``; while training, each device drops with ``rate``.

    Dropping whole devices at training time (never all of one sample's devices) teaches
    the aggregators and upper tiers to work with any subset of devices.
    """

    def __init__(self, num_devices: int, rate: float = 0.0, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.num_devices = int(num_devices)
        self.rate = float(rate)
        self.seed = seed

    def call(self, reference, training=None):
        batch = tf.shape(reference)[0]
        ones = tf.ones((batch, self.num_devices), dtype=self.compute_dtype)
        if not training or self.rate <= 0.0:
            return ones
        keep = tf.cast(
            tf.random.uniform((batch, self.num_devices), seed=self.seed) >= self.rate,
            self.compute_dtype,
        )
        none_left = tf.reduce_sum(keep, axis=1, keepdims=True) < 0.5
        return tf.where(none_left, ones, keep)

    def get_config(self):
        return {
            **super().get_config(),
            "num_devices": self.num_devices,
            "rate": self.rate,
            "seed": self.seed,
        }


@keras.utils.register_keras_serializable(package="ddnn_tf")
class GroupPresence(keras.layers.Layer):
    """Presence of groups of devices: column ``j`` is 1 when any device of ``groups[j]`` is.

    ``GroupPresence([[0, 1], [2]])`` turns a ``(batch, 3)`` device mask into a ``(batch, 2)``
    edge mask; ``GroupPresence([[2], [0]])`` just selects and reorders columns.
    """

    def __init__(self, groups, **kwargs):
        super().__init__(**kwargs)
        self.groups = [list(map(int, g)) for g in groups]

    def call(self, presence):
        cols = [tf.reduce_max(tf.gather(presence, g, axis=1), axis=1) for g in self.groups]
        return tf.stack(cols, axis=1)

    def get_config(self):
        return {**super().get_config(), "groups": self.groups}
