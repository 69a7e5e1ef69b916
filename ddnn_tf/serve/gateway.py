"""The gateway: the local aggregator the end devices talk to, forwarding to the cloud.

It speaks the device side of the protocol specified in docs/protocol.md (*Wire
protocol* in the documentation: ``/v1/join``, ``/v1/summary``, ``/v1/features``, held
responses, rounds, degraded answers): :class:`Gateway` keeps the rounds, runs the local
aggregator and the exit rule, hosts the edge tiers when the topology has them
(:mod:`ddnn_tf.serve.edges`) and forwards the rest to the cloud; :func:`create_gateway_app`
is its FastAPI app.

Every answer is delivered as it is made (:mod:`ddnn_tf.serve.results`): numbered, written
to the journal when there is one, streamed to every ``GET /v1/answers`` subscriber
(server-sent events; the MQTT answers topic with the MQTT transport) and kept only for
the last ``window`` answers; a retried round answers only the samples not yet answered,
so every sample is answered exactly once (docs/operations.md, *Running for months*).

The model needs a local exit (split ``local,cloud`` or ``local,edge,cloud``).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ddnn_tf.core.comm import decode_summaries, unpack_features_batch
from ddnn_tf.core.exits import resolve_thresholds
from ddnn_tf.core.manifest import load_manifest
from ddnn_tf.errors import ConfigError
from ddnn_tf.runtime.step import TierStep, exit_decision
from ddnn_tf.runtime.tiers import TierRunner
from ddnn_tf.serve.edges import EdgeStage
from ddnn_tf.serve.http import (
    add_status_routes,
    check_auth,
    check_content_type,
    install_error_handlers,
    read_body,
)
from ddnn_tf.serve.protocol import (
    KINDS,
    Message,
    ServiceError,
    ascii_int,
    parse_message,
    with_deadline,
)
from ddnn_tf.serve.results import ANSWER_FIELDS, AnswerLog, Journal, RoundLedger, restore
from ddnn_tf.serve.settings import DEFAULT_DEADLINE_S, DEFAULT_MAX_BODY_BYTES
from ddnn_tf.serve.wire import (
    DECISION_TYPE,
    FEATURES_TYPE,
    SUMMARY_TYPE,
    CloudSpec,
    describe_model,
    encode_cloud_records,
    encode_mask,
    model_graph,
    model_id,
    summary_size,
)

__all__ = ["NODELAY", "Gateway", "create_gateway_app"]

#: Socket options of the services' HTTP clients.
NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
#: Where an HTTP request carries the model id, the device and the round start.
_FIELDS = ("X-DDNN-Model header", "X-DDNN-Device", "X-DDNN-Start")
_MEDIA = {"join": None, "summary": SUMMARY_TYPE, "features": FEATURES_TYPE}


@dataclass
class _Round:
    start: int
    n: int
    opened: float = field(default_factory=time.monotonic)
    summaries: dict[int, np.ndarray] = field(default_factory=dict)
    raw: dict[int, bytes] = field(default_factory=dict)  # each device's summary bytes
    decided: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    send: np.ndarray | None = None  # (n,) bool: samples that go up
    decision: bytes = b""
    local_probs: np.ndarray | None = None
    present: list[int] = field(default_factory=list)  # devices whose summaries arrived
    features: dict[int, bytes] = field(default_factory=dict)
    timer: asyncio.TimerHandle | None = None
    forwarding: bool = False


class Gateway:
    """The local aggregator's state: devices, rounds, answers.

    Args:
        model_dir: a converted model directory.
        cloud_url: the cloud service's base URL.
        cloud_token: token sent to the cloud (None: none).
        threshold: T of every early exit, or ``{exit: T}`` (None: the manifest's;
            ``"paper"``: 0.8).
        gather_s: how long a round waits for a device before counting it absent.
        join_s: how long the first round waits for every device to join.
        cloud_timeout_s: how long one cloud request may take.
        target: ``portable`` or ``lce``.
        batch: the round length; round starts are multiples of it.
        window: answers kept for subscribers that reconnect (and the span, in samples,
            of round starts accepted around the newest round).
        journal: a file where answers are also written and read back on start (None:
            in memory only; a restart then forgets what was answered).
        cloud_retry_s: how long rounds retry an unreachable cloud before they are
            answered lower down (degraded).

    Raises:
        FileNotFoundError / ValueError: a bad model directory or option, or a topology
            the gateway does not serve.
    """

    def __init__(
        self,
        model_dir: str | Path,
        cloud_url: str,
        *,
        cloud_token: str | None = None,
        threshold=None,
        gather_s: float = 2.0,
        join_s: float = 120.0,
        cloud_timeout_s: float = 5.0,
        target: str = "portable",
        batch: int = 64,
        window: int = 4096,
        journal: str | Path | None = None,
        cloud_retry_s: float = 5.0,
    ) -> None:
        for name, value in (("batch", batch), ("window", window)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"expected a positive integer, got {value!r}.", argument=name)
        if window < 2 * batch:
            raise ConfigError(
                f"expected at least two rounds ({2 * batch} answers for batch {batch}), "
                f"got {window}.",
                argument="window",
            )
        for name, value in (
            ("gather_s", gather_s),
            ("join_s", join_s),
            ("cloud_timeout_s", cloud_timeout_s),
            ("cloud_retry_s", cloud_retry_s),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(
                    f"expected a positive number of seconds, got {value!r}.", argument=name
                )
        self.manifest = m = load_manifest(model_dir)
        if m["split"][0] != "local":
            raise ConfigError(
                f"{m.directory}: the gateway serves models with a local exit; this one is "
                f"split {','.join(m['split'])}."
            )
        self.model = model_id(m)
        self.info = describe_model(m, self.model)
        self.exits = tuple(m["split"])
        self.thresholds = resolve_thresholds(threshold, self.exits[:-1], m["thresholds"])
        self.threshold = self.thresholds["local"]
        self.graph = graph = model_graph(m)
        (local,) = graph.by_role("local_aggregator")
        self.local = TierStep(local, TierRunner.from_manifest(m, local.name, target))
        self.cloud = CloudSpec.from_manifest(m)
        self.devices = [t.name for t in graph.by_role("device")]
        self.num_devices = len(self.devices)
        self.edges = None
        if graph.by_role("edge"):
            self.edges = EdgeStage(m, graph, target, self.thresholds.get("edge"))
        elif list(self.cloud.senders) != self.devices:
            raise ConfigError(
                f"{m.directory}: the cloud's senders {list(self.cloud.senders)} are not the "
                f"devices {self.devices}."
            )
        wire = m["wire"]["features"]
        self.feature_nbytes = [int(wire[d]["nbytes"]) for d in self.devices]
        self.feature_shapes = [tuple(wire[d]["shape"]) for d in self.devices]
        self.num_classes = len(m["classes"])
        self.encoding = m["wire"]["summary"].get("encoding", "float32")
        self.summary_bytes = summary_size(m)
        self.cloud_url = cloud_url.rstrip("/")
        self.cloud_token = cloud_token
        self.gather_s, self.join_s = float(gather_s), float(join_s)
        self.cloud_timeout_s, self.cloud_retry_s = float(cloud_timeout_s), float(cloud_retry_s)
        self.batch = int(batch)
        self.alive: set[int] = set(range(self.num_devices))
        self.joined: set[int] = set()
        self.heard: dict[int, float] = {}  # device -> when its last message arrived
        self.rounds: dict[int, _Round] = {}
        self.boot = secrets.token_hex(8)  # tells a subscriber this process from the last
        self.journal = None
        if journal is not None:
            self.journal = Journal(journal, self.model, self.batch, int(window))
        self.log = AnswerLog(int(window), self.exits, self.journal)
        self.ledger = RoundLedger(self.batch, max(2, int(window) // self.batch))
        self.restored = restore(self.log, self.ledger, self.journal) if self.journal else 0
        self.cloud_error: str | None = None
        self.cloud_calls = 0
        self.cloud_retries = 0
        self._cloud_down_since: float | None = None
        self._all_joined: asyncio.Event | None = None
        self._client: httpx.AsyncClient | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()  # where answers are made (and must be added)
        self._all_joined = asyncio.Event()
        headers = {"X-DDNN-Model": self.model, "Content-Type": FEATURES_TYPE}
        if self.cloud_token:
            headers["Authorization"] = f"Bearer {self.cloud_token}"
        # TCP_NODELAY: httpx writes the headers and the body separately; without it Nagle's
        # algorithm holds the body back until the headers are acknowledged.
        self._client = httpx.AsyncClient(
            base_url=self.cloud_url,
            headers=headers,
            timeout=self.cloud_timeout_s,
            transport=httpx.AsyncHTTPTransport(socket_options=NODELAY),
        )

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        if self.journal is not None:
            self.journal.close()

    async def answer(self, msg: Message, deadline_s: float, what: str) -> bytes | dict:
        """Answer one checked device message: the one entry point of the HTTP routes and
        the MQTT bridge. A join is held by its own bound, the others by ``deadline_s``.

        Returns:
            The decision mask (a summary), or a JSON-able dict (a join, features).

        Raises:
            ServiceError: the protocol's errors, ``deadline_exceeded`` included.
        """
        self.heard[msg.device] = time.monotonic()
        if msg.kind == "join":  # the body is ignored
            return await self.join(msg.device)
        why = self.ledger.check(msg.start)
        if why is not None:
            raise ServiceError(400, "bad_header", f"the round start: {why}.")
        handle = self.summary if msg.kind == "summary" else self.features
        return await with_deadline(handle(msg.device, msg.start, msg.body), deadline_s, what)

    async def join(self, device: int) -> dict:
        self.joined.add(device)
        self.alive.add(device)
        if len(self.joined) == self.num_devices:
            self._all_joined.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_joined.wait(), self.join_s)
        if not self._all_joined.is_set():  # the stragglers count as absent until they speak
            self.alive &= self.joined
            self._all_joined.set()
        return {
            "model": self.model,
            "devices": sorted(self.joined),
            "batch": self.batch,
            "boot": self.boot,
        }

    # ------------------------------------------------------------------ summaries
    def _round(self, start: int, n: int) -> _Round:
        if n > self.batch:
            raise ServiceError(
                400, "bad_round", f"a round has at most {self.batch} samples, this one {n}."
            )
        r = self.rounds.get(start)
        if r is None:
            self.ledger.open(start)
            r = self.rounds[start] = _Round(start, n)
        elif r.n != n:
            raise ServiceError(
                400, "bad_round", f"round {start} has {r.n} samples, this message carries {n}."
            )
        return r

    async def summary(self, device: int, start: int, body: bytes) -> bytes:
        size = self.summary_bytes
        if not body or len(body) % size:
            raise ServiceError(
                400,
                "bad_body",
                f"expected a whole number of {size}-byte {self.encoding} summaries, got "
                f"{len(body)} bytes (byte offset {len(body) - len(body) % size}).",
            )
        n = len(body) // size
        try:
            payload = np.frombuffer(body, np.uint8).reshape(n, size)
            values = decode_summaries(payload, self.num_classes, self.encoding)
        except ValueError as err:
            raise ServiceError(400, "bad_body", str(err)) from None
        self.alive.add(device)
        if self.ledger.finished(start):  # answered already (or counted absent)
            return encode_mask(np.zeros(n, bool))
        r = self._round(start, n)
        if device in r.summaries:  # a retry (a lost response): the same answer again
            if r.raw[device] != body:
                raise ServiceError(
                    409,
                    "duplicate",
                    f"device {device} already sent other summaries for round {start}.",
                )
        elif r.decided.is_set():  # too late: counted absent for this round
            return encode_mask(np.zeros(n, bool))
        else:
            r.summaries[device] = values
            r.raw[device] = body
        if self.alive <= set(r.summaries):
            self._decide(r)
        elif r.timer is None:
            r.timer = asyncio.get_running_loop().call_later(self.gather_s, self._decide, r)
        await r.decided.wait()
        return r.decision if device in r.present else encode_mask(np.zeros(n, bool))

    def _decide(self, r: _Round) -> None:
        if r.decided.is_set():
            return
        if r.timer is not None:
            r.timer.cancel()
        r.present = sorted(r.summaries)
        # a device silent since the round opened is absent from the next rounds too, until
        # it speaks again; one heard meanwhile (busy with another round) is still waited for
        self.alive -= {
            d
            for d in range(self.num_devices)
            if d not in r.summaries and self.heard.get(d, -np.inf) < r.opened
        }
        presence = np.zeros((r.n, self.num_devices), bool)
        presence[:, r.present] = True
        ports = [p for p in self.local.tier.inputs if p.role == "summary"]
        received = {
            p.name: r.summaries[p.source.column] for p in ports if p.source.column in r.summaries
        }
        probs, take = exit_decision(self.local(presence, received)["logits"], self.threshold)
        done = np.array([self.ledger.answered(r.start + k) for k in range(r.n)], bool)
        r.local_probs = probs
        r.send = ~take & ~done  # a retried round asks only for what is still unanswered
        r.decision = encode_mask(r.send)
        local = np.flatnonzero(take & ~done)
        mask = _bits(r.present)
        self._publish(self._answers(r, local, 0, np.argmax(probs[local], axis=1), False, mask, 0))
        r.decided.set()
        if not r.send.any():
            self._finish(r)
        else:
            r.timer = asyncio.get_running_loop().call_later(self.gather_s, self._forward_soon, r)

    def _answers(self, r, ks, exit_index, predictions, degraded, local_mask, cloud_mask):
        """Answer rows for samples ``r.start + ks``, one prediction each (the fields of
        :data:`ddnn_tf.serve.results.ANSWER_FIELDS`), answered now."""
        now = time.monotonic()
        sent = [0] * self.num_devices  # payload bytes per device, the same for the round
        for d in r.present:
            sent[d] = self.summary_bytes + (self.feature_nbytes[d] if d in r.features else 0)
        return [
            [r.start + int(k), exit_index, int(p), degraded, local_mask, cloud_mask, now, [*sent]]
            for k, p in zip(ks, predictions, strict=True)
        ]

    def _publish(self, rows: list[list]) -> None:
        """Deliver answers (each sample once: a retried round's answered ones are skipped)."""
        rows = [row for row in rows if not self.ledger.answered(row[0])]
        for row in rows:
            self.ledger.mark(row[0])
        self.log.add(rows)

    def _finish(self, r: _Round) -> None:
        r.finished.set()
        self.ledger.finish(r.start)
        self.rounds.pop(r.start, None)
        if self.journal is not None:
            self.journal.finished(r.start)
            if self.journal.due():
                self.journal.compact(self.log, self.ledger.finished_rounds())

    # ------------------------------------------------------------------ features
    async def features(self, device: int, start: int, body: bytes) -> dict:
        r = self.rounds.get(start)
        if r is not None and device in r.features:  # a retry (a lost response): wait again
            if r.features[device] != body:
                raise ServiceError(
                    409,
                    "duplicate",
                    f"device {device} already sent other features for round {start}.",
                )
            await r.finished.wait()
            return {"accepted": len(body) // self.feature_nbytes[device]}
        if self.ledger.finished(start) or (r is not None and (r.forwarding or r.finished.is_set())):
            return {"accepted": 0, "late": True}  # the round went on without them
        if r is None or not r.decided.is_set():
            raise ServiceError(409, "unknown_round", f"round {start} is not waiting for features.")
        if device not in r.present:
            raise ServiceError(
                409,
                "not_expected",
                f"round {start} expects no features from "
                f"device {device} (its summaries were not counted).",
            )
        nbytes = self.feature_nbytes[device]
        m = int(r.send.sum())
        if len(body) != m * nbytes:
            raise ServiceError(
                400,
                "bad_body",
                f"round {start} needs {m} x {nbytes} bytes of packed features, got {len(body)} "
                f"(byte offset {min(len(body), m * nbytes)}).",
            )
        try:
            self._unpack(device, body, m)
        except ValueError as err:
            raise ServiceError(400, "bad_body", str(err)) from None
        r.features[device] = body
        if set(r.present) <= set(r.features) and not r.finished.is_set():
            self._forward_soon(r)
        await r.finished.wait()
        return {"accepted": m}

    def _unpack(self, device: int, body: bytes, m: int) -> np.ndarray:
        packed = np.frombuffer(body, np.uint8).reshape(m, self.feature_nbytes[device])
        return unpack_features_batch(packed, self.feature_shapes[device])

    def _forward_soon(self, r: _Round) -> None:
        if r.timer is not None:
            r.timer.cancel()
            r.timer = None
        if r.forwarding or r.finished.is_set():
            return
        r.forwarding = True
        asyncio.get_running_loop().create_task(self._forward(r))

    async def _forward(self, r: _Round) -> None:
        senders = sorted(r.features)
        rows = np.flatnonzero(r.send)
        masks = _bits(r.present), _bits(senders)
        fallback, fallback_exit = r.local_probs[rows], 0  # what a degraded sample is told
        try:
            if not senders:
                raise ConnectionError("no device sent its features")
            if self.edges is None:
                presence = np.zeros((len(rows), self.num_devices), bool)
                presence[:, senders] = True
                payloads = [
                    {
                        self.devices[d]: _row(r.features[d], j, self.feature_nbytes[d])
                        for d in senders
                    }
                    for j in range(len(rows))
                ]
                upward = np.arange(len(rows))
            else:
                present = np.zeros(self.num_devices, bool)
                present[senders] = True
                features = {d: self._unpack(d, r.features[d], len(rows)) for d in senders}
                outcome = self.edges.run(features, present, len(rows))
                if outcome.probs is not None:
                    fallback, fallback_exit = outcome.probs, self.exits.index("edge")
                    edge = np.flatnonzero(outcome.take)
                    predictions = np.argmax(outcome.probs[edge], axis=1)
                    self._publish(
                        self._answers(r, rows[edge], fallback_exit, predictions, False, *masks)
                    )
                upward = np.flatnonzero(~outcome.take)
                presence = np.broadcast_to(
                    outcome.edge_alive, (len(upward), len(outcome.edge_alive))
                )
                payloads = outcome.payloads
            if len(upward):
                body = encode_cloud_records(self.cloud, presence, payloads)
                predictions = await self._call_cloud(body, len(upward))
                last = len(self.exits) - 1
                self._publish(self._answers(r, rows[upward], last, predictions, False, *masks))
        except ConnectionError as err:  # the cloud is unreachable or failed: answer lower down
            if self.cloud_error is None:
                print(f"gateway: cloud unavailable, answering locally: {err}", file=sys.stderr)
            self.cloud_error = f"{type(err).__name__}: {err}"
            predictions = np.argmax(fallback, axis=1)
            # the samples answered at the edge are skipped by _publish
            self._publish(self._answers(r, rows, fallback_exit, predictions, True, *masks))
        self._finish(r)

    async def _call_cloud(self, body: bytes, n: int) -> list[int]:
        """The cloud's predictions for ``n`` records; an unreachable cloud (no answer, or
        a 5xx) is retried with back-off until it has been away ``cloud_retry_s``."""
        delay = 0.05
        while True:
            try:
                predictions = await self._cloud_once(body, n)
            except _CloudAway:
                now = time.monotonic()
                if self._cloud_down_since is None:
                    self._cloud_down_since = now
                left = self._cloud_down_since + self.cloud_retry_s - now
                if left <= 0:
                    raise
                self.cloud_retries += 1
                await asyncio.sleep(min(delay, left))
                delay = min(2 * delay, 1.0)
                continue
            self._cloud_down_since = None
            self.cloud_error = None
            return predictions

    async def _cloud_once(self, body: bytes, n: int) -> list[int]:
        self.cloud_calls += 1
        try:
            response = await self._client.post("/v1/cloud", content=body)
        except httpx.RequestError as err:
            raise _CloudAway(f"{type(err).__name__}: {err}") from None
        what = f"cloud answered {response.status_code}: {response.text[:200]}"
        if response.status_code >= 500:
            raise _CloudAway(what)
        if response.status_code != 200:
            raise ConnectionError(what)
        try:
            predictions = [int(res["prediction"]) for res in response.json()["results"]]
        except (ValueError, KeyError, TypeError) as err:
            raise ConnectionError(f"cloud answered a malformed body ({err!r})") from None
        if len(predictions) != n:
            raise ConnectionError(f"cloud answered {len(predictions)} results for {n} records")
        return predictions


class _CloudAway(ConnectionError):
    """The cloud did not answer, or answered 5xx: worth another try."""


def _bits(devices: list[int]) -> int:
    return sum(1 << d for d in devices)


def _row(body: bytes, j: int, nbytes: int) -> bytes:
    return body[j * nbytes : (j + 1) * nbytes]


def create_gateway_app(
    model_dir: str | Path,
    cloud_url: str,
    *,
    token: str | None = None,
    cloud_token: str | None = None,
    threshold=None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    deadline_s: float = DEFAULT_DEADLINE_S,
    gather_s: float = 2.0,
    join_s: float = 120.0,
    cloud_timeout_s: float = 5.0,
    target: str = "portable",
    batch: int = 64,
    window: int = 4096,
    journal: str | Path | None = None,
    cloud_retry_s: float = 5.0,
    mqtt=None,
) -> FastAPI:
    """The gateway's FastAPI app (see the module docstring for the protocol).

    Args:
        model_dir: a converted model directory.
        cloud_url: the cloud service's base URL.
        token: shared token the devices must send (None: none).
        cloud_token: token sent to the cloud.
        threshold: T of every early exit (None: the manifest's).
        max_body_bytes: request body limit.
        deadline_s: per-request deadline (a held summary or features request included).
        gather_s: how long a round waits for a device before counting it absent.
        join_s: how long the first round waits for all devices to join.
        cloud_timeout_s: timeout of one cloud request.
        target: ``portable`` or ``lce``.
        batch: the round length (round starts are multiples of it).
        window: answers kept for reconnecting subscribers (and the span of round starts
            accepted around the newest round, in samples).
        journal: file the answers are written to and read back from on start.
        cloud_retry_s: how long rounds retry an unreachable cloud before answering lower
            down (degraded).
        mqtt: :class:`ddnn_tf.serve.mqtt.MqttSettings` to also serve the devices over MQTT
            (None: HTTP only).

    Raises:
        FileNotFoundError / ValueError: a bad model directory or option.
    """
    gw = Gateway(
        model_dir,
        cloud_url,
        cloud_token=cloud_token,
        threshold=threshold,
        gather_s=gather_s,
        join_s=join_s,
        cloud_timeout_s=cloud_timeout_s,
        target=target,
        batch=batch,
        window=window,
        journal=journal,
        cloud_retry_s=cloud_retry_s,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        await gw.start()
        bridge = None
        if mqtt is not None:
            from ddnn_tf.serve.mqtt_gateway import GatewayBridge

            bridge = GatewayBridge(gw, mqtt, deadline_s, max_body_bytes)
            await bridge.start()
        yield
        if bridge is not None:
            await bridge.stop()
        await gw.stop()

    app = FastAPI(
        title="ddnn-tf gateway", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    install_error_handlers(app)
    app.state.gateway = gw
    add_status_routes(app, gw.info, token)
    expect = (gw.model, gw.num_devices, max_body_bytes)

    def device_route(kind: str):
        async def route(request: Request) -> Response:
            check_auth(request, token)
            if _MEDIA[kind] is not None:
                check_content_type(request, _MEDIA[kind])
            h = request.headers
            body = b"" if kind == "join" else await read_body(request, max_body_bytes)
            msg = parse_message(
                kind,
                device=h.get("x-ddnn-device"),
                start=h.get("x-ddnn-start"),
                model=h.get("x-ddnn-model"),
                body=body,
                expect=expect,
                fields=_FIELDS,
            )
            out = await gw.answer(msg, deadline_s, f"POST /v1/{kind}")
            if isinstance(out, bytes):
                return Response(out, media_type=DECISION_TYPE)
            return JSONResponse(out)

        return route

    for kind in KINDS:
        app.add_api_route(f"/v1/{kind}", device_route(kind), methods=["POST"])

    @app.get("/v1/progress")
    async def progress(request: Request) -> dict:
        check_auth(request, token)
        return {
            "answered": gw.log.answered,
            "kept": len(gw.log.recent),
            "window": gw.log.window,
            "rounds_open": len(gw.rounds),
            "ledger": len(gw.ledger),
            "subscribers": len(gw.log.subscribers),
            "restored": gw.restored,
            "boot": gw.boot,
            "alive": sorted(gw.alive),
            "cloud_error": gw.cloud_error,
            "cloud_calls": gw.cloud_calls,
            "cloud_retries": gw.cloud_retries,
        }

    @app.get("/v1/results")
    async def results(request: Request) -> dict:
        check_auth(request, token)
        return {
            "fields": list(ANSWER_FIELDS),
            "exits": gw.manifest["split"],
            "threshold": gw.threshold,
            "thresholds": gw.thresholds,
            "answered": gw.log.answered,
            "window": gw.log.window,
            "results": gw.log.rows(),
        }

    @app.get("/v1/answers")
    async def answers(request: Request) -> StreamingResponse:
        check_auth(request, token)
        raw = request.query_params.get("after", request.headers.get("last-event-id"))
        after = None if raw is None else ascii_int(raw)
        if raw is not None and after is None:
            raise ServiceError(
                400,
                "bad_request",
                f"after: expected an answer number in ASCII digits, got {raw[:40]!r}.",
            )
        hello = {
            "model": gw.model,
            "boot": gw.boot,
            "exits": list(gw.exits),
            "fields": ["seq", *ANSWER_FIELDS, "exit_name"],
        }
        return StreamingResponse(
            gw.log.stream(hello, after),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return app
