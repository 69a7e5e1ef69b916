"""``ddnn cost MODEL --mcu NAME --radio NAME``: what a sample costs on a microcontroller and
a radio (:func:`ddnn_tf.runtime.cost.model_cost`); ``ddnn cost --list`` names the hardware
profiles and ``ddnn cost --show NAME`` prints one with the source of every figure.

The same profile flags (``--mcu``, ``--radio``, ``--wan``, ``--rate``, ``--battery-mah``,
``--mode``) make ``ddnn run`` and ``ddnn evaluate`` add the cost block to their report
(:class:`HardwareFlags`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ddnn_tf.cli.flags import AT_LEAST_1, POSITIVE, command, with_options
from ddnn_tf.core.options import Options, option
from ddnn_tf.core.vocab import PROTOCOL_MODES as MODES
from ddnn_tf.errors import ConfigError

__all__ = ["HardwareFlags", "ProfileFlags", "cost"]


@dataclass(frozen=True, kw_only=True)
class HardwareFlags(Options):
    """The profile flags of ``ddnn run`` and ``ddnn evaluate``: with ``--mcu`` and
    ``--radio`` their report gains what a sample costs."""

    mcu: str | None = option(
        None, "with --radio, add what a sample costs on this microcontroller profile "
        "(ddnn cost --list): energy, battery life, latency, baselines",
    )  # fmt: skip
    radio: str | None = option(None, "the devices' radio profile")
    wan: str = option("broadband", "the gateway's WAN link profile")
    rate: float = option(
        1.0, "samples per second (for the energy per sample and the battery life)", POSITIVE
    )
    battery_mah: float = option(225.0, "battery capacity in mAh", POSITIVE)
    mode: str = option("paper", "the device protocol priced: paper or eager", choices=MODES)

    def hardware(self) -> dict[str, Any] | None:
        """The library's ``hardware`` keywords; None when neither ``--mcu`` nor ``--radio``
        was given.

        Raises:
            ConfigError: one of ``--mcu`` and ``--radio`` without the other.
        """
        if self.mcu is None and self.radio is None:
            return None
        _require(self.mcu, self.radio)
        return {
            "mcu": self.mcu,
            "radio": self.radio,
            "wan": self.wan,
            "rate_hz": self.rate,
            "battery_mah": self.battery_mah,
            "mode": self.mode,
        }


def _require(mcu: str | None, radio: str | None) -> None:
    from ddnn_tf.core.cost.profiles import profile_names

    names = profile_names()
    for flag, value, kind in (("mcu", mcu, "mcu"), ("radio", radio, "radio")):
        if value is None:
            raise ConfigError(
                f"--{flag}: expected a {kind} profile, one of {', '.join(names[kind])}, or the "
                "path of your own profile file (ddnn cost --list)."
            )


def _listing(as_json: bool) -> str:
    import json

    from ddnn_tf.core.cost.profiles import load_profile, profile_names

    names = profile_names()
    if as_json:
        return json.dumps(names, indent=2)
    lines = []
    for kind, listed in names.items():
        lines.append(f"{kind}:")
        for name in listed:
            lines.append(f"  {name:<16}{load_profile(name, kind).description}")
    lines.append("A profile's figures and their sources: ddnn cost --show NAME.")
    return "\n".join(lines)


def _show(name: str) -> str:
    from ddnn_tf.core.cost.profiles import KINDS, load_profile, profile_names
    from ddnn_tf.core.cost.report import format_profile

    names = profile_names()
    for kind in KINDS:
        if name in names[kind]:
            return format_profile(load_profile(name, kind))
    if name.endswith(".json"):
        import json
        from pathlib import Path

        path = Path(name)
        if not path.is_file():
            raise FileNotFoundError(f"--show: no profile file {path}.")
        kind = json.loads(path.read_text()).get("kind")
        if kind in KINDS:
            return format_profile(load_profile(name, kind))
    known = ", ".join(n for listed in names.values() for n in listed)
    raise ConfigError(f"--show: unknown profile {name!r}; expected one of {known}.")


@dataclass(frozen=True, kw_only=True)
class ProfileFlags(Options):
    """``ddnn cost --list`` and ``--show NAME``: the hardware profiles, instead of a cost."""

    list: bool = option(False, "print the hardware profiles' names")
    show: str | None = option(None, "print a profile's figures with their sources")

    def run(self, as_json: bool) -> bool:
        """Print what ``--list`` or ``--show`` asks for, if either was given; whether it was."""
        if self.list:
            print(_listing(as_json))
        elif self.show is not None:
            print(_show(self.show))
        return self.list or self.show is not None


@command(battery_v=POSITIVE, timing_samples=AT_LEAST_1)
@with_options(ProfileFlags, "profiles")
def cost(
    model: str | None = None,
    mcu: str | None = None,
    radio: str | None = None,
    wan: str = "broadband",
    rate: float = 1.0,
    battery_mah: float = 225.0,
    battery_v: float = 3.0,
    data: str | None = None,
    path: str | None = None,
    mode: str = "paper",
    threshold=None,
    subset: str = "test",
    limit: int | None = None,
    gateway: str = "this-host",
    cloud: str = "this-host",
    timing_samples: int = 200,
    sweep: bool = False,
    plot: str | None = None,
    seed: int = 0,
    profiles: ProfileFlags | None = None,
    json: bool = False,  # noqa: A002  (the flag is --json)
) -> None:
    """What a sample costs on a microcontroller and a radio: energy, battery life, latency.

    Runs the converted model on a data subset, takes each device tier's instructions per
    sample from its C target (counted on the emulated board, or modelled) and the
    tiers' latency measured here, and prices them with hardware profiles (every figure
    cites its datasheet): energy per device per sample by component, battery life,
    latency per exit (p50, p95, mean), the other protocol mode, and the raw-offload and
    always-cloud baselines.

    Args:
        model: a converted model directory with the C target (tflite_models/NAME).
        mcu: microcontroller profile (ddnn cost --list) or the path of your own .json.
        radio: radio profile or path.
        wan: the gateway's WAN link profile or path.
        rate: samples per second.
        battery_mah: battery capacity in mAh (225: a CR2032 coin cell).
        battery_v: battery voltage.
        data: dataset name (default: the manifest's).
        path: data file or directory for file-based loaders.
        mode: the device protocol: paper (summary up, decision down, features up when
            needed) or eager (summary and features in one uplink).
        threshold: T for every early exit (default: the manifest's calibrated T).
        subset: the data subset: test or val.
        limit: the first N samples only.
        gateway: compute profile of the gateway's host (default: this host).
        cloud: compute profile of the cloud's host (default: this host).
        timing_samples: samples timed one at a time for the tiers' latency.
        sweep: add the threshold sweep with energy and p95 latency per T.
        plot: write the plot of energy and p95 latency against T to this .png.
        seed: seed of the random waits (channel access, connection events).
        json: print one JSON object instead of the report.
    """
    if profiles is not None and profiles.run(json):
        return
    if model is None:
        raise ConfigError(
            "expected a converted model directory: ddnn cost MODEL --mcu M --radio R."
        )
    _require(mcu, radio)
    if plot is not None and not plot.endswith(".png"):
        raise ConfigError(f"--plot: expected a .png path, got {plot!r}.")
    from ddnn_tf.runtime.cost import model_cost

    result = model_cost(
        model,
        data,
        mcu=mcu,
        radio=radio,
        wan=wan,
        gateway=gateway,
        cloud=cloud,
        rate_hz=rate,
        battery_mah=battery_mah,
        battery_v=battery_v,
        mode=mode,
        threshold=threshold,
        path=path,
        subset=subset,
        limit=limit,
        timing_samples=timing_samples,
        sweep=sweep or plot is not None,
        seed=seed,
    )
    if plot is not None:
        from ddnn_tf.experiments.costplot import plot_cost_sweep

        plot_cost_sweep(result, plot)
    print(_report(result, plot, json))


def _report(result: dict[str, Any], plot: str | None, as_json: bool) -> str:
    """What ``ddnn cost`` prints: the cost report and its sweep, or one JSON object."""
    import json

    from ddnn_tf.core.cost.report import format_cost
    from ddnn_tf.core.evaluation import format_sweep

    if as_json:
        return json.dumps(result, indent=2, allow_nan=False)
    text = format_cost(result)
    if "sweep" in result:
        text += "\n" + "\n".join(format_sweep(result))
    return text + (f"\nwrote {plot}" if plot else "")


COMMAND = cost
