"""``python -m ddnn_tf.evaluate``: the same as ``ddnn evaluate`` (:mod:`ddnn_tf.cli.evaluate`)."""

if __name__ == "__main__":
    from ddnn_tf.cli import alias

    alias("evaluate")
