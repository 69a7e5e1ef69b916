"""How a ``ddnn`` command reports what goes wrong (docs/errors.md): our errors and
``OSError`` as one ``error:`` line and status 2, a missing extra by its name, a bug with
its traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ddnn_tf.cli import flags
from ddnn_tf.errors import ConfigError, DeploymentError, FormatError

ROOT = Path(__file__).resolve().parents[1]


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


def test_parameters_a_message_names_become_flags(capsys):
    """Library messages name other parameters in backticks; the command line writes flags."""

    def command(out: str = "runs/x", overwrite: bool = False) -> None:
        """A command that refuses."""
        raise ConfigError("runs/x already exists; pass `overwrite` to replace it (`other`).")

    with pytest.raises(SystemExit):
        flags.run(command, ["--out", "runs/x"], "ddnn test")
    assert capsys.readouterr().err == (
        "error: runs/x already exists; pass --overwrite to replace it (`other`).\n"
    )


def test_help_goes_to_stdout(capsys):
    flags.run(_raising(KeyError("never run")), ["--help"], "ddnn test")
    out, err = capsys.readouterr()
    assert "A command that fails." in out and "--epochs" in out and not err


#: A command whose table is longer than any pipe's buffer, run through ``reader_may_leave``.
_LONG_TABLE = """
import sys
from ddnn_tf.cli import flags

def table() -> None:
    "Print a long table."
    for row in range(100_000):
        print(row, "0.8946", "9.7 B")

with flags.reader_may_leave():
    flags.run(table, sys.argv[1:], "ddnn table")
"""


@pytest.mark.parametrize(
    "args",
    [
        ["-c", "from ddnn_tf.cli import main; main()", "--help"],
        ["-c", "from ddnn_tf.cli import main; main()", "serve", "--help"],
        ["-m", "ddnn_tf.run", "--help"],
        ["-c", _LONG_TABLE],
    ],
    ids=["overview", "group", "command-help", "command-output"],
)
def test_a_reader_that_leaves_early_ends_the_command_quietly(args):
    """``ddnn run --help | head``: no BrokenPipeError traceback, SIGPIPE's status."""
    proc = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT
    )
    proc.stdout.close()  # the reader leaves before the command writes a byte
    _, err = proc.communicate(timeout=120)
    assert err.decode() == "" and proc.returncode == 141, (proc.returncode, err.decode())


def test_a_broken_pipe_elsewhere_is_not_hidden(capsys):
    """A socket's closed peer is not standard output's reader: one ``error:`` line."""
    with pytest.raises(SystemExit) as stopped:
        flags.run(_raising(BrokenPipeError(32, "Broken pipe")), [], "ddnn test")
    assert stopped.value.code == 2
    assert capsys.readouterr().err.startswith("error: [Errno 32] Broken pipe")


def test_text_flags_take_the_text_as_typed(capsys):
    """fire reads ``--token 007`` as the number 7, ``--path [1]`` as a list and ``--exits
    local,cloud`` as a tuple; a text flag gets the text typed (a list ended in a TypeError
    before, and a token lost its zeros)."""
    seen = []

    def command(path: str | None = None, token: str = "x") -> None:
        """A command with text flags."""
        seen.append((path, token))

    flags.run(command, ["--path", "[1]", "--token=007"], "ddnn test")
    flags.run(command, ["--path", "local,cloud", "--token", "1e5"], "ddnn test")
    assert seen == [("[1]", "007"), ("local,cloud", "1e5")]
    with pytest.raises(SystemExit) as stopped:
        flags.run(command, ["--path", "--token", "t"], "ddnn test")  # --path without text
    assert stopped.value.code == 2
    assert "--path: expected text (a name or a path), got True." in capsys.readouterr().err
