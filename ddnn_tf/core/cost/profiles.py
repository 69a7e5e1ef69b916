"""Hardware profiles: microcontrollers, radios, the gateway's WAN link and compute hosts, as data.

A profile is one JSON file (format ``ddnn-tf-hardware``) of one ``kind`` (``mcu``,
``radio``, ``wan`` or ``compute``) whose every number is a *figure* with its source::

    {"format": "ddnn-tf-hardware", "kind": "mcu", "name": "stm32l4", "core": "cortex-m4f",
     "figures": {"clock_mhz": {"value": 80, "source": "STM32L476xx datasheet DS10198, ..."},
                 ...}}

The figures each kind needs, with their units in their names, are
:data:`ddnn_tf.core.schemas.HARDWARE_FIGURES` (a radio adds its modulation's,
:data:`ddnn_tf.core.schemas.MODULATION_FIGURES`); a file is checked against the
``hardware profile`` schema before use, so a missing, unknown or negative figure is one
error naming the file and the key. The toolkit ships profiles in
``ddnn_tf/core/cost/hardware/`` (:func:`profile_names`); a user's own file is loaded by
its path wherever a profile name is taken.

Standard library and jsonschema only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ddnn_tf.core.schemas import validate_document
from ddnn_tf.core.vocab import PROFILE_KINDS
from ddnn_tf.errors import ConfigError, FormatError

__all__ = ["KINDS", "Profile", "load_profile", "profile_names"]

#: The kinds of hardware profile, in the order ``ddnn cost --list`` prints them.
KINDS = PROFILE_KINDS
_FORMAT = "ddnn-tf-hardware"


@dataclass(frozen=True)
class Profile:
    """One hardware profile, validated.

    Attributes:
        kind: ``mcu``, ``radio``, ``wan`` or ``compute``.
        name: its name (``stm32l4``).
        description: what it describes, in words.
        values: figure name -> value (units in the names: ``tx_current_ma``...).
        sources: figure name -> where the value comes from.
        origin: the file it was read from.
        core: an MCU's core (``cortex-m4f``, ``cortex-m0plus``): which measured
            instruction counts apply.
        modulation / downlink: a radio's physical layer and how its device receives.
    """

    kind: str
    name: str
    description: str
    values: dict[str, float]
    sources: dict[str, str]
    origin: str
    core: str | None = None
    modulation: str | None = None
    downlink: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, figure: str) -> float:
        return self.values[figure]

    def source(self, figure: str) -> str:
        """Where ``figure`` comes from (its datasheet and section, or an assumption)."""
        return self.sources[figure]

    @property
    def file(self) -> str:
        """Where the profile was read from: ``ddnn_tf/core/cost/hardware/NAME.json`` for one
        shipped with the toolkit, else the path a user gave."""
        shipped = _hardware_dir()
        path = Path(self.origin)
        if path.parent == shipped:
            return f"ddnn_tf/core/cost/hardware/{path.name}"
        return self.origin


def _hardware_dir() -> Path:
    return Path(str(resources.files("ddnn_tf.core.cost") / "hardware"))


def _read(path: Path) -> Profile:
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise FormatError(f"{path}: not JSON ({err.msg} at line {err.lineno}).") from None
    validate_document(document, "hardware profile", path)
    figures = document["figures"]
    return Profile(
        kind=document["kind"],
        name=document["name"],
        description=document.get("description", ""),
        values={k: float(v["value"]) for k, v in figures.items()},
        sources={k: v["source"] for k, v in figures.items()},
        origin=str(path),
        core=document.get("core"),
        modulation=document.get("modulation"),
        downlink=document.get("downlink"),
    )


def profile_names(kind: str | None = None) -> dict[str, list[str]]:
    """The profiles shipped with the toolkit, by kind.

    Args:
        kind: only this kind (``mcu``, ``radio``, ``wan``, ``compute``); None for all.

    Returns:
        ``{kind: [names, sorted]}``.

    Example:
        >>> profile_names("radio")["radio"]
        ['802154', 'ble-1m', 'lora-sf12', 'lora-sf7', 'ltem', 'nbiot', 'wifi']
    """
    names: dict[str, list[str]] = {k: [] for k in KINDS if kind in (None, k)}
    for path in sorted(_hardware_dir().glob("*.json")):
        document = json.loads(path.read_text())
        if document["kind"] in names:
            names[document["kind"]].append(document["name"])
    return {k: sorted(v) for k, v in names.items()}


def _is_path(spec: str) -> bool:
    return spec.endswith(".json") or "/" in spec or Path(spec).is_file()


def load_profile(spec: str | Path | Profile, kind: str, *, argument: str | None = None) -> Profile:
    """A profile by name (shipped with the toolkit) or by the path of a user's JSON file.

    Args:
        spec: a name from :func:`profile_names`, a ``.json`` path, or a loaded profile.
        kind: the kind expected (``mcu``, ``radio``, ``wan`` or ``compute``).
        argument: the parameter that named it, for the error (``radio``).

    Returns:
        The :class:`Profile`.

    Raises:
        ConfigError: an unknown name (listing the known ones), or a profile of another kind.
        FormatError: a file that is not JSON or fails the schema (naming the key).
        FileNotFoundError: a path that does not exist.

    Example:
        >>> p = load_profile("lora-sf7", "radio")
        >>> p["tx_current_ma"], p.source("tx_current_ma").split(",")[0]
        (87.0, 'Semtech SX1276/77/78/79 datasheet Rev 7')
    """
    if kind not in KINDS:
        raise ConfigError(f"expected a profile kind among {', '.join(KINDS)}, got {kind!r}.")
    argument = argument or kind
    if isinstance(spec, Profile):
        profile = spec
    elif _is_path(str(spec)):
        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(f"{argument}: no profile file {path}.")
        profile = _read(path)
    else:
        path = _hardware_dir() / f"{spec}.json"
        if not path.is_file():
            known = ", ".join(profile_names(kind)[kind])
            raise ConfigError(
                f"unknown {kind} profile {str(spec)!r}; expected one of {known}, or the path "
                "of your own profile file (.json).",
                argument=argument,
            )
        profile = _read(path)
    if profile.kind != kind:
        raise ConfigError(
            f"{profile.origin} is a profile of kind {profile.kind!r}; expected kind {kind!r}.",
            argument=argument,
        )
    return profile
