"""``ddnn cost`` and the profile flags of ``ddnn run``: stable JSON keys, reports, the plot."""

from __future__ import annotations

import json
import sys

from conftest import DEFAULT_MODEL

from ddnn_tf.cli import main as ddnn

FAST = ["--limit", "300", "--timing-samples", "10"]


def call(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """``ddnn ARGS`` in this process: (status, stdout, stderr)."""
    argv = [str(a) for a in args]
    monkeypatch.setattr(sys, "argv", ["ddnn", *argv])
    status = 0
    try:
        ddnn(argv)
    except SystemExit as exit_:
        status = exit_.code
    out = capsys.readouterr()
    return status, out.out, out.err


def test_list_and_show_name_every_profile_and_source(monkeypatch, capsys):
    status, out, _ = call(monkeypatch, capsys, "cost", "--list", "--json")
    assert status == 0
    names = json.loads(out)
    assert {"nrf52840", "stm32l4", "cortex-m0plus"} <= set(names["mcu"])
    assert {"ble-1m", "802154", "lora-sf7", "lora-sf12", "wifi", "ltem", "nbiot"} <= set(
        names["radio"]
    )
    status, out, _ = call(monkeypatch, capsys, "cost", "--show", "nbiot")
    assert status == 0 and "3GPP TR 45.820" in out and "session_tail_ms" in out


def test_cost_json_keeps_its_keys(monkeypatch, capsys):
    status, out, err = call(
        monkeypatch, capsys, "cost", DEFAULT_MODEL, "--mcu", "nrf52840", "--radio", "ble-1m",
        "--data", "fmnist6", *FAST, "--json",
    )  # fmt: skip
    assert status == 0, err
    result = json.loads(out)
    devices = {f"device_{i}" for i in range(6)}
    assert set(result["energy_uj_per_sample"]) == devices == set(result["battery_days"])
    assert set(result["latency_ms"]) == {"local", "cloud", "overall"}
    assert all(set(v) == {"p50", "p95", "mean"} for v in result["latency_ms"].values())
    first = result["instructions_per_sample"]["device_0"]
    assert first["measured"] > 0 and first["modelled"] > 0 and first["core"] == "cortex-m4f"
    for name in ("raw_offload", "always_cloud"):
        block = result["baselines"][name]
        assert {"energy_uj_per_sample", "battery_days", "latency_ms"} <= set(block)
    assert result["modes"]["cheaper"] in ("paper", "eager")
    assert result["sources"]["instructions"].startswith("measured here")
    assert result["sources"]["bytes"].startswith("measured here")
    assert result["sources"]["tier_ms"].startswith("measured here")
    assert result["n_samples"] == 300 and result["profiles"]["radio"] == "ble-1m"


def test_cost_report_sweep_and_plot(monkeypatch, capsys, tmp_path):
    plot = tmp_path / "cost.png"
    status, out, err = call(
        monkeypatch, capsys, "cost", DEFAULT_MODEL, "--mcu", "stm32l4", "--radio", "lora-sf7",
        "--data", "fmnist6", *FAST, "--plot", plot,
    )  # fmt: skip
    assert status == 0, err
    assert "energy per sample of a device" in out and "raw offload" in out
    assert "not feasible at 1 sample/s" in out and "1 % time on air" in out
    assert "energy uJ" in out and "p95 ms" in out  # the sweep's columns
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_adds_the_cost_block_and_the_sweep_columns(monkeypatch, capsys):
    status, out, err = call(
        monkeypatch, capsys, "run", DEFAULT_MODEL, "--data", "fmnist6", "--limit", "200",
        "--mcu", "cortex-m0plus", "--radio", "802154", "--mode", "eager", "--sweep", "--json",
    )  # fmt: skip
    assert status == 0, err
    result = json.loads(out)
    cost = result["cost"]
    assert (
        cost["mode"] == "eager"
        and cost["energy_breakdown_uj"]["device_0"]["decision_downlink"] == 0
    )
    assert cost["instructions_per_sample"]["device_0"]["core"] == "cortex-m0plus"
    assert {"energy_uj_per_sample", "latency_p95_ms"} <= set(result["sweep"][0])
