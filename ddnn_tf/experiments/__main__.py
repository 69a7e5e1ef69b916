"""``python -m ddnn_tf.experiments``: the same as ``ddnn experiments`` (:mod:`ddnn_tf.cli.experiments`)."""

from ddnn_tf.cli import alias

alias("experiments")
