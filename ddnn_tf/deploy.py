"""``python -m ddnn_tf.deploy``: the same as ``ddnn deploy`` (:mod:`ddnn_tf.cli.deploy`)."""

if __name__ == "__main__":
    from ddnn_tf.cli import alias

    alias("deploy")
