"""``python -m ddnn_tf.mcu``: the same as ``ddnn mcu`` (:mod:`ddnn_tf.cli.mcu`)."""

from ddnn_tf.cli import alias

alias("mcu")
