"""What a sample costs: energy per device, battery life and latency per exit on given hardware.

:func:`price` takes a hierarchy (its :class:`~ddnn_tf.core.topology.Topology`), where
each sample exits (per-sample exit indices, or exit fractions), the instructions a device
tier executes per sample, and hardware profiles (:mod:`ddnn_tf.core.cost.profiles`), and
returns a :class:`Cost`:

* **energy per device per sample**, split into compute (instructions x CPI at the MCU's
  current), the summary uplink, the decision downlink, the feature uplink of the samples
  that do not exit locally, and the rest of the sample period (MCU and radio sleep,
  keep-alives, a cellular session); every message is priced by
  :mod:`ddnn_tf.core.cost.radio` (packets, time on air, wake-ups, receive windows);
* **battery life** for a capacity and a sample rate;
* **latency per exit** from sensor to answer at the gateway (device compute, uplinks that
  share the channel, the gateway's tiers, the decision, the feature uplink, the WAN, the
  cloud's tiers and the answer back), as p50, p95 and mean over the samples;
* the same for the other protocol mode and for the two baselines a user would deploy
  instead: **raw offload** (every device sends its sensor data; the cloud runs the device
  tiers and the cloud) and **always-cloud** (every device computes and sends its summary
  and features every time; the cloud answers every sample);
* whether the sample rate is **feasible** on the radio (its duty-cycle limit, the time a
  device stays busy with one sample, a LoRaWAN decision ready before the receive window).

Two protocol modes are priced. ``paper`` is the paper's: a summary uplink, a decision
downlink, and the feature uplink for the samples that do not exit locally. ``eager``
sends the summary and the features in one uplink and lets the gateway forward the
features only when the sample does not exit locally; it needs no downlink. The answers
are the same; which one is cheaper depends on the radio.

Conventions: charge in microcoulombs, energy in microjoules (a charge times its part's
supply voltage), battery energy = capacity x ``battery_v`` (an ideal converter); a device
that failed on a sample (``presence``) spends and sends nothing for it. Numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ddnn_tf.core import comm
from ddnn_tf.core.cost import radio as rf
from ddnn_tf.core.cost.profiles import Profile, load_profile
from ddnn_tf.core.graph import CLOUD, LOCAL_AGGREGATOR, device_tier, edge_tier
from ddnn_tf.core.topology import Topology
from ddnn_tf.core.vocab import PROTOCOL_MODES
from ddnn_tf.errors import ConfigError

__all__ = [
    "COMPONENTS",
    "DECISION_BYTES",
    "DRAWS",
    "MODES",
    "Cost",
    "Hardware",
    "Scenario",
    "draw",
    "draws",
    "price",
    "wan_s",
]

#: Protocol modes (:data:`ddnn_tf.core.vocab.PROTOCOL_MODES`).
MODES = PROTOCOL_MODES
#: The parts of a device's energy per sample, in report order.
#: ``link_upkeep`` is what keeps the radio link up between messages (BLE and Wi-Fi
#: keep-alives, a cellular session's set-up and tail); ``sleep`` the MCU's and the radio's
#: sleep current for the rest of the sample period.
COMPONENTS = (
    "compute",
    "summary_uplink",
    "decision_downlink",
    "feature_uplink",
    "link_upkeep",
    "sleep",
)
#: Synthetic samples drawn when only exit fractions are given.
_FRACTION_SAMPLES = 10_000
#: Bytes of the gateway's decision for one sample: one bit, "send your features"
#: (docs/protocol.md).
DECISION_BYTES = 1
#: The seeded draws of a scenario, in the order they are drawn: the wait for the channel
#: of a sample's first uplink, the wait for the decision downlink (paper protocol) and the
#: wait for the channel of the feature uplink.
DRAWS = ("first", "decision", "second")


@dataclass(frozen=True)
class Hardware:
    """The profiles a cost is computed on (names or paths are loaded by :func:`price`)."""

    mcu: Profile | None
    radio: Profile
    wan: Profile
    gateway: Profile
    cloud: Profile

    @classmethod
    def load(cls, mcu, radio, wan="broadband", gateway="this-host", cloud="this-host"):
        return cls(
            None if mcu is None else load_profile(mcu, "mcu"),
            load_profile(radio, "radio"),
            load_profile(wan, "wan"),
            load_profile(gateway, "compute", argument="gateway"),
            load_profile(cloud, "compute", argument="cloud"),
        )


def _number(value) -> float | None:
    """A JSON-safe float: None for NaN or infinity (a device present on no sample)."""
    value = float(value)
    return value if math.isfinite(value) else None


def _device_mean(s: Scenario) -> float:
    """Mean energy per sample over the devices present on some sample."""
    energy = s.per_device()
    return float(energy[np.isfinite(energy)].mean()) if np.isfinite(energy).any() else 0.0


def _present_mean(values: np.ndarray) -> np.ndarray:
    """Column means over the finite entries (NaN marks a failed device), NaN if none."""
    ok = np.isfinite(values)
    count = ok.sum(axis=0)
    total = np.where(ok, values, 0.0).sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


@dataclass
class Scenario:
    """One way of running the samples: per-device energy and per-sample latency.

    Attributes:
        name: ``paper``, ``eager``, ``raw_offload`` or ``always_cloud``.
        energy_uj: ``{component: (N, D) microjoules}`` (NaN where a device failed).
        latency_s: ``(N,)`` seconds from sensor to answer (NaN for unclassified samples).
        exit_index: ``(N,)`` the exit each sample answered at.
        exits: exit names.
        limits: why the sample rate is not feasible (empty when it is).
        max_rate_hz: the highest sample rate the radio and the device allow.
    """

    name: str
    energy_uj: dict[str, np.ndarray]
    latency_s: np.ndarray
    exit_index: np.ndarray
    exits: tuple[str, ...]
    limits: list[str] = field(default_factory=list)
    max_rate_hz: float = math.inf

    def per_device(self) -> np.ndarray:
        """``(D,)`` mean energy per sample of each device over the samples it was present
        (NaN for a device present on none)."""
        return _present_mean(sum(self.energy_uj.values()))

    def breakdown(self) -> dict[str, np.ndarray]:
        """``{component: (D,)}`` mean energy per sample of each device."""
        return {k: _present_mean(v) for k, v in self.energy_uj.items()}

    def latency(self) -> dict[str, dict[str, float]]:
        """``{exit: {p50, p95, mean}}`` in ms, plus ``overall``; exits no sample took are
        left out."""
        out = {}
        groups = [(e, self.exit_index == k) for k, e in enumerate(self.exits)]
        for name, rows in [*groups, ("overall", self.exit_index >= 0)]:
            values = self.latency_s[rows] * 1e3
            if len(values):
                out[name] = {
                    "p50": float(np.percentile(values, 50)),
                    "p95": float(np.percentile(values, 95)),
                    "mean": float(values.mean()),
                }
        return out


@dataclass
class Cost:
    """The priced hierarchy: the chosen protocol mode, the other one and both baselines.

    :meth:`to_dict` holds the keys scripts read (stable): ``energy_uj_per_sample`` (per
    device, expected at the thresholds), ``energy_breakdown_uj``, ``battery_days`` (per
    device), ``latency_ms`` (per exit and ``overall``: ``p50``, ``p95``, ``mean``),
    ``baselines`` (``raw_offload`` and ``always_cloud`` with the same energy, battery and
    latency keys), ``modes`` (both protocol modes and which one is cheaper), ``feasible``,
    ``limits``, ``max_rate_hz``, ``sources`` (where every measured or given input came
    from) and ``hardware`` (every profile figure used, with its source).
    """

    mode: str
    devices: list[str]
    rate_hz: float
    battery_mah: float
    battery_v: float
    scenarios: dict[str, Scenario]
    hardware: Hardware
    sources: dict[str, str]

    def battery_days(self, per_device_uj: np.ndarray) -> np.ndarray:
        """Days a battery lasts at ``rate_hz`` for each energy per sample (microjoules)."""
        joules = self.battery_mah * 3.6 * self.battery_v
        per_day = np.asarray(per_device_uj, np.float64) * 1e-6 * self.rate_hz * 86400.0
        with np.errstate(divide="ignore", invalid="ignore"):
            return joules / per_day

    def _block(self, s: Scenario) -> dict[str, Any]:
        energy = s.per_device()
        return {
            "energy_uj_per_sample": dict(zip(self.devices, map(_number, energy))),
            "battery_days": dict(zip(self.devices, map(_number, self.battery_days(energy)))),
            "latency_ms": s.latency(),
            "feasible": not s.limits,
            "limits": list(s.limits),
            "max_rate_hz": float(s.max_rate_hz),
        }

    @property
    def chosen(self) -> Scenario:
        return self.scenarios[self.mode]

    def mode_comparison(self) -> dict[str, Any]:
        """Each protocol mode's mean energy per device per sample, the battery life of the
        device that runs out first, p95 latency and feasibility, and which mode is cheaper
        by how much."""
        out: dict[str, Any] = {}
        for m in MODES:
            s = self.scenarios[m]
            energy = _device_mean(s)
            days = self.battery_days(s.per_device())
            out[m] = {
                "energy_uj_per_sample": energy,
                "battery_days": _number(np.nanmin(days)) if np.isfinite(days).any() else None,
                "latency_p95_ms": s.latency().get("overall", {}).get("p95"),
                "feasible": not s.limits,
            }
        energies = {m: out[m]["energy_uj_per_sample"] for m in MODES}
        cheaper = min(MODES, key=lambda m: energies[m])
        other = MODES[1 - MODES.index(cheaper)]
        saving = 1 - energies[cheaper] / energies[other] if energies[other] > 0 else 0.0
        return {**out, "cheaper": cheaper, "saving_percent": 100.0 * saving}

    def to_dict(self) -> dict[str, Any]:
        s = self.chosen
        out = {
            "mode": self.mode,
            "rate_hz": self.rate_hz,
            "battery_mah": self.battery_mah,
            "battery_v": self.battery_v,
            "profiles": {
                k: getattr(getattr(self.hardware, k), "name", None)
                for k in ("mcu", "radio", "wan", "gateway", "cloud")
            },
            **self._block(s),
            "energy_breakdown_uj": {
                d: {k: _number(v[i]) for k, v in s.breakdown().items()}
                for i, d in enumerate(self.devices)
            },
            "baselines": {
                name: self._block(self.scenarios[name]) for name in ("raw_offload", "always_cloud")
            },
            "modes": self.mode_comparison(),
            "sources": dict(self.sources),
            "hardware": {
                role: {
                    "name": p.name,
                    "file": p.file,
                    "figures": {
                        k: {"value": v, "source": p.source(k)} for k, v in p.values.items()
                    },
                }
                for role, p in vars(self.hardware).items()
                if p is not None
            },
        }
        return out


# ------------------------------------------------------------------ inputs


def _exit_array(topology: Topology, exits) -> np.ndarray:
    if isinstance(exits, Mapping):
        names = list(topology.exits)
        bad = sorted(set(exits) - {*names, "unclassified"})
        if bad:
            raise ConfigError(
                f"expected exit fractions for {names} (and 'unclassified'), got {bad}.",
                argument="exits",
            )
        fractions = [float(exits.get(e, 0.0)) for e in names]
        fractions.append(float(exits.get("unclassified", 0.0)))
        if any(not 0.0 <= f <= 1.0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
            raise ConfigError(
                f"expected exit fractions in [0, 1] summing to 1, got {dict(exits)}.",
                argument="exits",
            )
        counts = np.floor(np.array(fractions) * _FRACTION_SAMPLES).astype(int)
        counts[int(np.argmax(fractions))] += _FRACTION_SAMPLES - counts.sum()
        index = np.repeat([*range(len(names)), -1], counts)
        return index.astype(np.int64)
    index = np.asarray(exits)
    if index.ndim != 1 or not np.issubdtype(index.dtype, np.integer):
        raise ConfigError(
            f"expected per-sample exit indices (N,) of ints, got {index.dtype} {index.shape}.",
            argument="exits",
        )
    if len(index) and (index.min() < -1 or index.max() >= len(topology.exits)):
        raise ConfigError(
            f"expected exit indices in -1..{len(topology.exits) - 1}, got "
            f"{int(index.min())}..{int(index.max())}.",
            argument="exits",
        )
    return index.astype(np.int64)


def _per_device(value, d: int, name: str) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(value, np.float64), (d,)).copy()
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ConfigError(f"expected non-negative numbers, got {value!r}.", argument=name)
    return arr


def _tier_times(tier_ms: Mapping[str, Any] | None, n: int) -> dict[str, np.ndarray]:
    """Per-sample seconds of each measured tier (sample i takes measurement i mod K)."""
    out = {}
    for tier, value in (tier_ms or {}).items():
        arr = np.atleast_1d(np.asarray(value, np.float64)) * 1e-3
        if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise ConfigError(f"expected non-negative times for {tier}.", argument="tier_ms")
        out[tier] = arr[np.arange(n) % arr.size]
    return out


@dataclass
class _Setting:
    """Everything a scenario needs, checked once."""

    topology: Topology
    hw: Hardware
    index: np.ndarray
    n: int  # samples
    d: int  # devices
    present: np.ndarray
    instructions: np.ndarray
    summary: np.ndarray
    upward: np.ndarray
    raw: np.ndarray
    times: dict[str, np.ndarray]
    period: float
    draws: dict[str, np.ndarray]

    def tier_s(self, tier: str) -> np.ndarray:
        return self.times.get(tier, np.zeros(self.n))

    def host_s(self, tiers: Sequence[str], host: Profile) -> np.ndarray:
        total = sum((self.tier_s(t) for t in tiers), np.zeros(self.n))
        return total * host["speed_factor"]


# ------------------------------------------------------------------ the pieces of a sample


def _compute(mcu: Profile, instructions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(seconds, charge_uc)`` per device of running its tier (and waking the MCU)."""
    cycles = instructions * mcu["cpi"]
    run_ua = mcu["run_current_ua_per_mhz"] * mcu["clock_mhz"]
    wake = np.where(instructions > 0, mcu["wakeup_us"] * 1e-6, 0.0)
    seconds = cycles / (mcu["clock_mhz"] * 1e6) + wake
    return seconds, seconds * run_ua


def draws(seed: int, n: int, d: int) -> dict[str, np.ndarray]:
    """The seeded uniform draws in [0, 1) of a priced scenario, ``{name: (n, d)}`` for the
    names of :data:`DRAWS`: every scenario of :func:`price` uses the same ones, and so does
    a live deployment that emulates a radio (``ddnn deploy --link``), sample by sample.

    Example:
        >>> u = draws(0, 4, 6)
        >>> sorted(u), u["first"].shape
        (['decision', 'first', 'second'], (4, 6))
    """
    rng = np.random.default_rng(seed)
    return {name: rng.random((n, d)) for name in DRAWS}


def draw(seed: int, n: int, d: int, name: str, sample: int, device: int) -> float:
    """One entry of :func:`draws`, ``draws(seed, n, d)[name][sample, device]``, without
    drawing the others (a device of a long live stream needs its own only).

    Example:
        >>> draw(0, 4, 6, "second", 3, 5) == draws(0, 4, 6)["second"][3, 5]
        True
    """
    position = (DRAWS.index(name) * n + sample) * d + device  # one 64-bit draw per double
    return float(np.random.Generator(np.random.PCG64(seed).advance(position)).random())


class _Sample:
    """Accumulates one scenario's per-device charges, busy times and timeline."""

    def __init__(self, s: _Setting, name: str) -> None:
        self.s = s
        self.name = name
        shape = (s.n, s.d)
        self.charge = {k: np.zeros(shape) for k in COMPONENTS}  # uC at the part's voltage
        self.radio_busy = np.zeros(shape)
        self.mcu_busy = np.zeros(shape)
        self.messages = np.zeros(shape)  # radio events: uplinks and downlinks
        self.airtime = np.zeros(shape)
        self.occupied = np.zeros(shape)  # seconds until the device's last radio activity
        self.gateway_airtime = np.zeros(s.n)  # the gateway's downlinks, on air
        self.limits: list[str] = []
        self.session = s.hw.radio["session_setup_ms"] > 0 or s.hw.radio["session_tail_ms"] > 0

    def uplink(self, start: np.ndarray, nbytes: np.ndarray, who: np.ndarray, part: str, draw: str):
        """Every device in ``who`` sends ``nbytes[d]`` from ``start`` on (``(N,)``, or
        ``(N, D)`` when each device starts on its own), waiting for the channel by the
        seeded ``draws[draw]``; returns the time each device's message ends (N, D) and when
        the last one arrives (N,)."""
        radio = self.s.hw.radio
        msgs = [rf.uplink_cost(radio, int(b)) for b in nbytes]
        busy = np.array([m.busy_s for m in msgs])
        start = np.broadcast_to(start[:, None] if start.ndim == 1 else start, who.shape)
        end = start + rf.uplink_delay_s(radio, nbytes, self.s.draws[draw], who)
        end = np.where(who, end, start)
        last = np.where(who, end, -np.inf).max(axis=1, initial=-np.inf)
        last = np.where(who.any(axis=1), last, start.max(axis=1, initial=0.0))
        self.charge[part] += who * np.array([m.charge_uc for m in msgs])
        self.radio_busy += who * busy
        self.airtime += who * np.array([m.airtime_s for m in msgs])
        self.messages += who
        self.occupied = np.maximum(self.occupied, np.where(who, end, 0.0))
        return end, last

    def decision(self, own_end: np.ndarray, ready: np.ndarray, who: np.ndarray):
        """The gateway's decision, ready at ``ready`` (N,), to every device in ``who``;
        returns when the last device has it (N,)."""
        radio = self.s.hw.radio
        charge, busy, arrival, missed = rf.downlink_cost(
            radio,
            DECISION_BYTES,
            np.maximum(ready[:, None] - own_end, 0.0),
            self.s.draws["decision"],
        )
        self.charge["decision_downlink"] += who * charge
        self.radio_busy += who * busy
        self.messages += who
        self.gateway_airtime += who.sum(axis=1) * rf.downlink_airtime_s(radio, DECISION_BYTES)
        got = own_end + arrival
        self.occupied = np.maximum(self.occupied, np.where(who, got, 0.0))
        if np.any(missed & who):
            self.limits.append(
                f"the gateway's decision is not ready when the receive window opens "
                f"({radio['downlink_delay_ms']:g} ms after the uplink) for "
                f"{100 * float(np.mean((missed & who).any(axis=1))):.1f} % of the samples"
            )
        return np.where(who, got, -np.inf).max(axis=1, initial=-np.inf), got

    def finish(self) -> Scenario:
        """Idle time, sessions and keep-alives; energy; feasibility."""
        s, hw = self.s, self.s.hw
        radio, mcu, period = hw.radio, hw.mcu, self.s.period
        present = s.present
        idle_mcu = np.clip(period - self.mcu_busy, 0.0, None)
        idle_radio = np.clip(period - self.radio_busy, 0.0, None)
        radio_sleep_s = idle_radio
        upkeep_uc = np.zeros_like(idle_radio)
        if self.session:
            setup = radio["session_setup_ms"] * 1e-3
            tail = radio["session_tail_ms"] * 1e-3
            fits = setup + self.radio_busy + tail <= period
            opened = self.messages > 0
            upkeep_uc = np.where(
                fits,
                setup * radio["session_setup_current_ma"] * 1e3
                + tail * radio["session_tail_current_ma"] * 1e3,
                idle_radio * radio["session_tail_current_ma"] * 1e3,  # never released
            )
            upkeep_uc = np.where(opened, upkeep_uc, 0.0)
            radio_sleep_s = np.where(
                opened, np.where(fits, np.clip(idle_radio - setup - tail, 0, None), 0.0), idle_radio
            )
        keep = rf.keepalive_charge_uc(radio)
        if keep > 0:
            events = np.full_like(idle_radio, period / radio["keepalive_interval_s"])
            if radio.downlink == "event":  # a message's own event keeps the link up too
                events = np.clip(events - self.messages, 0, None)
            upkeep_uc = upkeep_uc + events * keep
        radio_v = radio["supply_v"]
        mcu_sleep_uw = 0.0 if mcu is None else mcu["sleep_current_ua"] * mcu["supply_v"]
        energy = {
            "compute": self.charge["compute"] * (0.0 if mcu is None else mcu["supply_v"]),
            "summary_uplink": self.charge["summary_uplink"] * radio_v,
            "decision_downlink": self.charge["decision_downlink"] * radio_v,
            "feature_uplink": self.charge["feature_uplink"] * radio_v,
            "link_upkeep": upkeep_uc * radio_v,
            "sleep": idle_mcu * mcu_sleep_uw + radio_sleep_s * radio["sleep_current_ua"] * radio_v,
        }
        energy = {k: np.where(present, v, np.nan) for k, v in energy.items()}
        self._feasibility()
        return Scenario(
            self.name,
            energy,
            self.latency,
            self.exit_index,
            tuple(self.exits),
            self.limits,
            self.max_rate,
        )

    def _feasibility(self) -> None:
        radio, period = self.s.hw.radio, self.s.period
        present = self.s.present
        if not present.any():
            self.max_rate = math.inf
            return
        airtime = float(np.nanmax(_present_mean(np.where(present, self.airtime, np.nan))))
        occupied = float(np.nanmax(_present_mean(np.where(present, self.occupied, np.nan))))
        duty = radio["duty_cycle"]
        rates = [1.0 / occupied if occupied > 0 else math.inf]
        gateway = float(self.gateway_airtime.mean())
        for who, needs in (("a device", airtime), ("the gateway's decision downlinks", gateway)):
            if duty >= 1.0 or needs <= 0:
                continue
            rates.append(duty / needs)
            if needs / period > duty:
                self.limits.append(
                    f"{radio.name} allows {100 * duty:g} % time on air; {who} need"
                    f"{'s' if who == 'a device' else ''} {1e3 * needs:.1f} ms per sample, "
                    f"{100 * needs / period:.2f} % at {1 / period:g} samples/s"
                )
        if occupied > period:
            self.limits.append(
                f"a device is busy {1e3 * occupied:.0f} ms per sample (compute and radio), "
                f"longer than the {1e3 * period:.0f} ms between samples"
            )
        self.max_rate = min(rates)


# ------------------------------------------------------------------ scenarios


def _split_combined(run: _Sample, first: np.ndarray, second: np.ndarray, who: np.ndarray) -> None:
    """Charge a combined ``first + second`` uplink's extra cost over ``first`` alone to the
    feature uplink (what sending the features with the summary adds)."""
    radio = run.s.hw.radio
    alone = np.array([rf.uplink_cost(radio, int(b)).charge_uc if b else 0.0 for b in first])
    both = np.array([rf.uplink_cost(radio, int(b)).charge_uc for b in first + second])
    moved = who * (both - alone)
    run.charge["feature_uplink"] += moved
    run.charge["summary_uplink"] -= moved


def wan_s(wan: Profile, nbytes):
    """Gateway -> cloud -> gateway: a round trip and the upload of ``nbytes`` (a number or
    an array), in seconds.

    Example:
        >>> round(1e3 * wan_s(load_profile("broadband", "wan"), 2500), 1)  # ms
        21.0
    """
    return wan["rtt_ms"] * 1e-3 + 8.0 * np.asarray(nbytes, np.float64) / (wan["uplink_mbps"] * 1e6)


def _device_start(run: _Sample, compute: bool) -> np.ndarray:
    """Run the device tiers (if ``compute``); returns when each sample's devices are done.

    Without an MCU profile the device tiers take the times ``tier_ms`` gives them (devices
    emulated on a host) and cost no energy."""
    s = run.s
    if s.hw.mcu is None:
        tiers = [s.tier_s(device_tier(i)) for i in range(s.d)] if compute else []
        seconds = np.stack(tiers, axis=1) if tiers else np.zeros((s.n, s.d))
        done = np.where(s.present, seconds, 0.0).max(axis=1, initial=0.0)
    else:
        seconds, charge = _compute(s.hw.mcu, s.instructions if compute else np.zeros(s.d))
        run.charge["compute"] += s.present * charge
        done = np.full(s.n, float(seconds.max()))
    run.mcu_busy += s.present * seconds
    setup = s.hw.radio["session_setup_ms"] * 1e-3 if run.session else 0.0
    period_fits = setup + s.hw.radio["session_tail_ms"] * 1e-3 < s.period
    return done + (setup if period_fits else 0.0)


def _hierarchy(s: _Setting, mode: str) -> Scenario:
    """The DDNN itself in protocol ``mode``."""
    t, hw = s.topology, s.hw
    run = _Sample(s, mode)
    run.exits, run.exit_index = list(t.exits), s.index
    start = _device_start(run, compute=True)
    present = s.present
    exited_local = s.index == (t.exits.index("local") if t.has_local else -2)
    goes_up = present & ~exited_local[:, None]
    local_s = s.host_s([LOCAL_AGGREGATOR], hw.gateway) if t.has_local else np.zeros(s.n)
    edge_tiers = [edge_tier(j) for j in range(t.num_edges)]
    edge_s = s.host_s([*edge_tiers, "edge_aggregator"], hw.gateway) if "edge" in t.exits else 0
    if not t.has_local:
        _, at_gateway = run.uplink(start, s.upward, present, "feature_uplink", "first")
        local_done = at_gateway
    elif mode == "eager":
        both = s.summary + s.upward
        _, at_gateway = run.uplink(start, both, present, "summary_uplink", "first")
        _split_combined(run, s.summary, s.upward, present)
        local_done = at_gateway + local_s
    else:
        own_end, at_gateway = run.uplink(start, s.summary, present, "summary_uplink", "first")
        local_done = at_gateway + local_s
        _, got = run.decision(own_end, local_done, present)
        # each device sends its features once it has the decision
        _, features_in = run.uplink(got, s.upward, goes_up, "feature_uplink", "second")
        local_done = np.where(exited_local, local_done, features_in)
    latency = local_done + edge_s
    if "edge" in t.exits:  # the edges' maps go to the cloud
        sent = sum(comm.feature_nbytes(t.edge_feature_shape(j)) for j in range(t.num_edges))
    else:
        sent = (goes_up * s.upward).sum(axis=1)
    cloud_s = s.host_s([CLOUD], hw.cloud)
    to_cloud = latency + wan_s(hw.wan, sent) + cloud_s
    cloud = t.exits.index("cloud")
    run.latency = np.where(s.index == cloud, to_cloud, latency)
    run.latency = np.where(s.index < 0, np.nan, run.latency)
    return run.finish()


def _baseline(s: _Setting, name: str) -> Scenario:
    """Raw offload, or always-cloud (compute, summary and features every time)."""
    hw = s.hw
    run = _Sample(s, name)
    run.exits = ["cloud"]
    run.exit_index = np.where(s.present.any(axis=1), 0, -1)
    raw = name == "raw_offload"
    start = _device_start(run, compute=not raw)
    payload = s.raw if raw else s.summary + s.upward
    _, at_gateway = run.uplink(
        start, payload, s.present, "feature_uplink" if raw else "summary_uplink", "first"
    )
    if not raw:
        _split_combined(run, s.summary, s.upward, s.present)
    sent = (s.present * payload).sum(axis=1)
    tiers = [device_tier(i) for i in range(s.d)] if raw else []
    cloud_s = s.host_s([*tiers, CLOUD], hw.cloud)
    run.latency = at_gateway + wan_s(hw.wan, sent) + cloud_s
    run.latency = np.where(run.exit_index < 0, np.nan, run.latency)
    return run.finish()


# ------------------------------------------------------------------ the entry point


def _sources(tier_ms, given: Mapping[str, str] | None) -> dict[str, str]:
    """Where :func:`price`'s inputs came from: ``given``, else what it can tell."""
    return {
        "instructions": "given",
        "bytes": "from the topology (summary encoding and feature shapes)",
        "exits": "given",
        "tier_ms": "measured on this host" if tier_ms else "not measured: 0 ms",
        **dict(given or {}),
    }


def _check_options(mode: str, **values: float) -> None:
    """``mode`` is a protocol mode and each of ``values`` a finite number > 0.

    Raises:
        ConfigError: naming the first option that is not.
    """
    if mode not in MODES:
        raise ConfigError(f"expected one of {', '.join(MODES)}, got {mode!r}.", argument="mode")
    for name, value in values.items():
        ok = not isinstance(value, bool) and isinstance(value, (int, float)) and value > 0
        if not ok or not math.isfinite(value):
            raise ConfigError(f"expected a positive number, got {value!r}.", argument=name)


def _presence(presence, index: np.ndarray, d: int) -> np.ndarray:
    """The ``(N, D)`` devices alive: ``presence`` checked, or all of a classified sample's."""
    n = len(index)
    if presence is None:
        return np.broadcast_to((index >= 0)[:, None], (n, d)).copy()
    present = np.asarray(presence, bool)
    if present.shape != (n, d):
        raise ConfigError(
            f"expected a bool mask of shape {(n, d)}, got {present.shape}.", argument="presence"
        )
    return present


def _payload_sizes(topology: Topology, summary, upward, raw) -> dict[str, np.ndarray]:
    """Each device's summary, upward and raw bytes: those given, else the topology's."""
    d = topology.num_devices
    if summary is None:
        summary = (
            comm.summary_nbytes(topology.num_classes, topology.summary_encoding)
            if topology.has_local
            else 0
        )
    if upward is None:
        upward = [comm.feature_nbytes(topology.feature_shape(i)) for i in range(d)]
    if raw is None:
        raw = [math.prod(shape) for shape in topology.input_shapes]
    return {
        "summary": np.round(_per_device(summary, d, "summary_nbytes")),
        "upward": np.round(_per_device(upward, d, "upward_nbytes")),
        "raw": np.round(_per_device(raw, d, "raw_nbytes")),
    }


def _setting(
    topology: Topology, hw: Hardware, exits, presence, instructions, sizes, tier_ms, rate_hz, seed
) -> _Setting:
    """:func:`price`'s inputs checked and spread over the samples and devices (``sizes``:
    the summary, upward and raw bytes given, None for the topology's)."""
    index = _exit_array(topology, exits)
    n, d = len(index), topology.num_devices
    return _Setting(
        topology=topology,
        hw=hw,
        index=index,
        n=n,
        d=d,
        present=_presence(presence, index, d),
        instructions=_per_device(instructions, d, "instructions"),
        **_payload_sizes(topology, *sizes),
        times=_tier_times(tier_ms, n),
        period=1.0 / rate_hz,
        draws=draws(seed, n, d),
    )


def price(
    topology: Topology,
    exits,
    *,
    instructions,
    mcu: str | Profile | None,
    radio: str | Profile,
    wan: str | Profile = "broadband",
    gateway: str | Profile = "this-host",
    cloud: str | Profile = "this-host",
    rate_hz: float = 1.0,
    battery_mah: float = 225.0,
    battery_v: float = 3.0,
    mode: str = "paper",
    tier_ms: Mapping[str, Any] | None = None,
    summary_nbytes: float | Sequence[float] | None = None,
    upward_nbytes: float | Sequence[float] | None = None,
    raw_nbytes: float | Sequence[float] | None = None,
    presence: np.ndarray | None = None,
    sources: Mapping[str, str] | None = None,
    seed: int = 0,
) -> Cost:
    """Price a hierarchy on hardware: energy, battery life and latency, both protocol modes
    and both baselines. No converted model, interpreter or emulator is needed.

    Args:
        topology: the hierarchy (devices, exits, summary encoding, feature shapes).
        exits: where each sample exits: ``(N,)`` exit indices into ``topology.exits``
            (``-1`` = unclassified; e.g. ``RunResult.exit_index``), or exit fractions
            ``{"local": 0.74, "cloud": 0.26}`` (priced on 10,000 samples drawn in those
            proportions).
        instructions: instructions one device tier executes per sample on the MCU's core,
            one number for every device or one per device (measured on the emulator, or
            modelled by ``ddnn_tf.mcu.opcount`` from the tier or the topology).
        mcu: the microcontroller's profile: a name or a path
            (:func:`~ddnn_tf.core.cost.profiles.load_profile`), or a loaded profile; None:
            the device tiers take the times ``tier_ms`` gives them (``device_I``: devices
            emulated on a host, as ``ddnn deploy --link`` runs them) and their compute and
            the MCU's sleep cost no energy.
        radio: the devices' radio profile.
        wan: the gateway's link to the cloud.
        gateway: the host of the gateway's tiers (a compute profile).
        cloud: the host of the cloud's tiers.
        rate_hz: samples per second (each device wakes once per sample).
        battery_mah: the battery's capacity.
        battery_v: its nominal voltage (battery energy = capacity x voltage).
        mode: ``paper`` or ``eager`` (the other is priced too, for the comparison).
        tier_ms: milliseconds per sample of the tiers above the devices on this host
            (``local_aggregator``, ``edge_J``, ``edge_aggregator``, ``cloud``; and
            ``device_I`` for raw offload's cloud, and for the devices when ``mcu`` is
            None), a number or one per measured sample; a tier left out costs 0 ms (say
            so in ``sources``).
        summary_nbytes: bytes of a device's summary; default from the topology.
        upward_nbytes: bytes of what a device sends up (its packed features); default
            from the topology.
        raw_nbytes: bytes of a device's raw sensor sample (raw offload); default one byte
            per input value.
        presence: optional ``(N, D)`` bool, the devices alive on each sample.
        sources: where the inputs came from (``instructions``, ``bytes``, ``exits``,
            ``tier_ms``), echoed in the result; profile figures name their own sources.
        seed: seed of the random waits (channel access, connection events): :func:`draws`.

    Returns:
        A :class:`Cost`; ``cost.to_dict()`` has the stable keys ``energy_uj_per_sample``,
        ``battery_days``, ``latency_ms``, ``baselines``, ``modes``, ``feasible``.

    Raises:
        ConfigError: an unknown profile or mode, a non-positive rate or capacity, bad
            exits, sizes or times.
        FormatError / FileNotFoundError: a profile file that fails its schema or is missing.

    Example:
        >>> t = Topology(input_shapes=[(10, 14, 1)] * 6, num_classes=10, summary_bits=4)
        >>> c = price(t, {"local": 0.74, "cloud": 0.26}, instructions=82_000,
        ...           mcu="nrf52840", radio="ble-1m")
        >>> d = c.to_dict()
        >>> d["modes"]["cheaper"], sorted(d["baselines"])
        ('eager', ['always_cloud', 'raw_offload'])
    """
    _check_options(mode, rate_hz=rate_hz, battery_mah=battery_mah, battery_v=battery_v)
    hw = Hardware.load(mcu, radio, wan, gateway, cloud)
    sizes = (summary_nbytes, upward_nbytes, raw_nbytes)
    setting = _setting(topology, hw, exits, presence, instructions, sizes, tier_ms, rate_hz, seed)
    return Cost(
        mode=mode,
        devices=[device_tier(i) for i in range(setting.d)],
        rate_hz=float(rate_hz),
        battery_mah=float(battery_mah),
        battery_v=float(battery_v),
        scenarios=_scenarios(setting),
        hardware=hw,
        sources=_sources(tier_ms, sources),
    )


def _scenarios(setting: _Setting) -> dict[str, Any]:
    """Both protocol modes and both baselines priced, with the same random waits each
    (the setting's :func:`draws`)."""
    scenarios = {}
    for name in (*MODES, "raw_offload", "always_cloud"):
        scenarios[name] = _hierarchy(setting, name) if name in MODES else _baseline(setting, name)
    return scenarios
