"""An end device as an OS process: its tier binary, its own view, the exit protocol.

``python -m ddnn_tf.device MODEL_DIR --index I --gateway URL --data NAME [--path P]
[--split test] [--limit N] [--batch 64] [--token T] [--target portable|lce] [--mcu BOARD]``

The device runs tier ``device_I`` on its view of each sample and talks to the gateway
(:mod:`ddnn_tf.serve.gateway`) in rounds of ``--batch`` consecutive samples:

1. ``POST /v1/join`` once (held until every device joined);
2. per round, ``POST /v1/summary`` with its encoded class summaries (the manifest's
   ``wire.summary.encoding``); the held response is the decision mask;
3. if any sample is flagged, ``POST /v1/features`` with those samples' packed features
   (:func:`ddnn_tf.comm.pack_features`), nothing else.

``--data`` is a dataset name (its ``--split`` view ``I`` is used) or a ``.npy`` file
holding this device's samples. The device prints one JSON line per round on stdout:
``{"start", "n", "t0", "sent", "received", "payload"}`` (``t0``: ``time.monotonic()``
before the tier ran; ``sent``/``received``: bytes on the socket, HTTP framing included;
``payload``: summary and feature bytes), then ``{"done": true, ...}``.

Only numpy, the standard library and the interpreter are imported (no TensorFlow).
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import time
import urllib.parse
from pathlib import Path

import numpy as np

from ddnn_tf._cli import cli

__all__ = ["GatewayClient", "main"]


class _CountingReader:
    """A file object that counts the bytes read through it."""

    def __init__(self, raw, counter: list[int]) -> None:
        self._raw = raw
        self._counter = counter

    def read(self, *args):
        data = self._raw.read(*args)
        self._counter[0] += len(data)
        return data

    def read1(self, *args):
        data = self._raw.read1(*args)
        self._counter[0] += len(data)
        return data

    def readline(self, *args):
        data = self._raw.readline(*args)
        self._counter[0] += len(data)
        return data

    def readinto(self, buffer):
        n = self._raw.readinto(buffer)
        self._counter[0] += n or 0
        return n

    def __getattr__(self, name):
        return getattr(self._raw, name)


class _CountingSocket:
    """A socket wrapper counting every byte sent and every byte the HTTP parser reads."""

    def __init__(self, sock, sent: list[int], received: list[int]) -> None:
        self._sock = sock
        self._sent = sent
        self._received = received

    def sendall(self, data, *args):
        self._sent[0] += len(data)
        return self._sock.sendall(data, *args)

    def makefile(self, *args, **kwargs):
        return _CountingReader(self._sock.makefile(*args, **kwargs), self._received)

    def __getattr__(self, name):
        return getattr(self._sock, name)


class _CountingConnection(http.client.HTTPConnection):
    def __init__(self, *args, sent: list[int], received: list[int], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._counters = (sent, received)

    def connect(self) -> None:
        super().connect()
        self.sock = _CountingSocket(self.sock, *self._counters)


class GatewayClient:
    """A keep-alive HTTP connection to the gateway that counts its bytes on the socket.

    Args:
        url: the gateway's base URL (http only).
        device: this device's index.
        model: the model id sent with every request.
        token: the shared token (None: none).
        timeout: socket timeout in seconds (the gateway holds a join up to 120 s).

    Raises:
        ValueError: a URL that is not ``http://host:port``.
    """

    def __init__(
        self, url: str, device: int, model: str, token: str | None, timeout: float = 180.0
    ):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"--gateway: expected http://HOST:PORT, got {url!r}.")
        self.sent, self.received = [0], [0]
        self._conn = _CountingConnection(
            parts.hostname,
            parts.port or 80,
            timeout=timeout,
            sent=self.sent,
            received=self.received,
        )
        self.headers = {"X-DDNN-Model": model, "X-DDNN-Device": str(device)}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.url = url

    def post(self, path: str, body: bytes, content_type: str, **headers: str) -> bytes:
        """POST ``body``; return the response body.

        Raises:
            ValueError: the gateway answered an error (its code and message) or is unreachable.
        """
        h = {**self.headers, "Content-Type": content_type, **headers}
        try:
            self._conn.request("POST", path, body=body, headers=h)
            response = self._conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as err:
            self._conn.close()
            raise ValueError(f"gateway {self.url} unreachable: {err}") from None
        if response.status != 200:
            try:
                error = json.loads(data)["error"]
                what = f"{error['code']}: {error['message']}"
            except (ValueError, KeyError, TypeError):
                what = data[:200].decode(errors="replace")
            raise ValueError(f"gateway {self.url}{path} answered {response.status} ({what})")
        return data

    def close(self) -> None:
        self._conn.close()


def _load_view(data: str, index: int, path: str | None, split: str) -> np.ndarray:
    if data.endswith(".npy"):
        file = Path(data)
        if not file.is_file():
            raise FileNotFoundError(f"--data {data}: no such file.")
        return np.load(file, mmap_mode="r")
    from ddnn_tf.data import load_dataset

    if split not in ("test", "val"):
        raise ValueError(f"--split: expected test or val, got {split!r}.")
    dataset = load_dataset(data, path)
    if not 0 <= index < dataset.num_devices:
        raise ValueError(f"--index {index}: the dataset has {dataset.num_devices} devices.")
    return getattr(dataset, split).x[index]


def main(
    model: str,
    index: int,
    gateway: str,
    data: str,
    path: str | None = None,
    split: str = "test",
    limit: int | None = None,
    batch: int = 64,
    token: str | None = None,
    target: str = "portable",
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
        batch: samples per round (the devices must agree).
        token: the shared token (default: $DDNN_TF_TOKEN).
        target: portable (ai-edge-litert) or lce (larq-compute-engine).
        mcu: run the tier's C on this board instead: qemu (= mps2-an386), mps2-an385, host.
    """
    from ddnn_tf.comm import encode_summaries, pack_features_batch
    from ddnn_tf.graph import device_tier
    from ddnn_tf.manifest import load_manifest
    from ddnn_tf.runtime.tiers import TierRunner
    from ddnn_tf.serve.http import TOKEN_ENV
    from ddnn_tf.serve.wire import FEATURES_TYPE, SUMMARY_TYPE, decode_mask, model_id

    manifest = load_manifest(model)
    tier = device_tier(index)
    if tier not in manifest["tiers"]:
        raise ValueError(f"--index {index}: the model has no tier {tier}.")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"--batch: expected a positive integer, got {batch!r}.")
    if mcu is not None:  # the tier's C inside an emulated board (ddnn_tf.mcu.live)
        from ddnn_tf.mcu.live import BoardTier

        runner = BoardTier(manifest, tier, board="mps2-an386" if mcu == "qemu" else str(mcu))
    else:
        runner = TierRunner.from_manifest(manifest, tier, target)
    encoding = manifest["wire"]["summary"].get("encoding", "float32")
    (sensor,) = runner.input_names
    x = _load_view(str(data), int(index), path, split)
    if limit is not None:
        x = x[: int(limit)]
    token = token if token is not None else os.environ.get(TOKEN_ENV) or None
    client = GatewayClient(gateway, int(index), model_id(manifest), token)
    client.post("/v1/join", b"", "application/octet-stream")
    out = sys.stdout
    for start in range(0, len(x), batch):
        t0 = time.monotonic()
        sent0, received0 = client.sent[0], client.received[0]
        xs = np.asarray(x[start : start + batch], np.float32)
        if xs.ndim == len(runner.input_shapes[sensor]):
            xs = xs[..., None]
        result = runner({sensor: xs})
        summaries = encode_summaries(result["summary"], encoding).tobytes()
        decision = client.post(
            "/v1/summary", summaries, SUMMARY_TYPE, **{"X-DDNN-Start": str(start)}
        )
        send = decode_mask(decision, len(xs))
        payload = len(summaries)
        if send.any():
            features = pack_features_batch(result["features"][send]).tobytes()
            client.post("/v1/features", features, FEATURES_TYPE, **{"X-DDNN-Start": str(start)})
            payload += len(features)
        record = {
            "start": start,
            "n": len(xs),
            "t0": t0,
            "sent": client.sent[0] - sent0,
            "received": client.received[0] - received0,
            "payload": payload,
        }
        out.write(json.dumps(record) + "\n")
        out.flush()
    client.close()
    out.write(json.dumps({"done": True, "device": int(index), "samples": len(x)}) + "\n")
    out.flush()


if __name__ == "__main__":
    cli(main)
