"""``python -m ddnn_tf.cost``: the same as ``ddnn cost`` (:mod:`ddnn_tf.cli.cost`)."""

if __name__ == "__main__":
    from ddnn_tf.cli import alias

    alias("cost")
