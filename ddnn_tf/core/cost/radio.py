"""What one message costs a device on a radio: packets, time on air, wake-ups, receive windows.

A message of ``n`` payload bytes is cut into ``ceil(n / max_payload_bytes)`` packets. The
device pays, per message, a wake-up (``event_us`` at ``event_current_ma``: crystal start,
radio ramp-up, a BLE connection event's processing) and its channel access
(``access_us`` listening: CSMA clear-channel assessment, DIFS and backoff); per packet,
its time on air at the transmit current (the payload plus ``packet_overhead_bytes`` of
headers and preamble at ``rate_bps``, plus ``packet_fixed_us``; LoRa's time on air from the
SX1276 datasheet's formula) and the link-layer acknowledgement (``ack_us`` at the receive
current). A radio that cannot send at once waits up to ``access_wait_ms`` (uniform, radio
asleep: the next BLE connection event, a CSMA backoff).

Receiving the gateway's decision depends on the radio's ``downlink`` kind:

* ``fixed`` (LoRaWAN class A): the receive window opens ``downlink_delay_ms`` after the end
  of the device's uplink, the radio asleep meanwhile; the decision must be ready by then;
* ``event`` (BLE connection events, an 802.15.4 child polling its parent): once the
  decision is ready the device gets it at its next event, up to ``downlink_delay_ms``
  later, asleep meanwhile;
* ``listen`` (Wi-Fi, cellular connected mode): the device keeps its receiver on at
  ``listen_current_ma`` from the end of its uplink until the decision arrives (plus up to
  ``downlink_delay_ms`` of DRX alignment).

The device then receives for ``downlink_window_us`` before the frame and for the frame
itself, and acknowledges it. Cellular radios open a *session* per sample
(``session_setup_ms`` from power saving, ``session_tail_ms`` until the network releases
the connection); radios that keep a link up pay ``keepalive_us`` of receive and a wake-up
every ``keepalive_interval_s`` while idle.

Every function works on numpy arrays (one value per sample) as well as on floats.
Numpy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ddnn_tf.core.cost.profiles import Profile

__all__ = [
    "Message",
    "downlink_airtime_s",
    "downlink_cost",
    "keepalive_charge_uc",
    "lora_airtime_s",
    "uplink_cost",
    "uplink_delay_s",
]


@dataclass(frozen=True)
class Message:
    """The device's side of one message.

    Attributes:
        packets: packets it takes.
        airtime_s: time on air of its packets (the duty-cycle budget).
        busy_s: time from the device's wake-up to the end of the message (radio on).
        charge_uc: charge drawn, microcoulombs (uA x s).
        energy_uj: energy drawn, microjoules (the charge at the radio's supply voltage).
    """

    packets: int
    airtime_s: float
    busy_s: float
    charge_uc: float

    def energy_uj(self, radio: Profile) -> float:
        return self.charge_uc * radio["supply_v"]


def lora_airtime_s(radio: Profile, payload_bytes: int, *, uplink: bool = True) -> float:
    """LoRa time on air of one packet of ``payload_bytes`` (PHY payload), in seconds.

    The SX1276 datasheet's formula (section 4.1.1.7): ``T = (n_preamble + 4.25) T_sym +
    (8 + max(ceil((8 PL - 4 SF + 28 + 16 CRC - 20 IH) / (4 (SF - 2 DE))) (CR + 4), 0))
    T_sym`` with ``T_sym = 2^SF / BW``, an explicit header (IH = 0), the CRC on uplinks only.

    Example:
        >>> from ddnn_tf.core.cost.profiles import load_profile
        >>> round(1000 * lora_airtime_s(load_profile("lora-sf7", "radio"), 32), 1)  # ms
        71.9
    """
    sf = int(radio["lora_spreading_factor"])
    t_sym = 2.0**sf / radio["lora_bandwidth_hz"]
    de = int(radio["lora_low_data_rate_optimize"])
    crc = int(radio["lora_uplink_crc"] if uplink else radio["lora_downlink_crc"])
    cr = int(radio["lora_coding_rate"])
    num = 8 * payload_bytes - 4 * sf + 28 + 16 * crc
    body = 8 + max(math.ceil(num / (4 * (sf - 2 * de))) * (cr + 4), 0)
    return (radio["lora_preamble_symbols"] + 4.25 + body) * t_sym


def _packets(radio: Profile, nbytes: int) -> list[int]:
    """Payload bytes of each packet of an ``nbytes`` message (at least one packet)."""
    size = int(radio["max_payload_bytes"])
    full, rest = divmod(int(nbytes), size)
    return [size] * full + ([rest] if rest or not full else [])


def _on_air_s(radio: Profile, payload: int, *, uplink: bool) -> float:
    framed = payload + int(radio["packet_overhead_bytes"])
    if radio.modulation == "lora":
        return lora_airtime_s(radio, framed, uplink=uplink)
    return 8.0 * framed / radio["rate_bps"] + radio["packet_fixed_us"] * 1e-6


def uplink_cost(radio: Profile, nbytes: int) -> Message:
    """What sending one ``nbytes`` message costs the device (its wake-up, channel access,
    packets and their acknowledgements), without any wait for the channel.

    Example:
        >>> from ddnn_tf.core.cost.profiles import load_profile
        >>> m = uplink_cost(load_profile("lora-sf7", "radio"), 19)  # 13 B MAC + 19 B = 32 B
        >>> m.packets, round(1000 * m.airtime_s, 1), round(m.energy_uj(load_profile(
        ...     "lora-sf7", "radio")) / 1000, 1)  # ms, mJ
        (1, 71.9, 20.7)
    """
    tx, rx = radio["tx_current_ma"] * 1e3, radio["rx_current_ma"] * 1e3  # uA
    event_s, access_s = radio["event_us"] * 1e-6, radio["access_us"] * 1e-6
    ack_s = radio["ack_us"] * 1e-6
    packets = _packets(radio, nbytes)
    air = sum(_on_air_s(radio, p, uplink=True) for p in packets)
    busy = event_s + access_s + air + len(packets) * ack_s
    charge = (
        event_s * radio["event_current_ma"] * 1e3
        + access_s * rx
        + air * tx
        + len(packets) * ack_s * rx
    )
    return Message(len(packets), air, busy, charge)


def uplink_delay_s(radio: Profile, nbytes, wait_u, who) -> np.ndarray:
    """Seconds from the moment devices have their messages ready until each message ends,
    when they share the channel: a wait for it (``wait_u`` x ``access_wait_ms``), then
    their turns, ``parallel_uplinks`` devices at a time in device order, each turn as long
    as the longest of the messages (the devices' ``nbytes``).

    Args:
        radio: the radio profile.
        nbytes: ``(D,)`` each device's message bytes.
        wait_u: ``(N, D)`` uniform draws in [0, 1).
        who: ``(N, D)`` bool, the devices that send.

    Returns:
        ``(N, D)`` seconds (meaningless where ``who`` is False).

    Example:
        >>> from ddnn_tf.core.cost.profiles import load_profile
        >>> ble = load_profile("ble-1m", "radio")
        >>> t = uplink_delay_s(ble, [5, 5], np.zeros((1, 2)), np.ones((1, 2), bool))
        >>> [round(1e3 * v, 3) for v in t[0]]  # ms: one device after the other
        [1.056, 2.112]
    """
    who = np.asarray(who, bool)
    busy = [uplink_cost(radio, int(b)).busy_s for b in np.atleast_1d(nbytes)]
    step = max(busy, default=0.0)
    order = np.cumsum(who, axis=1) - 1
    slot = np.where(who, order // max(int(radio["parallel_uplinks"]), 1), 0)
    return np.asarray(wait_u, np.float64) * radio["access_wait_ms"] * 1e-3 + (slot + 1) * step


def downlink_airtime_s(radio: Profile, nbytes: int) -> float:
    """Time on air of one ``nbytes`` downlink frame: what the gateway's transmitter spends
    (the gateway's own duty-cycle budget on a duty-cycled band)."""
    return sum(_on_air_s(radio, p, uplink=False) for p in _packets(radio, nbytes))


def downlink_cost(radio: Profile, nbytes: int, ready_s, wait_u) -> tuple:
    """What receiving the gateway's ``nbytes`` decision costs, given when it is ready.

    Args:
        radio: the radio profile.
        nbytes: the decision's payload bytes.
        ready_s: seconds from the end of the device's uplink until the gateway has the
            decision (array or float).
        wait_u: uniform draws in [0, 1) for the wait of ``event`` and ``listen`` radios
            (array or float).

    Returns:
        ``(charge_uc, busy_s, arrival_s, missed)``: the charge of the wait and the
        reception, the time the radio was awake, the seconds from the end of the uplink
        until the decision is received, and (``fixed`` radios) whether the decision was not
        ready when the receive window opened.
    """
    ready = np.asarray(ready_s, np.float64)
    u = np.asarray(wait_u, np.float64)
    rx = radio["rx_current_ma"] * 1e3
    frame = downlink_airtime_s(radio, nbytes)
    window = radio["downlink_window_us"] * 1e-6
    ack = radio["ack_us"] * 1e-6
    event = radio["event_us"] * 1e-6
    delay = radio["downlink_delay_ms"] * 1e-3
    receive = (window + frame + ack) * rx + event * radio["event_current_ma"] * 1e3
    awake = window + frame + ack + event
    missed = np.zeros_like(ready, dtype=bool)
    if radio.downlink == "fixed":
        start = np.full_like(ready, delay)
        missed = ready > delay
        charge = np.full_like(ready, receive)
        busy = np.full_like(ready, awake)
    elif radio.downlink == "event":
        start = ready + u * delay
        charge = np.full_like(ready, receive)
        busy = np.full_like(ready, awake)
    else:  # listen: the receiver stays on until the decision comes
        start = ready + u * delay
        charge = receive + start * radio["listen_current_ma"] * 1e3
        busy = awake + start
    arrival = start + event + window + frame
    return charge, busy, arrival, missed


def keepalive_charge_uc(radio: Profile) -> float:
    """Charge of one keep-alive (a wake-up and ``keepalive_us`` of receive); 0 for none."""
    if radio["keepalive_interval_s"] <= 0:
        return 0.0
    return (
        radio["event_us"] * 1e-6 * radio["event_current_ma"] * 1e3
        + radio["keepalive_us"] * 1e-6 * radio["rx_current_ma"] * 1e3
    )
