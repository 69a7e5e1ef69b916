"""The cloud tier as an HTTP service (``POST /v1/cloud``, specified in docs/protocol.md).

:func:`create_cloud_app` builds the FastAPI app that ``serve cloud`` serves
(:func:`ddnn_tf.serve.run_server.serve_cloud`, from its
:class:`~ddnn_tf.serve.settings.CloudSettings`);
:func:`cloud_app` is its base, shared with ``serve demo``; :func:`cloud_router` is its
routes alone, which the Ray Serve deployment mounts. The tier runs through the TF-free runtime (:class:`~ddnn_tf.runtime.TierRunner`);
concurrent requests are gathered into one interpreter call (:class:`MicroBatcher`).
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from ddnn_tf.core.exits import softmax
from ddnn_tf.core.manifest import Manifest, load_manifest
from ddnn_tf.runtime.tiers import TierRunner
from ddnn_tf.serve.batching import MicroBatcher
from ddnn_tf.serve.http import (
    add_status_routes,
    check_auth,
    check_content_type,
    check_model,
    install_error_handlers,
    read_body,
)
from ddnn_tf.serve.protocol import ServiceError, with_deadline
from ddnn_tf.serve.settings import (
    DEFAULT_DEADLINE_S,
    DEFAULT_MAX_BODY_BYTES,
    CloudSettings,
    ServiceSettings,
    settings_of,
)
from ddnn_tf.serve.wire import (
    FEATURES_TYPE,
    CloudSpec,
    WireError,
    describe_model,
    model_id,
    parse_cloud_records,
)

__all__ = ["CloudTier", "cloud_app", "cloud_router", "create_cloud_app"]


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
        self.num_classes = len(self.manifest["classes"])
        self.info = describe_model(self.manifest, self.model)
        self._lock = threading.Lock()

    def logits(self, presence: np.ndarray, features: dict[str, np.ndarray]) -> np.ndarray:
        """Cloud logits ``(n, C)`` float32 for parsed records."""
        feeds = {self.spec.inputs[s]: features[s] for s in self.spec.senders}
        feeds[self.spec.presence_input] = presence.astype(np.float32)
        with self._lock:  # one interpreter, one caller at a time
            return self.runner(feeds)["logits"]

    def classify(self, body: bytes) -> list[dict[str, Any]]:
        """Parse a request body and classify its records (no batching).

        Raises:
            WireError: the body does not parse.
        """
        presence, features = parse_cloud_records(self.spec, body)
        return self.results(self.logits(presence, features))

    @staticmethod
    def results(logits: np.ndarray) -> list[dict[str, Any]]:
        """``[{"prediction", "probs"}]`` from float32 logits (softmax in float64)."""
        probs = softmax(np.asarray(logits, np.float64))
        predictions = np.argmax(probs, axis=1)
        return [
            {"prediction": int(p), "probs": [float(v) for v in row]}
            for p, row in zip(predictions, probs, strict=True)
        ]

    def classify_many(self, parsed: list[tuple[np.ndarray, dict]]) -> list[list[dict]]:
        """Classify several parsed requests in one interpreter call (the batch function)."""
        presence = np.concatenate([p for p, _ in parsed])
        features = {s: np.concatenate([f[s] for _, f in parsed]) for s in self.spec.senders}
        out = self.results(self.logits(presence, features))
        split, start = [], 0
        for p, _ in parsed:
            split.append(out[start : start + len(p)])
            start += len(p)
        return split


def cloud_router(
    tier: CloudTier,
    submit,
    *,
    token: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    deadline_s: float = DEFAULT_DEADLINE_S,
) -> APIRouter:
    """The cloud's routes (``/healthz``, ``/readyz``, ``/v1/model``, ``POST /v1/cloud``).

    Errors are raised as :class:`~ddnn_tf.serve.protocol.ServiceError`; the app that
    mounts the router answers them as JSON with
    :func:`~ddnn_tf.serve.http.install_error_handlers`.

    Args:
        tier: the loaded cloud tier.
        submit: ``async submit(parsed) -> results`` classifies one parsed request
            ``(presence, features)``: a :class:`MicroBatcher`'s over
            :meth:`CloudTier.classify_many`, or Ray Serve's ``@serve.batch`` method.
        token: the shared token every request must carry (None: no auth).
        max_body_bytes: the request body limit.
        deadline_s: per-request deadline.
    """
    router = APIRouter()
    add_status_routes(router, tier.info, token)

    @router.post("/v1/cloud")
    async def cloud(request: Request) -> JSONResponse:
        check_auth(request, token)
        check_content_type(request, FEATURES_TYPE)
        check_model(request, tier.model)

        async def handle() -> dict:
            body = await read_body(request, max_body_bytes)
            try:
                parsed = parse_cloud_records(tier.spec, body)
            except WireError as err:
                raise ServiceError(400, "bad_body", str(err)) from None
            results = await submit(parsed)
            return {"model": tier.model, "exit": "cloud", "results": results}

        return JSONResponse(await with_deadline(handle(), deadline_s, "POST /v1/cloud"))

    return router


def cloud_app(tier: CloudTier, settings: ServiceSettings, title: str, max_batch: int) -> FastAPI:
    """A FastAPI app serving :func:`cloud_router` with a :class:`MicroBatcher` (closed when
    the app stops): the cloud's, and the base of the phone demo's.

    Returns:
        The app; ``app.state.tier`` is the tier, ``app.state.batcher`` the batcher.
    """
    batcher = MicroBatcher(tier.classify_many, size=lambda item: len(item[0]), max_batch=max_batch)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        batcher.close()

    app = FastAPI(title=title, lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    install_error_handlers(app)
    s = settings
    app.include_router(
        cloud_router(
            tier,
            batcher.submit,
            token=s.token,
            max_body_bytes=s.max_body_bytes,
            deadline_s=s.deadline_s,
        )
    )
    app.state.tier, app.state.batcher = tier, batcher
    return app


def create_cloud_app(settings: CloudSettings | str | Path, **options) -> FastAPI:
    """The cloud tier's FastAPI app.

    Args:
        settings: the :class:`~ddnn_tf.serve.settings.CloudSettings`, or the model
            directory (then ``options`` are the other settings: ``token``, ``target``,
            ``max_batch``, ``cors_origins`` ...).

    Returns:
        The app; ``app.state.tier`` is the :class:`CloudTier`.

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
