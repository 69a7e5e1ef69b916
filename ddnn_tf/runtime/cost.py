"""What a sample of a converted model costs on hardware: the runtime's side of ``ddnn cost``.

:func:`model_cost` runs the model's tier binaries on a data split (the orchestrator, at
the model's thresholds), and prices the result with
:func:`ddnn_tf.core.cost.price.price`, from inputs measured here where they can be:

* where each sample exits, and the bytes each device sent (payload lengths the runtime
  actually encoded);
* each device tier's instructions per sample from the manifest's C target
  (``c.instructions``: counted on the emulated board by ``ddnn mcu --count-instructions``,
  or the static model's when no count is recorded);
* the gateway's and the cloud's tiers timed on this host, one sample at a time
  (:func:`tier_latency_ms`), scaled by the compute profiles' speed factors;

and everything else from the hardware profiles. The report says which is which.
Numpy and the interpreters only (no TensorFlow).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from ddnn_tf.core.cost.price import Cost, price
from ddnn_tf.core.cost.profiles import load_profile
from ddnn_tf.core.cost.traffic import expected_bytes_per_device
from ddnn_tf.core.exits import threshold_sweep
from ddnn_tf.core.manifest import Manifest
from ddnn_tf.core.vocab import PROTOCOL_MODES
from ddnn_tf.errors import ConfigError
from ddnn_tf.runtime.dataset import load_subset
from ddnn_tf.runtime.orchestrator import Hierarchy

__all__ = [
    "check_hardware",
    "device_instructions",
    "model_cost",
    "model_pricer",
    "no_c_target",
    "price_run",
    "priced_sweep",
    "sweep_bytes_fn",
    "sweep_costs",
    "tier_latency_ms",
]

#: Samples timed one at a time for the tiers' latency.
TIMING_SAMPLES = 200


def no_c_target(directory: str | Path) -> str:
    """The error of a model without the C target, saying how to add it."""
    return (
        f"{directory} has no C target, so no device instruction counts: add it with "
        f"`python scripts/add_mcu_targets.py {directory} --targets c` (or convert the run "
        "with `ddnn convert RUN --target portable,lce,c`), then count them with "
        f"`ddnn mcu {directory} --count-instructions`."
    )


def device_instructions(manifest: Manifest, core: str) -> tuple[list[float], dict, str]:
    """Each device tier's instructions per sample on ``core``, from the manifest.

    Returns:
        ``(values, detail, source)``: the numbers priced (measured where the manifest
        records a count, else modelled), ``{tier: {measured, modelled, error_percent,
        core, board, samples}}``, and a line saying where they come from.

    Raises:
        ConfigError: a model without the C target, or without counts on ``core``.
    """
    tiers = [t for t, e in manifest["tiers"].items() if e["role"] == "device"]
    values, detail = [], {}
    measured_any = modelled_any = False
    for tier in tiers:
        c = manifest["tiers"][tier].get("c")
        if c is None:
            raise ConfigError(no_c_target(manifest.directory))
        entry = c.get("instructions", {}).get(core)
        if entry is None:
            raise ConfigError(
                f"{manifest.directory}: {tier}'s C target records no instructions on {core}; "
                f"count them with `ddnn mcu {manifest.directory} --count-instructions`."
            )
        measured = entry.get("measured")
        values.append(float(measured if measured is not None else entry["modelled"]))
        measured_any |= measured is not None
        modelled_any |= measured is None
        detail[tier] = {
            "measured": measured,
            "modelled": entry["modelled"],
            "error_percent": entry.get("error_percent"),
            "core": core,
            "board": entry.get("board"),
            "samples": entry.get("samples"),
        }
    first = next(iter(detail.values()))
    if measured_any and not modelled_any:
        source = (
            f"measured here: exact counts on the emulated {first['board']} over "
            f"{first['samples']} test samples per tier (manifest c.instructions)"
        )
    elif measured_any:
        source = "measured here for some tiers, modelled (static op count) for the others"
    else:
        source = "modelled: the static op count of the generated C (no count recorded)"
    return values, detail, source


def tier_latency_ms(
    hierarchy: Hierarchy, xs, *, samples: int = TIMING_SAMPLES
) -> dict[str, np.ndarray]:
    """Each tier's milliseconds per sample on this host, one sample at a time.

    The first ``samples`` samples run through every tier (no early exit), one call each;
    the interpreters' own time is kept per tier.

    Returns:
        ``{tier: (K,) ms}``.
    """
    x = [np.asarray(v)[:samples] for v in getattr(xs, "x", xs)]
    n = len(x[0])
    out = {t: np.zeros(n) for t in hierarchy.tiers}
    for i in range(n):
        one = hierarchy.run([v[i : i + 1] for v in x], all_exits=True)
        for tier, seconds in one.tier_seconds.items():
            out[tier][i] = 1e3 * seconds
    return out


def _measured_bytes(hierarchy: Hierarchy, result) -> tuple[list[float], list[float], list[float]]:
    """Summary, upward and raw bytes per device: the payloads sent, else the manifest's."""
    wire = hierarchy.manifest["wire"]
    summary_nb = wire["summary"]["nbytes"] if hierarchy.topology.has_local else 0
    summary, upward = [], []
    for d, tier in enumerate(hierarchy.device_tiers):
        sent = result.link_bytes["device_to_local"][:, d]
        summary.append(float(sent.max()) if sent.any() else float(summary_nb))
        up = result.link_bytes["device_to_upper"][:, d]
        features = wire.get("features", {}).get(tier, {}).get("nbytes")
        upward.append(float(up.max()) if up.any() else float(features or 0))
    raw = [float(e["raw_bytes"]) for e in hierarchy.manifest["inputs"]]
    return summary, upward, raw


def check_hardware(
    *,
    mcu,
    radio,
    wan="broadband",
    gateway="this-host",
    cloud="this-host",
    rate_hz: float = 1.0,
    battery_mah: float = 225.0,
    battery_v: float = 3.0,
    mode: str = "paper",
    seed: int = 0,
) -> str:
    """Check :func:`model_pricer`'s hardware keywords before any work; returns the MCU's core.

    Raises:
        ConfigError / FormatError / FileNotFoundError: a bad value, mode or profile.
    """
    for name, value in (
        ("rate_hz", rate_hz),
        ("battery_mah", battery_mah),
        ("battery_v", battery_v),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfigError(f"expected a positive number, got {value!r}.", argument=name)
    if mode not in PROTOCOL_MODES:
        raise ConfigError(
            f"expected one of {', '.join(PROTOCOL_MODES)}, got {mode!r}.", argument="mode"
        )
    load_profile(radio, "radio")
    load_profile(wan, "wan")
    load_profile(gateway, "compute", argument="gateway")
    load_profile(cloud, "compute", argument="cloud")
    return load_profile(mcu, "mcu").core


def model_pricer(
    hierarchy: Hierarchy,
    result,
    *,
    mcu: str,
    radio: str,
    wan: str = "broadband",
    gateway: str = "this-host",
    cloud: str = "this-host",
    rate_hz: float = 1.0,
    battery_mah: float = 225.0,
    battery_v: float = 3.0,
    mode: str = "paper",
    tier_ms: dict[str, np.ndarray] | None = None,
    seed: int = 0,
):
    """A function ``exits -> Cost`` with every other input of the model fixed.

    Args:
        hierarchy: the model.
        result: a staged :class:`~ddnn_tf.runtime.result.RunResult` (its payload sizes).
        mcu: microcontroller profile (name or path).
        radio: radio profile.
        wan: the gateway's WAN link profile.
        gateway: compute profile of the gateway's host.
        cloud: compute profile of the cloud's host.
        rate_hz: samples per second.
        battery_mah: battery capacity.
        battery_v: battery voltage.
        mode: ``paper`` or ``eager``.
        tier_ms: the tiers' measured times (:func:`tier_latency_ms`).
        seed: seed of the random waits.

    Returns:
        ``(pricer, instructions_detail)``.

    Raises:
        ConfigError: an unknown profile, a model without the C target.
    """
    core = load_profile(mcu, "mcu").core
    values, detail, source = device_instructions(hierarchy.manifest, core)
    summary, upward, raw = _measured_bytes(hierarchy, result)
    sources = {
        "instructions": source,
        "bytes": "measured here: the payloads the runtime encoded (manifest wire formats)",
        "tier_ms": (
            f"measured here: each tier timed on {len(next(iter(tier_ms.values())))} samples, "
            "one at a time, on this host (times the compute profiles' speed factors)"
            if tier_ms
            else "not measured: 0 ms"
        ),
    }
    pricer = functools.partial(
        price,
        hierarchy.topology,
        instructions=values,
        mcu=mcu,
        radio=radio,
        wan=wan,
        gateway=gateway,
        cloud=cloud,
        rate_hz=rate_hz,
        battery_mah=battery_mah,
        battery_v=battery_v,
        mode=mode,
        tier_ms=tier_ms,
        summary_nbytes=summary,
        upward_nbytes=upward,
        raw_nbytes=raw,
        seed=seed,
    )
    return functools.partial(_with_sources, pricer, sources), detail


def _with_sources(pricer, sources: dict[str, str], exits, **kwargs) -> Cost:
    extra = {"exits": kwargs.pop("exits_source", "given"), **sources}
    return pricer(exits, sources=extra, **kwargs)


def sweep_bytes_fn(result, exits: tuple[str, ...]):
    """A ``bytes_fn`` for :func:`ddnn_tf.core.exits.threshold_sweep` from measured payloads.

    ``result`` is an all-exits :class:`~ddnn_tf.runtime.RunResult`, in which every alive
    device sent its summary and its upward payload for every sample, so their mean sizes
    are the measured ``summary_nbytes`` and ``feature_nbytes`` of the cost model.
    """
    alive = result.presence
    summary = float(result.link_bytes["device_to_local"][alive].mean()) if alive.any() else 0.0
    upper = float(result.link_bytes["device_to_upper"][alive].mean()) if alive.any() else 0.0

    def fn(fractions: dict[str, float]) -> float:
        return expected_bytes_per_device(
            summary_nbytes=summary,
            feature_nbytes=upper,
            exit_fraction={e: fractions[e] for e in exits},
            has_local="local" in exits,
        )

    return fn


def sweep_costs(pricer, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Energy per device per sample and p95 latency of each threshold-sweep row.

    Returns:
        One ``{"energy_uj_per_sample": mean over devices, "latency_p95_ms": overall p95}``
        per row, priced from the row's exit fractions.
    """
    out = []
    for row in rows:
        cost = pricer(row["exit_fraction"], exits_source="the sweep row's exit fractions")
        d = cost.to_dict()
        energy = [v for v in d["energy_uj_per_sample"].values() if v is not None]
        overall = d["latency_ms"].get("overall", {})
        out.append(
            {
                "energy_uj_per_sample": float(np.mean(energy)) if energy else None,
                "latency_p95_ms": overall.get("p95"),
            }
        )
    return out


def price_run(
    hierarchy: Hierarchy,
    staged,
    xs,
    subset: str,
    *,
    timing_samples: int = TIMING_SAMPLES,
    **hardware: Any,
) -> tuple[Any, dict, Cost]:
    """Price a staged run of ``hierarchy`` on the ``subset`` samples ``xs``: its exits and
    bytes as measured, the tiers' latency timed on the first ``timing_samples`` samples.

    Returns:
        The pricer (:func:`model_pricer`), the devices' instructions per sample, and the
        run's :class:`~ddnn_tf.core.cost.price.Cost`.
    """
    times = tier_latency_ms(hierarchy, xs, samples=timing_samples)
    pricer, detail = model_pricer(hierarchy, staged, tier_ms=times, **hardware)
    t = ", ".join(f"{k}={v:g}" for k, v in staged.thresholds.items()) or "no early exit"
    n = len(staged.exit_index)
    cost = pricer(
        staged.exit_index,
        presence=staged.presence,
        exits_source=f"measured here: {n} {subset} samples at T ({t})",
    )
    return pricer, detail, cost


def priced_sweep(full, y, exits: tuple[str, ...], pricer=None) -> list[dict[str, Any]]:
    """The threshold sweep of an all-exits run ``full`` on labels ``y``, its bytes as
    measured, each row priced by ``pricer`` (None: bytes only)."""
    probs = {e: full.probs[e] for e in exits}
    rows = threshold_sweep(probs, y, bytes_fn=sweep_bytes_fn(full, exits), valid=full.valid)
    if pricer is not None:
        for row, extra in zip(rows, sweep_costs(pricer, rows), strict=True):
            row.update(extra)
    return rows


def model_cost(
    model: str | Path | Hierarchy,
    data=None,
    *,
    threshold=None,
    path: str | None = None,
    subset: str = "test",
    limit: int | None = None,
    timing_samples: int = TIMING_SAMPLES,
    sweep: bool = False,
    **hardware: Any,
) -> dict[str, Any]:
    """Price a converted model on hardware: the dict ``ddnn cost --json`` prints.

    Args:
        model: a converted model directory (with the C target), or a :class:`Hierarchy`.
        data: a ``Dataset`` or a loader name; default: the one the manifest records.
        threshold: T for every early exit (default: the manifest's).
        path: data file or directory for file-based loaders.
        subset: ``test`` or ``val``.
        limit: the first ``limit`` samples only.
        timing_samples: samples timed one at a time for the tiers' latency.
        sweep: add ``sweep``: the threshold sweep with energy and p95 latency per T.
        **hardware: :func:`model_pricer`'s keywords: ``mcu`` and ``radio`` (required),
            ``wan``, ``gateway``, ``cloud``, ``rate_hz``, ``battery_mah``, ``battery_v``,
            ``mode``, ``seed``.

    Returns:
        :meth:`~ddnn_tf.core.cost.price.Cost.to_dict` plus ``model``, ``split``,
        ``n_samples``, ``exits``, ``thresholds``, ``exit_fraction``, ``accuracy`` (overall),
        ``instructions_per_sample`` (per device: ``measured``, ``modelled``,
        ``error_percent``) and, with ``sweep``, ``sweep`` rows ``{threshold,
        exit_fraction, accuracy_overall, bytes_per_device, energy_uj_per_sample,
        latency_p95_ms}``.

    Raises:
        ConfigError / FormatError / FileNotFoundError: a bad model, profile, dataset or
            value (a model without the C target says how to add it).
    """
    from ddnn_tf.core.checks import check_labels

    core = check_hardware(**hardware)  # bad values and profiles fail before anything runs
    h = model if isinstance(model, Hierarchy) else Hierarchy(model)
    device_instructions(h.manifest, core)  # so does a model without the C target
    samples = load_subset(h, data, path, subset, limit)
    y = check_labels(samples.y, h.num_classes, where=f"{subset} labels")
    staged = h.run(samples.x, thresholds=threshold, batch_size=256)
    pricer, detail, cost = price_run(
        h, staged, samples.x, subset, timing_samples=timing_samples, **hardware
    )
    out = {
        "model": str(h.manifest.directory),
        "split": subset,
        "n_samples": int(len(y)),
        "exits": list(h.exits),
        "thresholds": dict(staged.thresholds),
        "exit_fraction": staged.exit_fraction(),
        "accuracy": staged.accuracy(y),
        "instructions_per_sample": detail,
        **cost.to_dict(),
    }
    if sweep and len(h.exits) > 1:
        full = h.run(samples.x, thresholds=staged.thresholds, all_exits=True, batch_size=256)
        out["sweep"] = priced_sweep(full, y, h.exits, pricer)
    return out
