"""A mosquitto MQTT broker of our own on loopback, for ``deploy --transport mqtt`` and
the tests: a generated configuration with password authentication (a fresh random
password unless one is given), optionally a TLS listener, no persistence, and the log
in the broker's folder.

mosquitto comes from the distribution (Debian: ``apt-get install -y mosquitto``; the
Makefile's set-up installs it when run as root); it is started here as a child process,
never as a system service.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from ddnn_tf.errors import DeploymentError
from ddnn_tf.serve.mqtt import MqttSettings

__all__ = ["INSTALL_HINT", "Broker", "find_mosquitto"]

INSTALL_HINT = "install it with `apt-get install -y mosquitto` (Debian, as root)"
_START_S = 10.0


def find_mosquitto() -> tuple[str, str]:
    """The paths of ``mosquitto`` and ``mosquitto_passwd``.

    Raises:
        DeploymentError: mosquitto is not installed (the message says how to install it).
    """
    found = []
    for name in ("mosquitto", "mosquitto_passwd"):
        path = shutil.which(name) or next(
            (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
        )
        if path is None:
            raise DeploymentError(
                f"the MQTT broker is not installed ({name} not found): {INSTALL_HINT}, or "
                "give the URL of a running broker."
            )
        found.append(path)
    return found[0], found[1]


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Broker:
    """A mosquitto process with a generated configuration.

    Args:
        folder: where the configuration, password file and log are written (created).
        host: the interface to listen on (loopback by default).
        port: the port (0: a free one).
        username: the one user the broker accepts.
        password: its password (None: a fresh random one).
        tls: ``(certfile, keyfile)`` to listen with TLS (``mqtts://``); None: plain TCP.
        ca: the CA certificate clients verify the broker with (the certificate itself for
            a self-signed one).

    Example (needs mosquitto)::

        with Broker(tmp) as broker:
            settings = broker.settings   # mqtt://127.0.0.1:PORT, user ddnn, its password
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "ddnn",
        password: str | None = None,
        tls: tuple[str, str] | None = None,
        ca: str | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.host = host
        self.port = int(port) or _free_port(host)
        self.username = username
        self.password = password if password is not None else secrets.token_urlsafe(18)
        self.tls = tls
        self.ca = ca
        self.proc: subprocess.Popen | None = None
        self.log = self.folder / "mosquitto.log"

    @property
    def settings(self) -> MqttSettings:
        """How clients reach this broker."""
        scheme = "mqtts" if self.tls else "mqtt"
        return MqttSettings.from_url(
            f"{scheme}://{self.host}:{self.port}",
            username=self.username,
            password=self.password,
            ca=self.ca,
        )

    def _config(self, passwd: Path) -> str:
        lines = [
            f"user {pwd.getpwuid(os.getuid()).pw_name}",  # no switch to the mosquitto user
            "per_listener_settings false",
            "allow_anonymous false",
            f"password_file {passwd}",
            "persistence false",
            "max_queued_messages 100000",  # QoS 1 answers queued for a slow subscriber
            "set_tcp_nodelay true",  # rounds are small messages answered at once
            f"log_dest file {self.log}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            f"listener {self.port} {self.host}",
        ]
        if self.tls:
            cert, key = self.tls
            lines += [f"certfile {cert}", f"keyfile {key}"]
        return "\n".join(lines) + "\n"

    def start(self) -> Broker:
        """Start mosquitto and wait until it accepts connections.

        Raises:
            DeploymentError: mosquitto is missing, or exits or does not listen in 10 s.
        """
        mosquitto, mosquitto_passwd = find_mosquitto()
        self.folder.mkdir(parents=True, exist_ok=True)
        passwd = self.folder / "passwd"
        made = subprocess.run(
            [mosquitto_passwd, "-c", "-b", str(passwd), self.username, self.password],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if made.returncode:
            raise DeploymentError(f"mosquitto_passwd failed: {made.stderr.strip()[:200]}")
        conf = self.folder / "mosquitto.conf"
        conf.write_text(self._config(passwd))
        err = open(self.folder / "mosquitto.err", "wb")  # noqa: SIM115
        with err:
            self.proc = subprocess.Popen(
                [mosquitto, "-c", str(conf)],
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )
        deadline = time.monotonic() + _START_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DeploymentError(
                    f"mosquitto exited with status {self.proc.returncode}: {self._tail()}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), timeout=0.5),
            ):
                return self
            time.sleep(0.05)
        self.stop()
        raise DeploymentError(
            f"mosquitto did not listen on port {self.port} within {_START_S:g} s."
        )

    def _tail(self) -> str:
        text = ""
        for f in (self.folder / "mosquitto.err", self.log):
            with contextlib.suppress(OSError):
                text += f.read_text(errors="replace")
        lines = text.strip().splitlines()
        return " | ".join(lines[-3:]) if lines else "(no output)"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after 5 s)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *_) -> None:
        self.stop()
