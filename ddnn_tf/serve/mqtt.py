"""MQTT beside HTTP between the end devices and the gateway (paho-mqtt, MQTT 5, QoS 1).

The payloads are the HTTP ones (:mod:`ddnn_tf.serve.wire`); only the envelope changes.
Under a topic root ``R`` (default ``ddnn/<model name>``):

========================================  ==================  ==========================
topic                                     from -> to          payload
========================================  ==================  ==========================
``R/up/<device>/join``                    device -> gateway   ``{"batch": B}``
``R/up/<device>/summary/<start>``         device -> gateway   the round's summaries
``R/up/<device>/features/<start>``        device -> gateway   the flagged packed features
``R/down/<device>/joined``                gateway -> device   the HTTP join response
``R/down/<device>/decision/<start>``      gateway -> device   the decision mask
``R/down/<device>/done/<start>``          gateway -> device   ``{"accepted": m}``
``R/down/<device>/error``                 gateway -> device   ``{"error": {...}, "topic"}``
``R/answers``                             gateway -> anyone   one answer's JSON
``R/status`` (retained)                   gateway             ``{"status", "boot"}``
========================================  ==================  ==========================

Every device message carries the model id as the MQTT 5 user property ``model`` (the
``X-DDNN-Model`` header of HTTP); the gateway answers a wrong one with ``model_mismatch``
on the device's error topic. The broker authenticates clients (user name and password,
optionally over TLS, ``mqtts://``). The gateway's status is retained and its last will
says ``offline``, so a device knows at once when the gateway went away and when a new
one (another ``boot``) is up: it then joins again and sends its round again, and the
gateway answers each sample once (:mod:`ddnn_tf.serve.results`). The specification is in
``docs/operations.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import queue
import re
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from ddnn_tf.errors import ConfigError, DeploymentError
from ddnn_tf.serve.collect import Collected

__all__ = [
    "PASSWORD_ENV",
    "AnswerSubscriber",
    "DeviceLink",
    "GatewayBridge",
    "MqttSettings",
    "default_topic_root",
]

#: Environment variable holding the broker password (an explicit password overrides it).
PASSWORD_ENV = "DDNN_TF_MQTT_PASSWORD"
QOS = 1
#: Seconds a device waits for a response before it sends its message again.
RESPONSE_S = 30.0
#: Seconds a device waits for the join response (a new gateway holds it until all joined).
JOIN_S = 180.0
_SESSION_EXPIRY_S = 300
_TOPIC = re.compile(r"[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*")


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
        """Settings from ``mqtt://[USER@]HOST[:PORT]`` or ``mqtts://...`` (TLS).

        The password comes from ``password``, else ``$DDNN_TF_MQTT_PASSWORD``; a URL
        holding one is refused (it would show in the process list).

        Raises:
            ConfigError: a URL, CA file or topic root that cannot be used.
        """
        parts = urllib.parse.urlsplit(str(url))
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ConfigError(
                f"expected mqtt://HOST:PORT or mqtts://HOST:PORT, got {str(url)[:80]!r}.",
                argument="broker",
            )
        if parts.password is not None:
            raise ConfigError(
                f"the broker URL must not hold the password; set {PASSWORD_ENV} instead.",
                argument="broker",
            )
        if parts.path not in ("", "/") or parts.query:
            raise ConfigError(
                f"expected mqtt://HOST:PORT without a path, got {str(url)[:80]!r}.",
                argument="broker",
            )
        try:
            port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        except ValueError:
            raise ConfigError(f"bad port in {str(url)[:80]!r}.", argument="broker") from None
        if ca is not None and not os.path.isfile(ca):
            raise ConfigError(f"no CA certificate file at {ca}.", argument="mqtt_ca")
        if topic_root is not None and (not _TOPIC.fullmatch(topic_root) or len(topic_root) > 200):
            raise ConfigError(
                "expected levels of letters, digits, '_', '.' or '-' separated by '/' (no "
                f"wildcards), got {topic_root[:80]!r}.",
                argument="topic_root",
            )
        password = password if password is not None else os.environ.get(PASSWORD_ENV) or None
        return cls(
            host=parts.hostname,
            port=port,
            tls=parts.scheme == "mqtts",
            username=username
            if username is not None
            else (urllib.parse.unquote(parts.username) if parts.username else None),
            password=password,
            ca=ca,
            topic_root=topic_root,
        )

    def root(self, manifest: Mapping) -> str:
        return self.topic_root or default_topic_root(str(manifest["name"]))


def _client_id(root: str, role: str) -> str:
    """A client id unique per topic root and role (the broker keeps its session)."""
    return f"ddnn-{hashlib.sha1(root.encode()).hexdigest()[:10]}-{role}"


def _client(settings: MqttSettings, client_id: str, counters: _Counters | None = None):
    """A paho MQTT 5 client for ``settings`` (not connected yet)."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    if settings.username is not None:
        c.username_pw_set(settings.username, settings.password)
    if settings.tls:
        c.tls_set(ca_certs=settings.ca)
    c.reconnect_delay_set(0.05, 2)
    c.max_queued_messages_set(0)
    # Small messages answered by small messages: without TCP_NODELAY, Nagle's algorithm
    # and delayed acknowledgements add tens of milliseconds to every round.
    c.on_socket_open = lambda _c, _u, sock: _nodelay(sock)
    if counters is not None:
        c.on_socket_close = lambda _c, _u, sock: counters.closed(sock)
    return c


def _nodelay(sock) -> None:
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _connect(c, settings: MqttSettings, wait: float, on_up) -> None:
    """Connect ``c`` (network thread started) and wait for the broker's answer;
    ``on_up(client)`` runs on every accepted connection (the first and each reconnect).

    Raises:
        DeploymentError: the broker is unreachable, or refused the credentials.
    """
    import paho.mqtt.client as paho
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = _SESSION_EXPIRY_S
    connected, state = threading.Event(), {}

    def on_connect(client, _u, _f, reason, _p) -> None:
        if reason.is_failure:
            state["refused"] = str(reason)
        else:
            on_up(client)
        connected.set()

    def failed(_c, _u) -> None:  # the TCP or TLS connection itself failed (paho retries)
        state.setdefault("failure", "the connection failed")

    def log(_c, _u, level, text) -> None:
        if level in (paho.MQTT_LOG_ERR, paho.MQTT_LOG_WARNING):
            state["failure"] = text

    c.on_connect = on_connect
    c.on_connect_fail = failed
    c.on_log = log
    c.connect_async(settings.host, settings.port, keepalive=30, properties=props)
    c.loop_start()
    if not connected.wait(wait):
        c.loop_stop()
        why = state.get("refused") or state.get("failure") or "no answer"
        raise DeploymentError(f"the MQTT broker {settings.url} did not accept us: {why}.")
    if state.get("refused"):
        c.loop_stop()
        raise DeploymentError(
            f"the MQTT broker {settings.url} refused the connection: {state['refused']} "
            "(check the broker user name and password)."
        )
    # only the connection's outcome was wanted: with on_log set, paho formats a debug
    # line for every packet
    c.on_connect_fail = None
    c.on_log = None


def _props(**user: str):
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = list(user.items())
    return props


def _user_properties(msg) -> dict[str, str]:
    props = getattr(msg, "properties", None)
    pairs = getattr(props, "UserProperty", None) or []
    return dict(pairs)


class _Counters:
    """Bytes a client's TCP connections sent (and had acknowledged) and received, read
    from the kernel (``TCP_INFO``): the MQTT framing, TLS and keep-alives included."""

    def __init__(self) -> None:
        self.past = [0, 0]
        self.sock: socket.socket | None = None

    @staticmethod
    def read(sock) -> tuple[int, int]:
        try:
            info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232)
        except (OSError, AttributeError):
            return 0, 0
        if len(info) < 136:
            return 0, 0
        acked, received = struct.unpack_from("QQ", info, 120)  # tcpi_bytes_acked, _received
        return acked, received

    def closed(self, sock) -> None:
        sent, received = self.read(sock)
        self.past[0] += sent
        self.past[1] += received
        if sock is self.sock:
            self.sock = None

    def totals(self, client) -> tuple[int, int]:
        sock = client.socket()
        if sock is not None and hasattr(sock, "getsockopt"):
            self.sock = sock
        sent, received = self.read(self.sock) if self.sock is not None else (0, 0)
        return self.past[0] + sent, self.past[1] + received


class _CounterView:
    """``link.sent[0]`` / ``link.received[0]`` as the HTTP client has them."""

    def __init__(self, link: DeviceLink, k: int) -> None:
        self.link, self.k = link, k

    def __getitem__(self, _: int) -> int:
        return self.link.counters.totals(self.link.client)[self.k]


class DeviceLink:
    """An end device's side of the MQTT transport: the round protocol's three calls.

    Args:
        settings: the broker.
        manifest: the loaded manifest (its model id goes with every message).
        index: the device's index.
        connect_s: how long to wait for the broker.

    Raises:
        DeploymentError: the broker is unreachable or refuses the credentials.
    """

    def __init__(self, settings: MqttSettings, manifest, index: int, connect_s: float = 30.0):
        from ddnn_tf.serve.wire import model_id

        self.settings = settings
        self.model = model_id(manifest)
        self.index = int(index)
        self.root = settings.root(manifest)
        self.inbox: queue.Queue = queue.Queue()
        self.status: dict = {}
        self.status_changed = threading.Event()
        self.counters = _Counters()
        self.sent, self.received = _CounterView(self, 0), _CounterView(self, 1)
        self._status_topic = f"{self.root}/status"
        self._up = f"{self.root}/up/{self.index}/"
        self._down = f"{self.root}/down/{self.index}/"
        self._props = _props(model=self.model)
        self.client = _client(settings, _client_id(self.root, f"device{self.index}"), self.counters)

        def on_up(client) -> None:
            client.subscribe(self._down + "#", qos=QOS)
            client.subscribe(self._status_topic, qos=QOS)

        self.client.on_message = self._on_message
        _connect(self.client, settings, connect_s, on_up)

    def _on_message(self, _c, _u, msg) -> None:
        if msg.topic == self._status_topic:
            with contextlib.suppress(ValueError):
                self.status = json.loads(msg.payload)
                self.status_changed.set()
            return
        rest = msg.topic[len(self._down) :].split("/")
        self.inbox.put((rest[0], rest[1] if len(rest) > 1 else None, msg.payload))

    def _publish(self, kind: str, payload: bytes, start: int | None = None) -> None:
        topic = self._up + kind + ("" if start is None else f"/{start}")
        self.client.publish(topic, payload, qos=QOS, properties=self._props)

    def _await(self, kind: str, start: int | None, timeout: float, boot: str | None) -> bytes:
        """The gateway's response ``kind`` for round ``start``.

        Raises:
            GatewayUnavailable: no gateway online, a new gateway (another boot), a
                timeout, or an error worth another try.
            DeploymentError: the gateway refused the message.
        """
        from ddnn_tf.serve.settings import GatewayUnavailable

        deadline = time.monotonic() + timeout
        want = None if start is None else str(start)
        while True:
            status = self.status
            if status.get("status") != "online":
                raise GatewayUnavailable(f"no gateway online under {self.root}")
            if boot is not None and status.get("boot") != boot:
                raise GatewayUnavailable("the gateway restarted")
            left = deadline - time.monotonic()
            if left <= 0:
                raise GatewayUnavailable(f"no {kind} from the gateway within {timeout:g} s")
            try:
                got, got_start, payload = self.inbox.get(timeout=min(left, 0.25))
            except queue.Empty:
                continue
            if got == "error":
                doc = json.loads(payload)
                code, message = doc["error"]["code"], doc["error"]["message"]
                text = f"gateway over MQTT ({doc.get('topic')}) answered {code}: {message}"
                if code in ("unknown_round", "deadline_exceeded"):
                    raise GatewayUnavailable(text)
                raise DeploymentError(text)
            if got == kind and got_start == want:
                return payload  # anything else is a response to an earlier try

    def _wait_online(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.status.get("status") != "online" and time.monotonic() < deadline:
            self.status_changed.wait(0.1)
            self.status_changed.clear()

    # the round protocol (the same methods as the HTTP client's)
    def join(self, start: int) -> dict:
        self._wait_online(2.0)  # the retained status arrives right after subscribing
        boot = self.status.get("boot")
        self._drain()
        self._publish("join", json.dumps({"start": start}).encode())
        return json.loads(self._await("joined", None, JOIN_S, boot))

    def summary(self, start: int, body: bytes) -> bytes:
        boot = self.status.get("boot")
        self._publish("summary", body, start)
        return self._await("decision", start, RESPONSE_S, boot)

    def features(self, start: int, body: bytes) -> None:
        boot = self.status.get("boot")
        self._publish("features", body, start)
        self._await("done", start, RESPONSE_S, boot)

    def _drain(self) -> None:
        with contextlib.suppress(queue.Empty):
            while True:
                self.inbox.get_nowait()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class GatewayBridge:
    """The gateway's MQTT side: device messages into :class:`~ddnn_tf.serve.gateway.Gateway`,
    its responses and every answer back out.

    Args:
        gateway: the gateway (started).
        settings: the broker.
        deadline_s: how long one message may be held before a ``deadline_exceeded`` error.
    """

    def __init__(self, gateway, settings: MqttSettings, deadline_s: float = 10.0) -> None:
        self.gw = gateway
        self.settings = settings
        self.root = settings.root(gateway.manifest)
        self.deadline_s = float(deadline_s)
        self.client = _client(settings, _client_id(self.root, "gateway"))
        self.loop: asyncio.AbstractEventLoop | None = None
        self.tasks: set = set()

    def _status(self, status: str) -> bytes:
        return json.dumps({"status": status, "boot": self.gw.boot}).encode()

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        status = f"{self.root}/status"
        self.client.will_set(status, self._status("offline"), qos=QOS, retain=True)

        def on_up(client) -> None:
            client.subscribe(f"{self.root}/up/#", qos=QOS)
            client.publish(status, self._status("online"), qos=QOS, retain=True)

        self.client.on_message = self._on_message
        await asyncio.to_thread(_connect, self.client, self.settings, 30.0, on_up)
        answers = f"{self.root}/answers"
        if self.gw.restored:  # what the broker may not have had from the last process
            for _seq, data in self.gw.log.since(0):  # subscribers drop what they have (seq)
                self.client.publish(answers, data, qos=QOS)
        self.gw.log.listeners.append(lambda _seq, data: self.client.publish(answers, data, qos=QOS))

    async def stop(self) -> None:
        info = self.client.publish(
            f"{self.root}/status", self._status("offline"), qos=QOS, retain=True
        )
        with contextlib.suppress(Exception):
            await asyncio.to_thread(info.wait_for_publish, 2.0)
        self.client.disconnect()
        self.client.loop_stop()

    def _on_message(self, _c, _u, msg) -> None:  # paho's network thread
        self.loop.call_soon_threadsafe(self._spawn, msg.topic, bytes(msg.payload), msg)

    def _spawn(self, topic: str, payload: bytes, msg) -> None:
        task = self.loop.create_task(self._handle(topic, payload, _user_properties(msg)))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _send(self, device: int, kind: str, payload: bytes, start: int | None = None) -> None:
        topic = f"{self.root}/down/{device}/{kind}" + ("" if start is None else f"/{start}")
        self.client.publish(topic, payload, qos=QOS)

    async def _handle(self, topic: str, payload: bytes, props: dict[str, str]) -> None:
        from ddnn_tf.serve.http import ServiceError, ascii_int

        parts = topic[len(self.root) + 1 :].split("/")  # up, device, kind[, start]
        device = ascii_int(parts[1]) if len(parts) >= 3 else None
        try:
            if device is None:
                raise ServiceError(
                    400, "bad_topic", f"{topic}: expected {self.root}/up/<device>/..."
                )
            if device >= self.gw.num_devices:
                device = None
                raise ServiceError(
                    400, "bad_topic", f"{topic}: the model has {self.gw.num_devices} devices."
                )
            if props.get("model") != self.gw.model:
                given = props.get("model")
                what = "no model property" if given is None else f"model {given[:64]!r}"
                raise ServiceError(
                    409, "model_mismatch", f"{what}; this gateway serves model {self.gw.model}."
                )
            kind = parts[2]
            if kind == "join" and len(parts) == 3:
                info = await self.gw.join(device)
                self._send(device, "joined", json.dumps(info).encode())
                return
            if kind not in ("summary", "features") or len(parts) != 4:
                raise ServiceError(400, "bad_topic", f"{topic}: no such message.")
            start = ascii_int(parts[3])
            if start is None:
                raise ServiceError(
                    400, "bad_header", f"{topic}: the round start must be ASCII digits."
                )
            self.gw.check_start(start)
            if kind == "summary":
                mask = await asyncio.wait_for(
                    self.gw.summary(device, start, payload), self.deadline_s
                )
                self._send(device, "decision", mask, start)
            else:
                out = await asyncio.wait_for(
                    self.gw.features(device, start, payload), self.deadline_s
                )
                self._send(device, "done", json.dumps(out).encode(), start)
        except ServiceError as err:
            if device is not None:
                body = {"error": {"code": err.code, "message": err.message}, "topic": topic}
                self._send(device, "error", json.dumps(body).encode())
        except TimeoutError:
            if device is not None:
                body = {
                    "error": {
                        "code": "deadline_exceeded",
                        "message": f"{topic} took longer than {self.deadline_s:g} s.",
                    },
                    "topic": topic,
                }
                self._send(device, "error", json.dumps(body).encode())


class AnswerSubscriber(Collected):
    """Collect a gateway's answers from ``R/answers`` (the :class:`StreamCollector`
    interface of :mod:`ddnn_tf.serve.collect`).

    Args:
        settings: the broker.
        root: the topic root.
        client_id: this subscriber's client id (the broker keeps its subscription and
            queued answers across a reconnect).
    """

    def __init__(self, settings: MqttSettings, root: str, client_id: str) -> None:
        super().__init__()
        self.settings = settings
        self.root = root
        self.client = _client(settings, client_id)
        self.subscribed = threading.Event()

    def start(self, connect_s: float = 30.0) -> AnswerSubscriber:
        """Connect and subscribe (confirmed before this returns).

        Raises:
            DeploymentError: the broker is unreachable, refuses us or the subscription.
        """
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = lambda _c, _u, msg: self.add(json.loads(msg.payload))
        answers = f"{self.root}/answers"
        _connect(self.client, self.settings, connect_s, lambda c: c.subscribe(answers, qos=QOS))
        if not self.subscribed.wait(10.0):
            raise DeploymentError(
                f"the MQTT broker {self.settings.url} did not confirm the subscription."
            )
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.client.disconnect()
        self.client.loop_stop()
