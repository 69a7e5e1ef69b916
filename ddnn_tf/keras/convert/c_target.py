"""The converter's microcontroller targets: ``c`` (C99 per device tier) and ``tflm``.

Both are made from the device tier's *portable* binary by :mod:`ddnn_tf.mcu` (the binary
is what the C must equal byte for byte, and its folded batch-norm constants are the
converter's, not numpy's), so the portable target is always converted with them. The
Keras side adds one check: the binary weights the C carries are the trained tier's own,
``ste_sign(kernel)`` layer by layer (up to a whole output's sign where batch norm with a
negative scale was folded into the weights).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ddnn_tf.core import manifest as mf
from ddnn_tf.core.graph import Tier
from ddnn_tf.keras.blocks import ThresholdDense
from ddnn_tf.keras.compat import keras
from ddnn_tf.keras.convert.export import export_models
from ddnn_tf.keras.model import DDNN
from ddnn_tf.mcu.export import mcu_files
from ddnn_tf.mcu.lower import lower_tier
from ddnn_tf.mcu.spec import ConvBlock, TierSpec

__all__ = ["add_mcu_targets", "check_weights"]


def _binary_kernels(model: keras.Model) -> list[np.ndarray]:
    """``ste_sign`` of every binary layer's kernel (and the +-1 kernel of a
    :class:`ThresholdDense`), in the model's layer order (+1 at 0)."""
    return [
        np.asarray(layer.kernel.numpy()) >= 0
        for layer in model.layers
        if getattr(layer, "kernel_quantizer", None) is not None or isinstance(layer, ThresholdDense)
    ]


def _same_up_to_row_sign(signs: np.ndarray, kernel_rows: np.ndarray) -> bool:
    rows = signs.reshape(signs.shape[0], -1)
    same = np.all(rows == kernel_rows, axis=1)
    flipped = np.all(rows != kernel_rows, axis=1)
    return bool(np.all(same | flipped))


def check_weights(spec: TierSpec, model: keras.Model) -> None:
    """Check that the lowered tier carries the Keras tier's binary weights.

    Raises:
        RuntimeError: the lowering read other weights than the model's (a bug).
    """
    kernels = _binary_kernels(model)
    layers = [*spec.blocks, *([spec.head] if spec.head is not None else [])]
    if len(kernels) != len(layers):
        raise RuntimeError(
            f"{spec.name}: {len(kernels)} binary layers in Keras, {len(layers)} in the binary."
        )
    for k, (kernel, layer) in enumerate(zip(kernels, layers)):
        if isinstance(layer, ConvBlock):  # (3, 3, C, F) -> (F, 3, 3, C); no folding
            ok = np.array_equal(np.moveaxis(kernel, -1, 0), layer.signs)
        else:  # dense (K, U) or whole-window conv (h, w, C, U) -> (U, K) in HWC order
            ok = _same_up_to_row_sign(
                layer.signs, np.moveaxis(kernel, -1, 0).reshape(layer.signs.shape[0], -1)
            )
        if not ok:
            raise RuntimeError(f"{spec.name}: binary layer {k} differs from the Keras kernel.")


def add_mcu_targets(
    ddnn: DDNN,
    plans: list[Tier],
    files: dict[str, bytes],
    tiers: dict[str, dict[str, Any]],
    *,
    scale: float | None,
    targets: tuple[str, ...],
) -> None:
    """Add the ``c`` / ``tflm`` files and manifest keys of every device tier, in place.

    Args:
        ddnn: the trained model (its device tiers as exported, its sensor quantisers).
        plans: the converted tiers.
        files: file name -> bytes of the conversion (holding the portable binaries).
        tiers: the manifest's tier entries, updated with ``c`` / ``tflm`` keys.
        scale: the uint8 scale of the sensors (None for float32 sensors).
        targets: some of :data:`ddnn_tf.core.vocab.MCU_TARGETS`.

    Raises:
        ConfigError: a device tier the C target cannot express.
        FileNotFoundError: the cross compiler is missing (``c``).
    """
    quantizers = ddnn.sensor_quantizers()
    for plan in plans:
        if plan.role != "device":
            continue
        portable_name = mf.tier_filename(plan.name, "portable")
        portable = files[portable_name]
        quantizer = quantizers[plan.device]
        sensor = {"scale": None} if quantizer else {"scale": scale}
        spec = lower_tier(plan.name, portable, quantizer=quantizer, **sensor)
        check_weights(spec, export_models(ddnn, plan)[0])
        new_files, keys = mcu_files(
            plan.name,
            portable,
            quantizer=quantizer,
            targets=targets,
            origin=portable_name,
            spec=spec,
            **sensor,
        )
        files.update(new_files)
        tiers[plan.name].update(keys)
