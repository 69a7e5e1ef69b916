"""An end device's side of the MQTT transport (:class:`MqttLink`, a
:class:`~ddnn_tf.serve.link.DeviceLink`): it takes as a response only a well-formed message
on its own down topics with its own correlation data, and as the gateway's status only a
JSON object of that shape; anything else is dropped and logged (docs/protocol.md, *MQTT
transport*).
"""

from __future__ import annotations

import os
import queue
import threading
import time

from ddnn_tf.serve import mqtt as m
from ddnn_tf.serve.link import DeviceLink, TcpCounters
from ddnn_tf.serve.protocol import RESPONSES, GatewayUnavailable, json_object, refusal

__all__ = ["JOIN_S", "RESPONSE_S", "MqttLink"]

#: Seconds a device waits for a response before it sends its message again.
RESPONSE_S = 30.0
#: Seconds a device waits for the join response (a new gateway holds it until all joined).
JOIN_S = 180.0


class MqttLink(DeviceLink):
    """A device's round protocol over MQTT.

    Args:
        manifest: the loaded manifest (its model id goes with every message).
        connect_s: how long to wait for the broker.

    Raises:
        DeploymentError: the broker is unreachable or refuses the credentials.
    """

    def __init__(self, settings: m.MqttSettings, manifest, index: int, connect_s: float = 30.0):
        from ddnn_tf.serve.wire import model_id

        self.index = int(index)
        self.topics = m.Topics(settings.root(manifest))
        self.inbox: queue.Queue = queue.Queue()
        self.status: dict = {}
        self.status_changed = threading.Condition()
        self.counters = TcpCounters()
        self.drops = m.Drops(f"device {self.index}")
        self._token = os.urandom(12)  # responses to this device's messages carry it back
        self._props = m.publish_props(self._token, model=model_id(manifest))
        self.client = m.mqtt_client(settings, f"ddnn-device{self.index}", self.drops)
        self.client.on_socket_close = lambda _c, _u, sock: self.counters.closed(sock)

        def on_up(client) -> None:
            client.subscribe(f"{self.topics.root}/down/{self.index}/#", qos=m.QOS)
            client.subscribe(self.topics.status, qos=m.QOS)

        self.client.on_message = self._on_message
        m.connect(self.client, settings, connect_s, on_up)

    def socket(self):
        return self.client.socket()

    def _on_message(self, _c, _u, msg) -> None:  # paho's network thread: never raises
        topic, payload = m.topic_of(msg), bytes(msg.payload)
        if topic == self.topics.status:
            doc = json_object(payload) or {}
            ok = doc.get("status") in ("online", "offline") and isinstance(doc.get("boot"), str)
            if not ok:
                return self.drops(topic, "not a gateway status")
            with self.status_changed:
                self.status = doc
                self.status_changed.notify_all()
            return None
        levels = self.topics.levels(topic, "down")
        if not levels or levels[0] != str(self.index) or len(levels) not in (2, 3):
            return self.drops(topic, "not a topic of this device")
        if m.correlation(msg) != self._token:
            return self.drops(topic, "not a response to this device's messages")
        self.inbox.put((levels[1], levels[2] if len(levels) == 3 else None, payload))
        return None

    def _request(self, kind: str, start: int | None, body: bytes) -> bytes:
        """Publish message ``kind``; the gateway's response to it. No gateway online, a new
        boot and a timeout are :class:`GatewayUnavailable`, the rest as for any link."""
        if kind == "join":  # the retained status arrives right after subscribing
            with self.status_changed:
                self.status_changed.wait_for(lambda: self.status.get("status") == "online", 2.0)
            self.inbox = queue.Queue()  # drop the responses of a gateway that is gone
        boot = self.status.get("boot")
        topic = self.topics.up(self.index, kind, start)
        self.client.publish(topic, body, qos=m.QOS, properties=self._props)
        timeout = JOIN_S if kind == "join" else RESPONSE_S
        deadline = time.monotonic() + timeout
        want = (RESPONSES[kind], None if start is None else str(start))
        while True:
            if self.status.get("status") != "online":
                raise GatewayUnavailable(f"no gateway online under {self.topics.root}")
            if boot is not None and self.status.get("boot") != boot:
                raise GatewayUnavailable("the gateway restarted")
            left = deadline - time.monotonic()
            if left <= 0:
                raise GatewayUnavailable(f"no {want[0]} from the gateway within {timeout:g} s")
            try:
                got, got_start, payload = self.inbox.get(timeout=min(left, 0.25))
            except queue.Empty:
                continue
            if got == "error":
                doc = json_object(payload) or {}
                error = doc.get("error")
                if not isinstance(error, dict) or not isinstance(error.get("code"), str):
                    self.drops(topic, "a malformed error")
                elif doc.get("topic") == topic:  # else: about an earlier message
                    text = f"gateway over MQTT ({topic}) answered {error['code']}: "
                    raise refusal(None, error["code"], text + str(error.get("message")))
            elif (got, got_start) == want:
                return payload  # anything else answers an earlier try

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
