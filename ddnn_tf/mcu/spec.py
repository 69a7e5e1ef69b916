"""The numpy description of a device tier that the C generator turns into C.

A :class:`TierSpec` is what a device tier computes, with the constants of its portable
binary: the sensor input, the binary blocks in order, and the exit head. Weights are
sign bits (``True`` = +1); batch-norm constants are the float32 values the reference
binary multiplies and adds, so the C code can reproduce its decisions exactly
(:mod:`ddnn_tf.mcu.exact`).

Numpy and the standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["SENSOR_BYTES", "ConvBlock", "DenseBlock", "Head", "Sensor", "TierSpec"]


#: Bytes per sensor value of each sensor dtype.
SENSOR_BYTES = {"uint8": 1, "int8": 1, "int16": 2, "float32": 4}


@dataclass(frozen=True, eq=False)
class Sensor:
    """The device's input as the C entry point receives it.

    Attributes:
        shape: ``(H, W, C)`` for an image, ``(K,)`` for a vector.
        dtype: ``"uint8"`` (raw sensor values; the reference binary reads
            ``float32(value) * scale``), ``"int8"`` / ``"int16"`` (quantised codes,
            little-endian; the binary reads ``code - zero_point`` of the value's channel,
            :mod:`ddnn_tf.core.sensors`) or ``"float32"`` (little-endian floats).
        scale: the float32 factor of ``uint8`` values, None otherwise.
        zero_point: ``(C,)`` integer zero points of int8 / int16 codes, None otherwise.
    """

    shape: tuple[int, ...]
    dtype: str
    scale: np.float32 | None
    zero_point: np.ndarray | None = None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        return self.size * SENSOR_BYTES[self.dtype]

    @property
    def coded(self) -> bool:
        """Quantised integer codes (int8 / int16)."""
        return self.zero_point is not None

    @property
    def max_centred(self) -> int:
        """The largest ``|code - zero_point|`` of a coded sensor (0 otherwise)."""
        if not self.coded:
            return 0
        half = 2 ** (8 * SENSOR_BYTES[self.dtype] - 1)
        z = self.zero_point.astype(np.int64)
        return int(np.max(np.maximum(half - 1 - z, z + half)))


@dataclass(frozen=True, eq=False)
class ConvBlock:
    """A ConvP block: 3x3 binary convolution (stride 1), max-pool, batch norm, sign.

    The reference computes ``conv`` (weights +-1, no bias), max-pools it, then
    ``z = conv * mul + add`` (two float32 roundings) and outputs +1 where ``z >= 0``.

    Attributes:
        in_shape / out_shape: ``(H, W, C)`` of the block's input and pooled output.
        real_input: the block reads the sensor (the first block); else a +-1 map.
        signs: ``(F, 3, 3, C)`` bool weight signs.
        pool: ``(size, stride)`` of the max-pool ("same" padding, padding ignored).
        mul / add: ``(F,)`` float32 batch-norm constants.
    """

    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    real_input: bool
    signs: np.ndarray
    pool: tuple[int, int]
    mul: np.ndarray
    add: np.ndarray

    @property
    def taps(self) -> int:
        return 9 * self.in_shape[2]


@dataclass(frozen=True, eq=False)
class DenseBlock:
    """An FC block with its batch norm folded into the weights: ``+-scale`` each, a bias.

    The reference computes ``acc = bias + sum_k x_k * w_k`` with ``w_k = +-scale`` and
    outputs +1 where ``acc >= 0``.

    Attributes:
        in_size / units: input length and output width.
        real_input: the block reads the sensor vector; else a +-1 vector.
        signs: ``(units, in_size)`` bool signs of the folded weights.
        scale: ``(units,)`` float32 magnitudes of the folded weights.
        bias: ``(units,)`` float32.
    """

    in_size: int
    units: int
    real_input: bool
    signs: np.ndarray
    scale: np.ndarray
    bias: np.ndarray

    @property
    def out_shape(self) -> tuple[int]:
        return (self.units,)


@dataclass(frozen=True, eq=False)
class Head:
    """The exit head: a binary dense over the flattened +-1 map (HWC order), batch norm
    folded into ``+-scale`` weights and a bias, giving the class summary.

    Attributes:
        in_size / classes: input bits and summary length.
        signs: ``(classes, in_size)`` bool signs of the folded weights.
        scale / bias: ``(classes,)`` float32.
        encoding: ``"float32"`` (the logits) or ``"int4"`` (``clip(floor(acc + 0.5),
            -8, 7)``, as the reference rounds them).
    """

    in_size: int
    classes: int
    signs: np.ndarray
    scale: np.ndarray
    bias: np.ndarray
    encoding: str

    @property
    def summary_nbytes(self) -> int:
        return 4 * self.classes if self.encoding == "float32" else (self.classes + 1) // 2


@dataclass(frozen=True, eq=False)
class TierSpec:
    """One device tier: sensor -> blocks -> (features, summary).

    Attributes:
        name: the tier name (``device_0``).
        sensor: its input.
        blocks: the binary blocks, bottom to top (all ConvBlock or all DenseBlock).
        head: the exit head, None when the tier sends no summary.
        outputs: the reference binary's output names in the flatbuffer's order.
    """

    name: str
    sensor: Sensor
    blocks: tuple
    head: Head | None
    outputs: tuple[str, ...] = field(default=())

    @property
    def features_shape(self) -> tuple[int, ...]:
        return tuple(self.blocks[-1].out_shape)

    @property
    def features_bits(self) -> int:
        return int(np.prod(self.features_shape))

    @property
    def features_nbytes(self) -> int:
        return (self.features_bits + 7) // 8

    @property
    def summary_nbytes(self) -> int:
        return self.head.summary_nbytes if self.head is not None else 0
