"""Reading a gateway's answers as they are made: the result stream's client side.

:class:`StreamCollector` reads ``GET /v1/answers`` and :class:`AnswerSubscriber` the
MQTT answers topic, so that ``deploy`` never polls. Both keep every delivery, so a
sample answered twice is counted (``duplicates``), and drop what is not an answer.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

from ddnn_tf.errors import DeploymentError
from ddnn_tf.serve.protocol import json_object
from ddnn_tf.serve.results import is_answer

__all__ = ["AnswerSubscriber", "Collected", "StreamCollector", "parse_sse"]


def parse_sse(lines: Iterable[str]) -> Iterator[tuple[str, str | None, str]]:
    """``(event, id, data)`` for each server-sent event in ``lines`` (comments skipped).

    >>> list(parse_sse(["id: 3", "event: answer", 'data: {"seq":3}', "", ": ping", ""]))
    [('answer', '3', '{"seq":3}')]
    """
    event, ident, data = "message", None, []
    for line in lines:
        if not line:
            if data:
                yield event, ident, "\n".join(data)
            event, ident, data = "message", None, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            event = value
        elif field == "id":
            ident = value
        elif field == "data":
            data.append(value)


class Collected:
    """What a collector has received: every answer delivery, by sample.

    Attributes:
        answers: sample -> the answer documents delivered for it (one, unless it was
            answered twice).
        gaps: answers the gateway no longer kept when the collector resumed.
    """

    def __init__(self) -> None:
        self.answers: dict[int, list[dict]] = {}
        self.gaps = 0
        self.changed = threading.Condition()

    def add(self, doc: dict) -> None:
        with self.changed:
            docs = self.answers.setdefault(int(doc["sample"]), [])
            if any(d["seq"] == doc["seq"] for d in docs):
                return  # delivered again (QoS 1 after a reconnect), not answered again
            docs.append(doc)
            self.changed.notify_all()

    @property
    def count(self) -> int:
        """Distinct samples answered."""
        return len(self.answers)

    @property
    def duplicates(self) -> int:
        """Samples answered more than once."""
        with self.changed:
            return sum(1 for docs in self.answers.values() if len(docs) > 1)

    def wait_for(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` distinct samples were answered (or ``timeout``)."""
        with self.changed:
            return self.changed.wait_for(lambda: len(self.answers) >= count, timeout)


class StreamCollector(Collected):
    """Collect a gateway's answers from ``GET /v1/answers`` in a background thread,
    resuming after the last answer read when the stream drops (a gateway restart).

    Args:
        url: the gateway's base URL.
        token: the shared token (None: none).
        after: resume after this answer number (0: from the oldest kept).
    """

    def __init__(self, url: str, token: str | None, after: int = 0) -> None:
        super().__init__()
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.last = after
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="answers", daemon=True)

    def start(self) -> StreamCollector:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        import httpx

        delay = 0.05
        timeout = httpx.Timeout(10.0, read=60.0)  # the stream sends a keep-alive every 15 s
        with httpx.Client(headers=self.headers, timeout=timeout) as client:
            while not self._stop.is_set():
                try:
                    params = {"after": str(self.last)}
                    with client.stream("GET", f"{self.url}/v1/answers", params=params) as r:
                        if r.status_code == 200:  # else: try again after the delay
                            delay = 0.05
                            self._read(r.iter_lines())
                except httpx.HTTPError:
                    pass  # the stream dropped (a gateway restart): resume after the delay
                if self._stop.wait(delay):
                    return
                delay = min(2 * delay, 1.0)

    def _read(self, lines: Iterable[str]) -> None:
        for event, _ident, data in parse_sse(lines):
            if self._stop.is_set():
                return
            doc = json_object(data.encode())
            if doc is None:
                continue  # not ours to read
            if event == "answer" and is_answer(doc) and doc["seq"] > self.last:
                self.last = doc["seq"]  # a resumed stream starts after the last one read
                self.add(doc)
            elif event == "hello" and isinstance(doc.get("next"), int) and doc["next"] <= self.last:
                self.last = 0  # a gateway that lost its answers
            elif event == "gap" and isinstance(doc.get("missed"), int):
                self.gaps += doc["missed"]
            elif event == "lagged":
                return  # reconnect and resume


class AnswerSubscriber(Collected):
    """Collect a gateway's answers from the MQTT answers topic ``R/answers``.

    Args:
        settings: the broker (:class:`ddnn_tf.serve.mqtt.MqttSettings`).
        root: the topic root.
        client_id: this subscriber's client id when the broker does not take the user
            name as one (the broker keeps its subscription and queued answers across a
            reconnect).
    """

    def __init__(self, settings, root: str, client_id: str) -> None:
        from ddnn_tf.serve.mqtt import Drops, mqtt_client

        super().__init__()
        self.settings = settings
        self.root = root
        self.drops = Drops("answers subscriber")
        self.client = mqtt_client(settings, client_id, self.drops)
        self.subscribed = threading.Event()

    def _on_message(self, _c, _u, msg) -> None:  # paho's network thread: never raises
        from ddnn_tf.serve.mqtt import topic_of

        doc = json_object(bytes(msg.payload))
        if is_answer(doc):
            self.add(doc)
        else:
            self.drops(topic_of(msg), "not an answer")

    def start(self, connect_s: float = 30.0) -> AnswerSubscriber:
        """Connect and subscribe (confirmed before this returns).

        Raises:
            DeploymentError: the broker is unreachable, refuses us or the subscription.
        """
        from ddnn_tf.serve.mqtt import QOS, connect

        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        answers = f"{self.root}/answers"
        connect(self.client, self.settings, connect_s, lambda c: c.subscribe(answers, qos=QOS))
        if not self.subscribed.wait(10.0):
            raise DeploymentError(
                f"the MQTT broker {self.settings.url} did not confirm the subscription."
            )
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.client.disconnect()
        self.client.loop_stop()
