"""The errors ddnn_tf raises on purpose.

Every error the toolkit raises for a user's input or environment derives from
:class:`DDNNError`; each subclass also derives from the builtin it refines, so code that
catches ``ValueError`` keeps working. The ``ddnn`` command line turns a :class:`DDNNError`
(or an ``OSError`` such as a missing file) into one ``error:`` line and exit status 2;
any other exception is a bug and keeps its traceback.

>>> err = ConfigError("expected a number in [0, 1], got 2.0.", argument="threshold")
>>> str(err)
'threshold: expected a number in [0, 1], got 2.0.'
>>> isinstance(err, ValueError), err.argument
(True, 'threshold')
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DDNNError",
    "DeploymentError",
    "FormatError",
    "EXTRAS",
    "extra_for",
]


class DDNNError(Exception):
    """Base class of the toolkit's own errors.

    Args:
        message: what was expected, what was received and how to fix it.
        argument: the parameter the message is about, when there is one; the message is
            prefixed with it unless it starts with it. The command line names it as the
            flag the user typed (``--threshold: ...``, ``--epochs must be ...``).
    """

    def __init__(self, message: str, *, argument: str | None = None) -> None:
        self.argument = argument
        named = argument is None or message.startswith(argument)
        super().__init__(message if named else f"{argument}: {message}")


class ConfigError(DDNNError, ValueError):
    """A bad configuration or argument: a flag, a topology, a threshold, a data set name."""


class FormatError(DDNNError, ValueError):
    """A corrupt or inconsistent file or message: a manifest, a tier binary, a run
    directory, a data file, a request body."""


class DeploymentError(DDNNError, RuntimeError):
    """A process, service, engine or emulator that did not start, answer or finish."""


#: The extra that installs each optional top-level module (``pip install 'ddnn_tf[EXTRA]'``).
EXTRAS = {
    "tensorflow": "train",
    "tf_keras": "train",
    "larq": "train",
    "larq_compute_engine": "train",
    "tensorflow_model_optimization": "train",
    "fastapi": "serve",
    "uvicorn": "serve",
    "httpx": "serve",
    "aiohttp": "serve",
    "orjson": "serve",
    "qrcode": "serve",
    "cryptography": "serve",
    "ray": "ray",
    "matplotlib": "experiments",
    "nbclient": "experiments",
    "paho": "serve",
    "tflite_micro": "mcu",
    "optuna": "search",
    "sqlalchemy": "search",
    "psycopg": "search",
}


def extra_for(module: str) -> str | None:
    """The extra that installs ``module`` (``"tensorflow.python"`` -> ``"train"``), if any.

    >>> extra_for("tensorflow"), extra_for("fastapi.routing"), extra_for("json")
    ('train', 'serve', None)
    """
    return EXTRAS.get(module.split(".")[0])
