"""The hardware a search designs for: the board its device tiers are compiled for, and the
microcontroller, radio and WAN profiles its trials are priced on.

``mcu`` names either

* a **board** (``mps2-an386``, ``mps2-an385``, ``host``): the device tiers are compiled
  for it and their flash and RAM measured; nothing is priced (the objectives are
  accuracy, bytes, flash and RAM);
* or a **microcontroller profile** (``nrf52840``, ``stm32l4``, ``cortex-m0plus``, or a
  profile file, :mod:`ddnn_tf.core.cost.profiles`): its core picks the emulated board the
  tiers are compiled for (a Cortex-M4F's code for the MPS2 AN386, a Cortex-M0+'s for the
  AN385: :data:`ddnn_tf.mcu.instructions.CORE_BOARDS`), and with a ``radio`` every trial
  is priced by the cost model (:func:`ddnn_tf.core.cost.price.price`): energy per device
  per sample, p95 latency and the highest sample rate the radio carries.

A trial is priced from what it measured: where each validation sample exits at its
calibrated T, the bytes its devices send, and the instructions of its generated C from
the static model (:mod:`ddnn_tf.mcu.opcount`; no emulator in the loop). :func:`least_costs`
bounds what a configuration can cost before it is trained.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from ddnn_tf.core.cost.price import price
from ddnn_tf.core.cost.profiles import Profile, load_profile, profile_names
from ddnn_tf.core.topology import Topology
from ddnn_tf.errors import ConfigError
from ddnn_tf.mcu.boards import BOARDS, Board, require_tools
from ddnn_tf.mcu.bound import footprint_bound
from ddnn_tf.mcu.exact import BlockPlan, TierPlan
from ddnn_tf.mcu.instructions import CORE_BOARDS
from ddnn_tf.mcu.opcount import modelled_instructions, topology_spec
from ddnn_tf.mcu.spec import ConvBlock

__all__ = [
    "MODE",
    "SearchHardware",
    "compiler_board",
    "least_costs",
    "least_instructions",
    "priced_metrics",
    "resolve_hardware",
    "sensor_dtype",
]

#: The protocol a trial is priced in: the paper's, which the services deploy.
MODE = "paper"
#: The sources of a priced trial's inputs, as its report states them.
SOURCES = {
    "instructions": "modelled: the static op count of each trial's generated C (ddnn_tf.mcu.opcount)",
    "exits": "measured: the validation split at the trial's calibrated T",
    "bytes": "the trial's wire formats (summary encoding, packed feature maps)",
    "tier_ms": "not timed in a search: 0 ms (ddnn cost on an exported trial times them)",
}


@dataclass(frozen=True)
class SearchHardware:
    """What a search compiles for and prices on.

    Attributes:
        board: the board the device tiers are compiled for (flash, RAM).
        mcu: the microcontroller profile, or None when ``mcu`` named a board.
        radio / wan: the devices' radio and the gateway's WAN link, or None (not priced).
        rate_hz: samples per second.
    """

    board: Board
    mcu: Profile | None = None
    radio: Profile | None = None
    wan: Profile | None = None
    rate_hz: float = 1.0

    @property
    def priced(self) -> bool:
        """Whether trials are priced (an MCU profile and a radio)."""
        return self.radio is not None

    @property
    def core(self) -> str | None:
        return self.mcu.core if self.mcu is not None else None

    def identity(self) -> dict[str, Any] | None:
        """What makes two workers' hardware the same (recorded in the study)."""
        if self.mcu is None:
            return None
        if not self.priced:
            return {"mcu": self.mcu.name}
        return {
            "mcu": self.mcu.name,
            "radio": self.radio.name,
            "wan": self.wan.name,
            "rate_hz": self.rate_hz,
        }

    def describe(self) -> dict[str, Any]:
        """The report's ``hardware`` block: the board, the profiles and their files, the
        rate, the protocol, and where each priced input comes from."""
        out: dict[str, Any] = {"board": self.board.name}
        if self.mcu is not None:
            out.update(mcu=self.mcu.name, core=self.core)
        if self.priced:
            out.update(
                radio=self.radio.name,
                wan=self.wan.name,
                rate_hz=self.rate_hz,
                mode=MODE,
                files={k: getattr(self, k).file for k in ("mcu", "radio", "wan")},
                sources=dict(SOURCES),
            )
        return out

    def price_keywords(self, instructions) -> dict[str, Any]:
        """The hardware keywords of :func:`ddnn_tf.keras.evaluate.evaluate_run` for a trial
        whose device tiers execute ``instructions`` per sample (one per device)."""
        return {
            "mcu": self.mcu,
            "radio": self.radio,
            "wan": self.wan,
            "rate_hz": self.rate_hz,
            "mode": MODE,
            "instructions": list(instructions),
            "sources": {"instructions": SOURCES["instructions"], "tier_ms": SOURCES["tier_ms"]},
        }


def compiler_board(name: str, *, argument: str = "mcu") -> Board:
    """The board ``name``, if the device tiers compile for it, with its tools checked.

    Raises:
        ConfigError: an unknown board, or one that is no compiler target (``tflm``).
        FileNotFoundError: its compiler is not installed (naming the packages).
    """
    b = BOARDS[name]
    if b.kind not in ("qemu", "host"):
        raise ConfigError(
            f"{name} is an interpreter, not a compiler target: the search compiles the "
            f"device tiers as C; choose mps2-an386, mps2-an385 or host.",
            argument=argument,
        )
    require_tools(b)
    return b


def resolve_hardware(
    mcu: str = "mps2-an386",
    radio: str | None = None,
    wan: str | None = None,
    rate_hz: float | None = None,
) -> SearchHardware:
    """The board and the profiles named.

    Args:
        mcu: a board (``mps2-an386``, ``mps2-an385``, ``host``) or a microcontroller
            profile (a name or a ``.json`` path), whose core picks the board.
        radio: a radio profile: price every trial (needs an MCU profile).
        wan: the gateway's WAN link profile (with ``radio``; default ``broadband``).
        rate_hz: samples per second (with ``radio``; default 1).

    Raises:
        ConfigError: an unknown board or profile, a radio with a board, a WAN or a rate
            without a radio, a non-positive rate.
        FormatError / FileNotFoundError: a profile file that fails its schema, or is missing.

    Example:
        >>> hw = resolve_hardware("nrf52840", "ble-1m")
        >>> hw.board.name, hw.core, hw.priced
        ('mps2-an386', 'cortex-m4f', True)
    """
    if radio is None:
        for name, value in (("wan", wan), ("rate_hz", rate_hz)):
            if value is not None:
                raise ConfigError(
                    "prices a trial with `radio`, which was not given.", argument=name
                )
    rate_hz = 1.0 if rate_hz is None else rate_hz
    if isinstance(rate_hz, bool) or not isinstance(rate_hz, (int, float)) or not rate_hz > 0:
        raise ConfigError(f"expected a positive number, got {rate_hz!r}.", argument="rate_hz")
    if mcu in BOARDS:
        board = compiler_board(mcu)
        if radio is not None:
            profiles = ", ".join(profile_names("mcu")["mcu"])
            raise ConfigError(
                f"{mcu} is a board, not a microcontroller profile: pricing a trial on "
                f"`radio` needs one ({profiles}, or your own .json), whose core picks "
                "the board the device tiers are compiled for.",
                argument="mcu",
            )
        return SearchHardware(board)
    if mcu not in profile_names("mcu")["mcu"] and not str(mcu).endswith(".json"):
        profiles = ", ".join(profile_names("mcu")["mcu"])
        raise ConfigError(
            f"unknown board or microcontroller profile {mcu!r}; expected a board "
            f"({', '.join(b for b in BOARDS if b != 'tflm')}), a microcontroller profile "
            f"({profiles}), or the path of your own profile file (.json).",
            argument="mcu",
        )
    profile = load_profile(mcu, "mcu")
    if profile.core not in CORE_BOARDS:
        raise ConfigError(
            f"{profile.origin}: core {profile.core!r} has no emulated board; expected one "
            f"of {', '.join(CORE_BOARDS)}.",
            argument="mcu",
        )
    board = CORE_BOARDS[profile.core]
    require_tools(board)
    if radio is None:
        return SearchHardware(board, profile)
    return SearchHardware(
        board,
        profile,
        load_profile(radio, "radio"),
        load_profile(wan or "broadband", "wan"),
        float(rate_hz),
    )


# ---------------------------------------------------------------------- bounds
def sensor_dtype(topology: Topology, input_scale: float | None) -> str:
    """What a device tier's C reads, for the instruction model: integer codes (``uint8``
    pixels with the data's ``input_scale``, or a quantised sensor's) or ``float32``."""
    return "uint8" if input_scale is not None or topology.sensor_bits else "float32"


def least_instructions(
    topology: Topology, core: str, *, sensor_dtype: str = "uint8"
) -> list[float]:
    """The fewest instructions per sample each device tier's C can execute on ``core``,
    over every arithmetic the generator may pick per block and for the head (the static
    model of :mod:`ddnn_tf.mcu.opcount`; the weights decide which one a trained tier gets).
    """
    out = []
    for device in range(topology.num_devices):
        spec = topology_spec(topology, device, sensor_dtype=sensor_dtype)
        names = [
            f"conv{k + 1}" if isinstance(b, ConvBlock) else f"fc{k + 1}"
            for k, b in enumerate(spec.blocks)
        ]
        heads = ("integer", "float") if spec.head is not None else (None,)
        least = float("inf")
        for kinds in itertools.product(("integer", "float"), repeat=len(names)):
            for head in heads:
                plan = TierPlan(
                    tuple(BlockPlan(n, k) for n, k in zip(names, kinds)),
                    BlockPlan("head", head) if head else None,
                )
                try:
                    least = min(least, modelled_instructions(spec, plan, core=core))
                except ConfigError:  # an arithmetic the generator never gives that block
                    continue
        out.append(least)
    return out


def least_costs(
    topology: Topology, hardware: SearchHardware, *, samples: int, sensor_dtype: str
) -> dict[str, float]:
    """What a configuration costs at the least, before it is trained, keyed as a trial's
    metrics: ``flash_bytes`` and ``ram_bytes`` (:func:`ddnn_tf.mcu.bound.footprint_bound`,
    the largest device's); when priced, ``energy_uj_per_sample`` and ``latency_p95_ms``
    as the cost model gives them with every one of ``samples`` samples exiting at the
    first exit and the tiers' fewest modelled instructions (a trial, whose other samples
    also send their features, costs more), and ``max_rate_hz``, the highest rate the
    radio carries then (a trial's is no higher).
    """
    bounds = [footprint_bound(topology, d) for d in range(topology.num_devices)]
    least: dict[str, float] = {
        "flash_bytes": max(b.flash_bytes for b in bounds),
        "ram_bytes": max(b.ram_bytes for b in bounds),
    }
    if not hardware.priced:
        return least
    instructions = least_instructions(topology, hardware.core, sensor_dtype=sensor_dtype)
    cost = price(
        topology,
        np.zeros(max(int(samples), 1), np.int64),
        instructions=instructions,
        mcu=hardware.mcu,
        radio=hardware.radio,
        wan=hardware.wan,
        rate_hz=hardware.rate_hz,
        mode=MODE,
    ).to_dict()
    energy = [v for v in cost["energy_uj_per_sample"].values() if v is not None]
    least["energy_uj_per_sample"] = max(energy)
    least["latency_p95_ms"] = cost["latency_ms"]["overall"]["p95"]
    least["max_rate_hz"] = cost["max_rate_hz"]
    return least


def priced_metrics(cost: dict[str, Any]) -> dict[str, Any]:
    """A trial's metrics from its cost block (``Evaluation.cost``): the largest device's
    energy per sample, every device's, the p95 latency over all samples, the highest
    sample rate, and the modelled instructions per device."""
    energy = [v for v in cost["energy_uj_per_sample"].values()]
    known = [v for v in energy if v is not None]
    return {
        "energy_uj_per_sample": max(known) if known else None,
        "device_energy_uj": energy,
        "latency_p95_ms": cost["latency_ms"].get("overall", {}).get("p95"),
        "max_rate_hz": cost["max_rate_hz"],
        "instructions_per_sample": [
            d["modelled"] for d in cost["instructions_per_sample"].values()
        ],
    }
