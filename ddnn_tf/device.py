"""``python -m ddnn_tf.device``: the same as ``ddnn device`` (:mod:`ddnn_tf.cli.device`)."""

if __name__ == "__main__":
    from ddnn_tf.cli import alias

    alias("device")
