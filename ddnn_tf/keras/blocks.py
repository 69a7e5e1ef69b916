"""Fused binary blocks of the paper (Section IV-A, Figure 3), built from Larq layers.

* ConvP block: 3x3 binary conv (stride 1, pad 1) -> 3x3 max-pool (stride 2, pad 1;
  stride 1 in the cloud and edges) -> batch norm -> binary activation.
* FC block: binary dense -> batch norm -> binary activation.
* Exit head: binary dense -> batch norm; its output is the exit's logits.

The first block of a device reads the real-valued sensor input (only its weights are
binary); every later block binarises its input too. Binary convolutions pad with +1
(``pad_values=1``) so that every value a binary kernel sees is really +-1, which is
also the padding larq-compute-engine's bit-packed kernels implement natively.

Beyond the paper (``Topology.summary_bits``, ``cloud_precision``, ``device_grid``,
``sensor_bits``): :class:`SummaryQuantizer` rounds a device's summary logits to the
integers its wire encoding carries, :func:`float_conv_block` is the real-valued cloud
block, :class:`GridTile` lays devices' maps out in the grid their views tile,
:class:`SensorInput` quantises a real-valued sensor to integer codes and
:class:`ThresholdDense` is the exported form of a quantised vector device's first block.

On an image feature map the dense of an exit head (or FC block) is written as a binary
convolution whose kernel covers the whole map: the same arithmetic as a dense layer on
the flattened map, but a form larq-compute-engine bit-packs.
"""

from __future__ import annotations

from ddnn_tf.core.sensors import SensorQuantizer
from ddnn_tf.keras.compat import keras, lq, tf

__all__ = [
    "POOL",
    "GridTile",
    "SensorInput",
    "SummaryQuantizer",
    "ThresholdDense",
    "binary_sign",
    "convp_block",
    "exit_head",
    "fc_block",
    "float_conv_block",
]

#: ConvP pooling of the paper: 3x3 window; stride 2 on devices, 1 in the cloud.
POOL = {"size": 3, "device_stride": 2, "upper_stride": 1}
BN_MOMENTUM = 0.9

_BINARY_KERNEL = {
    "kernel_quantizer": "ste_sign",
    "kernel_constraint": "weight_clip",
    "use_bias": False,
}


def binary_sign(x, name: str):
    """Binary activation: sign with a straight-through gradient; outputs +-1."""
    return lq.quantizers.SteSign(name=name)(x)


def _input_quantizer(real_input: bool):
    return None if real_input else "ste_sign"


def convp_block(x, filters: int, *, pool_stride: int, name: str, real_input: bool = False):
    """Fused binary conv-pool block; returns a +-1 feature map."""
    x = lq.layers.QuantConv2D(
        filters,
        3,
        padding="same",
        pad_values=0.0 if real_input else 1.0,
        input_quantizer=_input_quantizer(real_input),
        name=f"{name}_conv",
        **_BINARY_KERNEL,
    )(x)
    x = keras.layers.MaxPool2D(
        POOL["size"], strides=pool_stride, padding="same", name=f"{name}_pool"
    )(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return binary_sign(x, f"{name}_sign")


def _binary_dense(x, units: int, *, name: str, real_input: bool):
    """Binary dense; on an image map a whole-window binary conv (bit-packable)."""
    if len(x.shape) == 4:
        h, w = int(x.shape[1]), int(x.shape[2])
        x = lq.layers.QuantConv2D(
            units,
            (h, w),
            padding="valid",
            input_quantizer=_input_quantizer(real_input),
            name=name,
            **_BINARY_KERNEL,
        )(x)
        return keras.layers.Flatten(name=f"{name}_flat")(x)
    return lq.layers.QuantDense(
        units, input_quantizer=_input_quantizer(real_input), name=name, **_BINARY_KERNEL
    )(x)


def fc_block(x, units: int, *, name: str, real_input: bool = False):
    """Fused binary fully connected block; returns a +-1 vector."""
    x = _binary_dense(x, units, name=f"{name}_dense", real_input=real_input)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return binary_sign(x, f"{name}_sign")


def exit_head(x, num_classes: int, *, name: str):
    """Binary dense + batch norm giving an exit's class logits (a float vector)."""
    x = _binary_dense(x, num_classes, name=f"{name}_dense", real_input=False)
    return keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)


@keras.utils.register_keras_serializable(package="ddnn_tf")
class SummaryQuantizer(keras.layers.Layer):
    """Round to the integers in ``[-2**(bits-1), 2**(bits-1) - 1]``; straight-through gradient.

    ``floor(x + 0.5)`` (not banker's rounding, which kernels implement differently) and a
    clip, so a converted device outputs exactly the integers its ``int4`` codec sends:
    the Keras evaluation sees what the wire carries, bit for bit. The batch norm before
    it learns the scale.

    Args:
        bits: bits per value (4: integers -8..7).
    """

    def __init__(self, bits: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.bits = int(bits)

    def call(self, x):
        lo, hi = -(2.0 ** (self.bits - 1)), 2.0 ** (self.bits - 1) - 1.0
        q = tf.clip_by_value(tf.floor(x + 0.5), lo, hi)
        return x + tf.stop_gradient(q - x)

    def get_config(self):
        return {**super().get_config(), "bits": self.bits}


@keras.utils.register_keras_serializable(package="ddnn_tf")
class SensorInput(keras.layers.Layer):
    """A device's sensor quantiser in the model: real values in, centred integer codes out.

    The computation is :class:`ddnn_tf.core.sensors.SensorQuantizer`'s own numpy code
    (run through ``tf.numpy_function``), so the codes the model trains and evaluates on are
    bit for bit the ones the runtime, the services and the microcontroller compute. Its
    ``scale`` and ``zero_point`` are non-trainable weights (saved with the model), set from
    the training data with :meth:`fit`; no gradient flows through it (nothing below it
    learns).

    Args:
        bits: 8 or 16 (int8 or int16 codes).
    """

    def __init__(self, bits: int = 8, **kwargs):
        super().__init__(**kwargs)
        self.bits = int(bits)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.scale = self.add_weight(
            name="scale", shape=(channels,), initializer="ones", trainable=False
        )
        self.zero_point = self.add_weight(
            name="zero_point", shape=(channels,), initializer="zeros", trainable=False
        )
        super().build(input_shape)

    def quantizer(self) -> SensorQuantizer:
        """The numpy quantiser of the current weights."""
        scale, zero = (w.numpy() for w in (self.scale, self.zero_point))
        return SensorQuantizer(self.bits, tuple(scale.tolist()), tuple(int(z) for z in zero))

    def fit(self, x) -> SensorQuantizer:
        """Set the weights from training values ``x`` (:meth:`SensorQuantizer.fit`)."""
        if not self.built:
            self.build((None, *x.shape[1:]))
        q = SensorQuantizer.fit(x, self.bits)
        self.scale.assign(list(q.scale))
        self.zero_point.assign([float(z) for z in q.zero_point])
        return q

    def call(self, x):
        bits = self.bits

        def centred(values, scale, zero):
            q = SensorQuantizer(bits, tuple(scale.tolist()), tuple(int(z) for z in zero))
            return q.centred(values)

        out = tf.numpy_function(centred, [x, self.scale, self.zero_point], tf.float32)
        out.set_shape(x.shape)
        return tf.stop_gradient(out)

    def get_config(self):
        return {**super().get_config(), "bits": self.bits}


@keras.utils.register_keras_serializable(package="ddnn_tf")
class ThresholdDense(keras.layers.Dense):
    """The first FC block of a quantised vector device as it is exported: +-1 weights and
    a half-integer bias, so on integer codes every partial sum is a multiple of 1/2 well
    inside float32's exact range and the block's sign is exact in any summation order
    (the trained ``QuantDense`` + batch norm, whose scale the TFLite converter would fold
    into the weights, becomes this; ``ddnn_tf.keras.convert.export``)."""


@keras.utils.register_keras_serializable(package="ddnn_tf")
class GridTile(keras.layers.Layer):
    """Lay ``rows * cols`` equal maps out as one map, row-major; absent maps become 0.

    Call it on ``[x_0, ..., x_{n-1}, presence]`` (maps ``(batch, h, w, c)``, presence
    ``(batch, n)``); returns ``(batch, rows * h, cols * w, c)``.

    Args:
        grid: ``(rows, cols)``.
    """

    def __init__(self, grid, **kwargs):
        super().__init__(**kwargs)
        self.grid = [int(g) for g in grid]

    def call(self, inputs):
        *xs, presence = inputs
        rows, cols = self.grid
        masked = [x * tf.reshape(presence[:, i], [-1, 1, 1, 1]) for i, x in enumerate(xs)]
        lines = [tf.concat(masked[r * cols : (r + 1) * cols], axis=2) for r in range(rows)]
        return tf.concat(lines, axis=1)

    def get_config(self):
        return {**super().get_config(), "grid": self.grid}


def float_conv_block(x, filters: int, *, name: str):
    """Real-valued block of a float cloud: 3x3 conv -> batch norm -> ReLU -> 2x2 max-pool."""
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return keras.layers.MaxPool2D(2, padding="same", name=f"{name}_pool")(x)
