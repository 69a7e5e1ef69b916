"""The text report of a priced hierarchy (``ddnn cost``, and the cost block of ``ddnn run``).

It reads the dict of :meth:`ddnn_tf.core.cost.price.Cost.to_dict` (plus the keys
``ddnn cost`` adds: ``instructions_per_sample``, ``exit_fraction``, ``thresholds``) and
prints: the energy per sample of a device by component, battery life, latency per exit,
the comparison with the other protocol mode and the two baselines, whether the rate is
feasible, and where every input came from. Standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["format_cost", "format_profile"]

_LABELS = {
    "compute": "compute",
    "summary_uplink": "summary uplink",
    "decision_downlink": "decision downlink",
    "feature_uplink": "feature uplink",
    "link_upkeep": "link upkeep",
    "sleep": "sleep",
}


def _mean(values: Mapping[str, Any]) -> float | None:
    xs = [v for v in values.values() if v is not None]
    return sum(xs) / len(xs) if xs else None


def _first(days: Mapping[str, Any]) -> float | None:
    """The battery life of the device that runs out first."""
    xs = [v for v in days.values() if v is not None]
    return min(xs) if xs else None


def _span(values: Mapping[str, Any], fmt: str) -> str:
    xs = [v for v in values.values() if v is not None]
    if not xs:
        return "-"
    lo, hi = min(xs), max(xs)
    return format(lo, fmt) if f"{lo:{fmt}}" == f"{hi:{fmt}}" else f"{lo:{fmt}}-{hi:{fmt}}"


def _energy(uj: float | None) -> str:
    if uj is None:
        return "-"
    if uj >= 1e5:
        return f"{uj / 1e3:,.0f} mJ"
    if uj >= 1e3:
        return f"{uj / 1e3:,.2f} mJ"
    return f"{uj:,.1f} uJ"


def _days(days: float | None) -> str:
    if days is None:
        return "-"
    return f"{days / 365.25:.1f} years" if days >= 730 else f"{days:,.1f} days"


def _latency_rows(latency: Mapping[str, Mapping[str, float]]) -> list[str]:
    rows = [f"  {'':<12}{'p50':>12}{'p95':>12}{'mean':>12}"]
    for name, v in latency.items():
        rows.append(f"  {name:<12}{v['p50']:>12,.1f}{v['p95']:>12,.1f}{v['mean']:>12,.1f}")
    return rows


def format_cost(cost: Mapping[str, Any]) -> str:
    """The readable report of a cost dict.

    Args:
        cost: :meth:`~ddnn_tf.core.cost.price.Cost.to_dict`, optionally with
            ``instructions_per_sample``, ``exit_fraction``, ``thresholds``, ``model``.

    Returns:
        The lines, joined.
    """
    p = cost["profiles"]
    lines = [
        f"{cost.get('model', 'hierarchy')} on {p['mcu']} + {p['radio']} (WAN {p['wan']}): "
        f"{cost['rate_hz']:g} sample/s, {cost['battery_mah']:g} mAh at {cost['battery_v']:g} V, "
        f"protocol {cost['mode']}"
    ]
    if "exit_fraction" in cost:
        t = ", ".join(f"{k}={v:.2f}" for k, v in cost.get("thresholds", {}).items()) or "-"
        fr = ", ".join(
            f"{k} {100 * v:.2f}%"
            for k, v in cost["exit_fraction"].items()
            if v or k != "unclassified"
        )
        lines.append(f"exits at T ({t}): {fr}")
    instructions = cost.get("instructions_per_sample")
    if instructions:
        first = next(iter(instructions.values()))
        measured = {d: v.get("measured") for d, v in instructions.items()}
        modelled = {d: v.get("modelled") for d, v in instructions.items()}
        text = f"instructions per sample ({first['core']}): "
        if any(v is not None for v in measured.values()):
            text += f"measured {_span(measured, ',.0f')} ({first.get('board', '?')}), "
        lines.append(text + f"modelled {_span(modelled, ',.0f')}")
    per_device = cost["energy_breakdown_uj"]
    lines += ["", f"energy per sample of a device ({len(per_device)} devices, mean):"]
    total = _mean(cost["energy_uj_per_sample"]) or 0.0
    for key, label in _LABELS.items():
        value = _mean({d: v[key] for d, v in per_device.items()})
        if value is None:
            continue
        share = 100 * value / total if total else 0.0
        lines.append(f"  {label:<20}{_energy(value):>14}  {share:5.1f} %")
    lines.append(f"  {'total':<20}{_energy(total):>14}")
    lines.append(
        f"battery life (the first device to run out): {_days(_first(cost['battery_days']))}"
    )
    lines += ["", "latency from sensor to answer (ms):", *_latency_rows(cost["latency_ms"])]
    lines += [
        "",
        f"  {'':<22}{'energy/sample':>15}{'battery':>14}{'p95 ms':>12}  feasible",
    ]
    modes = cost["modes"]
    rows = [(f"DDNN ({cost['mode']})", cost)]
    rows += [(f"DDNN ({m})", None) for m in ("paper", "eager") if m != cost["mode"]]
    rows += [("raw offload", cost["baselines"]["raw_offload"])]
    rows += [("always-cloud", cost["baselines"]["always_cloud"])]
    for label, block in rows:
        if block is None:
            m = modes[label[6:-1]]
            p95 = m["latency_p95_ms"]
            lines.append(
                f"  {label:<22}{_energy(m['energy_uj_per_sample']):>15}"
                f"{_days(m['battery_days']):>14}{'-' if p95 is None else f'{p95:,.1f}':>12}"
                f"  {'yes' if m['feasible'] else 'no'}"
            )
            continue
        p95 = block["latency_ms"].get("overall", {}).get("p95")
        lines.append(
            f"  {label:<22}{_energy(_mean(block['energy_uj_per_sample'])):>15}"
            f"{_days(_first(block['battery_days'])):>14}"
            f"{'-' if p95 is None else f'{p95:,.1f}':>12}  {'yes' if block['feasible'] else 'no'}"
        )
    lines.append(
        f"cheaper protocol here: {modes['cheaper']} ({modes['saving_percent']:.1f} % less "
        "energy per device per sample)"
    )
    if cost["limits"]:
        lines += ["", f"not feasible at {cost['rate_hz']:g} sample/s:"]
        lines += [f"  - {limit}" for limit in cost["limits"]]
        lines.append(f"  at most {cost['max_rate_hz']:.3g} sample/s on this radio")
    lines += ["", "where the numbers come from:"]
    lines += [f"  {k:<14}{v}" for k, v in cost["sources"].items()]
    lines.append(
        "  profiles      "
        + ", ".join(f"{k} {v}" for k, v in p.items())
        + " (every figure with its datasheet: ddnn cost --show NAME)"
    )
    return "\n".join(lines)


def format_profile(profile) -> str:
    """A profile's figures with their sources, one per line (``ddnn cost --show``)."""
    head = [f"{profile.name} ({profile.kind}): {profile.description}", f"file: {profile.origin}"]
    extra = [
        f"{k}: {getattr(profile, k)}"
        for k in ("core", "modulation", "downlink")
        if getattr(profile, k)
    ]
    width = max(len(k) for k in profile.values)
    rows = [f"  {k:<{width}}  {v:>12g}  {profile.source(k)}" for k, v in profile.values.items()]
    return "\n".join(head + ([", ".join(extra)] if extra else []) + rows)
