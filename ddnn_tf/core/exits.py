"""Exit decisions of a DDNN: normalized entropy, exits, accuracies, threshold search.

A DDNN has an ordered list of exits, bottom to top (for example ``("local", "cloud")``
or ``("local", "edge", "cloud")``). Each exit gives per-sample class probabilities of
shape ``(N, C)``. Following Sec. III-D of the paper, a sample leaves the network at the
*first* exit whose normalized entropy

    eta(p) = -sum_i p_i log p_i / log |C|

is ``<= T`` for that exit's threshold ``T``; the last exit always classifies, so its
threshold is ignored. ``eta`` lies in ``[0, 1]``: ``T = 0`` exits only samples that are
exactly certain (a one-hot probability vector), ``T = 1`` exits every sample at the first
exit.

Samples may be *unclassified*, when every end device that sees them has failed. The
caller marks the others with a ``valid`` boolean mask; invalid samples get exit index
``-1``, predicted class ``-1``, count as wrong in every accuracy and are reported as the
``"unclassified"`` exit fraction. Their probability rows may hold NaN: nothing here warns
or fails on them.

The module imports numpy and the standard library only, so that the device-side runtime
can use the very same exit logic as the Keras evaluation and the experiments.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ddnn_tf.errors import ConfigError

__all__ = [
    "PAPER_THRESHOLD",
    "DEFAULT_THRESHOLD_GRID",
    "ExitReport",
    "evaluate_exits",
    "check_threshold",
    "exit_points",
    "exits_here",
    "normalized_entropy",
    "predictions",
    "resolve_thresholds",
    "search_threshold",
    "softmax",
    "threshold_sweep",
]

#: The local exit threshold used throughout the paper's evaluation (Sec. IV-D, Table II).
PAPER_THRESHOLD = 0.8

#: Thresholds 0.0, 0.1, ..., 1.0: a superset of the ``T`` column of Table II.
DEFAULT_THRESHOLD_GRID: tuple[float, ...] = tuple(
    float(t) for t in np.round(np.arange(0.0, 1.0001, 0.1), 2)
)

# Keys of ExitReport.accuracy / exit_fraction that are not exit names.
_RESERVED_NAMES = ("overall", "unclassified")
# Accuracies are ratios of sample counts; differences below this are ties.
_TIE_TOL = 1e-12


# --------------------------------------------------------------------------- primitives


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis.

    Args:
        logits: array of shape ``(..., C)``; rows may contain NaN (the row stays NaN).

    Returns:
        float64 array of the same shape whose rows sum to 1.

    Example:
        >>> softmax(np.array([[0.0, 0.0], [1000.0, 0.0]])).round(3).tolist()
        [[0.5, 0.5], [1.0, 0.0]]
    """
    x = np.asarray(logits, dtype=np.float64)
    if x.ndim == 0:
        raise ConfigError(
            f"Expected `logits` with at least one axis (..., C). Received a scalar: {x!r}."
        )
    peak = np.max(x, axis=-1, keepdims=True)
    if not np.isfinite(peak).all():  # NaN or inf rows: the same arithmetic, quietly
        with np.errstate(invalid="ignore", over="ignore"):
            e = np.exp(x - peak)
            return e / np.sum(e, axis=-1, keepdims=True)
    e = np.exp(x - peak)
    return e / np.sum(e, axis=-1, keepdims=True)


def normalized_entropy(probs: np.ndarray) -> np.ndarray:
    """Normalized entropy ``eta = -sum p log p / log |C|`` of each probability row.

    ``0 * log 0`` is taken as 0; tiny negative (or just-above-one) probabilities from
    rounding are clipped into ``[0, 1]`` and so is the result. With a single class
    (``C == 1``) every row is certain and ``eta`` is 0. Rows holding NaN give NaN,
    without a warning.

    Args:
        probs: array of shape ``(..., C)`` whose rows are probability vectors.

    Returns:
        float64 array of shape ``(...)`` with values in ``[0, 1]`` (or NaN).

    Raises:
        ValueError: if ``probs`` is a scalar or has no classes.

    Example:
        >>> normalized_entropy(np.array([[0.5, 0.5], [1.0, 0.0]])).tolist()
        [1.0, 0.0]
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim == 0 or p.shape[-1] == 0:
        raise ConfigError(
            f"Expected `probs` of shape (..., C) with C >= 1. Received shape {p.shape}."
        )
    num_classes = p.shape[-1]
    if num_classes == 1:
        return np.where(np.isnan(p[..., 0]), np.nan, 0.0)
    p = np.clip(p, 0.0, 1.0)  # keeps NaN as NaN
    # log only where p > 0 (0 log 0 = 0); a NaN p gives a NaN term (NaN * 0).
    log_p = np.log(p, out=np.zeros_like(p), where=p > 0.0)
    eta = -np.sum(p * log_p, axis=-1) / math.log(num_classes)
    return np.clip(eta, 0.0, 1.0)


# --------------------------------------------------------------------------- validation


def _as_prob_list(probs: Sequence[np.ndarray]) -> list[np.ndarray]:
    arrays = [np.asarray(p, dtype=np.float64) for p in probs]
    if not arrays:
        raise ConfigError("Expected at least one exit in `probs`. Received an empty sequence.")
    first = arrays[0].shape
    for i, a in enumerate(arrays):
        if a.ndim != 2 or a.shape[1] == 0:
            raise ConfigError(
                f"Expected each exit's probabilities to have shape (N, C). "
                f"Received shape {a.shape} for exit {i}."
            )
        if a.shape[0] != first[0]:
            raise ConfigError(
                f"Expected every exit to have the same number of samples N = {first[0]}. "
                f"Received N = {a.shape[0]} for exit {i}."
            )
    return arrays


def _as_valid(valid: np.ndarray | None, n: int) -> np.ndarray:
    if valid is None:
        return np.ones(n, dtype=bool)
    v = np.asarray(valid)
    if v.shape != (n,) or v.dtype != np.bool_:
        raise ConfigError(
            f"Expected `valid` to be a boolean mask of shape ({n},). "
            f"Received dtype {v.dtype} and shape {v.shape}."
        )
    return v


def check_threshold(t: Any, where: str = "threshold") -> float:
    """The one check of an exit threshold: a number in [0, 1].

    Args:
        t: the value given.
        where: the argument that holds it (named at the start of the error).

    Returns:
        ``float(t)``.

    Raises:
        ValueError: not a number, or outside [0, 1] (normalized entropy lies in [0, 1]).

    Example:
        >>> check_threshold("0.25")
        0.25
    """
    try:
        value = math.nan if isinstance(t, bool) else float(t)  # True is no threshold
    except (TypeError, ValueError):
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise ConfigError(
            f"expected a number in [0, 1] (normalized entropy lies in [0, 1]), got {t!r}.",
            argument=where,
        )
    return value


def resolve_thresholds(
    threshold,
    early_exits: Sequence[str],
    calibrated: Mapping[str, float] | None = None,
    *,
    last_exit: str | None = None,
    argument: str = "threshold",
) -> dict[str, float]:
    """The threshold of every early exit, from what a user asked for: the one parser of
    thresholds, for the Keras evaluation (``ddnn evaluate``), the runtime and the exit
    functions of this module alike.

    Args:
        threshold: a number in [0, 1] for every early exit; a mapping ``{exit: T}`` that
            names every early exit; a sequence of one ``T`` per early exit, bottom to top;
            ``"paper"`` (:data:`PAPER_THRESHOLD`); ``"calibrated"`` (``calibrated``); or
            None: ``calibrated`` when it covers every early exit, else the paper's. A
            value for the last exit (a mapping's ``last_exit`` key, a sequence's trailing
            item) is allowed and ignored: the last exit always classifies.
        early_exits: the exits below the last, bottom to top.
        calibrated: thresholds searched on a validation split (a run's, a manifest's).
        last_exit: the last exit's name, which a mapping may name.
        argument: the parameter that holds ``threshold`` (named at the start of errors).

    Returns:
        ``{exit: T}`` for every early exit.

    Raises:
        ValueError: a value outside [0, 1] or not a number, a mapping that misses an
            early exit or names another, a sequence of another length, or
            ``"calibrated"`` without calibrated thresholds for every early exit.

    Example:
        >>> resolve_thresholds("paper", ["local"])
        {'local': 0.8}
        >>> resolve_thresholds([0.3, 0.5, 1.0], ["local", "edge"])
        {'local': 0.3, 'edge': 0.5}
    """
    early = list(early_exits)
    calibrated = dict(calibrated or {})
    complete = all(e in calibrated for e in early)
    if threshold is None:
        threshold = "calibrated" if complete else "paper"
    if isinstance(threshold, str):
        threshold = _named_threshold(threshold, early, calibrated, complete, argument)
    if isinstance(threshold, Mapping):
        unknown = sorted(map(str, set(threshold) - {*early, last_exit}))
        missing = [e for e in early if e not in threshold]
        got = [f"unknown exit(s) {unknown}"] if unknown else []
        got += [f"none for {missing}"] if missing else []
        if got:
            raise ConfigError(
                f"expected a threshold for every early exit {early}, got {' and '.join(got)}.",
                argument=argument,
            )
        values = [threshold[e] for e in early]
    elif isinstance(threshold, (Sequence, np.ndarray)) and not isinstance(threshold, str):
        values = list(np.ravel(threshold)) if isinstance(threshold, np.ndarray) else threshold
        if len(values) not in (len(early), len(early) + 1):
            raise ConfigError(
                f"expected {len(early)} threshold(s), one per early exit {early} (and "
                f"optionally one for the last exit, ignored), got {len(values)}.",
                argument=argument,
            )
        values = list(values[: len(early)])
    else:
        values = [threshold] * len(early)
    return {e: check_threshold(v, argument) for e, v in zip(early, values)}


def _named_threshold(word: str, early, calibrated, complete: bool, argument: str):
    """``"paper"``, ``"calibrated"`` or a number as text, for :func:`resolve_thresholds`."""
    if word == "paper":
        return PAPER_THRESHOLD
    if word == "calibrated":
        if not complete:
            raise ConfigError(
                f"expected calibrated thresholds for every early exit {early}, got them "
                f"for {sorted(calibrated)}; give a number in [0, 1] or 'paper'.",
                argument=argument,
            )
        return {e: calibrated[e] for e in early}
    try:
        float(word)
    except ValueError:
        raise ConfigError(
            f"expected a number in [0, 1], 'paper' or 'calibrated', got {word!r}.",
            argument=argument,
        ) from None
    return word


def _as_labels(labels: np.ndarray, n: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise ConfigError(
            f"Expected `labels` to be integer class indices of shape ({n},). "
            f"Received dtype {y.dtype} and shape {y.shape}."
        )
    return y


def _as_prob_mapping(probs: Mapping[str, np.ndarray]) -> tuple[tuple[str, ...], list[np.ndarray]]:
    if not isinstance(probs, Mapping):
        raise ConfigError(
            "Expected `probs` to be an ordered mapping exit name -> (N, C) probabilities, "
            f"bottom to top, e.g. {{'local': p_local, 'cloud': p_cloud}}. "
            f"Received {type(probs).__name__}."
        )
    names = tuple(str(k) for k in probs)
    for name in names:
        if name in _RESERVED_NAMES:
            raise ConfigError(
                f"Exit names {_RESERVED_NAMES} are reserved for report keys. "
                f"Received an exit named {name!r}; rename it."
            )
    return names, _as_prob_list(list(probs.values()))


# --------------------------------------------------------------------------- decisions


def _exit_points_from_entropy(
    entropies: list[np.ndarray], thresholds: list[float], valid: np.ndarray
) -> np.ndarray:
    n = valid.shape[0]
    last = len(entropies)  # entropies cover the non-last exits only
    index = np.full(n, -1, dtype=np.int64)
    pending = valid.copy()
    for k, t in enumerate(thresholds):
        take = pending & _confident(entropies[k], t)
        index[take] = k
        pending &= ~take
    index[pending] = last
    return index


def _confident(entropy: np.ndarray, threshold: float) -> np.ndarray:
    return entropy <= threshold  # NaN -> False (quietly): fall through to the next exit


def exits_here(probs: np.ndarray, threshold: float) -> np.ndarray:
    """Which rows leave at an early exit with threshold ``T``: normalized entropy ``<= T``.

    The rule :func:`exit_points` applies at every non-last exit, for the rows that reach
    that exit; the runtime calls it exit by exit on the samples still pending.

    Args:
        probs: ``(N, C)`` probabilities at the exit (NaN rows never exit).
        threshold: ``T`` in [0, 1] (already validated, see :func:`check_threshold`).

    Returns:
        bool ``(N,)``.

    Example:
        >>> exits_here(np.array([[0.99, 0.01], [0.5, 0.5]]), 0.8).tolist()
        [True, False]
    """
    return _confident(normalized_entropy(probs), threshold)


def exit_points(
    probs: Sequence[np.ndarray],
    thresholds: Sequence[float],
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """Index of the exit at which each sample leaves the DDNN.

    A sample exits at the first exit ``k`` whose normalized entropy is ``<= thresholds[k]``;
    otherwise it reaches the last exit, which always classifies. A NaN entropy at a
    non-last exit never counts as confident.

    Args:
        probs: one ``(N, C)`` probability array per exit, bottom to top.
        thresholds: one threshold in ``[0, 1]`` per non-last exit (``len(probs) - 1``
            values); a trailing value for the last exit may be given and is ignored.
        valid: optional boolean mask ``(N,)``; ``False`` marks unclassified samples.

    Returns:
        int64 array ``(N,)``: the exit index in ``[0, len(probs))``, or ``-1`` for invalid
        samples.

    Raises:
        ValueError: on mismatched shapes, a wrong number of thresholds, a threshold outside
            ``[0, 1]`` or a malformed ``valid`` mask.

    Example:
        >>> local = np.array([[0.99, 0.01], [0.5, 0.5]])
        >>> cloud = np.array([[0.9, 0.1], [0.2, 0.8]])
        >>> exit_points([local, cloud], [0.8]).tolist()
        [0, 1]
    """
    arrays = _as_prob_list(probs)
    names = [f"exit {k}" for k in range(len(arrays))]
    ts = list(resolve_thresholds(thresholds, names[:-1], argument="thresholds").values())
    v = _as_valid(valid, arrays[0].shape[0])
    entropies = [normalized_entropy(a) for a in arrays[:-1]]
    return _exit_points_from_entropy(entropies, ts, v)


def predictions(probs: Sequence[np.ndarray], exit_index: np.ndarray) -> np.ndarray:
    """Class predicted for each sample at the exit it took.

    Args:
        probs: one ``(N, C)`` probability (or logit) array per exit, bottom to top.
        exit_index: int array ``(N,)`` as returned by :func:`exit_points`.

    Returns:
        int64 array ``(N,)``: the argmax class at the chosen exit, ``-1`` where the exit
        index is ``-1``.

    Raises:
        ValueError: on mismatched shapes or an exit index out of range.

    Example:
        >>> p = [np.array([[0.9, 0.1], [0.6, 0.4]]), np.array([[0.2, 0.8], [0.3, 0.7]])]
        >>> predictions(p, np.array([0, -1])).tolist()
        [0, -1]
    """
    arrays = _as_prob_list(probs)
    n = arrays[0].shape[0]
    idx = np.asarray(exit_index)
    if idx.shape != (n,) or not np.issubdtype(idx.dtype, np.integer):
        raise ConfigError(
            f"Expected `exit_index` to be integers of shape ({n},). "
            f"Received dtype {idx.dtype} and shape {idx.shape}."
        )
    if idx.size and (idx.min() < -1 or idx.max() >= len(arrays)):
        raise ConfigError(
            f"Expected exit indices in [-1, {len(arrays) - 1}]. "
            f"Received values from {idx.min()} to {idx.max()}."
        )
    out = np.full(n, -1, dtype=np.int64)
    for k, a in enumerate(arrays):
        rows = idx == k
        if rows.any():
            out[rows] = np.argmax(a[rows], axis=1)
    return out


# --------------------------------------------------------------------------- reports


@dataclass(frozen=True)
class ExitReport:
    """Accuracy and exit fractions of a DDNN at given thresholds.

    Attributes:
        exits: exit names, bottom to top.
        thresholds: threshold of every non-last exit (the last exit has none).
        accuracy: per exit name, the accuracy when *every* sample exits there (the paper's
            "Local/Edge/Cloud Accuracy", Sec. III-F), plus ``"overall"``: the accuracy when
            each sample exits where the thresholds send it. All are fractions of all ``N``
            samples; unclassified samples count as wrong in every entry.
        exit_fraction: per exit name, the fraction of all ``N`` samples that exit there,
            plus ``"unclassified"``; the values sum to 1.
        n_samples: ``N``.
    """

    exits: tuple[str, ...]
    thresholds: dict[str, float]
    accuracy: dict[str, float]
    exit_fraction: dict[str, float]
    n_samples: int

    def to_dict(self) -> dict:
        """JSON-able copy: ``{"exits": [...], "thresholds": {...}, ...}`` of plain types."""
        return {
            "exits": list(self.exits),
            "thresholds": {k: float(v) for k, v in self.thresholds.items()},
            "accuracy": {k: float(v) for k, v in self.accuracy.items()},
            "exit_fraction": {k: float(v) for k, v in self.exit_fraction.items()},
            "n_samples": int(self.n_samples),
        }


class _Prepared:
    """Entropies and per-exit correctness, computed once and reused across thresholds."""

    def __init__(
        self,
        probs: Mapping[str, np.ndarray],
        labels: np.ndarray,
        valid: np.ndarray | None,
    ) -> None:
        self.names, arrays = _as_prob_mapping(probs)
        self.n = arrays[0].shape[0]
        self.labels = _as_labels(labels, self.n)
        self.valid = _as_valid(valid, self.n)
        self.entropies = [normalized_entropy(a) for a in arrays[:-1]]
        # correct[k, i]: exit k classifies sample i right (and sample i is valid).
        self.correct = np.stack(
            [(np.argmax(a, axis=1) == self.labels) & self.valid for a in arrays]
        )

    def _frac(self, count: float) -> float:
        return float(count) / self.n if self.n else 0.0

    def report(self, thresholds: list[float]) -> ExitReport:
        index = _exit_points_from_entropy(self.entropies, thresholds, self.valid)
        counts = np.bincount(index + 1, minlength=len(self.names) + 1)
        fractions = {name: self._frac(counts[k + 1]) for k, name in enumerate(self.names)}
        fractions["unclassified"] = self._frac(counts[0])
        accuracy = {
            name: self._frac(np.count_nonzero(self.correct[k])) for k, name in enumerate(self.names)
        }
        taken = self.correct[np.clip(index, 0, None), np.arange(self.n)] & (index >= 0)
        accuracy["overall"] = self._frac(np.count_nonzero(taken))
        return ExitReport(
            exits=self.names,
            thresholds=dict(zip(self.names[:-1], thresholds, strict=True)),
            accuracy=accuracy,
            exit_fraction=fractions,
            n_samples=self.n,
        )


def evaluate_exits(
    probs: Mapping[str, np.ndarray],
    labels: np.ndarray,
    thresholds: Mapping[str, float] | float,
    valid: np.ndarray | None = None,
) -> ExitReport:
    """Evaluate a DDNN's exits at the given thresholds.

    Per-exit accuracy is the accuracy when all samples exit at that exit (Sec. III-F),
    computed over all ``N`` samples: invalid (unclassified) samples count as wrong there
    too, so every accuracy in the report shares the same denominator.

    Args:
        probs: ordered mapping exit name -> ``(N, C)`` probabilities, bottom to top, e.g.
            ``{"local": p_local, "edge": p_edge, "cloud": p_cloud}``.
        labels: integer class labels ``(N,)``.
        thresholds: mapping with a threshold in ``[0, 1]`` for every non-last exit (a value
            for the last exit may be present and is ignored), or one float applied to
            every non-last exit.
        valid: optional boolean mask ``(N,)``; ``False`` marks unclassified samples.

    Returns:
        An :class:`ExitReport`.

    Raises:
        ValueError: on mismatched shapes, unknown or missing threshold names, thresholds
            outside ``[0, 1]`` or exit names ``"overall"``/``"unclassified"``.

    Example:
        >>> p = {"local": np.array([[0.99, 0.01], [0.5, 0.5]]),
        ...      "cloud": np.array([[0.9, 0.1], [0.2, 0.8]])}
        >>> r = evaluate_exits(p, np.array([0, 1]), PAPER_THRESHOLD)
        >>> r.exit_fraction, r.accuracy["overall"]
        ({'local': 0.5, 'cloud': 0.5, 'unclassified': 0.0}, 1.0)
    """
    prepared = _Prepared(probs, labels, valid)
    names = prepared.names
    ts = resolve_thresholds(thresholds, names[:-1], last_exit=names[-1], argument="thresholds")
    return prepared.report(list(ts.values()))


# --------------------------------------------------------------------------- sweeps


def _as_grid(grid: Sequence[float] | np.ndarray | None) -> list[float]:
    values = DEFAULT_THRESHOLD_GRID if grid is None else np.asarray(grid, dtype=object).ravel()
    if len(values) == 0:
        raise ConfigError("Expected a non-empty threshold grid. Received an empty one.")
    return [check_threshold(t, "the threshold grid") for t in values]


def threshold_sweep(
    probs: Mapping[str, np.ndarray],
    labels: np.ndarray,
    thresholds: Sequence[float] | np.ndarray | None = None,
    *,
    bytes_fn: Callable[[dict[str, float]], float] | None = None,
    valid: np.ndarray | None = None,
) -> list[dict]:
    """Exit fractions, overall accuracy and (optionally) bytes for a grid of thresholds.

    The same ``T`` is applied to every non-last exit, as in Table II / Fig. 7 of the paper.

    Args:
        probs: ordered mapping exit name -> ``(N, C)`` probabilities, bottom to top.
        labels: integer class labels ``(N,)``.
        thresholds: thresholds to try, each in ``[0, 1]``; default
            :data:`DEFAULT_THRESHOLD_GRID` (0.0, 0.1, ..., 1.0).
        bytes_fn: optional cost model; it receives the row's ``exit_fraction`` dict and
            returns bytes per end device per sample, e.g.
            ``lambda f: cost.expected_bytes_per_device(summary_nbytes=12,
            feature_nbytes=128, exit_fraction=f)``.
        valid: optional boolean mask ``(N,)``; ``False`` marks unclassified samples.

    Returns:
        One dict per threshold, in grid order: ``{"threshold": T, "exit_fraction": {...},
        "accuracy_overall": a}`` plus ``"bytes_per_device"`` when ``bytes_fn`` is given.

    Raises:
        ValueError: as :func:`evaluate_exits`, or on an empty grid.

    Example:
        >>> p = {"local": np.array([[0.99, 0.01], [0.5, 0.5]]),
        ...      "cloud": np.array([[0.9, 0.1], [0.2, 0.8]])}
        >>> [r["exit_fraction"]["local"] for r in threshold_sweep(p, np.array([0, 1]),
        ...                                                       [0.0, 0.5, 1.0])]
        [0.0, 0.5, 1.0]
    """
    prepared = _Prepared(probs, labels, valid)
    rows = []
    for t in _as_grid(thresholds):
        report = prepared.report([t] * (len(prepared.names) - 1))
        row = {
            "threshold": t,
            "exit_fraction": dict(report.exit_fraction),
            "accuracy_overall": report.accuracy["overall"],
        }
        if bytes_fn is not None:
            row["bytes_per_device"] = float(bytes_fn(dict(report.exit_fraction)))
        rows.append(row)
    return rows


def search_threshold(
    probs: Mapping[str, np.ndarray],
    labels: np.ndarray,
    *,
    grid: Sequence[float] | np.ndarray | None = None,
    margin: float | None = None,
    valid: np.ndarray | None = None,
) -> float:
    """Pick an exit threshold on a validation split (Sec. III-D: "searching over the ranges
    of T on a validation set").

    Two rules:

    * ``margin=None``: the ``T`` with the best overall accuracy; ties go to the larger
      ``T``, which exits more samples early and so communicates less.
    * ``margin=m``: among the ``T`` whose overall accuracy is within ``m`` of the best
      (``acc >= best - m``), the one that exits the largest fraction at the first exit
      (then at the second, and so on). Ties go to the larger ``T``.

    Args:
        probs: ordered mapping exit name -> ``(N, C)`` probabilities, bottom to top.
        labels: integer class labels ``(N,)``.
        grid: thresholds to try; default :data:`DEFAULT_THRESHOLD_GRID`.
        margin: accuracy (as a fraction, e.g. ``0.01`` for one point) that may be given up
            for earlier exits; ``None`` for the most accurate ``T``.
        valid: optional boolean mask ``(N,)``; ``False`` marks unclassified samples.

    Returns:
        The chosen threshold, a float from ``grid``.

    Raises:
        ValueError: on a negative or non-finite ``margin``, or as :func:`threshold_sweep`.

    Example:
        >>> p = {"local": np.array([[0.99, 0.01], [0.5, 0.5]]),
        ...      "cloud": np.array([[0.9, 0.1], [0.2, 0.8]])}
        >>> search_threshold(p, np.array([0, 1]), grid=[0.0, 0.5, 1.0])
        0.5
    """
    if margin is not None and not (math.isfinite(margin) and margin >= 0.0):
        raise ConfigError(
            f"Expected `margin` to be None or a non-negative accuracy fraction such as "
            f"0.01. Received {margin!r}."
        )
    rows = threshold_sweep(probs, labels, grid, valid=valid)
    best = max(r["accuracy_overall"] for r in rows)
    if margin is None:
        eligible = [r for r in rows if r["accuracy_overall"] >= best - _TIE_TOL]
        return max(r["threshold"] for r in eligible)

    eligible = [r for r in rows if r["accuracy_overall"] >= best - margin - _TIE_TOL]
    names = list(probs)

    def cost(row: dict) -> tuple:  # exiting lower in the hierarchy is cheaper
        return (*(-row["exit_fraction"][n] for n in names[:-1]), -row["threshold"])

    return min(eligible, key=cost)["threshold"]
