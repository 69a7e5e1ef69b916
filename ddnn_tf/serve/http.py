"""HTTP plumbing shared by the services: JSON errors, auth, media types, body limit.

Every non-200 answer is the protocol's error body (:func:`ddnn_tf.serve.protocol.error_body`,
codes on docs/protocol.md); an unexpected exception is answered ``internal``, its
traceback on standard error.
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ddnn_tf.serve.protocol import ServiceError, ascii_int, error_body, service_error, too_large

__all__ = ["add_status_routes", "check_auth", "check_content_type", "read_body", "service_app"]

#: The FastAPI settings of every service, and of the serving benchmark's bare endpoint: no
#: docs pages or OpenAPI schema, and no OpenTelemetry instrumentation (FastAPI otherwise
#: looks for a configured provider on every request).
APP_OPTIONS: dict[str, Any] = {
    "docs_url": None,
    "redoc_url": None,
    "openapi_url": None,
    "telemetry": {"tracing": False, "metrics": False, "logs": False},
}


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}


async def _error(_: Request, err: Exception) -> JSONResponse:
    if isinstance(err, StarletteHTTPException):
        code = _HTTP_CODES.get(err.status_code, "http_error")
        err = ServiceError(err.status_code, code, str(err.detail))
    elif isinstance(err, RequestValidationError):
        err = ServiceError(400, "bad_request", str(err.errors()))
    else:
        err = service_error(err)
    return JSONResponse(error_body(err.code, err.message), status_code=err.status)


def service_app(title: str | None = None, lifespan=None) -> FastAPI:
    """A service's FastAPI app (:data:`APP_OPTIONS`) that answers every error (ours,
    routing, validation, crashes) with the protocol's JSON error body."""
    kinds = (ServiceError, StarletteHTTPException, RequestValidationError, Exception)
    handlers = dict.fromkeys(kinds, _error)
    return FastAPI(
        title=title or "ddnn-tf", lifespan=lifespan, exception_handlers=handlers, **APP_OPTIONS
    )


def add_status_routes(app: FastAPI | APIRouter, info: dict[str, Any], token: str | None) -> None:
    """``GET /healthz``, ``/readyz`` (open) and ``/v1/model`` (answering ``info``, checked
    against ``token`` when there is one) on ``app``."""

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> dict:
        return {"status": "ready"}

    @app.get("/v1/model")
    async def model(request: Request) -> dict:
        check_auth(request, token)
        return info


def check_auth(request: Request, token: str | None) -> None:
    """Require ``Authorization: Bearer <token>`` when the service has a token.

    Raises:
        ServiceError: 401 ``unauthorized``.
    """
    if token is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    # as bytes (the header's own, which Starlette decodes as Latin-1): compare_digest
    # refuses str with non-ASCII characters
    given = given.strip().encode("latin-1")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given, token.encode()):
        raise ServiceError(
            401, "unauthorized", "missing or wrong token: send Authorization: Bearer <token>."
        )


def check_content_type(request: Request, expected: str) -> None:
    """Require the request's media type to be ``expected``.

    Raises:
        ServiceError: 415 ``unsupported_media_type``.
    """
    given = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if given != expected:
        raise ServiceError(
            415,
            "unsupported_media_type",
            f"Content-Type {given or '(none)'!r}: expected {expected}.",
        )


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused past ``limit`` bytes without reading it all.

    Raises:
        ServiceError: 413 ``too_large``; 400 ``bad_body`` on a bad Content-Length.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        size = ascii_int(declared)
        if size is None:
            raise ServiceError(
                400, "bad_body", f"Content-Length {declared[:40]!r} is not a number."
            )
        if size > limit:
            raise too_large(limit, size)
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)
