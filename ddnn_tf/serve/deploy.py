"""The whole hierarchy as real processes on loopback, in one command: :func:`deploy`
(``ddnn deploy``; the Serving page describes it, its faults and its report). The plan
(:class:`~ddnn_tf.serve.settings.DeployPlan`) is checked against the model before anything
starts; the :class:`~ddnn_tf.serve.fleet.Fleet` runs it; the :class:`Faults` are counted
in answers of site 0; the report is :func:`ddnn_tf.serve.live_report.deploy_report`'s.
"""

from __future__ import annotations

import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ddnn_tf.core.vocab import DEFAULT_BOARD
from ddnn_tf.errors import ConfigError, DeploymentError
from ddnn_tf.serve.fleet import Fleet
from ddnn_tf.serve.settings import DeployPlan, settings_of

__all__ = ["Faults", "deploy"]

#: How long deploy waits, once the devices are done, for the last answers to arrive.
_DRAIN_S = 30.0
#: How long a round waits for a device's message, unless the plan or its link says.
_GATHER_S = 2.0
#: Seconds between samples, with a radio link, besides its messages: the tiers' compute.
_MARGIN_S = 0.1


class Faults:
    """The fault schedule: each fault of the plan happens once, when site 0 has answered
    at least its count of samples; ``events`` records when."""

    def __init__(self, plan: DeployPlan) -> None:
        self.plan = plan
        names = ("kill", "cloud_down", "restart_cloud", "restart_gateway")
        faults = {name: getattr(plan, f"{name}_at") for name in names}
        self.pending = {name: at for name, at in faults.items() if at is not None}
        self.events: dict[str, Any] = {"killed_at": None, "cloud_down": None, "restarts": []}

    def apply(self, fleet: Fleet, answered: int) -> None:
        """Start every fault that is due, then let the devices held for it go on."""
        due = {name: at for name, at in self.pending.items() if answered >= at}
        for name in due:
            del self.pending[name]
            t = time.monotonic()
            if name == "kill":
                fleet.sites[0].devices[self.plan.kill_device].stop(signal.SIGKILL)
                self.events["killed_at"] = answered
            elif name == "cloud_down":
                fleet.outage(fleet.cloud, restart=False)
                self.events["cloud_down"] = answered
            else:
                service = name.removeprefix("restart_")
                fleet.outage(fleet.cloud if service == "cloud" else fleet.sites[0], restart=True)
                away = time.monotonic() - t
                self.events["restarts"].append(
                    {"service": service, "after": answered, "away_s": away}
                )
        for at in due.values():  # see Fleet._device
            (fleet.folder / f"released-{at}").touch()


def deploy(
    plan: DeployPlan | str | Path, data=None, *, records: bool = False, **options
) -> dict[str, Any]:
    """Run the hierarchy as processes on loopback and report it.

    Args:
        plan: the deployment plan, or the model directory (then ``options`` are the
            plan's other fields).
        data: a dataset name, or a loaded ``Dataset`` (default: the plan's ``data``; None
            there: the one the manifest records).
        records: also return ``samples`` (site 0): per sample ``exit`` (index, -1 =
            none), ``prediction``, ``degraded`` and ``local_presence``.
        options: :class:`~ddnn_tf.serve.settings.DeployPlan` fields.

    Returns:
        The report as a JSON-able dict.

    Raises:
        ConfigError / FileNotFoundError: bad options, a bad model or dataset.
        DeploymentError: a service or broker that does not start, a device that fails,
            or the run exceeding ``timeout_s``.
    """
    from ddnn_tf.serve.live_report import deploy_report

    dataset = data if data is not None and not isinstance(data, str) else None
    if isinstance(data, str) and not isinstance(plan, DeployPlan):
        options["data"] = data
    plan = settings_of(DeployPlan, plan, options)
    plan, h, samples, xs, thresholds = _prepare(plan, dataset)
    tier_ms = None
    if plan.link is not None:  # the prediction's tier times, before anything else runs
        from ddnn_tf.runtime.cost import tier_latency_ms

        tier_ms = tier_latency_ms(h, xs)
    with (
        tempfile.TemporaryDirectory(prefix="ddnn-deploy-") as tmp,
        Fleet(plan, Path(tmp), h.num_devices) as fleet,
    ):
        views = [Path(tmp) / f"view_{d}.npy" for d in range(h.num_devices)]
        for view, x in zip(views, xs, strict=True):
            np.save(view, x)
        fleet.start(views)
        faults, rss, site_rss = _stream(fleet, plan, len(samples.y) * plan.repeat)
        rounds = [[p.records() for p in site.devices] for site in fleet.sites]
    result = deploy_report(
        h, plan, samples.y, xs, fleet.sites, rounds, thresholds, faults.events, rss, site_rss,
        records, tier_ms,
    )  # fmt: skip
    result["urls"] = {"cloud": fleet.cloud.url, "gateways": [s.url for s in fleet.sites]}
    return result


def _prepare(plan: DeployPlan, dataset):
    """The plan checked against the model (before any data is loaded or any process
    starts), with what it left to the model filled in; the offline hierarchy, the samples
    and the thresholds."""
    from ddnn_tf.core.checks import check_views
    from ddnn_tf.core.exits import resolve_thresholds
    from ddnn_tf.runtime import Hierarchy
    from ddnn_tf.runtime.dataset import load_subset

    h = Hierarchy(plan.model, target=plan.target)
    thresholds = resolve_thresholds(plan.threshold, h.exits[:-1], h.manifest["thresholds"])
    d = h.num_devices
    if plan.kill_device is not None and plan.kill_device >= d:
        raise ConfigError(
            f"expected a device index in [0, {d}), got {plan.kill_device!r}.",
            argument="kill_device",
        )
    if any(i >= d for i in plan.mcu_devices):
        raise ConfigError(
            f"expected indices in [0, {d}), got {plan.mcu_devices}.", argument="mcu_devices"
        )
    if plan.mcu_devices:  # the toolchain and QEMU, before any process starts
        from ddnn_tf.mcu.boards import board, require_tools

        require_tools(board(DEFAULT_BOARD))
    if plan.broker is not None:
        from ddnn_tf.serve.mqtt import MqttSettings

        MqttSettings.from_url(plan.broker)
    plan = _link_defaults(plan, h.manifest)
    data = dataset if dataset is not None else plan.data
    samples = load_subset(h, data, plan.path, plan.subset, plan.limit)
    xs = check_views(h.topology.input_shapes, list(samples.x), where="deploy inputs")
    return plan, h, samples, xs, thresholds


def _link_defaults(plan: DeployPlan, manifest) -> DeployPlan:
    """The plan with what it left to the model filled in: ``gather_s`` (2 s, or with a
    radio link twice its slowest message when that is longer: LoRa SF12's features come
    2.6 s after the summaries) and, with a link, ``rate_hz`` (a sample's messages and its
    cloud answer take at most two thirds of the time between samples).

    Raises:
        ConfigError / FormatError / FileNotFoundError: a bad ``link`` or ``wan`` profile, or
            a link for a model without a local exit.
    """
    if plan.link is None:
        return plan.replace(gather_s=_GATHER_S if plan.gather_s is None else plan.gather_s)
    from ddnn_tf.core.cost.profiles import load_profile
    from ddnn_tf.serve.airtime import message_sizes, round_s, slowest_message_s

    wan = load_profile(plan.wan, "wan", argument="wan")
    radio = load_profile(plan.link, "radio", argument="link")
    if manifest["split"][0] != "local":
        raise ConfigError(
            f"{manifest.directory}: a radio link is emulated between the devices and their "
            f"gateway, which needs a local exit; this model is split "
            f"{','.join(manifest['split'])}.",
            argument="link",
        )
    sizes = message_sizes(manifest, plan.mode)
    gather = plan.gather_s or max(_GATHER_S, 2 * slowest_message_s(radio, sizes))
    rate = plan.rate_hz or 1.0 / (1.5 * round_s(radio, wan, sizes, plan.mode) + _MARGIN_S)
    return plan.replace(gather_s=gather, rate_hz=rate)


def _stream(fleet: Fleet, plan: DeployPlan, n_total: int):
    """Wait for the devices while the faults happen; then for the last answers.

    Returns:
        The fault schedule (its events), the memory readings ``{"gateway": [at 10 %, at
        the end], "cloud": [...]}`` (site 0's gateway) and every site's gateway's at the
        end.
    """
    faults, readings = Faults(plan), []  # (every gateway's, the cloud's) at 10 %, at the end
    stop_at = time.monotonic() + plan.timeout_s
    while fleet.check_devices():
        if time.monotonic() > stop_at:
            raise DeploymentError(f"the deployment did not finish within {plan.timeout_s:g} s.")
        answered = sum(s.collector.count for s in fleet.sites)
        if not readings and answered >= 0.1 * n_total * plan.sites:
            readings.append(fleet.rss())
        faults.apply(fleet, fleet.sites[0].collector.count)
        time.sleep(0.02)
    for site in fleet.sites:
        site.collector.wait_for(n_total, _DRAIN_S)
    readings += [fleet.rss()] * (2 - len(readings))  # a stream too short to sample at 10 %
    rss = {"gateway": [g[0] for g, _ in readings], "cloud": [c for _, c in readings]}
    return faults, rss, readings[-1][0]
