"""``ddnn deploy MODEL --data fmnist6``: the whole hierarchy as processes on loopback
(:func:`ddnn_tf.serve.deploy.deploy`)."""

from __future__ import annotations

import sys

from ddnn_tf.cli.flags import AT_LEAST_1, NON_NEGATIVE, POSITIVE, command

__all__ = ["deploy"]


@command(
    limit=AT_LEAST_1,
    replicas=AT_LEAST_1,
    batch=AT_LEAST_1,
    kill_device=NON_NEGATIVE,
    kill_at=NON_NEGATIVE,
    cloud_down_at=NON_NEGATIVE,
    timeout_s=POSITIVE,
    gather_s=POSITIVE,
    sites=AT_LEAST_1,
    repeat=AT_LEAST_1,
    restart_gateway_at=NON_NEGATIVE,
    restart_cloud_at=NON_NEGATIVE,
    window=AT_LEAST_1,
    cloud_retry_s=POSITIVE,
)
def deploy(
    model: str,
    data: str | None = None,
    path: str | None = None,
    split: str = "test",
    limit: int | None = None,
    threshold=None,
    engine: str = "uvicorn",
    replicas: int = 1,
    batch: int = 64,
    target: str = "portable",
    kill_device: int | None = None,
    kill_at: int | None = None,
    cloud_down_at: int | None = None,
    timeout_s: float = 900.0,
    gather_s: float = 2.0,
    sites: int = 1,
    repeat: int = 1,
    transport: str = "http",
    broker: str | None = None,
    restart_gateway_at: int | None = None,
    restart_cloud_at: int | None = None,
    window: int = 4096,
    cloud_retry_s: float | None = None,
    mcu_devices=None,
    json: bool = False,  # noqa: A002  (the flag is --json)
) -> None:
    """Run a converted model's hierarchy as processes on loopback and report it.

    Args:
        model: the converted model directory (tflite_models/NAME).
        data: dataset name (fmnist6, mvmc, npz, synthetic, cancer3; default: the one the
            manifest records).
        path: data file or directory for file-based loaders.
        split: test or val.
        limit: stream the first N samples only.
        threshold: T of every early exit, or 'paper' (default: the manifest's).
        engine: the cloud's engine: uvicorn or ray.
        replicas: Ray Serve replicas (engine ray).
        batch: samples per device round.
        target: portable (ai-edge-litert) or lce (larq-compute-engine).
        kill_device: the device to kill (with --kill-at).
        kill_at: kill it once this many samples were answered.
        cloud_down_at: stop the cloud once this many samples were answered.
        timeout_s: give up (and stop everything) after this many seconds of streaming.
        gather_s: how long the gateway waits for a silent device before counting it absent.
        sites: gateways, each with its own devices, sharing the one cloud.
        repeat: stream the split this many times (a soak).
        transport: http or mqtt between the devices and the gateways.
        broker: an MQTT broker to use, mqtt://HOST:PORT or mqtts://HOST:PORT, its password
            in $DDNN_TF_MQTT_PASSWORD (default: start mosquitto on loopback).
        restart_gateway_at: SIGKILL site 0's gateway once this many samples were answered
            and start it again (same port, same journal).
        restart_cloud_at: stop the cloud once this many samples were answered and start
            it again on the same port.
        window: answers each gateway keeps for reconnecting subscribers.
        cloud_retry_s: how long the gateways retry an unreachable cloud before answering
            lower down (default 5; 60 with --restart-cloud-at, 180 on Ray).
        mcu_devices: devices (e.g. 0,1,2,3,4,5) whose tier runs as C on an emulated
            Cortex-M4 (QEMU).
        json: print one JSON object instead of the text report.
    """
    import json as _json

    from ddnn_tf.serve.deploy import deploy as run_deploy
    from ddnn_tf.serve.deploy import format_report

    try:
        result = run_deploy(
            model,
            data,
            path=path,
            split=split,
            limit=limit,
            threshold=threshold,
            engine=engine,
            replicas=replicas,
            batch=batch,
            target=target,
            kill_device=kill_device,
            kill_at=kill_at,
            cloud_down_at=cloud_down_at,
            timeout_s=timeout_s,
            gather_s=gather_s,
            sites=sites,
            repeat=repeat,
            transport=transport,
            broker=broker,
            restart_gateway_at=restart_gateway_at,
            restart_cloud_at=restart_cloud_at,
            window=window,
            cloud_retry_s=cloud_retry_s,
            mcu_devices=mcu_devices,
        )
    except KeyboardInterrupt:
        print("error: interrupted; every process deploy started was stopped.", file=sys.stderr)
        sys.exit(130)
    print(_json.dumps(result, indent=2) if json else format_report(result))


COMMAND = deploy
