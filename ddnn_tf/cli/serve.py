"""``ddnn serve cloud|gateway|demo MODEL_DIR ...``: a tier as an HTTP service.

    ddnn serve cloud tflite_models/fmnist6_mlpcc [--port 8000]
        [--engine uvicorn|ray] [--replicas N] [--address RAY_ADDRESS]
    ddnn serve gateway tflite_models/fmnist6_mlpcc --cloud http://127.0.0.1:8000
    ddnn serve demo tflite_models/fmnist6_mlpcc [--https]

Both bind 127.0.0.1 unless ``--host`` says otherwise; beyond loopback a shared token is
required (``--token`` or the ``DDNN_TF_TOKEN`` environment variable). ``--port 0`` picks
a free port. Once listening, the service prints one JSON line ``{"url": ...}``.
"""

from __future__ import annotations

from ddnn_tf.cli.flags import AT_LEAST_1, POSITIVE, Range, command
from ddnn_tf.errors import ConfigError
from ddnn_tf.serve.settings import DEFAULT_DEADLINE_S, DEFAULT_MAX_BODY_BYTES, service_token

__all__ = ["cloud", "demo", "gateway"]

PORT = Range(0, 65535)


@command(
    port=PORT,
    max_body_bytes=AT_LEAST_1,
    deadline_s=POSITIVE,
    max_batch=AT_LEAST_1,
    replicas=AT_LEAST_1,
)
def cloud(
    model: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    deadline_s: float = DEFAULT_DEADLINE_S,
    target: str = "portable",
    max_batch: int = 1024,
    engine: str = "uvicorn",
    replicas: int = 1,
    address: str | None = None,
    no_ray_auth: bool = False,
    ray_temp_dir: str | None = None,
    cors_origins: str | None = None,
) -> None:
    """Serve the cloud tier of a converted model.

    Args:
        model: the converted model directory (tflite_models/NAME).
        host: interface to bind (default loopback only).
        port: TCP port (0: a free one).
        token: shared token required on every request (default: $DDNN_TF_TOKEN).
        max_body_bytes: request body limit.
        deadline_s: per-request deadline in seconds.
        target: portable (ai-edge-litert) or lce (larq-compute-engine).
        max_batch: most samples per interpreter call.
        engine: uvicorn (embedded) or ray (Ray Serve deployment).
        replicas: Ray Serve replicas (engine ray).
        address: an existing Ray cluster's address (engine ray; default: start a local one).
        no_ray_auth: start the local Ray instance without token authentication (engine
            ray; it is on by default).
        ray_temp_dir: where the local Ray instance writes its session files
            (default /tmp/ray).
        cors_origins: comma-separated web origins whose pages may call the service
            (engine uvicorn; none by default).
    """
    token = service_token(host, token)
    if isinstance(cors_origins, (list, tuple)):  # fire may parse a,b as a tuple
        cors_origins = ",".join(map(str, cors_origins))
    origins = [o.strip() for o in str(cors_origins or "").split(",") if o.strip()]
    if engine == "ray":
        if origins:
            raise ConfigError("--cors-origins is supported with --engine uvicorn only.")
        from ddnn_tf.serve.ray_cloud import serve_ray

        serve_ray(
            model,
            host=host,
            port=port,
            token=token,
            max_body_bytes=max_body_bytes,
            deadline_s=deadline_s,
            target=target,
            max_batch=max_batch,
            replicas=replicas,
            address=address,
            ray_auth=not no_ray_auth,
            ray_temp_dir=ray_temp_dir,
        )
        return
    if engine != "uvicorn":
        raise ConfigError(f"--engine: expected uvicorn or ray, got {engine!r}.")
    from ddnn_tf.serve.cloud import create_cloud_app
    from ddnn_tf.serve.run_server import run_app

    app = create_cloud_app(
        model,
        token=token,
        max_body_bytes=max_body_bytes,
        deadline_s=deadline_s,
        target=target,
        max_batch=max_batch,
        cors_origins=origins or None,
    )
    run_app(app, host, port)


@command(
    port=PORT,
    max_body_bytes=AT_LEAST_1,
    deadline_s=POSITIVE,
    gather_s=POSITIVE,
    cloud_timeout_s=POSITIVE,
    batch=AT_LEAST_1,
    window=AT_LEAST_1,
    cloud_retry_s=POSITIVE,
)
def gateway(
    model: str,
    cloud: str,
    host: str = "127.0.0.1",
    port: int = 8001,
    token: str | None = None,
    cloud_token: str | None = None,
    threshold=None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    deadline_s: float = DEFAULT_DEADLINE_S,
    gather_s: float = 2.0,
    cloud_timeout_s: float = 5.0,
    target: str = "portable",
    batch: int = 64,
    window: int = 4096,
    journal: str | None = None,
    cloud_retry_s: float = 5.0,
    transport: str = "http",
    broker: str | None = None,
    mqtt_user: str | None = None,
    mqtt_password: str | None = None,
    mqtt_ca: str | None = None,
    topic_root: str | None = None,
) -> None:
    """Serve the local aggregator (the gateway the end devices talk to).

    Args:
        model: the converted model directory (tflite_models/NAME).
        cloud: the cloud service's URL, e.g. http://127.0.0.1:8000.
        host: interface to bind (default loopback only).
        port: TCP port (0: a free one).
        token: shared token required from the devices (default: $DDNN_TF_TOKEN).
        cloud_token: token sent to the cloud (default: the same token).
        threshold: T of every early exit, or 'paper' (default: the manifest's).
        max_body_bytes: request body limit.
        deadline_s: per-request deadline in seconds.
        gather_s: how long a round waits for a device's message before counting it absent.
        cloud_timeout_s: how long one cloud request may take.
        target: portable (ai-edge-litert) or lce (larq-compute-engine).
        batch: the round length in samples (the devices' --batch).
        window: answers kept for subscribers that reconnect; round starts are accepted
            within this many samples of the newest round.
        journal: a file the answers are written to and read back from on a restart, so
            a restarted gateway answers each sample once (default: memory only).
        cloud_retry_s: how long rounds retry an unreachable cloud before they are
            answered by the exit below it (degraded).
        transport: http (the devices POST) or mqtt (the devices publish to --broker;
            HTTP still serves /v1/answers, /v1/progress and /healthz).
        broker: the MQTT broker, mqtt://HOST:PORT or mqtts://HOST:PORT (TLS).
        mqtt_user: the broker user name (default: the URL's, else none).
        mqtt_password: the broker password (default: $DDNN_TF_MQTT_PASSWORD).
        mqtt_ca: CA certificate file to verify an mqtts:// broker (default: the system's).
        topic_root: the MQTT topics' prefix (default ddnn/MODEL_NAME).
    """
    token = service_token(host, token)
    from ddnn_tf.serve.gateway import create_gateway_app
    from ddnn_tf.serve.run_server import run_app

    mqtt = mqtt_settings(transport, broker, mqtt_user, mqtt_password, mqtt_ca, topic_root)

    app = create_gateway_app(
        model,
        cloud,
        token=token,
        cloud_token=cloud_token if cloud_token is not None else token,
        threshold=threshold,
        max_body_bytes=max_body_bytes,
        deadline_s=deadline_s,
        gather_s=gather_s,
        cloud_timeout_s=cloud_timeout_s,
        target=target,
        batch=batch,
        window=window,
        journal=journal,
        cloud_retry_s=cloud_retry_s,
        mqtt=mqtt,
    )
    run_app(app, host, port)


def mqtt_settings(transport, broker, user, password, ca, topic_root):
    """The MQTT settings of the flags (None for transport http)."""
    if transport not in ("http", "mqtt"):
        raise ConfigError(f"--transport: expected http or mqtt, got {transport!r}.")
    if transport == "http":
        if broker is not None:
            raise ConfigError("--broker goes with --transport mqtt.")
        return None
    if broker is None:
        raise ConfigError("--transport mqtt needs --broker mqtt://HOST:PORT.")
    from ddnn_tf.serve.mqtt import MqttSettings

    return MqttSettings.from_url(
        broker, username=user, password=password, ca=ca, topic_root=topic_root
    )


@command(port=PORT, max_body_bytes=AT_LEAST_1, deadline_s=POSITIVE)
def demo(
    model: str,
    host: str = "127.0.0.1",
    port: int = 8080,
    https: bool = False,
    token: str | None = None,
    cert_dir: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    deadline_s: float = DEFAULT_DEADLINE_S,
    target: str = "portable",
    qr: bool = True,
) -> None:
    """Serve the phone app, the model and the cloud tier on one origin.

    Args:
        model: the converted model directory (tflite_models/NAME).
        host: interface to bind: 127.0.0.1 (the default; a phone reaches it over USB
            with adb reverse) or 0.0.0.0 / a LAN address (use --https).
        port: TCP port (0: a free one).
        https: serve TLS with a self-signed certificate created for this machine.
        token: shared token of the cloud routes (default: $DDNN_TF_TOKEN; beyond loopback
            one is generated when none is given, and put in the printed URL).
        cert_dir: where --https keeps cert.pem and key.pem, reused while valid (default:
            ~/.cache/ddnn_tf/demo-tls).
        max_body_bytes: request body limit of POST /v1/cloud.
        deadline_s: per-request deadline of POST /v1/cloud.
        target: the cloud tier's target, portable or lce.
        qr: print a terminal QR code of the URL.
    """
    from ddnn_tf.serve.demo import serve_demo

    serve_demo(
        model,
        host=host,
        port=port,
        https=https,
        token=token,
        cert_dir=cert_dir,
        max_body_bytes=max_body_bytes,
        deadline_s=deadline_s,
        target=target,
        qr=qr,
    )


COMMANDS = {"cloud": cloud, "gateway": gateway, "demo": demo}
