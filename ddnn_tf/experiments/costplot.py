"""The cost plot of ``ddnn cost --plot``: energy per sample and p95 latency against the
exit threshold T, with the calibrated T and the raw-offload and always-cloud baselines
marked (matplotlib, the ``[experiments]`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ddnn_tf.experiments.report import figure, png_bytes

__all__ = ["plot_cost_sweep"]

_BASELINES = (
    ("raw_offload", "raw offload", "tab:red"),
    ("always_cloud", "always-cloud", "tab:gray"),
)


def _mean(values: dict[str, Any]) -> float:
    xs = [v for v in values.values() if v is not None]
    return float(np.mean(xs)) if xs else float("nan")


def plot_cost_sweep(result: dict[str, Any], path: str | Path) -> Path:
    """Write the plot of a ``ddnn cost`` result with a ``sweep`` (``model_cost(sweep=True)``).

    Left: mean energy per device per sample against T; right: the p95 latency from sensor
    to answer. A dotted vertical line marks the calibrated T (the model's), dashed
    horizontal lines the baselines. A log scale is used where the values span more than
    a factor of 20.

    Returns:
        The path written.
    """
    rows = result["sweep"]
    t = [r["threshold"] for r in rows]
    fig, (energy_ax, latency_ax) = figure(ncols=2, width=10.0, height=4.0)
    panels = (
        (
            energy_ax,
            [r["energy_uj_per_sample"] for r in rows],
            "energy_uj_per_sample",
            "Energy per device per sample (uJ)",
        ),
        (latency_ax, [r["latency_p95_ms"] for r in rows], "latency_ms", "p95 latency (ms)"),
    )
    mode = result["mode"]
    for ax, values, key, label in panels:
        ax.plot(t, values, "o-", color="tab:blue", label=f"DDNN ({mode})")
        marks = list(values)
        for name, text, color in _BASELINES:
            block = result["baselines"][name]
            level = (
                _mean(block[key])
                if key == "energy_uj_per_sample"
                else block[key].get("overall", {}).get("p95", float("nan"))
            )
            marks.append(level)
            ax.axhline(level, ls="--", color=color, lw=1.2, label=text)
        for calibrated in result["thresholds"].values():
            ax.axvline(
                calibrated, ls=":", color="k", lw=1.0, label=f"calibrated T = {calibrated:g}"
            )
        finite = [m for m in marks if m is not None and np.isfinite(m) and m > 0]
        if finite and max(finite) / min(finite) > 20:
            ax.set_yscale("log")
        ax.set_xlabel("exit threshold T")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    energy_ax.legend(fontsize=8)
    p = result["profiles"]
    fig.suptitle(
        f"{Path(result.get('model', '')).name}: {p['mcu']} + {p['radio']}, "
        f"{result['rate_hz']:g} sample/s"
    )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png_bytes(fig))
    return out
