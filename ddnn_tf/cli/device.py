"""``ddnn device MODEL --index I --data NAME --gateway URL``: one end device as a process
(:func:`ddnn_tf.serve.device.run_device`)."""

from __future__ import annotations

from ddnn_tf.cli.flags import AT_LEAST_1, NON_NEGATIVE, POSITIVE, command
from ddnn_tf.errors import ConfigError

__all__ = ["device"]


@command(
    index=NON_NEGATIVE, limit=AT_LEAST_1, batch=AT_LEAST_1, repeat=AT_LEAST_1, reconnect_s=POSITIVE
)
def device(
    model: str,
    index: int,
    data: str,
    gateway: str | None = None,
    path: str | None = None,
    split: str = "test",
    limit: int | None = None,
    batch: int = 64,
    token: str | None = None,
    target: str = "portable",
    repeat: int = 1,
    reconnect_s: float = 300.0,
    transport: str = "http",
    broker: str | None = None,
    mqtt_user: str | None = None,
    mqtt_password: str | None = None,
    mqtt_ca: str | None = None,
    topic_root: str | None = None,
    mcu: str | None = None,
) -> None:
    """Run end device INDEX of a converted model against a gateway.

    Args:
        model: the converted model directory (tflite_models/NAME).
        index: this device's index (0 .. D-1).
        gateway: the gateway's URL, e.g. http://127.0.0.1:8001.
        data: dataset name (fmnist6, mvmc, npz, synthetic) or a .npy file of this view.
        path: data file or directory for file-based loaders.
        split: test or val.
        limit: stream the first N samples only.
        batch: samples per round (the gateway's --batch).
        token: the shared token (default: $DDNN_TF_TOKEN).
        target: portable (ai-edge-litert) or lce (larq-compute-engine).
        repeat: stream the samples this many times.
        reconnect_s: give up after this many seconds without the gateway.
        transport: http (--gateway URL) or mqtt (--broker URL).
        broker: the MQTT broker, mqtt://HOST:PORT or mqtts://HOST:PORT (TLS).
        mqtt_user: the broker user name (default: the URL's, else none).
        mqtt_password: the broker password (default: $DDNN_TF_MQTT_PASSWORD).
        mqtt_ca: CA certificate file to verify an mqtts:// broker (default: the system's).
        topic_root: the MQTT topics' prefix (default ddnn/MODEL_NAME).
        mcu: run the tier's C on this board instead of the binary: qemu (an emulated
            Cortex-M4, mps2-an386), mps2-an385 (Cortex-M3) or host (the system gcc).
    """
    from ddnn_tf.cli.serve import mqtt_settings
    from ddnn_tf.serve.device import run_device

    mqtt = mqtt_settings(transport, broker, mqtt_user, mqtt_password, mqtt_ca, topic_root)
    if transport == "http" and gateway is None:
        raise ConfigError("--gateway URL is needed with --transport http.")

    run_device(
        model,
        index,
        gateway,
        data,
        path=path,
        split=split,
        limit=limit,
        batch=batch,
        token=token,
        target=target,
        repeat=repeat,
        transport=transport,
        mqtt=mqtt,
        reconnect_s=reconnect_s,
        mcu=mcu,
    )


COMMAND = device
