"""Run an ASGI app on uvicorn on a socket bound first (so ``--port 0`` reports its port)."""

from __future__ import annotations

import json
import socket
import sys

from ddnn_tf.errors import ConfigError

__all__ = ["bind", "run_app"]


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0: a free one).

    Raises:
        ValueError: the address cannot be bound (in use, unknown interface).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port)))
    except OSError as err:
        sock.close()
        raise ConfigError(f"--host {host} --port {port}: cannot bind ({err.strerror}).") from None
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def run_app(app, host: str, port: int) -> None:
    """Serve ``app`` until SIGINT/SIGTERM; print ``{"url": ...}`` once bound."""
    import uvicorn

    sock = bind(host, port)
    actual = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    print(json.dumps({"url": f"http://{shown}:{actual}"}), flush=True)
    # timeout_graceful_shutdown: a result stream never ends by itself; on SIGTERM its
    # subscribers get 3 s, then the connection is closed (they resume elsewhere).
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=3,
    )
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        sys.stdout.flush()
