"""A device's side of the protocol over one transport: :class:`DeviceLink`, and its HTTP
adapter :class:`HttpLink` (the MQTT one is :class:`ddnn_tf.serve.mqtt_device.MqttLink`).
"""

from __future__ import annotations

import http.client
import json
import socket
import struct
import time
import urllib.parse
from collections.abc import Callable

from ddnn_tf.errors import ConfigError
from ddnn_tf.serve.protocol import GatewayUnavailable, json_object, refusal
from ddnn_tf.serve.wire import FEATURES_TYPE, SUMMARY_TYPE

__all__ = ["DeviceLink", "HttpLink", "TcpCounters"]

_MEDIA = {"join": "application/octet-stream", "summary": SUMMARY_TYPE, "features": FEATURES_TYPE}


class TcpCounters:
    """Bytes a client's TCP connections sent (and had acknowledged) and received, from
    the kernel's ``TCP_INFO`` (Linux); a closed connection's are kept in ``past``."""

    def __init__(self) -> None:
        self.past = [0, 0]
        self.sock: socket.socket | None = None

    @staticmethod
    def read(sock) -> tuple[int, int]:
        try:
            info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232)
        except (OSError, AttributeError):
            return 0, 0
        # tcpi_bytes_acked, tcpi_bytes_received
        return struct.unpack_from("QQ", info, 120) if len(info) >= 136 else (0, 0)

    def closed(self, sock) -> None:
        """Keep the counts of ``sock``, which is about to close."""
        self.past = [a + b for a, b in zip(self.past, self.read(sock), strict=True)]
        if sock is self.sock:
            self.sock = None

    def totals(self, sock) -> tuple[int, int]:
        """``(sent, received)`` so far, ``sock`` being the connection now open (or None)."""
        if sock is not None and hasattr(sock, "getsockopt"):
            self.sock = sock
        sent, received = self.read(self.sock) if self.sock is not None else (0, 0)
        return self.past[0] + sent, self.past[1] + received


class DeviceLink:
    """The round protocol's calls, over some transport: each raises
    :class:`~ddnn_tf.serve.protocol.GatewayUnavailable` for what is worth another try and
    :class:`~ddnn_tf.errors.DeploymentError` for a refusal
    (:func:`~ddnn_tf.serve.protocol.refusal`).

    Attributes:
        counters: the transport's :class:`TcpCounters`.
        pace: a hook ``pace(kind, start, nbytes) -> seconds`` that holds each message
            that long before it is sent, and the decision (``kind`` ``decision``) that long
            after it arrived (a radio emulated on loopback:
            :class:`ddnn_tf.serve.airtime.RadioPacer`); None: none.
    """

    counters: TcpCounters
    pace: Callable[[str, int | None, int], float] | None = None

    def join(self) -> dict:
        """Join the gateway; its answer (``model``, ``devices``, ``batch``, ``mode``,
        ``boot``)."""
        info = json_object(self.request("join", None, b""))
        if info is None:
            raise GatewayUnavailable("the gateway's join answer is not a JSON object")
        return info

    def summary(self, start: int, body: bytes) -> bytes:
        """Send a round's summaries; the decision mask."""
        mask = self.request("summary", start, body)
        if self.pace is not None:
            time.sleep(self.pace("decision", start, len(mask)))
        return mask

    def features(self, start: int, body: bytes) -> None:
        """Send the flagged samples' packed features; returns once the round is answered."""
        self.request("features", start, body)

    def request(self, kind: str, start: int | None, body: bytes) -> bytes:
        """Send message ``kind`` (after :attr:`pace`); the gateway's response body."""
        if self.pace is not None:
            time.sleep(self.pace(kind, start, len(body)))
        return self._request(kind, start, body)

    def _request(self, kind: str, start: int | None, body: bytes) -> bytes:
        raise NotImplementedError  # the transport's

    def close(self) -> None:
        raise NotImplementedError

    def socket(self):
        """The transport's open connection (None when there is none)."""
        raise NotImplementedError

    def bytes(self) -> tuple[int, int]:
        """Bytes sent and received on the transport's connections so far."""
        return self.counters.totals(self.socket())


class _Connection(http.client.HTTPConnection):
    """A keep-alive connection that counts a socket's bytes before closing it."""

    def __init__(self, host: str, port: int, timeout: float, counters: TcpCounters) -> None:
        super().__init__(host, port, timeout=timeout)
        self.counters = counters

    def close(self) -> None:
        if self.sock is not None:
            self.counters.closed(self.sock)
        super().close()


class HttpLink(DeviceLink):
    """A device's keep-alive HTTP connection to the gateway.

    Args:
        url: the gateway's base URL (http only).
        model: the model id sent with every request.
        token: the shared token (None: none).
        timeout: socket timeout in seconds (the gateway holds a join up to 120 s).

    Raises:
        ConfigError: a URL that is not ``http://host:port``.
    """

    def __init__(
        self, url: str, device: int, model: str, token: str | None, timeout: float = 180.0
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ConfigError(f"expected http://HOST:PORT, got {url!r}.", argument="gateway")
        self.counters = TcpCounters()
        self._conn = _Connection(parts.hostname, parts.port or 80, timeout, self.counters)
        self.headers = {"X-DDNN-Model": model, "X-DDNN-Device": str(device)}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.url = url

    def socket(self):
        return self._conn.sock

    def _request(self, kind: str, start: int | None, body: bytes) -> bytes:
        """POST ``body`` to ``/v1/<kind>``; the response body."""
        headers = {**self.headers, "Content-Type": _MEDIA[kind]}
        if start is not None:
            headers["X-DDNN-Start"] = str(start)
        path = f"/v1/{kind}"
        try:
            self._conn.request("POST", path, body=body, headers=headers)
            response = self._conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as err:
            self._conn.close()
            raise GatewayUnavailable(f"gateway {self.url} unreachable: {err}") from None
        if response.status == 200:
            return data
        try:
            error = json.loads(data)["error"]
            code, what = str(error["code"]), f"{error['code']}: {error['message']}"
        except (ValueError, KeyError, TypeError):
            code, what = None, data[:200].decode(errors="replace")
        text = f"gateway {self.url}{path} answered {response.status} ({what})"
        raise refusal(response.status, code, text)

    def close(self) -> None:
        self._conn.close()
