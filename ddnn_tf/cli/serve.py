"""``ddnn serve cloud|gateway|demo MODEL_DIR ...``: a tier as an HTTP service.

    ddnn serve cloud tflite_models/fmnist6_mlpcc [--port 8000]
        [--engine uvicorn|ray] [--replicas N] [--address RAY_ADDRESS]
    ddnn serve gateway tflite_models/fmnist6_mlpcc --cloud http://127.0.0.1:8000
        [--config site.toml]
    ddnn serve demo tflite_models/fmnist6_mlpcc [--https]

Each command's flags are the fields of its settings (:mod:`ddnn_tf.serve.settings`).
The services bind 127.0.0.1 unless ``--host`` says otherwise; beyond loopback a shared
token is required (``--token`` or the ``DDNN_TF_TOKEN`` environment variable). ``--port
0`` picks a free port. Once listening, the service prints one JSON line ``{"url": ...}``.
"""

from __future__ import annotations

from ddnn_tf.cli.flags import settings_command
from ddnn_tf.serve.settings import CloudSettings, DemoSettings, GatewaySettings

__all__ = ["cloud", "demo", "gateway"]


def _cloud(settings: CloudSettings) -> None:
    from ddnn_tf.serve.run_server import serve_cloud

    serve_cloud(settings)


def _gateway(settings: GatewaySettings) -> None:
    from ddnn_tf.serve.gateway import serve_gateway

    serve_gateway(settings)


def _demo(settings: DemoSettings) -> None:
    from ddnn_tf.serve.demo import serve_demo

    serve_demo(settings)


cloud = settings_command(CloudSettings, _cloud, "Serve the cloud tier of a converted model.")
gateway = settings_command(
    GatewaySettings,
    _gateway,
    "Serve the local aggregator (the gateway the end devices talk to).",
    config="gateway",
)
demo = settings_command(
    DemoSettings, _demo, "Serve the phone app, the model and the cloud tier on one origin."
)

COMMANDS = {"cloud": cloud, "gateway": gateway, "demo": demo}
