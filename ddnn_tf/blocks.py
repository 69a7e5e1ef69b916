"""Fused binary blocks of the paper (Section IV-A, Figure 3), built from Larq layers.

* ConvP block: 3x3 binary conv (stride 1, pad 1) -> 3x3 max-pool (stride 2, pad 1;
  stride 1 in the cloud and edges) -> batch norm -> binary activation.
* FC block: binary dense -> batch norm -> binary activation.
* Exit head: binary dense -> batch norm; its output is the exit's logits.

The first block of a device reads the real-valued sensor input (only its weights are
binary); every later block binarises its input too. Binary convolutions pad with +1
(``pad_values=1``) so that every value a binary kernel sees is really +-1, which is
also the padding larq-compute-engine's bit-packed kernels implement natively.

On an image feature map the dense of an exit head (or FC block) is written as a binary
convolution whose kernel covers the whole map: the same arithmetic as a dense layer on
the flattened map, but a form larq-compute-engine bit-packs.
"""

from __future__ import annotations

from ddnn_tf._keras import keras, lq

__all__ = ["POOL", "convp_block", "fc_block", "exit_head", "binary_sign"]

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
