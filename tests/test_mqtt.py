"""ddnn_tf.serve.mqtt and ddnn_tf.serve.broker: the MQTT transport on a real mosquitto.

Every test starts its own broker on loopback (``Broker``: a generated configuration with
a password, TLS where said); a missing mosquitto is a failure that names the install
command, never a skip.
"""

from __future__ import annotations

import asyncio
import json
import threading

import numpy as np
import pytest
from conftest import DEFAULT_MODEL

from ddnn_tf.errors import ConfigError, DeploymentError
from ddnn_tf.serve.broker import Broker, find_mosquitto
from ddnn_tf.serve.mqtt import MqttSettings, default_topic_root

MODEL = DEFAULT_MODEL


@pytest.fixture()
def broker(tmp_path):
    with Broker(tmp_path / "broker") as b:
        yield b


def test_mosquitto_is_installed():
    """The set-up (``make broker``) installs it; say how when it did not."""
    mosquitto, passwd = find_mosquitto()
    assert mosquitto and passwd


def test_a_missing_broker_names_the_install_command(monkeypatch):
    import ddnn_tf.serve.broker as broker_module

    monkeypatch.setattr(broker_module.shutil, "which", lambda _: None)
    monkeypatch.setattr(broker_module.os, "access", lambda *_: False)
    with pytest.raises(DeploymentError, match=r"apt-get install -y mosquitto"):
        find_mosquitto()


@pytest.mark.parametrize(
    ("url", "kwargs", "match"),
    [
        ("http://127.0.0.1:1883", {}, "expected mqtt://HOST:PORT"),
        ("mqtt://u:secret@127.0.0.1:1883", {}, "must not hold the password"),
        ("mqtt://127.0.0.1:1883/x", {}, "without a path"),
        ("mqtt://127.0.0.1:99999", {}, "bad port"),
        ("mqtt://127.0.0.1", {"topic_root": "ddnn/+/x"}, "no wildcards"),
        ("mqtts://127.0.0.1", {"ca": "/no/such/ca.pem"}, "no CA certificate"),
    ],
)
def test_broker_settings_refuse_what_cannot_work(url, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        MqttSettings.from_url(url, **kwargs)


def test_broker_settings_defaults(monkeypatch):
    monkeypatch.setenv("DDNN_TF_MQTT_PASSWORD", "pw")
    s = MqttSettings.from_url("mqtts://gw@example.org")
    assert (s.host, s.port, s.tls, s.username, s.password) == (
        "example.org",
        8883,
        True,
        "gw",
        "pw",
    )
    assert s.url == "mqtts://gw@example.org:8883"
    assert MqttSettings.from_url("mqtt://10.0.0.2").port == 1883
    assert s.root({"name": "fmnist6_mlpcc"}) == default_topic_root("fmnist6_mlpcc")


def test_the_broker_refuses_a_wrong_password(broker):
    from ddnn_tf.serve.mqtt import AnswerSubscriber

    wrong = MqttSettings.from_url(broker.settings.url, password="not-it")
    with pytest.raises(DeploymentError, match="refused the connection: Not authorized"):
        AnswerSubscriber(wrong, "ddnn/x", "t-wrong").start()
    ok = AnswerSubscriber(broker.settings, "ddnn/x", "t-ok").start()
    ok.stop()


def test_tls_broker_with_a_ca_and_without(tmp_path):
    """``mqtts://``: the client verifies the broker's certificate with the CA given."""
    from ddnn_tf.serve.demo import self_signed_cert
    from ddnn_tf.serve.mqtt import AnswerSubscriber

    cert, key = self_signed_cert(tmp_path, ["127.0.0.1", "localhost"])
    with Broker(tmp_path / "b", tls=(str(cert), str(key)), ca=str(cert)) as b:
        settings = b.settings
        assert settings.url.startswith("mqtts://")
        sub = AnswerSubscriber(settings, "ddnn/tls", "t-tls").start()
        sub.stop()
        no_ca = MqttSettings.from_url(settings.url, password=b.password)  # system CAs only
        with pytest.raises(DeploymentError, match="did not accept us"):
            AnswerSubscriber(no_ca, "ddnn/tls", "t-no-ca").start(connect_s=3.0)


def _gateway_over_mqtt(settings, **kw):
    """An in-process gateway (T = 1: no cloud needed) with its MQTT bridge."""
    from ddnn_tf.serve.gateway import Gateway
    from ddnn_tf.serve.mqtt import GatewayBridge

    gw = Gateway(MODEL, "http://127.0.0.1:9", threshold=1.0, **kw)
    return gw, GatewayBridge(gw, settings)


def test_gateway_answers_a_wrong_model_and_bad_topics_on_the_error_topic(broker):
    """The model id travels as the user property ``model``; a device of another model,
    a device index past the model's, a start that is not ASCII digits: each gets its JSON
    error on its error topic, and the gateway goes on serving."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from ddnn_tf.serve.mqtt import _props

    settings = broker.settings
    root = "ddnn/errors"
    settings = MqttSettings.from_url(settings.url, password=settings.password, topic_root=root)
    got: list[tuple[str, dict]] = []
    ready = threading.Event()

    async def go():
        gw, bridge = _gateway_over_mqtt(settings)
        await gw.start()
        await bridge.start()
        client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        client.username_pw_set(settings.username, settings.password)
        client.on_message = lambda _c, _u, m: got.append((m.topic, json.loads(m.payload)))
        client.on_subscribe = lambda *_: ready.set()
        client.connect(settings.host, settings.port)
        client.loop_start()
        client.subscribe(f"{root}/down/#", qos=1)
        assert await asyncio.to_thread(ready.wait, 10)
        wrong = _props(model="0" * 64)
        client.publish(f"{root}/up/2/join", b"{}", qos=1, properties=wrong)
        right = _props(model=gw.model)
        client.publish(f"{root}/up/1/summary/6x4", b"x", qos=1, properties=right)
        client.publish(f"{root}/up/3/summary/{10**30}", b"x", qos=1, properties=right)
        client.publish(f"{root}/up/4/summary/100", b"x", qos=1, properties=right)
        client.publish(f"{root}/up/9/join", b"{}", qos=1, properties=right)  # no reply possible
        for _ in range(100):
            if len(got) >= 4:
                break
            await asyncio.sleep(0.1)
        client.loop_stop()
        await bridge.stop()
        await gw.stop()

    asyncio.run(go())
    errors = {topic: doc["error"]["code"] for topic, doc in got}
    assert errors == {
        f"{root}/down/2/error": "model_mismatch",
        f"{root}/down/1/error": "bad_header",
        f"{root}/down/3/error": "bad_header",
        f"{root}/down/4/error": "bad_header",
    }
    mismatch = next(doc for topic, doc in got if topic.endswith("/2/error"))
    assert "this gateway serves model" in mismatch["error"]["message"]


@pytest.fixture(scope="module")
def fmnist():
    from ddnn_tf.data import load_dataset

    return load_dataset("fmnist6")


def test_deploy_over_mqtt_two_sites_and_a_gateway_restart(fmnist):
    """``deploy --transport mqtt --sites 2``: a mosquitto of its own, two gateways with six
    devices each on their own topics, one cloud; site 0's gateway is SIGKILLed and
    started again. Every sample of both sites is answered once, as the offline run
    answers it; the bytes on the wire are reported per device."""
    from ddnn_tf.runtime import Hierarchy
    from ddnn_tf.serve.deploy import deploy

    n = 400
    result = deploy(
        MODEL,
        fmnist,
        limit=n,
        transport="mqtt",
        sites=2,
        restart_gateway_at=150,
        timeout_s=300,
        records=True,
    )
    assert result["transport"] == "mqtt" and len(result["sites"]) == 2
    assert result["lost"] == 0 and result["duplicates"] == 0
    assert result["mismatches_vs_offline"] == 0 and result["degraded"] == 0
    assert [r["service"] for r in result["restarts"]] == ["gateway"]
    for site in result["sites"]:
        assert site["n_samples"] == n and site["lost"] == 0 and site["cloud_answers"] > 0
        assert site["latency_ms"]["p50"] > 0
    assert result["cloud_samples_per_s"] > 0
    run = Hierarchy(MODEL).run(fmnist.test.subset(slice(0, n)).x, batch_size=256)
    np.testing.assert_array_equal(result["samples"]["prediction"], run.prediction)
    assert result["bytes_per_device"] == run.bytes_per_device()  # the paper's payload bytes
    assert result["wire_bytes_per_device"] > result["bytes_per_device"]  # + MQTT framing
    assert result["wire_received_bytes_per_device"] > 0
