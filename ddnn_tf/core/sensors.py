"""Sensor quantisers: float sensor values to the integer codes a device computes on.

A device whose sensor produces real values (an accelerometer, a microphone, a feature
extractor) quantises them at its input, channel by channel (the last axis: each feature of
a vector, each channel of an image)::

    code = clip(floor(x / scale + 0.5) + zero_point, qmin, qmax)      int8 or int16

with ``scale`` and ``zero_point`` computed from the training data (:meth:`SensorQuantizer.fit`)
and recorded in the manifest (``inputs[].quantizer``). The device tier's binary reads the
centred code ``code - zero_point`` as a float32: an integer, so the first block's sums
over +-1 weights are exact in any order, and a microcontroller computes the same bits
with integer arithmetic only (:mod:`ddnn_tf.mcu.exact`). The model trains on the same
codes (``ddnn_tf.keras.blocks.SensorQuantizer``), so what it learns is what the device
sees.

Every step is one IEEE float32 operation (a division, an addition, a floor), so numpy, the
Keras layer, the phone app's JavaScript and C give the same codes. numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ddnn_tf.core.vocab import SENSOR_BITS
from ddnn_tf.errors import ConfigError, FormatError

__all__ = ["SensorQuantizer", "sensor_quantizer", "sensor_values"]


@dataclass(frozen=True)
class SensorQuantizer:
    """A per-channel integer quantiser of one device's sensor values.

    Attributes:
        bits: 8 (``int8`` codes) or 16 (``int16``).
        scale: one float32 step per channel (the last axis), each > 0.
        zero_point: one integer per channel, in ``[qmin, qmax]``: the code of 0.0.

    Example:
        >>> q = SensorQuantizer.fit(np.array([[0.0, -2.0], [5.1, 2.0]], np.float32), 8)
        >>> q.dtype, [round(s, 4) for s in q.scale], q.zero_point
        ('int8', [0.02, 0.0157], (-128, -1))
        >>> q.codes(np.array([[5.1, -2.0], [0.01, 0.0]], np.float32)).tolist()
        [[127, -128], [-127, -1]]
        >>> q.centred(np.array([[5.1, -2.0]], np.float32)).tolist()
        [[255.0, -127.0]]
    """

    bits: int
    scale: tuple[float, ...]
    zero_point: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.bits not in SENSOR_BITS or not SENSOR_BITS[self.bits]:
            raise ConfigError(f"sensor quantiser bits must be 8 or 16, got {self.bits!r}.")
        scale = tuple(float(np.float32(s)) for s in self.scale)
        zero = tuple(int(z) for z in self.zero_point)
        if not scale or len(scale) != len(zero):
            raise ConfigError(
                f"a sensor quantiser needs one scale and one zero point per channel, got "
                f"{len(scale)} and {len(zero)}."
            )
        if not all(math.isfinite(s) and s > 0 for s in scale):
            raise ConfigError(f"sensor quantiser scales must be finite and > 0, got {scale}.")
        if not all(self.qmin <= z <= self.qmax for z in zero):
            raise ConfigError(
                f"sensor quantiser zero points must lie in [{self.qmin}, {self.qmax}], got {zero}."
            )
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "zero_point", zero)

    @property
    def dtype(self) -> str:
        """``"int8"`` or ``"int16"``."""
        return SENSOR_BITS[self.bits]

    @property
    def qmin(self) -> int:
        return -(2 ** (self.bits - 1))

    @property
    def qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1

    @property
    def channels(self) -> int:
        return len(self.scale)

    @property
    def max_centred(self) -> int:
        """The largest ``|code - zero_point|`` any channel can reach."""
        return max(max(self.qmax - z, z - self.qmin) for z in self.zero_point)

    @classmethod
    def fit(cls, x: np.ndarray, bits: int) -> SensorQuantizer:
        """The quantiser covering each channel's range in ``x`` (extended to hold 0.0).

        Args:
            x: training values ``(N, ..., C)``.
            bits: 8 or 16.

        Returns:
            Per channel: ``scale = (max - min) / (qmax - qmin)`` (1.0 for a channel that
            is always 0) and ``zero_point = qmin - round(min / scale)``.

        Raises:
            ConfigError: no sample, or a value that is not finite.
        """
        x = np.asarray(x, np.float32)
        if x.ndim < 2 or not len(x):
            raise ConfigError(f"Expected training values (N, ..., C) with N >= 1, got {x.shape}.")
        if not np.isfinite(x).all():
            raise ConfigError("The training sensor values hold NaN or infinity; clean them first.")
        flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
        lo = np.minimum(flat.min(axis=0), 0.0)
        hi = np.maximum(flat.max(axis=0), 0.0)
        qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        scale = ((hi - lo) / (qmax - qmin)).astype(np.float32)
        scale[scale <= 0] = 1.0
        zero = np.clip(qmin - np.rint(lo / scale.astype(np.float64)), qmin, qmax)
        return cls(bits, tuple(scale.tolist()), tuple(int(z) for z in zero))

    def _channel_arrays(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        if not shape or shape[-1] != self.channels:
            raise ConfigError(
                f"Expected sensor values whose last axis has the quantiser's {self.channels} "
                f"channels, got shape {shape}."
            )
        return np.asarray(self.scale, np.float32), np.asarray(self.zero_point, np.int64)

    def codes(self, x: np.ndarray) -> np.ndarray:
        """The integer codes of sensor values ``x`` (``int8`` or ``int16``).

        Raises:
            ConfigError: a value that is not finite, or the wrong number of channels.
        """
        x = np.asarray(x, np.float32)
        scale, zero = self._channel_arrays(x.shape)
        if not np.isfinite(x).all():
            raise ConfigError(
                "Sensor values hold NaN or infinity; a quantised device needs numbers."
            )
        t = np.floor((x / scale).astype(np.float32) + np.float32(0.5)).astype(np.float64)
        return np.clip(t + zero, self.qmin, self.qmax).astype(self.dtype)

    def centre(self, codes: np.ndarray) -> np.ndarray:
        """What the device tier's binary reads: ``code - zero_point`` as float32."""
        q = np.asarray(codes)
        _, zero = self._channel_arrays(q.shape)
        return (q.astype(np.int64) - zero).astype(np.float32)

    def centred(self, x: np.ndarray) -> np.ndarray:
        """``centre(codes(x))``: the binary's input for sensor values ``x``."""
        return self.centre(self.codes(x))

    def uncentre(self, centred: np.ndarray) -> np.ndarray:
        """The codes of binary inputs (the inverse of :meth:`centre`).

        Raises:
            ConfigError: a value that is not a code of this quantiser.
        """
        c = np.asarray(centred, np.float64)
        _, zero = self._channel_arrays(c.shape)
        q = np.rint(c).astype(np.int64) + zero
        inside = q.min(initial=self.qmax) >= self.qmin and q.max(initial=self.qmin) <= self.qmax
        if not (inside and np.array_equal(q - zero, c)):
            raise ConfigError("Expected centred sensor codes (integers within the code range).")
        return q.astype(self.dtype)

    def to_dict(self) -> dict[str, Any]:
        """The manifest's ``inputs[].quantizer``."""
        return {
            "bits": self.bits,
            "dtype": self.dtype,
            "scale": list(self.scale),
            "zero_point": list(self.zero_point),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SensorQuantizer:
        """The inverse of :meth:`to_dict`.

        Raises:
            FormatError: an entry that is not a valid quantiser.
        """
        try:
            made = cls(int(data["bits"]), tuple(data["scale"]), tuple(data["zero_point"]))
        except (KeyError, TypeError, ValueError) as err:
            raise FormatError(f"Invalid sensor quantizer {dict(data)!r}: {err}") from None
        if data.get("dtype", made.dtype) != made.dtype:
            raise FormatError(f"Invalid sensor quantizer: bits {made.bits} with {data['dtype']}.")
        return made


def sensor_quantizer(entry: Mapping[str, Any]) -> SensorQuantizer | None:
    """The quantiser of a manifest ``inputs[]`` entry, None when the sensor has none."""
    recorded = entry.get("quantizer")
    return None if recorded is None else SensorQuantizer.from_dict(recorded)


def sensor_values(
    quantizers: Sequence[SensorQuantizer | None], xs: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """Each device's sensor values as its tier's binary reads them: centred codes for a
    quantised device, the values themselves otherwise."""
    return [x if q is None else q.centred(x) for q, x in zip(quantizers, xs, strict=True)]
