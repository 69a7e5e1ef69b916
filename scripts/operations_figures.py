"""The figures of docs/operations.md: measure them, or print their tables.

    python scripts/operations_figures.py run [NAME ...]   # the deploys, one at a time
    python scripts/operations_figures.py tables           # the markdown tables

``run`` calls ``ddnn deploy ... --json`` for each measurement (the soak, 10,000 samples
over HTTP and over MQTT, the restart runs, 1/2/4/8 sites) under ``nice`` and writes
``docs/results/operations/NAME.json``, after checking that the run met its goals
(:func:`missed_goals`: every sample answered exactly once, as offline; a soak's memory
flat); a run that missed one is reported and not written. The soak takes minutes, so it is
a script, not a test. ``tables`` renders those files as the tables the page prints
(``tests/test_operations_doc.py`` checks that the page holds them).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "results" / "operations"
MODEL = "tflite_models/fmnist6_mlpcc"

#: name -> the deploy flags after MODEL.
RUNS = {
    "soak_repeat20": ["--data", "fmnist6", "--repeat", "20", "--timeout-s", "3000"],
    "http_10k": ["--data", "fmnist6"],
    "mqtt_10k": ["--data", "fmnist6", "--transport", "mqtt"],
    "restart_http": [
        "--data",
        "fmnist6",
        "--restart-gateway-at",
        "3000",
        "--restart-cloud-at",
        "7000",
    ],
    "restart_mqtt": [
        "--data",
        "fmnist6",
        "--transport",
        "mqtt",
        "--restart-gateway-at",
        "3000",
        "--restart-cloud-at",
        "7000",
    ],
    **{
        f"sites_{n}": [
            "--data",
            "fmnist6",
            "--limit",
            "2000",
            "--sites",
            str(n),
            "--timeout-s",
            "1500",
        ]
        for n in (1, 2, 4, 8)
    },
    "sites_2_ray": [
        *("--data", "fmnist6", "--limit", "1000", "--sites", "2"),
        *("--engine", "ray", "--replicas", "2"),
    ],
}


#: How much a service's peak RSS may grow between 10 % of a soak and its end, in MB.
SOAK_RSS_GROWTH_MB = 20.0


def missed_goals(name: str, report: dict) -> list[str]:
    """The goals the measured run ``name`` missed (none: ``[]``).

    Every run answers each sample exactly once, with the offline run's answer; a soak
    (``soak_*``) also keeps each service's memory flat over the stream.
    """
    missed = [
        f"{key} = {report[key]}"
        for key in ("lost", "duplicates", "mismatches_vs_offline")
        if report[key] != 0
    ]
    if name.startswith("soak"):
        for service in ("gateway", "cloud"):
            at_10, at_end = report["rss_mb"][service]
            if at_end - at_10 > SOAK_RSS_GROWTH_MB:
                missed.append(
                    f"{service} RSS grew {at_end - at_10:.1f} MB (at most {SOAK_RSS_GROWTH_MB})"
                )
    return missed


def command(name: str) -> str:
    return f"ddnn deploy {MODEL} {' '.join(RUNS[name])} --json"


def run(names: list[str]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name in names or list(RUNS):
        print(f"== {command(name)}", flush=True)
        out = subprocess.run(
            [
                "nice",
                "-n",
                "10",
                sys.executable,
                "-m",
                "ddnn_tf.deploy",
                MODEL,
                *RUNS[name],
                "--json",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        missed = missed_goals(name, json.loads(out.stdout))
        if missed:
            sys.exit(f"{name} missed its goals ({'; '.join(missed)}); not written.")
        (OUT / f"{name}.json").write_text(out.stdout)


def _load(name: str) -> dict:
    return json.loads((OUT / f"{name}.json").read_text())


def _ms(latency: dict) -> str:
    return f"{latency['p50']:.1f} / {latency['p99']:.1f}"


def tables() -> dict[str, str]:
    """The page's tables, by placeholder name."""
    out = {}
    rows = []
    for name, transport in (("restart_http", "HTTP"), ("restart_mqtt", "MQTT")):
        r = _load(name)
        gw, cloud = r["restarts"]
        rows.append(
            f"| {transport} | {r['n_samples']:,} | {gw['after']:,} ({gw['away_s']:.1f} s) | "
            f"{cloud['after']:,} ({cloud['away_s']:.1f} s) | {r['lost']} | {r['duplicates']} | "
            f"{r['mismatches_vs_offline']} | {r['degraded']} | {r['device_retries']} | "
            f"{_ms(r['latency_ms'])} |"
        )
    out["restart"] = "\n".join(
        [
            "| transport | samples | gateway killed after (away) | cloud stopped after (away) "
            "| lost | duplicates | mismatches | degraded | device retries | latency p50 / p99 ms |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            *rows,
        ]
    )
    rows = []
    for name, transport in (("http_10k", "HTTP"), ("mqtt_10k", "MQTT")):
        r = _load(name)
        rows.append(
            f"| {transport} | {r['n_samples']:,} | {r['mismatches_vs_offline']} | {r['lost']} | "
            f"{r['accuracy']['overall']:.4f} | {r['bytes_per_device']:.2f} | "
            f"{r['wire_bytes_per_device']:.2f} | {r['wire_received_bytes_per_device']:.2f} | "
            f"{_ms(r['latency_ms'])} | {r['samples_per_s']:,.0f} |"
        )
    out["mqtt"] = "\n".join(
        [
            "| transport | samples | mismatches | lost | accuracy | payload B/device/sample "
            "| sent on the socket | received | latency p50 / p99 ms | samples/s |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            *rows,
        ]
    )
    rows = []
    for n in (1, 2, 4, 8):
        r = _load(f"sites_{n}")
        sites = r.get("sites") or [
            {"latency_ms": r["latency_ms"], "samples_per_s": r["samples_per_s"]}
        ]
        p50 = [s["latency_ms"]["p50"] for s in sites]
        p99 = [s["latency_ms"]["p99"] for s in sites]
        rows.append(
            f"| {n} | {r['n_samples'] * n:,} | {r['cloud_samples_per_s']:,.0f} | "
            f"{r['samples_per_s']:,.0f} | {min(p50):.1f} to {max(p50):.1f} | "
            f"{min(p99):.1f} to {max(p99):.1f} | {r['lost']} | {r['duplicates']} | "
            f"{r['mismatches_vs_offline']} |"
        )
    out["sites"] = "\n".join(
        [
            "| sites | samples | cloud samples/s | all sites samples/s | per-site p50 ms "
            "| per-site p99 ms | lost | duplicates | mismatches |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            *rows,
        ]
    )
    r = _load("soak_repeat20")
    gw, cloud = r["rss_mb"]["gateway"], r["rss_mb"]["cloud"]
    out["soak"] = "\n".join(
        [
            "| samples | gateway peak RSS MB at 10 % / at the end | cloud peak RSS MB at 10 % / "
            "at the end | lost | duplicates | mismatches | samples/s | latency p50 / p99 ms |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| {r['n_samples']:,} | {gw[0]:.1f} / {gw[1]:.1f} ({gw[1] - gw[0]:+.1f}) | "
            f"{cloud[0]:.1f} / {cloud[1]:.1f} ({cloud[1] - cloud[0]:+.1f}) | {r['lost']} | "
            f"{r['duplicates']} | {r['mismatches_vs_offline']} | {r['samples_per_s']:,.0f} | "
            f"{_ms(r['latency_ms'])} |",
        ]
    )
    return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["run"]:
        run(sys.argv[2:])
    elif sys.argv[1:2] == ["tables"]:
        for name, text in tables().items():
            print(f"<!-- {name} -->\n{text}\n")
    else:
        sys.exit(__doc__)
