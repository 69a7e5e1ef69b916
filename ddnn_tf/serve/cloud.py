"""The cloud tier as an HTTP service (``POST /v1/cloud``, specified in docs/protocol.md).

:func:`create_cloud_app` builds the app that ``serve cloud`` serves; :func:`cloud_app` is
its base, shared with ``serve demo``; :func:`add_cloud_routes` adds its routes to an app
(the Ray Serve deployment's too). Concurrent requests are gathered into one interpreter
call (:class:`MicroBatcher`).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from ddnn_tf.core.exits import softmax
from ddnn_tf.core.manifest import Manifest, load_manifest
from ddnn_tf.runtime.tiers import TierRunner
from ddnn_tf.serve.batching import MicroBatcher
from ddnn_tf.serve.http import (
    add_status_routes,
    check_auth,
    check_content_type,
    read_body,
    service_app,
)
from ddnn_tf.serve.protocol import ServiceError, check_model, with_deadline
from ddnn_tf.serve.settings import CloudSettings, ServiceSettings, settings_of
from ddnn_tf.serve.wire import (
    FEATURES_TYPE,
    CloudRecords,
    CloudSpec,
    WireError,
    decode_cloud_records,
    describe_model,
    model_id,
    read_cloud_records,
)

__all__ = ["CloudTier", "add_cloud_routes", "cloud_app", "create_cloud_app"]


class CloudTier:
    """The cloud tier binary behind the wire format: records in, probabilities out.

    Args:
        model_dir: a converted model directory (or a loaded Manifest).
        target: ``portable`` or ``lce``.
        num_threads: interpreter threads.

    Raises:
        FileNotFoundError / ValueError: a bad model directory, or a model whose cloud
            takes raw inputs.
    """

    def __init__(
        self, model_dir: str | Path | Manifest, *, target: str = "portable", num_threads: int = 1
    ) -> None:
        self.manifest = model_dir if isinstance(model_dir, Manifest) else load_manifest(model_dir)
        self.model = model_id(self.manifest)
        self.spec = CloudSpec.from_manifest(self.manifest)
        self.runner = TierRunner.from_manifest(
            self.manifest, self.spec.tier, target, num_threads=num_threads
        )
        self.info = describe_model(self.manifest, self.model)
        self._lock = threading.Lock()

    def classify_many(self, requests: list[CloudRecords]) -> list[list[dict[str, Any]]]:
        """Classify several requests' records in one interpreter call (the batch function):
        per request, ``[{"prediction", "probs"}]`` per record (softmax in float64)."""
        presence, features = decode_cloud_records(self.spec, requests)
        feeds = {self.spec.inputs[s]: features[s] for s in self.spec.senders}
        feeds[self.spec.presence_input] = presence.astype(np.float32)
        with self._lock:  # one interpreter, one caller at a time
            logits = self.runner(feeds)["logits"]
        probs = softmax(np.asarray(logits, np.float64))
        out = [
            {"prediction": p, "probs": row}
            for p, row in zip(np.argmax(probs, axis=1).tolist(), probs.tolist(), strict=True)
        ]
        bounds = itertools.accumulate((r.n for r in requests), initial=0)
        return [out[a:b] for a, b in itertools.pairwise(bounds)]


def add_cloud_routes(app: FastAPI, tier: CloudTier, submit, settings: ServiceSettings) -> None:
    """The cloud's routes on ``app`` (``/healthz``, ``/readyz``, ``/v1/model``, ``POST
    /v1/cloud``).

    Args:
        app: the app (the cloud's, the phone demo's, or Ray Serve's ingress), made by
            :func:`~ddnn_tf.serve.http.service_app` so that every error is answered as the
            protocol's JSON error body.
        tier: the loaded cloud tier.
        submit: ``async submit(records) -> results`` classifies one request's
            :class:`~ddnn_tf.serve.wire.CloudRecords`: a :class:`MicroBatcher`'s over
            :meth:`CloudTier.classify_many`, or Ray Serve's ``@serve.batch`` method.
        settings: the service's token, body limit and per-request deadline.
    """
    token, limit, deadline_s = settings.token, settings.max_body_bytes, settings.deadline_s
    add_status_routes(app, tier.info, token)

    async def cloud(request: Request) -> Response:
        check_auth(request, token)
        check_content_type(request, FEATURES_TYPE)
        check_model(request.headers.get("x-ddnn-model"), tier.model, "X-DDNN-Model header")

        async def handle() -> dict:
            body = await read_body(request, limit)
            try:
                records = read_cloud_records(tier.spec, body)
            except WireError as err:
                raise ServiceError(400, "bad_body", str(err)) from None
            results = await submit(records)
            return {"model": tier.model, "exit": "cloud", "results": results}

        answer = await with_deadline(handle(), deadline_s, "POST /v1/cloud")
        return Response(orjson.dumps(answer), media_type="application/json")

    # A plain Starlette route: the request is all it reads, so FastAPI's dependency
    # solving, which costs about a fifth of a one-sample request, has nothing to do.
    app.add_route("/v1/cloud", cloud, methods=["POST"])


def cloud_app(tier: CloudTier, settings: ServiceSettings, title: str, max_batch: int) -> FastAPI:
    """A FastAPI app with the cloud's routes (:func:`add_cloud_routes`) and a
    :class:`MicroBatcher` (closed when the app stops): the cloud's, and the base of the
    phone demo's.

    Returns:
        The app; ``app.state.tier`` is the tier, ``app.state.batcher`` the batcher.
    """
    batcher = MicroBatcher(tier.classify_many, size=lambda records: records.n, max_batch=max_batch)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        batcher.close()

    app = service_app(title, lifespan)
    add_cloud_routes(app, tier, batcher.submit, settings)
    app.state.tier, app.state.batcher = tier, batcher
    return app


def create_cloud_app(settings: CloudSettings | str | Path, **options) -> FastAPI:
    """The cloud tier's FastAPI app (``app.state.tier`` is the :class:`CloudTier`), from its
    :class:`~ddnn_tf.serve.settings.CloudSettings` or a model directory and settings as
    keywords.

    Raises:
        FileNotFoundError / ValueError: a bad model directory or option.
    """
    s = settings_of(CloudSettings, settings, options)
    app = cloud_app(CloudTier(s.model, target=s.target), s, "ddnn-tf cloud", s.max_batch)
    if s.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(s.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "Authorization", "X-DDNN-Model"],
        )
    return app
