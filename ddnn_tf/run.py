"""``python -m ddnn_tf.run``: the same as ``ddnn run`` (:mod:`ddnn_tf.cli.run`)."""

if __name__ == "__main__":
    from ddnn_tf.cli import alias

    alias("run")
