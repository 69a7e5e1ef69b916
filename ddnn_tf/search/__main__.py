"""``python -m ddnn_tf.search``: the same as ``ddnn search`` (:mod:`ddnn_tf.cli.search`)."""

from ddnn_tf.cli import alias

alias("search")
