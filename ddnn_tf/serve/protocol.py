"""The device protocol of docs/protocol.md, once: a device's messages to the gateway, the
checks every message passes (:func:`parse_message`), the error body, and the errors a
device tries again after (:func:`refusal`), for the gateway's HTTP routes and MQTT bridge
and a device's links alike. Standard library only.
"""

from __future__ import annotations

import asyncio
import json
import traceback
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from ddnn_tf.errors import DeploymentError

__all__ = [
    "KINDS",
    "RESPONSES",
    "GatewayUnavailable",
    "Message",
    "ServiceError",
    "ascii_int",
    "check_model",
    "error_body",
    "header_int",
    "json_object",
    "parse_message",
    "refusal",
    "service_error",
    "too_large",
    "with_deadline",
]

T = TypeVar("T")

#: A device's messages to the gateway, in the order of a round.
KINDS = ("join", "summary", "features")
#: The gateway's response to each of them.
RESPONSES = {"join": "joined", "summary": "decision", "features": "done"}


class ServiceError(Exception):
    """An error answered with the protocol's error body: a ``status`` (HTTP), a ``code``
    from the table on docs/protocol.md and a readable message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class GatewayUnavailable(DeploymentError):
    """The gateway did not answer, or asked for the message again: worth another try."""


def service_error(err: Exception) -> ServiceError:
    """``err`` as the protocol answers it: a :class:`ServiceError` as it is; any other
    exception is a bug, answered ``internal`` once its traceback is printed."""
    if isinstance(err, ServiceError):
        return err
    traceback.print_exception(err)
    return ServiceError(500, "internal", f"{type(err).__name__}: {err}")


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The JSON body of an error (MQTT adds the ``topic`` it answers)."""
    return {"error": {"code": code, "message": message}, **extra}


def refusal(status: int | None, code: str | None, text: str) -> DeploymentError:
    """The device-side error for a refused message: :class:`GatewayUnavailable` (sent again)
    under the retry rule of docs/protocol.md (``status`` is None over MQTT), else
    :class:`~ddnn_tf.errors.DeploymentError`.

    >>> [type(refusal(*e, "")).__name__ for e in ((504, None), (409, "unknown_round"))]
    ['GatewayUnavailable', 'GatewayUnavailable']
    >>> type(refusal(409, "duplicate", "")).__name__
    'DeploymentError'
    """
    retry = status in (502, 503, 504) or code in ("unknown_round", "deadline_exceeded")
    return (GatewayUnavailable if retry else DeploymentError)(text)


def too_large(limit: int, size: int | None = None) -> ServiceError:
    """413 ``too_large``: a body of ``size`` bytes (None: not known yet) over ``limit``."""
    what = "body" if size is None else f"body of {size} bytes"
    return ServiceError(413, "too_large", f"{what} exceeds the limit of {limit} bytes.")


def ascii_int(raw: str | None) -> int | None:
    """``raw`` as a non-negative integer when it is 1 to 15 ASCII digits, else None.

    Python's ``int()`` also reads ``"0_1"``, ``" +1"`` and other scripts' digits; an
    integer of the protocol is plain ASCII digits.

    >>> ascii_int("42"), ascii_int("0_1"), ascii_int("+1"), ascii_int("\u0663"), ascii_int("1" * 16)
    (42, None, None, None, None)
    """
    if raw is None or not (raw.isascii() and raw.isdigit()) or len(raw) > 15:
        return None
    return int(raw)


def json_object(payload: bytes) -> dict | None:
    """``payload`` as a JSON object, or None when it is not one.

    >>> json_object(b'{"a": 1}'), json_object(b"[1]"), json_object(b"\\xff")
    ({'a': 1}, None, None)
    """
    try:
        doc = json.loads(payload)
    except ValueError:  # not UTF-8, not JSON
        return None
    return doc if isinstance(doc, dict) else None


def header_int(name: str, raw: str | None, upper: int | None = None) -> int:
    """A protocol integer (a device index, a round start) from its text.

    Raises:
        ServiceError: 400 ``bad_header``: missing, not ASCII digits, or not below ``upper``.
    """
    value = ascii_int(raw)
    if value is None or (upper is not None and value >= upper):
        bound = f" in [0, {upper})" if upper is not None else " >= 0 of at most 15 digits"
        raise ServiceError(
            400,
            "bad_header",
            f"{name}: expected an integer{bound} in ASCII digits, got {str(raw)[:40]!r}.",
        )
    return value


def check_model(given: str | None, model: str, field: str) -> None:
    """Require the model id a message names (``field``: where it was looked for).

    Raises:
        ServiceError: 409 ``model_mismatch``.
    """
    if given != model:
        what = f"no {field}" if given is None else f"{field} {given[:64]!r}"
        raise ServiceError(
            409,
            "model_mismatch",
            f"{what}; this service serves model {model} (GET /v1/model describes it).",
        )


@dataclass(frozen=True)
class Message:
    """One message from a device, checked: its kind (:data:`KINDS`), its device index,
    its round start (None for a join) and its body."""

    kind: str
    device: int
    start: int | None
    body: bytes


def parse_message(
    kind: str,
    *,
    device: str | None,
    start: str | None,
    model: str | None,
    body: bytes,
    expect: tuple[str, int, int],
    fields: tuple[str, str, str],
) -> Message:
    """The checks every device message passes, whatever carried it: ``device``, ``start``
    (ignored for a join) and ``model`` as the message carries them (None: not given).

    Args:
        expect: ``(model id, number of devices, body limit in bytes)`` of the gateway.
        fields: where the transport carries the model id, the device and the start
            (named in the error messages).

    Raises:
        ServiceError: ``model_mismatch``, ``bad_header`` or ``too_large``.
    """
    model_id, devices, limit = expect
    check_model(model, model_id, fields[0])
    index = header_int(fields[1], device, devices)
    round_start = None if kind == "join" else header_int(fields[2], start)
    if len(body) > limit:
        raise too_large(limit, len(body))
    return Message(kind, index, round_start, body)


async def with_deadline(awaitable: Awaitable[T], deadline_s: float, what: str) -> T:
    """Await ``awaitable`` for at most ``deadline_s`` seconds.

    Raises:
        ServiceError: 504 ``deadline_exceeded``.
    """
    try:
        if hasattr(asyncio, "timeout"):  # Python 3.11: no task per request
            async with asyncio.timeout(deadline_s):
                return await awaitable
        return await asyncio.wait_for(awaitable, deadline_s)
    except TimeoutError:
        raise ServiceError(
            504, "deadline_exceeded", f"{what} took longer than the {deadline_s:g} s deadline."
        ) from None
