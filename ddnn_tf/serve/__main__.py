"""``python -m ddnn_tf.serve``: the same as ``ddnn serve`` (:mod:`ddnn_tf.cli.serve`)."""

from ddnn_tf.cli import alias

alias("serve")
