"""What every service shares before it starts (standard library only): the token rule
and the default limits. The protocol itself is :mod:`ddnn_tf.serve.protocol`, specified
in docs/protocol.md (*Wire protocol* in the documentation).

>>> is_loopback("127.0.0.1"), is_loopback("0.0.0.0")
(True, False)
"""

from __future__ import annotations

import ipaddress
import os

from ddnn_tf.errors import ConfigError

__all__ = [
    "DEFAULT_DEADLINE_S",
    "DEFAULT_MAX_BODY_BYTES",
    "TOKEN_ENV",
    "is_loopback",
    "service_token",
]

#: Environment variable holding the shared token (an explicit token overrides it).
TOKEN_ENV = "DDNN_TF_TOKEN"
#: Largest request body a service accepts.
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
#: Seconds a request may take before it is answered with a timeout error.
DEFAULT_DEADLINE_S = 10.0


def is_loopback(host: str) -> bool:
    """True when ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def service_token(host: str, token: str | None) -> str | None:
    """The shared token of a service bound to ``host``: ``token``, else ``$DDNN_TF_TOKEN``.

    Raises:
        ConfigError: the service binds beyond loopback and has no token.
    """
    token = token if token is not None else os.environ.get(TOKEN_ENV) or None
    if token is None and not is_loopback(host):
        raise ConfigError(
            f"{host}: a service bound beyond loopback needs a shared token; give one "
            f"(token) or set {TOKEN_ENV}.",
            argument="host",
        )
    return None if token is None else str(token)
