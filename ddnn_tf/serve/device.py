"""An end device as an OS process: ``ddnn device`` (:func:`run_device`).

The device runs tier ``device_I`` (or its C on an emulated board, ``mcu``) on its view of
each sample and speaks the device protocol (docs/protocol.md, *Devices and the gateway*)
over a link (:mod:`ddnn_tf.serve.link`, :mod:`ddnn_tf.serve.mqtt_device`), paced by a
radio profile (:class:`ddnn_tf.serve.airtime.RadioPacer`) or not, a round as
:data:`ROUNDS` says, backing off while the gateway is away (docs/operations.md, *Restarts*).

One JSON line per round on stdout, then ``{"done": true, ...}`` (their keys:
docs/serving.md, *The services one by one*). No TensorFlow is imported.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from pathlib import Path

import numpy as np

from ddnn_tf.core.comm import encode_summaries, pack_features_batch
from ddnn_tf.core.graph import device_tier
from ddnn_tf.core.sensors import sensor_quantizer, sensor_values
from ddnn_tf.core.vocab import DEFAULT_BOARD
from ddnn_tf.errors import ConfigError, DeploymentError
from ddnn_tf.serve.protocol import GatewayUnavailable
from ddnn_tf.serve.settings import DeviceSettings, shared_token

__all__ = ["run_device"]

#: Back-off between two tries to reach a gateway that went away (doubling, seconds).
BACKOFF_S = (0.05, 2.0)


def _load_view(data: str, index: int, path: str | None, subset: str) -> np.ndarray:
    if data.endswith(".npy"):
        file = Path(data)
        if not file.is_file():
            raise FileNotFoundError(f"data {data}: no such file.")
        return np.load(file, mmap_mode="r")
    from ddnn_tf.data import load_dataset

    dataset = load_dataset(data, path)
    if not 0 <= index < dataset.num_devices:
        raise ConfigError(
            f"index {index}: the dataset has {dataset.num_devices} devices.", argument="index"
        )
    return getattr(dataset, subset).x[index]


def _tier(settings: DeviceSettings, manifest):
    """The device's tier: its binary, or its C on a board (``mcu``)."""
    from ddnn_tf.runtime.tiers import TierRunner

    tier = device_tier(settings.index)
    if tier not in manifest["tiers"]:
        raise ConfigError(
            f"index {settings.index}: the model has no tier {tier}.", argument="index"
        )
    if settings.mcu is None:
        return TierRunner.from_manifest(manifest, tier, settings.target)
    from ddnn_tf.mcu.live import BoardTier  # the tier's C inside an emulated board

    board = DEFAULT_BOARD if settings.mcu == "qemu" else settings.mcu
    return BoardTier(manifest, tier, board=board, argument="mcu")


def _link(settings: DeviceSettings, manifest):
    """The device's link to its gateway (:mod:`ddnn_tf.serve.link`)."""
    if settings.transport == "mqtt":
        from ddnn_tf.serve.mqtt_device import MqttLink

        return MqttLink(settings.mqtt(), manifest, settings.index)
    from ddnn_tf.serve.link import HttpLink
    from ddnn_tf.serve.wire import model_id

    token = shared_token(settings.token)
    return HttpLink(settings.gateway, settings.index, model_id(manifest), token)


def run_device(settings: DeviceSettings) -> None:
    """Run an end device of a converted model against its gateway until its data is
    streamed; one JSON line per round on standard output.

    Raises:
        ConfigError: a bad option; DeploymentError: the gateway refused a message or
            stayed away ``reconnect_s``.
    """
    from ddnn_tf.core.manifest import load_manifest

    s = settings
    manifest = load_manifest(s.model)
    runner = _tier(s, manifest)
    x = _load_view(s.data, s.index, s.path, s.subset)
    if s.limit is not None:
        x = x[: s.limit]
    pace = None
    if s.link is not None:  # a radio on loopback
        from ddnn_tf.serve.airtime import RadioPacer, message_sizes

        sizes, samples = message_sizes(manifest, s.mode), len(x) * s.repeat
        pace = RadioPacer(
            s.link, device=s.index, sizes=sizes, mode=s.mode, samples=samples, rate_hz=s.rate_hz
        )
    link = _link(s, manifest)
    link.pace = pace
    try:
        _retrying(link, lambda: _joined(link, s), s.reconnect_s)
        origin = time.monotonic()  # the gateway lets every device go at once
        _stream(link, runner, manifest, x, s, origin)
    finally:
        link.close()
        if s.mcu is not None:
            runner.close()
    print(json.dumps({"done": True, "device": s.index, "samples": len(x) * s.repeat}), flush=True)


def _stream(link, runner, manifest, x: np.ndarray, s: DeviceSettings, origin: float) -> None:
    """Every round of the device's stream, one JSON line each; with a rate, sample ``k``
    is read ``(k + 1) / rate_hz`` seconds after ``origin``."""
    encoding = manifest["wire"]["summary"].get("encoding", "float32")
    (sensor,) = runner.input_names
    tier = device_tier(s.index)
    quantizer = sensor_quantizer(next(e for e in manifest["inputs"] if e["tier"] == tier))
    total = len(x) * s.repeat
    for start in range(0, total, s.batch):
        for k in s.hold_at:  # a fault of ddnn deploy lands before this round
            while start - s.batch < k <= start and not Path(s.hold_dir, f"released-{k}").exists():
                time.sleep(0.01)
        if s.rate_hz is not None:  # a sensor read at its rate: the round's last sample
            due = origin + min(start + s.batch, total) / s.rate_hz
            time.sleep(max(due - time.monotonic(), 0.0))
        t0 = time.monotonic()
        sent0, received0 = link.bytes()
        rows = np.arange(start, min(start + s.batch, total)) % len(x)
        xs = np.asarray(x[rows], np.float32)
        if xs.ndim == len(runner.input_shapes[sensor]):
            xs = xs[..., None]
        xs = sensor_values([quantizer], [xs])[0]  # a quantised sensor's codes
        result = runner({sensor: xs})
        summaries = encode_summaries(result["summary"], encoding).tobytes()
        compute_s = time.monotonic() - t0
        step = functools.partial(ROUNDS[s.mode], link, start, summaries, result["features"])
        payload, retries = _retrying(link, step, s.reconnect_s, rejoin=s)
        sent, received = link.bytes()
        record = {
            "start": start,
            "n": len(xs),
            "t0": t0,
            "compute_s": compute_s,
            "sent": sent - sent0,
            "received": received - received0,
            "payload": payload,
            "retries": retries,
        }
        print(json.dumps(record), flush=True)


def _paper_round(link, start: int, summaries: bytes, features: np.ndarray) -> int:
    """A round of the paper's protocol; the payload bytes sent."""
    from ddnn_tf.serve.wire import decode_mask

    send = decode_mask(link.summary(start, summaries), len(features))
    payload = len(summaries)
    if send.any():
        packed = pack_features_batch(features[send]).tobytes()
        link.features(start, packed)
        payload += len(packed)
    return payload


def _eager_round(link, start: int, summaries: bytes, features: np.ndarray) -> int:
    """A round of the eager protocol (summaries and features in one message); the payload
    bytes sent."""
    body = summaries + pack_features_batch(features).tobytes()
    link.summary(start, body)
    return len(body)


#: How a round goes, per protocol mode (:data:`ddnn_tf.core.vocab.PROTOCOL_MODES`).
ROUNDS = {"paper": _paper_round, "eager": _eager_round}


def _joined(link, s: DeviceSettings) -> None:
    info = link.join()
    for name, mine in (("batch", s.batch), ("mode", s.mode)):
        if info.get(name) != mine:
            raise ConfigError(
                f"the gateway's is {info.get(name)!r}, this device's {mine!r}; the devices "
                "and their gateway must agree.",
                argument=name,
            )


def _retrying(link, step, reconnect_s: float, rejoin: DeviceSettings | None = None):
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
            if rejoin is not None:
                with contextlib.suppress(GatewayUnavailable):
                    _joined(link, rejoin)
