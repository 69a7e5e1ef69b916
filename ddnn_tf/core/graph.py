"""The tier graph: a hierarchy's tiers in order, their named tensors and who feeds whom.

Derived once from a :class:`~ddnn_tf.core.topology.Topology` and the exits kept (the split),
and read by the Keras model builder, the converter, parity checks, the manifest and the
orchestrator, so that the wiring is written down in one place. Tier names come from
:func:`device_tier` / :func:`edge_tier` and the constants below; nothing recovers
structure by parsing a name.

A tier input is one of:

* ``sensor``: a device's own input (``device`` says which); in configuration (a) the
  composed cloud receives it raw over the device's link (its ``source``);
* ``summary`` / ``features``: a message from another tier (its ``source``: the sending
  tier, its output, the link it travels on and the sender's column on that link);
* ``presence``: a 0/1 mask with one :class:`Column` per sender (a device, or an edge that
  counts as present when any of its devices is).

Numpy and the standard library only (no TensorFlow), so the runtime can use it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from ddnn_tf.core.topology import Topology
from ddnn_tf.core.vocab import LINKS, SPLITS
from ddnn_tf.errors import ConfigError

__all__ = [
    "CLOUD",
    "EDGE_AGGREGATOR",
    "LINKS",
    "LOCAL_AGGREGATOR",
    "SPLITS",
    "Column",
    "Port",
    "Source",
    "Tier",
    "TierGraph",
    "check_split",
    "device_tier",
    "edge_tier",
    "feed_tier",
    "presence_mask",
    "tier_graph",
]

# Device links have one column per device, edge links one per edge.

LOCAL_AGGREGATOR = "local_aggregator"
EDGE_AGGREGATOR = "edge_aggregator"
CLOUD = "cloud"


def device_tier(i: int) -> str:
    """Name of end device ``i``'s tier (and file stem).

    Example:
        >>> device_tier(3)
        'device_3'
    """
    return f"device_{int(i)}"


def edge_tier(j: int) -> str:
    """Name of edge ``j``'s tier (and file stem).

    Example:
        >>> edge_tier(0)
        'edge_0'
    """
    return f"edge_{int(j)}"


@dataclass(frozen=True)
class Source:
    """Where a tier input comes from.

    Attributes:
        tier: the sending tier (for a raw sensor input: the device's tier name).
        output: its output: ``summary``, ``features`` or ``raw``.
        link: one of :data:`LINKS`.
        column: the sender's column on that link (device or edge index).
    """

    tier: str
    output: str
    link: str
    column: int


@dataclass(frozen=True)
class Column:
    """One column of a presence mask: ``tier`` is present when any of ``devices`` is."""

    tier: str
    devices: tuple[int, ...]


@dataclass(frozen=True)
class Port:
    """One named input or output tensor of a tier.

    Attributes:
        name: the signature name (``image``, ``summary_3``, ``presence``, ``logits`` ...).
        shape: shape of one sample (without the batch dimension).
        role: ``sensor``, ``summary``, ``features``, ``presence`` or ``logits``.
        source: for received inputs, where they come from.
        device: for sensor inputs, the device.
        columns: for presence inputs, one :class:`Column` per sender.
        exit: for logits outputs, the exit name.
    """

    name: str
    shape: tuple[int, ...]
    role: str
    source: Source | None = None
    device: int | None = None
    columns: tuple[Column, ...] = ()
    exit: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The manifest entry: ``{name, shape (with batch 1), dtype, role, ...}``.

        Received messages carry ``from`` ``{tier, output}``, sensors ``device``, presence
        masks ``columns`` (tier names) and ``column_devices`` (each column's devices),
        logits ``exit``.
        """
        out: dict[str, Any] = {
            "name": self.name,
            "shape": [1, *self.shape],
            "dtype": "float32",
            "role": self.role,
        }
        if self.source is not None and self.role in ("summary", "features"):
            out["from"] = {"tier": self.source.tier, "output": self.source.output}
        if self.device is not None:
            out["device"] = self.device
        if self.columns:
            out["columns"] = [c.tier for c in self.columns]
            out["column_devices"] = [list(c.devices) for c in self.columns]
        if self.exit is not None:
            out["exit"] = self.exit
        return out


@dataclass(frozen=True)
class Tier:
    """One tier binary (and Keras tier model): what it takes and gives.

    Attributes:
        name: tier name (also the file stem).
        role: ``device``, ``local_aggregator``, ``edge``, ``edge_aggregator`` or ``cloud``.
        inputs / outputs: the tensors, in the Keras tier model's order.
        devices: the end devices it depends on; it runs for a sample when any of them is
            present.
        device / edge: index of the device or edge, where relevant.
        composed: configuration (a)'s cloud, which runs the device sections too.
    """

    name: str
    role: str
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    devices: tuple[int, ...]
    device: int | None = None
    edge: int | None = None
    composed: bool = False

    @cached_property
    def exit(self) -> str | None:
        """The exit this tier classifies at, or None."""
        return next((p.exit for p in self.outputs if p.role == "logits"), None)

    @property
    def sources(self) -> tuple[Source, ...]:
        """Where the received inputs come from, in input order."""
        return tuple(p.source for p in self.inputs if p.source is not None)

    def output(self, name: str) -> Port:
        """The output port ``name``.

        Raises:
            KeyError: naming the outputs there are.
        """
        for p in self.outputs:
            if p.name == name:
                return p
        raise ConfigError(f"Tier {self.name} has no output {name!r}; outputs: {self.output_names}.")

    @property
    def input_names(self) -> list[str]:
        return [p.name for p in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [p.name for p in self.outputs]

    def manifest_fields(self) -> dict[str, Any]:
        """``{role, [device | edge], inputs, outputs, devices, sources}`` for the manifest."""
        out: dict[str, Any] = {"role": self.role}
        if self.device is not None:
            out["device"] = self.device
        if self.edge is not None:
            out["edge"] = self.edge
        out["inputs"] = [p.to_dict() for p in self.inputs]
        out["outputs"] = [p.to_dict() for p in self.outputs]
        out["devices"] = list(self.devices)
        out["sources"] = [
            {
                "input": p.name,
                "tier": p.source.tier,
                "output": p.source.output,
                "link": p.source.link,
                "column": p.source.column,
            }
            for p in self.inputs
            if p.source is not None
        ]
        return out


@dataclass(frozen=True)
class TierGraph:
    """The tiers of a hierarchy under a split, bottom to top.

    Attributes:
        topology: the hierarchy.
        split: the exits kept, bottom to top.
        tiers: every tier, in an order where each tier's senders come before it.

    Example:
        >>> t = Topology(input_shapes=[(10, 14, 1)] * 2, num_classes=3)
        >>> g = tier_graph(t)
        >>> g.names
        ['device_0', 'device_1', 'local_aggregator', 'cloud']
        >>> [(s.tier, s.output, s.link) for s in g["cloud"].sources]
        [('device_0', 'features', 'device_to_upper'), ('device_1', 'features', 'device_to_upper')]
    """

    topology: Topology
    split: tuple[str, ...]
    tiers: tuple[Tier, ...]

    def __getitem__(self, name: str) -> Tier:
        for tier in self.tiers:
            if tier.name == name:
                return tier
        raise ConfigError(f"No tier {name!r}; tiers: {self.names}.")

    def __iter__(self):
        return iter(self.tiers)

    def __len__(self) -> int:
        return len(self.tiers)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tiers]

    def by_role(self, role: str) -> list[Tier]:
        """The tiers of ``role``, in graph order."""
        return [t for t in self.tiers if t.role == role]

    @property
    def links(self) -> list[tuple[Source, str]]:
        """Every message the hierarchy sends: ``(source, receiving tier)``."""
        return [(s, t.name) for t in self.tiers for s in t.sources]

    def alive(self, presence: np.ndarray) -> dict[str, np.ndarray]:
        """Per tier, ``(N,)`` bool: whether any device it depends on is present.

        Args:
            presence: ``(N, D)`` 0/1 or bool device presence.
        """
        p = np.asarray(presence) > 0
        return {t.name: p[:, list(t.devices)].any(axis=1) for t in self.tiers}


def presence_mask(port: Port, presence: np.ndarray) -> np.ndarray:
    """The ``(N, len(columns))`` float32 mask of a presence input.

    Args:
        port: a ``presence`` port.
        presence: ``(N, D)`` 0/1 or bool device presence.

    Returns:
        Column ``k`` is 1 where any device of ``port.columns[k]`` is present.
    """
    p = np.asarray(presence) > 0
    cols = [p[:, list(c.devices)].any(axis=1) for c in port.columns]
    return np.stack(cols, axis=1).astype(np.float32)


def feed_tier(
    tier: Tier,
    xs: Sequence[np.ndarray],
    presence: np.ndarray,
    outputs: Mapping[str, Mapping[str, np.ndarray]],
) -> dict[str, np.ndarray]:
    """The inputs of ``tier`` from sensors, a presence mask and lower tiers' outputs.

    No message encoding: this is how the Keras tiers are chained for parity checks and
    calibration.

    Args:
        tier: the tier.
        xs: one ``(N, ...)`` array per device.
        presence: ``(N, D)`` 0/1 device presence.
        outputs: ``{tier name: {output name: (N, ...) array}}`` of the tiers below.

    Returns:
        ``{input name: (N, ...) array}``.
    """
    feed = {}
    for port in tier.inputs:
        if port.role == "sensor":
            feed[port.name] = xs[port.device]
        elif port.role == "presence":
            feed[port.name] = presence_mask(port, presence)
        else:
            feed[port.name] = outputs[port.source.tier][port.source.output]
    return feed


def _parse_split(split: Any) -> tuple[str, ...]:
    if isinstance(split, str):
        parts = tuple(p.strip() for p in split.split(",") if p.strip())
    elif isinstance(split, (list, tuple)):
        parts = tuple(str(p).strip() for p in split)
    else:
        parts = (repr(split),)
    if parts not in SPLITS:
        choices = " / ".join(",".join(s) for s in SPLITS)
        raise ConfigError(f"expected one of {choices}, got {','.join(parts)!r}.", argument="split")
    return parts


def check_split(topology: Topology, split: Any = None) -> tuple[str, ...]:
    """Parse ``split`` and check that the trained ``topology`` provides it.

    Args:
        topology: the trained hierarchy.
        split: ``"local,cloud"``, a sequence of exit names, or None for the model's exits.

    Returns:
        The exits kept, bottom to top.

    Raises:
        ValueError: an unknown split, or one asking for an exit the model does not have
            (the message says what the model has).
    """
    if split is None:
        return tuple(topology.exits)
    parts = _parse_split(split)
    missing = [e for e in parts if e not in topology.exits]
    if missing:
        edges = f"{topology.num_edges} edge(s)" if topology.edges else "no edge"
        possible = [",".join(s) for s in SPLITS if all(e in topology.exits for e in s)]
        raise ConfigError(
            f"{','.join(parts)} needs the exit(s) {missing}, but the model has exits "
            f"{','.join(topology.exits)} and {edges}. Splits this model can provide: "
            f"{' / '.join(possible)}.",
            argument="split",
        )
    return parts


def tier_graph(topology: Topology, split: Any = None, *, composed: bool = True) -> TierGraph:
    """The tier graph of ``topology`` under ``split``.

    Args:
        topology: the hierarchy.
        split: as :func:`check_split` (None: the topology's exits).
        composed: with the cloud-only split (configuration (a)), make one cloud tier that
            runs the device sections on raw input (as deployed); False lists the device
            sections as tiers of their own (as the Keras model builds them).

    Returns:
        The :class:`TierGraph`.

    Raises:
        ValueError: as :func:`check_split`.
    """
    split = check_split(topology, split)
    build = _Builder(topology)
    if split == ("cloud",) and composed:
        return TierGraph(topology, split, (build.composed_cloud(),))
    local, edge_exit = "local" in split, "edge" in split
    tiers = build.devices(with_summary=local)
    if local:
        tiers.append(build.aggregator(LOCAL_AGGREGATOR, "local", build.device_columns))
    tiers += build.edges(with_summary=edge_exit)
    if edge_exit:
        tiers.append(build.aggregator(EDGE_AGGREGATOR, "edge", build.edge_columns))
    tiers.append(build.cloud())
    return TierGraph(topology, split, tuple(tiers))


class _Builder:
    """The tiers of one topology, each from the ports it receives and sends."""

    #: The link a summary takes to each aggregator.
    SUMMARY_LINKS = {LOCAL_AGGREGATOR: "device_to_local", EDGE_AGGREGATOR: "edge_to_aggregator"}

    def __init__(self, topology: Topology) -> None:
        t = self.t = topology
        self.everyone = tuple(range(t.num_devices))
        self.device_columns = tuple(Column(device_tier(i), (i,)) for i in range(t.num_devices))
        self.edge_columns = tuple(Column(edge_tier(j), tuple(g)) for j, g in enumerate(t.edges))

    def logits(self, exit_name: str) -> tuple[Port, ...]:
        return (Port("logits", (self.t.num_classes,), "logits", exit=exit_name),)

    @staticmethod
    def presence(columns: tuple[Column, ...]) -> Port:
        return Port("presence", (len(columns),), "presence", columns=columns)

    @staticmethod
    def received(name: str, shape, role: str, sender: str, link: str, column: int) -> Port:
        return Port(name, tuple(shape), role, source=Source(sender, role, link, column))

    def sent(self, shape, with_summary: bool) -> tuple[Port, ...]:
        features = Port("features", tuple(shape), "features")
        if not with_summary:
            return (features,)
        return (features, Port("summary", (self.t.num_classes,), "summary"))

    def composed_cloud(self) -> Tier:
        """The cloud-only split as deployed: one tier that runs the device sections too."""
        t = self.t
        inputs = tuple(
            Port(
                f"input_{i}",
                t.input_shapes[i],
                "sensor",
                source=Source(device_tier(i), "raw", "device_to_upper", i),
                device=i,
            )
            for i in self.everyone
        )
        ports = (*inputs, self.presence(self.device_columns))
        return Tier(CLOUD, "cloud", ports, self.logits("cloud"), self.everyone, composed=True)

    def devices(self, *, with_summary: bool) -> list[Tier]:
        tiers = []
        for i in self.everyone:
            sensor = "image" if self.t.is_image(i) else "vector"
            inputs = (Port(sensor, self.t.input_shapes[i], "sensor", device=i),)
            outputs = self.sent(self.t.feature_shape(i), with_summary)
            tiers.append(Tier(device_tier(i), "device", inputs, outputs, (i,), device=i))
        return tiers

    def aggregator(self, name: str, exit_name: str, columns: tuple[Column, ...]) -> Tier:
        """The local or edge aggregator: the summaries of ``columns`` to exit ``exit_name``."""
        link = self.SUMMARY_LINKS[name]
        c = self.t.num_classes
        inputs = tuple(
            self.received(f"summary_{k}", (c,), "summary", col.tier, link, k)
            for k, col in enumerate(columns)
        )
        ports = (*inputs, self.presence(columns))
        return Tier(name, name, ports, self.logits(exit_name), self.everyone)

    def edges(self, *, with_summary: bool) -> list[Tier]:
        t, tiers = self.t, []
        for j, group in enumerate(t.edges):
            inputs = tuple(
                self.received(
                    f"features_{d}",
                    t.feature_shape(d),
                    "features",
                    device_tier(d),
                    "device_to_upper",
                    d,
                )
                for d in group
            )
            inputs = (*inputs, self.presence(tuple(self.device_columns[d] for d in group)))
            outputs = self.sent(t.edge_feature_shape(j), with_summary)
            tiers.append(Tier(edge_tier(j), "edge", inputs, outputs, tuple(group), edge=j))
        return tiers

    def cloud(self) -> Tier:
        """The cloud: features from the edges, or straight from the devices."""
        t = self.t
        columns, link = (
            (self.edge_columns, "edge_to_cloud")
            if t.edges
            else (self.device_columns, "device_to_upper")
        )
        inputs = tuple(
            self.received(
                f"features_{k}", t.upstream_feature_shape(k), "features", col.tier, link, k
            )
            for k, col in enumerate(columns)
        )
        ports = (*inputs, self.presence(columns))
        return Tier(CLOUD, "cloud", ports, self.logits("cloud"), self.everyone)
