"""MQTT beside HTTP between the end devices and the gateway (paho-mqtt, MQTT 5, QoS 1):
what the gateway's side (:mod:`ddnn_tf.serve.mqtt_gateway`), a device's
(:mod:`ddnn_tf.serve.mqtt_device`) and the answers' readers
(:class:`ddnn_tf.serve.collect.AnswerSubscriber`) share, as docs/protocol.md (*MQTT
transport*) specifies it: a malformed message, even one paho cannot decode, is
acknowledged and dropped (:class:`Drops`). The broker is :mod:`ddnn_tf.serve.broker`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from ddnn_tf.errors import ConfigError, DeploymentError

__all__ = [
    "ENVELOPE_BYTES",
    "PASSWORD_ENV",
    "QOS",
    "Drops",
    "MqttSettings",
    "Topics",
    "connect",
    "correlation",
    "default_topic_root",
    "mqtt_client",
    "publish_props",
    "topic_of",
    "user_properties",
]

#: Environment variable holding the broker password (an explicit password overrides it).
PASSWORD_ENV = "DDNN_TF_MQTT_PASSWORD"
QOS = 1
#: Bytes an MQTT packet may carry besides its body (topic, properties, header).
ENVELOPE_BYTES = 65536
_SESSION_EXPIRY_S = 300
_TOPIC = re.compile(r"[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*")
log = logging.getLogger("ddnn_tf.serve.mqtt")


def default_topic_root(model_name: str) -> str:
    """``ddnn/<model name>`` with characters outside ``[A-Za-z0-9_.-]`` replaced by ``_``.

    >>> default_topic_root("fmnist6 mlpcc")
    'ddnn/fmnist6_mlpcc'
    """
    return "ddnn/" + (re.sub(r"[^A-Za-z0-9_.\-]", "_", model_name) or "model")


@dataclass(frozen=True)
class MqttSettings:
    """How to reach the broker, and under which topics.

    Attributes:
        host / port: the broker.
        tls: connect with TLS (``mqtts://``).
        username / password: the broker credentials (None: anonymous).
        ca: CA certificate file that verifies a TLS broker (None: the system's).
        topic_root: the topics' prefix (None: ``ddnn/<model name>``).
    """

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None
    ca: str | None = None
    topic_root: str | None = None

    @property
    def url(self) -> str:
        """The broker's URL, with the user name (never the password)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{urllib.parse.quote(self.username, safe='')}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{host}:{self.port}"

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        ca: str | None = None,
        topic_root: str | None = None,
    ) -> MqttSettings:
        """Settings from ``mqtt://[USER@]HOST[:PORT]`` or ``mqtts://...`` (TLS), the
        password from ``password``, else ``$DDNN_TF_MQTT_PASSWORD`` (never the URL; the
        rules are on docs/protocol.md, *MQTT transport*).

        Raises:
            ConfigError: a URL, CA file or topic root that cannot be used.
        """
        parts = urllib.parse.urlsplit(str(url))
        fail = functools.partial(ConfigError, argument="broker")
        bad = f"expected mqtt://HOST:PORT or mqtts://HOST:PORT, got {str(url)[:80]!r}."
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise fail(bad)
        if parts.password is not None:
            raise fail(f"the broker URL must not hold the password; set {PASSWORD_ENV} instead.")
        if parts.path not in ("", "/") or parts.query:
            raise fail(f"{bad[:-1]} without a path.")
        try:
            port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        except ValueError:
            raise fail(f"bad port in {str(url)[:80]!r}.") from None
        if ca is not None and not os.path.isfile(ca):
            raise ConfigError(f"no CA certificate file at {ca}.", argument="mqtt_ca")
        if topic_root is not None and (not _TOPIC.fullmatch(topic_root) or len(topic_root) > 200):
            raise ConfigError(
                "expected levels of letters, digits, '_', '.' or '-' separated by '/' (no "
                f"wildcards), got {topic_root[:80]!r}.",
                argument="topic_root",
            )
        if username is None and parts.username:
            username = urllib.parse.unquote(parts.username)
        if username is None:
            log.warning(
                "warning: the MQTT broker %s is used without credentials: anyone who can "
                "reach it can publish as a device or as the gateway (give it a user "
                "name, e.g. from `ddnn broker`).",
                url,
            )
        password = password if password is not None else os.environ.get(PASSWORD_ENV) or None
        return cls(
            parts.hostname, port, parts.scheme == "mqtts", username, password, ca, topic_root
        )

    def root(self, manifest: Mapping) -> str:
        return self.topic_root or default_topic_root(str(manifest["name"]))


class Topics:
    """The topic names under a root ``R`` (docs/protocol.md, *MQTT transport*).

    >>> t = Topics("ddnn/m")
    >>> t.up(2, "summary", 64), t.down(2, "error"), t.levels("ddnn/m/up/2/join", "up")
    ('ddnn/m/up/2/summary/64', 'ddnn/m/down/2/error', ['2', 'join'])
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self.status = f"{root}/status"
        self.answers = f"{root}/answers"

    def _topic(self, side: str, device: int, kind: str, start: int | None = None) -> str:
        return f"{self.root}/{side}/{device}/{kind}" + ("" if start is None else f"/{start}")

    up = functools.partialmethod(_topic, "up")
    down = functools.partialmethod(_topic, "down")

    def levels(self, topic: str | None, side: str) -> list[str] | None:
        """The levels of ``topic`` after ``R/<side>/`` (None: not such a topic)."""
        prefix = f"{self.root}/{side}/"
        return topic[len(prefix) :].split("/") if topic and topic.startswith(prefix) else None


class Drops:
    """Messages a client dropped: counted, and logged at most once a second."""

    def __init__(self, who: str) -> None:
        self.who = who
        self.count = 0
        self._last = -1.0

    def __call__(self, topic: str | None, why: str) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self._last >= 1.0:
            self._last = now
            where = "" if topic is None else f" on {topic[:120]}"
            log.warning("%s: dropped a message%s: %s (%d so far)", self.who, where, why, self.count)


def topic_of(msg) -> str | None:
    """A received message's topic, or None when it is not UTF-8."""
    try:
        return msg.topic
    except UnicodeDecodeError:
        return None


def user_properties(msg) -> dict[str, str]:
    pairs = getattr(getattr(msg, "properties", None), "UserProperty", None) or []
    return {str(k): str(v) for k, v in pairs}


def correlation(msg) -> bytes | None:
    return getattr(getattr(msg, "properties", None), "CorrelationData", None)


def publish_props(correlation_data: bytes | None = None, **user: str):
    """PUBLISH properties: user properties, and the correlation data of a response."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.PUBLISH)
    if user:
        props.UserProperty = list(user.items())
    if correlation_data is not None:
        props.CorrelationData = correlation_data
    return props


@functools.cache
def _client_class():
    """paho's client, acknowledging (then dropping) a PUBLISH it cannot decode.

    paho closes the connection on a malformed packet (a user property holding U+FEFF,
    say) without acknowledging it, so the broker delivers it again on every reconnect and
    the client never gets past it; this one acknowledges it like any other message.
    """
    import paho.mqtt.client as paho
    from paho.mqtt.enums import MQTTErrorCode
    from paho.mqtt.exception import MalformedPacket

    class Client(paho.Client):
        drops: Drops | None = None

        def _handle_publish(self):
            try:
                return super()._handle_publish()
            except MalformedPacket as err:
                header, packet = self._in_packet["command"], bytes(self._in_packet["packet"])
                if self.drops is not None:
                    self.drops(None, f"a packet paho cannot decode ({err})")
                if (header & 0x06) >> 1 == 1 and len(packet) >= 2:
                    (n,) = struct.unpack_from("!H", packet)
                    if len(packet) >= n + 4:
                        return self._send_puback(struct.unpack_from("!H", packet, n + 2)[0])
                return MQTTErrorCode.MQTT_ERR_SUCCESS

    return Client


def mqtt_client(settings: MqttSettings, client_id: str, drops: Drops | None = None):
    """A paho MQTT 5 client for ``settings`` (not connected yet).

    Its client id is the user name when there is one (a broker of ``ddnn broker`` forces
    that: nobody can take another client's session), else ``client_id``.
    """
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    cid = settings.username or client_id
    c = _client_class()(CallbackAPIVersion.VERSION2, client_id=cid, protocol=paho.MQTTv5)
    c.drops = drops
    if settings.username is not None:
        c.username_pw_set(settings.username, settings.password)
    if settings.tls:
        c.tls_set(ca_certs=settings.ca)
    c.reconnect_delay_set(0.05, 2)
    c.max_queued_messages_set(0)
    # Small messages answered by small messages: without TCP_NODELAY, Nagle's algorithm
    # and delayed acknowledgements add tens of milliseconds to every round.
    c.on_socket_open = lambda _c, _u, sock: _nodelay(sock)
    return c


def _nodelay(sock) -> None:
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def connect(c, settings: MqttSettings, wait: float, on_up, max_packet: int = 1 << 20) -> None:
    """Connect ``c`` (network thread started) and wait for the broker's answer;
    ``on_up(client)`` runs on every accepted connection (the first and each reconnect).
    The broker sends ``c`` nothing larger than ``max_packet`` bytes.

    Raises:
        DeploymentError: the broker is unreachable, or refused the credentials.
    """
    import paho.mqtt.client as paho
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = _SESSION_EXPIRY_S
    props.MaximumPacketSize = int(max_packet)
    connected, state = threading.Event(), {}

    def on_connect(client, _u, _f, reason, _p) -> None:
        if reason.is_failure:
            state["refused"] = str(reason)
        else:
            on_up(client)
        connected.set()

    def on_log(_c, _u, level, text) -> None:
        if level in (paho.MQTT_LOG_ERR, paho.MQTT_LOG_WARNING):
            state["failure"] = text

    c.on_connect, c.on_log = on_connect, on_log
    # the TCP or TLS connection itself failed (paho retries)
    c.on_connect_fail = lambda _c, _u: state.setdefault("failure", "the connection failed")
    c.connect_async(settings.host, settings.port, keepalive=30, properties=props)
    c.loop_start()
    if not connected.wait(wait) or state.get("refused"):
        c.loop_stop()
        if state.get("refused"):
            raise DeploymentError(
                f"the MQTT broker {settings.url} refused the connection: {state['refused']} "
                "(check the broker user name and password)."
            )
        why = state.get("failure") or "no answer"
        raise DeploymentError(f"the MQTT broker {settings.url} did not accept us: {why}.")
    # only the connection's outcome was wanted: with on_log set, paho formats a debug
    # line for every packet
    c.on_connect_fail = c.on_log = None
