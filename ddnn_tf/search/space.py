"""The search space of a hierarchy search: which Topology and training choices it tries.

Each :class:`Dimension` names one choice (``device_filters``), the Topology or
:class:`~ddnn_tf.keras.presets.TrainConfig` field it sets, and its values: a list of
choices or a numeric range. :func:`default_space` is the space for a data set's devices
(filters for image devices, units for vector ones); a small JSON file
(:func:`read_space_file`) or ``KEY=VALUE`` pairs (:func:`parse_fixed`) narrow or fix any
of them. What a trial does not choose comes from the base preset.

The exit threshold is not a dimension: every trial calibrates T with its calibration rule
on the validation split, as training does.

No Optuna here: a :class:`Space` asks an Optuna trial through its ``suggest_*`` methods.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ddnn_tf.core.files import read_json
from ddnn_tf.core.topology import Topology
from ddnn_tf.errors import ConfigError
from ddnn_tf.keras.presets import TrainConfig

__all__ = [
    "DIMENSIONS",
    "Dimension",
    "Space",
    "default_space",
    "narrow",
    "parse_fixed",
    "read_space_file",
]

_KINDS = ("choice", "int", "float")


@dataclass(frozen=True)
class Dimension:
    """One choice a trial makes.

    Attributes:
        name: the key in the space file, ``--fix`` and the trial's params.
        target: ``"topology"`` or ``"config"``: the object whose ``field`` it sets.
        field: the Topology or TrainConfig field.
        kind: ``"choice"`` (one of ``values``), ``"int"`` or ``"float"`` (from
            ``values[0]`` to ``values[1]``).
        values: the choices, or ``(low, high)``.
        log: a numeric range searched on a log scale.
        step: a numeric range's step (None: 1 for ints, continuous for floats).
        fixed: the one value when the dimension is fixed (not searched).
        when: ``(dimension, values)``: chosen only when that dimension takes one of
            these values (``local_units`` only with ``local_agg=mlp``).
        help: what it is, in words.
    """

    name: str
    target: str
    field: str
    kind: str
    values: tuple[Any, ...]
    log: bool = False
    step: float | None = None
    fixed: Any = None
    when: tuple[str, tuple[Any, ...]] | None = None
    help: str = ""

    @property
    def is_fixed(self) -> bool:
        return self.fixed is not None

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is one this dimension can take."""
        if self.is_fixed:
            return value == self.fixed
        if self.kind == "choice":
            return value in self.values
        low, high = self.values
        return isinstance(value, (int, float)) and low <= value <= high

    def to_dict(self) -> dict[str, Any]:
        """The dimension as the space file writes it (what a study records)."""
        if self.is_fixed:
            return {"fixed": self.fixed}
        if self.kind == "choice":
            return {"choices": list(self.values)}
        out: dict[str, Any] = {"low": self.values[0], "high": self.values[1]}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out

    def smallest(self) -> Any:
        """The smallest value (numbers), the fixed one, or the first choice."""
        if self.is_fixed:
            return self.fixed
        return (
            min(self.values) if self.kind != "choice" or _numbers(self.values) else self.values[0]
        )


def _numbers(values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


#: Every dimension a search knows, with its default values. ``device_filters`` applies to
#: image devices and ``device_units`` to vector ones (:func:`default_space` keeps those
#: the data needs).
DIMENSIONS: tuple[Dimension, ...] = (
    Dimension(
        "device_blocks",
        "topology",
        "device_conv_layers",
        "choice",
        (1, 2),
        help="binary blocks per end device (ConvP for images, FC for vectors)",
    ),
    Dimension(
        "device_filters",
        "topology",
        "device_filters",
        "choice",
        (2, 4, 8, 16),
        help="filters of each device ConvP block (the paper's f)",
    ),
    Dimension(
        "device_units",
        "topology",
        "device_units",
        "choice",
        (8, 16, 32, 64),
        help="units of each device FC block (vector devices)",
    ),
    Dimension(
        "summary_bits",
        "topology",
        "summary_bits",
        "choice",
        (4, 0),
        help="bits per class of a device's summary (0: float32)",
    ),
    Dimension(
        "local_agg",
        "topology",
        "local_agg",
        "choice",
        ("mlp", "max", "avg", "concat"),
        help="how the local aggregator combines the summaries",
    ),
    Dimension(
        "local_units",
        "topology",
        "local_units",
        "choice",
        (64, 128, 256),
        when=("local_agg", ("mlp",)),
        help="hidden units of the mlp local aggregator",
    ),
    Dimension(
        "cloud_precision",
        "topology",
        "cloud_precision",
        "choice",
        ("float", "binary"),
        help="the cloud's layers: real-valued or the paper's binary blocks",
    ),
    Dimension(
        "cloud_layers",
        "topology",
        "cloud_conv_layers",
        "int",
        (1, 3),
        help="the cloud's depth: dense layers (float) or ConvP blocks (binary)",
    ),
    Dimension(
        "cloud_units",
        "topology",
        "cloud_units",
        "choice",
        (128, 256, 512),
        help="the cloud's width: units of its dense layers",
    ),
    Dimension(
        "cloud_filters",
        "topology",
        "cloud_filters",
        "choice",
        (16, 32),
        when=("cloud_precision", ("binary",)),
        help="filters of the binary cloud's ConvP blocks",
    ),
    Dimension(
        "device_dropout",
        "topology",
        "device_dropout",
        "float",
        (0.0, 0.3),
        step=0.05,
        help="training-time probability that a device's messages are dropped",
    ),
    Dimension(
        "upper_epochs",
        "config",
        "upper_epochs",
        "int",
        (0, 5),
        help="epochs of the tiers above the frozen devices after the joint ones",
    ),
    Dimension(
        "learning_rate",
        "config",
        "learning_rate",
        "float",
        (1e-3, 1e-2),
        log=True,
        help="Adam's learning rate",
    ),
    Dimension(
        "epochs",
        "config",
        "epochs",
        "int",
        (1, 30),
        fixed=5,
        help="joint training epochs (fixed by --epochs unless the space file ranges it)",
    ),
)
_BY_NAME = {d.name: d for d in DIMENSIONS}


class Space:
    """A search space: dimensions in a fixed order, each searched or fixed.

    Args:
        dimensions: the dimensions (order matters: a conditional one follows the one it
            depends on).
        base_topology: the preset's Topology, sized for the data: what a trial does not
            choose.
        base_config: the preset's TrainConfig options (a dict).
    """

    def __init__(
        self,
        dimensions: tuple[Dimension, ...],
        base_topology: Topology,
        base_config: Mapping[str, Any],
    ) -> None:
        self.dimensions = tuple(dimensions)
        self.base_topology = base_topology
        self.base_config = dict(base_config)
        self._check()

    def __iter__(self) -> Iterator[Dimension]:
        return iter(self.dimensions)

    def __getitem__(self, name: str) -> Dimension:
        for d in self.dimensions:
            if d.name == name:
                return d
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dimensions)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """``{name: {"choices": [...]} | {"low", "high"[, "log", "step"]} | {"fixed": v}}``."""
        return {d.name: d.to_dict() for d in self.dimensions}

    # ------------------------------------------------------------------ choosing
    def applies(self, dimension: Dimension, params: Mapping[str, Any]) -> bool:
        """Whether ``dimension`` is chosen, given the values chosen before it."""
        if dimension.when is None:
            return True
        other, values = dimension.when
        return (
            params.get(other, self._base_value(self[other]) if other in self.names else None)
            in values
        )

    def suggest(self, trial) -> dict[str, Any]:
        """Choose every dimension that applies, through an Optuna trial's ``suggest_*``.

        Returns:
            ``{name: value}`` of the searched and the fixed dimensions that apply.
        """
        params: dict[str, Any] = {}
        for d in self.dimensions:
            if not self.applies(d, params):
                continue
            if d.is_fixed:
                params[d.name] = d.fixed
            elif d.kind == "choice":
                params[d.name] = trial.suggest_categorical(d.name, list(d.values))
            elif d.kind == "int":
                step = int(d.step) if d.step is not None else 1
                params[d.name] = trial.suggest_int(d.name, *d.values, step=step, log=d.log)
            else:
                params[d.name] = trial.suggest_float(d.name, *d.values, step=d.step, log=d.log)
        return params

    def settings(self, params: Mapping[str, Any]) -> tuple[Topology, dict[str, Any]]:
        """The Topology and the TrainConfig options of a trial's params.

        Raises:
            ConfigError: params that make an invalid Topology.
        """
        topology_options: dict[str, Any] = {}
        config = dict(self.base_config)
        for name, value in params.items():
            d = _BY_NAME[name]
            if d.target == "topology":
                topology_options[d.field] = value
            else:
                config[d.field] = value
        return self.base_topology.replace(**topology_options), config

    def _base_value(self, d: Dimension) -> Any:
        if d.is_fixed:
            return d.fixed
        if d.target == "topology":
            return getattr(self.base_topology, d.field)
        return self.base_config.get(d.field)

    def base_params(self) -> dict[str, Any]:
        """The base preset's values of the searched dimensions that can take them (the
        first trial tries the preset itself, as far as the space allows)."""
        params: dict[str, Any] = {}
        chosen: dict[str, Any] = {}
        for d in self.dimensions:
            if not self.applies(d, chosen):
                continue
            value = self._base_value(d)
            chosen[d.name] = value
            if not d.is_fixed and value is not None and d.contains(value):
                params[d.name] = value
        return params

    def device_configurations(self) -> Iterator[Topology]:
        """Every Topology the device dimensions can make: blocks, width and summary bits
        (the rest at the base's)."""
        device = ("device_blocks", "device_filters", "device_units", "summary_bits")
        names = [n for n in device if n in self.names]
        combos: list[dict[str, Any]] = [{}]
        for name in names:
            d = self[name]
            values = [d.fixed] if d.is_fixed else _grid(d)
            combos = [{**c, name: v} for c in combos for v in values]
        for combo in combos:
            yield self.settings(combo)[0]

    # ------------------------------------------------------------------ checks
    def _check(self) -> None:
        for d in self.dimensions:
            values = [d.fixed] if d.is_fixed else list(d.values)
            for value in values:
                self._check_value(d, value)

    def _check_value(self, d: Dimension, value: Any) -> None:
        """A value the Topology or the TrainConfig accepts for the dimension's field."""
        try:
            if d.target == "topology":
                self.base_topology.replace(**{d.field: value})
            else:
                TrainConfig(**{**self.base_config, d.field: value})
        except (ConfigError, TypeError) as err:
            raise ConfigError(f"{d.name}={value!r} is not a valid {d.field}: {err}") from None


def _grid(d: Dimension) -> list[Any]:
    """The values of a choice, or the ends of a numeric range."""
    if d.kind == "choice":
        return list(d.values)
    return sorted({d.values[0], d.values[1]})


def default_space(base_topology: Topology, base_config: Mapping[str, Any]) -> Space:
    """The default space for the devices of ``base_topology``: ``device_filters`` when a
    device is an image, ``device_units`` when one is a vector; the epochs fixed at the
    base config's."""
    images = [base_topology.is_image(d) for d in range(base_topology.num_devices)]
    skip = set()
    if not any(images):
        skip.add("device_filters")
    if all(images):
        skip.add("device_units")
    dims = []
    for d in DIMENSIONS:
        if d.name in skip:
            continue
        if d.name == "epochs":
            d = replace(d, fixed=int(base_config.get("epochs", d.fixed)))
        dims.append(d)
    return Space(tuple(dims), base_topology, base_config)


def _narrowed(d: Dimension, spec: Any, where: str) -> Dimension:
    """``d`` narrowed by one entry of a space file (a value, a list, or a range)."""
    if isinstance(spec, list):
        if not spec or len(set(map(json.dumps, spec))) != len(spec):
            raise ConfigError(f"{where}: expected a non-empty list of distinct values, got {spec}.")
        if len(spec) == 1:
            return replace(d, fixed=spec[0])
        return replace(d, kind="choice", values=tuple(spec), fixed=None, log=False, step=None)
    if isinstance(spec, dict):
        keys = set(spec)
        if d.kind == "choice" and not _numbers(d.values):
            raise ConfigError(
                f"{where}: a range needs a numeric dimension; give a list of choices."
            )
        unknown = keys - {"low", "high", "log", "step"}
        if unknown or not {"low", "high"} <= keys:
            raise ConfigError(
                f'{where}: expected {{"low": L, "high": H}} with optional "log" and '
                f'"step", got {json.dumps(spec)}.'
            )
        low, high = spec["low"], spec["high"]
        if not (_numbers([low, high]) and math.isfinite(low) and math.isfinite(high)) or low > high:
            raise ConfigError(f"{where}: expected numbers low <= high, got {low!r}, {high!r}.")
        integer = d.kind == "int" or (
            d.kind == "choice" and all(isinstance(v, int) for v in d.values)
        )
        if integer and not all(isinstance(v, int) for v in (low, high)):
            raise ConfigError(f"{where}: {d.name} takes integers, got {low!r}, {high!r}.")
        log = spec.get("log", False)
        if not isinstance(log, bool) or (log and low <= 0):
            raise ConfigError(f'{where}: "log" must be true or false, and needs low > 0.')
        step = spec.get("step")
        if step is not None and (not _numbers([step]) or step <= 0 or log):
            raise ConfigError(f'{where}: "step" must be a positive number, without "log".')
        if low == high:
            return replace(d, fixed=low)
        kind = "int" if integer else "float"
        return replace(d, kind=kind, values=(low, high), log=log, step=step, fixed=None)
    if isinstance(spec, (str, int, float)) and not isinstance(spec, bool):
        return replace(d, fixed=spec)
    raise ConfigError(
        f'{where}: expected a value, a list of choices or {{"low", "high"}}, got {json.dumps(spec)}.'
    )


def narrow(space: Space, entries: Mapping[str, Any], source: str) -> Space:
    """``space`` with some dimensions narrowed or fixed.

    Args:
        space: the space to narrow.
        entries: dimension name -> a value (fixed), a list (choices) or ``{"low",
            "high"[, "log", "step"]}`` (a range).
        source: where the entries come from, for errors (a file name, ``--fix``).

    Raises:
        ConfigError: an unknown dimension or a value it cannot take, naming ``source``.
    """
    unknown = sorted(set(entries) - set(space.names))
    if unknown:
        raise ConfigError(
            f"{source}: unknown search dimension(s) {', '.join(unknown)}; the space has "
            f"{', '.join(space.names)}."
        )
    dims = tuple(
        _narrowed(d, entries[d.name], f"{source}: {d.name}") if d.name in entries else d
        for d in space.dimensions
    )
    try:
        return Space(dims, space.base_topology, space.base_config)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None


def read_space_file(path: str | Path) -> dict[str, Any]:
    """The entries of a search-space file: a JSON object of dimension name -> a value, a
    list of choices or ``{"low": L, "high": H}``.

    Raises:
        FileNotFoundError: no such file.
        FormatError: not JSON.
        ConfigError: not a JSON object.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"search-space file not found: {path}")
    data = read_json(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object of dimension -> values.")
    return data


def _scalar(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_fixed(items: list[str]) -> dict[str, Any]:
    """``["device_blocks=2", "cloud_precision=float"]`` -> ``{"device_blocks": 2, ...}``.

    Raises:
        ConfigError: an item without ``=``.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"expected KEY=VALUE items, e.g. device_blocks=2; got {item!r}.")
        out[key.strip()] = _scalar(value.strip())
    return out
