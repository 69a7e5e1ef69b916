"""``python -m ddnn_tf.train``: the same as ``ddnn train`` (:mod:`ddnn_tf.cli.train`)."""

if __name__ == "__main__":
    from ddnn_tf.cli import alias

    alias("train")
