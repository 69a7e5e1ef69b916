"""A static model of the instructions a generated device tier executes per sample.

The C of :mod:`ddnn_tf.mcu.codegen` is a fixed set of loop nests whose trip counts follow
from the tier's shapes alone. :func:`loop_counts` walks those nests as the generated code
does and counts how often each loop body runs (a conv block's taps and their inner
``x`` loop, its padded-row fills, its max-pool comparisons, an FC block's or the exit
head's bits and bytes ...), keyed by the block's arithmetic where the body differs (an
``int16`` add, a float32 add, which a Cortex-M0+ does in software, a ``get_bit``).
:func:`modelled_instructions` multiplies the counts by the instructions one pass of each
body costs on a core and sums them: ``instructions = sum(count_k * cost_k[core])``.

The per-body costs (``instruction_model.json`` beside this module) were fitted once per
core, by non-negative least squares, to exact counts of synthetic tiers on the emulated
boards (``scripts/fit_instruction_model.py``, :func:`ddnn_tf.mcu.instructions.count_instructions`);
the committed models' tiers are not among them, so their error (recorded in their
manifests) is a held-out check. The model needs no compiler, emulator or weights:
:func:`topology_instructions` prices a device tier from a
:class:`~ddnn_tf.core.topology.Topology` alone, as the hierarchy search does for a trial.

Numpy and the standard library only.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

from ddnn_tf.core.graph import device_tier
from ddnn_tf.core.vocab import CORES
from ddnn_tf.errors import ConfigError
from ddnn_tf.mcu.exact import BlockPlan, TierPlan, plan_tier
from ddnn_tf.mcu.spec import ConvBlock, DenseBlock, Head, Sensor, TierSpec

__all__ = [
    "CORES",
    "block_kind",
    "loop_counts",
    "model_coefficients",
    "modelled_instructions",
    "topology_instructions",
    "topology_spec",
]

MODEL_FILE = "instruction_model.json"
#: Pool window and stride of a device ConvP block (``ddnn_tf.keras.blocks.POOL``).
_DEVICE_POOL = (3, 2)


def block_kind(block, plan: BlockPlan, sensor: Sensor) -> str:
    """The arithmetic of a block's loop bodies: ``u8int``, ``u8float``, ``f32float`` (a
    float32 sensor), or ``bin`` (a +-1 input, integer); an FC block's ``bin_float`` when
    its sums stay float32."""
    if not block.real_input:
        return "bin" if plan.arithmetic == "integer" else "bin_float"
    if sensor.dtype == "float32":
        return "f32float"
    return "u8int" if plan.arithmetic == "integer" else "u8float"


def _pool(size: int, stride: int, n: int) -> tuple[int, int]:
    out = -(-n // stride)
    return out, max((out - 1) * stride + size - n, 0) // 2


def _conv(block: ConvBlock, kind: str, c: Counter) -> None:
    h, w, ch = block.in_shape
    f = block.signs.shape[0]
    size, stride = block.pool
    ho, pad_y = _pool(size, stride, h)
    wo, pad_x = _pool(size, stride, w)
    rows = valid = border = 0
    pool_y = pool_x = 0
    nxt = 0
    for oy in range(ho):
        y0, y1 = max(oy * stride - pad_y, 0), min(oy * stride - pad_y + size - 1, h - 1)
        while nxt <= y1:
            rows += 1
            inside = sum(0 <= nxt + ky - 1 < h for ky in range(3))
            valid += inside
            border += 3 - inside
            nxt += 1
        for ox in range(wo):
            x0, x1 = max(ox * stride - pad_x, 0), min(ox * stride - pad_x + size - 1, w - 1)
            pool_y += y1 - y0 + 1
            pool_x += (y1 - y0 + 1) * (x1 - x0 + 1)
    shared = "conv"
    c[f"{shared}.filter"] += f
    c[f"{shared}.wbit"] += f * 9 * ch
    c[f"{shared}.pool_row"] += f * ho
    c[f"{shared}.row"] += f * rows
    c[f"{shared}.row_x"] += f * rows * w
    c[f"{shared}.ky_valid"] += f * valid
    c[f"{shared}.ky_border"] += f * border
    c[f"{shared}.pad_c"] += f * valid * ch
    c[f"{shared}.tap"] += f * valid * 3 * ch
    c[f"{shared}.pool_y"] += f * pool_y
    c[f"{shared}.clear"] += (math.prod(block.out_shape) + 7) // 8
    c[f"conv_{kind}.pad_x"] += f * valid * ch * w
    c[f"conv_{kind}.tap_x"] += f * valid * 3 * ch * w
    c[f"conv_{kind}.pool_x"] += f * pool_x
    c[f"conv_{kind}.pool_out"] += f * ho * wo
    if kind == "bin":
        c["conv_bin.border_tap"] += f * border * 3 * ch
        c["conv_bin.border_x"] += f * border * 3 * ch * w


def _dense(block: DenseBlock, kind: str, c: Counter) -> None:
    nbytes = (block.in_size + 7) // 8
    c["dense.unit"] += block.units
    c["dense.clear"] += (block.units + 7) // 8
    if kind == "u8int":
        c["dense_u8int.k"] += block.units * block.in_size
    elif kind == "bin":
        c["dense_bin.byte"] += block.units * nbytes
    else:
        c["dense_float.byte"] += block.units * nbytes
        c["dense_float.bit"] += block.units * block.in_size


def _head(head: Head, plan: BlockPlan, c: Counter) -> None:
    nbytes = (head.in_size + 7) // 8
    if plan.arithmetic == "integer":
        c["head_int.class"] += head.classes
        c["head_int.byte"] += head.classes * nbytes
        c["head_int.threshold"] += head.classes * 15
        return
    kind = "head_float32" if head.encoding == "float32" else "head_int4float"
    c[f"{kind}.class"] += head.classes
    c["head_float.byte"] += head.classes * nbytes
    c["head_float.bit"] += head.classes * head.in_size


def loop_counts(spec: TierSpec, plan: TierPlan | None = None) -> dict[str, int]:
    """How often each loop body of the tier's generated C runs per sample.

    Args:
        spec: the tier.
        plan: its arithmetic per block (default :func:`~ddnn_tf.mcu.exact.plan_tier`).

    Returns:
        ``{"conv.tap": ..., "conv_u8int.tap_x": ..., "head_float.bit": ..., "tier.call": 1}``.

    Example:
        >>> from ddnn_tf.mcu.lower import lower_tier
        >>> data = open("tflite_models/fmnist6_mlpcc/device_0.tflite", "rb").read()
        >>> counts = loop_counts(lower_tier("device_0", data, scale=1 / 255))
        >>> counts["conv_u8int.tap_x"], counts["head_float.bit"]  # 4 x 28 rows x 3 x 14; 10 x 140
        (4704, 1400)
    """
    plan = plan or plan_tier(spec)
    c: Counter = Counter({"tier.call": 1})
    for block, bplan in zip(spec.blocks, plan.blocks):
        kind = block_kind(block, bplan, spec.sensor)
        (_conv if isinstance(block, ConvBlock) else _dense)(block, kind, c)
    if spec.head is not None:
        _head(spec.head, plan.head, c)
    return dict(sorted(c.items()))


@cache
def _model(path: str | None = None) -> dict:
    if path is None:
        text = (resources.files("ddnn_tf.mcu") / MODEL_FILE).read_text()
    else:
        text = Path(path).read_text()
    return json.loads(text)


def model_coefficients(core: str) -> dict[str, float]:
    """Instructions per pass of each loop body on ``core`` (the fitted model).

    Raises:
        ConfigError: an unknown core.
    """
    cores = _model()["cores"]
    if core not in cores:
        raise ConfigError(
            f"expected a core among {', '.join(cores)}, got {core!r}.", argument="core"
        )
    return cores[core]["coefficients"]


def modelled_instructions(
    spec: TierSpec, plan: TierPlan | None = None, *, core: str = "cortex-m4f"
) -> float:
    """Instructions per sample of the tier's generated C on ``core``, without running it.

    Args:
        spec: the tier.
        plan: its arithmetic (default :func:`~ddnn_tf.mcu.exact.plan_tier`).
        core: ``cortex-m4f`` or ``cortex-m0plus``.

    Returns:
        ``sum(count * cost)`` over :func:`loop_counts`.

    Raises:
        ConfigError: an unknown core, or a loop body the fitted model has no cost for.
    """
    coefficients = model_coefficients(core)
    counts = loop_counts(spec, plan)
    missing = sorted(k for k in counts if k not in coefficients)
    if missing:
        raise ConfigError(
            f"the instruction model has no cost for {missing} on {core}; fit it again "
            "(scripts/fit_instruction_model.py)."
        )
    return float(sum(n * coefficients[k] for k, n in counts.items()))


def topology_spec(topology, device: int = 0, *, sensor_dtype: str = "uint8") -> TierSpec:
    """A device tier's shapes from a :class:`~ddnn_tf.core.topology.Topology` (weights all
    zero): enough for :func:`loop_counts`, with no model trained or converted."""
    shape = tuple(topology.input_shapes[device])
    shape = (*shape, 1) if len(shape) == 2 else shape
    sensor = Sensor(shape, sensor_dtype, np.float32(1 / 255) if sensor_dtype == "uint8" else None)
    blocks = []
    if len(shape) == 3:
        h, w, ch = shape
        f = topology.device_filters
        for k in range(topology.device_conv_layers):
            size, stride = _DEVICE_POOL
            out = (_pool(size, stride, h)[0], _pool(size, stride, w)[0], f)
            blocks.append(
                ConvBlock(
                    (h, w, ch),
                    out,
                    k == 0,
                    np.zeros((f, 3, 3, ch), bool),
                    (size, stride),
                    np.ones(f, np.float32),
                    np.zeros(f, np.float32),
                )
            )
            h, w, ch = out
        in_size = h * w * ch
    else:
        in_size, units = shape[0], topology.device_units
        for k in range(topology.device_conv_layers):
            blocks.append(
                DenseBlock(
                    in_size,
                    units,
                    k == 0,
                    np.zeros((units, in_size), bool),
                    np.ones(units, np.float32),
                    np.zeros(units, np.float32),
                )
            )
            in_size = units
    head = None
    if topology.has_local:
        n = topology.num_classes
        head = Head(
            in_size,
            n,
            np.zeros((n, in_size), bool),
            np.ones(n, np.float32),
            np.zeros(n, np.float32),
            topology.summary_encoding,
        )
    return TierSpec(device_tier(device), sensor, tuple(blocks), head)


def topology_instructions(
    topology, *, core: str = "cortex-m4f", sensor_dtype: str = "uint8", head: str = "float"
) -> list[float]:
    """Modelled instructions per sample of every device tier of a topology, on ``core``.

    The arithmetic of each block is what :func:`~ddnn_tf.mcu.exact.plan_tier` usually
    picks: integer for ConvP and FC blocks on ``uint8`` sensors and on +-1 maps, float32
    for a float32 sensor, and the exit head's float32 sums (``head="integer"``: the int4
    head's thresholds, which the plan takes when no value lies within rounding of a step).

    Args:
        topology: the hierarchy.
        core: ``cortex-m4f`` or ``cortex-m0plus``.
        sensor_dtype: what the sensors send, ``uint8`` (a dataset with an input scale)
            or ``float32``.
        head: ``float`` or ``integer``.

    Returns:
        One number per device.

    Example:
        >>> from ddnn_tf.core.topology import Topology
        >>> t = Topology(input_shapes=[(10, 14, 1)] * 6, num_classes=10, summary_bits=4)
        >>> n = topology_instructions(t)
        >>> len(n), 70_000 < n[0] < 95_000
        (6, True)
    """
    if sensor_dtype not in ("uint8", "float32"):
        raise ConfigError(
            f"expected uint8 or float32, got {sensor_dtype!r}.", argument="sensor_dtype"
        )
    out = []
    for i in range(topology.num_devices):
        spec = topology_spec(topology, i, sensor_dtype=sensor_dtype)
        plans = []
        for k, block in enumerate(spec.blocks):
            integer = not (block.real_input and sensor_dtype == "float32")
            name = f"conv{k + 1}" if isinstance(block, ConvBlock) else f"fc{k + 1}"
            plans.append(BlockPlan(name, "integer" if integer else "float"))
        hplan = None
        if spec.head is not None:
            int_head = head == "integer" and spec.head.encoding == "int4"
            hplan = BlockPlan("head", "integer" if int_head else "float")
        out.append(modelled_instructions(spec, TierPlan(tuple(plans), hplan), core=core))
    return out
