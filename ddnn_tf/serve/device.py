"""An end device as an OS process: its tier binary, its own view, the exit protocol.

``ddnn device MODEL_DIR --index I --gateway URL --data NAME`` runs :func:`run_device`:
the device runs tier ``device_I`` on its view of each sample and talks to the gateway
(:mod:`ddnn_tf.serve.gateway`) in rounds of ``batch`` consecutive samples, with the
requests docs/protocol.md specifies (*Wire protocol* in the documentation): it joins
once, then per round sends its encoded summaries and, for the samples the decision
flags, its packed features (:func:`ddnn_tf.core.comm.pack_features_batch`).

The messages travel over a link (:class:`ddnn_tf.serve.link.HttpLink`, or with
``transport="mqtt"`` :class:`ddnn_tf.serve.mqtt_device.MqttLink` on the topics of
:mod:`ddnn_tf.serve.mqtt`), whose errors follow the protocol's one retry rule
(:func:`ddnn_tf.serve.protocol.retryable`). When the gateway goes away (a refused or cut connection, a
504, a round it no longer knows) the device backs off (50 ms doubling to 2 s), joins
again once the gateway answers and sends the round again from its summaries; the
gateway answers each sample once. After ``reconnect_s`` without the gateway it gives up.

``data`` is a dataset name (its ``split`` view ``I`` is used) or a ``.npy`` file
holding this device's samples; ``repeat`` streams them that many times (sample
``r * len + i`` is sample ``i`` again). The device prints one JSON line per round on
stdout: ``{"start", "n", "t0", "sent", "received", "payload", "retries"}`` (``t0``:
``time.monotonic()`` before the tier ran; ``sent``/``received``: bytes on the socket,
HTTP or MQTT framing included; ``payload``: summary and feature bytes), then
``{"done": true, ...}``.

With ``mcu`` the tier runs as its C inside an emulated Cortex-M board (or the host
build) instead of the binary (:class:`ddnn_tf.mcu.live.BoardTier`: one QEMU boot per
round); the messages and the protocol are the same.

Only numpy, the standard library and the interpreter are imported (no TensorFlow).
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from ddnn_tf.errors import ConfigError, DeploymentError
from ddnn_tf.serve.protocol import GatewayUnavailable

__all__ = ["GatewayUnavailable", "run_device"]

#: Back-off between two tries to reach a gateway that went away (doubling, seconds).
BACKOFF_S = (0.05, 2.0)


def _load_view(data: str, index: int, path: str | None, split: str) -> np.ndarray:
    if data.endswith(".npy"):
        file = Path(data)
        if not file.is_file():
            raise FileNotFoundError(f"data {data}: no such file.")
        return np.load(file, mmap_mode="r")
    from ddnn_tf.data import load_dataset

    if split not in ("test", "val"):
        raise ConfigError(f"expected test or val, got {split!r}.", argument="split")
    dataset = load_dataset(data, path)
    if not 0 <= index < dataset.num_devices:
        raise ConfigError(
            f"index {index}: the dataset has {dataset.num_devices} devices.", argument="index"
        )
    return getattr(dataset, split).x[index]


def run_device(
    model: str,
    index: int,
    gateway: str | None,
    data: str,
    *,
    path: str | None = None,
    split: str = "test",
    limit: int | None = None,
    batch: int = 64,
    token: str | None = None,
    target: str = "portable",
    repeat: int = 1,
    transport: str = "http",
    mqtt=None,
    reconnect_s: float = 300.0,
    mcu: str | None = None,
) -> None:
    """Run end device ``index`` of a converted model against a gateway, until its data
    is streamed; one JSON line per round on standard output.

    Args:
        model: the converted model directory (tflite_models/NAME).
        index: this device's index (0 .. D-1).
        gateway: the gateway's URL, e.g. http://127.0.0.1:8001 (transport http).
        data: dataset name (fmnist6, mvmc, npz, synthetic) or a .npy file of this view.
        path: data file or directory for file-based loaders.
        split: test or val.
        limit: stream the first N samples only.
        batch: samples per round (the gateway's round length).
        token: the shared token (default: $DDNN_TF_TOKEN).
        target: portable (ai-edge-litert) or lce (larq-compute-engine).
        repeat: stream the samples this many times.
        transport: http or mqtt.
        mqtt: :class:`ddnn_tf.serve.mqtt.MqttSettings` (transport mqtt).
        reconnect_s: give up after this long without the gateway.
        mcu: run the tier's C on this board instead of the binary: ``qemu`` (the
            default emulated board, mps2-an386), ``mps2-an385`` or ``host``.

    Raises:
        ConfigError: a bad option; DeploymentError: the gateway refused a message or
            stayed away ``reconnect_s``.
    """
    from ddnn_tf.core.comm import encode_summaries
    from ddnn_tf.core.graph import device_tier
    from ddnn_tf.core.manifest import load_manifest
    from ddnn_tf.core.sensors import sensor_quantizer, sensor_values
    from ddnn_tf.runtime.tiers import TierRunner
    from ddnn_tf.serve.settings import TOKEN_ENV
    from ddnn_tf.serve.wire import model_id

    manifest = load_manifest(model)
    tier = device_tier(index)
    if tier not in manifest["tiers"]:
        raise ConfigError(f"index {index}: the model has no tier {tier}.", argument="index")
    for name, value in (("batch", batch), ("repeat", repeat)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"expected a positive integer, got {value!r}.", argument=name)
    if transport not in ("http", "mqtt"):
        raise ConfigError(f"expected http or mqtt, got {transport!r}.", argument="transport")
    if (
        not isinstance(reconnect_s, (int, float))
        or isinstance(reconnect_s, bool)
        or not (reconnect_s > 0)
    ):
        raise ConfigError(
            f"expected a positive number of seconds, got {reconnect_s!r}.", argument="reconnect_s"
        )
    if mcu is not None:  # the tier's C inside an emulated board (ddnn_tf.mcu.live)
        from ddnn_tf.mcu.live import BoardTier

        board = "mps2-an386" if mcu == "qemu" else str(mcu)
        runner = BoardTier(manifest, tier, board=board, argument="mcu")
    else:
        runner = TierRunner.from_manifest(manifest, tier, target)
    encoding = manifest["wire"]["summary"].get("encoding", "float32")
    (sensor,) = runner.input_names
    x = _load_view(str(data), int(index), path, split)
    entry = next(e for e in manifest["inputs"] if e["tier"] == tier)
    quantizer = sensor_quantizer(entry)
    if limit is not None:
        x = x[: int(limit)]
    token = token if token is not None else os.environ.get(TOKEN_ENV) or None
    if transport == "http":
        from ddnn_tf.serve.link import HttpLink

        if not gateway:
            raise ConfigError("the HTTP transport needs the gateway's URL.", argument="gateway")
        link = HttpLink(gateway, int(index), model_id(manifest), token)
    else:
        from ddnn_tf.serve.mqtt_device import MqttLink

        if mqtt is None:
            raise ConfigError("the MQTT transport needs a broker.", argument="broker")
        link = MqttLink(mqtt, manifest, int(index))
    total = len(x) * int(repeat)
    out = sys.stdout
    try:
        _retrying(link, lambda: _joined(link, batch), reconnect_s)
        for start in range(0, total, batch):
            t0 = time.monotonic()
            sent0, received0 = link.bytes()
            rows = np.arange(start, min(start + batch, total)) % len(x)
            xs = np.asarray(x[rows], np.float32)
            if xs.ndim == len(runner.input_shapes[sensor]):
                xs = xs[..., None]
            xs = sensor_values([quantizer], [xs])[0]  # a quantised sensor's codes
            result = runner({sensor: xs})
            summaries = encode_summaries(result["summary"], encoding).tobytes()
            step = functools.partial(_one_round, link, start, summaries, result["features"])
            payload, retries = _retrying(link, step, reconnect_s, rejoin=True, batch=batch)
            sent, received = link.bytes()
            record = {
                "start": start,
                "n": len(xs),
                "t0": t0,
                "sent": sent - sent0,
                "received": received - received0,
                "payload": payload,
                "retries": retries,
            }
            out.write(json.dumps(record) + "\n")
            out.flush()
    finally:
        link.close()
        if mcu is not None:
            runner.close()
    out.write(json.dumps({"done": True, "device": int(index), "samples": total}) + "\n")
    out.flush()


def _one_round(link, start: int, summaries: bytes, features: np.ndarray) -> int:
    """One round's messages; returns the payload bytes sent."""
    from ddnn_tf.core.comm import pack_features_batch
    from ddnn_tf.serve.wire import decode_mask

    send = decode_mask(link.summary(start, summaries), len(features))
    payload = len(summaries)
    if send.any():
        packed = pack_features_batch(features[send]).tobytes()
        link.features(start, packed)
        payload += len(packed)
    return payload


def _joined(link, batch: int) -> None:
    theirs = link.join().get("batch")
    if theirs != batch:
        raise ConfigError(
            f"the gateway's rounds are {theirs} samples, this device's {batch}; use the same "
            "round length on both.",
            argument="batch",
        )


def _retrying(link, step, reconnect_s: float, rejoin: bool = False, batch: int = 0):
    """Run ``step`` until it succeeds; while the gateway is away, back off and (for a
    round) join again before the next try. Returns ``(step's result, retries)``."""
    retries, away_since, delay = 0, None, BACKOFF_S[0]
    while True:
        try:
            return step(), retries
        except GatewayUnavailable as err:
            now = time.monotonic()
            away_since = away_since if away_since is not None else now
            if now - away_since > reconnect_s:
                raise DeploymentError(
                    f"the gateway stayed away for {reconnect_s:g} s; last: {err}"
                ) from None
            retries += 1
            time.sleep(delay)
            delay = min(2 * delay, BACKOFF_S[1])
            if rejoin:
                try:
                    _joined(link, batch)
                except GatewayUnavailable:
                    continue
