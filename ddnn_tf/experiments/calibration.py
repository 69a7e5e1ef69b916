"""Beyond the paper: does the risk rule's guarantee hold on data nobody tuned for?

``ddnn experiments calibration --model tflite_models/fmnist6_mlpcc --data fmnist6`` draws
validation subsets of several sizes from the validation split (``--draws`` of each, without
replacement; the whole split once), calibrates the exit thresholds on each with the rule
under test (the ``default`` preset's, ``risk:0.5``) and with a baseline (``within:0.25``),
and measures what each choice does on the test split: the accuracy drop against the
all-cloud accuracy, the local-exit share, and the share of draws whose drop exceeds the
rule's bound (DELTA for ``risk``, D for ``within``). The exits' probabilities are
computed once (through the converted binaries with ``--model``, else from the ``default``
preset trained by the lab), so the draws cost only numpy. Not part of ``all``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ddnn_tf.core.calibration import calibrate, parse_calibrate
from ddnn_tf.core.exits import exit_points, predictions
from ddnn_tf.experiments.lab import Lab
from ddnn_tf.experiments.report import (
    Column,
    ExperimentResult,
    figure,
    markdown_table,
    png_bytes,
)

__all__ = ["CALIBRATION_COLUMNS", "calibration_experiment", "exit_probabilities", "guarantee_rows"]

CALIBRATION_COLUMNS = [
    Column("rule", "Rule"),
    Column("val_size", "Validation samples", "int"),
    Column("draws", "Draws", "int"),
    Column("certified", "Certified (%)", "pct"),
    Column("local_exit", "Local exits (%), mean", "pct"),
    Column("overall", "Overall acc. (%), mean", "pct"),
    Column("drop_mean", "Drop (points), mean", "num2"),
    Column("drop_p90", "Drop, 90th pct.", "num2"),
    Column("drop_max", "Drop, max", "num2"),
    Column("bound", "Bound (points)", "num2"),
    Column("exceed", "Drop > bound (% of draws)", "pct"),
    Column("risk_exceed", "Risk > bound (% of draws)", "pct"),
]
_PATH_COLUMNS = [
    Column("threshold", "T", "t"),
    Column("local_exit", "Local exits (%)", "pct"),
    Column("overall", "Overall acc. (%)", "pct"),
    Column("drop", "Drop (points)", "num2"),
    Column("drop_se", "± s.e.", "num2"),
    Column("risk", "Risk (points)", "num2"),
    Column("risk_se", "± s.e.", "num2"),
]


def exit_probabilities(lab: Lab) -> tuple[dict, dict, Any, str]:
    """Every exit's probabilities on the validation and test splits, computed once.

    Returns:
        ``(val, test, topology, source)``: ``{exit: (N, C)}`` per split, the topology,
        and what produced them (the model directory, or the trained preset).
    """
    data, model = lab.dataset, lab.settings.model
    if model is not None:
        from ddnn_tf.runtime import Hierarchy

        h = Hierarchy(model)
        lab.log(f"[calibration] running {model} on the validation and test splits")
        val, test = (
            h.run(s.x, all_exits=True, batch_size=512).probs for s in (data.val, data.test)
        )
        return (
            {e: val[e] for e in h.exits},
            {e: test[e] for e in h.exits},
            h.topology,
            f"the converted model `{model}` (its binaries, through the runtime)",
        )
    from ddnn_tf.keras.train import predict_exits

    run = lab.preset("default")
    val, test = (predict_exits(run.ddnn, s.x) for s in (data.val, data.test))
    return val, test, run.topology, f"the `default` preset, {lab.settings.epochs} epochs"


class _Test:
    """The test split's view of any thresholds: drop and risk against the top exit."""

    def __init__(self, probs: dict[str, np.ndarray], y: np.ndarray):
        self.names = list(probs)
        self.arrays = [probs[e] for e in self.names]
        self.y = y
        self.top_right = np.argmax(self.arrays[-1], axis=1) == y
        self._cache: dict[tuple, dict[str, float]] = {}

    def at(self, thresholds: dict[str, float]) -> dict[str, float]:
        key = tuple(thresholds[e] for e in self.names[:-1])
        if key not in self._cache:
            index = exit_points(self.arrays, list(key))
            right = predictions(self.arrays, index) == self.y
            diff = self.top_right.astype(float) - right  # per sample: +1 lost, -1 gained
            lost = self.top_right & ~right
            n = len(self.y)
            self._cache[key] = {
                "local_exit": float(np.mean(index == 0)),
                "overall": float(np.mean(right)),
                "drop": 100 * float(diff.mean()),
                "drop_se": 100 * float(diff.std(ddof=1) / math.sqrt(n)),
                "risk": 100 * float(lost.mean()),
                "risk_se": 100 * float(lost.std(ddof=1) / math.sqrt(n)),
            }
        return self._cache[key]


def guarantee_rows(
    val: dict[str, np.ndarray],
    val_y: np.ndarray,
    test: dict[str, np.ndarray],
    test_y: np.ndarray,
    topology,
    *,
    rules: list[str],
    sizes: list[int],
    draws: int,
    seed: int = 0,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], _Test]:
    """Calibrate on ``draws`` random validation subsets of each size, with each rule.

    Args:
        val: the exits' validation probabilities (the pool to draw from).
        val_y: their labels.
        test: the exits' probabilities on the test split.
        test_y: their labels.
        topology: the hierarchy (the byte rule needs it).
        rules: calibration rules (:func:`~ddnn_tf.core.calibration.parse_calibrate`).
        sizes: subset sizes; each below the pool's size is drawn ``draws`` times without
            replacement; the whole pool is used once, last.
        draws: subsets per size.
        seed: seed of the draws (the same subsets for every rule).

    Returns:
        ``(rows, per_draw, test)``: one summary row per rule and size
        (:data:`CALIBRATION_COLUMNS`), one row per draw, and the test split's view.
    """
    n = len(val_y)
    plan = [(s, draws) for s in sorted(set(sizes)) if s < n] + [(n, 1)]
    rng = np.random.default_rng(seed)
    subsets = {
        size: [rng.choice(n, size, replace=False) if size < n else np.arange(n) for _ in range(k)]
        for size, k in plan
    }
    view = _Test(test, test_y)
    rows, per_draw = [], []
    for rule in rules:
        parsed = parse_calibrate(rule)
        bound = parsed.value if parsed.kind in ("risk", "within") else None
        for size, _ in plan:
            outcomes = []
            for k, idx in enumerate(subsets[size]):
                c = calibrate({e: p[idx] for e, p in val.items()}, val_y[idx], topology, rule)
                outcome = {**view.at(c.thresholds), "certified": c.certified}
                outcome.update(rule=parsed.text, val_size=size, draw=k, **c.thresholds)
                outcomes.append(outcome)
            per_draw += outcomes
            drops = np.array([o["drop"] for o in outcomes])
            risks = np.array([o["risk"] for o in outcomes])
            rows.append(
                {
                    "rule": parsed.text,
                    "val_size": size,
                    "draws": len(outcomes),
                    "certified": (
                        float(np.mean([bool(o["certified"]) for o in outcomes]))
                        if parsed.kind == "risk"
                        else None
                    ),
                    "local_exit": float(np.mean([o["local_exit"] for o in outcomes])),
                    "overall": float(np.mean([o["overall"] for o in outcomes])),
                    "drop_mean": float(drops.mean()),
                    "drop_p90": float(np.percentile(drops, 90)),
                    "drop_max": float(drops.max()),
                    "bound": bound,
                    "exceed": None if bound is None else float(np.mean(drops > bound)),
                    "risk_exceed": (
                        float(np.mean(risks > bound)) if parsed.kind == "risk" else None
                    ),
                }
            )
    return rows, per_draw, view


def _plot(rows, per_draw, rules: list[str], bounds: dict[str, float | None], title: str):
    fig, (ax, bx) = figure(ncols=2, width=11.0, height=4.4)
    colors = ("tab:blue", "tab:orange", "tab:green", "tab:red")
    sizes = sorted({r["val_size"] for r in rows})
    x_of = {s: i for i, s in enumerate(sizes)}
    jitter = np.random.default_rng(0)
    for j, rule in enumerate(rules):
        color, offset = colors[j % len(colors)], (j - (len(rules) - 1) / 2) * 0.22
        mine = [o for o in per_draw if o["rule"] == rule]
        xs = np.array([x_of[o["val_size"]] + offset for o in mine])
        xs = xs + jitter.uniform(-0.06, 0.06, len(xs))
        ax.scatter(xs, [o["drop"] for o in mine], s=5, alpha=0.25, color=color)
        summary = [r for r in rows if r["rule"] == rule]
        at = [x_of[r["val_size"]] + offset for r in summary]
        ax.plot(at, [r["drop_p90"] for r in summary], "v-", color=color, label=f"{rule}: 90th pct.")
        ax.plot(
            at, [r["drop_mean"] for r in summary], "o--", color=color, ms=4, label=f"{rule}: mean"
        )
        if bounds.get(rule) is not None:
            ax.axhline(bounds[rule], color=color, lw=1.0, ls=":", label=f"{rule}: its bound")
        bx.plot(
            [x_of[r["val_size"]] for r in summary],
            [100 * r["local_exit"] for r in summary],
            "o-",
            color=color,
            label=rule,
        )
    for a in (ax, bx):
        a.set_xticks(range(len(sizes)), [str(s) for s in sizes])
        a.set_xlabel("Validation samples calibrated on")
        a.grid(alpha=0.3)
    ax.set_ylabel("Accuracy drop vs. all-cloud on the test split (points)")
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title("Drop on the test split, per draw")
    bx.set_ylabel("Local exits on the test split (%), mean over draws")
    bx.set_ylim(0, 100)
    bx.legend(fontsize=8)
    bx.set_title("Local-exit share")
    fig.suptitle(title)
    return fig


def calibration_experiment(lab: Lab) -> ExperimentResult:
    """The calibration guarantee: the risk rule against ``within`` on random validation
    subsets, measured on the test split."""
    from ddnn_tf.keras.presets import PRESETS

    s, data = lab.settings, lab.dataset
    rule = s.rule or PRESETS["default"]["config"]["calibrate"]
    rules = [parse_calibrate(r).text for r in (rule, s.baseline)]
    val, test, topology, source = exit_probabilities(lab)
    lab.log(f"[calibration] {s.draws} draws per size of {list(s.val_sizes)}, rules {rules}")
    rows, per_draw, view = guarantee_rows(
        val,
        data.val.y,
        test,
        data.test.y,
        topology,
        rules=rules,
        sizes=list(s.val_sizes),
        draws=s.draws,
        seed=s.seed,
    )
    grid = sorted({tuple(o[e] for e in list(val)[:-1]) for o in per_draw})
    path_rows = [{"threshold": t[0], **view.at(dict(zip(list(val)[:-1], t)))} for t in grid]
    bounds = {r: parse_calibrate(r).value for r in rules}
    key = {
        "source": source,
        "rules": rules,
        "test_samples": len(data.test.y),
        "rows": rows,
        "test_se_max": max(p["drop_se"] for p in path_rows),
    }
    highlights = []
    for r in rows:
        if r["rule"] != rules[0] and r["val_size"] != len(data.val.y):
            continue
        highlights.append(
            f"{r['rule']} on {r['val_size']} validation samples ({r['draws']} draw"
            f"{'s' if r['draws'] != 1 else ''}): {100 * r['local_exit']:.1f} % local exits, "
            f"drop {r['drop_mean'] + 0.0:+.2f} points on average, above {r['bound']:g} points in "
            f"{100 * r['exceed']:.1f} % of the draws"
        )
    baseline = [r for r in rows if r["rule"] == rules[1]]
    highlights.append(
        f"{rules[1]} on the same draws exceeds its {bounds[rules[1]]:g} points in "
        + ", ".join(f"{100 * r['exceed']:.0f} %" for r in baseline)
        + f" of them (sizes {', '.join(str(r['val_size']) for r in baseline)})"
    )
    eps = parse_calibrate(rules[0]).eps
    intro = (
        f"The exits' probabilities come from {source}, on `{data.name}`: {len(data.val.y)} "
        f"validation and {len(data.test.y)} test samples. For each size, {s.draws} "
        f"validation subsets are drawn without replacement (seed {s.seed}; the whole "
        f"validation split once), the exit thresholds are calibrated on each with both "
        f"rules, and each choice is measured on the whole test split. *Drop*: all-cloud "
        f"accuracy minus the overall accuracy at the chosen thresholds; *risk*: the share of "
        f"test samples the chosen thresholds get wrong where the cloud exit is right, the "
        f"quantity `{rules[0]}` certifies (the drop is never above it). The guarantee: the "
        f"drop exceeds DELTA = {bounds[rules[0]]:g} points in at most EPS = {eps:g} of the "
        f"draws. The test split measures each threshold's drop with a standard error of up "
        f"to {key['test_se_max']:.2f} points (the table below the first), so a drop within "
        f"about two of those of the bound is not a clear breach. Made by `ddnn experiments "
        f"calibration {'--model ' + s.model + ' ' if s.model else ''}--data {data.name} "
        f"--draws {s.draws} --val-sizes {','.join(map(str, s.val_sizes))} --rule {rules[0]} "
        f"--baseline {rules[1]} --seed {s.seed}` in a few seconds."
    )
    path_intro = (
        "Every threshold a draw chose, as the test split sees it (± one standard error of "
        "the test split's own sampling):"
    )
    title = f"Calibration on random validation subsets, {data.name}"
    fig = _plot(rows, per_draw, rules, bounds, title)
    bullets = "\n".join(f"- {h}" for h in highlights)
    md = "\n\n".join(
        [
            f"# {title}",
            intro,
            markdown_table(CALIBRATION_COLUMNS, rows),
            path_intro,
            markdown_table(_PATH_COLUMNS, path_rows),
            bullets,
            "![calibration](calibration.png)",
        ]
    )
    return ExperimentResult(
        "calibration",
        "Calibration guarantee",
        CALIBRATION_COLUMNS,
        rows,
        md + "\n",
        png_bytes(fig),
        key,
        highlights,
    )
