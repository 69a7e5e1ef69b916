"""ddnn_tf.serve.airtime: a radio and a WAN emulated on loopback take the cost model's time.

The devices' holds are replayed on a fake clock, sample by sample, and compared with
:func:`ddnn_tf.core.cost.price.price`'s latency of the same samples: the emulation and
the model are one formula. The live check, real processes on loopback, is in
tests/test_deploy.py and tests/test_mqtt.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DEFAULT_MODEL

from ddnn_tf.core.cost.price import price, wan_s
from ddnn_tf.core.cost.profiles import load_profile
from ddnn_tf.core.topology import Topology
from ddnn_tf.errors import ConfigError
from ddnn_tf.serve import airtime
from ddnn_tf.serve.airtime import RadioPacer, WanPacer, message_sizes

TOPOLOGY = Topology(input_shapes=[(10, 14, 1)] * 6, num_classes=10, summary_bits=4)
SIZES = {"summary": [5] * 6, "features": [18] * 6}
EXITS = np.array([0, 1, 1, 0, 1])  # local, cloud, cloud, local, cloud


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _emulated(radio: str, mode: str, monkeypatch, rate_hz=None) -> np.ndarray:
    """Each sample's latency when six devices hold their messages as their pacers say
    and everything else takes no time: the gateway decides once the last summary is in,
    the WAN takes its round trip and upload."""
    clock = Clock()
    monkeypatch.setattr(airtime.time, "monotonic", clock)
    n = len(EXITS)
    sizes = message_sizes_for(mode)
    pacers = [
        RadioPacer(radio, device=d, sizes=sizes, mode=mode, samples=n, rate_hz=rate_hz)
        for d in range(6)
    ]
    wan = load_profile("broadband", "wan")
    out = []
    for i, exit_index in enumerate(EXITS):
        clock.now = 0.0
        sent = [p("summary", i, sizes["summary"][d]) for d, p in enumerate(pacers)]
        ready = max(sent)
        if exit_index == 0:
            out.append(ready)
            continue
        if mode == "eager":
            out.append(ready + float(wan_s(wan, sum(SIZES["features"]))))
            continue
        ends = []
        for d, p in enumerate(pacers):
            clock.now = ready  # the decision arrives as soon as it is made
            got = ready + p("decision", i, 1)
            clock.now = got
            ends.append(got + p("features", i, SIZES["features"][d]))
        out.append(max(ends) + float(wan_s(wan, sum(SIZES["features"]))))
    return np.array(out)


def message_sizes_for(mode: str) -> dict[str, list[int]]:
    if mode == "eager":
        return {"summary": [5 + 18] * 6, "features": [18] * 6}
    return SIZES


@pytest.mark.parametrize("radio", ["ble-1m", "lora-sf7", "lora-sf12", "802154", "nbiot"])
@pytest.mark.parametrize("mode", ["paper", "eager"])
def test_the_emulated_radio_takes_the_modelled_time(radio, mode, monkeypatch):
    model = price(
        TOPOLOGY, EXITS, instructions=0, mcu=None, radio=radio, mode=mode, rate_hz=1.0
    ).chosen.latency_s
    np.testing.assert_allclose(_emulated(radio, mode, monkeypatch), model, rtol=1e-9, atol=1e-9)


def test_a_cellular_connection_is_set_up_again_when_samples_are_far_apart(monkeypatch):
    """At one sample a minute NB-IoT's connection is released between samples (1 s set-up
    plus a 10 s tail); back to back it is not."""
    slow = price(
        TOPOLOGY, EXITS, instructions=0, mcu=None, radio="nbiot", rate_hz=1 / 60
    ).chosen.latency_s
    emulated = _emulated("nbiot", "paper", monkeypatch, rate_hz=1 / 60)
    np.testing.assert_allclose(emulated, slow, rtol=1e-9)
    fast = _emulated("nbiot", "paper", monkeypatch)
    np.testing.assert_allclose(emulated - fast, 1.0)  # session_setup_ms of nbiot.json


def test_lora_decision_comes_in_the_receive_window(monkeypatch):
    """A LoRaWAN class A device hears the decision in its receive window, 1 s after its
    uplink, however early the gateway has it; in the eager protocol nothing comes down."""
    clock = Clock()
    monkeypatch.setattr(airtime.time, "monotonic", clock)
    sizes = message_sizes_for("paper")
    pacer = RadioPacer("lora-sf7", device=0, sizes=sizes, mode="paper", samples=1)
    hold = pacer("summary", 0, 5)
    clock.now = hold + 0.004  # the decision is back 4 ms after the uplink
    assert 1.0 < 0.004 + pacer("decision", 0, 1) < 1.06  # + its window and frame
    eager = RadioPacer("lora-sf7", device=0, sizes=sizes, mode="eager", samples=1)
    clock.now = 0.0
    eager("summary", 0, 23)
    assert eager("decision", 0, 1) == 0.0
    assert pacer("join", None, 0) == 0.0


def test_wan_pacer_and_message_sizes():
    assert WanPacer("broadband")("cloud", 2500) == pytest.approx(0.021)
    from ddnn_tf.core.manifest import load_manifest

    manifest = load_manifest(DEFAULT_MODEL)
    assert message_sizes(manifest, "paper") == SIZES
    assert message_sizes(manifest, "eager")["summary"] == [23] * 6
    with pytest.raises(ConfigError) as err:
        WanPacer("ble-1m")
    assert err.value.argument == "wan"


def test_device_settings_refuse_a_link_with_rounds_of_many_samples_and_agree_on_the_mode():
    from ddnn_tf.serve.device import _joined
    from ddnn_tf.serve.settings import DeviceSettings

    base = {"model": "m", "index": 0, "data": "fmnist6", "gateway": "http://127.0.0.1:1"}
    with pytest.raises(ConfigError) as err:
        DeviceSettings(**base, link="ble-1m")  # batch 64
    assert err.value.argument == "batch"
    settings = DeviceSettings(**base, link="ble-1m", batch=1, mode="eager")

    class Link:
        def join(self):
            return {"batch": 1, "mode": "paper"}

    with pytest.raises(ConfigError) as err:
        _joined(Link(), settings)
    assert err.value.argument == "mode" and "'paper'" in str(err.value)
