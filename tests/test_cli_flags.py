"""How a ``ddnn`` command reports what goes wrong (docs/errors.md): our errors and
``OSError`` as one ``error:`` line and status 2, a missing extra by its name, a bug with
its traceback."""

from __future__ import annotations

import pytest

from ddnn_tf.cli import flags
from ddnn_tf.errors import ConfigError, DeploymentError, FormatError


def _raising(exc: BaseException):
    def command(epochs: int = 1) -> None:
        """A command that fails."""
        raise exc

    return command


@pytest.mark.parametrize(
    "exc, line",
    [
        (ConfigError("expected one of a, b, got 'c'.", argument="epochs"), "--epochs: expected"),
        (ConfigError("expected one of a, b, got 'c'.", argument="other"), "other: expected"),
        (FormatError("manifest.json: corrupt."), "manifest.json: corrupt."),
        (DeploymentError("cloud did not start within 60 s."), "cloud did not start"),
        (FileNotFoundError("No manifest at x."), "No manifest at x."),
        (ModuleNotFoundError("No module named 'fastapi'", name="fastapi"), "ddnn_tf[serve]"),
        (ModuleNotFoundError("No module named 'tensorflow'", name="tensorflow"), "[train]"),
    ],
)
def test_user_errors_are_one_line_and_status_2(exc, line, capsys):
    with pytest.raises(SystemExit) as stopped:
        flags.run(_raising(exc), ["--epochs", "2"], "ddnn test")
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert line in err[0], err


@pytest.mark.parametrize(
    "exc",
    [
        KeyError("tiers"),
        TypeError("unsupported operand"),
        ValueError("a plain ValueError is not ours"),
        ModuleNotFoundError("No module named 'json5'", name="json5"),
    ],
)
def test_anything_else_is_a_bug_and_keeps_its_traceback(exc, capsys):
    with pytest.raises(type(exc)):
        flags.run(_raising(exc), [], "ddnn test")
    assert "error:" not in capsys.readouterr().err


def test_help_goes_to_stdout(capsys):
    flags.run(_raising(KeyError("never run")), ["--help"], "ddnn test")
    out, err = capsys.readouterr()
    assert "A command that fails." in out and "--epochs" in out and not err
