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


def test_keras_layer_sets_legacy_keras_without_user_variables():
    res = _python(
        "import os, ddnn_tf; assert 'TF_USE_LEGACY_KERAS' not in os.environ; "
        "from ddnn_tf.keras.compat import keras, lq; "
        "print(os.environ['TF_USE_LEGACY_KERAS'], keras.__version__.split('.')[0])"
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split()[-2:] == ["1", "2"]


def test_tensorflow_imported_first_with_keras3_is_a_clear_error():
    res = _python("import tensorflow; import ddnn_tf.keras")
    assert res.returncode != 0
    assert (
        "TF_USE_LEGACY_KERAS=1" in res.stderr
        and "Import ddnn_tf.keras before tensorflow" in res.stderr
    )


def test_runtime_imports_into_a_process_that_loaded_tensorflow_first():
    res = _python(
        "import tensorflow, ddnn_tf, ddnn_tf.runtime, ddnn_tf.serve.wire, ddnn_tf.cli; print('ok')"
    )
    assert res.returncode == 0 and res.stdout.split()[-1] == "ok", res.stderr[-2000:]


def test_tensorflow_free_layers_import_no_tensorflow():
    """Every module of core, data, runtime, mcu and the CLI shells, and a data set loaded,
    in one fresh interpreter."""
    res = _python(
        "import importlib, pkgutil, sys, ddnn_tf\n"
        "for pkg in ('core', 'data', 'runtime', 'mcu'):\n"
        "    p = importlib.import_module('ddnn_tf.' + pkg)\n"
        "    for m in pkgutil.walk_packages(p.__path__, p.__name__ + '.'):\n"
        "        if not m.name.endswith('__main__'):\n"
        "            importlib.import_module(m.name)\n"
        "import ddnn_tf.cli, ddnn_tf.errors\n"
        "from ddnn_tf.cli import COMMANDS, _target\n"
        "[_target(name) for name in COMMANDS]\n"
        "ddnn_tf.data.load_dataset('synthetic', n_samples=50)\n"
        "heavy = {'tensorflow', 'tf_keras', 'keras', 'larq', 'fastapi', 'ray'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "[]"
