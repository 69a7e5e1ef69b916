"""The report of a live run (:func:`deploy_report`): its answers against the offline
:class:`~ddnn_tf.runtime.Hierarchy` run, and what only a network shows (the keys are on
the Serving page).

Sample ``s`` of a stream that cycles the split (``repeat``) is sample ``s % n`` of the
split; the offline reference runs once per distinct (sample, observed presence) pair, so
a long stream costs no more offline work than the split itself.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

__all__ = ["deploy_report", "format_report"]


def _answers(docs: dict[int, list[dict]], n: int, d: int) -> SimpleNamespace:
    """One site's answers over its ``N`` samples (the first delivery of each): per sample
    ``answered``, ``exit_index`` (-1: none), ``prediction``, ``degraded``, ``t_done``,
    per sample and device ``local_p``/``cloud_p`` (presence) and ``payload``;
    ``duplicates``: samples delivered more than once."""
    got = SimpleNamespace(
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
    for s, answers in docs.items():
        if not 0 <= s < n:
            continue  # not a sample of this stream: the report's lost/extra counts say so
        a = answers[0]
        got.answered[s] = True
        got.exit_index[s], got.prediction[s] = a["exit"], a["prediction"]
        got.degraded[s] = a["degraded"]
        got.local_p[s] = (a["local_presence"] & bits) > 0
        got.cloud_p[s] = (a["cloud_presence"] & bits) > 0
        got.t_done[s] = a["t_done"]
        got.payload[s] = a["payload_bytes"]
        got.duplicates += len(answers) > 1
    return got


def _offline(h, xs, idx, presence, thresholds, all_exits, protocol="paper"):
    """``h.run`` on samples ``idx`` of ``xs`` with ``presence``, once per distinct row;
    its per-sample arrays (``device_bytes`` computed)."""
    d = presence.shape[1]
    key = idx.astype(np.int64) * (1 << d) + presence.astype(np.int64) @ (1 << np.arange(d))
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    run = h.run(
        [x[idx[first]] for x in xs],
        thresholds=thresholds,
        presence=presence[first],
        all_exits=all_exits,
        batch_size=256,
        protocol=protocol,
    )
    return SimpleNamespace(
        exit_index=run.exit_index[inverse],
        prediction=run.prediction[inverse],
        probs={e: np.nan_to_num(p[inverse], nan=0.0) for e, p in run.probs.items()},
        presence=run.presence[inverse],
        device_bytes=run.device_bytes()[inverse],
    )


def _site(h, y, xs, got: SimpleNamespace, rounds, thresholds, mode: str) -> dict[str, Any]:
    """One site's figures, its timing aside (:func:`_timing`): its answers ``got`` over
    ``N = repeat * n`` samples of the split (``y``, ``xs``) and its devices' round records
    ``rounds``, against the offline run with the presence the gateway observed."""
    from ddnn_tf.core.exits import evaluate_exits, exit_points

    n_total, exits, answered = len(got.answered), list(h.exits), got.answered
    idx = np.arange(n_total) % len(y)
    labels = np.asarray(y)[idx]
    full = _offline(h, xs, idx, got.local_p, thresholds, True)
    staged = _offline(h, xs, idx, got.local_p, thresholds, False, mode)
    want_exit, want_pred = full.exit_index.copy(), full.prediction.copy()
    probs = {e: full.probs[e].copy() for e in exits}
    mixed = answered & (full.exit_index > 0) & (got.cloud_p != got.local_p).any(axis=1)
    if mixed.any():  # a device's summary arrived but its features did not
        where = np.flatnonzero(mixed)
        other = _offline(h, xs, idx[where], got.cloud_p[where], thresholds, True)
        for e in exits[1:]:
            probs[e][where] = other.probs[e]
        upper = [other.probs[e] for e in exits[1:]]
        want_exit[where] = 1 + exit_points(upper, [thresholds[e] for e in exits[1:-1]])
    for k, e in enumerate(exits):
        sel = mixed & (want_exit == k)
        want_pred[sel] = np.argmax(probs[e][sel], axis=1)
    fallback = len(exits) - 2  # a degraded sample is answered by the exit below the cloud
    want_exit[got.degraded] = fallback
    want_pred[got.degraded] = np.argmax(probs[exits[fallback]][got.degraded], axis=1)
    wrong = (got.exit_index != want_exit) | (got.prediction != want_pred)
    live_pairs = got.local_p & answered[:, None]
    counts = np.bincount(got.exit_index + 1, minlength=len(exits) + 1)
    exit_fraction = {e: float(counts[k + 1]) / n_total for k, e in enumerate(exits)}
    exit_fraction["unclassified"] = float(counts[0]) / n_total
    valid = full.presence.any(axis=1)  # samples nobody saw count as wrong, as in run
    accuracy = evaluate_exits({e: full.probs[e] for e in exits}, labels, thresholds, valid).accuracy
    accuracy["overall"] = float(np.mean(got.prediction == labels))
    done = _done(rounds)
    sent, received, pairs = (sum(r[k] for r in done) for k in ("sent", "received", "n"))
    return {
        "n_samples": int(n_total),
        "accuracy": accuracy,
        "exit_fraction": exit_fraction,
        "bytes_per_device": float(got.payload[live_pairs].mean()) if live_pairs.any() else 0.0,
        "unclassified": int(np.count_nonzero(answered & (got.exit_index < 0))),
        "staged_matches_all_exits": bool(
            np.array_equal(full.exit_index, staged.exit_index)
            and np.array_equal(full.prediction, staged.prediction)
        ),
        "wire_bytes_per_device": sent / pairs if pairs else 0.0,
        "wire_received_bytes_per_device": received / pairs if pairs else 0.0,
        "offline_bytes_per_device": (
            float(staged.device_bytes[staged.presence].mean()) if staged.presence.any() else 0.0
        ),
        "mismatches_vs_offline": int(np.count_nonzero(answered & wrong)),
        "lost": int(n_total - answered.sum()),
        "duplicates": int(got.duplicates),
        "degraded": int(got.degraded.sum()),
        "cloud_answers": int(np.count_nonzero(answered & (got.exit_index == len(exits) - 1))),
        "device_retries": int(sum(r.get("retries", 0) for r in done)),
    }


def _done(rounds) -> list[dict]:
    """The round records of one site's devices (``rounds``: per device) that ran a round."""
    return [r for device_rounds in rounds for r in device_rounds if "start" in r]


def _percentiles(latency: np.ndarray, qs=(50, 99)) -> dict[str, float | None]:
    return {f"p{q}": float(np.percentile(latency, q)) if latency.size else None for q in qs}


def _timing(answers: list[SimpleNamespace], rounds, batch: int, exits, predicted) -> dict[str, Any]:
    """``latency_ms`` (per sample, from its round's start to its answer: ``{p50, p99}``
    and per exit ``{samples, measured: {p50, p95}[, predicted]}``), ``samples_per_s`` and
    ``cloud_samples_per_s`` over the sites ``answers`` (``rounds``: per site, per device,
    its round records; ``predicted``: per site, the cost model's latencies, or None)."""
    latency, firsts = [], []
    for got, site_rounds in zip(answers, rounds, strict=True):
        start_of, t0 = np.full(len(got.answered), np.nan), {}
        for r in _done(site_rounds):  # a round starts at its devices' earliest clock
            t0[r["start"]] = min(t0.get(r["start"], np.inf), r["t0"])
        for start, t in t0.items():
            if start >= 0 and start % batch == 0:
                start_of[start : start + batch] = t
        latency.append(np.where(got.answered, (got.t_done - start_of) * 1e3, np.nan))
        firsts += [min(t0.values())] if t0 else []
    latency = np.concatenate(latency)
    exit_index = np.concatenate([got.exit_index for got in answers])
    pred = None if predicted is None else np.concatenate(predicted)
    per_exit: dict[str, Any] = {}
    for k, name in enumerate(exits):
        rows = (exit_index == k) & np.isfinite(latency)
        if rows.any():
            per_exit[name] = {
                "samples": int(rows.sum()),
                "measured": _percentiles(latency[rows], (50, 95)),
            }
            if pred is not None:
                per_exit[name]["predicted"] = _percentiles(pred[rows], (50, 95))
    lasts = [float(np.nanmax(got.t_done)) for got in answers if got.answered.any()]
    wall = max(lasts) - min(firsts) if firsts and lasts else 0.0
    answered = sum(int(got.answered.sum()) for got in answers)
    cloud = int(np.count_nonzero(exit_index == len(exits) - 1))
    return {
        "latency_ms": {**_percentiles(latency[np.isfinite(latency)]), **per_exit},
        "samples_per_s": answered / wall if wall > 0 else 0.0,
        "cloud_samples_per_s": cloud / wall if wall > 0 else 0.0,
    }


def _predicted(h, plan, got: SimpleNamespace, tier_ms, rounds, seed: int = 0) -> np.ndarray:
    """``(N,)`` milliseconds the cost model predicts for each answered sample with the
    plan's radio link: its exit and its devices as answered live, the tiers' times on this
    host (``tier_ms``; a device's compute as its process measured it, ``compute_s`` of
    its round records ``rounds``, where it has it), and the draws the devices' radios
    waited by (:func:`ddnn_tf.core.cost.price.draws`, ``seed``)."""
    from ddnn_tf.core.cost.price import price
    from ddnn_tf.core.graph import device_tier

    n, tier_ms = len(got.answered), dict(tier_ms)
    for d, device_rounds in enumerate(rounds):
        ms = np.resize(np.asarray(tier_ms.get(device_tier(d), 0.0), np.float64), n)
        for r in device_rounds:
            if "compute_s" in r and 0 <= r["start"] < n:
                ms[r["start"] : r["start"] + plan.batch] = 1e3 * r["compute_s"]
        tier_ms[device_tier(d)] = ms
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


#: The counts summed over the sites.
_SUMMED = ("lost", "duplicates", "mismatches_vs_offline", "degraded")
#: The figures of each site in a report of several sites (with its timing).
_SITE_KEYS = ("n_samples", *_SUMMED, "wire_bytes_per_device", "cloud_answers")


def deploy_report(
    h, plan, y, xs, sites, rounds, thresholds, events, rss, site_rss, records, tier_ms=None
):
    """The report of :func:`ddnn_tf.serve.deploy.deploy` (its keys are on the Serving
    page): site 0's figures, but the timing and the counts of lost, duplicated, mismatched
    and degraded samples over every site; with several sites, also ``sites``, each one's.

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
    answers = [_answers(s.collector.answers, n_total, h.num_devices) for s in sites]
    predicted = None
    if plan.link:
        predicted = [
            _predicted(h, plan, a, tier_ms, r) for a, r in zip(answers, rounds, strict=True)
        ]
    per_site = [
        _site(h, y, xs, got, site_rounds, thresholds, plan.mode)
        for got, site_rounds in zip(answers, rounds, strict=True)
    ]
    main = {k: v for k, v in per_site[0].items() if k != "cloud_answers"}

    def timing(sites: slice) -> dict[str, Any]:
        some = None if predicted is None else predicted[sites]
        return _timing(answers[sites], rounds[sites], plan.batch, h.exits, some)

    raw = float(np.mean([float(entry["raw_bytes"]) for entry in h.manifest["inputs"]]))
    killed = events["killed_at"]
    result: dict[str, Any] = {
        "model": str(h.manifest.directory),
        "target": h.target,
        "split": plan.subset,
        **main,
        "exits": list(h.exits),
        "thresholds": {k: float(v) for k, v in thresholds.items()},
        "raw_bytes_per_device": raw,
        "communication_reduction": reduction(raw, main["bytes_per_device"]),
        "failed_devices": [] if killed is None else [plan.kill_device],
        "fail_prob": 0.0,
        "seed": 0,
        "summary_encoding": h.summary_encoding,
        "batch_size": plan.batch,
        **timing(slice(None)),
        "engine": plan.engine,
        "transport": plan.transport,
        "repeat": plan.repeat,
        **{k: sum(r[k] for r in per_site) for k in _SUMMED},
        "rss_mb": {k: [round(v, 1) for v in vs] for k, vs in rss.items()},
        "kill": None if killed is None else _kill(answers[0], plan.kill_device, killed),
        "cloud_down_after": events["cloud_down"],
        "restarts": events["restarts"],
        "mcu_devices": plan.mcu_devices,
        "mode": plan.mode,
        "link": None if plan.link is None else {"radio": plan.link, "wan": plan.wan},
    }
    if len(sites) > 1:
        result["sites"] = [
            {
                "site": k,
                "rss_mb": round(site_rss[k], 1),
                **{key: r[key] for key in _SITE_KEYS},
                **timing(slice(k, k + 1)),
            }
            for k, r in enumerate(per_site)
        ]
    if records:
        a = answers[0]
        result["samples"] = {
            "exit": a.exit_index.tolist(),
            "prediction": a.prediction.tolist(),
            "degraded": a.degraded.tolist(),
            "local_presence": a.local_p.tolist(),
        }
    return result


def _kill(got: SimpleNamespace, device: int, answered: int) -> dict[str, Any]:
    absent = np.flatnonzero(got.answered & ~got.local_p[:, device])
    return {
        "device": int(device),
        "answered_before_kill": int(answered),
        "first_sample_without_device": int(absent[0]) if absent.size else None,
    }


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
