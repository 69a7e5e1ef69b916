"""HTTP plumbing shared by the services: JSON errors, auth, body limit, deadlines.

Every non-200 answer is a JSON error body with a code from the table in
docs/protocol.md (*Wire protocol* in the documentation); a bad request never stops the
service.
"""

from __future__ import annotations

import asyncio
import hmac
import re
from collections.abc import Awaitable
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = [
    "add_status_routes",
    "ServiceError",
    "ascii_int",
    "check_auth",
    "check_content_type",
    "check_model",
    "error_body",
    "install_error_handlers",
    "read_body",
    "with_deadline",
]


T = TypeVar("T")

_DIGITS = re.compile(r"[0-9]{1,15}")


def ascii_int(raw: str | None) -> int | None:
    """``raw`` as a non-negative integer when it is 1 to 15 ASCII digits, else None.

    Python's ``int()`` also reads ``"0_1"``, ``" +1"`` and other scripts' digits; a header
    or query integer of the protocol is plain ASCII digits.

    >>> ascii_int("42"), ascii_int("0_1"), ascii_int("+1"), ascii_int("\u0663"), ascii_int("1" * 16)
    (42, None, None, None, None)
    """
    if raw is None or not _DIGITS.fullmatch(raw):
        return None
    return int(raw)


class ServiceError(Exception):
    """An error answered as JSON: HTTP ``status``, a ``code`` and a readable message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_body(code: str, message: str) -> dict[str, Any]:
    """The JSON body of an error."""
    return {"error": {"code": code, "message": message}}


def _json_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error (ours, routing, validation, crashes) with a JSON error body."""

    @app.exception_handler(ServiceError)
    async def _service(_: Request, err: ServiceError) -> JSONResponse:
        return _json_error(err.status, err.code, err.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, err: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(err.status_code, "http_error")
        return _json_error(err.status_code, code, str(err.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, err: RequestValidationError) -> JSONResponse:
        return _json_error(400, "bad_request", str(err.errors()))

    @app.exception_handler(Exception)
    async def _crash(_: Request, err: Exception) -> JSONResponse:
        return _json_error(500, "internal", f"{type(err).__name__}: {err}")


def add_status_routes(app: FastAPI | APIRouter, info: dict[str, Any], token: str | None) -> None:
    """``GET /healthz``, ``/readyz`` (open) and ``/v1/model`` (token-checked) on ``app``.

    Args:
        app: the service's app or router.
        info: what ``GET /v1/model`` answers (the model's description).
        token: the shared token, or None.
    """

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
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), token):
        raise ServiceError(
            401, "unauthorized", "missing or wrong token: send Authorization: Bearer <token>."
        )


def check_model(request: Request, model: str) -> None:
    """Require ``X-DDNN-Model`` to name this service's model.

    Raises:
        ServiceError: 409 ``model_mismatch``.
    """
    given = request.headers.get("x-ddnn-model")
    if given != model:
        what = "no X-DDNN-Model header" if given is None else f"X-DDNN-Model {given[:64]!r}"
        raise ServiceError(
            409,
            "model_mismatch",
            f"{what}; this service serves model {model} (GET /v1/model describes it).",
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
            raise ServiceError(
                413, "too_large", f"body of {size} bytes exceeds the limit of {limit} bytes."
            )
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise ServiceError(413, "too_large", f"body exceeds the limit of {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


async def with_deadline(awaitable: Awaitable[T], deadline_s: float, what: str) -> T:
    """Await ``awaitable`` for at most ``deadline_s`` seconds.

    Raises:
        ServiceError: 504 ``deadline_exceeded``.
    """
    try:
        return await asyncio.wait_for(awaitable, deadline_s)
    except TimeoutError:
        raise ServiceError(
            504, "deadline_exceeded", f"{what} took longer than the {deadline_s:g} s deadline."
        ) from None
