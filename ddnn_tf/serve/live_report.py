"""The report of a live run: its answers against the offline :class:`Hierarchy` run.

:func:`site_report` turns one site's collected answers (the gateway's result stream) and
its devices' round records into ``ddnn run``'s keys measured live, plus what only a
network shows (see :mod:`ddnn_tf.serve.deploy`). Sample ``s`` of a stream that cycles
the split (``repeat``) is sample ``s % n`` of the split; the offline reference runs once
per distinct (sample, observed presence) pair, so a long stream costs no more offline
work than the split itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["SiteAnswers", "percentiles", "round_latencies", "round_starts", "site_report"]


@dataclass
class SiteAnswers:
    """One site's answers as arrays over its ``N`` samples (first delivery of each).

    Attributes:
        answered, exit_index, prediction, degraded, local_p, cloud_p, t_done, payload:
            per sample; ``local_p``/``cloud_p`` ``(N, D)`` bool.
        duplicates: samples delivered with more than one answer.
    """

    answered: np.ndarray
    exit_index: np.ndarray
    prediction: np.ndarray
    degraded: np.ndarray
    local_p: np.ndarray
    cloud_p: np.ndarray
    t_done: np.ndarray
    payload: np.ndarray
    duplicates: int

    @classmethod
    def from_docs(cls, answers: dict[int, list[dict]], n: int, d: int) -> SiteAnswers:
        out = cls(
            answered=np.zeros(n, bool),
            exit_index=np.full(n, -1, np.int64),
            prediction=np.full(n, -1, np.int64),
            degraded=np.zeros(n, bool),
            local_p=np.zeros((n, d), bool),
            cloud_p=np.zeros((n, d), bool),
            t_done=np.full(n, np.nan),
            payload=np.zeros((n, d), np.int64),
            duplicates=0,
        )
        bits = 1 << np.arange(d)
        for s, docs in answers.items():
            if not 0 <= s < n:
                continue  # not a sample of this stream: the report's lost/extra counts say so
            a = docs[0]
            out.answered[s] = True
            out.exit_index[s], out.prediction[s] = a["exit"], a["prediction"]
            out.degraded[s] = a["degraded"]
            out.local_p[s] = (a["local_presence"] & bits) > 0
            out.cloud_p[s] = (a["cloud_presence"] & bits) > 0
            out.t_done[s] = a["t_done"]
            out.payload[s] = a["payload_bytes"]
            out.duplicates += len(docs) > 1
        return out


@dataclass
class _Offline:
    """An offline run's per-sample arrays, expanded from its distinct rows."""

    exit_index: np.ndarray
    prediction: np.ndarray
    probs: dict[str, np.ndarray]
    presence: np.ndarray
    device_bytes: np.ndarray

    @property
    def valid(self) -> np.ndarray:
        return self.presence.any(axis=1)

    def bytes_per_device(self) -> float:
        alive = self.presence
        return float(self.device_bytes[alive].mean()) if alive.any() else 0.0


def _offline(h, xs, idx, presence, thresholds, all_exits) -> _Offline:
    """``h.run`` on samples ``idx`` of ``xs`` with ``presence``, once per distinct row."""
    d = presence.shape[1]
    key = idx.astype(np.int64) * (1 << d) + presence.astype(np.int64) @ (1 << np.arange(d))
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    rows = idx[first]
    run = h.run(
        [x[rows] for x in xs],
        thresholds=thresholds,
        presence=presence[first],
        all_exits=all_exits,
        batch_size=256,
    )
    return _Offline(
        exit_index=run.exit_index[inverse],
        prediction=run.prediction[inverse],
        probs={e: p[inverse] for e, p in run.probs.items()},
        presence=run.presence[inverse],
        device_bytes=run.device_bytes()[inverse],
    )


def round_starts(rounds) -> dict[int, float]:
    """Per round start, the earliest device clock before its tier ran (``t0``).

    Args:
        rounds: per device, its round records (``ddnn device``'s JSON lines).
    """
    t0: dict[int, float] = {}
    for device_rounds in rounds:
        for r in device_rounds:
            if "start" in r:
                t0[r["start"]] = min(t0.get(r["start"], np.inf), r["t0"])
    return t0


def round_latencies(got: SiteAnswers, starts: dict[int, float], batch: int) -> np.ndarray:
    """Milliseconds from each answered sample's round start (``starts``, see
    :func:`round_starts`) to its answer, for the samples whose round start is known."""
    start_of = np.full(len(got.answered), np.nan)
    for start, t in starts.items():
        if start >= 0 and start % batch == 0:
            start_of[start : start + batch] = t
    latency = (got.t_done - start_of)[got.answered] * 1e3
    return latency[np.isfinite(latency)]


def percentiles(latency: np.ndarray) -> dict[str, float | None]:
    """``{"p50", "p99"}`` of ``latency`` (None when empty)."""
    return {
        "p50": float(np.percentile(latency, 50)) if latency.size else None,
        "p99": float(np.percentile(latency, 99)) if latency.size else None,
    }


def site_report(h, y, xs, got: SiteAnswers, rounds, *, thresholds, batch: int) -> dict[str, Any]:
    """The live figures of one site (see :func:`ddnn_tf.serve.deploy.deploy`).

    Args:
        h: the offline :class:`~ddnn_tf.runtime.Hierarchy`.
        y: the split's labels (``n``).
        xs: the split's views (``n`` samples each).
        got: the site's answers over its ``N = repeat * n`` samples.
        rounds: per device, its round records (``ddnn device``'s JSON lines).
        thresholds: ``{exit: T}`` the gateway used.
        batch: the round length.
    """
    from ddnn_tf.core.exits import exit_points

    n_total = len(got.answered)
    idx = np.arange(n_total) % len(y)
    labels = np.asarray(y)[idx]
    exits = list(h.exits)
    answered = got.answered
    full = _offline(h, xs, idx, got.local_p, thresholds, True)
    staged = _offline(h, xs, idx, got.local_p, thresholds, False)
    want_exit = full.exit_index.copy()
    want_pred = full.prediction.copy()
    probs = {e: np.nan_to_num(full.probs[e], nan=0.0) for e in exits}
    mixed = answered & (full.exit_index > 0) & (got.cloud_p != got.local_p).any(axis=1)
    if mixed.any():  # a device's summary arrived but its features did not
        where = np.flatnonzero(mixed)
        other = _offline(h, xs, idx[where], got.cloud_p[where], thresholds, True)
        upper = [np.nan_to_num(other.probs[e], nan=0.0) for e in exits[1:]]
        for e, p in zip(exits[1:], upper, strict=True):
            probs[e][where] = p
        want_exit[where] = 1 + exit_points(upper, [thresholds[e] for e in exits[1:-1]])
    for k, e in enumerate(exits):
        sel = mixed & (want_exit == k)
        want_pred[sel] = np.argmax(probs[e][sel], axis=1)
    fallback = len(exits) - 2  # a degraded sample is answered by the exit below the cloud
    want_exit[got.degraded] = fallback
    want_pred[got.degraded] = np.argmax(probs[exits[fallback]][got.degraded], axis=1)
    mismatches = int(
        np.count_nonzero(answered & ((got.exit_index != want_exit) | (got.prediction != want_pred)))
    )
    live_pairs = got.local_p & answered[:, None]
    counts = np.bincount(got.exit_index + 1, minlength=len(exits) + 1)
    exit_fraction = {e: float(counts[k + 1]) / n_total for k, e in enumerate(exits)}
    exit_fraction["unclassified"] = float(counts[0]) / n_total
    accuracy = {  # samples nobody saw count as wrong, as in run
        e: float(
            np.mean(
                (np.argmax(np.nan_to_num(full.probs[e], nan=0.0), axis=1) == labels) & full.valid
            )
        )
        for e in exits
    }
    accuracy["overall"] = float(np.mean(got.prediction == labels))
    t0 = round_starts(rounds)
    sent = received = pairs = retries = 0
    for device_rounds in rounds:
        for r in device_rounds:
            if "start" not in r:
                continue
            sent += r["sent"]
            received += r["received"]
            pairs += r["n"]
            retries += r.get("retries", 0)
    wall = float(np.nanmax(got.t_done) - min(t0.values())) if t0 and answered.any() else 0.0
    return {
        "n_samples": int(n_total),
        "accuracy": accuracy,
        "exit_fraction": exit_fraction,
        "bytes_per_device": float(got.payload[live_pairs].mean()) if live_pairs.any() else 0.0,
        "unclassified": int(np.count_nonzero(answered & (got.exit_index < 0))),
        "latency_ms": percentiles(round_latencies(got, t0, batch)),
        "samples_per_s": float(answered.sum() / wall) if wall > 0 else 0.0,
        "wall_s": wall,
        "t_first": min(t0.values()) if t0 else None,
        "t_last": float(np.nanmax(got.t_done)) if answered.any() else None,
        "staged_matches_all_exits": bool(
            np.array_equal(full.exit_index, staged.exit_index)
            and np.array_equal(full.prediction, staged.prediction)
        ),
        "wire_bytes_per_device": sent / pairs if pairs else 0.0,
        "wire_received_bytes_per_device": received / pairs if pairs else 0.0,
        "offline_bytes_per_device": staged.bytes_per_device(),
        "mismatches_vs_offline": mismatches,
        "lost": int(n_total - answered.sum()),
        "duplicates": int(got.duplicates),
        "degraded": int(got.degraded.sum()),
        "cloud_answers": int(np.count_nonzero(answered & (got.exit_index == len(exits) - 1))),
        "device_retries": int(retries),
    }
