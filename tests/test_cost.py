"""The cost model: hardware profiles, radio messages, energy, battery life and latency."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ddnn_tf.core.cost import price, profiles
from ddnn_tf.core.cost import radio as rf
from ddnn_tf.core.cost.profiles import load_profile, profile_names
from ddnn_tf.core.schemas import HARDWARE_FIGURES
from ddnn_tf.core.topology import Topology
from ddnn_tf.errors import ConfigError, FormatError

pytestmark = pytest.mark.filterwarnings("error")

DEFAULT_LIKE = Topology(input_shapes=[(10, 14, 1)] * 6, num_classes=10, summary_bits=4)


# ------------------------------------------------------------------ profiles


def test_the_issue_s_profiles_ship_and_every_figure_names_its_source():
    names = profile_names()
    assert {"cortex-m0plus", "stm32l4", "nrf52840"} <= set(names["mcu"])
    assert {"ble-1m", "802154", "lora-sf7", "lora-sf12", "wifi", "ltem", "nbiot"} <= set(
        names["radio"]
    )
    assert names["wan"] and names["compute"] == ["this-host"]
    for kind, listed in names.items():
        for name in listed:
            p = load_profile(name, kind)
            assert set(HARDWARE_FIGURES[kind]) <= set(p.values)
            assert all(len(p.source(k)) > 10 for k in p.values), name
            assert all(v >= 0 and math.isfinite(v) for v in p.values.values()), name


def test_a_users_profile_file_is_loaded_by_path_and_checked_against_the_schema(tmp_path):
    mine = json.loads(Path(load_profile("ble-1m", "radio").origin).read_text())
    mine["name"] = "my-ble"
    mine["figures"]["tx_current_ma"]["value"] = 9.6
    path = tmp_path / "my-ble.json"
    path.write_text(json.dumps(mine))
    p = load_profile(str(path), "radio")
    assert p.name == "my-ble" and p["tx_current_ma"] == 9.6
    del mine["figures"]["ack_us"]
    path.write_text(json.dumps(mine))
    with pytest.raises(FormatError, match=r"my-ble.json: figures: missing key\(s\) \['ack_us'\]"):
        load_profile(str(path), "radio")
    mine["figures"]["ack_us"] = {"value": -3, "source": "x"}
    path.write_text(json.dumps(mine))
    with pytest.raises(FormatError, match="figures.ack_us.value: -3 is less than the minimum"):
        load_profile(str(path), "radio")
    path.write_text("{not json")
    with pytest.raises(FormatError, match="not JSON"):
        load_profile(str(path), "radio")
    with pytest.raises(FileNotFoundError, match="no profile file"):
        load_profile(str(tmp_path / "missing.json"), "radio")


def test_unknown_names_and_wrong_kinds_are_one_line_errors():
    with pytest.raises(ConfigError, match=r"radio: unknown radio profile 'lora'; expected one"):
        load_profile("lora", "radio")
    with pytest.raises(ConfigError, match="is a profile of kind 'radio'; expected kind 'mcu'"):
        load_profile("ble-1m", "mcu", argument="mcu")


# ------------------------------------------------------------------ one message


def test_lora_time_on_air_is_the_datasheet_formula():
    sf7, sf12 = load_profile("lora-sf7", "radio"), load_profile("lora-sf12", "radio")
    # The issue's figure: a 32-byte packet at SF7 takes ~70 ms (5.5 kb/s) and ~20 mJ.
    assert rf.lora_airtime_s(sf7, 32) == pytest.approx(0.071936)
    msg = rf.uplink_cost(sf7, 32 - 13)
    assert msg.energy_uj(sf7) == pytest.approx(0.071936 * 87 * 3.3 * 1e3 + 310 * 1.6 * 3.3e-3)
    # SF12 (low data rate optimisation on): 8 + 15 payload symbols of 32.768 ms for 13 B.
    assert rf.lora_airtime_s(sf12, 13) == pytest.approx((8 + 4.25 + 8 + 15) * 2**12 / 125e3)
    assert rf.lora_airtime_s(sf12, 32) / rf.lora_airtime_s(sf7, 32) > 15


def _toy(**figures) -> profiles.Profile:
    """A radio with round numbers: 1 ms per byte on air at 1 mA, 1 V."""
    base = load_profile("ble-1m", "radio")
    values = {k: 0.0 for k in base.values}
    values.update(
        supply_v=1.0,
        tx_current_ma=1.0,
        rx_current_ma=2.0,
        rate_bps=8000.0,
        max_payload_bytes=10.0,
        duty_cycle=1.0,
        parallel_uplinks=1.0,
    )
    values.update(figures)
    return profiles.Profile(
        "radio", "toy", "", values, dict.fromkeys(values, "test"), "toy", downlink="event"
    )


def test_messages_pay_per_packet_and_per_wake_up():
    toy = _toy(packet_overhead_bytes=2, ack_us=500, event_us=1000, event_current_ma=3)
    one = rf.uplink_cost(toy, 8)  # 10 B on air = 10 ms at 1 mA, a 0.5 ms ack at 2 mA
    assert (one.packets, one.airtime_s) == (1, pytest.approx(0.010))
    assert one.charge_uc == pytest.approx(10 + 1 + 3)  # uC: 10 ms at 1 mA, ack, wake-up
    three = rf.uplink_cost(toy, 25)  # 10 + 10 + 5 payload bytes: 3 packets, one wake-up
    assert three.packets == 3 and three.airtime_s == pytest.approx(0.031)
    assert three.charge_uc == pytest.approx(31 + 3 * 1.0 + 3.0)


def test_downlink_kinds_wait_differently():
    ready = np.array([0.002, 0.5])
    fixed = _toy(downlink_delay_ms=1000)
    fixed = profiles.Profile(**{**fixed.__dict__, "downlink": "fixed"})
    charge, busy, arrival, missed = rf.downlink_cost(fixed, 1, ready, np.zeros(2))
    assert np.all(arrival == pytest.approx(1.001)) and not missed.any()
    _, _, _, missed = rf.downlink_cost(fixed, 1, np.array([1.2]), np.zeros(1))
    assert missed.all()  # the window opened before the gateway had decided
    listen = profiles.Profile(**{**fixed.__dict__, "downlink": "listen"})
    listen.values["listen_current_ma"] = 5.0
    charge, _, arrival, _ = rf.downlink_cost(listen, 1, ready, np.zeros(2))
    assert arrival == pytest.approx(ready + 0.001)
    assert charge == pytest.approx(ready * 5000 + 0.001 * 2000)  # listening costs the wait


# ------------------------------------------------------------------ a whole sample


def test_energy_adds_up_by_hand_on_a_toy_radio():
    toy = _toy(packet_overhead_bytes=0)
    mcu = load_profile("stm32l4", "mcu")
    t = Topology(input_shapes=[(4,)] * 2, num_classes=3, device_units=16, summary_bits=4)
    # every sample exits locally: summary (2 B) up, decision (1 B) down, nothing more
    cost = price(t, np.zeros(100, np.int64), instructions=1e6, mcu=mcu, radio=toy, rate_hz=10)
    b = cost.to_dict()["energy_breakdown_uj"]["device_0"]
    compute = 1e6 * 1.3 * 100e-6 * 3.0 + 4e-6 * 8000 * 3.0
    assert b["compute"] == pytest.approx(compute)
    assert b["summary_uplink"] == pytest.approx(2 * 1e3 * 1.0 * 1e-3 * 1e3 * 1e-3)  # 2 ms, 1 mA
    assert b["decision_downlink"] == pytest.approx(1e-3 * 2e3)  # 1 ms at 2 mA
    assert b["feature_uplink"] == 0.0
    busy_mcu = 1e6 * 1.3 / 80e6 + 4e-6
    assert b["sleep"] == pytest.approx((0.1 - busy_mcu) * 1.4 * 3.0)
    total = cost.to_dict()["energy_uj_per_sample"]["device_0"]
    assert total == pytest.approx(sum(b.values()))
    days = cost.to_dict()["battery_days"]["device_0"]
    assert days == pytest.approx(225 * 3.6 * 3.0 / (total * 1e-6 * 10 * 86400))


def test_exit_fractions_price_like_the_per_sample_decisions():
    rng = np.random.default_rng(0)
    index = (rng.random(4000) < 0.3).astype(np.int64)  # 30 % go to the cloud
    frac = {"local": float(np.mean(index == 0)), "cloud": float(np.mean(index == 1))}
    kw = {"instructions": 82_000, "mcu": "nrf52840", "radio": "ble-1m"}
    a = price(DEFAULT_LIKE, index, **kw).to_dict()
    b = price(DEFAULT_LIKE, frac, **kw).to_dict()
    for d in ("device_0", "device_5"):
        assert a["energy_uj_per_sample"][d] == pytest.approx(b["energy_uj_per_sample"][d], rel=0.01)
    assert a["latency_ms"]["cloud"]["p50"] == pytest.approx(
        b["latency_ms"]["cloud"]["p50"], rel=0.05
    )


def test_modes_and_baselines_are_priced_side_by_side():
    frac = {"local": 0.74, "cloud": 0.26}
    d = price(DEFAULT_LIKE, frac, instructions=82_000, mcu="nrf52840", radio="ble-1m").to_dict()
    paper, eager = d["modes"]["paper"], d["modes"]["eager"]
    assert d["modes"]["cheaper"] == min(
        ("paper", "eager"), key=lambda m: d["modes"][m]["energy_uj_per_sample"]
    )
    assert d["modes"]["saving_percent"] == pytest.approx(
        100
        * (
            1
            - min(paper["energy_uj_per_sample"], eager["energy_uj_per_sample"])
            / max(paper["energy_uj_per_sample"], eager["energy_uj_per_sample"])
        )
    )
    e = price(DEFAULT_LIKE, frac, instructions=82_000, mcu="nrf52840", radio="ble-1m", mode="eager")
    e = e.to_dict()
    # an eager device sends the same message every sample: always-cloud's device energy
    assert e["energy_uj_per_sample"]["device_0"] == pytest.approx(
        e["baselines"]["always_cloud"]["energy_uj_per_sample"]["device_0"]
    )
    assert e["energy_breakdown_uj"]["device_0"]["decision_downlink"] == 0.0
    raw = d["baselines"]["raw_offload"]
    assert set(raw) >= {"energy_uj_per_sample", "battery_days", "latency_ms"}
    assert set(d["latency_ms"]) == {"local", "cloud", "overall"}
    assert d["latency_ms"]["local"]["p95"] < d["latency_ms"]["cloud"]["p50"]
    assert list(d["latency_ms"]["overall"]) == ["p50", "p95", "mean"]


def test_the_protocol_mode_that_wins_depends_on_the_radio():
    """On BLE a second connection event costs more than the 18 feature bytes it saves; on
    LoRa SF7 the feature bytes' time on air costs more than the downlink's receive window."""
    frac = {"local": 0.74, "cloud": 0.26}
    kw = {"instructions": 82_000, "mcu": "stm32l4"}
    ble = price(DEFAULT_LIKE, frac, radio="ble-1m", **kw).to_dict()["modes"]
    lora = price(DEFAULT_LIKE, frac, radio="lora-sf7", **kw).to_dict()["modes"]
    assert ble["cheaper"] == "eager" and lora["cheaper"] == "paper"


def test_infeasible_rates_are_flagged_with_the_highest_feasible_one():
    frac = {"local": 0.74, "cloud": 0.26}
    kw = {"instructions": 82_000, "mcu": "stm32l4", "radio": "lora-sf7"}
    fast = price(DEFAULT_LIKE, frac, rate_hz=1.0, **kw).to_dict()
    assert not fast["feasible"] and "1 % time on air" in fast["limits"][0]
    slow = price(DEFAULT_LIKE, frac, rate_hz=0.9 * fast["max_rate_hz"], **kw).to_dict()
    assert slow["feasible"] and slow["limits"] == []


def test_failed_devices_spend_nothing_and_unclassified_samples_have_no_latency():
    index = np.array([0, 1, -1, 0])
    presence = np.ones((4, 6), bool)
    presence[2] = False
    presence[:, 3] = False
    cost = price(
        DEFAULT_LIKE, index, instructions=1000, mcu="nrf52840", radio="ble-1m", presence=presence
    )
    s = cost.chosen
    assert np.isnan(s.energy_uj["compute"][:, 3]).all() and np.isnan(s.latency_s[2])
    d = cost.to_dict()
    assert d["energy_uj_per_sample"]["device_3"] is None and d["battery_days"]["device_3"] is None
    json.dumps(d, allow_nan=False)  # strict JSON


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rate_hz": -1.0}, "rate_hz: expected a positive number"),
        ({"battery_mah": 0}, "battery_mah: expected a positive number"),
        ({"mode": "lazy"}, "mode: expected one of paper, eager"),
        ({"radio": "lora"}, "unknown radio profile"),
        ({"instructions": -5}, "instructions: expected non-negative"),
    ],
)
def test_bad_arguments_are_config_errors(kwargs, match):
    args = {"instructions": 1000, "mcu": "nrf52840", "radio": "ble-1m", **kwargs}
    with pytest.raises(ConfigError, match=match):
        price(DEFAULT_LIKE, {"local": 1.0}, **args)


def test_bad_exits_are_config_errors():
    kw = {"instructions": 1000, "mcu": "nrf52840", "radio": "ble-1m"}
    with pytest.raises(ConfigError, match="summing to 1"):
        price(DEFAULT_LIKE, {"local": 0.5}, **kw)
    with pytest.raises(ConfigError, match="exit indices in -1..1"):
        price(DEFAULT_LIKE, np.array([0, 2]), **kw)


def test_a_lorawan_gateway_s_decision_downlinks_count_against_its_duty_cycle():
    """Six class A decision downlinks per sample share the gateway's 1 %: the paper's
    protocol is limited by them, the eager one (no downlink) by the devices' uplinks."""
    frac = {"local": 0.74, "cloud": 0.26}
    kw = {"instructions": 82_000, "mcu": "stm32l4", "radio": "lora-sf7", "rate_hz": 0.1}
    paper = price(DEFAULT_LIKE, frac, **kw).to_dict()
    eager = price(DEFAULT_LIKE, frac, mode="eager", **kw).to_dict()
    downlink = rf.downlink_airtime_s(load_profile("lora-sf7", "radio"), 1)
    assert paper["max_rate_hz"] == pytest.approx(0.01 / (6 * downlink))
    assert any("the gateway's decision downlinks need" in x for x in paper["limits"])
    assert eager["feasible"] and eager["max_rate_hz"] > 2 * paper["max_rate_hz"]
