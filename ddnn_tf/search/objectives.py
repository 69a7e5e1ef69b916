"""What a search optimises and what it requires: metrics, objectives and limits, by name.

Every trial measures a dict of metrics, keyed as the ``--json`` output names them
(``accuracy``, ``bytes_per_device``, ``flash_bytes``, ``ram_bytes``, and, priced by the
cost model, ``energy_uj_per_sample`` and ``latency_p95_ms``). An objective is a metric
with a direction; a limit is a metric with a bound. Both are chosen by name, so a metric
that a new source measures plugs in by adding one :class:`Metric`.

Standard library only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ddnn_tf.errors import ConfigError

__all__ = [
    "DEFAULT_OBJECTIVES",
    "METRICS",
    "PRICED_OBJECTIVES",
    "RATE",
    "Limit",
    "Metric",
    "dominates",
    "parse_objectives",
    "violations",
]


@dataclass(frozen=True)
class Metric:
    """A measured figure of a trial.

    Attributes:
        name: its name in ``--objectives``.
        key: its key in a trial's metrics and in the JSON output.
        direction: ``"maximize"`` or ``"minimize"``.
        label: what it is, in words (the table's and the plot's axis).
        unit: its unit (``B``, ``uJ``, ``ms``; empty for a fraction).
        source: what measures it: ``"validation"`` (the trained model on the validation
            split), ``"compiled C"`` (the device tiers' object files) or ``"cost model"``.
    """

    name: str
    key: str
    direction: str
    label: str
    unit: str
    source: str

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    def amount(self, value: float) -> str:
        """``value`` with the unit: bytes as integers with separators, the rest to 4 digits."""
        text = f"{value:,.0f}" if self.unit == "B" else f"{value:,.4g}"
        return f"{text} {self.unit}" if self.unit else text


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("accuracy", "accuracy", "maximize", "validation accuracy", "", "validation"),
        Metric(
            "bytes",
            "bytes_per_device",
            "minimize",
            "bytes per device per sample",
            "B",
            "validation",
        ),
        Metric("flash", "flash_bytes", "minimize", "flash per device tier", "B", "compiled C"),
        Metric("ram", "ram_bytes", "minimize", "RAM per device tier", "B", "compiled C"),
        Metric(
            "energy",
            "energy_uj_per_sample",
            "minimize",
            "energy per device per sample",
            "uJ",
            "cost model",
        ),
        Metric("latency", "latency_p95_ms", "minimize", "p95 latency", "ms", "cost model"),
    )
}
#: The highest sample rate a trial's radio carries: bounded below by the rate asked for
#: (a limit every priced search has), never an objective.
RATE = Metric("max_rate", "max_rate_hz", "maximize", "highest sample rate", "Hz", "cost model")
#: The objectives of a search unless ``objectives`` says otherwise: without and with a
#: radio to price the trials on.
DEFAULT_OBJECTIVES = ("accuracy", "bytes")
PRICED_OBJECTIVES = ("accuracy", "energy")


@dataclass(frozen=True)
class Limit:
    """A bound on one metric: ``metric <= value`` (``maximum``) or ``>= value``.

    Attributes:
        metric: the :class:`Metric`.
        value: the bound.
        maximum: True for an upper bound.
        argument: the parameter that set it (``max_flash``), for messages.
    """

    metric: Metric
    value: float
    maximum: bool
    argument: str

    def excess(self, measured: float) -> float:
        """How far ``measured`` is past the bound (> 0: violated, <= 0: met)."""
        return measured - self.value if self.maximum else self.value - measured

    def describe(self) -> str:
        unit = f" {self.metric.unit}" if self.metric.unit else ""
        return f"{self.metric.key} {'<=' if self.maximum else '>='} {self.value:g}{unit}"

    def miss(self, measured: float) -> str:
        """How far ``measured`` misses the limit, in words (``3 B over``, ``0.5 Hz short``)."""
        return f"{self.metric.amount(self.excess(measured))} {'over' if self.maximum else 'short'}"

    def bound_text(self, bound: float) -> str:
        """Why a configuration whose least (or, for a lower bound, greatest) possible value
        is ``bound`` cannot meet the limit."""
        m, most = self.metric, self.maximum
        least, over = ("at least", ">") if most else ("at most", "<")
        return f"{m.label} {least} {m.amount(bound)} {over} {m.amount(self.value)}"


def parse_objectives(names: Iterable[str]) -> tuple[Metric, ...]:
    """The objectives named, in order.

    Args:
        names: metric names (``accuracy``, ``bytes``, ``energy``, ...).

    Raises:
        ConfigError: an unknown or repeated name, or none.
    """
    names = [str(n).strip() for n in names]
    known = METRICS
    bad = [n for n in names if n not in known]
    if bad or not names:
        raise ConfigError(
            f"expected a comma-separated list of {', '.join(known)}; got "
            f"{', '.join(names) or 'none'}.",
            argument="objectives",
        )
    if len(set(names)) != len(names):
        raise ConfigError(f"names an objective twice: {', '.join(names)}.", argument="objectives")
    return tuple(known[n] for n in names)


def violations(metrics: Mapping[str, float], limits: Sequence[Limit]) -> dict[str, float]:
    """``{metric key: excess}`` of every limit (> 0 where it is violated)."""
    return {lim.metric.key: lim.excess(metrics[lim.metric.key]) for lim in limits}


def dominates(a: Mapping[str, float], b: Mapping[str, float], objectives: Sequence[Metric]) -> bool:
    """Whether metrics ``a`` are at least as good as ``b`` on every objective and better on
    one (Pareto dominance).

    Example:
        >>> acc, size = METRICS["accuracy"], METRICS["bytes"]
        >>> dominates({"accuracy": 0.9, "bytes_per_device": 8},
        ...           {"accuracy": 0.9, "bytes_per_device": 9}, [acc, size])
        True
    """
    better = False
    for m in objectives:
        x, y = a[m.key], b[m.key]
        if (x < y) if m.maximize else (x > y):
            return False
        better = better or x != y
    return better
