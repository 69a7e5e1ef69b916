"""The cloud tier as a Ray Serve deployment: same protocol, same answers, N replicas.

Each replica loads the cloud tier (:class:`~ddnn_tf.serve.cloud.CloudTier`) and serves
the app of :func:`~ddnn_tf.serve.cloud.add_cloud_routes`; concurrent requests reaching a
replica are gathered by ``@serve.batch`` into one interpreter call. How the local Ray
instance is secured (token authentication, no dashboard, loopback), and what an existing
cluster (``address``) must provide: docs/serving.md, *The cloud on Ray Serve*.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import threading
import time
from pathlib import Path

from ddnn_tf.errors import DeploymentError
from ddnn_tf.serve.settings import free_port

__all__ = ["APP_NAME", "serve_ray"]

APP_NAME = "ddnn-cloud"
#: How long ``@serve.batch`` waits for more requests before a batch runs.
BATCH_WAIT_S = 0.002


def _deployment(settings):
    from ray import serve

    @serve.deployment(
        num_replicas=settings.replicas,
        ray_actor_options={"num_cpus": 0},
        max_ongoing_requests=256,
    )
    @serve.ingress()
    class CloudReplica:
        """One replica: the cloud tier behind the protocol, batched by ``@serve.batch``."""

        def __init__(self, settings) -> None:
            from ddnn_tf.serve.cloud import CloudTier

            self.tier = CloudTier(settings.model, target=settings.target)
            self.settings = settings

        @serve.batch(
            max_batch_size=settings.max_batch,
            batch_wait_timeout_s=BATCH_WAIT_S,
            batch_size_fn=lambda items: sum(r.n for r in items),
        )
        async def classify(self, requests: list) -> list:
            return self.tier.classify_many(requests)

        def __serve_build_asgi_app__(self):
            from ddnn_tf.serve.cloud import add_cloud_routes
            from ddnn_tf.serve.http import service_app

            app = service_app()
            add_cloud_routes(app, self.tier, self.classify, self.settings)
            return app

    return CloudReplica


def serve_ray(settings) -> None:
    """Deploy the cloud tier on Ray Serve and serve until SIGINT/SIGTERM.

    Prints ``{"url": ...}`` once the deployment is healthy; on exit deletes the
    application (and stops the local Ray instance it started).

    Args:
        settings: the cloud's :class:`~ddnn_tf.serve.settings.CloudSettings` (engine ray).

    Raises:
        ValueError: a model the cloud cannot serve; DeploymentError: Ray does not start.
    """
    from ddnn_tf.serve.cloud import CloudTier

    settings = settings.replace(model=str(Path(settings.model).resolve()))
    CloudTier(settings.model, target=settings.target)  # fail fast, before Ray starts
    local = settings.address is None
    if local:  # before Ray is imported: it reads the mode once
        if not settings.no_ray_auth:
            os.environ["RAY_AUTH_MODE"] = "token"
            os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
        else:
            os.environ["RAY_AUTH_MODE"] = "disabled"
    import ray
    from ray import serve

    try:
        if local:
            ray.init(
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                num_cpus=max(os.cpu_count() or 1, 1),
                log_to_driver=False,
                configure_logging=False,
                _temp_dir=settings.ray_temp_dir,
            )
        else:
            ray.init(address=settings.address, log_to_driver=False)
    except (RuntimeError, ConnectionError, ValueError, OSError) as err:  # Ray's, in one line
        where = "a local Ray instance" if local else f"the Ray cluster at {settings.address}"
        raise DeploymentError(f"could not start {where}: {type(err).__name__}: {err}") from None
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    host = settings.host
    try:
        port = settings.port or free_port(host)
        serve.start(http_options={"host": host, "port": port})
        serve.run(_deployment(settings).bind(settings), name=APP_NAME, route_prefix="/")
        shown = f"[{host}]" if ":" in host else host
        url = {"url": f"http://{shown}:{port}", "replicas": settings.replicas}
        print(json.dumps(url), flush=True)
        while not stop.is_set():
            time.sleep(0.2)
    finally:
        if not local:
            serve.delete(APP_NAME)
        ray.shutdown()  # a local instance stops all its processes, Serve's actors included
