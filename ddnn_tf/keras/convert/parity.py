"""Parity of converted tier binaries with their Keras tier models, tier by tier and
end to end. The binaries run on the runtime's :class:`~ddnn_tf.runtime.TierRunner`,
exactly as a deployment runs them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ddnn_tf.core import manifest as mf
from ddnn_tf.core.checks import check_views
from ddnn_tf.core.exits import softmax
from ddnn_tf.core.graph import Port, feed_tier, tier_graph
from ddnn_tf.errors import ConfigError
from ddnn_tf.keras.convert.export import keras_tier_outputs
from ddnn_tf.keras.rundir import Run, load_run
from ddnn_tf.runtime.tiers import TierRunner

__all__ = ["PARITY_TOLERANCE", "format_parity", "parity"]

#: Parity of a float conversion with its Keras tier: feature maps bit for bit; summaries
#: and logits within ``atol + rtol * |keras|`` (rounded int4 summaries: off by at most one
#: step on at most ``max_rounding_steps`` of the values); argmax agreeing on
#: ``min_argmax_agreement`` of the samples.
PARITY_TOLERANCE = {
    "atol": 1e-3,
    "rtol": 1e-4,
    "min_argmax_agreement": 0.999,
    "max_rounding_steps": 1e-4,
}


def _compare(port: Port, got: np.ndarray, ref: np.ndarray) -> dict[str, Any]:
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        raise ConfigError(f"{port.name}: TFLite shape {got.shape} != Keras shape {ref.shape}.")
    n = len(ref)
    if port.role == "features":
        flips = int(np.count_nonzero((got > 0) != (ref > 0)))
        binary = bool(np.all(np.abs(got) == 1.0))
        return {
            "n": n,
            "bits": int(ref.size),
            "bits_differ": flips,
            "identical": flips == 0 and binary,
        }
    diff = np.abs(got - ref)
    allowed = PARITY_TOLERANCE["atol"] + PARITY_TOLERANCE["rtol"] * np.abs(ref)
    mismatch = int(np.count_nonzero(got.argmax(-1) != ref.argmax(-1)))
    within = bool(np.all(diff <= allowed))
    result = {
        "n": n,
        "max_abs_diff": float(diff.max()) if diff.size else 0.0,
        "within_tolerance": within,
        "argmax_mismatches": mismatch,
        "argmax_agreement": 1.0 - mismatch / max(n, 1),
    }
    if port.role == "summary" and _integers(got) and _integers(ref):
        # A rounded (int4) summary: round-off before the rounding may move a value that
        # sits on a half-integer by one step, on a tiny share of values.
        steps = int(np.count_nonzero(diff > 0))
        result["rounding_steps"] = steps
        result["within_tolerance"] = bool(np.all(diff <= 1.0)) and (
            steps <= PARITY_TOLERANCE["max_rounding_steps"] * max(ref.size, 1)
        )
    return result


def _integers(values: np.ndarray) -> bool:
    return bool(np.all(values == np.round(values)))


def _port_ok(result: dict[str, Any]) -> bool:
    if "identical" in result:
        return result["identical"]
    return (
        result["within_tolerance"]
        and result["argmax_agreement"] >= PARITY_TOLERANCE["min_argmax_agreement"]
    )


def parity(
    run: Run | str | Path,
    out_dir: str | Path,
    dataset=None,
    *,
    split: str = "test",
    limit: int | None = None,
    presence: np.ndarray | None = None,
) -> dict[str, Any]:
    """Compare every converted tier with its Keras tier model, and the exits end to end.

    Per tier and target, the binary gets the same inputs as the Keras tier (the Keras
    outputs of the tiers below), so each tier is judged on its own: feature maps must be
    identical bit for bit, summaries and logits within :data:`PARITY_TOLERANCE`, with the
    same argmax on at least 99.9% of samples. End to end, the binaries are chained
    (each on the binaries' outputs below) and every exit's accuracy is compared with
    Keras: the accuracy cost of a conversion (``int8`` in particular).

    Args:
        run: the run (or its directory) the model was converted from.
        out_dir: the converted model directory.
        dataset: the data (default: the run's dataset, reloaded from its spec).
        split: ``test``, ``val`` or ``train``.
        limit: use the first ``limit`` samples only.
        presence: optional ``(N, D)`` 0/1 device presence (default: all present).

    Returns:
        ``{"n", "split", "quantize", "tolerance", "tiers": {tier: {target: {output:
        stats}}}, "accuracy": {"keras": {exit: acc}, target: {exit: acc}}, "ok"}``;
        ``ok`` is whether every float tier meets the parity criteria (int8 tiers are
        reported, not judged).

    Raises:
        FileNotFoundError / ValueError: a missing run or model, or a model converted
            from another topology.
    """
    if not isinstance(run, Run):
        run = load_run(run)
    manifest = mf.load_manifest(out_dir)
    topology = run.topology
    if manifest["topology"] != topology.to_dict():
        raise ConfigError(f"{out_dir} was converted from another model than run {run.path}.")
    plans = tier_graph(topology, manifest["split"])
    dataset = dataset if dataset is not None else run.load_data()
    data = getattr(dataset, split)
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"expected a positive integer, got {limit!r}.", argument="limit")
        data = data.subset(slice(0, limit))
    xs = run.ddnn.sensor_values(check_views(topology.input_shapes, data.x, where=f"{split} split"))
    n = len(data.y)
    if presence is None:
        presence = np.ones((n, topology.num_devices), np.float32)
    presence = np.broadcast_to(np.asarray(presence, np.float32), (n, topology.num_devices))
    ref = keras_tier_outputs(run.ddnn, plans, xs, presence)

    def accuracies(outs) -> dict[str, float]:
        acc = {}
        for plan in plans:
            for port in plan.outputs:
                if port.role == "logits":
                    pred = softmax(outs[plan.name][port.name].astype(np.float64)).argmax(-1)
                    acc[port.exit] = float((pred == data.y).mean())
        return acc

    report: dict[str, Any] = {
        "n": n,
        "split": split,
        "quantize": manifest.get("quantize", "none"),
        "tolerance": dict(PARITY_TOLERANCE),
        "tiers": {},
        "accuracy": {"keras": accuracies(ref)},
    }
    ok = True
    for target in manifest["targets"]:
        chained: dict[str, dict[str, np.ndarray]] = {}
        for plan in plans:
            tier = TierRunner.from_manifest(manifest, plan.name, target)
            got = tier(feed_tier(plan, xs, presence, ref))
            stats = {p.name: _compare(p, got[p.name], ref[plan.name][p.name]) for p in plan.outputs}
            judged = not manifest["tiers"][plan.name].get("quantized", False)
            for s in stats.values():
                s["ok"] = _port_ok(s) if judged else None  # int8 tiers: reported, not judged
                ok = ok and s["ok"] is not False
            report["tiers"].setdefault(plan.name, {})[target] = stats
            chained[plan.name] = tier(feed_tier(plan, xs, presence, chained))
        report["accuracy"][target] = accuracies(chained)
    report["ok"] = ok
    return report


def format_parity(report: dict[str, Any]) -> str:
    """A readable table of a :func:`parity` report.

    Args:
        report: from :func:`parity`.

    Returns:
        The table, one line per tier, target and output, then the exit accuracies.
    """
    lines = [
        f"parity on {report['n']} {report['split']} samples (quantize={report['quantize']}; "
        f"logits/summaries: |diff| <= {report['tolerance']['atol']} + "
        f"{report['tolerance']['rtol']}*|keras|, argmax agreement >= "
        f"{report['tolerance']['min_argmax_agreement']:.1%}; features bit for bit)",
        f"{'tier':<18}{'target':<10}{'output':<10}{'result':<48}ok",
    ]
    for tier, by_target in report["tiers"].items():
        for target, outputs in by_target.items():
            for name, s in outputs.items():
                if "identical" in s:
                    text = f"{s['bits_differ']} of {s['bits']} bits differ"
                else:
                    text = (
                        f"max|diff| {s['max_abs_diff']:.2e}, argmax mismatches "
                        f"{s['argmax_mismatches']}/{s['n']}"
                    )
                verdict = {True: "yes", False: "NO", None: "n/a (int8)"}[s["ok"]]
                lines.append(f"{tier:<18}{target:<10}{name:<10}{text:<48}{verdict}")
    lines.append("exit accuracy (binaries chained end to end):")
    for who, accs in report["accuracy"].items():
        lines.append(f"  {who:<9}" + "  ".join(f"{e} {a:.4f}" for e, a in accs.items()))
    lines.append(f"parity {'OK' if report['ok'] else 'FAILED'}")
    return "\n".join(lines)
