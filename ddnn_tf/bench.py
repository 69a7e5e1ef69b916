"""``python -m ddnn_tf.bench``: the same as ``ddnn bench`` (:mod:`ddnn_tf.cli.bench`)."""

if __name__ == "__main__":
    from ddnn_tf.cli import alias

    alias("bench")
