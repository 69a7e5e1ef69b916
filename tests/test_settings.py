"""ddnn_tf.serve.settings and ddnn_tf.core.options: one settings object per service, the
deployment plan, and everything made from their fields (flags, child command lines,
the deployment file's schema)."""

from __future__ import annotations

import dataclasses
import inspect
import json

import pytest
from conftest import DEFAULT_MODEL

from ddnn_tf.cli import main as ddnn
from ddnn_tf.core.options import load_config, schema, specs
from ddnn_tf.errors import ConfigError, FormatError
from ddnn_tf.serve.settings import (
    CloudSettings,
    DemoSettings,
    DeployPlan,
    DeviceSettings,
    GatewaySettings,
    free_port,
)

MODEL = str(DEFAULT_MODEL)


def _captured(monkeypatch, module: str, name: str) -> list:
    """Replace ``module.name`` (a service's entry point) by a recorder of its settings."""
    import importlib

    got: list = []
    monkeypatch.setattr(importlib.import_module(module), name, lambda s, **kw: got.append(s))
    return got


@pytest.mark.parametrize(
    ("settings", "module", "entry", "command"),
    [
        (
            CloudSettings(model=MODEL, port=0, engine="ray", replicas=2, cors_origins=[]),
            "ddnn_tf.serve.run_server",
            "serve_cloud",
            ["serve", "cloud"],
        ),
        (
            GatewaySettings(
                model=MODEL,
                cloud="http://127.0.0.1:8000",
                threshold=0.25,
                window=512,
                transport="mqtt",
                broker="mqtt://gateway@127.0.0.1:1883",
                topic_root="ddnn/x/site1",
                journal="/tmp/j",
            ),
            "ddnn_tf.serve.gateway",
            "serve_gateway",
            ["serve", "gateway"],
        ),
        (
            DemoSettings(model=MODEL, qr=False, https=True),
            "ddnn_tf.serve.demo",
            "serve_demo",
            ["serve", "demo"],
        ),  # fmt: skip
        (
            DeviceSettings(
                model=MODEL,
                index=3,
                data="v.npy",
                gateway="http://127.0.0.1:1",
                mcu="qemu",
                hold_at=[16, 48],
                hold_dir="/tmp/h",
            ),
            "ddnn_tf.serve.device",
            "run_device",
            ["device"],
        ),
    ],
)
def test_a_child_command_line_is_made_from_the_fields_and_read_back(
    monkeypatch, settings, module, entry, command
):
    """What a launcher starts (``settings.argv()``) is what the command reads back."""
    got = _captured(monkeypatch, module, entry)
    ddnn([*command, *settings.argv()])
    assert got == [settings]


def test_secrets_never_travel_on_a_command_line():
    s = GatewaySettings(model=MODEL, cloud="http://c", token="t0ken", cloud_token="s3cret")
    assert "t0ken" not in s.argv() and "s3cret" not in s.argv()
    assert "--token" not in " ".join(s.argv())


@pytest.mark.parametrize(
    ("cls", "options", "argument", "text"),
    [
        (GatewaySettings, {"cloud": "http://u", "window": 10}, "window", "at least two rounds"),
        (GatewaySettings, {"cloud": "http://u", "gather_s": 0}, "gather_s", "> 0"),
        (GatewaySettings, {"cloud": "u"}, "cloud", "http:// or https:// URL"),
        (DeviceSettings, {"index": 0, "data": "d", "gateway": "ftp://g"}, "gateway", "https://"),
        (CloudSettings, {"engine": "k8s"}, "engine", "uvicorn or ray"),
        (CloudSettings, {"cors_origins": "x", "engine": "ray"}, "cors_origins", "uvicorn"),
        (DeviceSettings, {"index": -1, "data": "d", "gateway": "http://u"}, "index", ">= 0"),
        (DeviceSettings, {"index": 0, "data": "d"}, "gateway", "transport http"),
        (DeviceSettings, {"index": 0, "data": "d", "transport": "mqtt"}, "broker", "mqtt"),
        (DeployPlan, {"kill_at": 5}, "kill_at", "kill_device"),
        (DeployPlan, {"mcu_devices": "0,x"}, "mcu_devices", "device indices"),
        (DeployPlan, {"port": 3}, None, "unexpected keyword"),
    ],
)
def test_settings_are_checked_when_made_naming_the_option(cls, options, argument, text):
    with pytest.raises((ConfigError, TypeError)) as err:
        cls(model=MODEL, **options)
    assert getattr(err.value, "argument", None) == argument and text in str(err.value)


def test_every_deploy_flag_is_a_key_of_the_deployment_file():
    from ddnn_tf.cli.deploy import deploy

    flags = set(inspect.signature(deploy).parameters) - {"json", "config"}
    tables = schema(DeployPlan)["properties"]
    keys = {k for k, v in tables.items() if "additionalProperties" not in v}
    keys |= {k for v in tables.values() if "additionalProperties" in v for k in v["properties"]}
    assert flags == keys == {s.name for s in specs(DeployPlan)}


SITE = """
model = "{model}"
data = "fmnist6"
limit = 192
transport = "http"
engine = "uvicorn"

[gateway]
batch = 32
window = 256
threshold = 0.1
gather_s = 2.0

[devices]
mcu_devices = []

[faults]
kill_device = 2
kill_at = 64

[ports]
cloud_port = {cloud}
gateway_port = {gateway}
"""


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (("[gateway]", "[gateway]\nwindw = 3"), "gateway: Additional properties"),
        (("kill_at = 64", "kill_at = -64"), "faults.kill_at: -64 is less than the minimum of 0"),
        (('engine = "uvicorn"', 'engine = "k8s"'), "engine: 'k8s' is not one of"),
        (("limit = 192", "limit = 1.5"), "limit: 1.5 is not valid"),
        (('data = "fmnist6"', "data = [1"), "not a TOML file"),
    ],
)
def test_a_bad_deployment_file_names_the_key(tmp_path, change, where):
    path = tmp_path / "site.toml"
    path.write_text(SITE.format(model=MODEL, cloud=0, gateway=0).replace(*change))
    with pytest.raises(FormatError) as err:
        load_config(path, DeployPlan)
    assert str(err.value).startswith(f"{path}: ") and where in str(err.value)


def test_serve_gateway_reads_the_files_gateway_table_and_flags_override_it(tmp_path, monkeypatch):
    path = tmp_path / "site.toml"
    path.write_text(SITE.format(model=MODEL, cloud=0, gateway=0))
    got = _captured(monkeypatch, "ddnn_tf.serve.gateway", "serve_gateway")
    ddnn(
        ["serve", "gateway", MODEL, "--cloud", "http://c", "--config", str(path), "--window", "512"]
    )
    (s,) = got
    assert (s.batch, s.threshold, s.window, s.gather_s) == (32, 0.1, 512, 2.0)


def test_deploy_from_a_file(tmp_path, capsys):
    """``ddnn deploy --config site.toml``: the model, the data, every site's gateway, a
    fault and the ports from one file; every sample answered once, as offline."""
    cloud, gateway = free_port(), free_port()
    path = tmp_path / "site.toml"
    path.write_text(SITE.format(model=MODEL, cloud=cloud, gateway=gateway))
    ddnn(["deploy", "--config", str(path), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert result["n_samples"] == 192 and result["batch_size"] == 32
    assert result["lost"] == 0 and result["mismatches_vs_offline"] == 0
    assert result["kill"]["device"] == 2 and result["failed_devices"] == [2]
    assert result["thresholds"] == {"local": 0.1}
    assert result["urls"] == {
        "cloud": f"http://127.0.0.1:{cloud}",
        "gateways": [f"http://127.0.0.1:{gateway}"],
    }


def _docs_deployment_file() -> str:
    """The deployment file shown on the Serving page (the one ```toml block of its
    *A deployment in one file* section)."""
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "serving.md").read_text()
    section = page.split("### A deployment in one file", 1)[1].split("\n### ", 1)[0]
    (block,) = re.findall(r"```toml\n(.*?)```", section, flags=re.S)
    return block


def test_the_docs_deployment_file_is_a_valid_plan(tmp_path, monkeypatch):
    """The Serving page's ``site.toml`` passes the schema and makes the plan it shows, and
    ``ddnn serve gateway --config`` reads its ``[gateway]`` table as written."""
    import tomllib

    path = tmp_path / "site.toml"
    path.write_text(_docs_deployment_file())
    written = tomllib.loads(path.read_text())
    plan = DeployPlan(**load_config(path, DeployPlan))
    tables = {k: v for k, v in written.items() if isinstance(v, dict)}
    keys = {k: v for k, v in written.items() if k not in tables}
    for table in tables.values():
        keys.update(table)
    assert {k: getattr(plan, k) for k in keys} == keys
    assert set(tables) == {"gateway", "devices", "faults", "ports"}  # every table shown
    got = _captured(monkeypatch, "ddnn_tf.serve.gateway", "serve_gateway")
    ddnn(["serve", "gateway", plan.model, "--cloud", "http://c", "--config", str(path)])
    (s,) = got
    assert {k: getattr(s, k) for k in tables["gateway"]} == tables["gateway"]


def test_what_the_plan_hands_every_device_reaches_it(tmp_path):
    """A field of DeviceTuning is one option: set in the plan (a flag of deploy, a key of
    the file), it is in the settings of every device deploy starts, and on its command
    line."""
    from types import SimpleNamespace

    from ddnn_tf.serve.fleet import Fleet
    from ddnn_tf.serve.settings import DeviceTuning

    plan = DeployPlan(model=MODEL, repeat=3, reconnect_s=7.5)
    fleet = Fleet(plan, tmp_path, 6)
    try:
        device, _ = fleet._device(SimpleNamespace(index=0, url="http://127.0.0.1:9"), 2, "v.npy")
    finally:
        fleet.client.close()
    for f in dataclasses.fields(DeviceTuning):
        assert getattr(device, f.name) == getattr(plan, f.name), f.name
    argv = device.argv()
    assert argv[argv.index("--repeat") + 1] == "3"
    assert argv[argv.index("--reconnect-s") + 1] == "7.5"
