"""The package imports cleanly in a fresh interpreter, as a user would meet it."""

import subprocess
import sys

from conftest import ROOT


def _python(code: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    import os

    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
    )


def test_import_sets_legacy_keras_without_user_variables():
    res = _python(
        "import ddnn_tf, os; from ddnn_tf._keras import keras, lq; "
        "print(os.environ['TF_USE_LEGACY_KERAS'], keras.__version__.split('.')[0])"
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split()[-2:] == ["1", "2"]


def test_tensorflow_imported_first_with_keras3_is_a_clear_error():
    res = _python("import tensorflow; import ddnn_tf")
    assert res.returncode != 0
    assert (
        "TF_USE_LEGACY_KERAS=1" in res.stderr and "Import ddnn_tf before tensorflow" in res.stderr
    )


def test_device_side_modules_do_not_import_tensorflow():
    res = _python(
        "import sys, ddnn_tf, ddnn_tf.exits, ddnn_tf.comm, ddnn_tf.checks, ddnn_tf.topology, "
        "ddnn_tf.data; heavy = {'tensorflow', 'tf_keras', 'keras', 'larq'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "[]"
