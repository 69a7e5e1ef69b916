"""Integer decisions that equal the reference binary's float32 arithmetic, and when not to use them.

Each block's output bit is a monotone function of an integer the C code computes exactly:

* the first ConvP block on ``uint8`` pixels: ``S = sum(+-u)`` over the 3x3 taps (the
  binary's value is ``float32`` pixels ``u * scale`` summed in float32);
* the first block on quantised int8 / int16 codes (:mod:`ddnn_tf.core.sensors`): the
  binary reads ``code - zero_point``, integers, so its sums are exact in any order: a
  ConvP block's decision is its batch norm's MUL and ADD on the exact ``S``, and a
  vector device's first FC block is exported with +-1 weights and half-integer biases
  (``acc >= 0`` is ``S >= -bias``), exact with or without fused multiply-adds;
* a ConvP block on a +-1 map: the number ``a`` of taps where input and weight agree (the
  binary's sum ``2a - n`` is exact in float32);
* FC blocks and the int4 exit head: the agreement count ``a`` (the binary sums
  ``bias +- scale`` in float32).

For every value the integer can take, the float32 result lies in an interval around the
exact value whose half-width is a rigorous bound on the rounding of *any* summation order
and of fused or separate multiply-adds (Higham's ``gamma_n``, doubled for margin). The
decision (``z >= 0``, or the int4 code ``clip(floor(z + 0.5), -8, 7)``) is evaluated with
float32 operations at both ends of the interval; being monotone, it is decided when both
ends agree. Where every value is decided, the block becomes integer thresholds. Where a
value lies within rounding of a step, the block keeps float32 arithmetic in the binary's
own order (``bias`` first, then the taps in HWC order; compiled with
``-ffp-contract=off``) and the :class:`Ambiguity` says where. The first FC block of a
vector device multiplies real inputs by folded scales: there the rounding depends on the
CPU running the reference (fused or not), so an undecided value is refused; on float32
sensors (no quantiser) it is refused outright, naming the layer and offering the
TensorFlow Lite Micro target.

Numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ddnn_tf.errors import ConfigError
from ddnn_tf.mcu.spec import ConvBlock, DenseBlock, Head, TierSpec

__all__ = ["Ambiguity", "BlockPlan", "TierPlan", "int4_code", "plan_tier"]

_U = 2.0**-24  # unit roundoff of float32
_F32 = np.float32
_MARGIN = 2.0


def _gamma(n: int) -> float:
    n = max(int(n), 1)
    return n * _U / (1.0 - n * _U)


def _down(x: np.ndarray) -> np.ndarray:
    """The largest float32 <= each float64 value."""
    r = x.astype(_F32)
    return np.where(r.astype(np.float64) > x, np.nextafter(r, _F32(-np.inf)), r)


def _up(x: np.ndarray) -> np.ndarray:
    """The smallest float32 >= each float64 value."""
    r = x.astype(_F32)
    return np.where(r.astype(np.float64) < x, np.nextafter(r, _F32(np.inf)), r)


def int4_code(acc: np.ndarray) -> np.ndarray:
    """The binary's int4 summary of float32 logits: ``clip(floor(acc + 0.5), -8, 7)``.

    The ``+ 0.5`` rounds in float32, as in the binary: ``0.49999997 + 0.5`` is exactly
    halfway between two float32 values and rounds to 1.0, so its code is 1.

    Example:
        >>> int4_code(np.array([-0.5, 0.49999997, 0.4999999, 7.6, -9.0], np.float32)).tolist()
        [0, 1, 0, 7, -8]
    """
    t = (np.asarray(acc, _F32) + _F32(0.5)).astype(_F32)
    return np.clip(np.floor(t), -8, 7).astype(np.int64)


@dataclass(frozen=True)
class Ambiguity:
    """A value whose float32 result lies within rounding of a decision step.

    Attributes:
        layer: ``conv1``, ``fc2``, ``head`` ...
        channel: the output channel (class for the head).
        value: the integer (``S`` or agreement count).
        exact: the exact real value of the binary's sum there.
        bound: the rounding bound used.
    """

    layer: str
    channel: int
    value: int
    exact: float
    bound: float

    def __str__(self) -> str:
        return (
            f"{self.layer} channel {self.channel}: integer {self.value} gives {self.exact:.9g} "
            f"+- {self.bound:.2g}, across a decision step"
        )


@dataclass(frozen=True, eq=False)
class BlockPlan:
    """How the C code computes one block (or the head).

    Attributes:
        layer: its C name (``conv1``, ``fc1``, ``head``).
        arithmetic: ``"integer"`` or ``"float"``.
        thresholds: integer mode: ``(channels,)`` thresholds for a block, ``(classes,
            15)`` for an int4 head (code = -8 + number of thresholds reached).
        up: integer mode of a ConvP block: per channel True when the bit is
            ``max >= threshold``, False when it is ``max <= threshold``.
        ambiguities: why a block kept float arithmetic.
    """

    layer: str
    arithmetic: str
    thresholds: np.ndarray | None = None
    up: np.ndarray | None = None
    ambiguities: tuple[Ambiguity, ...] = ()


@dataclass(frozen=True, eq=False)
class TierPlan:
    """The :class:`BlockPlan` of every block and of the head (None without one)."""

    blocks: tuple[BlockPlan, ...]
    head: BlockPlan | None

    @property
    def ambiguities(self) -> tuple[Ambiguity, ...]:
        plans = [*self.blocks, *([self.head] if self.head is not None else [])]
        return tuple(a for p in plans for a in p.ambiguities)


def _monotone_threshold(decided: np.ndarray, values: np.ndarray) -> tuple[int, bool] | None:
    """``(threshold, up)`` with ``bit = value >= t`` (up) or ``value <= t`` (down)."""
    if decided.all() or not decided.any():
        return (int(values[0]) if decided.all() else int(values[-1]) + 1), True
    steps = np.diff(decided.astype(np.int8))
    if np.all(steps >= 0):
        return int(values[np.argmax(decided)]), True
    if np.all(steps <= 0):
        return int(values[len(decided) - 1 - np.argmax(decided[::-1])]), False
    return None


def _bn_decision(v: np.ndarray, mul: _F32, add: _F32) -> np.ndarray:
    """``fl(fl(v * mul) + add) >= 0`` in float32, as the binary's MUL and ADD compute it."""
    z = (v.astype(_F32) * _F32(mul)).astype(_F32)
    return (z + _F32(add)).astype(_F32) >= 0


def _conv_real(block: ConvBlock, scale: _F32, layer: str) -> BlockPlan:
    n = block.taps
    values = np.arange(-255 * n, 255 * n + 1)
    sc = float(scale)
    exact = values * sc  # exact in float64 (12-bit integers times a float32)
    bound = _MARGIN * (_U + _gamma(n - 1) * (1 + _U)) * n * 255 * sc
    amb: list[Ambiguity] = []
    thresholds, ups = [], []
    if sc <= 2 * bound:  # the max-pool must see float values in the order of S
        amb.append(Ambiguity(layer, -1, 1, sc, bound))
    for f in range(block.signs.shape[0]):
        lo = _bn_decision(_down(exact - bound), block.mul[f], block.add[f])
        hi = _bn_decision(_up(exact + bound), block.mul[f], block.add[f])
        bad = np.flatnonzero(lo != hi)
        amb += [Ambiguity(layer, f, int(values[i]), float(exact[i]), bound) for i in bad[:3]]
        rule = _monotone_threshold(lo, values) if not len(bad) else None
        if rule is None and not len(bad):
            amb.append(Ambiguity(layer, f, 0, 0.0, bound))
        if rule is not None:
            thresholds.append(rule[0])
            ups.append(rule[1])
    if amb:
        return BlockPlan(layer, "float", ambiguities=tuple(amb))
    return BlockPlan(layer, "integer", np.array(thresholds, np.int64), np.array(ups, bool))


def _exact_conv(block: ConvBlock, sums: np.ndarray, keys: np.ndarray, layer: str) -> BlockPlan:
    """Integer thresholds of a ConvP block whose pooled value is exactly ``sums`` (float32
    holds them exactly) for each integer of ``keys``: the batch norm's MUL and ADD decide."""
    thresholds, ups = [], []
    for f in range(block.signs.shape[0]):
        rule = _monotone_threshold(_bn_decision(sums, block.mul[f], block.add[f]), keys)
        if rule is None:  # a float32 multiply-add is monotone: never happens
            raise AssertionError(f"{layer}: a non-monotone batch-norm decision")
        thresholds.append(rule[0])
        ups.append(rule[1])
    return BlockPlan(layer, "integer", np.array(thresholds, np.int64), np.array(ups, bool))


def _conv_binary(block: ConvBlock, layer: str) -> BlockPlan:
    n = block.taps
    agree = np.arange(n + 1)
    return _exact_conv(block, (2 * agree - n).astype(np.float64), agree, layer)


def _folded_intervals(n: int, scale: np.ndarray, bias: np.ndarray):
    """Per output: exact values ``bias + (2a - n) * scale`` for a = 0..n and their bound."""
    agree = np.arange(n + 1)
    s = scale.astype(np.float64)[:, None]
    b = bias.astype(np.float64)[:, None]
    exact = b + (2 * agree[None, :] - n) * s
    bound = _MARGIN * _gamma(n + 1) * (np.abs(b) + n * s) + 1e-12 * np.abs(exact)
    return agree, exact, bound


def _dense_binary(block: DenseBlock, layer: str) -> BlockPlan:
    agree, exact, bound = _folded_intervals(block.in_size, block.scale, block.bias)
    lo, hi = _down(exact - bound) >= 0, _up(exact + bound) >= 0
    amb = [
        Ambiguity(layer, int(u), int(a), float(exact[u, a]), float(bound[u, a]))
        for u, a in zip(*np.nonzero(lo != hi))
    ]
    if amb:
        return BlockPlan(layer, "float", ambiguities=tuple(amb[:8]))
    thresholds = [_monotone_threshold(lo[u], agree)[0] for u in range(block.units)]
    return BlockPlan(layer, "integer", np.array(thresholds, np.int64))


def _conv_codes(block: ConvBlock, peak: int, layer: str) -> BlockPlan:
    """The first ConvP block on integer codes: ``S = sum(+-(code - zero))`` is exact in
    float32 in any order (integers far below 2**24), so its decision is the binary's
    MUL and ADD applied to the exact ``S``."""
    n = block.taps
    reach = n * peak
    if reach >= 2**24:
        raise ConfigError(
            f"{layer}: sums of {n} codes up to {peak} leave float32's exact integers."
        )
    values = np.arange(-reach, reach + 1)
    return _exact_conv(block, values.astype(np.float64), values, layer)


def _dense_codes(block: DenseBlock, peak: int, layer: str, tier: str) -> BlockPlan:
    """The first FC block of a quantised vector device, as exported: +-1 weights and a
    half-integer bias per unit (``ddnn_tf.keras.blocks.ThresholdDense``). On integer
    codes every partial sum is then a multiple of 1/2 below 2**23, exact in float32 in any
    order and with or without fused multiply-adds, so ``acc >= 0`` is ``S >= -bias``."""
    k = block.in_size
    reach = k * peak
    bias = block.bias.astype(np.float64)
    why = None
    if reach >= 2**22:
        why = (
            f"sums {k} codes up to {peak}, which can leave float32's exact integers, so "
            "the reference's rounding depends on the CPU running it; quantise the sensor "
            "to int8 or give the device fewer inputs"
        )
    elif not np.all(block.scale == np.float32(1.0)):
        why = "has weights that are not +-1 (convert the model again with this ddnn_tf)"
    elif not np.all(np.abs(2 * bias) % 2 == 1) or reach + np.abs(bias).max() >= 2**23:
        why = "has biases that are not halves of odd integers within float32's exact range"
    if why is not None:
        raise ConfigError(
            f"{tier}: the C target cannot express this tier exactly: {layer}, the first FC "
            f"block on quantised codes, {why}; or take the TensorFlow Lite Micro target "
            "(tflm)."
        )
    return BlockPlan(layer, "integer", np.ceil(-bias).astype(np.int64))


def _dense_real(block: DenseBlock, scale: _F32 | None, layer: str, tier: str) -> BlockPlan:
    if scale is None:
        raise ConfigError(
            f"{tier}: the C target cannot express this tier exactly: {layer}, its first FC "
            "block, multiplies float32 sensor values by folded batch-norm scales, and the "
            "reference's rounding of those sums depends on the CPU running it (fused "
            "multiply-add or not), so no C equals it bit for bit. Quantise the sensor at the "
            "device (train with sensor_bits 8 or 16, what ddnn train does for real-valued "
            "sensors) or take the TensorFlow Lite Micro target (tflm)."
        )
    k = block.in_size
    values = np.arange(-255 * k, 255 * k + 1)
    sc = float(scale)
    thresholds = []
    for u in range(block.units):
        s, b = float(block.scale[u]), float(block.bias[u])
        exact = b + values * sc * s
        bound = _MARGIN * (2 * _U + _gamma(k + 1)) * (1 + 2 * _U) * (abs(b) + 255 * k * sc * s)
        bound += 1e-12 * (abs(b) + 255 * k * sc * s)
        lo, hi = _down(exact - bound) >= 0, _up(exact + bound) >= 0
        bad = np.flatnonzero(lo != hi)
        if len(bad):
            a = Ambiguity(layer, u, int(values[bad[0]]), float(exact[bad[0]]), bound)
            raise ConfigError(
                f"{tier}: the C target cannot express this tier exactly: {a} (the first FC "
                "block's float rounding depends on the CPU running the reference)."
            )
        thresholds.append(_monotone_threshold(lo, values)[0])
    return BlockPlan(layer, "integer", np.array(thresholds, np.int64))


def _head(head: Head) -> BlockPlan:
    if head.encoding == "float32":
        return BlockPlan("head", "float")  # the logits themselves: the binary's own sums
    agree, exact, bound = _folded_intervals(head.in_size, head.scale, head.bias)
    lo, hi = int4_code(_down(exact - bound)), int4_code(_up(exact + bound))
    amb = [
        Ambiguity("head", int(c), int(a), float(exact[c, a]), float(bound[c, a]))
        for c, a in zip(*np.nonzero(lo != hi))
    ]
    if amb:
        return BlockPlan("head", "float", ambiguities=tuple(amb[:8]))
    levels = np.arange(-7, 8)  # code = -8 + #{j : a >= T_j}; T_j = first a with code >= j
    reach = lo[:, :, None] >= levels[None, None, :]
    first = np.where(reach.any(axis=1), reach.argmax(axis=1), head.in_size + 1)
    return BlockPlan("head", "integer", first.astype(np.int64))


def plan_tier(spec: TierSpec) -> TierPlan:
    """Decide, block by block, integer thresholds or the binary's float32 arithmetic.

    Args:
        spec: the tier (from :func:`ddnn_tf.mcu.lower.lower_tier`).

    Returns:
        Its :class:`TierPlan`.

    Raises:
        ConfigError: a first FC block whose decision cannot be made exact.
    """
    plans = []
    for k, block in enumerate(spec.blocks):
        if isinstance(block, ConvBlock):
            layer = f"conv{k + 1}"
            if not block.real_input:
                plans.append(_conv_binary(block, layer))
            elif spec.sensor.coded:
                plans.append(_conv_codes(block, spec.sensor.max_centred, layer))
            elif spec.sensor.dtype == "uint8":
                plans.append(_conv_real(block, spec.sensor.scale, layer))
            else:  # float32 pixels times +-1 weights: exact products, the binary's order
                plans.append(BlockPlan(layer, "float"))
        else:
            layer = f"fc{k + 1}"
            if block.real_input and spec.sensor.coded:
                plans.append(_dense_codes(block, spec.sensor.max_centred, layer, spec.name))
            elif block.real_input:
                plans.append(_dense_real(block, spec.sensor.scale, layer, spec.name))
            else:
                plans.append(_dense_binary(block, layer))
    head = _head(spec.head) if spec.head is not None else None
    return TierPlan(tuple(plans), head)
