"""The Topology: one frozen description of a DDNN hierarchy that drives everything.

The model builder, the converter's file list, the manifest, the orchestrator and the
cost formula all read the hierarchy from here; nothing re-derives it from layer names.

The six hierarchies of the paper's Figure 2 map onto it as follows::

    (a) cloud only                   Topology(input_shapes=[s], exits=("cloud",))
    (b) one device + cloud           Topology(input_shapes=[s])
    (c) many devices + cloud         Topology(input_shapes=[s] * 6)
    (d) device + edge + cloud        Topology(input_shapes=[s], edges=[[0]],
                                              exits=("local", "edge", "cloud"))
    (e) many devices + edge + cloud  Topology(input_shapes=[s] * 6, edges=[[0, 1, 2, 3, 4, 5]],
                                              exits=("local", "edge", "cloud"))
    (f) several edges                Topology(input_shapes=[s] * 6, edges=[[0, 1, 2], [3, 4, 5]],
                                              exits=("local", "edge", "cloud"))

In (a) the device sections still exist, but they run in the cloud on raw input.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ddnn_tf.core.files import parse_json, read_json
from ddnn_tf.core.vocab import AGGREGATION_SCHEMES as SCHEMES
from ddnn_tf.core.vocab import CLOUD_PRECISIONS, EXITS, LOCAL_SCHEMES, SENSOR_BITS, SUMMARY_BITS
from ddnn_tf.errors import ConfigError

__all__ = ["CLOUD_PRECISIONS", "EXITS", "LOCAL_SCHEMES", "SCHEMES", "SUMMARY_BITS", "Topology"]


def _is_int(value: Any) -> bool:
    """A true integer: Python or numpy, not a bool, a float or a string of digits."""
    return isinstance(value, (int, np_integer())) and not isinstance(value, bool)


def np_integer() -> tuple[type, ...]:
    """numpy's integer type when numpy is loaded (a Topology never needs to import it)."""
    numpy = sys.modules.get("numpy")
    return (numpy.integer,) if numpy is not None else ()


def _items(value: Any) -> list | None:
    """The items of a list-like value (list, tuple, 1-D array); None for anything else."""
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        return None
    return list(value)


def _as_shape(shape: Any, where: str) -> tuple[int, ...]:
    dims = _items(shape)
    if dims is None or not all(_is_int(d) for d in dims):
        raise ConfigError(f"expected a shape (sequence of ints), got {shape!r}.", argument=where)
    out = tuple(int(d) for d in dims)
    if not 1 <= len(out) <= 3 or any(d < 1 for d in out):
        raise ConfigError(
            f"expected a vector (k,), an image (H, W) or (H, W, C) with positive sizes, got {out}.",
            argument=where,
        )
    return out


@dataclass(frozen=True)
class Topology:
    """A DDNN hierarchy: end devices, optional edges, exits, aggregation and block sizes.

    Args:
        input_shapes: one input shape per end device, without the sample axis: an image
            ``(H, W, C)`` (or ``(H, W)``, a channel is added) runs ConvP blocks, a vector
            ``(k,)`` runs FC blocks. Devices may differ (heterogeneous sensors).
        num_classes: number of classes |C|.
        edges: groups of device indices, one group per edge; empty for no edge. When
            edges exist every device belongs to exactly one.
        exits: the exits, a bottom-to-top subsequence of ``("local", "edge", "cloud")``
            that ends with ``"cloud"``.
        local_agg: how the local aggregator combines device class summaries (and, with
            an edge exit, how the edge aggregator combines the edges' summaries): one of
            :data:`~ddnn_tf.core.vocab.LOCAL_SCHEMES`; ``mlp`` concatenates the summaries
            (a missing one is 0) and the presence mask and runs a ReLU dense layer of
            ``local_units`` and a linear layer to the logits.
        edge_agg: how each edge combines its devices' feature maps.
        cloud_agg: how the cloud combines the feature maps it receives (from the
            devices, or from the edges when there are edges).
        device_filters: filters f of each device ConvP block (the paper's f = 4).
        device_conv_layers: ConvP blocks per device (FC blocks for vector devices).
        device_units: width of device FC blocks for vector devices.
        edge_filters: filters of each edge ConvP block.
        edge_conv_layers: ConvP blocks of each edge.
        cloud_filters: filters of each cloud ConvP block (the paper: 16).
        cloud_conv_layers: ConvP blocks of the cloud (the paper: 2).
        cloud_units: width of the hidden FC layers used where a tier's inputs are vectors.
        local_units: width of the hidden layer of the ``mlp`` summary aggregator.
        device_dropout: training-time probability that a device's messages are dropped
            (its presence set to 0), which teaches the aggregators to survive failed
            devices. 0 reproduces the paper.
        summary_bits: bits per class of a device's summary: 0 sends real values (the
            paper's float32), 4 rounds the exit head's logits to integers in [-8, 7]
            inside the device model (straight-through gradient), sent as ``int4``.
        cloud_precision: ``"binary"`` (the paper's binary blocks) or ``"float"``: on the
            devices' grid (``device_grid``) ``cloud_conv_layers`` conv + batch norm + ReLU +
            2x2 max-pool blocks (``cloud_filters``, doubling each layer) and one ReLU dense
            layer of ``cloud_units``; on concatenated features ``cloud_conv_layers`` ReLU
            dense layers of ``cloud_units``. Either way a dense layer gives the logits.
        device_grid: ``(rows, cols)`` when the devices' image views tile one scene in
            row-major order (fmnist6: ``(3, 2)``): the cloud then lays the received maps
            out in that grid (a missing device's tile is 0), so its convolutions cross
            view borders. Empty: the paper's channel concatenation.
        sensor_bits: 0 feeds each device its sensor values as they are (uint8 pixels
            scaled to [0, 1], the paper's); 8 or 16 quantises real-valued sensors at the
            device to int8 or int16 codes, per channel, with a scale and zero point fitted
            on the training data (:mod:`ddnn_tf.core.sensors`), so the device's arithmetic
            from the sensor on is integer (and its C exact). ``ddnn train`` sets 8 for
            data sets whose sensors are real-valued.

    Raises:
        ValueError: naming the problem, for an invalid hierarchy.

    Example:
        >>> t = Topology(input_shapes=[(10, 14, 1)] * 6, num_classes=10)
        >>> t.num_devices, t.exits
        (6, ('local', 'cloud'))
    """

    input_shapes: tuple[tuple[int, ...], ...]
    num_classes: int
    edges: tuple[tuple[int, ...], ...] = ()
    exits: tuple[str, ...] = ("local", "cloud")
    local_agg: str = "max"
    edge_agg: str = "concat"
    cloud_agg: str = "concat"
    device_filters: int = 4
    device_conv_layers: int = 1
    device_units: int = 16
    edge_filters: int = 16
    edge_conv_layers: int = 1
    cloud_filters: int = 16
    cloud_conv_layers: int = 2
    cloud_units: int = 64
    local_units: int = 64
    device_dropout: float = 0.0
    summary_bits: int = 0
    cloud_precision: str = "binary"
    device_grid: tuple[int, ...] = ()
    sensor_bits: int = 0

    def __post_init__(self) -> None:
        if _items(self.input_shapes) is None:
            raise ConfigError(
                f"expected a list of shapes, one per device, got {self.input_shapes!r}.",
                argument="input_shapes",
            )
        shapes = tuple(_as_shape(s, f"input_shapes[{i}]") for i, s in enumerate(self.input_shapes))
        shapes = tuple(s + (1,) if len(s) == 2 else s for s in shapes)
        object.__setattr__(self, "input_shapes", shapes)
        if _items(self.edges) is None:
            raise ConfigError(
                f"expected a list of device groups, got {self.edges!r}.", argument="edges"
            )
        for j, group in enumerate(self.edges):
            if _items(group) is None or not all(_is_int(d) for d in group):
                raise ConfigError(
                    f"edges[{j}]: expected a list of device indices (ints), got {group!r}."
                )
        edges = tuple(tuple(int(d) for d in group) for group in self.edges)
        object.__setattr__(self, "edges", edges)
        if _items(self.exits) is None:
            raise ConfigError(
                f"expected a list of exit names, got {self.exits!r}.", argument="exits"
            )
        object.__setattr__(self, "exits", tuple(self.exits))
        object.__setattr__(self, "device_grid", tuple(self.device_grid))
        self._validate()
        self._validate_beyond_paper()

    def _validate(self) -> None:
        n = len(self.input_shapes)
        if n == 0:
            raise ConfigError("A topology needs at least one end device; got input_shapes=[].")
        if not _is_int(self.num_classes) or self.num_classes < 2:
            raise ConfigError(f"num_classes must be an integer >= 2, got {self.num_classes!r}.")
        for name, schemes in (
            ("local_agg", LOCAL_SCHEMES),
            ("edge_agg", SCHEMES),
            ("cloud_agg", SCHEMES),
        ):
            if getattr(self, name) not in schemes:
                raise ConfigError(
                    f"Unknown aggregation scheme {name}={getattr(self, name)!r}; "
                    f"expected one of {', '.join(schemes)}.",
                    argument=name,
                )
        for name in (
            "device_filters",
            "device_conv_layers",
            "device_units",
            "edge_filters",
            "edge_conv_layers",
            "cloud_filters",
            "cloud_conv_layers",
            "cloud_units",
            "local_units",
        ):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ConfigError(
                    f"{name} must be a positive integer, got {value!r}.", argument=name
                )
        dropout = self.device_dropout
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)):
            raise ConfigError(f"device_dropout must be a number in [0, 1), got {dropout!r}.")
        if not 0.0 <= float(dropout) < 1.0:  # also refuses NaN
            raise ConfigError(f"device_dropout must be in [0, 1), got {dropout!r}.")
        # Exits.
        unknown = [e for e in self.exits if e not in EXITS]
        if unknown:
            raise ConfigError(f"Unknown exit(s) {unknown}; expected names from {EXITS}.")
        if not self.exits or self.exits[-1] != "cloud":
            raise ConfigError(f"The last exit must be 'cloud'; got exits={self.exits}.")
        if list(self.exits) != sorted(set(self.exits), key=EXITS.index):
            raise ConfigError(
                f"Exits must be distinct and ordered bottom to top (local, edge, cloud); "
                f"got {self.exits}."
            )
        if "edge" in self.exits and not self.edges:
            raise ConfigError(
                "exits include 'edge' but the hierarchy has no edge: give edges=[[device "
                "indices], ...] or drop the 'edge' exit."
            )
        if "local" not in self.exits and "edge" not in self.exits and self.edges:
            raise ConfigError("A hierarchy with edges and only a cloud exit is not supported.")
        # Edges.
        seen: dict[int, int] = {}
        for j, group in enumerate(self.edges):
            if not group:
                raise ConfigError(f"Edge {j} has no device.")
            for d in group:
                if not 0 <= d < n:
                    raise ConfigError(f"Edge {j} names device {d}, but devices are 0..{n - 1}.")
                if d in seen:
                    raise ConfigError(f"Device {d} is in two edges ({seen[d]} and {j}).")
                seen[d] = j
        if self.edges and len(seen) != n:
            missing = sorted(set(range(n)) - set(seen))
            raise ConfigError(
                f"Devices {missing} are in no edge; with edges, every device needs one."
            )
        # Pooling aggregators (max/avg) need equal feature shapes.
        if self.edge_agg != "concat":
            for group in self.edges:
                self._check_equal_shapes("edge_agg", [self.feature_shape(d) for d in group])
        if self.cloud_agg != "concat":
            ups = range(self.num_edges) if self.edges else range(n)
            self._check_equal_shapes("cloud_agg", [self.upstream_feature_shape(k) for k in ups])

    def _validate_beyond_paper(self) -> None:
        if not _is_int(self.sensor_bits) or self.sensor_bits not in SENSOR_BITS:
            raise ConfigError(
                f"sensor_bits must be one of {sorted(SENSOR_BITS)} (0 = sensor values as they "
                f"are; 8 or 16: quantised to int8 or int16 at the device), got "
                f"{self.sensor_bits!r}."
            )
        if self.summary_bits not in SUMMARY_BITS:
            raise ConfigError(
                f"summary_bits must be one of {sorted(SUMMARY_BITS)} (0 = float32 summaries), "
                f"got {self.summary_bits!r}."
            )
        if self.cloud_precision not in CLOUD_PRECISIONS:
            raise ConfigError(
                f"cloud_precision must be one of {', '.join(CLOUD_PRECISIONS)}, "
                f"got {self.cloud_precision!r}."
            )
        if self.device_grid:
            grid = self.device_grid
            if len(grid) != 2 or not all(isinstance(g, int) and g >= 1 for g in grid):
                raise ConfigError(f"device_grid must be [rows, cols] of positive ints, got {grid}.")
            if grid[0] * grid[1] != self.num_devices:
                raise ConfigError(
                    f"device_grid {list(grid)} has {grid[0] * grid[1]} tiles for "
                    f"{self.num_devices} devices."
                )
            if self.edges or self.cloud_agg != "concat":
                raise ConfigError(
                    "device_grid lays the devices' maps out for the cloud: it needs "
                    "cloud_agg='concat' and no edges."
                )
            shapes = [self.feature_shape(d) for d in range(self.num_devices)]
            if not spatially_compatible(shapes) or len(set(shapes)) != 1:
                raise ConfigError(
                    f"device_grid needs equal image feature maps on every device, got "
                    f"{sorted(set(shapes))}."
                )

    def _check_equal_shapes(self, name: str, shapes: list[tuple[int, ...]]) -> None:
        if len(set(shapes)) > 1:
            raise ConfigError(
                f"{name}={getattr(self, name)!r} needs equal feature shapes, got "
                f"{sorted(set(shapes))}; use 'concat' for heterogeneous devices."
            )

    # ----------------------------------------------------------------- derived facts
    @property
    def num_devices(self) -> int:
        return len(self.input_shapes)

    @property
    def num_edges(self) -> int:
        return len(self.edges)

    @property
    def has_local(self) -> bool:
        return "local" in self.exits

    @property
    def has_edge_exit(self) -> bool:
        return "edge" in self.exits

    def is_image(self, device: int) -> bool:
        return len(self.input_shapes[device]) == 3

    def feature_shape(self, device: int) -> tuple[int, ...]:
        """Shape of the binary feature map device ``device`` sends upward."""
        shape = self.input_shapes[device]
        if len(shape) == 3:
            h, w = shape[0], shape[1]
            for _ in range(self.device_conv_layers):
                h, w = math.ceil(h / 2), math.ceil(w / 2)
            return (h, w, self.device_filters)
        return (self.device_units,)

    def edge_feature_shape(self, edge: int) -> tuple[int, ...]:
        """Shape of the binary feature map edge ``edge`` sends to the cloud."""
        shapes = [self.feature_shape(d) for d in self.edges[edge]]
        if spatially_compatible(shapes):
            return (*shapes[0][:2], self.edge_filters)
        return (self.cloud_units,)

    def upstream_feature_shape(self, k: int) -> tuple[int, ...]:
        """Feature shape of the k-th input of the cloud (an edge or a device)."""
        return self.edge_feature_shape(k) if self.edges else self.feature_shape(k)

    @property
    def summary_encoding(self) -> str:
        """Wire encoding of the devices' class summaries (``comm.SUMMARY_ENCODINGS``)."""
        return SUMMARY_BITS[self.summary_bits]

    # ------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["input_shapes"] = [list(s) for s in self.input_shapes]
        d["edges"] = [list(g) for g in self.edges]
        d["exits"] = list(self.exits)
        d["device_grid"] = list(self.device_grid)
        if not self.sensor_bits:  # written only when set: older manifests stay as they were
            del d["sensor_bits"]
        return d

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Topology:
        if not isinstance(data, dict):
            raise ConfigError(f"A topology must be a JSON object, got {type(data).__name__}.")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"Unknown topology key(s) {unknown}; known keys: {sorted(known)}.")
        missing = [k for k in ("input_shapes", "num_classes") if k not in data]
        if missing:
            raise ConfigError(f"Topology is missing required key(s) {missing}.")
        return cls(**data)

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> Topology:
        """Parse a JSON string, or read a ``.json`` file when given a path."""
        text = str(text_or_path)
        if isinstance(text_or_path, Path) or not text.lstrip().startswith("{"):
            path = Path(text_or_path)
            if not path.is_file():
                raise FileNotFoundError(f"Topology file not found: {path}")
            return cls.from_dict(read_json(path))
        return cls.from_dict(parse_json(text, "The topology"))

    def replace(self, **changes: Any) -> Topology:
        return dataclasses.replace(self, **changes)


def spatially_compatible(shapes: Sequence[tuple[int, ...]]) -> bool:
    """True when every shape is an image map with the same height and width."""
    return all(len(s) == 3 for s in shapes) and len({s[:2] for s in shapes}) == 1
