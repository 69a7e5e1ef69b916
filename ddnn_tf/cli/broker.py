"""``ddnn broker MODEL --out DIR [--devices N] [--start]``: a mosquitto broker for a
model's gateway and devices, one user, password and topic ACL per client
(:func:`ddnn_tf.serve.broker.model_broker`)."""

from __future__ import annotations

import os

from ddnn_tf.cli.flags import AT_LEAST_1, Range, command
from ddnn_tf.errors import ConfigError
from ddnn_tf.serve.settings import DEFAULT_MAX_BODY_BYTES

__all__ = ["broker"]


@command(devices=AT_LEAST_1, port=Range(1, 65535), max_body_bytes=AT_LEAST_1)
def broker(
    model: str,
    out: str,
    devices: int | None = None,
    host: str = "127.0.0.1",
    port: int = 1883,
    topic_root: str | None = None,
    certfile: str | None = None,
    keyfile: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    overwrite: bool = False,
    start: bool = False,
    json: bool = False,  # noqa: A002  (the flag is --json)
) -> None:
    """Write a broker for a model's gateway and devices: users, passwords, topic ACL.

    DIR gets mosquitto.conf, passwd (hashed), acl and clients/USER.env (each client's
    password as DDNN_TF_MQTT_PASSWORD=..., readable by its owner only): the gateway,
    device0 .. device<N-1> and answers (a reader of the answers). Each device may
    publish only on its own up topics and read only its own down topics; only the
    gateway publishes decisions, answers and its status.

    Args:
        model: the converted model directory (tflite_models/NAME).
        out: the directory to write (refused if it exists, unless --overwrite).
        devices: the number of devices (default: the model's).
        host: the interface the broker listens on.
        port: its TCP port.
        topic_root: the MQTT topics' prefix (default ddnn/MODEL_NAME).
        certfile: listen with TLS (mqtts://) with this certificate (with --keyfile).
        keyfile: the certificate's private key.
        max_body_bytes: the gateway's request body limit; larger packets are refused.
        overwrite: replace an existing DIR.
        start: then run mosquitto with it in the foreground (until Ctrl-C).
        json: print one JSON object instead of the summary.
    """
    import json as _json

    from ddnn_tf.serve.broker import find_mosquitto, model_broker

    if (certfile is None) != (keyfile is None):
        raise ConfigError("--certfile and --keyfile go together.")
    tls = None if certfile is None else (str(certfile), str(keyfile))
    mosquitto, _ = find_mosquitto()
    made = model_broker(
        model,
        out,
        devices=devices,
        topic_root=topic_root,
        host=host,
        port=port,
        tls=tls,
        max_body_bytes=max_body_bytes,
        overwrite=overwrite,
    )
    if json:
        print(_json.dumps(made, indent=2), flush=True)
    else:
        print(_summary(model, made), flush=True)
    if start:  # mosquitto itself, in this process's place: Ctrl-C stops it
        os.execv(mosquitto, [mosquitto, "-c", made["config"]])


def _summary(model: str, made: dict) -> str:
    clients = made["clients"]
    lines = [
        f"{made['config']}: a broker for {model} under topic root {made['root']}",
        f"start it: mosquitto -c {made['config']}",
        f"{'user':<10}{'role':<9}broker URL",
        *(f"{c['user']:<10}{c['role']:<9}{c['url']}" for c in clients),
        "each client's password is in its file; load it before starting that client, e.g.",
        f"  set -a; . {clients[1]['env']}; set +a",
        f"  ddnn device {model} --index 0 --data fmnist6 --transport mqtt "
        f"--broker {clients[1]['url']} --topic-root {made['root']}",
    ]
    return "\n".join(lines)


COMMAND = broker
