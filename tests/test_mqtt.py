"""ddnn_tf.serve.mqtt*, .broker: the MQTT transport on a real mosquitto, and hostile clients.

Every test starts its own broker on loopback (``Broker``: generated files with a user, a
password and a topic ACL per client, TLS where said); a missing mosquitto is a failure
that names the install command, never a skip. The hostile clients are plain paho clients
holding some client's credentials (a device's, the answers reader's, an extra one with
the gateway's rights on a misconfigured broker); each class of attack gets its own test.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import threading
import time

import numpy as np
import pytest
from conftest import DEFAULT_MODEL, both_exits, check_link_latency

from ddnn_tf.errors import ConfigError, DeploymentError
from ddnn_tf.serve.broker import Broker, BrokerClient, find_mosquitto, plan_clients
from ddnn_tf.serve.mqtt import MqttSettings, default_topic_root

MODEL = DEFAULT_MODEL
ROOT = "ddnn/hostile"
N = 16  # samples per round


@pytest.fixture(scope="module")
def fmnist():
    from ddnn_tf.data import load_dataset

    return load_dataset("fmnist6")


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


def test_broker_settings_defaults_and_a_warning_without_credentials(monkeypatch, caplog):
    monkeypatch.setenv("DDNN_TF_MQTT_PASSWORD", "pw")
    with caplog.at_level(logging.WARNING, "ddnn_tf.serve.mqtt"):
        s = MqttSettings.from_url("mqtts://gw@example.org")
    assert not caplog.records  # a user name: no warning
    assert (s.host, s.port, s.tls, s.username, s.password) == (
        "example.org",
        8883,
        True,
        "gw",
        "pw",
    )
    assert s.url == "mqtts://gw@example.org:8883"
    assert s.root({"name": "fmnist6_mlpcc"}) == default_topic_root("fmnist6_mlpcc")
    with caplog.at_level(logging.WARNING, "ddnn_tf.serve.mqtt"):
        assert MqttSettings.from_url("mqtt://10.0.0.2").port == 1883
    assert "without credentials" in caplog.text


def test_the_broker_refuses_a_wrong_password_and_anonymous_clients(tmp_path):
    from ddnn_tf.serve.collect import AnswerSubscriber

    with Broker(tmp_path, plan_clients(["ddnn/x"], 1)) as broker:
        ok = broker.settings("answers")
        wrong = MqttSettings.from_url(ok.url, password="not-it")
        with pytest.raises(DeploymentError, match="refused the connection: Not authorized"):
            AnswerSubscriber(wrong, "ddnn/x", "t-wrong").start()
        anonymous = MqttSettings(broker.host, broker.port)
        with pytest.raises(DeploymentError, match="refused the connection: Not authorized"):
            AnswerSubscriber(anonymous, "ddnn/x", "t-anon").start()
        AnswerSubscriber(ok, "ddnn/x", "t-ok").start().stop()
        assert (tmp_path / "clients" / "device0.env").stat().st_mode & 0o077 == 0


def test_tls_broker_with_a_ca_and_without(tmp_path):
    """``mqtts://``: the client verifies the broker's certificate with the CA given."""
    from ddnn_tf.serve.collect import AnswerSubscriber
    from ddnn_tf.serve.demo import self_signed_cert

    cert, key = self_signed_cert(tmp_path, ["127.0.0.1", "localhost"])
    clients = plan_clients(["ddnn/tls"], 1)
    with Broker(tmp_path / "b", clients, tls=(str(cert), str(key)), ca=str(cert)) as b:
        settings = b.settings("answers")
        assert settings.url.startswith("mqtts://answers@")
        AnswerSubscriber(settings, "ddnn/tls", "t-tls").start().stop()
        no_ca = MqttSettings.from_url(settings.url, password=settings.password)  # system CAs
        with pytest.raises(DeploymentError, match="did not accept us"):
            AnswerSubscriber(no_ca, "ddnn/tls", "t-no-ca").start(connect_s=3.0)


# ------------------------------------------------------------------ a site under attack
class Site:
    """A broker with a client per role, an in-process gateway (T = 1: every sample exits
    locally, no cloud needed) and its MQTT bridge on an event loop of its own, and the
    summaries of the first rounds of the fmnist6 test split."""

    def __init__(self, folder, fmnist, *, limit=4096, **gateway):
        from ddnn_tf.runtime import Hierarchy
        from ddnn_tf.serve.gateway import Gateway
        from ddnn_tf.serve.settings import GatewaySettings

        # an extra client with the gateway's rights: a broker whose ACL lets a stranger
        # write the down topics, the status and the answers
        intruder = BrokerClient("intruder", "intruder-password", "gateway", ROOT)
        self.broker = Broker(
            folder, [*plan_clients([ROOT], 6), intruder], max_body_bytes=limit
        ).start()
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        options = {"threshold": 1.0, "batch": N, "window": 8 * N, "join_s": 20.0, **gateway}
        self.gw = Gateway(GatewaySettings(model=MODEL, cloud="http://127.0.0.1:9", **options))
        self.run(self.gw.start())
        self.bridge = self.start_bridge(limit)
        h = Hierarchy(MODEL)
        test = fmnist.test.subset(slice(0, 4 * N))
        self.offline = h.run(test.x, thresholds=1.0, batch_size=N)
        outs = [h.tiers[f"device_{d}"]({"image": x})["summary"] for d, x in enumerate(test.x)]
        from ddnn_tf.core.comm import encode_summaries

        self.summaries = [encode_summaries(o, self.gw.encoding).tobytes() for o in outs]
        self.links = []

    def run(self, coro, timeout=30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start_bridge(self, limit=4096):
        from ddnn_tf.serve.mqtt_gateway import GatewayBridge

        bridge = GatewayBridge(self.gw, self.broker.settings("gateway"), 10.0, limit)
        self.run(bridge.start())
        return bridge

    def summary(self, d: int, start: int) -> bytes:
        size = self.gw.summary_bytes
        return self.summaries[d][start * size : (start + N) * size]

    def join_all(self):
        from ddnn_tf.core.manifest import load_manifest
        from ddnn_tf.serve.mqtt_device import MqttLink

        manifest = load_manifest(MODEL)
        self.links = [MqttLink(self.broker.settings(f"device{d}"), manifest, d) for d in range(6)]
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            return list(pool.map(lambda link: link.join(), self.links))

    def round(self, start: int, devices=range(6)) -> list[bytes]:
        """Every device's summaries for round ``start`` at once; their decisions."""
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            calls = [
                pool.submit(self.links[d].summary, start, self.summary(d, start)) for d in devices
            ]
            return [c.result() for c in calls]

    def raw(self, user: str, client_id: str | None = None):
        """A plain paho client connected with ``user``'s credentials; it records what it
        receives and the reason codes of its publications."""
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        cid = client_id or f"raw-{user}"
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=paho.MQTTv5)
        c.username_pw_set(user, self.broker.clients[user].password)
        c.got, c.acks, ready = [], {}, threading.Event()
        c.on_message = lambda _c, _u, m: c.got.append((m.topic, bytes(m.payload), m.properties))
        c.on_publish = lambda _c, _u, mid, rc, _p: c.acks.__setitem__(mid, str(rc))
        c.on_connect = lambda *_: ready.set()
        c.connect(self.broker.host, self.broker.port)
        c.loop_start()
        assert ready.wait(10)
        return c

    def close(self):
        for link in self.links:
            link.close()
        self.run(self.bridge.stop())
        self.run(self.gw.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.broker.stop()


@pytest.fixture()
def site(tmp_path, fmnist):
    s = Site(tmp_path, fmnist)
    yield s
    s.close()


def _wait(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return predicate()


def _props(**kw):
    from ddnn_tf.serve.mqtt import publish_props

    return publish_props(**kw)


def _answers_match(site, starts):
    rows = {r[0]: r for r in site.gw.log.rows()}
    for start in starts:
        for k in range(start, start + N):
            assert rows[k][1] == site.offline.exit_index[k]
            assert rows[k][2] == site.offline.prediction[k]
            assert rows[k][4] == 63, f"sample {k} answered with presence {rows[k][4]}"


def test_each_client_is_kept_to_its_own_topics_and_session(site):
    """A device's credentials cannot publish in another device's name, as the gateway
    (status, decisions, answers), read another device's or the gateway's messages, or
    take the gateway's session with its client id; nobody gets in without credentials."""
    site.join_all()
    spy = site.raw("device3")
    spy.subscribe(f"{ROOT}/up/#", qos=1)
    spy.subscribe(f"{ROOT}/down/#", qos=1)
    spy.subscribe(f"{ROOT}/answers", qos=1)
    thief = site.raw("device4", client_id="gateway")  # asks for the gateway's session
    forged = {
        thief.publish(f"{ROOT}/up/0/summary/0", b"x" * 5 * N, qos=1).mid: "as device 0",
        thief.publish(f"{ROOT}/status", b'{"status":"offline","boot":"x"}', qos=1).mid: "status",
        thief.publish(f"{ROOT}/down/0/decision/0", b"\xff\xff", qos=1).mid: "a decision",
        thief.publish(f"{ROOT}/answers", b"{}", qos=1).mid: "an answer",
    }
    assert _wait(lambda: len(thief.acks) == len(forged))
    assert {thief.acks[mid] for mid in forged} == {"Not authorized"}, thief.acks
    masks = site.round(0)
    from ddnn_tf.serve.wire import decode_mask

    assert all(not decode_mask(m, N).any() for m in masks)  # T = 1: all exit locally
    _answers_match(site, [0])
    seen = [t for t, _, _ in spy.got if not t.startswith(f"{ROOT}/down/3/")]
    assert seen == [], "device 3 read other clients' messages"
    assert site.bridge.connects == 1  # never kicked off
    assert site.gw.log.answered == N
    spy.loop_stop()
    thief.loop_stop()


def test_malformed_oversized_and_retained_messages_are_acknowledged_and_dropped(tmp_path, fmnist):
    """A device's own credentials: a model id holding U+FEFF (which paho cannot decode),
    QoS 1 and retained; a body over the limit; a bad body; a topic of no message. The
    gateway answers what it can to that device, with that message's correlation data,
    drops the rest, is never disconnected, and serves the next rounds exactly; a new
    gateway process is not fed the malformed message again."""
    site = Site(tmp_path, fmnist, limit=4096)
    try:
        bad = site.raw("device3")
        bad.subscribe(f"{ROOT}/down/3/#", qos=1)
        bom = _props(model="\ufeff" + site.gw.model)
        mine = {"correlation_data": b"hostile-3", "model": site.gw.model}
        bad.publish(f"{ROOT}/up/3/summary/0", site.summary(3, 0), qos=1, properties=bom)
        bad.publish(
            f"{ROOT}/up/3/summary/0", site.summary(3, 0), qos=1, retain=True, properties=bom
        )
        bad.publish(f"{ROOT}/up/3/summary/0", b"\0" * 10_000, qos=1, properties=_props(**mine))
        bad.publish(f"{ROOT}/up/3/summary/0", b"\0" * 7, qos=1, properties=_props(**mine))
        bad.publish(f"{ROOT}/up/3/dance/0", b"", qos=1, properties=_props(**mine))
        bad.publish(f"{ROOT}/up/3/features", b"", qos=1, properties=_props(**mine))
        assert _wait(lambda: len(bad.got) == 4), bad.got
        codes = [json.loads(p)["error"]["code"] for _, p, _ in bad.got]
        assert sorted(codes) == ["bad_body", "bad_topic", "bad_topic", "too_large"]
        assert all(t == f"{ROOT}/down/3/error" for t, _, _ in bad.got)
        assert all(props.CorrelationData == b"hostile-3" for _, _, props in bad.got)
        bad.loop_stop()
        bad.disconnect()
        assert _wait(lambda: site.bridge.drops.count >= 2)
        site.join_all()
        site.round(0)
        site.round(N)
        _answers_match(site, [0, N])
        assert site.bridge.connects == 1
        site.run(site.bridge.stop())
        site.bridge = site.start_bridge()  # a new connection of the gateway
        assert _wait(lambda: site.bridge.drops.count >= 1)  # the retained one, dropped again
        time.sleep(0.5)
        assert site.bridge.drops.count == 1  # the QoS 1 one was acknowledged: not again
        assert site.bridge.connects == 1
    finally:
        site.close()


def test_devices_and_readers_ignore_forged_and_malformed_messages(site):
    """Someone with write access to the down topics, the status and the answers (a
    misconfigured ACL): a status that is no object, a decision and an error without the
    device's correlation data, answers that are not answers. The devices keep their
    rounds and the answers reader its thread; what it collects is the gateway's."""
    from ddnn_tf.serve.collect import AnswerSubscriber
    from ddnn_tf.serve.wire import decode_mask

    reader = AnswerSubscriber(site.broker.settings("answers"), ROOT, "r").start()
    site.join_all()
    forger = site.raw("intruder")
    for status in (b"[1]", b'"offline"', b"\xff", b'{"status": 3}'):
        forger.publish(f"{ROOT}/status", status, qos=1)
    for payload in (b"not json", b"[1, 2]", b'{"seq": 1, "sample": 0}'):
        forger.publish(f"{ROOT}/answers", payload, qos=1)
    assert _wait(lambda: site.links[0].drops.count >= 4 and reader.drops.count >= 3)
    assert all(link.status.get("status") == "online" for link in site.links)

    def forge_while_waiting():
        time.sleep(0.3)  # device 0 waits for its decision: the others have not spoken
        forger.publish(f"{ROOT}/down/0/decision/0", b"\xff\xff", qos=1)
        forger.publish(
            f"{ROOT}/down/0/decision/0",
            b"\xff\xff",
            qos=1,
            properties=_props(correlation_data=b"guess"),
        )
        error = {"error": {"code": "duplicate", "message": "x"}, "topic": f"{ROOT}/up/0/summary/0"}
        forger.publish(f"{ROOT}/down/0/error", json.dumps(error).encode(), qos=1)
        time.sleep(0.3)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(site.links[0].summary, 0, site.summary(0, 0))
        pool.submit(forge_while_waiting).result()
        rest = site.round(0, devices=range(1, 6))
        masks = [first.result(), *rest]
    assert all(not decode_mask(m, N).any() for m in masks)
    assert site.links[0].drops.count >= 7
    _answers_match(site, [0])
    assert reader.wait_for(N, 10)
    assert sorted(reader.answers) == list(range(N))
    reader.stop()
    forger.loop_stop()


def test_a_lone_summary_never_changes_another_round(tmp_path, fmnist):
    """One device alone opens a round far ahead (the others busy with theirs): it is
    answered with that device alone after the gather time, and the rounds the devices
    then send together are answered with every device present, as offline."""
    from ddnn_tf.serve.protocol import Message

    site = Site(tmp_path, fmnist, gather_s=0.5)
    try:
        site.join_all()
        lone = asyncio.run_coroutine_threadsafe(
            site.gw.answer(Message("summary", 0, 3 * N, site.summary(0, 3 * N)), 10.0, "lone"),
            site.loop,
        )
        site.round(0)
        lone.result(10)  # decided with device 0 alone, after the gather time
        site.round(N)
        site.round(2 * N)
        _answers_match(site, [0, N, 2 * N])
        rows = {r[0]: r for r in site.gw.log.rows()}
        assert rows[3 * N][4] == 1  # the lone round: device 0 only
    finally:
        site.close()


def test_a_wrong_model_and_bad_topics_are_answered_on_the_error_topic(site):
    """The model id travels as the user property ``model``; a device of another model,
    a start that is not ASCII digits, too large or not a round start: each gets its JSON
    error on its error topic; a device index past the model's gets nothing (no such
    device to answer); the gateway goes on serving."""
    raw = {d: site.raw(f"device{d}") for d in (1, 2, 3, 4)}
    for c in raw.values():
        c.subscribe(f"{ROOT}/down/#", qos=1)
    time.sleep(0.3)
    right = _props(model=site.gw.model)
    raw[2].publish(f"{ROOT}/up/2/join", b"{}", qos=1, properties=_props(model="0" * 64))
    raw[1].publish(f"{ROOT}/up/1/summary/6x4", b"x", qos=1, properties=right)
    raw[3].publish(f"{ROOT}/up/3/summary/{10**30}", b"x", qos=1, properties=right)
    raw[4].publish(f"{ROOT}/up/4/summary/100", b"x", qos=1, properties=right)
    raw[4].publish(f"{ROOT}/up/9/join", b"{}", qos=1, properties=right)  # not its topic
    assert _wait(lambda: sum(len(c.got) for c in raw.values()) >= 4)
    time.sleep(0.3)
    errors = {t: json.loads(p)["error"] for c in raw.values() for t, p, _ in c.got}
    assert {t: e["code"] for t, e in errors.items()} == {
        f"{ROOT}/down/2/error": "model_mismatch",
        f"{ROOT}/down/1/error": "bad_header",
        f"{ROOT}/down/3/error": "bad_header",
        f"{ROOT}/down/4/error": "bad_header",
    }
    assert "serves model" in errors[f"{ROOT}/down/2/error"]["message"]
    for c in raw.values():
        c.loop_stop()
        c.disconnect()
    site.join_all()
    site.round(0)
    _answers_match(site, [0])


def test_the_bridge_takes_a_device_number_only_in_ascii_digits():
    """A topic's device level is the protocol's integer (``ascii_int``): other scripts'
    digits, signs and out-of-range numbers are dropped before anything is parsed."""
    from types import SimpleNamespace

    from ddnn_tf.serve.mqtt import Drops, Topics
    from ddnn_tf.serve.mqtt_gateway import GatewayBridge

    bridge = object.__new__(GatewayBridge)
    bridge.topics, bridge.drops = Topics(ROOT), Drops("gateway")
    bridge.gw = SimpleNamespace(num_devices=6)
    spawned = []
    bridge.loop = SimpleNamespace(call_soon_threadsafe=lambda _fn, args: spawned.append(args))
    for device in ("\u0663", "\u00b2", "+3", "03x", "6", "1" * 40, "3"):
        msg = SimpleNamespace(topic=f"{ROOT}/up/{device}/join", retain=False, payload=b"{}")
        bridge._on_message(None, None, msg)
    assert bridge.drops.count == 6 and [args[1][0] for args in spawned] == ["3"]


def test_every_error_reaches_the_device_internal_included(site, monkeypatch):
    """A bug in the gateway is answered ``internal`` at once (its traceback on stderr),
    not left to the device's 30 s timeout; the gateway goes on serving."""
    site.join_all()

    async def broken(*_):
        raise RuntimeError("a bug")

    original = site.gw.summary
    monkeypatch.setattr(site.gw, "summary", broken)
    with pytest.raises(DeploymentError, match=r"answered internal: RuntimeError: a bug"):
        site.links[2].summary(0, site.summary(2, 0))
    monkeypatch.setattr(site.gw, "summary", original)
    site.round(0)
    _answers_match(site, [0])


def test_random_messages_never_disconnect_the_gateway_nor_change_its_answers(site):
    """500 seeded random messages: a device's credentials on its own up topics (odd kinds,
    round starts and extra levels, cut or random bodies, odd model ids and user
    properties, QoS 0 and 1, retained), an intruder with the gateway's rights on the
    status, the answers and the down topics. Every error the device gets is the protocol's
    JSON body; the bridge is never disconnected; the next rounds are answered exactly."""
    import random

    rng = random.Random(25)
    odd = ["", "0", "-1", "\u0663", "\u00b2", "9" * 20, "\ufeff1", "a", "1.5", "16", "x" * 300]

    def word() -> str:
        return rng.choice([*odd, str(rng.randint(0, 70000))])

    def body() -> bytes:
        if rng.random() < 0.4:
            return site.summary(3, rng.choice([0, N]))[: rng.randint(0, 5 * N + 1)]
        return rng.randbytes(rng.choice([0, 1, 80, 4097]))

    def props():
        user = {"model": site.gw.model if rng.random() < 0.6 else word()}
        if rng.random() < 0.2:
            user[word() or "k"] = word()
        correlation = rng.randbytes(rng.randint(0, 40)) if rng.random() < 0.6 else None
        return _props(correlation_data=correlation, **user)

    device, intruder = site.raw("device3"), site.raw("intruder")
    device.subscribe(f"{ROOT}/down/3/#", qos=1)
    for _ in range(500):
        if rng.random() < 0.8:
            levels = [rng.choice(["join", "summary", "features", "dance", ""])]
            if rng.random() < 0.7:
                levels.append(rng.choice(["0", str(N), word()]))  # the round start
            if rng.random() < 0.1:
                levels.append(word())
            topic = "/".join([ROOT, "up", "3", *levels]).replace("+", "p").replace("#", "h")
            qos, retain = rng.choice([0, 1]), rng.random() < 0.1
            device.publish(topic, body(), qos=qos, retain=retain, properties=props())
        else:
            where = rng.choice(["status", "answers", "down/0/decision/0", "down/1/error"])
            intruder.publish(f"{ROOT}/{where}", body(), qos=rng.choice([0, 1]))
    assert _wait(lambda: len(device.got) >= 200)
    time.sleep(1.0)
    errors = [json.loads(p)["error"] for t, p, _ in device.got if t.endswith("/error")]
    assert len(errors) >= 200
    assert all(isinstance(e["code"], str) and e["message"] for e in errors)
    assert {"bad_body", "bad_topic", "model_mismatch"} <= {e["code"] for e in errors}
    for client in (device, intruder):
        client.loop_stop()
        client.disconnect()
    site.join_all()
    site.round(2 * N)
    site.round(3 * N)
    _answers_match(site, [2 * N, 3 * N])
    assert site.bridge.connects == 1


def test_deploy_over_mqtt_two_sites_and_a_gateway_restart(fmnist):
    """``deploy --transport mqtt --sites 2``: a mosquitto of its own with a user and an
    ACL per client, two gateways with six devices each on their own topics, one cloud;
    site 0's gateway is SIGKILLed and started again. Every sample of both sites is
    answered once, as the offline run answers it; the bytes on the wire are reported per
    device."""
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
        # a restart is not held at its count (it must meet rounds in flight): the stream
        # lasts 4 s, so the restart comes while rounds remain however far the answer
        # reader is behind the devices
        rate_hz=100,
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


def test_eager_protocol_over_mqtt_on_a_lora_link(fmnist):
    """``deploy --transport mqtt --mode eager --link lora-sf7``: each device publishes its
    summary and features in one LoRa packet, the gateway forwards the features of the
    samples that do not exit locally; the answers are the paper protocol's (the offline
    run's) and the latency per exit is the cost model's."""
    from ddnn_tf.runtime import Hierarchy
    from ddnn_tf.serve.deploy import deploy

    data = both_exits(fmnist, 3, 3)
    result = deploy(
        MODEL, data, transport="mqtt", mode="eager", link="lora-sf7", timeout_s=120, records=True
    )
    assert result["mode"] == "eager" and result["transport"] == "mqtt"
    check_link_latency(result, "lora-sf7")
    run = Hierarchy(MODEL).run(data.test.x)
    np.testing.assert_array_equal(result["samples"]["prediction"], run.prediction)
    np.testing.assert_array_equal(result["samples"]["exit"], run.exit_index)
    assert result["bytes_per_device"] == 5 + 18  # every sample's summary and features


def test_ddnn_broker_writes_a_broker_for_a_model_and_starts_it(tmp_path):
    """``ddnn broker MODEL --out DIR --start``: the files, each client's credentials in
    its own file, and mosquitto running with them: a device reaches its own topics with
    its file's password and is refused another device's; DIR is never half-written or
    replaced without --overwrite."""
    import os
    import re
    import signal
    import subprocess
    import sys

    from conftest import ROOT as REPO

    from ddnn_tf.serve.settings import free_port

    out, port = tmp_path / "site-broker", free_port()
    ddnn = [sys.executable, "-c", "from ddnn_tf.cli import main; main()"]
    command = [*ddnn, "broker", str(MODEL), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [*command, "--port", str(port), "--start"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        lines = [proc.stdout.readline() for _ in range(12)]  # the summary, then mosquitto
        assert any(line.startswith("device5") for line in lines), lines
        text = (out / "clients" / "device1.env").read_text()
        password = re.search(r"DDNN_TF_MQTT_PASSWORD=(\S+)", text).group(1)
        settings = MqttSettings.from_url(f"mqtt://device1@127.0.0.1:{port}", password=password)
        assert _wait(lambda: _acks(settings, ["ddnn/fmnist6_mlpcc/up/1/join"]) is not None)
        assert _acks(
            settings, ["ddnn/fmnist6_mlpcc/up/2/join", "ddnn/fmnist6_mlpcc/up/1/join"]
        ) == [
            "Not authorized",
            "No matching subscribers",
        ]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert (out / "acl").read_text().count("user ") == 8  # gateway, 6 devices, answers


def _acks(settings, topics):
    """The reason codes of QoS 1 publications on ``topics`` (None: no connection)."""
    from ddnn_tf.serve.mqtt import connect, mqtt_client

    c, acks = mqtt_client(settings, "probe"), {}
    c.on_publish = lambda _c, _u, mid, rc, _p: acks.__setitem__(mid, str(rc))
    try:
        connect(c, settings, 5.0, lambda _: None)
    except DeploymentError:
        return None
    mids = [c.publish(t, b"", qos=1).mid for t in topics]
    _wait(lambda: len(acks) == len(mids))
    c.disconnect()
    c.loop_stop()
    return [acks.get(m) for m in mids]
