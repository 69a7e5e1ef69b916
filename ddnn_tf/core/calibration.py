"""Exit-threshold calibration rules, and what each one certifies.

Four rules pick the exit thresholds on a validation split (the grid 0.0, 0.1, ..., 1.0):

* ``risk:DELTA[,EPS]`` (the ``default`` and ``best`` presets', ``risk:0.5``): the
  thresholds exiting the most samples early whose accuracy drop against the top exit is
  at most DELTA points with probability at least 1 - EPS (EPS 0.1 unless given) over the
  draw of the validation split: Learn-then-Test (Angelopoulos et al., 2021), as CALM
  (Schuster et al., 2022) applies it to early exits; see :func:`calibrate`.
* ``within:D``: the T exiting the most samples early within D points of the best
  validation accuracy (no guarantee: on a small split D chases noise);
* ``accuracy``: the most accurate T;
* ``bytes:B``: the most accurate T within B bytes per device per sample.

Every rule returns a :class:`Calibration`: the thresholds with the rule, the validation
size and, for ``risk``, the bound it certifies; runs, manifests and reports record it.

numpy and the standard library only (with :mod:`ddnn_tf.core.exits` and
:mod:`ddnn_tf.core.comm`): the Keras training, the evaluation and the TensorFlow-free
runtime share it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np

from ddnn_tf.core.cost.traffic import hierarchy_bytes
from ddnn_tf.core.exits import (
    DEFAULT_THRESHOLD_GRID,
    exit_points,
    predictions,
    search_threshold,
    threshold_sweep,
)
from ddnn_tf.core.topology import Topology
from ddnn_tf.errors import ConfigError

__all__ = [
    "DEFAULT_RISK_EPS",
    "DEFAULT_WITHIN_POINTS",
    "Calibration",
    "Rule",
    "applied_record",
    "binomial_cdf",
    "calibrate",
    "min_certifiable_delta",
    "parse_calibrate",
    "threshold_path",
]

#: Accuracy (in points) the ``within`` rule may give up for early exits, by default.
DEFAULT_WITHIN_POINTS = 0.25
#: Probability that the ``risk`` rule's bound fails, unless the rule names one.
DEFAULT_RISK_EPS = 0.1


class Rule(NamedTuple):
    """A parsed calibration rule.

    Attributes:
        kind: one of :data:`~ddnn_tf.core.vocab.CALIBRATION_RULES`.
        value: D points (``within``), B bytes (``bytes``), DELTA points (``risk``); None
            for ``accuracy``.
        eps: ``risk``'s EPS; None for the other rules.
    """

    kind: str
    value: float | None
    eps: float | None = None

    @property
    def text(self) -> str:
        """The rule written out in full: ``risk:0.5,0.1``, ``within:0.25``, ``accuracy``.

        Example:
            >>> parse_calibrate("risk:0.5").text, parse_calibrate("within").text
            ('risk:0.5,0.1', 'within:0.25')
        """
        if self.kind == "accuracy":
            return "accuracy"
        text = f"{self.kind}:{self.value:g}"
        return f"{text},{self.eps:g}" if self.kind == "risk" else text


def _finite(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_calibrate(rule: str) -> Rule:
    """Parse a calibration rule.

    Args:
        rule: ``"risk:DELTA[,EPS]"`` (DELTA in (0, 100) accuracy points, EPS in (0, 1),
            by default :data:`DEFAULT_RISK_EPS`), ``"within:D"`` (D in [0, 100] points;
            ``"within"`` alone is ``within:0.25``), ``"accuracy"`` or ``"bytes:B"``
            (B > 0 bytes per device per sample).

    Returns:
        The :class:`Rule`.

    Raises:
        ConfigError: any other rule.

    Example:
        >>> parse_calibrate("risk:0.5"), parse_calibrate("risk:1,0.05")
        (Rule(kind='risk', value=0.5, eps=0.1), Rule(kind='risk', value=1.0, eps=0.05))
        >>> parse_calibrate("within:0.25"), parse_calibrate("bytes:20")
        (Rule(kind='within', value=0.25, eps=None), Rule(kind='bytes', value=20.0, eps=None))
        >>> parse_calibrate("accuracy").kind, parse_calibrate("within").value
        ('accuracy', 0.25)
    """
    text = str(rule).strip()
    kind, sep, arg = text.partition(":")
    if text == "accuracy":
        return Rule("accuracy", None)
    if text == "within":
        return Rule("within", DEFAULT_WITHIN_POINTS)
    if kind == "risk" and sep:
        delta_text, comma, eps_text = arg.partition(",")
        delta = _finite(delta_text)
        eps = _finite(eps_text) if comma else DEFAULT_RISK_EPS
        if delta is not None and eps is not None and 0 < delta < 100 and 0 < eps < 1:
            return Rule("risk", delta, eps)
    value = _finite(arg) if sep else None
    if value is not None and kind == "bytes" and value > 0:
        return Rule("bytes", value)
    if value is not None and kind == "within" and 0 <= value <= 100:
        return Rule("within", value)
    raise ConfigError(
        f"expected 'risk:DELTA[,EPS]' (DELTA from 0 to 100 accuracy points, EPS from 0 to 1, "
        f"e.g. risk:0.5 or risk:0.5,0.1), 'within:D' (D from 0 to 100 accuracy points, e.g. "
        f"within:0.25), 'accuracy' or 'bytes:B' (B > 0 bytes per device per sample, e.g. "
        f"bytes:20), got {rule!r}.",
        argument="calibrate",
    )


# --------------------------------------------------------------------------- the record


@dataclass(frozen=True)
class Calibration:
    """The thresholds a rule picked, and what they come with.

    Attributes:
        rule: the rule written out in full (:attr:`Rule.text`).
        thresholds: ``{exit: T}`` of every early exit.
        n_val: validation samples it was calibrated on.
        delta / eps: ``risk``'s DELTA (points) and EPS; None for the other rules.
        certified: ``risk``: True when a threshold passed the test (the drop bound
            holds with probability at least 1 - eps); None for the other rules.
        bound: the accuracy drop (points) certified with probability at least 1 - eps:
            ``delta`` when certified, else None (and for the other rules).
        val_risk: ``risk``: the validation rate (points) of samples the chosen
            thresholds get wrong where the top exit is right.
        min_delta: ``risk``: the smallest DELTA (points) ``n_val`` samples can certify
            at ``eps`` at all (:func:`min_certifiable_delta`).
        note: ``risk``: one line saying why nothing was certified; None otherwise.
    """

    rule: str
    thresholds: dict[str, float]
    n_val: int
    delta: float | None = None
    eps: float | None = None
    certified: bool | None = None
    bound: float | None = None
    val_risk: float | None = None
    min_delta: float | None = None
    note: str | None = None

    @property
    def threshold(self) -> float:
        """The first (lowest) early exit's threshold."""
        return next(iter(self.thresholds.values()))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able copy (``calibration.json``, the manifest's ``calibration``)."""
        return {**asdict(self), "thresholds": dict(self.thresholds)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        """The inverse of :meth:`to_dict` (the document validated by its schema first)."""
        return cls(**{**data, "thresholds": dict(data["thresholds"])})

    def describe(self) -> str:
        """One line for reports: the rule, the validation size and what is certified.

        Example:
            >>> Calibration("risk:0.5,0.1", {"local": 0.2}, 6000, 0.5, 0.1, True, 0.5,
            ...             0.37, 0.04).describe()
            'risk:0.5,0.1 on 6000 validation samples: drop vs. all-cloud <= 0.50 points with probability >= 0.90'
        """
        where = f"{self.rule} on {self.n_val} validation samples"
        if self.delta is None:
            return f"{where} (no certified bound; risk:DELTA certifies one)"
        if self.certified:
            return (
                f"{where}: drop vs. all-cloud <= {self.bound:.2f} points with probability "
                f">= {1 - self.eps:.2f}"
            )
        return f"{where}: nothing certified ({self.note})"


def applied_record(
    calibration: Calibration | None, thresholds: Mapping[str, float]
) -> dict[str, Any] | None:
    """A report's ``calibration``: the record when the report used its thresholds, else
    None (thresholds given by hand certify nothing).

    Example:
        >>> c = Calibration("accuracy", {"local": 0.1}, 100)
        >>> applied_record(c, {"local": 0.1})["rule"], applied_record(c, {"local": 0.3})
        ('accuracy', None)
    """
    if calibration is None or dict(calibration.thresholds) != dict(thresholds):
        return None
    return calibration.to_dict()


# --------------------------------------------------------------------------- the risk rule


def binomial_cdf(k: int, n: int, p: float) -> float:
    """``P(X <= k)`` for ``X ~ Binomial(n, p)``, exactly up to float64 rounding.

    The terms are summed in log space (each from the previous one by the ratio
    ``(n - i) / (i + 1) * p / (1 - p)``), so large ``n`` neither overflows nor underflows.

    Args:
        k: successes; below 0 gives 0, ``n`` or more gives 1.
        n: trials (>= 0).
        p: success probability in [0, 1].

    Returns:
        The probability.

    Example:
        >>> binomial_cdf(0, 10, 0.5) == 0.5**10, round(binomial_cdf(22, 6000, 0.005), 4)
        (True, 0.08)
    """
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    i = np.arange(k, dtype=np.float64)
    steps = np.log((n - i) / (i + 1.0)) + math.log(p) - math.log1p(-p)
    logs = n * math.log1p(-p) + np.concatenate([[0.0], np.cumsum(steps)])
    top = float(logs.max())
    return min(1.0, math.exp(top) * float(np.exp(logs - top).sum()))


def min_certifiable_delta(n: int, eps: float) -> float:
    """The smallest drop (points) ``n`` validation samples can certify at ``eps``.

    Even with no sample lost, the binomial test rejects "the drop exceeds delta" only
    when ``(1 - delta) ** n <= eps``, so nothing below ``1 - eps ** (1 / n)`` is
    certifiable (about ``100 * ln(1 / eps) / n`` points).

    Example:
        >>> [round(min_certifiable_delta(n, 0.1), 2) for n in (200, 500, 2000, 6000)]
        [1.14, 0.46, 0.12, 0.04]
    """
    if n <= 0:
        return 100.0
    return 100.0 * (1.0 - eps ** (1.0 / n))


def threshold_path(
    early_exits: Sequence[str], grid: Sequence[float] = DEFAULT_THRESHOLD_GRID
) -> list[dict[str, float]]:
    """Threshold vectors from the most conservative (all 0) to the most aggressive.

    With one early exit the path is the grid. With several, it climbs a staircase: each
    step raises one exit's threshold to the next grid value, the top early exit (the
    edge, whose answers are closer to the cloud's) before the ones below it.

    Example:
        >>> threshold_path(["local", "edge"], [0.0, 0.5, 1.0])[:3]
        [{'local': 0.0, 'edge': 0.0}, {'local': 0.0, 'edge': 0.5}, {'local': 0.5, 'edge': 0.5}]
    """
    early = list(early_exits)
    values = [float(g) for g in sorted(grid)]
    point = {e: values[0] for e in early}
    path = [dict(point)]
    for value in values[1:]:
        for e in reversed(early):
            point[e] = value
            path.append(dict(point))
    return path


def _risk(probs: Mapping[str, np.ndarray], labels: np.ndarray, rule: Rule) -> Calibration:
    names = list(probs)
    arrays = [np.asarray(probs[e]) for e in names]
    y = np.asarray(labels)
    n = len(y)
    delta, eps = rule.value / 100.0, rule.eps
    floor = min_certifiable_delta(n, eps)
    top_right = np.argmax(arrays[-1], axis=1) == y
    path = threshold_path(names[:-1])
    chosen, losses = path[0], None
    for point in path:
        index = exit_points(arrays, [point[e] for e in names[:-1]])
        lost = int(np.count_nonzero((predictions(arrays, index) != y) & top_right))
        if binomial_cdf(lost, n, delta) > eps:
            break  # fixed-sequence testing stops at the first hypothesis it keeps
        chosen, losses = point, lost
    record = dict(rule=rule.text, thresholds=chosen, n_val=n, delta=rule.value, eps=eps)
    if losses is not None:
        return Calibration(
            **record,
            certified=True,
            bound=rule.value,
            val_risk=100.0 * losses / n,
            min_delta=floor,
        )
    if rule.value < floor:
        note = (
            f"{n} validation samples cannot certify a drop under {floor:.2f} points at "
            f"eps = {eps:g}; T falls back to the most conservative threshold"
        )
    else:
        note = "even the most conservative threshold failed the test; T falls back to it"
    index = exit_points(arrays, [chosen[e] for e in names[:-1]])
    lost = int(np.count_nonzero((predictions(arrays, index) != y) & top_right))
    return Calibration(
        **record,
        certified=False,
        val_risk=100.0 * lost / n if n else 0.0,
        min_delta=floor,
        note=note,
    )


def calibrate(
    probs: Mapping[str, np.ndarray],
    labels: np.ndarray,
    topology: Topology,
    rule: str = "accuracy",
    *,
    raw_bytes_per_device=None,
) -> Calibration:
    """The exit thresholds a calibration rule picks on validation probabilities.

    ``risk:DELTA[,EPS]``, Learn-then-Test with fixed-sequence testing: along
    :func:`threshold_path` (T = 0 upwards on the default grid), test at each point the
    hypothesis "the risk exceeds DELTA" and stop at the first one the test keeps; the
    chosen thresholds are the last point rejected. The per-sample loss is "wrong at
    these thresholds where the top exit is right", a 0/1 loss, so the number of losses
    among n independent validation samples is binomial and its tail,
    :func:`binomial_cdf`, is an exact p-value (no normal approximation). Its risk bounds
    the accuracy drop: drop = P(top right) - P(right at T) = P(top right, wrong at T) -
    P(top wrong, right at T) <= P(top right, wrong at T) = risk. Fixed-sequence testing
    controls the family-wise error at EPS without any correction, so with probability at
    least 1 - EPS over the draw of the validation split, the chosen thresholds' expected
    drop on new data from the same distribution is at most DELTA points. When no point
    passes (too few samples: fewer than :func:`min_certifiable_delta` allows), the rule
    keeps the most conservative point (all thresholds 0) and says why in ``note``.

    ``within:D``: among the T whose validation accuracy is within D points of the best
    one, the T exiting the most samples early (ties to the larger T). (A finer grid exits
    a few more samples early but follows the validation split's noise: on fmnist6 it lost
    up to 0.31 points of test accuracy against the all-cloud accuracy where the 0.1 grid
    lost at most 0.16.) ``accuracy``: the most accurate T (ties to the larger T).
    ``bytes:B``: the most accurate T whose expected bytes per device (summary + features
    of the samples that did not exit) are at most B; when no T fits, the cheapest one.
    These three give every early exit the same T.

    Args:
        probs: exit name -> (N, |C|) probabilities, bottom to top (e.g. from
            ``ddnn_tf.keras.train.predict_exits``, or a hierarchy's all-exits run, on the
            validation split).
        labels: (N,) labels.
        topology: the hierarchy (its wire sizes give the bytes).
        rule: a rule :func:`parse_calibrate` reads.
        raw_bytes_per_device: raw input bytes per device (only raw offload uses them).

    Returns:
        The :class:`Calibration`.

    Raises:
        ConfigError: an invalid rule.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> y = rng.integers(0, 2, 4000)
        >>> cloud = np.eye(2)[y] * 0.8 + 0.1                  # always right
        >>> sure = rng.random(4000) < 0.6                      # the local exit is sure of these
        >>> local = np.where(sure[:, None], np.eye(2)[y], 0.5)  # and unsure of the others
        >>> t = Topology(input_shapes=[(4,)], num_classes=2)
        >>> c = calibrate({"local": local, "cloud": cloud}, y, t, "risk:0.5")
        >>> c.thresholds, c.certified, c.bound
        ({'local': 0.9}, True, 0.5)
    """
    parsed = parse_calibrate(rule)
    kind, value = parsed.kind, parsed.value
    early = list(probs)[:-1]
    n = len(labels)

    def same(t: float) -> Calibration:
        return Calibration(parsed.text, {e: float(t) for e in early}, n)

    if kind == "risk":
        return _risk(probs, labels, parsed)
    if kind == "accuracy":
        return same(search_threshold(probs, labels))
    if kind == "within":
        return same(search_threshold(probs, labels, margin=value / 100.0))
    raw = list(raw_bytes_per_device or [0] * topology.num_devices)

    def cost(fractions):
        return hierarchy_bytes(
            topology,
            fractions,
            raw_bytes_per_device=raw,
            summary_encoding=topology.summary_encoding,
        )["bytes_per_device"]

    rows = threshold_sweep(probs, labels, bytes_fn=cost)
    fitting = [r for r in rows if r["bytes_per_device"] <= value + 1e-9]
    if not fitting:
        return same(min(rows, key=lambda r: (r["bytes_per_device"], -r["threshold"]))["threshold"])
    return same(max(fitting, key=lambda r: (r["accuracy_overall"], r["threshold"]))["threshold"])
