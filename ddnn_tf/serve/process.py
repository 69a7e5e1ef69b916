"""Child service processes for ``deploy``, the benchmarks and the tests."""

from __future__ import annotations

import contextlib
import json as _json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ddnn_tf.errors import DeploymentError

__all__ = ["READY_TIMEOUT_S", "ServiceProcess", "wait_ready"]

READY_TIMEOUT_S = 120.0


class ServiceProcess:
    """A child ``python`` process with its output in files (no pipe can fill up and block it).

    Args:
        name: a name for messages and the output files.
        args: arguments after ``python``.
        folder: where ``NAME.out`` / ``NAME.err`` are written.
        env: the environment.
    """

    def __init__(self, name: str, args: list[str], folder: Path, env: dict[str, str]) -> None:
        self.name = name
        self.out = folder / f"{name}.out"
        self.err = folder / f"{name}.err"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, *args],
                stdout=out,
                stderr=err,
                env=env,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self) -> str:
        text = self.err.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-3:]) if text else "(no output)"

    def url(self, deadline: float) -> str:
        while time.monotonic() < deadline:
            for line in self.out.read_text(errors="replace").splitlines():
                if line.startswith('{"url"'):
                    return _json.loads(line)["url"]
            if not self.alive():
                raise DeploymentError(
                    f"{self.name} exited with status {self.proc.returncode}: {self.tail()}"
                )
            time.sleep(0.05)
        raise DeploymentError(f"{self.name} did not start within {READY_TIMEOUT_S:g} s.")

    def stop(self, sig: int = signal.SIGTERM, grace: float = 15.0) -> None:
        """Signal the process itself (it stops its own children, as Ray's driver does),
        then kill whatever is left of its process group after ``grace`` seconds."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)

    def records(self) -> list[dict]:
        out = []
        for line in self.out.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(_json.loads(line))
                except ValueError:
                    pass  # a line cut by a kill
        return out


def wait_ready(client, url: str, proc: ServiceProcess, deadline: float) -> None:
    """Poll ``url/readyz`` until 200, the process exits (ValueError) or ``deadline``."""
    import httpx

    while time.monotonic() < deadline:
        if not proc.alive():
            raise DeploymentError(
                f"{proc.name} exited with status {proc.proc.returncode}: {proc.tail()}"
            )
        try:
            if client.get(f"{url}/readyz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise DeploymentError(f"{proc.name} at {url} was not ready within {READY_TIMEOUT_S:g} s.")
