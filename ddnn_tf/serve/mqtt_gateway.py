"""The gateway's side of the MQTT transport (docs/protocol.md, *MQTT transport*), an
adapter like the HTTP routes: a topic and its user properties become a
:class:`~ddnn_tf.serve.protocol.Message` (:func:`~ddnn_tf.serve.protocol.parse_message`)
for :meth:`ddnn_tf.serve.gateway.Gateway.answer`; its response, or any error, goes back
with the message's correlation data, and its status and every answer go out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from ddnn_tf.serve import mqtt
from ddnn_tf.serve.protocol import (
    KINDS,
    RESPONSES,
    ServiceError,
    ascii_int,
    error_body,
    parse_message,
    service_error,
)

__all__ = ["GatewayBridge"]

_FIELDS = ("model property", "the device in the topic", "the round start in the topic")


class GatewayBridge:
    """The gateway's MQTT client.

    Args:
        gateway: the gateway (started).
        deadline_s: how long one message may be held before a ``deadline_exceeded`` error.
        max_body_bytes: the largest body a message may carry (HTTP's limit).
    """

    def __init__(
        self, gateway, settings: mqtt.MqttSettings, deadline_s: float, max_body_bytes: int
    ) -> None:
        self.gw = gateway
        self.settings = settings
        self.topics = mqtt.Topics(settings.root(gateway.manifest))
        self.deadline_s = float(deadline_s)
        self.limit = int(max_body_bytes)
        self.drops = mqtt.Drops("gateway")
        self.client = mqtt.mqtt_client(settings, "ddnn-gateway", self.drops)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.tasks: set = set()
        self.connects = 0  # accepted connections (the first and each reconnect)

    def _status(self, send, status: str):
        """``send`` (``publish``, or ``will_set``) the gateway's retained status."""
        doc = {"status": status, "boot": self.gw.boot}
        return send(self.topics.status, json.dumps(doc).encode(), qos=mqtt.QOS, retain=True)

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._status(self.client.will_set, "offline")

        def on_up(client) -> None:
            self.connects += 1
            client.subscribe(f"{self.topics.root}/up/#", qos=mqtt.QOS)
            self._status(client.publish, "online")

        self.client.on_message = self._on_message
        # the broker keeps what is larger than a body may be from us
        packet = self.limit + mqtt.ENVELOPE_BYTES
        await asyncio.to_thread(mqtt.connect, self.client, self.settings, 30.0, on_up, packet)
        answers = self.topics.answers
        if self.gw.restored:  # what the broker may not have had from the last process
            for _seq, data in self.gw.log.since(0):  # subscribers drop what they have (seq)
                self.client.publish(answers, data, qos=mqtt.QOS)
        self.gw.log.listeners.append(
            lambda _seq, data: self.client.publish(answers, data, qos=mqtt.QOS)
        )

    async def stop(self) -> None:
        info = self._status(self.client.publish, "offline")
        with contextlib.suppress(RuntimeError, ValueError):  # not connected: the will says so
            await asyncio.to_thread(info.wait_for_publish, 2.0)
        self.client.disconnect()
        self.client.loop_stop()

    def _on_message(self, _c, _u, msg) -> None:  # paho's network thread: never raises
        topic = mqtt.topic_of(msg)
        if msg.retain:  # kept by the broker from some earlier publisher: never a live message
            return self.drops(topic, "a retained message")
        levels = self.topics.levels(topic, "up")
        device = ascii_int(levels[0]) if levels else None  # "3", never "٣" or "+3"
        if device is None or device >= self.gw.num_devices:
            return self.drops(topic, "a topic of no device")
        args = (topic, levels, bytes(msg.payload), mqtt.user_properties(msg), mqtt.correlation(msg))
        self.loop.call_soon_threadsafe(self._spawn, args)
        return None

    def _spawn(self, args) -> None:
        task = self.loop.create_task(self._handle(*args))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _handle(self, topic, levels, payload, props, token) -> None:
        device = int(levels[0])
        try:
            kind = levels[1] if len(levels) in (2, 3) else None
            if kind not in KINDS or (len(levels) == 3) == (kind == "join"):
                raise ServiceError(400, "bad_topic", f"{topic}: no such message.")
            msg = parse_message(
                kind,
                device=levels[0],
                start=levels[2] if kind != "join" else None,
                model=props.get("model"),
                body=payload,
                expect=(self.gw.model, self.gw.num_devices, self.limit),
                fields=_FIELDS,
            )
            out = await self.gw.answer(msg, self.deadline_s, topic)
            response = out if isinstance(out, bytes) else json.dumps(out).encode()
            self._send(self.topics.down(device, RESPONSES[kind], msg.start), response, token)
        except Exception as err:  # noqa: BLE001
            err = service_error(err)
            body = error_body(err.code, err.message, topic=topic)
            self._send(self.topics.down(device, "error"), json.dumps(body).encode(), token)

    def _send(self, topic: str, payload: bytes, token: bytes | None) -> None:
        self.client.publish(topic, payload, qos=mqtt.QOS, properties=mqtt.publish_props(token))
