"""ddnn_tf.serve.deploy: restarts survived, a stream longer than the answer window.

Real processes on loopback (``python -m ddnn_tf.serve cloud|gateway``, six
``python -m ddnn_tf.device``), the committed model and the real Fashion-MNIST test split.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DEFAULT_MODEL, both_exits, check_link_latency

from ddnn_tf.errors import ConfigError
from ddnn_tf.serve.deploy import deploy
from ddnn_tf.serve.live_report import format_report

MODEL = DEFAULT_MODEL


@pytest.fixture(scope="module")
def fmnist():
    from ddnn_tf.data import load_dataset

    return load_dataset("fmnist6")


def test_gateway_and_cloud_restarts_lose_nothing_and_answer_each_sample_once(fmnist):
    """The gateway is SIGKILLed and started again on its port with its journal, later the
    cloud: the devices back off and reconnect, the rounds in flight are sent again, and
    every one of the 1,200 samples (600 test samples streamed twice, through a 512-answer
    window) is answered once, exactly as the offline run answers it.

    The faults are counted in answers read from the gateway's result stream, which a
    loaded machine can leave behind the devices: unpaced, the devices could end before
    the count reached the cloud's restart, or the gateway could be killed holding more
    answers not yet sent than its window restores. At 200 samples a second the stream
    lasts 6 s: 3 s of it come after the cloud's restart point (600), and the reader would
    have to be 512 answers (2.5 s) behind the gateway when it is killed to miss one."""
    from ddnn_tf.runtime import Hierarchy

    n, repeat = 600, 2
    result = deploy(
        MODEL,
        fmnist,
        limit=n,
        repeat=repeat,
        window=512,
        rate_hz=200,
        restart_gateway_at=250,
        restart_cloud_at=600,
        timeout_s=300,
        records=True,
    )
    assert result["n_samples"] == n * repeat
    assert result["lost"] == 0 and result["duplicates"] == 0, result["restarts"]
    assert result["mismatches_vs_offline"] == 0
    assert result["degraded"] == 0  # the cloud came back within the gateway's retry time
    assert [r["service"] for r in result["restarts"]] == ["gateway", "cloud"]
    assert result["restarts"][0]["after"] >= 250 and result["restarts"][1]["after"] >= 600
    assert result["device_retries"] > 0  # the devices did reconnect
    test = fmnist.test.subset(slice(0, n))
    run = Hierarchy(MODEL).run(test.x, batch_size=256)
    samples = result["samples"]
    np.testing.assert_array_equal(samples["prediction"], np.tile(run.prediction, repeat))
    np.testing.assert_array_equal(samples["exit"], np.tile(run.exit_index, repeat))
    assert len(result["rss_mb"]["gateway"]) == 2 and result["rss_mb"]["gateway"][1] > 0
    text = format_report(result)
    assert "gateway restarted after" in text and "duplicates: 0" in text


def test_a_ble_link_takes_the_time_the_cost_model_predicts(fmnist):
    """``deploy --link ble-1m``: six device processes whose messages wait for their BLE
    connection events, turns and time on air, a gateway whose decisions reach them at
    their next connection event, and the WAN's round trip to the cloud."""
    data = both_exits(fmnist, 4, 4)
    result = deploy(MODEL, data, link="ble-1m", timeout_s=120)
    check_link_latency(result, "ble-1m")
    local, cloud = (result["latency_ms"][e]["predicted"]["p50"] for e in ("local", "cloud"))
    assert cloud > local + 50  # a decision downlink, a feature uplink and the WAN


@pytest.mark.parametrize(
    ("options", "argument"),
    [
        ({"transport": "carrier-pigeon"}, "transport"),
        ({"broker": "mqtt://127.0.0.1:1883"}, "broker"),
        ({"sites": 0}, "sites"),
        ({"repeat": 1.5}, "repeat"),
        ({"window": 64}, "window"),  # less than two rounds of 64
        ({"restart_gateway_at": -1}, "restart_gateway_at"),
        ({"cloud_retry_s": 0}, "cloud_retry_s"),
        ({"transport": "mqtt", "broker": "http://127.0.0.1:1883"}, "broker"),
        ({"link": "ble-1m", "batch": 8}, "batch"),  # a radio sends each sample
        ({"link": "carrier-pigeon"}, "link"),
        ({"link": "broadband"}, "link"),  # a wan profile, not a radio
        ({"link": "ble-1m", "wan": "lora-sf7"}, "wan"),
        ({"mode": "lazy"}, "mode"),
    ],
)
def test_deploy_refuses_bad_options_before_starting_anything(options, argument):
    with pytest.raises(ConfigError) as err:
        deploy(MODEL, "synthetic", **options)
    assert err.value.argument == argument
