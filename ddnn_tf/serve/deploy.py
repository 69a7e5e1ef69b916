"""The whole hierarchy as real processes on loopback, in one command.

:func:`deploy` (``ddnn deploy MODEL_DIR --data fmnist6``) starts the cloud (``ddnn serve
cloud``), one gateway per site (``ddnn serve gateway``) and one OS process per end device
(``ddnn device``) on 127.0.0.1 free ports, with a fresh shared token (and, over MQTT, a
mosquitto broker of its own with a fresh password, unless ``broker`` names one), streams
the data split through them, reads every site's answers from its result stream as they
are made (never polling), stops everything it started (also on an error or Ctrl-C) and
reports ``ddnn run``'s keys measured live, plus what only a network shows:

* ``wire_bytes_per_device``: bytes one live device put on its socket per sample (payload
  plus HTTP or MQTT framing), ``wire_received_bytes_per_device`` what it read back;
* ``latency_ms`` ``{p50, p99}``: per sample, from the moment its devices started
  (the earliest device's clock before running its tier) to its answer at the gateway;
* ``samples_per_s``; ``lost`` (samples without an answer); ``duplicates`` (samples
  answered more than once); ``degraded`` (answered by the exit below the cloud, local
  or edge, because the cloud was unreachable);
* ``mismatches_vs_offline``: answered samples whose exit or prediction differs from
  :meth:`ddnn_tf.runtime.Hierarchy.run` on the same data, ``T`` and the device
  presence the gateway observed (a degraded sample is expected at the exit below the
  cloud);
* ``rss_mb``: ``{"gateway": [at 10 %, at the end], "cloud": [...]}``, the peak resident
  memory (``VmHWM``, summed over the service's processes) when 10 % of the stream was
  answered and at its end;
* with ``sites`` > 1, ``sites``: those figures per site, and ``cloud_samples_per_s``.
  The top-level figures are then over all sites (``lost``, ``duplicates``,
  ``mismatches_vs_offline``, ``degraded`` summed; latency over every answer).

Faults (counted in answers of site 0): ``kill_device=D, kill_at=K`` SIGKILLs device D's
process; ``cloud_down_at=K`` stops the cloud for good (SIGKILL for uvicorn, an outage;
SIGTERM for Ray, whose driver then stops the Ray instance); ``restart_gateway_at=K``
SIGKILLs site 0's gateway and starts it again on the same port with the same journal;
``restart_cloud_at=K`` stops the cloud as above and starts it again on the same port.

``mcu_devices=[0, 1, ...]`` runs those devices' tiers as C inside an emulated Cortex-M4
(``ddnn device --mcu qemu``, :mod:`ddnn_tf.mcu.live`) at every site; the report lists
them as ``mcu_devices``.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ddnn_tf.errors import ConfigError, DeploymentError
from ddnn_tf.serve.mqtt import PASSWORD_ENV
from ddnn_tf.serve.process import READY_TIMEOUT_S, ServiceProcess, wait_ready

__all__ = ["deploy", "format_report", "service_rss_mb"]

#: How long deploy waits, once the devices are done, for the last answers to arrive.
_DRAIN_S = 30.0


def _check_count(value, name: str, low: int = 0) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        want = "a non-negative integer" if low == 0 else f"an integer >= {low}"
        raise ConfigError(f"expected {want}, got {value!r}.", argument=name)
    return value


def _check_seconds(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"expected a positive number of seconds, got {value!r}.", argument=name)
    return float(value)


def service_rss_mb(pid: int) -> float:
    """Peak resident memory (``VmHWM``) of process ``pid`` and of every process it leads
    (its own children, started in its process group: Ray's processes, say), in MB."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
            sid = int(stat[stat.rindex(b")") + 2 :].split()[3])
            if int(entry) != pid and sid != pid:
                continue
            with open(f"/proc/{entry}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue  # a process that ended meanwhile
    return total / 1024


@dataclass
class _Site:
    index: int
    args: list[str]
    env: dict[str, str]
    gateway: ServiceProcess
    url: str
    topic_root: str | None
    collector: Any
    devices: list[ServiceProcess] = field(default_factory=list)
    restarts: int = 0


def deploy(
    model: str | Path,
    data: str | None = None,
    *,
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
    records: bool = False,
    sites: int = 1,
    repeat: int = 1,
    transport: str = "http",
    broker: str | None = None,
    restart_gateway_at: int | None = None,
    restart_cloud_at: int | None = None,
    window: int = 4096,
    cloud_retry_s: float | None = None,
    mcu_devices=(),
) -> dict[str, Any]:
    """Run the hierarchy as processes on loopback and report it (see the module docstring).

    ``data`` may also be a loaded ``Dataset`` (None: the manifest's). With ``records`` the result also holds
    ``samples`` (site 0): per sample ``exit`` (index, -1 = none), ``prediction``,
    ``degraded`` and ``local_presence`` (the devices whose summaries arrived).

    Args:
        sites: gateways (each with its own devices) sharing the one cloud.
        repeat: stream the split this many times (a soak: memory must stay flat).
        transport: http or mqtt (devices <-> gateway; the cloud is always HTTP).
        broker: an MQTT broker URL (``mqtt://HOST:PORT`` or ``mqtts://``; its password
            in ``$DDNN_TF_MQTT_PASSWORD``); None: start mosquitto on loopback.
        restart_gateway_at: SIGKILL site 0's gateway once this many of its samples were
            answered and start it again (same port, same journal).
        restart_cloud_at: stop the cloud once this many samples of site 0 were answered
            and start it again on the same port.
        window: answers each gateway keeps for reconnecting subscribers.
        cloud_retry_s: how long the gateways retry an unreachable cloud before they
            answer lower down (default 5 s; 60 s with ``restart_cloud_at``, 180 s on Ray).
        mcu_devices: device indices (``"0,1,2"`` or a sequence) whose tier runs as C on
            an emulated Cortex-M4 board.

    Returns:
        The report as a JSON-able dict.

    Raises:
        ConfigError / FileNotFoundError: bad options, a bad model or dataset.
        DeploymentError: a service or broker that does not start, a device that fails,
            or the run exceeding ``timeout_s``.
    """
    import httpx

    from ddnn_tf.core.exits import resolve_thresholds
    from ddnn_tf.core.manifest import load_manifest
    from ddnn_tf.runtime import Hierarchy
    from ddnn_tf.runtime.report import load_split

    if engine not in ("uvicorn", "ray"):
        raise ConfigError(f"expected uvicorn or ray, got {engine!r}.", argument="engine")
    if transport not in ("http", "mqtt"):
        raise ConfigError(f"expected http or mqtt, got {transport!r}.", argument="transport")
    if broker is not None and transport != "mqtt":
        raise ConfigError("a broker is used with the MQTT transport only.", argument="broker")
    if (kill_device is None) != (kill_at is None):
        raise ConfigError("kill_device and kill_at go together (--kill-device, --kill-at).")
    kill_at = _check_count(kill_at, "kill_at")
    cloud_down_at = _check_count(cloud_down_at, "cloud_down_at")
    restart_gateway_at = _check_count(restart_gateway_at, "restart_gateway_at")
    restart_cloud_at = _check_count(restart_cloud_at, "restart_cloud_at")
    if cloud_down_at is not None and restart_cloud_at is not None:
        raise ConfigError("cloud_down_at and restart_cloud_at exclude each other.")
    batch = _check_count(batch, "batch", 1)
    sites = _check_count(sites, "sites", 1)
    repeat = _check_count(repeat, "repeat", 1)
    window = _check_count(window, "window", 1)
    gather_s = _check_seconds(gather_s, "gather_s")
    timeout_s = _check_seconds(timeout_s, "timeout_s")
    if cloud_retry_s is None:
        cloud_retry_s = 5.0 if restart_cloud_at is None else (180.0 if engine == "ray" else 60.0)
    cloud_retry_s = _check_seconds(cloud_retry_s, "cloud_retry_s")
    if window < 2 * batch:
        raise ConfigError(
            f"expected at least two rounds ({2 * batch} answers for batch {batch}), got {window}.",
            argument="window",
        )
    manifest = load_manifest(model)
    h = Hierarchy(manifest, target=target)
    # the gateway applies the threshold; refuse a bad one before any data or process
    ts = resolve_thresholds(threshold, h.exits[:-1], manifest["thresholds"])
    if kill_device is not None and (
        isinstance(kill_device, bool)
        or not isinstance(kill_device, int)
        or not 0 <= kill_device < h.num_devices
    ):
        raise ConfigError(
            f"expected a device index in [0, {h.num_devices}), got {kill_device!r}.",
            argument="kill_device",
        )
    mcu_devices = _device_list(mcu_devices, h.num_devices)
    if mcu_devices:  # the toolchain and QEMU, before any process starts
        from ddnn_tf.mcu.boards import board, require_tools

        require_tools(board("mps2-an386"))
    mqtt_settings = None
    if transport == "mqtt":
        from ddnn_tf.serve.mqtt import MqttSettings

        if broker is not None:  # checked before anything starts
            mqtt_settings = MqttSettings.from_url(broker)
    samples = load_split(h, data, path, split, limit)
    xs = h._check_inputs(samples.x)
    n_total = len(samples.y) * repeat
    token = secrets.token_urlsafe(24)
    env = {**os.environ, "DDNN_TF_TOKEN": token, "PYTHONUNBUFFERED": "1"}
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    procs: list[ServiceProcess] = []
    site_list: list[_Site] = []
    events: dict[str, Any] = {"killed_at": None, "cloud_down": None, "restarts": []}
    rss: dict[str, list[float]] = {"gateway": [], "cloud": []}
    broker_proc = None
    with tempfile.TemporaryDirectory(prefix="ddnn-deploy-") as tmp:
        folder = Path(tmp)
        for d, x in enumerate(xs):
            np.save(folder / f"view_{d}.npy", x)
        headers = {"Authorization": f"Bearer {token}"}
        try:
            access = None
            if transport == "mqtt":
                roots = [_topic_root(manifest["name"], k, sites) for k in range(sites)]
                if mqtt_settings is None:  # a broker of its own: a user and an ACL per client
                    from ddnn_tf.serve.broker import Broker, plan_clients

                    clients = plan_clients(roots, h.num_devices)
                    broker_proc = Broker(folder / "broker", clients).start()
                access = _mqtt_access(roots, mqtt_settings, broker_proc)
            with httpx.Client(headers=headers, timeout=30.0) as client:
                deadline = time.monotonic() + READY_TIMEOUT_S
                cloud_args = ["-m", "ddnn_tf.serve", "cloud", str(model), "--target", target]
                if engine == "ray":
                    cloud_args += ["--engine", "ray", "--replicas", str(replicas)]
                    cloud_args += ["--ray-temp-dir", str(folder / "ray")]
                cloud = ServiceProcess("cloud", [*cloud_args, "--port", "0"], folder, env)
                procs.append(cloud)
                cloud_url = cloud.url(deadline)
                wait_ready(client, cloud_url, cloud, deadline)
                cloud_port = cloud_url.rsplit(":", 1)[1]
                for k in range(sites):
                    site_list.append(
                        _start_site(
                            k,
                            model=model,
                            target=target,
                            cloud_url=cloud_url,
                            gather_s=gather_s,
                            threshold=threshold,
                            batch=batch,
                            window=window,
                            cloud_retry_s=cloud_retry_s,
                            transport=transport,
                            mqtt=access,
                            sites=sites,
                            folder=folder,
                            env=env,
                            client=client,
                            token=token,
                            deadline=deadline,
                            name=manifest["name"],
                        )
                    )
                    procs.append(site_list[-1].gateway)
                for site in site_list:
                    for d in range(h.num_devices):
                        args = [
                            "-m",
                            "ddnn_tf.device",
                            str(model),
                            "--index",
                            str(d),
                            "--data",
                            str(folder / f"view_{d}.npy"),
                            "--batch",
                            str(batch),
                            "--target",
                            target,
                            "--repeat",
                            str(repeat),
                            *(["--mcu", "qemu"] if d in mcu_devices else []),
                        ]
                        link, link_env = _link_args(site, access, d)
                        name = h.device_tiers[d] if sites == 1 else f"site{site.index}-{d}"
                        proc = ServiceProcess(name, args + link, folder, {**env, **link_env})
                        site.devices.append(proc)
                    procs.extend(site.devices)
                devices = [p for site in site_list for p in site.devices]
                first = site_list[0]
                stop_at = time.monotonic() + timeout_s
                while any(p.alive() for p in devices):
                    if time.monotonic() > stop_at:
                        raise DeploymentError(
                            f"the deployment did not finish within {timeout_s:g} s."
                        )
                    for p in devices:
                        if p.proc.poll() not in (None, 0) and p.proc.returncode != -signal.SIGKILL:
                            raise DeploymentError(f"{p.name} failed: {p.tail()}")
                    answered = first.collector.count
                    if not rss["gateway"] and sum(s.collector.count for s in site_list) >= (
                        0.1 * n_total * sites
                    ):
                        _note_rss(rss, service_rss_mb(first.gateway.proc.pid), cloud)
                    if kill_at is not None and events["killed_at"] is None and answered >= kill_at:
                        first.devices[kill_device].stop(signal.SIGKILL)
                        events["killed_at"] = answered
                    cloud_stop = signal.SIGKILL if engine == "uvicorn" else signal.SIGTERM
                    if (
                        cloud_down_at is not None
                        and events["cloud_down"] is None
                        and answered >= cloud_down_at
                    ):
                        # An outage, not a shutdown: uvicorn's graceful stop would go on
                        # answering the requests in flight. Ray's driver must stop Ray.
                        cloud.stop(cloud_stop)
                        events["cloud_down"] = answered
                    if restart_cloud_at is not None and answered >= restart_cloud_at:
                        restart_cloud_at = None
                        cloud.stop(cloud_stop)
                        t = time.monotonic()
                        cloud = ServiceProcess(
                            "cloud-restarted", [*cloud_args, "--port", cloud_port], folder, env
                        )
                        procs.append(cloud)
                        later = time.monotonic() + READY_TIMEOUT_S
                        wait_ready(client, cloud.url(later), cloud, later)
                        events["restarts"].append(
                            {"service": "cloud", "after": answered, "away_s": time.monotonic() - t}
                        )
                    if restart_gateway_at is not None and answered >= restart_gateway_at:
                        restart_gateway_at = None
                        t = time.monotonic()
                        _restart_gateway(first, folder, client)
                        procs.append(first.gateway)
                        events["restarts"].append(
                            {
                                "service": "gateway",
                                "after": answered,
                                "away_s": time.monotonic() - t,
                            }
                        )
                    time.sleep(0.02)
                for p in devices:
                    if p.proc.returncode not in (0, -signal.SIGKILL):
                        raise DeploymentError(f"{p.name} failed: {p.tail()}")
                for site in site_list:
                    site.collector.wait_for(len(samples.y) * repeat, _DRAIN_S)
                site_rss = [service_rss_mb(s.gateway.proc.pid) for s in site_list]
                if not rss["gateway"]:  # a stream too short to sample at 10 %
                    _note_rss(rss, site_rss[0], cloud)
                _note_rss(rss, site_rss[0], cloud)
                rounds = [[p.records() for p in site.devices] for site in site_list]
        finally:
            for site in site_list:
                site.collector.stop(timeout=0.5)
            for p in reversed(procs):
                p.stop()
            if broker_proc is not None:
                broker_proc.stop()
    return _result(
        h,
        samples,
        xs,
        site_list,
        rounds,
        ts=ts,
        repeat=repeat,
        batch=batch,
        engine=engine,
        split=split,
        transport=transport,
        kill_device=kill_device,
        events=events,
        rss=rss,
        site_rss=site_rss,
        records=records,
        mcu_devices=mcu_devices,
    )


def _note_rss(rss: dict[str, list[float]], gateway_mb: float, cloud: ServiceProcess) -> None:
    """Add a memory reading: the gateway's (given) and the cloud's (read now)."""
    rss["gateway"].append(gateway_mb)
    rss["cloud"].append(service_rss_mb(cloud.proc.pid))


def _device_list(value, num_devices: int) -> list[int]:
    """Device indices from ``0,1,2`` or a sequence (the devices on an emulated board)."""
    if isinstance(value, str):
        items = value.split(",")
    else:
        items = [value] if isinstance(value, int) else list(value or ())
    try:
        if any(isinstance(v, bool) for v in items):
            raise ValueError
        devices = sorted({int(str(v).strip()) for v in items if str(v).strip()})
    except ValueError:
        raise ConfigError(
            f"expected device indices such as 0,1,2, got {value!r}.", argument="mcu_devices"
        ) from None
    if any(not 0 <= d < num_devices for d in devices):
        raise ConfigError(
            f"expected indices in [0, {num_devices}), got {value!r}.", argument="mcu_devices"
        )
    return devices


def _start_site(k: int, **o) -> _Site:
    """Start site ``k``'s gateway and its answer collector."""
    journal = o["folder"] / f"site{k}.journal"
    args = ["-m", "ddnn_tf.serve", "gateway", str(o["model"]), "--target", o["target"]]
    args += ["--cloud", o["cloud_url"], "--gather-s", str(o["gather_s"])]
    args += ["--batch", str(o["batch"]), "--window", str(o["window"])]
    args += ["--journal", str(journal), "--cloud-retry-s", str(o["cloud_retry_s"])]
    if o["threshold"] is not None:
        args += ["--threshold", str(o["threshold"])]
    root, env = None, o["env"]
    if o["transport"] == "mqtt":
        mqtt = o["mqtt"](k, "gateway")
        root = mqtt.topic_root
        args += ["--transport", "mqtt", "--broker", mqtt.url, "--topic-root", root]
        env = {**env, PASSWORD_ENV: mqtt.password or ""}
    name = "gateway" if o["sites"] == 1 else f"gateway-site{k}"
    gateway = ServiceProcess(name, [*args, "--port", "0"], o["folder"], env)
    try:
        url = gateway.url(o["deadline"])
        wait_ready(o["client"], url, gateway, o["deadline"])
    except DeploymentError:
        gateway.stop()
        raise
    if o["transport"] == "mqtt":
        from ddnn_tf.serve.collect import AnswerSubscriber

        answers = o["mqtt"](k, "answers")
        collector = AnswerSubscriber(answers, root, f"deploy-{k}-{secrets.token_hex(4)}")
    else:
        from ddnn_tf.serve.collect import StreamCollector

        collector = StreamCollector(url, o["token"])
    collector.start()
    return _Site(k, args, env, gateway, url, root, collector)


def _topic_root(name: str, site: int, sites: int) -> str:
    from ddnn_tf.serve.mqtt import default_topic_root

    root = default_topic_root(name)
    return root if sites == 1 else f"{root}/site{site}"


def _mqtt_access(roots: list[str], shared, broker):
    """``access(site, user)``: the broker settings of a client of a site (its own user and
    password on deploy's broker; the given broker's for every client otherwise)."""

    def access(site: int, user: str):
        if broker is None:
            return dataclasses.replace(shared, topic_root=roots[site])
        return broker.settings(f"site{site}-{user}" if len(roots) > 1 else user)

    return access


def _link_args(site: _Site, access, device: int) -> tuple[list[str], dict[str, str]]:
    """A device's flags and environment to reach its site's gateway."""
    if access is None:
        return ["--gateway", site.url], {}
    mqtt = access(site.index, f"device{device}")
    args = ["--transport", "mqtt", "--broker", mqtt.url, "--topic-root", site.topic_root]
    return args, {PASSWORD_ENV: mqtt.password or ""}


def _restart_gateway(site: _Site, folder: Path, client) -> None:
    """SIGKILL a site's gateway, start it again on the same port with the same journal."""
    site.gateway.stop(signal.SIGKILL)
    site.restarts += 1
    port = site.url.rsplit(":", 1)[1]
    name = f"{site.gateway.name}-restart{site.restarts}"
    site.gateway = ServiceProcess(name, [*site.args, "--port", port], folder, site.env)
    deadline = time.monotonic() + READY_TIMEOUT_S
    url = site.gateway.url(deadline)
    wait_ready(client, url, site.gateway, deadline)


def _result(h, samples, xs, site_list, rounds, **info) -> dict[str, Any]:
    from ddnn_tf.core.evaluation import reduction
    from ddnn_tf.serve.live_report import (
        SiteAnswers,
        percentiles,
        round_latencies,
        round_starts,
        site_report,
    )

    n_total = len(samples.y) * info["repeat"]
    per_site, answers = [], []
    for site, site_rounds in zip(site_list, rounds, strict=True):
        got = SiteAnswers.from_docs(site.collector.answers, n_total, h.num_devices)
        answers.append(got)
        rep = site_report(
            h, samples.y, xs, got, site_rounds, thresholds=info["ts"], batch=info["batch"]
        )
        rep["gaps"] = site.collector.gaps
        per_site.append(rep)
    main = per_site[0]
    raw = [float(entry["raw_bytes"]) for entry in h.manifest["inputs"]]
    raw_mean = float(np.mean(raw))
    events = info["events"]
    failed = [] if events["killed_at"] is None else [int(info["kill_device"])]
    result: dict[str, Any] = {
        "model": str(h.manifest.directory),
        "target": h.target,
        "split": info["split"],
        "n_samples": main["n_samples"],
        "exits": list(h.exits),
        "accuracy": main["accuracy"],
        "exit_fraction": main["exit_fraction"],
        "thresholds": {k: float(v) for k, v in info["ts"].items()},
        "bytes_per_device": main["bytes_per_device"],
        "raw_bytes_per_device": raw_mean,
        "communication_reduction": reduction(raw_mean, main["bytes_per_device"]),
        "failed_devices": failed,
        "fail_prob": 0.0,
        "seed": 0,
        "unclassified": main["unclassified"],
        "summary_encoding": h.summary_encoding,
        "batch_size": int(info["batch"]),
        "latency_ms": main["latency_ms"],
        "samples_per_s": main["samples_per_s"],
        "staged_matches_all_exits": main["staged_matches_all_exits"],
        "engine": info["engine"],
        "transport": info["transport"],
        "repeat": int(info["repeat"]),
        "wire_bytes_per_device": main["wire_bytes_per_device"],
        "wire_received_bytes_per_device": main["wire_received_bytes_per_device"],
        "offline_bytes_per_device": main["offline_bytes_per_device"],
        "mismatches_vs_offline": main["mismatches_vs_offline"],
        "lost": main["lost"],
        "duplicates": main["duplicates"],
        "degraded": main["degraded"],
        "device_retries": main["device_retries"],
        "rss_mb": {k: [round(v, 1) for v in vs] for k, vs in info["rss"].items()},
        "kill": None
        if events["killed_at"] is None
        else {
            "device": int(info["kill_device"]),
            "answered_before_kill": int(events["killed_at"]),
            "first_sample_without_device": _first_absent(
                answers[0].local_p, answers[0].answered, int(info["kill_device"])
            ),
        },
        "cloud_down_after": events["cloud_down"],
        "restarts": events["restarts"],
        "mcu_devices": info["mcu_devices"],
    }
    if len(site_list) > 1:
        t_first = min(r["t_first"] for r in per_site if r["t_first"] is not None)
        t_last = max(r["t_last"] for r in per_site if r["t_last"] is not None)
        wall = t_last - t_first
        answered = sum(r["n_samples"] - r["lost"] for r in per_site)
        cloud = sum(r["cloud_answers"] for r in per_site)
        latency = np.concatenate(
            [
                round_latencies(a, round_starts(site_rounds), info["batch"])
                for a, site_rounds in zip(answers, rounds, strict=True)
            ]
        )
        for key in ("lost", "duplicates", "mismatches_vs_offline", "degraded"):
            result[key] = int(sum(r[key] for r in per_site))
        result["latency_ms"] = percentiles(latency)
        result["samples_per_s"] = answered / wall if wall > 0 else 0.0
        result["cloud_samples_per_s"] = cloud / wall if wall > 0 else 0.0
        result["sites"] = [
            {
                "site": k,
                "rss_mb": round(info["site_rss"][k], 1),
                **{
                    key: r[key]
                    for key in (
                        "n_samples",
                        "latency_ms",
                        "samples_per_s",
                        "lost",
                        "duplicates",
                        "mismatches_vs_offline",
                        "degraded",
                        "wire_bytes_per_device",
                        "cloud_answers",
                    )
                },
            }
            for k, r in enumerate(per_site)
        ]
    else:
        wall = main["wall_s"]
        result["cloud_samples_per_s"] = main["cloud_answers"] / wall if wall > 0 else 0.0
    if info["records"]:
        a = answers[0]
        result["samples"] = {
            "exit": a.exit_index.tolist(),
            "prediction": a.prediction.tolist(),
            "degraded": a.degraded.tolist(),
            "local_presence": a.local_p.tolist(),
        }
    return result


def _first_absent(presence: np.ndarray, answered: np.ndarray, device: int) -> int | None:
    absent = np.flatnonzero(answered & ~presence[:, device])
    return int(absent[0]) if absent.size else None


def format_report(result: dict[str, Any]) -> str:
    """A short readable report of :func:`deploy`'s result."""
    acc = result["accuracy"]
    sites = result.get("sites")
    where = f" x {len(sites)} sites" if sites else ""
    repeat = f" x {result['repeat']}" if result.get("repeat", 1) > 1 else ""
    lines = [
        f"{result['model']} on {result['engine']} over {result.get('transport', 'http')}: "
        f"{result['n_samples']} {result['split']} samples{repeat}{where} in rounds of "
        f"{result['batch_size']}",
        "accuracy: " + ", ".join(f"{k} {v:.4f}" for k, v in acc.items()),
        "exit fraction: " + ", ".join(f"{k} {v:.4f}" for k, v in result["exit_fraction"].items()),
        f"payload bytes per device per sample: {result['bytes_per_device']:.2f} "
        f"(offline run: {result['offline_bytes_per_device']:.2f}); on the socket: "
        f"{result['wire_bytes_per_device']:.2f} sent, "
        f"{result['wire_received_bytes_per_device']:.2f} received",
        f"latency p50 {result['latency_ms']['p50']:.1f} ms, p99 "
        f"{result['latency_ms']['p99']:.1f} ms; {result['samples_per_s']:.0f} samples/s "
        f"({result['cloud_samples_per_s']:.0f}/s answered by the cloud)",
        f"mismatches vs offline: {result['mismatches_vs_offline']}; lost: {result['lost']}; "
        f"duplicates: {result['duplicates']}; degraded: {result['degraded']}",
    ]
    rss = result.get("rss_mb")
    if rss and rss.get("gateway"):
        lines.append(
            "peak RSS MB at 10 % / at the end: gateway "
            + " / ".join(f"{v:.1f}" for v in rss["gateway"])
            + ", cloud "
            + " / ".join(f"{v:.1f}" for v in rss["cloud"])
        )
    for s in sites or []:
        lines.append(
            f"  site {s['site']}: {s['samples_per_s']:.0f} samples/s, latency p50 "
            f"{s['latency_ms']['p50']:.1f} ms, p99 {s['latency_ms']['p99']:.1f} ms; lost "
            f"{s['lost']}, duplicates {s['duplicates']}, mismatches "
            f"{s['mismatches_vs_offline']}"
        )
    if result.get("mcu_devices"):
        lines.append(f"devices on an emulated Cortex-M4 (C tier in QEMU): {result['mcu_devices']}")
    if result["kill"]:
        lines.append(f"killed: {result['kill']}")
    if result["cloud_down_after"] is not None:
        lines.append(f"cloud stopped after {result['cloud_down_after']} answers")
    for r in result.get("restarts", []):
        lines.append(
            f"{r['service']} restarted after {r['after']} answers (away {r['away_s']:.1f} s)"
        )
    return "\n".join(lines)
