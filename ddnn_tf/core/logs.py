"""TensorFlow's C++ start-up lines kept off the terminal (standard library only).

TensorFlow and LiteRT log through absl straight to file descriptor 2 (oneDNN notices,
cudart and cuInit lines, "Created TensorFlow Lite delegate"); ``TF_CPP_MIN_LOG_LEVEL``
does not reach all of them. :func:`native_logs_hidden` filters them while Python's own
``sys.stderr`` keeps working. ``DDNN_TF_LOG=debug`` shows everything.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["native_logs_hidden"]

# TensorFlow / absl C++ log lines: "I0000 00:00:1796015091.872021    6948 port.cc:153] ..."
_NATIVE_LOG = re.compile(
    rb"^(?:[IWE]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\] "
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|INFO: Created TensorFlow Lite )"
)


def _debug() -> bool:
    return os.environ.get("DDNN_TF_LOG", "").strip().lower() == "debug"


_terminal = None  # Python's stderr on a lasting copy of descriptor 2 (see below)


def _terminal_copy(python_stderr):
    """A text stream on a copy of descriptor 2, made once and never closed.

    Logging handlers created while TensorFlow imports (absl's, ``tf.get_logger()``'s) keep
    the ``sys.stderr`` they saw; this copy stays valid for the life of the process.
    """
    global _terminal
    if _terminal is None:
        _terminal = open(  # noqa: SIM115  (lives as long as the process)
            os.dup(2),
            "w",
            encoding=python_stderr.encoding,
            errors=python_stderr.errors,
            buffering=1,
        )
    return _terminal


@contextmanager
def native_logs_hidden() -> Iterator[None]:
    """Keep TensorFlow's C++ log lines off stderr while the block runs.

    TensorFlow's C++ runtime logs through absl straight to file descriptor 2 (before
    absl is initialised nothing filters them; ``TF_CPP_MIN_LOG_LEVEL`` does not reach
    them). Inside the block, descriptor 2 goes to a temporary file while Python's own
    ``sys.stderr`` keeps writing to the terminal; at the end the file's lines are
    replayed except the C++ log lines (``I0000 ... port.cc:153] ...``, absl's "before
    InitializeLog" notice, LiteRT's delegate notice). ``DDNN_TF_LOG=debug`` turns this off.
    """
    if _debug():
        yield
        return
    try:
        sys.stderr.flush()
        own_stderr = sys.stderr.fileno() == 2
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):  # no real descriptor 2 (embedded, captured)
        own_stderr, saved = False, None
    if saved is None:
        yield
        return
    sink = tempfile.TemporaryFile()
    python_stderr = sys.stderr
    if own_stderr:
        sys.stderr = _terminal_copy(python_stderr)
    os.dup2(sink.fileno(), 2)
    try:
        yield
    finally:
        if own_stderr:
            sys.stderr.flush()
            sys.stderr = python_stderr
        os.dup2(saved, 2)
        os.close(saved)
        sink.seek(0)
        kept = [line for line in sink if not _NATIVE_LOG.match(line)]
        sink.close()
        if kept:
            python_stderr.flush()
            os.write(2, b"".join(kept))
