"""A radio and a WAN on loopback (``ddnn deploy --link``): a device holds each message for
the time the cost model says its radio takes (:class:`RadioPacer`), the gateway each
request to the cloud for the WAN's (:class:`WanPacer`); see *What a sample costs*,
*Checked live*. Every device is assumed present when the turns on the channel are counted.
"""

from __future__ import annotations

import time

import numpy as np

from ddnn_tf.core.cost import radio as rf
from ddnn_tf.core.cost.price import DECISION_BYTES, draw, wan_s
from ddnn_tf.core.cost.profiles import Profile, load_profile
from ddnn_tf.core.graph import device_tier
from ddnn_tf.serve.wire import summary_size

__all__ = [
    "UPLINK_DRAWS",
    "RadioPacer",
    "WanPacer",
    "message_sizes",
    "round_s",
    "slowest_message_s",
]

#: The seeded draw each uplink message waits by (:data:`ddnn_tf.core.cost.price.DRAWS`).
UPLINK_DRAWS = {"summary": "first", "features": "second"}


def message_sizes(manifest, mode: str) -> dict[str, list[int]]:
    """Every device's bytes for one sample, ``{"summary": [...], "features": [...]}`` in
    protocol ``mode`` (an eager summary message carries the features too)."""
    wire = manifest["wire"]
    count = sum(e["role"] == "device" for e in manifest["tiers"].values())
    features = [int(wire["features"][device_tier(i)]["nbytes"]) for i in range(count)]
    summary = summary_size(manifest)
    return {
        "summary": [summary + (f if mode == "eager" else 0) for f in features],
        "features": features,
    }


def _uplink_s(radio: Profile, nbytes: list[int], u) -> np.ndarray:
    """When each device's message ends, every device sending (``u``: their draws)."""
    u = np.atleast_2d(u)
    return rf.uplink_delay_s(radio, nbytes, u, np.ones_like(u, bool))[0]


def _downlink_s(radio: Profile, nbytes=DECISION_BYTES, waited=0.0, u=1.0) -> float:
    """When a downlink reaches the device, ``waited`` s after its uplink (``u``: the draw)."""
    return float(rf.downlink_cost(radio, nbytes, waited, u)[2])


def _slowest_uplink_s(radio: Profile, nbytes: list[int]) -> float:
    return float(_uplink_s(radio, nbytes, np.ones(len(nbytes))).max())


def slowest_message_s(radio: Profile, sizes: dict[str, list[int]]) -> float:
    """The longest a device's message can take from being ready to reaching the gateway
    (the longest wait for the channel, the last turn, and for the paper protocol's
    features the decision's downlink before them)."""
    return max(_slowest_uplink_s(radio, nbytes) for nbytes in sizes.values()) + _downlink_s(radio)


def round_s(radio: Profile, wan: Profile, sizes: dict[str, list[int]], mode: str) -> float:
    """The longest a sample's messages take, from the devices' first uplink to the cloud's
    answer (without the tiers' compute): the slowest uplinks, the decision's downlink
    (paper protocol) and the WAN with every device's features.

    Example:
        >>> from ddnn_tf.core.cost.profiles import load_profile
        >>> sizes = {"summary": [5] * 6, "features": [18] * 6}
        >>> lora, wan = load_profile("lora-sf7", "radio"), load_profile("broadband", "wan")
        >>> round(round_s(lora, wan, sizes, "paper"), 2)  # s: the receive window opens at 1 s
        1.19
    """
    total = _slowest_uplink_s(radio, sizes["summary"])
    if mode == "paper":
        total += _downlink_s(radio) + _slowest_uplink_s(radio, sizes["features"])
    return total + float(wan_s(wan, sum(sizes["features"])))


class RadioPacer:
    """A device link's ``pace(kind, start, nbytes) -> seconds`` hook
    (:attr:`ddnn_tf.serve.link.DeviceLink.pace`) for a radio profile: an uplink waits for
    the channel (:func:`ddnn_tf.core.cost.price.draw`), its turn and its time on air, a
    decision for its downlink.

    Args:
        radio: the radio profile (a name, a path or a loaded profile).
        device: this device's index.
        sizes: :func:`message_sizes` of the model and the protocol mode.
        mode: ``paper`` or ``eager``.
        samples: the samples of the stream (N of the model's draws).
        rate_hz: the samples per second the device reads, or None (back to back): a
            cellular radio sets its connection up for each sample when it would be
            released between samples, as the cost model says.
        seed: the draws' seed (the cost model's, 0 by default).

    Raises:
        ConfigError / FormatError / FileNotFoundError: a bad radio profile.
    """

    def __init__(
        self,
        radio,
        *,
        device: int,
        sizes,
        mode: str,
        samples: int,
        rate_hz: float | None = None,
        seed: int = 0,
    ) -> None:
        self.radio = load_profile(radio, "radio", argument="link")
        self.device = int(device)
        self.sizes = {k: list(v) for k, v in sizes.items()}
        self.devices = len(self.sizes["summary"])
        self.mode = mode
        self.samples = int(samples)
        self.seed = int(seed)
        session_s = (self.radio["session_setup_ms"] + self.radio["session_tail_ms"]) * 1e-3
        released = rate_hz is not None and session_s < 1.0 / rate_hz
        self.setup_s = self.radio["session_setup_ms"] * 1e-3 if released else 0.0
        self._sent: dict[int, float] = {}  # round start -> when its summary went on air

    def _draw(self, name: str, start: int) -> float:
        return draw(self.seed, self.samples, self.devices, name, start % self.samples, self.device)

    def __call__(self, kind: str, start: int | None, nbytes: int) -> float:
        """Seconds to hold message ``kind`` of round ``start`` (``decision``: the gateway's
        answer to a summary, just received) before it goes on."""
        if start is None or kind == "join":
            return 0.0
        now = time.monotonic()
        if kind == "decision":
            sent = self._sent.pop(start, None)
            if self.mode == "eager" or sent is None:
                return 0.0
            u = self._draw("decision", start)
            return max(sent + _downlink_s(self.radio, nbytes, max(now - sent, 0.0), u) - now, 0.0)
        u = np.zeros(self.devices)
        u[self.device] = self._draw(UPLINK_DRAWS[kind], start)
        hold = float(_uplink_s(self.radio, self.sizes[kind], u)[self.device])
        if kind == "summary":
            hold += self.setup_s
            self._sent[start] = now + hold
        return hold


class WanPacer:
    """The gateway's ``pace(kind, nbytes) -> seconds`` hook
    (:attr:`ddnn_tf.serve.gateway.Gateway.pace`) for a WAN profile (``wan``: as
    :class:`RadioPacer`'s ``radio``): its round trip and the request's upload."""

    def __init__(self, wan) -> None:
        self.wan = load_profile(wan, "wan", argument="wan")

    def __call__(self, kind: str, nbytes: int) -> float:
        return float(wan_s(self.wan, nbytes))
