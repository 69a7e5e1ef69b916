"""The figures of docs/cost.md: recomputed from the committed models, and the page's tables
are the ones ``scripts/cost_figures.py`` makes from its JSON results."""

from __future__ import annotations

import importlib.util
import json

import pytest
from conftest import ROOT

SCRIPT = ROOT / "scripts" / "cost_figures.py"


def _figures():
    spec = importlib.util.spec_from_file_location("cost_figures", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _results(figures, name: str) -> dict:
    return {
        radio: json.loads(figures.result_path(name, mcu, radio).read_text())
        for mcu, radio in figures.PROFILES
    }


def test_the_page_holds_the_tables_of_the_committed_results():
    figures = _figures()
    page = figures.PAGE.read_text()
    assert figures.page_tables(page) == page  # every table, rebuilt from the JSON results
    for name in figures.MODELS:
        assert len(json.loads(figures.protocols_path(name).read_text())) == 7
    fitted = json.loads((ROOT / "ddnn_tf" / "mcu" / "instruction_model.json").read_text())
    m4, m0 = (fitted["cores"][c]["fit"] for c in ("cortex-m4f", "cortex-m0plus"))
    said = f"fitted once on {m4['tiers']} random synthetic tiers"
    assert said in page, said
    for fit in (m4, m0):
        assert f"{fit['mean_abs_error_percent']:.1f} %" in page
    for radio in ("ble-1m", "lora-sf7", "nbiot"):
        assert (ROOT / "docs" / "results" / "cost" / f"{radio}.png").stat().st_size > 10_000


@pytest.mark.slow
@pytest.mark.parametrize("name", ["default", "paper"])
def test_the_energy_figures_are_recomputed(name):
    """Energy and battery life depend on measured counts, bytes and exits and on the
    profiles: they come out the same; latency includes this host's timings (within 15 %)."""
    from ddnn_tf.core.cost.profiles import load_profile
    from ddnn_tf.data import load_dataset
    from ddnn_tf.runtime import Hierarchy
    from ddnn_tf.runtime.cost import model_pricer, tier_latency_ms

    figures = _figures()
    h = Hierarchy(ROOT / figures.MODELS[name])
    test = load_dataset("fmnist6").test
    staged = h.run(test.x, batch_size=512)
    times = tier_latency_ms(h, test.x, samples=50)
    for radio, committed in _results(figures, name).items():
        pricer, _ = model_pricer(
            h, staged, mcu=committed["profiles"]["mcu"], radio=radio, tier_ms=times
        )
        got = pricer(staged.exit_index, presence=staged.presence).to_dict()
        for device, value in committed["energy_uj_per_sample"].items():
            assert got["energy_uj_per_sample"][device] == pytest.approx(value, rel=1e-3)
            assert got["battery_days"][device] == pytest.approx(
                committed["battery_days"][device], rel=1e-3
            )
        for base in ("raw_offload", "always_cloud"):
            want = committed["baselines"][base]["energy_uj_per_sample"]["device_0"]
            assert got["baselines"][base]["energy_uj_per_sample"]["device_0"] == pytest.approx(
                want, rel=1e-3
            )
        if committed["modes"]["saving_percent"] > 0.5:  # a near tie may go either way
            assert got["modes"]["cheaper"] == committed["modes"]["cheaper"]
        for mode in ("paper", "eager"):
            assert got["modes"][mode]["energy_uj_per_sample"] == pytest.approx(
                committed["modes"][mode]["energy_uj_per_sample"], rel=1e-3
            )
        assert got["feasible"] == committed["feasible"]
        for exit_, v in committed["latency_ms"].items():
            assert got["latency_ms"][exit_]["p95"] == pytest.approx(v["p95"], rel=0.15), exit_
    for radio, committed in json.loads(figures.protocols_path(name).read_text()).items():
        pricer, _ = model_pricer(h, staged, mcu=committed["mcu"], radio=radio, tier_ms=times)
        got = pricer(staged.exit_index, presence=staged.presence).to_dict()["modes"]
        # A radio that listens for the decision spends energy while the gateway's tiers run,
        # timed on this host: its figures move with the host's timings.
        listens = load_profile(radio, "radio").downlink == "listen"
        for mode in ("paper", "eager"):
            assert got[mode]["energy_uj_per_sample"] == pytest.approx(
                committed["modes"][mode]["energy_uj_per_sample"], rel=0.05 if listens else 1e-3
            ), (radio, mode)
        if committed["modes"]["saving_percent"] > 5 or not listens:
            assert got["cheaper"] == committed["modes"]["cheaper"], radio


def test_the_page_holds_the_live_latency_table_of_the_committed_runs():
    """docs/cost.md's "Checked live" table, and the report on the Serving page, are the
    ones made from the committed reports of ``scripts/link_latency.py``."""
    from ddnn_tf.serve.live_report import format_report

    spec = importlib.util.spec_from_file_location(
        "link_latency", ROOT / "scripts" / "link_latency.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    page = module.PAGE.read_text()
    assert module.page_table(page) == page
    for radio, mode in module.RUNS:
        result = json.loads(module.result_path(radio, mode).read_text())
        assert result["link"]["radio"] == radio and result["mode"] == mode
        assert result["mismatches_vs_offline"] == 0 and result["lost"] == 0
    serving = module.SERVING.read_text()
    assert module.serving_report(serving) == serving
    ble = json.loads(module.result_path("ble-1m", "paper").read_text())
    assert format_report(ble) in serving
