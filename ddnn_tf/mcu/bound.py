"""The least flash and RAM a device tier's generated C can take, from its Topology alone.

Before a device tier is trained, its weights are unknown, and so is the exact size of its
C (:mod:`ddnn_tf.mcu.codegen` picks integer or float arithmetic per block from the trained
constants). What every variant must hold is known: the bit-packed weights, at least the
smallest per-channel constants either arithmetic stores, the scratch buffer between
blocks, and the working rows of a convolution on the stack. :func:`footprint_bound` adds
those up; the compiled object is never smaller (``tests/test_mcu.py`` checks it against
compiled tiers), so a tier whose bound exceeds a budget cannot fit it, and a
search can reject it without training.

Numpy-free: the standard library and the Topology.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ddnn_tf.core.topology import Topology

__all__ = ["Bound", "footprint_bound"]

# The fewest bytes of per-output constants each block kind stores, over both arithmetics
# (see codegen): a conv filter keeps an int16 threshold and a uint8 direction (3 B), or a
# float32 multiplier and offset (8 B); a dense unit an int16 threshold (2 B) or two floats;
# an int4 exit head 15 uint8 steps per class or two floats (8 B); a float32 head two floats.
_CONV_CONSTANTS = 3
_DENSE_CONSTANTS = 2
_HEAD_CONSTANTS = 8


@dataclass(frozen=True)
class Bound:
    """Lower bounds of a device tier's footprint, as :func:`ddnn_tf.mcu.build.footprint`
    measures it.

    Attributes:
        flash_bytes: packed weights + the smallest per-output constants.
        ram_bytes: the scratch buffer + the working rows of its widest convolution.
    """

    flash_bytes: int
    ram_bytes: int


def _packed(rows: int, bits: int) -> int:
    """Bytes of ``rows`` rows of ``bits`` sign bits, each row padded to whole bytes."""
    return rows * math.ceil(bits / 8)


def footprint_bound(topology: Topology, device: int) -> Bound:
    """The least flash and RAM device ``device``'s C tier can take.

    Args:
        topology: the hierarchy.
        device: the device index.

    Returns:
        A :class:`Bound`; the compiled tier's flash and RAM (static data + the entry
        point's stack) are at least these.

    Example:
        >>> t = Topology(input_shapes=[(10, 14, 1)] * 6, num_classes=10, summary_bits=4)
        >>> footprint_bound(t, 0)
        Bound(flash_bytes=277, ram_bytes=53)
    """
    shape = topology.input_shapes[device]
    flash = 0
    stack = 0
    outputs: list[int] = []  # bits of each block's output map
    if topology.is_image(device):
        h, w, c = shape
        f = topology.device_filters
        for _ in range(topology.device_conv_layers):
            flash += math.ceil(f * 9 * c / 8) + _CONV_CONSTANTS * f
            # one int16 conv row, the padded input row (a byte per value at least) and the
            # filter's unpacked weights, on the stack of the block's function
            stack = max(stack, 2 * w + (w + 2) * c + 9 * c)
            h, w, c = math.ceil(h / 2), math.ceil(w / 2), f
            outputs.append(h * w * c)
    else:
        k = shape[0]
        for _ in range(topology.device_conv_layers):
            u = topology.device_units
            flash += _packed(u, k) + _DENSE_CONSTANTS * u
            k = u
            outputs.append(u)
    if topology.has_local:
        flash += _packed(topology.num_classes, outputs[-1])
        flash += _HEAD_CONSTANTS * topology.num_classes
    halves = [max(outputs[:-1][p::2], default=0) for p in (0, 1)]
    scratch = sum(math.ceil(bits / 8) for bits in halves)
    return Bound(flash_bytes=flash, ram_bytes=scratch + stack)
