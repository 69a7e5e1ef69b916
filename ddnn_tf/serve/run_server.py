"""Run an ASGI app on uvicorn on a socket bound first (so port 0 reports its port), and
the cloud service on the engine its settings name (:func:`serve_cloud`)."""

from __future__ import annotations

import gc
import json
import socket
import sys

from ddnn_tf.errors import ConfigError

__all__ = ["bind", "run_app", "serve_cloud", "serve_socket"]


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0: a free one).

    Raises:
        ConfigError: the address cannot be bound (in use, unknown interface).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port)))
    except OSError as err:
        sock.close()
        raise ConfigError(f"cannot bind {host}:{port} ({err.strerror}).", argument="port") from None
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def run_app(app, host: str, port: int) -> None:
    """Serve ``app`` until SIGINT/SIGTERM; print ``{"url": ...}`` once bound."""
    sock = bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    print(json.dumps({"url": f"http://{shown}:{sock.getsockname()[1]}"}), flush=True)
    serve_socket(app, sock)


def serve_socket(app, sock: socket.socket, **options) -> None:
    """Serve ``app`` on the bound ``sock`` until SIGINT/SIGTERM, with the services' uvicorn
    settings (``options``: more of them, e.g. the phone demo's TLS files)."""
    import uvicorn

    # timeout_graceful_shutdown: a result stream never ends by itself; on SIGTERM its
    # subscribers get 3 s, then the connection is closed (they resume elsewhere). No
    # proxy headers: the services never read the client's address, so nothing is gained
    # by parsing X-Forwarded-For on every request; no Server header either.
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=3,
        proxy_headers=False,
        server_header=False,
        **options,
    )
    server = uvicorn.Server(config)
    # What is loaded by now (libraries, the model) lives as long as the process: kept out
    # of the garbage collector's passes, a full pass takes microseconds, not 20 ms.
    gc.freeze()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        sys.stdout.flush()


def serve_cloud(settings) -> None:
    """``ddnn serve cloud``: serve the cloud tier of its
    :class:`~ddnn_tf.serve.settings.CloudSettings` until SIGINT/SIGTERM, on uvicorn
    (:func:`ddnn_tf.serve.cloud.create_cloud_app`) or on Ray Serve
    (:func:`ddnn_tf.serve.ray_cloud.serve_ray`).

    Raises:
        ConfigError: beyond loopback without a token; a bad model or option.
    """
    from ddnn_tf.serve.settings import service_token

    settings = settings.replace(token=service_token(settings.host, settings.token))
    if settings.engine == "ray":
        from ddnn_tf.serve.ray_cloud import serve_ray

        serve_ray(settings)
    else:
        from ddnn_tf.serve.cloud import create_cloud_app

        run_app(create_cloud_app(settings), settings.host, settings.port)
