"""``python -m ddnn_tf.convert``: the same as ``ddnn convert`` (:mod:`ddnn_tf.cli.convert`)."""

if __name__ == "__main__":
    from ddnn_tf.cli import alias

    alias("convert")
