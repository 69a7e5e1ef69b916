"""Which tier binaries a split produces, and how their named tensors are wired."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ddnn_tf.topology import Topology

__all__ = ["SPLITS", "Port", "TierPlan", "check_split", "feed_tier", "plan_tiers"]

#: The splits ``--split`` accepts, as exits bottom to top.
SPLITS = (("cloud",), ("local", "cloud"), ("edge", "cloud"), ("local", "edge", "cloud"))


@dataclass(frozen=True)
class Port:
    """One named input or output tensor of a tier.

    Attributes:
        name: the signature name (``image``, ``summary_3``, ``presence``, ``logits`` ...).
        shape: shape of one sample (without the batch dimension).
        role: ``sensor``, ``summary``, ``features``, ``presence`` or ``logits``.
        info: extra manifest fields: ``from`` (the producing tier and output), ``device``
            (a sensor's device), ``columns`` (a presence mask's tiers), ``exit``.
    """

    name: str
    shape: tuple[int, ...]
    role: str
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The manifest entry: ``{name, shape (with batch 1), dtype, role, **info}``."""
        return {
            "name": self.name,
            "shape": [1, *self.shape],
            "dtype": "float32",
            "role": self.role,
            **self.info,
        }


@dataclass(frozen=True)
class TierPlan:
    """What one tier binary takes and gives.

    Attributes:
        name: tier name (also the file stem): ``device_0``, ``local_aggregator`` ...
        role: one of :data:`ddnn_tf.manifest.ROLES`.
        inputs / outputs: the tensors, in the Keras tier model's order.
        device / edge: index of the device or edge, where relevant.
        composed: the configuration (a) cloud, which runs the device sections too.
    """

    name: str
    role: str
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    device: int | None = None
    edge: int | None = None
    composed: bool = False


def _parse_split(split: Any) -> tuple[str, ...]:
    if isinstance(split, str):
        parts = tuple(p.strip() for p in split.split(",") if p.strip())
    elif isinstance(split, (list, tuple)):
        parts = tuple(str(p).strip() for p in split)
    else:
        parts = (repr(split),)
    if parts not in SPLITS:
        choices = " / ".join(",".join(s) for s in SPLITS)
        raise ValueError(
            f"Expected `--split` to be one of {choices}. Received --split={','.join(parts)}."
        )
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
        raise ValueError(
            f"--split {','.join(parts)} needs the exit(s) {missing}, but the model has exits "
            f"{','.join(topology.exits)} and {edges}. Splits this model can provide: "
            f"{' / '.join(possible)}."
        )
    return parts


def plan_tiers(topology: Topology, split: Any = None) -> list[TierPlan]:
    """The tiers of ``split``, bottom to top, with their named inputs and outputs.

    Args:
        topology: the trained hierarchy.
        split: as :func:`check_split`.

    Returns:
        One :class:`TierPlan` per binary to write (per target).

    Raises:
        ValueError: as :func:`check_split`.
    """
    t = topology
    split = check_split(t, split)
    c, n = t.num_classes, t.num_devices
    devices = [f"device_{i}" for i in range(n)]
    edges = [f"edge_{j}" for j in range(t.num_edges)]

    def logits(exit_name: str) -> tuple[Port, ...]:
        return (Port("logits", (c,), "logits", {"exit": exit_name}),)

    def presence(columns: list[str]) -> Port:
        return Port("presence", (len(columns),), "presence", {"columns": columns})

    def fed(name: str, shape, role: str, tier: str) -> Port:
        return Port(name, tuple(shape), role, {"from": {"tier": tier, "output": role}})

    def sent(shape, with_summary: bool) -> tuple[Port, ...]:
        features = Port("features", tuple(shape), "features")
        return (features, Port("summary", (c,), "summary")) if with_summary else (features,)

    if split == ("cloud",):
        inputs = tuple(
            Port(f"input_{i}", t.input_shapes[i], "sensor", {"device": i}) for i in range(n)
        )
        return [
            TierPlan("cloud", "cloud", (*inputs, presence(devices)), logits("cloud"), composed=True)
        ]

    plans = []
    local, edge_exit = "local" in split, "edge" in split
    for i in range(n):
        sensor = "image" if t.is_image(i) else "vector"
        inputs = (Port(sensor, t.input_shapes[i], "sensor", {"device": i}),)
        outputs = sent(t.feature_shape(i), local)
        plans.append(TierPlan(devices[i], "device", inputs, outputs, device=i))
    if local:
        inputs = tuple(fed(f"summary_{i}", (c,), "summary", devices[i]) for i in range(n))
        plans.append(
            TierPlan(
                "local_aggregator",
                "local_aggregator",
                (*inputs, presence(devices)),
                logits("local"),
            )
        )
    for j, group in enumerate(t.edges):
        inputs = tuple(
            fed(f"features_{d}", t.feature_shape(d), "features", devices[d]) for d in group
        )
        inputs = (*inputs, presence([devices[d] for d in group]))
        outputs = sent(t.edge_feature_shape(j), edge_exit)
        plans.append(TierPlan(edges[j], "edge", inputs, outputs, edge=j))
    if edge_exit:
        inputs = tuple(fed(f"summary_{j}", (c,), "summary", edge) for j, edge in enumerate(edges))
        plans.append(
            TierPlan(
                "edge_aggregator", "edge_aggregator", (*inputs, presence(edges)), logits("edge")
            )
        )
    senders = edges if t.edges else devices
    inputs = tuple(
        fed(f"features_{k}", t.upstream_feature_shape(k), "features", sender)
        for k, sender in enumerate(senders)
    )
    plans.append(TierPlan("cloud", "cloud", (*inputs, presence(senders)), logits("cloud")))
    return plans


def _presence_columns(topology: Topology, columns: list[str], presence: np.ndarray) -> np.ndarray:
    cols = []
    for name in columns:
        kind, index = name.rsplit("_", 1)
        if kind == "device":
            cols.append(presence[:, int(index)])
        else:  # an edge arrives when any of its devices did
            cols.append(presence[:, list(topology.edges[int(index)])].max(axis=1))
    return np.stack(cols, axis=1).astype(np.float32)


def feed_tier(
    topology: Topology,
    plan: TierPlan,
    xs: list[np.ndarray],
    presence: np.ndarray,
    outputs: dict[str, dict[str, np.ndarray]],
) -> dict[str, np.ndarray]:
    """The inputs of ``plan``: sensors, a presence mask, or lower tiers' outputs.

    Args:
        topology: the trained hierarchy.
        plan: the tier to feed.
        xs: one ``(N, ...)`` array per device.
        presence: ``(N, D)`` 0/1 device presence.
        outputs: ``{tier name: {output name: (N, ...) array}}`` of the tiers below.

    Returns:
        ``{input name: (N, ...) array}``.
    """
    feed = {}
    for port in plan.inputs:
        if port.role == "sensor":
            feed[port.name] = xs[port.info["device"]]
        elif port.role == "presence":
            feed[port.name] = _presence_columns(topology, port.info["columns"], presence)
        else:
            src = port.info["from"]
            feed[port.name] = outputs[src["tier"]][src["output"]]
    return feed
