"""The processes of a deployment (``ddnn deploy``, the serving benchmark, the tests):
:class:`ServiceProcess`, one child ``python`` process with its output in files, and
:class:`Fleet`, a plan's broker, cloud, gateways and devices on loopback, each started
from its settings (:meth:`~ddnn_tf.core.options.Options.argv`; tokens and passwords
travel in the environment), restarted when a fault says so, and all stopped at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json as _json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ddnn_tf.core.graph import device_tier
from ddnn_tf.errors import DeploymentError
from ddnn_tf.serve.mqtt import PASSWORD_ENV, default_topic_root
from ddnn_tf.serve.settings import (
    TOKEN_ENV,
    CloudSettings,
    DeployPlan,
    DeviceSettings,
    DeviceTuning,
    GatewaySettings,
    GatewayTuning,
)

__all__ = ["READY_TIMEOUT_S", "Fleet", "ServiceProcess", "child_env", "service_rss_mb"]

READY_TIMEOUT_S = 120.0
#: The child command of each service's settings.
_COMMANDS = {
    CloudSettings: ["-m", "ddnn_tf.serve", "cloud"],
    GatewaySettings: ["-m", "ddnn_tf.serve", "gateway"],
    DeviceSettings: ["-m", "ddnn_tf.device"],
}


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: this one's, unbuffered, this package first."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **extra}
    env["PYTHONPATH"] = root + (os.pathsep + path if path else "")
    return env


class ServiceProcess:
    """A child ``python`` process with its output in files (no pipe can fill up and block it).

    Args:
        name: a name for messages and the output files.
        args: arguments after ``python``, or a service's settings (its command line).
        folder: where ``NAME.out`` / ``NAME.err`` are written.
        env: the environment.
    """

    def __init__(self, name: str, args, folder: Path, env: dict[str, str]) -> None:
        if not isinstance(args, list):
            args = [*_COMMANDS[type(args)], *args.argv()]
        self.name = name
        self.out = folder / f"{name}.out"
        self.err = folder / f"{name}.err"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, *args],
                stdout=out,
                stderr=err,
                env=env,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self) -> str:
        text = self.err.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-3:]) if text else "(no output)"

    def ready(self, client) -> str:
        """Wait until the service prints its URL and answers ``/readyz``; its URL.

        Raises:
            DeploymentError: the process exits, or is not ready within the time allowed.
        """
        import httpx

        deadline, url = time.monotonic() + READY_TIMEOUT_S, None
        while time.monotonic() < deadline:
            url = url or next((r["url"] for r in self.records() if "url" in r), None)
            if not self.alive():
                raise DeploymentError(
                    f"{self.name} exited with status {self.proc.returncode}: {self.tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if url and client.get(f"{url}/readyz").status_code == 200:
                    return url
            time.sleep(0.05)
        where = "did not start" if url is None else f"at {url} was not ready"
        raise DeploymentError(f"{self.name} {where} within {READY_TIMEOUT_S:g} s.")

    def stop(self, sig: int = signal.SIGTERM, grace: float = 15.0) -> None:
        """Signal the process itself (it stops its own children, as Ray's driver does),
        then kill whatever is left of its process group after ``grace`` seconds."""
        self.proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(grace)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)

    def records(self) -> list[dict]:
        out = []
        for line in self.out.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):  # a line cut by a kill
                    out.append(_json.loads(line))
        return out


def service_rss_mb(pid: int) -> float:
    """Peak resident memory (``VmHWM``) of process ``pid`` and of every process of its
    session (its own children: Ray's processes, say), in MB."""
    total = 0
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if pid in (int(entry), os.getsid(int(entry))):
                status = Path(f"/proc/{entry}/status").read_text()
                total += sum(map(int, re.findall(r"^VmHWM:\s+(\d+)", status, re.M)))
        except OSError:
            continue  # a process that ended meanwhile
    return total / 1024


def _fields(plan: DeployPlan, part: type) -> dict[str, Any]:
    """The plan's options of ``part`` (:class:`GatewayTuning`, :class:`DeviceTuning`), which
    it hands to each gateway or device as they are."""
    return {f.name: getattr(plan, f.name) for f in dataclasses.fields(part)}


@dataclass
class Service:
    """A started service (its settings on the port it took): the cloud, or a site's
    gateway with its devices and its answer collector."""

    index: int
    settings: Any
    env: dict[str, str]
    proc: ServiceProcess
    url: str
    collector: Any = None
    devices: list[ServiceProcess] = field(default_factory=list)


class Fleet(contextlib.ExitStack):
    """The processes of a :class:`~ddnn_tf.serve.settings.DeployPlan`, on loopback.

    Args:
        plan: the deployment plan.
        folder: where the processes' files, the devices' data and the broker's go.
        num_devices: the model's devices.

    Use it as a context manager: on leaving, everything it started is stopped, the last
    first.
    """

    def __init__(self, plan: DeployPlan, folder: Path, num_devices: int) -> None:
        import httpx

        from ddnn_tf.core.manifest import load_manifest

        super().__init__()
        self.plan, self.folder, self.num_devices = plan, folder, num_devices
        self.token = secrets.token_urlsafe(24)
        self.env = child_env(**{TOKEN_ENV: self.token})
        self.client = httpx.Client(headers={"Authorization": f"Bearer {self.token}"}, timeout=30)
        self.callback(self.client.close)
        self.sites: list[Service] = []
        self.broker = None
        self.cloud: Service | None = None
        self.name = str(load_manifest(plan.model, check_files=False)["name"])

    def _start(self, name: str, settings, env: dict[str, str]) -> ServiceProcess:
        proc = ServiceProcess(name, settings, self.folder, env)
        self.callback(proc.stop)
        return proc

    def _service(self, k: int, name: str, settings, env: dict[str, str]) -> Service:
        """Start a service and wait until it is ready."""
        proc = self._start(name, settings, env)
        url = proc.ready(self.client)
        return Service(k, settings.replace(port=int(url.rsplit(":", 1)[1])), env, proc, url)

    # ---------------------------------------------------------------- the services
    def start(self, views: list) -> None:
        """The broker (MQTT), the cloud, every site's gateway, then every device; each
        device streams ``views[d]`` (a ``.npy`` file per device)."""
        plan = self.plan
        if plan.transport == "mqtt" and plan.broker is None:
            from ddnn_tf.serve.broker import Broker, plan_clients

            clients = plan_clients([self._root(k) for k in range(plan.sites)], self.num_devices)
            self.broker = self.enter_context(Broker(self.folder / "broker", clients))
        cloud = CloudSettings(
            model=plan.model,
            port=plan.cloud_port,
            target=plan.target,
            engine=plan.engine,
            replicas=plan.replicas,
            ray_temp_dir=str(self.folder / "ray") if plan.engine == "ray" else None,
        )
        self.cloud = self._service(-1, "cloud", cloud, self.env)
        self.sites += [self._start_site(k) for k in range(plan.sites)]
        for site in self.sites:
            for d, view in enumerate(views):
                settings, env = self._device(site, d, str(view))
                name = device_tier(d) if plan.sites == 1 else f"site{site.index}-{d}"
                site.devices.append(self._start(name, settings, env))

    def outage(self, service: Service, restart: bool) -> None:
        """Stop the cloud or a site's gateway as an outage, not a shutdown (SIGKILL: uvicorn's
        graceful stop would go on answering the requests in flight; Ray's driver SIGTERM, to
        stop Ray itself); with ``restart``, start it again from its settings (same port, same
        journal)."""
        ray = service is self.cloud and self.plan.engine == "ray"
        service.proc.stop(signal.SIGTERM if ray else signal.SIGKILL)
        if restart:
            service.proc = self._start(
                f"{service.proc.name}-restarted", service.settings, service.env
            )
            service.proc.ready(self.client)

    def _root(self, k: int) -> str:
        root = default_topic_root(self.name)
        return root if self.plan.sites == 1 else f"{root}/site{k}"

    def _mqtt(self, k: int, user: str):
        """Site ``k``'s broker settings for client ``user`` (its own user and password on
        deploy's broker; the given broker's for every client otherwise)."""
        if self.broker is None:
            from ddnn_tf.serve.mqtt import MqttSettings

            return MqttSettings.from_url(self.plan.broker, topic_root=self._root(k))
        return self.broker.settings(f"site{k}-{user}" if self.plan.sites > 1 else user)

    def _link(self, k: int, user: str) -> tuple[dict[str, Any], dict[str, str]]:
        """The link options and environment of a site's client."""
        if self.plan.transport == "http":
            return {}, self.env
        mqtt = self._mqtt(k, user)
        options = {"transport": "mqtt", "broker": mqtt.url, "topic_root": mqtt.topic_root}
        return options, {**self.env, PASSWORD_ENV: mqtt.password or ""}

    def _start_site(self, k: int) -> Service:
        """Site ``k``'s gateway (the plan's ``[gateway]`` options) and its collector."""
        plan = self.plan
        link, env = self._link(k, "gateway")
        settings = GatewaySettings(
            model=plan.model,
            cloud=self.cloud.url,
            port=plan.gateway_port + k if plan.gateway_port else 0,
            target=plan.target,
            journal=str(self.folder / f"site{k}.journal"),
            wan=None if plan.link is None else plan.wan,
            **_fields(plan, GatewayTuning),
            **link,
        )
        site = self._service(k, "gateway" if plan.sites == 1 else f"gateway-site{k}", settings, env)
        if plan.transport == "mqtt":
            from ddnn_tf.serve.collect import AnswerSubscriber

            answers = self._mqtt(k, "answers")
            site.collector = AnswerSubscriber(answers, answers.topic_root, f"deploy-{k}-answers")
        else:
            from ddnn_tf.serve.collect import StreamCollector

            site.collector = StreamCollector(site.url, self.token)
        site.collector.start()
        self.callback(site.collector.stop, timeout=0.5)
        return site

    def _device(self, site: Service, d: int, view: str) -> tuple[DeviceSettings, dict[str, str]]:
        """A device's settings and environment; site 0's devices wait at the kill and the
        outage for :class:`~ddnn_tf.serve.deploy.Faults` (``hold_at``), so that they land
        at their count of answers however far the answer reader is behind."""
        link, env = self._link(site.index, f"device{d}")
        plan = self.plan
        hold = [k for k in (plan.kill_at, plan.cloud_down_at) if k is not None and not site.index]
        return DeviceSettings(
            model=plan.model,
            index=d,
            data=view,
            gateway=site.url if plan.transport == "http" else None,
            batch=plan.batch,
            target=plan.target,
            mode=plan.mode,
            link=plan.link,
            mcu="qemu" if d in plan.mcu_devices else None,
            hold_at=hold,
            hold_dir=str(self.folder) if hold else None,
            **_fields(plan, DeviceTuning),
            **link,
        ), env

    # ---------------------------------------------------------------- while streaming
    def check_devices(self) -> bool:
        """Whether any device still runs.

        Raises:
            DeploymentError: a device failed (a killed one did not fail).
        """
        devices = [p for site in self.sites for p in site.devices]
        for p in devices:
            if p.proc.poll() not in (None, 0, -signal.SIGKILL):
                raise DeploymentError(f"{p.name} failed: {p.tail()}")
        return any(p.alive() for p in devices)

    def rss(self) -> tuple[list[float], float]:
        """Peak resident memory (MB) of every site's gateway and of the cloud, now."""
        gateways = [service_rss_mb(site.proc.proc.pid) for site in self.sites]
        return gateways, service_rss_mb(self.cloud.proc.proc.pid)
