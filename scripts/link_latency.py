"""The live check of the latency model (docs/cost.md, "Checked live"), measured again.

Usage::

    python scripts/link_latency.py [--limit-ble 200] [--limit-lora 120]

Deploys the committed default model (``ddnn deploy --link``: real cloud, gateway and six
device processes on loopback, each device's messages held for their radio's time) on the
first fmnist6 test samples over BLE and LoRa SF7, in the paper protocol and the eager one,
writes each deployment's report to ``docs/results/link/<radio>_<mode>.json``, the table
of docs/cost.md between its ``<!-- cost:link -->`` markers (the measured p50 and p95
latency per exit against the cost model's prediction for the same samples) and the BLE
report shown on docs/serving.md. ``tests/test_cost_docs.py`` checks that the pages hold
those of the committed results.
The figures depend on this machine's load: say how loaded it was when quoting them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from cost_figures import PAGE, ms, replace_block  # noqa: E402

OUT = ROOT / "docs" / "results" / "link"
SERVING = ROOT / "docs" / "serving.md"
#: The command whose report docs/serving.md shows, and the run it is.
SHOWN = "$ ddnn deploy tflite_models/fmnist6_mlpcc --data fmnist6 --limit 200 --link ble-1m\n"
MODEL = "tflite_models/fmnist6_mlpcc"
RUNS = [("ble-1m", "paper"), ("ble-1m", "eager"), ("lora-sf7", "paper"), ("lora-sf7", "eager")]
LABELS = {"ble-1m": "BLE 1M", "lora-sf7": "LoRa SF7"}


def result_path(radio: str, mode: str) -> Path:
    return OUT / f"{radio}_{mode}.json"


def link_table(results: dict) -> str:
    """The measured and predicted latency per exit of each run."""
    rows = [
        "| radio (protocol) | exit | samples | measured p50 / p95 (ms) | predicted p50 / p95 "
        "(ms) | p50 measured vs predicted |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for (radio, mode), result in results.items():
        for name in result["exits"]:
            entry = result["latency_ms"].get(name)
            if entry is None:
                continue
            m, p = entry["measured"], entry["predicted"]
            error = 100 * (m["p50"] / p["p50"] - 1)
            rows.append(
                f"| {LABELS[radio]} ({mode}) | {name} | {entry['samples']} | "
                f"{ms(m['p50'])} / {ms(m['p95'])} | {ms(p['p50'])} / {ms(p['p95'])} | "
                f"{error:+.1f} % |"
            )
    return "\n".join(rows)


def page_table(text: str) -> str:
    """The page with the table rebuilt from the JSON results in docs/results/link/."""
    results = {run: json.loads(result_path(*run).read_text()) for run in RUNS}
    return replace_block(text, "link", link_table(results))


def serving_report(text: str) -> str:
    """docs/serving.md with the report of the BLE run (paper protocol) under its command."""
    from ddnn_tf.serve.live_report import format_report

    start = text.index(SHOWN) + len(SHOWN)
    end = text.index("\n```", start)
    report = format_report(json.loads(result_path("ble-1m", "paper").read_text()))
    return text[:start] + report + text[end:]


def main(argv: list[str] | None = None) -> int:
    from ddnn_tf.serve.deploy import deploy

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit-ble", type=int, default=200)
    parser.add_argument("--limit-lora", type=int, default=120)
    parser.add_argument(
        "--tables-only", action="store_true", help="rewrite the page's table from the JSON results"
    )
    args = parser.parse_args(argv)
    if not args.tables_only:
        OUT.mkdir(parents=True, exist_ok=True)
        for radio, mode in RUNS:
            limit = args.limit_ble if radio.startswith("ble") else args.limit_lora
            result = deploy(MODEL, "fmnist6", limit=limit, link=radio, mode=mode, timeout_s=1800)
            result.pop("urls")
            result_path(radio, mode).write_text(json.dumps(result, indent=1) + "\n")
            print(radio, mode, json.dumps(result["latency_ms"]), flush=True)
    PAGE.write_text(page_table(PAGE.read_text()))
    SERVING.write_text(serving_report(SERVING.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
