"""A mosquitto MQTT broker where nobody is trusted: one user and password per client and a
topic ACL (:data:`ROLES`, the table on docs/protocol.md, *MQTT transport*), refusing
anonymous clients and packets larger than a message body may be plus its envelope; TLS
is optional. :func:`write_broker` writes its files, :func:`model_broker` them for ``ddnn
broker``, and :class:`Broker` runs one on loopback (``ddnn deploy --transport mqtt``, the
tests) as a child process, never as a system service. mosquitto comes from the
distribution (Debian: ``apt-get install -y mosquitto``, ``make broker``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ddnn_tf.errors import DeploymentError
from ddnn_tf.serve.mqtt import ENVELOPE_BYTES, PASSWORD_ENV, MqttSettings, default_topic_root
from ddnn_tf.serve.settings import DEFAULT_MAX_BODY_BYTES, free_port

__all__ = [
    "ROLES",
    "Broker",
    "BrokerClient",
    "find_mosquitto",
    "model_broker",
    "plan_clients",
    "write_broker",
]

#: The kinds of broker client, and what each may read and write under its topic root R.
ROLES = {
    "gateway": ("read R/up/#", "write R/down/#", "write R/answers", "readwrite R/status"),
    "device": ("write R/up/K/#", "read R/down/K/#", "read R/status"),
    "answers": ("read R/answers", "read R/status"),
}
_START_S = 10.0


@dataclass(frozen=True)
class BrokerClient:
    """One client of the broker: its user name (also its client id), password, role
    (:data:`ROLES`), its gateway's topic root and, for role ``device``, its index."""

    user: str
    password: str
    role: str
    root: str
    device: int | None = None

    def acl(self) -> str:
        """This client's lines of the mosquitto ACL file."""
        rules = [
            r.replace("R/", f"{self.root}/").replace("/K/", f"/{self.device}/")
            for r in ROLES[self.role]
        ]
        return "\n".join([f"user {self.user}", *(f"topic {r}" for r in rules)]) + "\n"


def plan_clients(roots: Sequence[str], devices: int) -> list[BrokerClient]:
    """The clients of one gateway per topic root, each with ``devices`` devices and one
    answers reader, with fresh random passwords. With several roots (sites), the user
    names of root ``k`` start with ``site<k>-``.

    >>> [c.user for c in plan_clients(["ddnn/m"], 2)]
    ['gateway', 'device0', 'device1', 'answers']
    """
    out = []
    for k, root in enumerate(roots):
        prefix = f"site{k}-" if len(roots) > 1 else ""
        roles = [("gateway", None), *(("device", d) for d in range(devices)), ("answers", None)]
        for role, d in roles:
            user = prefix + (f"device{d}" if role == "device" else role)
            out.append(BrokerClient(user, secrets.token_urlsafe(18), role, root, d))
    return out


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
                f"the MQTT broker is not installed ({name} not found): install it with "
                "`apt-get install -y mosquitto` (Debian, as root), or give the URL of a "
                "running broker."
            )
        found.append(path)
    return found[0], found[1]


def _url(user: str, host: str, port: int, tls) -> str:
    return MqttSettings(host, port, bool(tls), user).url


def _private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def write_broker(
    folder: str | Path,
    clients: Sequence[BrokerClient],
    *,
    host: str = "127.0.0.1",
    port: int = 1883,
    tls: tuple[str, str] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    final: str | Path | None = None,
) -> Path:
    """Write a broker's files into ``folder``: ``mosquitto.conf``, ``passwd`` (hashed by
    ``mosquitto_passwd``), ``acl``, and ``clients/<user>.env`` per client (its password
    as ``DDNN_TF_MQTT_PASSWORD=...``, readable by its owner only).

    Args:
        final: where the folder will be once written (the configuration names its files
            there); default ``folder``.

    Returns:
        The configuration file.

    Raises:
        DeploymentError: mosquitto is missing, or ``mosquitto_passwd`` failed.
    """
    folder = Path(folder)
    there = Path(final or folder).resolve()
    (folder / "clients").mkdir(parents=True, exist_ok=True, mode=0o700)
    _, mosquitto_passwd = find_mosquitto()
    passwd, acl = folder / "passwd", folder / "acl"
    _private(passwd, "".join(f"{c.user}:{c.password}\n" for c in clients))
    made = subprocess.run(
        [mosquitto_passwd, "-U", str(passwd)], capture_output=True, text=True, timeout=60
    )
    if made.returncode:
        raise DeploymentError(f"mosquitto_passwd failed: {made.stderr.strip()[:200]}")
    acl.write_text("\n".join(c.acl() for c in clients))
    for c in clients:
        head = f"# {c.role} {_url(c.user, host, port, tls)}, topic root {c.root}"
        _private(folder / "clients" / f"{c.user}.env", f"{head}\n{PASSWORD_ENV}={c.password}\n")
    lines = [
        f"user {pwd.getpwuid(os.getuid()).pw_name}",  # no switch to the mosquitto user
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {there / 'passwd'}",
        f"acl_file {there / 'acl'}",
        f"max_packet_size {int(max_body_bytes) + ENVELOPE_BYTES}",
        "persistence false",
        "max_queued_messages 100000",  # QoS 1 answers queued for a slow subscriber
        "set_tcp_nodelay true",  # rounds are small messages answered at once
        f"log_dest file {there / 'mosquitto.log'}",
        *(f"log_type {t}" for t in ("error", "warning", "notice")),
        f"listener {port} {host}",
        "use_username_as_clientid true",  # nobody takes over another client's session
    ]
    if tls:
        lines += [f"certfile {tls[0]}", f"keyfile {tls[1]}"]
    conf = folder / "mosquitto.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def model_broker(
    model: str | Path,
    out: str | Path,
    *,
    devices: int | None = None,
    topic_root: str | None = None,
    host: str = "127.0.0.1",
    port: int = 1883,
    tls: tuple[str, str] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    overwrite: bool = False,
) -> dict:
    """``ddnn broker``: the files of a broker for a model's gateway, its devices and an
    answers reader (:func:`write_broker`), written into ``out`` all at once. The arguments
    are the command's (:func:`ddnn_tf.cli.broker.broker`), ``tls`` its ``(certfile,
    keyfile)``.

    Returns:
        ``{"config", "root", "clients": [{"user", "role", "url", "env"}]}``.

    Raises:
        ConfigError: a bad option or output directory; FileNotFoundError: no model;
        DeploymentError: mosquitto is missing.
    """
    from ddnn_tf.core.files import atomic_directory
    from ddnn_tf.core.manifest import load_manifest
    from ddnn_tf.serve.wire import model_graph

    manifest = load_manifest(model, check_files=False)
    if devices is None:
        devices = len(model_graph(manifest).by_role("device"))
    root = topic_root or default_topic_root(str(manifest["name"]))
    MqttSettings.from_url(f"mqtt://ddnn@{host}:{port or 1}", topic_root=root)  # checks both
    clients = plan_clients([root], int(devices))
    out = Path(out)
    with atomic_directory(out, overwrite=overwrite, what="Broker directory") as tmp:
        write_broker(
            tmp, clients, host=host, port=port, tls=tls, max_body_bytes=max_body_bytes, final=out
        )
    return {
        "config": str(out / "mosquitto.conf"),
        "root": root,
        "clients": [
            {
                "user": c.user,
                "role": c.role,
                "url": _url(c.user, host, port, tls),
                "env": str(out / "clients" / f"{c.user}.env"),
            }
            for c in clients
        ],
    }


class Broker:
    """A mosquitto process with generated files (:func:`write_broker`, whose ``host``,
    ``tls`` and ``max_body_bytes`` it takes).

    Args:
        folder: where the configuration, password file, ACL, credentials and log go.
        clients: who may connect (:func:`plan_clients`).
        port: the port (0: a free one).
        ca: the CA certificate clients verify the broker with (the certificate itself for
            a self-signed one).

    Example (needs mosquitto)::

        with Broker(tmp, plan_clients(["ddnn/m"], 6)) as broker:
            settings = broker.settings("device0")   # mqtt://device0@127.0.0.1:PORT
    """

    def __init__(
        self,
        folder: str | Path,
        clients: Sequence[BrokerClient],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: tuple[str, str] | None = None,
        ca: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.folder = Path(folder)
        self.clients = {c.user: c for c in clients}
        self.host, self.port = host, int(port) or free_port(host)
        self.tls, self.ca, self.max_body_bytes = tls, ca, int(max_body_bytes)
        self.proc: subprocess.Popen | None = None

    def settings(self, user: str) -> MqttSettings:
        """How client ``user`` reaches this broker (its password and topic root included)."""
        c = self.clients[user]
        url = _url(c.user, self.host, self.port, self.tls)
        return MqttSettings.from_url(url, password=c.password, ca=self.ca, topic_root=c.root)

    def start(self) -> Broker:
        """Write the files, start mosquitto and wait until it accepts connections.

        Raises:
            DeploymentError: mosquitto is missing, or exits or does not listen in 10 s.
        """
        mosquitto, _ = find_mosquitto()
        conf = write_broker(
            self.folder,
            list(self.clients.values()),
            host=self.host,
            port=self.port,
            tls=self.tls,
            max_body_bytes=self.max_body_bytes,
        )
        with open(self.folder / "mosquitto.err", "wb") as err:
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
        for name in ("mosquitto.err", "mosquitto.log"):
            with contextlib.suppress(OSError):
                text += (self.folder / name).read_text(errors="replace")
        lines = text.strip().splitlines()
        return " | ".join(lines[-3:]) if lines else "(no output)"

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after 5 s)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *_) -> None:
        self.stop()
