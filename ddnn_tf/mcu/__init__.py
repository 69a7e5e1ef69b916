"""End devices on a microcontroller: device tiers as C, on an emulated Cortex-M board,
and in TensorFlow Lite Micro.

A device tier's portable binary is read into a numpy description
(:func:`~ddnn_tf.mcu.lower.lower_tier`), each block is made integer where that is exact
(:func:`~ddnn_tf.mcu.exact.plan_tier`), and C99 is generated
(:func:`~ddnn_tf.mcu.codegen.generate_c`): bit-packed weights, XNOR-popcounts, the wire
messages of the manifest, no heap and no libc. :mod:`~ddnn_tf.mcu.build` compiles it for
a board (``arm-none-eabi-gcc`` + the firmware harness in ``firmware/``, or the host
``gcc``) and runs it (``qemu-system-arm``); :func:`check_model` compares every device's
bytes with ai-edge-litert's, and :mod:`~ddnn_tf.mcu.tflm` makes the TensorFlow Lite Micro
variant. ``ddnn mcu MODEL_DIR --data fmnist6 [--board B]`` (:mod:`ddnn_tf.cli.mcu`) is the
command.

Never imports TensorFlow, Larq or the Keras side.
"""

from ddnn_tf.mcu.boards import BOARDS, board
from ddnn_tf.mcu.check import check_model, format_report
from ddnn_tf.mcu.codegen import CSources, generate_c
from ddnn_tf.mcu.exact import plan_tier
from ddnn_tf.mcu.export import MCU_TARGETS, add_targets, mcu_files
from ddnn_tf.mcu.lower import lower_tier
from ddnn_tf.mcu.tflm import tflm_variant

__all__ = [
    "BOARDS",
    "CSources",
    "MCU_TARGETS",
    "add_targets",
    "board",
    "check_model",
    "format_report",
    "generate_c",
    "lower_tier",
    "mcu_files",
    "plan_tier",
    "tflm_variant",
]
