"""The figures of the docs page "What a sample costs" (docs/cost.md), measured again.

Usage::

    python scripts/cost_figures.py [--timing-samples 200]

For the committed default model (and the paper's), on the three profiles of the page
(nRF52840 + BLE, STM32L4 + LoRa SF7, STM32L4 + NB-IoT), at 1 sample/s on a 225 mAh coin
cell, this runs ``ddnn cost`` (:func:`ddnn_tf.runtime.cost.model_cost`) on the fmnist6 test
set and writes ``docs/results/cost/<model>_<mcu>_<radio>.json`` (the ``--json`` output),
``docs/results/cost/<model>_protocols.json`` (both protocol modes on every shipped radio),
the default model's plots ``docs/results/cost/<radio>.png`` (``--plot``), and the tables
of docs/cost.md between their ``<!-- cost:NAME -->`` markers. ``tests/test_cost_docs.py``
recomputes the energy figures and checks the page against the JSON. Run it again when a
committed model or a profile changes.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ddnn_tf.runtime.cost import model_cost  # noqa: E402

OUT = ROOT / "docs" / "results" / "cost"
PAGE = ROOT / "docs" / "cost.md"
MODELS = {"default": "tflite_models/fmnist6_mlpcc", "paper": "tflite_models/fmnist6_paper"}
PROFILES = [("nrf52840", "ble-1m"), ("stm32l4", "lora-sf7"), ("stm32l4", "nbiot")]
LABELS = {"ble-1m": "nRF52840 + BLE", "lora-sf7": "STM32L4 + LoRa SF7", "nbiot": "STM32L4 + NB-IoT"}
COMPONENTS = [
    ("compute", "compute"),
    ("summary_uplink", "summary up"),
    ("decision_downlink", "decision down"),
    ("feature_uplink", "features up"),
    ("link_upkeep", "link upkeep"),
    ("sleep", "sleep"),
]


def result_path(model: str, mcu: str, radio: str) -> Path:
    return OUT / f"{model}_{mcu}_{radio}.json"


def _mean(values: dict) -> float:
    xs = [v for v in values.values() if v is not None]
    return sum(xs) / len(xs)


def energy(uj: float) -> str:
    """Energy as the page prints it."""
    if uj >= 1e5:
        return f"{uj / 1e3:,.0f} mJ"
    if uj >= 1e3:
        return f"{uj / 1e3:,.1f} mJ"
    return f"{uj:,.1f} uJ"


def days(d: float) -> str:
    return f"{d / 365.25:,.1f} years" if d >= 730 else f"{d:,.1f} days"


def ms(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}"


def _row(cells: list[str]) -> str:
    return "|" + "|".join(f" {c} " if c else " " for c in cells) + "|"


def table(header: list[str], align: str, rows: list[list[str]]) -> str:
    """A markdown table as the page prints it: ``align`` has one letter a column, ``l``
    (left) or ``r`` (right)."""
    rule = "|" + "".join({"l": "---|", "r": "---:|"}[a] for a in align)
    return "\n".join([_row(header), rule, *map(_row, rows)])


def breakdown_table(results: dict) -> str:
    rows = []
    for radio, r in results.items():
        parts = [
            _mean({d: v[key] for d, v in r["energy_breakdown_uj"].items()}) for key, _ in COMPONENTS
        ]
        total = _mean(r["energy_uj_per_sample"])
        local = 100 * r["exit_fraction"].get("local", 0.0)
        rows.append(
            [LABELS[radio], f"{local:.1f} %"]
            + [f"{energy(p)} ({100 * p / total:.0f} %)" for p in parts]
            + [f"**{energy(total)}**", days(min(r["battery_days"].values()))]
        )
    header = ["", "local exits", *(label for _, label in COMPONENTS), "total", "battery life"]
    return table(header, "l" + "r" * (len(COMPONENTS) + 3), rows)


def _cost_cell(energy_uj, battery, p95, feasible) -> str:
    mark = "" if feasible else " (not feasible at 1/s)"
    return f"{energy(energy_uj)}, {days(battery)}, p95 {ms(p95)} ms{mark}"


def comparison_table(results: dict) -> str:
    rows = []
    for radio, r in results.items():
        modes = r["modes"]
        cells = [
            _cost_cell(
                m["energy_uj_per_sample"], m["battery_days"], m["latency_p95_ms"], m["feasible"]
            )
            for m in (modes["paper"], modes["eager"])
        ]
        cells += [
            _cost_cell(
                _mean(b["energy_uj_per_sample"]),
                min(b["battery_days"].values()),
                b["latency_ms"]["overall"]["p95"],
                b["feasible"],
            )
            for b in (r["baselines"]["raw_offload"], r["baselines"]["always_cloud"])
        ]
        cheaper = f"{modes['cheaper']}, {modes['saving_percent']:.1f} % less"
        rows.append([LABELS[radio], *cells, cheaper])
    header = ["", "DDNN (paper protocol)", "DDNN (eager)", "raw offload", "always-cloud"]
    return table([*header, "cheaper protocol"], "llllll", rows)


def latency_table(results: dict) -> str:
    rows = []
    for radio, r in results.items():
        lat = r["latency_ms"]
        cells = [
            f"{ms(lat[k]['p50'])} / {ms(lat[k]['p95'])}" for k in ("local", "cloud", "overall")
        ]
        rows.append([LABELS[radio], *cells, f"{r['max_rate_hz']:.3g} samples/s"])
    exits = [f"{e} p50 / p95 (ms)" for e in ("local exit", "cloud exit", "all samples")]
    return table(["", *exits, "highest feasible rate"], "lrrrr", rows)


def _span(xs, fmt=",.0f") -> str:
    lo, hi = f"{min(xs):{fmt}}", f"{max(xs):{fmt}}"
    return lo if lo == hi else f"{lo} to {hi}"


def instructions_table(manifests: dict) -> str:
    rows = []
    for name, detail in manifests.items():
        for core in ("cortex-m4f", "cortex-m0plus"):
            entries = [d[core] for d in detail.values()]
            rows.append(
                [
                    name,
                    f"{core} ({entries[0]['board']})",
                    _span([e["measured"] for e in entries]),
                    _span([e["modelled"] for e in entries]),
                    _span([e["error_percent"] for e in entries], "+.1f") + " %",
                ]
            )
    return table(["model", "core (board)", "measured", "modelled", "error"], "llrrr", rows)


def protocol_mcu(radio: str) -> str:
    """The MCU a radio is priced with in the protocol table (the nRF52840 carries its own
    BLE and 802.15.4 radio)."""
    return "nrf52840" if radio in ("ble-1m", "802154") else "stm32l4"


def protocols_path(model: str) -> Path:
    return OUT / f"{model}_protocols.json"


def protocol_table(results: dict) -> str:
    rows = []
    for radio, r in results.items():
        m = r["modes"]
        rows.append(
            [
                f"{radio} ({r['mcu']})",
                energy(m["paper"]["energy_uj_per_sample"]),
                energy(m["eager"]["energy_uj_per_sample"]),
                f"{m['cheaper']}, {m['saving_percent']:.1f} % less",
                "yes" if r["feasible"] else f"no (at most {r['max_rate_hz']:.3g}/s)",
            ]
        )
    header = ["radio (MCU)", "paper protocol", "eager", "cheaper", "feasible at 1 sample/s"]
    return table(header, "lrrll", rows)


def price_protocols(h, test, times) -> dict:
    """Both protocol modes of one model on every shipped radio, from one run of the test set."""
    from ddnn_tf.core.cost.profiles import profile_names
    from ddnn_tf.runtime.cost import model_pricer

    staged = h.run(test.x, batch_size=512)
    out = {}
    for radio in profile_names("radio")["radio"]:
        mcu = protocol_mcu(radio)
        pricer, _ = model_pricer(h, staged, mcu=mcu, radio=radio, tier_ms=times)
        d = pricer(staged.exit_index, presence=staged.presence).to_dict()
        out[radio] = {
            "mcu": mcu,
            "modes": d["modes"],
            "feasible": d["feasible"],
            "max_rate_hz": d["max_rate_hz"],
        }
    return out


def replace_block(text: str, name: str, body: str) -> str:
    pattern = re.compile(rf"<!-- cost:{name} -->\n.*?<!-- /cost:{name} -->", re.S)
    if not pattern.search(text):
        raise SystemExit(f"docs/cost.md has no <!-- cost:{name} --> block")
    return pattern.sub(lambda m: f"<!-- cost:{name} -->\n{body}\n<!-- /cost:{name} -->", text)


def page_tables(text: str) -> str:
    """The page with every table rebuilt from the JSON results in docs/results/cost/."""
    from ddnn_tf.core import manifest as mf

    detail = {}
    for name, model in MODELS.items():
        results = {
            radio: json.loads(result_path(name, mcu, radio).read_text()) for mcu, radio in PROFILES
        }
        text = replace_block(text, f"{name}-energy", breakdown_table(results))
        text = replace_block(text, f"{name}-compare", comparison_table(results))
        text = replace_block(text, f"{name}-latency", latency_table(results))
        protocols = json.loads(protocols_path(name).read_text())
        text = replace_block(text, f"{name}-protocols", protocol_table(protocols))
        manifest = mf.load_manifest(ROOT / model)
        detail[name] = {
            t: e["c"]["instructions"] for t, e in manifest["tiers"].items() if e["role"] == "device"
        }
    return replace_block(text, "instructions", instructions_table(detail))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timing-samples", type=int, default=200)
    parser.add_argument(
        "--tables-only", action="store_true", help="rewrite the page's tables from the JSON results"
    )
    args = parser.parse_args(argv)
    if args.tables_only:
        PAGE.write_text(page_tables(PAGE.read_text()))
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    from ddnn_tf.data import load_dataset
    from ddnn_tf.experiments.costplot import plot_cost_sweep
    from ddnn_tf.runtime import Hierarchy
    from ddnn_tf.runtime.cost import tier_latency_ms

    test = load_dataset("fmnist6").test

    for name, model in MODELS.items():
        h = Hierarchy(ROOT / model)
        for mcu, radio in PROFILES:
            result = model_cost(
                h,
                "fmnist6",
                mcu=mcu,
                radio=radio,
                rate_hz=1.0,
                battery_mah=225.0,
                timing_samples=args.timing_samples,
                sweep=name == "default",
            )
            result["model"] = model
            if name == "default":
                plot_cost_sweep(result, OUT / f"{radio}.png")
            result_path(name, mcu, radio).write_text(json.dumps(result, indent=1) + "\n")
            print(
                f"{name} {mcu} {radio}: {energy(_mean(result['energy_uj_per_sample']))}",
                file=sys.stderr,
            )
        protocols = price_protocols(
            h, test, tier_latency_ms(h, test.x, samples=args.timing_samples)
        )
        protocols_path(name).write_text(json.dumps(protocols, indent=1) + "\n")
    text = page_tables(PAGE.read_text())
    PAGE.write_text(text)
    print(f"wrote {OUT} and the tables of {PAGE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
