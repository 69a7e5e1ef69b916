"""The gateway: the local aggregator the end devices talk to, forwarding to the cloud.

:class:`Gateway` speaks the device side of docs/protocol.md: it keeps the rounds, runs
the local aggregator and its exit, hosts the edge tiers (:mod:`ddnn_tf.serve.edges`) and
forwards the rest to the cloud; :func:`create_gateway_app` is its FastAPI app. Every
answer is delivered once, as it is made (:mod:`ddnn_tf.serve.results`). The model needs a
local exit (split ``local,cloud`` or ``local,edge,cloud``).
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
from fastapi import APIRouter, FastAPI, Request
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
    read_body,
    service_app,
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
from ddnn_tf.serve.settings import GatewaySettings, service_token, settings_of
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

__all__ = ["NODELAY", "Gateway", "create_gateway_app", "gateway_router", "serve_gateway"]

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
    summaries: dict[int, np.ndarray] = field(default_factory=dict)  # the devices counted
    raw: dict[int, bytes] = field(default_factory=dict)  # each device's message body
    decided: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    send: np.ndarray | None = None  # (n,) bool: samples that go up
    decision: bytes = b""
    local_probs: np.ndarray | None = None
    features: dict[int, bytes] = field(default_factory=dict)  # the flagged samples' features
    timer: asyncio.TimerHandle | None = None
    forwarding: bool = False


class Gateway:
    """The local aggregator's state (devices, rounds, answers) under its
    :class:`~ddnn_tf.serve.settings.GatewaySettings`.

    Attributes:
        pace: a hook ``pace(kind, nbytes) -> seconds`` that holds each request to the
            cloud that long before it is sent (a WAN's delay, emulated on loopback:
            :class:`ddnn_tf.serve.airtime.WanPacer` with the settings' ``wan``); None: none.

    Raises:
        FileNotFoundError / ValueError: a bad model directory, or a topology the gateway
            does not serve.
    """

    pace = None

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = s = settings
        self.manifest = m = load_manifest(s.model)
        if m["split"][0] != "local":
            raise ConfigError(
                f"{m.directory}: the gateway serves models with a local exit; this one is "
                f"split {','.join(m['split'])}."
            )
        self.model = model_id(m)
        self.info = describe_model(m, self.model)
        self.exits = tuple(m["split"])
        self.thresholds = resolve_thresholds(s.threshold, self.exits[:-1], m["thresholds"])
        self.threshold = self.thresholds["local"]
        graph = model_graph(m)
        (local,) = graph.by_role("local_aggregator")
        self.local = TierStep(local, TierRunner.from_manifest(m, local.name, s.target))
        self.cloud = CloudSpec.from_manifest(m)
        self.devices = [t.name for t in graph.by_role("device")]
        self.num_devices = len(self.devices)
        self.edges = None  # the cloud's senders are the edges when there are any
        if graph.by_role("edge"):
            self.edges = EdgeStage(m, graph, s.target, self.thresholds.get("edge"))
        wire = m["wire"]["features"]
        self.feature_nbytes = [int(wire[d]["nbytes"]) for d in self.devices]
        self.feature_shapes = [tuple(wire[d]["shape"]) for d in self.devices]
        self.num_classes = len(m["classes"])
        self.encoding = m["wire"]["summary"].get("encoding", "float32")
        self.summary_bytes = summary_size(m)
        self.eager = s.mode == "eager"  # features come with the summaries
        self.batch = s.batch
        if s.wan is not None:
            from ddnn_tf.serve.airtime import WanPacer

            self.pace = WanPacer(s.wan)
        self.alive: set[int] = set(range(self.num_devices))
        self.joined: set[int] = set()
        self.heard: dict[int, float] = {}  # device -> when its last message arrived
        self.rounds: dict[int, _Round] = {}
        self.boot = secrets.token_hex(8)  # tells a subscriber this process from the last
        self.journal = None
        if s.journal is not None:
            self.journal = Journal(s.journal, self.model, s.batch, s.window)
        self.log = AnswerLog(s.window, self.exits, self.journal)
        self.ledger = RoundLedger(s.batch, max(2, s.window // s.batch))
        self.restored = restore(self.log, self.ledger, self.journal) if self.journal else 0
        self.cloud_error: str | None = None
        self.cloud_calls = 0
        self.cloud_retries = 0
        self._cloud_down_since: float | None = None
        self._all_joined: asyncio.Event | None = None
        self._client: httpx.AsyncClient | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        """Start on the running event loop; ``transport`` carries the requests to the cloud
        (default: TCP to the settings' ``cloud``; the phone demo's gateway calls its own
        app's cloud route in-process)."""
        self.loop = asyncio.get_running_loop()  # where answers are made (and must be added)
        self._all_joined = asyncio.Event()
        headers = {"X-DDNN-Model": self.model, "Content-Type": FEATURES_TYPE}
        token = self.settings.cloud_token or self.settings.token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        # TCP_NODELAY: httpx writes the headers and the body separately; without it Nagle's
        # algorithm holds the body back until the headers are acknowledged.
        self._client = httpx.AsyncClient(
            base_url=self.settings.cloud.rstrip("/"),
            headers=headers,
            timeout=self.settings.cloud_timeout_s,
            transport=transport or httpx.AsyncHTTPTransport(socket_options=NODELAY),
        )

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        if self.journal is not None:
            self.journal.close()

    async def answer(self, msg: Message, deadline_s: float, what: str) -> bytes | dict:
        """Answer one checked device message (for the HTTP routes and the MQTT bridge): a
        summary's decision mask, or a join's or features' JSON-able dict. A join is held
        by its own bound, the others by ``deadline_s``.

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

    def progress(self) -> dict:
        """``GET /v1/progress``: the window, the rounds, the devices and the cloud."""
        return {
            "answered": self.log.answered,
            "kept": len(self.log.recent),
            "window": self.log.window,
            "rounds_open": len(self.rounds),
            "ledger": len(self.ledger),
            "subscribers": len(self.log.subscribers),
            "restored": self.restored,
            "boot": self.boot,
            "alive": sorted(self.alive),
            "cloud_error": self.cloud_error,
            "cloud_calls": self.cloud_calls,
            "cloud_retries": self.cloud_retries,
        }

    def results(self) -> dict:
        """``GET /v1/results``: the kept answers, in sample order."""
        return {
            "fields": list(ANSWER_FIELDS),
            "exits": list(self.exits),
            "threshold": self.threshold,
            "thresholds": self.thresholds,
            "answered": self.log.answered,
            "window": self.log.window,
            "results": self.log.rows(),
        }

    def hello(self) -> dict:
        """What the result stream says first (the window's figures are added to it)."""
        fields = ["seq", *ANSWER_FIELDS, "exit_name"]
        return {"model": self.model, "boot": self.boot, "exits": list(self.exits), "fields": fields}

    async def join(self, device: int) -> dict:
        self.joined.add(device)
        self.alive.add(device)
        if len(self.joined) == self.num_devices:
            self._all_joined.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_joined.wait(), self.settings.join_s)
        if not self._all_joined.is_set():  # the stragglers count as absent until they speak
            self.alive &= self.joined
            self._all_joined.set()
        return {
            "model": self.model,
            "devices": sorted(self.joined),
            "batch": self.batch,
            "mode": self.settings.mode,
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
        step = size + (self.feature_nbytes[device] if self.eager else 0)
        if not body or len(body) % step:
            what = f"{size}-byte {self.encoding} summaries"
            if self.eager:
                what += f", each sample's followed by {step - size} bytes of packed features"
            raise ServiceError(
                400,
                "bad_body",
                f"expected a whole number of {what}, got {len(body)} bytes (byte offset "
                f"{len(body) - len(body) % step}).",
            )
        n = len(body) // step
        try:
            payload = np.frombuffer(body, np.uint8)[: n * size].reshape(n, size)
            values = decode_summaries(payload, self.num_classes, self.encoding)
            if self.eager:
                self._unpack(device, body[n * size :], n)
        except ValueError as err:
            raise ServiceError(400, "bad_body", str(err)) from None
        self.alive.add(device)
        if self.ledger.finished(start):  # answered already (or counted absent)
            return _none_sent(n)
        r = self._round(start, n)
        if device in r.raw:  # a retry (a lost response): the same answer again
            _same_retry(r.raw[device], body, device, "summaries", start)
        elif r.decided.is_set():  # too late: counted absent for this round
            return _none_sent(n)
        else:
            r.summaries[device], r.raw[device] = values, body
        if self.alive <= set(r.summaries):
            self._decide(r)
        elif r.timer is None:
            r.timer = asyncio.get_running_loop().call_later(self.settings.gather_s, self._decide, r)
        await r.decided.wait()
        if device not in r.summaries:
            return _none_sent(n)
        if self.eager:  # the message carried the features too: held until answered
            await r.finished.wait()
        return r.decision

    def _decide(self, r: _Round) -> None:
        if r.decided.is_set():
            return
        if r.timer is not None:
            r.timer.cancel()
        # a device silent since the round opened is absent from the next rounds too, until
        # it speaks again; one heard meanwhile (busy with another round) is still waited for
        self.alive -= {
            d
            for d in range(self.num_devices)
            if d not in r.summaries and self.heard.get(d, -np.inf) < r.opened
        }
        presence = np.zeros((r.n, self.num_devices), bool)
        presence[:, list(r.summaries)] = True
        ports = [p for p in self.local.tier.inputs if p.role == "summary"]
        received = {
            p.name: r.summaries[p.source.column] for p in ports if p.source.column in r.summaries
        }
        probs, take = exit_decision(self.local(presence, received)["logits"], self.threshold)
        done = np.array([self.ledger.answered(r.start + k) for k in range(r.n)], bool)
        r.local_probs = probs
        r.send = ~take & ~done  # a retried round asks only for what is still unanswered
        r.decision = encode_mask(r.send)
        if self.eager:  # the flagged samples' features, as a features message would carry
            for d in r.summaries:
                packed = np.frombuffer(r.raw[d], np.uint8)[r.n * self.summary_bytes :]
                r.features[d] = packed.reshape(r.n, -1)[r.send].tobytes()
        local = np.flatnonzero(take & ~done)
        self._publish(r, local, 0, np.argmax(probs[local], axis=1))
        r.decided.set()
        if not r.send.any():
            self._finish(r)
        elif self.eager:
            self._forward_soon(r)
        else:
            later = asyncio.get_running_loop().call_later
            r.timer = later(self.settings.gather_s, self._forward_soon, r)

    def _publish(self, r, ks, exit_index, predictions, cloud_mask=0, degraded=False) -> None:
        """Answer samples ``r.start + ks`` now (:data:`~ddnn_tf.serve.results.ANSWER_FIELDS`),
        each once: those of a retried round answered already are skipped."""
        now = time.monotonic()
        sent = [0] * self.num_devices  # payload bytes per device, the same for the round
        for d in r.summaries:
            sent[d] = self.summary_bytes + (self.feature_nbytes[d] if d in r.features else 0)
        local_mask, rows = _bits(r.summaries), []
        for k, p in zip(ks, predictions, strict=True):
            sample = r.start + int(k)
            if not self.ledger.answered(sample):
                self.ledger.mark(sample)
                row = [sample, exit_index, int(p), degraded, local_mask, cloud_mask, now, [*sent]]
                rows.append(row)
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
        if self.eager:
            raise ServiceError(
                409,
                "not_expected",
                "this gateway runs the eager protocol: a device's features come with its "
                "summaries.",
            )
        r = self.rounds.get(start)
        if r is not None and device in r.features:  # a retry (a lost response): wait again
            _same_retry(r.features[device], body, device, "features", start)
            await r.finished.wait()
            return {"accepted": len(body) // self.feature_nbytes[device]}
        if self.ledger.finished(start) or (r is not None and (r.forwarding or r.finished.is_set())):
            return {"accepted": 0, "late": True}  # the round went on without them
        if r is None or not r.decided.is_set():
            raise ServiceError(409, "unknown_round", f"round {start} is not waiting for features.")
        if device not in r.summaries:
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
        if r.summaries.keys() <= r.features.keys() and not r.finished.is_set():
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
        cloud_mask = _bits(senders)
        fallback, fallback_exit = r.local_probs[rows], 0  # what a degraded sample is told
        try:
            if not senders:
                raise ConnectionError("no device sent its features")
            present = np.isin(np.arange(self.num_devices), senders)
            if self.edges is None:  # the devices' features go up as they came
                upward = np.arange(len(rows))
                packed = {
                    self.devices[d]: np.frombuffer(r.features[d], np.uint8).reshape(len(rows), -1)
                    for d in senders
                }
                payloads = [{t: p[k].tobytes() for t, p in packed.items()} for k in upward]
            else:
                features = {d: self._unpack(d, r.features[d], len(rows)) for d in senders}
                out = self.edges.run(features, present, len(rows))
                if out.probs is not None:
                    fallback, fallback_exit = out.probs, self.exits.index("edge")
                    edge = np.flatnonzero(out.take)
                    predictions = np.argmax(out.probs[edge], axis=1)
                    self._publish(r, rows[edge], fallback_exit, predictions, cloud_mask)
                upward, present, payloads = np.flatnonzero(~out.take), out.edge_alive, out.payloads
            if len(upward):
                presence = np.broadcast_to(present, (len(upward), len(present)))
                body = encode_cloud_records(self.cloud, presence, payloads)
                predictions = await self._call_cloud(body, len(upward))
                self._publish(r, rows[upward], len(self.exits) - 1, predictions, cloud_mask)
        except ConnectionError as err:  # the cloud is unreachable or failed: answer lower down
            if self.cloud_error is None:
                print(f"gateway: cloud unavailable, answering locally: {err}", file=sys.stderr)
            self.cloud_error = f"{type(err).__name__}: {err}"
            predictions = np.argmax(fallback, axis=1)
            # the samples answered at the edge are skipped by _publish
            self._publish(r, rows, fallback_exit, predictions, cloud_mask, degraded=True)
        self._finish(r)

    async def _call_cloud(self, body: bytes, n: int) -> list[int]:
        """The cloud's predictions for ``n`` records; an unreachable cloud (no answer, or
        a 5xx) is retried with back-off until it has been away ``cloud_retry_s``."""
        delay = 0.05
        while True:
            self.cloud_calls += 1
            if self.pace is not None:
                await asyncio.sleep(self.pace("cloud", len(body)))
            try:
                response = await self._client.post("/v1/cloud", content=body)
                what = f"cloud answered {response.status_code}: {response.text[:200]}"
                if response.status_code < 500:
                    break
            except httpx.RequestError as err:
                what = f"{type(err).__name__}: {err}"
            now = time.monotonic()
            if self._cloud_down_since is None:
                self._cloud_down_since = now
            left = self._cloud_down_since + self.settings.cloud_retry_s - now
            if left <= 0:
                raise _CloudAway(what)
            self.cloud_retries += 1
            await asyncio.sleep(min(delay, left))
            delay = min(2 * delay, 1.0)
        if response.status_code != 200:
            raise ConnectionError(what)
        try:
            predictions = [int(res["prediction"]) for res in response.json()["results"]]
        except (ValueError, KeyError, TypeError) as err:
            raise ConnectionError(f"cloud answered a malformed body ({err!r})") from None
        if len(predictions) != n:
            raise ConnectionError(f"cloud answered {len(predictions)} results for {n} records")
        self._cloud_down_since = self.cloud_error = None
        return predictions


class _CloudAway(ConnectionError):
    """The cloud was away longer than the gateway waits for it."""


def _bits(devices) -> int:
    return sum(1 << d for d in devices)


def _none_sent(n: int) -> bytes:
    """The decision of a round a device takes no part in: send nothing."""
    return encode_mask(np.zeros(n, bool))


def _same_retry(kept: bytes, body: bytes, device: int, what: str, start: int) -> None:
    if kept != body:
        raise ServiceError(
            409, "duplicate", f"device {device} already sent other {what} for round {start}."
        )


def create_gateway_app(settings: GatewaySettings | str | Path, **options) -> FastAPI:
    """The gateway's FastAPI app (``app.state.gateway`` is the :class:`Gateway`), from its
    :class:`~ddnn_tf.serve.settings.GatewaySettings` or a model directory and settings as
    keywords; with transport ``mqtt`` it also serves the devices over MQTT
    (:class:`~ddnn_tf.serve.mqtt_gateway.GatewayBridge`).

    Raises:
        FileNotFoundError / ValueError: a bad model directory or option.
    """
    s = settings_of(GatewaySettings, settings, options)
    gw = Gateway(s)
    mqtt = s.mqtt()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        await gw.start()
        bridge = None
        if mqtt is not None:
            from ddnn_tf.serve.mqtt_gateway import GatewayBridge

            bridge = GatewayBridge(gw, mqtt, s.deadline_s, s.max_body_bytes)
            await bridge.start()
        yield
        if bridge is not None:
            await bridge.stop()
        await gw.stop()

    app = service_app("ddnn-tf gateway", lifespan)
    app.state.gateway = gw
    add_status_routes(app, gw.info, s.token)
    app.include_router(gateway_router(gw, s))
    return app


def gateway_router(gw: Gateway, s: GatewaySettings) -> APIRouter:
    """The gateway's routes besides the status ones: the devices' messages, ``GET
    /v1/progress``, ``/v1/results`` and ``/v1/answers`` (the phone demo serves them under
    ``/gateway``)."""
    router = APIRouter()
    expect = (gw.model, gw.num_devices, s.max_body_bytes)

    def device_route(kind: str):  # POST /v1/<kind>
        async def route(request: Request) -> Response:
            check_auth(request, s.token)
            if _MEDIA[kind] is not None:
                check_content_type(request, _MEDIA[kind])
            h = request.headers
            msg = parse_message(
                kind,
                device=h.get("x-ddnn-device"),
                start=h.get("x-ddnn-start"),
                model=h.get("x-ddnn-model"),
                body=b"" if kind == "join" else await read_body(request, s.max_body_bytes),
                expect=expect,
                fields=_FIELDS,
            )
            out = await gw.answer(msg, s.deadline_s, f"POST /v1/{kind}")
            if isinstance(out, bytes):
                return Response(out, media_type=DECISION_TYPE)
            return JSONResponse(out)

        return route

    for kind in KINDS:
        router.add_api_route(f"/v1/{kind}", device_route(kind), methods=["POST"])

    @router.get("/v1/progress")
    async def progress(request: Request) -> dict:
        check_auth(request, s.token)
        return gw.progress()

    @router.get("/v1/results")
    async def results(request: Request) -> dict:
        check_auth(request, s.token)
        return gw.results()

    @router.get("/v1/answers")
    async def answers(request: Request) -> StreamingResponse:
        check_auth(request, s.token)
        raw = request.query_params.get("after", request.headers.get("last-event-id"))
        after = None if raw is None else ascii_int(raw)
        if raw is not None and after is None:
            raise ServiceError(
                400,
                "bad_request",
                f"after: expected an answer number in ASCII digits, got {raw[:40]!r}.",
            )
        return StreamingResponse(
            gw.log.stream(gw.hello(), after),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return router


def serve_gateway(settings: GatewaySettings) -> None:
    """``ddnn serve gateway``: serve the gateway until SIGINT/SIGTERM.

    Raises:
        ConfigError: beyond loopback without a token; a bad model or option.
    """
    from ddnn_tf.serve.run_server import run_app

    settings = settings.replace(token=service_token(settings.host, settings.token))
    run_app(create_gateway_app(settings), settings.host, settings.port)
