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

__all__ = [
    "SiteAnswers",
    "deploy_report",
    "exit_latencies",
    "format_report",
    "percentiles",
    "predicted_latencies",
    "round_starts",
    "sample_latencies",
    "site_report",
]


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


def _offline(h, xs, idx, presence, thresholds, all_exits, protocol="paper") -> _Offline:
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
        protocol=protocol,
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


def sample_latencies(got: SiteAnswers, starts: dict[int, float], batch: int) -> np.ndarray:
    """``(N,)`` milliseconds from each sample's round start (``starts``, see
    :func:`round_starts`) to its answer; NaN where the sample was not answered or its
    round start is not known."""
    start_of = np.full(len(got.answered), np.nan)
    for start, t in starts.items():
        if start >= 0 and start % batch == 0:
            start_of[start : start + batch] = t
    return np.where(got.answered, (got.t_done - start_of) * 1e3, np.nan)


def percentiles(latency: np.ndarray, qs=(50, 99)) -> dict[str, float | None]:
    """``{"p50", "p99"}`` (the percentiles ``qs``) of ``latency`` (None when empty)."""
    return {f"p{q}": float(np.percentile(latency, q)) if latency.size else None for q in qs}


def exit_latencies(exits, exit_index, measured, predicted=None) -> dict[str, Any]:
    """Per exit, over the samples it answered whose latency was measured:
    ``{exit: {"samples", "measured": {"p50", "p95"}[, "predicted": {"p50", "p95"}]}}``.

    Args:
        exits: the exit names.
        exit_index: ``(N,)`` the exit each sample answered at (-1: none).
        measured: ``(N,)`` milliseconds (NaN: not measured).
        predicted: ``(N,)`` the cost model's milliseconds for the same samples, or None.
    """
    out: dict[str, Any] = {}
    for k, name in enumerate(exits):
        rows = (np.asarray(exit_index) == k) & np.isfinite(measured)
        if not rows.any():
            continue
        out[name] = {"samples": int(rows.sum()), "measured": percentiles(measured[rows], (50, 95))}
        if predicted is not None:
            out[name]["predicted"] = percentiles(predicted[rows], (50, 95))
    return out


def device_compute_ms(rounds, n: int, batch: int) -> dict[str, np.ndarray]:
    """Each device's compute per sample as its process measured it (``compute_s`` of its
    round records), ``{device_I: (n,) ms}``; NaN where it was not recorded."""
    from ddnn_tf.core.graph import device_tier

    out = {}
    for d, device_rounds in enumerate(rounds):
        ms = np.full(n, np.nan)
        for r in device_rounds:
            if "compute_s" in r and 0 <= r["start"] < n:
                ms[r["start"] : r["start"] + batch] = 1e3 * r["compute_s"]
        out[device_tier(d)] = ms
    return out


def predicted_latencies(
    h, plan, got: SiteAnswers, tier_ms, rounds=(), *, seed: int = 0
) -> np.ndarray:
    """``(N,)`` milliseconds the cost model predicts for each answered sample of a
    deployment with a radio link (``plan.link``, ``plan.wan``, ``plan.mode``,
    ``plan.rate_hz``): its exit and its devices as answered live, the tiers' times
    measured on this host (``tier_ms``; a device's compute as its process measured it,
    from its round records ``rounds``, where they have it: the devices run here), and the
    draws the devices' radios waited by (:func:`ddnn_tf.core.cost.price.draws`, ``seed``)."""
    from ddnn_tf.core.cost.price import price

    n = len(got.answered)
    tier_ms = dict(tier_ms)
    for tier, ms in device_compute_ms(rounds, n, plan.batch).items():
        timed = np.resize(np.asarray(tier_ms.get(tier, 0.0), np.float64), n)
        tier_ms[tier] = np.where(np.isfinite(ms), ms, timed)

    cost = price(
        h.topology,
        np.where(got.answered, got.exit_index, -1),
        instructions=0,
        mcu=None,
        radio=plan.link,
        wan=plan.wan,
        mode=plan.mode,
        rate_hz=plan.rate_hz or 1.0,
        tier_ms=tier_ms,
        presence=got.local_p & got.answered[:, None],
        seed=seed,
    )
    return cost.chosen.latency_s * 1e3


def site_report(
    h, y, xs, got: SiteAnswers, rounds, *, thresholds, batch: int, mode="paper", predicted=None
) -> dict[str, Any]:
    """The live figures of one site (see :func:`ddnn_tf.serve.deploy.deploy`).

    Args:
        h: the offline :class:`~ddnn_tf.runtime.Hierarchy`.
        y: the split's labels (``n``).
        xs: the split's views (``n`` samples each).
        got: the site's answers over its ``N = repeat * n`` samples.
        rounds: per device, its round records (``ddnn device``'s JSON lines).
        thresholds: ``{exit: T}`` the gateway used.
        batch: the round length.
        mode: the devices' protocol (``paper`` or ``eager``), whose bytes the offline run
            counts.
        predicted: ``(N,)`` the cost model's latency of each sample in ms
            (:func:`predicted_latencies`), or None.
    """
    from ddnn_tf.core.exits import exit_points

    n_total = len(got.answered)
    idx = np.arange(n_total) % len(y)
    labels = np.asarray(y)[idx]
    exits = list(h.exits)
    answered = got.answered
    full = _offline(h, xs, idx, got.local_p, thresholds, True)
    staged = _offline(h, xs, idx, got.local_p, thresholds, False, mode)
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
    latency = sample_latencies(got, t0, batch)
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
        "latency_ms": {
            **percentiles(latency[np.isfinite(latency)]),
            **exit_latencies(exits, got.exit_index, latency, predicted),
        },
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


#: The figures of each site in a report of several sites.
_SITE_KEYS = (
    "n_samples",
    "latency_ms",
    "samples_per_s",
    "lost",
    "duplicates",
    "mismatches_vs_offline",
    "degraded",
    "wire_bytes_per_device",
    "cloud_answers",
)


def deploy_report(
    h, plan, y, xs, sites, rounds, thresholds, events, rss, site_rss, records, tier_ms=None
):
    """The report of :func:`ddnn_tf.serve.deploy.deploy` (its keys are documented there
    and on the Serving page): site 0's figures at the top level, or with several sites the
    figures over all of them and ``sites``, one entry each.

    Args:
        h: the offline :class:`~ddnn_tf.runtime.Hierarchy`.
        plan: the :class:`~ddnn_tf.serve.settings.DeployPlan`.
        y: the streamed subset's labels.
        xs: its views, one per device.
        sites: the fleet's sites (their collected answers).
        rounds: per site, per device, its round records.
        thresholds: ``{exit: T}`` the gateways used.
        events: the fault schedule's events.
        rss: memory readings of site 0's gateway and the cloud.
        site_rss: each site's gateway's peak memory at the end.
        records: add ``samples``, site 0's answers sample by sample.
        tier_ms: the tiers' times on this host, with a radio link (``plan.link``): the
            latency per exit is then compared with the cost model's prediction.
    """
    from ddnn_tf.core.evaluation import reduction

    n_total = len(y) * plan.repeat
    answers = [SiteAnswers.from_docs(s.collector.answers, n_total, h.num_devices) for s in sites]
    predicted = [
        predicted_latencies(h, plan, got, tier_ms, site_rounds) if plan.link else None
        for got, site_rounds in zip(answers, rounds, strict=True)
    ]
    per_site = []
    for site, got, site_rounds, pred in zip(sites, answers, rounds, predicted, strict=True):
        rep = site_report(
            h, y, xs, got, site_rounds, thresholds=thresholds, batch=plan.batch,
            mode=plan.mode, predicted=pred,
        )  # fmt: skip
        per_site.append({**rep, "gaps": site.collector.gaps})
    main = per_site[0]
    raw = float(np.mean([float(entry["raw_bytes"]) for entry in h.manifest["inputs"]]))
    killed = events["killed_at"]
    result: dict[str, Any] = {
        "model": str(h.manifest.directory),
        "target": h.target,
        "split": plan.subset,
        **{k: main[k] for k in ("n_samples", "accuracy", "exit_fraction")},
        "exits": list(h.exits),
        "thresholds": {k: float(v) for k, v in thresholds.items()},
        "bytes_per_device": main["bytes_per_device"],
        "raw_bytes_per_device": raw,
        "communication_reduction": reduction(raw, main["bytes_per_device"]),
        "failed_devices": [] if killed is None else [plan.kill_device],
        "fail_prob": 0.0,
        "seed": 0,
        "unclassified": main["unclassified"],
        "summary_encoding": h.summary_encoding,
        "batch_size": plan.batch,
        **{k: main[k] for k in ("latency_ms", "samples_per_s", "staged_matches_all_exits")},
        "engine": plan.engine,
        "transport": plan.transport,
        "repeat": plan.repeat,
        **{k: main[k] for k in _LIVE_KEYS},
        "rss_mb": {k: [round(v, 1) for v in vs] for k, vs in rss.items()},
        "kill": None if killed is None else _kill(answers[0], plan.kill_device, killed),
        "cloud_down_after": events["cloud_down"],
        "restarts": events["restarts"],
        "mcu_devices": plan.mcu_devices,
        "mode": plan.mode,
        "link": None if plan.link is None else {"radio": plan.link, "wan": plan.wan},
    }
    wall = main["wall_s"]
    result["cloud_samples_per_s"] = main["cloud_answers"] / wall if wall > 0 else 0.0
    if len(sites) > 1:
        result.update(
            _over_sites(per_site, answers, rounds, plan.batch, site_rss, h.exits, predicted)
        )
    if records:
        a = answers[0]
        result["samples"] = {
            "exit": a.exit_index.tolist(),
            "prediction": a.prediction.tolist(),
            "degraded": a.degraded.tolist(),
            "local_presence": a.local_p.tolist(),
        }
    return result


#: Site 0's figures that only a live run has.
_LIVE_KEYS = (
    "wire_bytes_per_device",
    "wire_received_bytes_per_device",
    "offline_bytes_per_device",
    "mismatches_vs_offline",
    "lost",
    "duplicates",
    "degraded",
    "device_retries",
)


def _kill(got: SiteAnswers, device: int, answered: int) -> dict[str, Any]:
    absent = np.flatnonzero(got.answered & ~got.local_p[:, device])
    return {
        "device": int(device),
        "answered_before_kill": int(answered),
        "first_sample_without_device": int(absent[0]) if absent.size else None,
    }


def _over_sites(per_site, answers, rounds, batch, site_rss, exits, predicted) -> dict[str, Any]:
    """The figures over every site, and ``sites``: each site's."""
    t_first = min(r["t_first"] for r in per_site if r["t_first"] is not None)
    t_last = max(r["t_last"] for r in per_site if r["t_last"] is not None)
    wall = t_last - t_first
    latency = np.concatenate(
        [
            sample_latencies(a, round_starts(site_rounds), batch)
            for a, site_rounds in zip(answers, rounds, strict=True)
        ]
    )
    exit_index = np.concatenate([a.exit_index for a in answers])
    pred = None if predicted[0] is None else np.concatenate(predicted)
    out: dict[str, Any] = {
        key: int(sum(r[key] for r in per_site))
        for key in ("lost", "duplicates", "mismatches_vs_offline", "degraded")
    }
    answered = sum(r["n_samples"] - r["lost"] for r in per_site)
    cloud = sum(r["cloud_answers"] for r in per_site)
    out["latency_ms"] = {
        **percentiles(latency[np.isfinite(latency)]),
        **exit_latencies(exits, exit_index, latency, pred),
    }
    out["samples_per_s"] = answered / wall if wall > 0 else 0.0
    out["cloud_samples_per_s"] = cloud / wall if wall > 0 else 0.0
    out["sites"] = [
        {"site": k, "rss_mb": round(site_rss[k], 1), **{key: r[key] for key in _SITE_KEYS}}
        for k, r in enumerate(per_site)
    ]
    return out


def format_report(result: dict[str, Any]) -> str:
    """A short readable report of :func:`ddnn_tf.serve.deploy.deploy`'s result."""
    acc = result["accuracy"]
    sites = result.get("sites")
    where = f" x {len(sites)} sites" if sites else ""
    repeat = f" x {result['repeat']}" if result.get("repeat", 1) > 1 else ""
    lines = [
        f"{result['model']} on {result['engine']} over {result.get('transport', 'http')}: "
        f"{result['n_samples']} {result['split']} samples{repeat}{where} in rounds of "
        f"{result['batch_size']}",
        "accuracy: " + ", ".join(f"{k} {v:.4f}" for k, v in acc.items()),
        "exit fraction: " + ", ".join(f"{k} {v:.4f}" for k, v in result["exit_fraction"].items()),
        f"payload bytes per device per sample: {result['bytes_per_device']:.2f} "
        f"(offline run: {result['offline_bytes_per_device']:.2f}); on the socket: "
        f"{result['wire_bytes_per_device']:.2f} sent, "
        f"{result['wire_received_bytes_per_device']:.2f} received",
        f"latency p50 {result['latency_ms']['p50']:.1f} ms, p99 "
        f"{result['latency_ms']['p99']:.1f} ms; {result['samples_per_s']:.0f} samples/s "
        f"({result['cloud_samples_per_s']:.0f}/s answered by the cloud)",
        f"mismatches vs offline: {result['mismatches_vs_offline']}; lost: {result['lost']}; "
        f"duplicates: {result['duplicates']}; degraded: {result['degraded']}",
    ]
    link = result.get("link")
    if link:
        lines.append(
            f"devices on {link['radio']} ({result['mode']} protocol) and the gateways' link "
            f"to the cloud ({link['wan']}) emulated on loopback; latency per exit, measured "
            "against the cost model's prediction:"
        )
        for name in result["exits"]:
            entry = result["latency_ms"].get(name)
            if entry is not None:
                m, p = entry["measured"], entry["predicted"]
                lines.append(
                    f"  {name} ({entry['samples']} samples): p50 {m['p50']:.1f} ms "
                    f"(predicted {p['p50']:.1f}), p95 {m['p95']:.1f} ms (predicted "
                    f"{p['p95']:.1f})"
                )
    rss = result.get("rss_mb")
    if rss and rss.get("gateway"):
        gateway, cloud = (" / ".join(f"{v:.1f}" for v in rss[k]) for k in ("gateway", "cloud"))
        lines.append(f"peak RSS MB at 10 % / at the end: gateway {gateway}, cloud {cloud}")
    for s in sites or []:
        lines.append(
            f"  site {s['site']}: {s['samples_per_s']:.0f} samples/s, latency p50 "
            f"{s['latency_ms']['p50']:.1f} ms, p99 {s['latency_ms']['p99']:.1f} ms; lost "
            f"{s['lost']}, duplicates {s['duplicates']}, mismatches "
            f"{s['mismatches_vs_offline']}"
        )
    if result.get("mcu_devices"):
        lines.append(f"devices on an emulated Cortex-M4 (C tier in QEMU): {result['mcu_devices']}")
    if result["kill"]:
        lines.append(f"killed: {result['kill']}")
    if result["cloud_down_after"] is not None:
        lines.append(f"cloud stopped after {result['cloud_down_after']} answers")
    for r in result.get("restarts", []):
        lines.append(
            f"{r['service']} restarted after {r['after']} answers (away {r['away_s']:.1f} s)"
        )
    return "\n".join(lines)
