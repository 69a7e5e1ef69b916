"""One settings object per service (:class:`CloudSettings`, :class:`GatewaySettings`, whose
gateway runs the edge tiers too, :class:`DemoSettings`, :class:`DeviceSettings`) and the
deployment plan (:class:`DeployPlan`), as :mod:`ddnn_tf.core.options` dataclasses; also the
token rule (:func:`service_token`). Standard library only.

>>> GatewaySettings(model="m", cloud="http://127.0.0.1:8000", window=64)
Traceback (most recent call last):
...
ddnn_tf.errors.ConfigError: window: expected at least two rounds (128 answers for batch 64), got 64.
>>> is_loopback("127.0.0.1"), is_loopback("0.0.0.0")
(True, False)
"""

from __future__ import annotations

import functools
import ipaddress
import os
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from ddnn_tf.core.options import AT_LEAST_1, NON_NEGATIVE, PORT, POSITIVE, Options, option
from ddnn_tf.core.vocab import ENGINES, PROTOCOL_MODES, SUBSETS, TARGETS, TRANSPORTS
from ddnn_tf.errors import ConfigError

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "TOKEN_ENV",
    "CloudSettings",
    "DemoSettings",
    "DeployPlan",
    "DeviceSettings",
    "DeviceTuning",
    "GatewaySettings",
    "LinkSettings",
    "ServiceSettings",
    "free_port",
    "is_loopback",
    "service_token",
    "settings_of",
    "shared_token",
]

#: Environment variable holding the shared token (an explicit token overrides it).
TOKEN_ENV = "DDNN_TF_TOKEN"
#: Largest request body a service accepts.
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
_THRESHOLD = {  # what a threshold may be in a file: T, a rule's name, or T per exit
    "anyOf": [
        {"type": "number", "minimum": 0, "maximum": 1},
        {"enum": ["paper", "calibrated"]},
        {"type": "object", "additionalProperties": {"type": "number"}},
    ]
}


def is_loopback(host: str) -> bool:
    """True when ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now, picked by the system."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def shared_token(token: str | None) -> str | None:
    """``token``, else ``$DDNN_TF_TOKEN``; None when neither is set."""
    return token if token is not None else os.environ.get(TOKEN_ENV) or None


def service_token(host: str, token: str | None) -> str | None:
    """The shared token of a service bound to ``host``: ``token``, else ``$DDNN_TF_TOKEN``.

    Raises:
        ConfigError: the service binds beyond loopback and has no token.
    """
    token = shared_token(token)
    if token is None and not is_loopback(host):
        raise ConfigError(
            f"{host}: a service bound beyond loopback needs a shared token; give one "
            f"(token) or set {TOKEN_ENV}.",
            argument="host",
        )
    return None if token is None else str(token)


def settings_of(cls: type, settings, options: dict):
    """``settings`` when it is a ``cls``, else ``cls(model=settings, **options)`` (a
    service's functions take its settings, or its model directory and options)."""
    if isinstance(settings, cls):
        if options:
            raise TypeError(f"settings given: no options as well ({sorted(options)})")
        return settings
    return cls(model=str(settings), **options)


def _items(value) -> list[str]:
    """``"a,b"`` (or a list) -> ``["a", "b"]``."""
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"expected a comma-separated list, got {value!r}.")
    return [str(v).strip() for v in value if str(v).strip()]


def _http_url(value) -> str:
    """A service's URL: ``http://HOST[:PORT]`` or ``https://...``."""
    url = urlsplit(str(value))
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(
            f"expected an http:// or https:// URL such as http://127.0.0.1:8000, got {value!r}."
        )
    return str(value)


def _devices(value, what: str = "device indices such as 0,1,2") -> list[int]:
    """Device indices (or other counts, ``what``) from ``"0,1,2"``, a number or a list."""
    items = [value] if isinstance(value, int) and not isinstance(value, bool) else _items(value)
    if not all(str(v).isdigit() for v in items):
        raise ValueError(f"expected {what}, got {value!r}.")
    return sorted({int(v) for v in items})


@dataclass(frozen=True, kw_only=True)
class _Model(Options):
    """The model, and the interpreter that runs it."""

    model: str = option(help="the converted model directory (tflite_models/NAME)", positional=True)
    target: str = option(
        "portable", "portable (ai-edge-litert) or lce (larq-compute-engine)", choices=TARGETS
    )


@dataclass(frozen=True, kw_only=True)
class _Data(Options):
    """Where a device's samples come from (besides ``data``)."""

    path: str | None = option(None, "data file or directory for file-based loaders")
    subset: str = option("test", "the data subset to stream: test or val", choices=SUBSETS)
    limit: int | None = option(None, "stream the first N samples only", AT_LEAST_1)


@dataclass(frozen=True, kw_only=True)
class _Engine(Options):
    """What serves the cloud tier."""

    engine: str = option(
        "uvicorn", "uvicorn (embedded) or ray (Ray Serve deployment)", choices=ENGINES
    )
    replicas: int = option(1, "Ray Serve replicas (engine ray)", AT_LEAST_1)


def _one_sample_rounds(settings) -> None:
    if settings.link is not None and settings.batch != 1:
        raise ConfigError(
            f"a radio sends each sample as it comes: link needs rounds of one sample "
            f"(batch 1), got {settings.batch}.",
            argument="batch",
        )


@dataclass(frozen=True, kw_only=True)
class ServiceSettings(_Model):
    """What every HTTP service takes."""

    host: str = option("127.0.0.1", "interface to bind (default loopback only)")
    port: int = option(8000, "TCP port (0: a free one)", PORT)
    token: str | None = option(
        None, "shared token required on every request (default: $DDNN_TF_TOKEN)", secret=True
    )
    max_body_bytes: int = option(DEFAULT_MAX_BODY_BYTES, "request body limit", AT_LEAST_1)
    deadline_s: float = option(10.0, "per-request deadline in seconds", POSITIVE)


@dataclass(frozen=True, kw_only=True)
class CloudSettings(_Engine, ServiceSettings):
    """``ddnn serve cloud``: the cloud tier (uvicorn, or Ray Serve)."""

    max_batch: int = option(1024, "most samples per interpreter call", AT_LEAST_1)
    address: str | None = option(
        None, "an existing Ray cluster's address (engine ray; default: start a local one)"
    )
    no_ray_auth: bool = option(
        False, "start the local Ray instance without token authentication (engine ray)"
    )
    ray_temp_dir: str | None = option(
        None, "where the local Ray instance writes its session files (default /tmp/ray)"
    )
    cors_origins: list[str] = option(
        (), "comma-separated web origins whose pages may call the service (engine uvicorn)",
        parse=_items,
    )  # fmt: skip

    def check(self) -> None:
        if self.cors_origins and self.engine != "uvicorn":
            raise ConfigError("supported with engine uvicorn only.", argument="cors_origins")


@dataclass(frozen=True, kw_only=True)
class LinkSettings(Options):
    """How devices and their gateway talk: HTTP, or MQTT through a broker."""

    transport: str = option("http", "http or mqtt between the devices and the gateway",
                            choices=TRANSPORTS)  # fmt: skip
    broker: str | None = option(
        None, "the MQTT broker, mqtt://USER@HOST:PORT or mqtts://USER@HOST:PORT (TLS)"
    )
    mqtt_user: str | None = option(None, "the broker user name (default: the URL's)")
    mqtt_password: str | None = option(
        None, "the broker password (default: $DDNN_TF_MQTT_PASSWORD)", secret=True
    )
    mqtt_ca: str | None = option(
        None, "CA certificate file to verify an mqtts:// broker (default: the system's)"
    )
    topic_root: str | None = option(None, "the MQTT topics' prefix (default ddnn/MODEL_NAME)")

    def check(self) -> None:
        if self.transport == "http" and self.broker is not None:
            raise ConfigError("a broker is used with transport mqtt only.", argument="broker")
        if self.transport == "mqtt" and self.broker is None:
            raise ConfigError("transport mqtt needs the broker's URL.", argument="broker")
        super().check()

    def mqtt(self):
        """The :class:`~ddnn_tf.serve.mqtt.MqttSettings` (None for HTTP).

        Raises:
            ConfigError: a broker URL, CA file or topic root that cannot be used.
        """
        if self.transport != "mqtt":
            return None
        from ddnn_tf.serve.mqtt import MqttSettings

        return MqttSettings.from_url(
            self.broker,
            username=self.mqtt_user,
            password=self.mqtt_password,
            ca=self.mqtt_ca,
            topic_root=self.topic_root,
        )


@dataclass(frozen=True, kw_only=True)
class GatewayTuning(Options):
    """How a gateway runs its rounds: the ``[gateway]`` table of a deployment file."""

    threshold: object = option(
        None, "T of every early exit, or 'paper' (default: the manifest's)", section="gateway",
        schema=_THRESHOLD,
    )  # fmt: skip
    batch: int = option(64, "samples per round (every device's too)", AT_LEAST_1, section="gateway")
    window: int = option(
        4096, "answers kept for subscribers that reconnect; round starts are accepted "
        "within this many samples of the newest round", AT_LEAST_1, section="gateway",
    )  # fmt: skip
    gather_s: float = option(
        2.0, "how long a round waits for a device's message before counting it absent",
        POSITIVE, section="gateway",
    )  # fmt: skip
    join_s: float = option(
        120.0, "how long the first round waits for every device to join", POSITIVE,
        section="gateway",
    )  # fmt: skip
    cloud_timeout_s: float = option(
        5.0, "how long one cloud request may take", POSITIVE, section="gateway"
    )
    cloud_retry_s: float = option(
        5.0, "how long rounds retry an unreachable cloud before the exit below it answers "
        "them (degraded)", POSITIVE, section="gateway",
    )  # fmt: skip
    mode: str = option(
        "paper", "the round protocol: paper (summary up, decision down, features up for "
        "the samples that do not exit locally) or eager (summary and features up in one "
        "message; ddnn cost says which costs a device less)", choices=PROTOCOL_MODES,
        section="gateway",
    )  # fmt: skip

    def check(self) -> None:
        if self.window < 2 * self.batch:
            raise ConfigError(
                f"expected at least two rounds ({2 * self.batch} answers for batch "
                f"{self.batch}), got {self.window}.",
                argument="window",
            )
        super().check()


@dataclass(frozen=True, kw_only=True)
class GatewaySettings(GatewayTuning, LinkSettings, ServiceSettings):
    """``ddnn serve gateway``: the local aggregator (and the edges) the devices talk to."""

    cloud: str = option(help="the cloud service's URL, e.g. http://127.0.0.1:8000", parse=_http_url)
    port: int = option(8001, "TCP port (0: a free one)", PORT)
    cloud_token: str | None = option(
        None, "token sent to the cloud (default: the same token)", secret=True
    )
    journal: str | None = option(
        None, "a file the answers are written to and read back from on a restart, so a "
        "restarted gateway answers each sample once (default: memory only)",
    )  # fmt: skip
    wan: str | None = option(
        None, "hold each request to the cloud for this WAN profile's round trip and upload "
        "time (a profile name of ddnn cost --list, or a profile file; default: none)",
    )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class DemoSettings(ServiceSettings):
    """``ddnn serve demo``: the phone app, its model and the cloud tier on one origin."""

    host: str = option(
        "127.0.0.1", "interface to bind: 127.0.0.1 (a phone reaches it over USB with adb "
        "reverse) or 0.0.0.0 / a LAN address (with https)",
    )  # fmt: skip
    port: int = option(8080, "TCP port (0: a free one)", PORT)
    token: str | None = option(
        None, "shared token of the cloud routes (default: $DDNN_TF_TOKEN; beyond loopback "
        "one is generated and put in the printed URL)", secret=True,
    )  # fmt: skip
    https: bool = option(False, "serve TLS with a self-signed certificate made for this machine")
    cert_dir: str | None = option(
        None, "where https keeps cert.pem and key.pem, reused while valid (default: "
        "~/.cache/ddnn_tf/demo-tls)",
    )  # fmt: skip
    qr: bool = option(True, "print a terminal QR code of the URL")
    mode: str | None = option(
        None, "also serve a gateway under /gateway/ whose end devices are the page's, in this "
        "protocol: paper or eager (the printed URL selects it; default: none, the page runs "
        "the local exit itself)", choices=PROTOCOL_MODES,
    )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class DeviceTuning(Options):
    """What a deployment hands every device as it is (``repeat``, and the ``[devices]``
    table of a deployment file): a field added here is a flag of ``ddnn device`` and of
    ``ddnn deploy``, a key of the file, and reaches every device ``deploy`` starts."""

    repeat: int = option(1, "stream the samples this many times (a soak)", AT_LEAST_1)
    reconnect_s: float = option(
        300.0, "a device gives up after this many seconds without its gateway", POSITIVE,
        section="devices",
    )  # fmt: skip
    rate_hz: float | None = option(
        None, "samples per second a device reads, the first one period after the gateway "
        "lets the devices go (default: each round as soon as the last one ended; ddnn "
        "deploy with link: a rate at which a sample's messages end before the next is read)",
        POSITIVE, section="devices",
    )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class DeviceSettings(DeviceTuning, LinkSettings, _Data, _Model):
    """``ddnn device``: one end device as a process."""

    index: int = option(help="this device's index (0 .. D-1)", range=NON_NEGATIVE)
    data: str = option(
        help="dataset name (fmnist6, mvmc, npz, synthetic, cancer3) or a .npy file of this view"
    )
    gateway: str | None = option(
        None, "the gateway's URL, e.g. http://127.0.0.1:8001 (http)", parse=_http_url
    )
    batch: int = option(64, "samples per round (the gateway's)", AT_LEAST_1)
    token: str | None = option(None, "the shared token (default: $DDNN_TF_TOKEN)", secret=True)
    mcu: str | None = option(
        None, "run the tier's C on this board instead of the binary: qemu (an emulated "
        "Cortex-M4, mps2-an386), mps2-an385 (Cortex-M3) or host (the system gcc)",
    )  # fmt: skip
    mode: str = option(
        "paper", "the round protocol, paper or eager (the gateway's)", choices=PROTOCOL_MODES
    )
    link: str | None = option(
        None, "emulate this radio profile (ddnn cost --list, or a profile file): each message "
        "waits its time on air, wake-up and turn on the channel, and a decision its "
        "downlink (rounds of one sample)",
    )  # fmt: skip
    hold_at: list[int] = option(
        (), "before the first round from each of these samples on, wait until hold_dir has "
        "a file released-SAMPLE (ddnn deploy lands its faults there)",
        parse=functools.partial(_devices, what="sample counts such as 64,128"),
    )  # fmt: skip
    hold_dir: str | None = option(None, "the folder hold_at waits on")

    def check(self) -> None:
        super().check()
        if self.transport == "http" and self.gateway is None:
            raise ConfigError("transport http needs the gateway's URL.", argument="gateway")
        _one_sample_rounds(self)
        if self.hold_at and self.hold_dir is None:
            raise ConfigError("hold_at needs the folder to wait on.", argument="hold_dir")


@dataclass(frozen=True, kw_only=True)
class DeployPlan(GatewayTuning, DeviceTuning, _Engine, _Data, _Model):
    """``ddnn deploy``: a whole hierarchy as processes on loopback, and its faults.

    Every key of a deployment file (``ddnn deploy --config site.toml``) is one of these
    fields: the top level, and the tables ``[gateway]`` (every site's gateway, the
    tables of :class:`GatewaySettings`), ``[devices]``, ``[faults]`` and ``[ports]``.
    """

    data: str | None = option(
        None, "dataset name (fmnist6, mvmc, npz, synthetic, cancer3; default: the one the "
        "manifest records)",
    )  # fmt: skip
    sites: int = option(1, "gateways, each with its own devices, sharing the one cloud", AT_LEAST_1)
    transport: str = option(
        "http", "http or mqtt between the devices and the gateways", choices=TRANSPORTS
    )
    broker: str | None = option(
        None, "an MQTT broker to use, mqtt://USER@HOST:PORT or mqtts://..., its password in "
        "$DDNN_TF_MQTT_PASSWORD (default: start mosquitto on loopback with a user and "
        "topic ACL per client)",
    )  # fmt: skip
    timeout_s: float = option(
        900.0, "give up (and stop everything) after this many seconds of streaming", POSITIVE
    )
    cloud_retry_s: float | None = option(
        None, "how long the gateways retry an unreachable cloud before the exit below it "
        "answers (default 5; 60 with restart_cloud_at, 180 on Ray)", POSITIVE,
        section="gateway",
    )  # fmt: skip
    mcu_devices: list[int] = option(
        (), "devices (e.g. 0,1,2,3,4,5) whose tier runs as C on an emulated Cortex-M4 (QEMU)",
        parse=_devices, section="devices",
    )  # fmt: skip
    kill_device: int | None = option(
        None, "the device to SIGKILL (with kill_at)", NON_NEGATIVE, section="faults"
    )
    kill_at: int | None = option(
        None, "kill it once this many samples were answered", NON_NEGATIVE, section="faults"
    )
    cloud_down_at: int | None = option(
        None, "stop the cloud for good once this many samples were answered", NON_NEGATIVE,
        section="faults",
    )  # fmt: skip
    restart_gateway_at: int | None = option(
        None, "SIGKILL site 0's gateway once this many samples were answered and start it "
        "again (same port, same journal)", NON_NEGATIVE, section="faults",
    )  # fmt: skip
    restart_cloud_at: int | None = option(
        None, "stop the cloud once this many samples were answered and start it again on "
        "the same port", NON_NEGATIVE, section="faults",
    )  # fmt: skip
    batch: int | None = option(
        None, "samples per round (every device's too; default 64, and 1 with link)",
        AT_LEAST_1, section="gateway",
    )  # fmt: skip
    gather_s: float | None = option(
        None, "how long a round waits for a device's message before counting it absent "
        "(default 2, or longer when link's slowest message needs it)", POSITIVE,
        section="gateway",
    )  # fmt: skip
    link: str | None = option(
        None, "emulate this radio profile on every device's messages (ddnn cost --list, or "
        "a profile file) and the wan profile on the gateways' requests to the cloud; the "
        "report compares the latency per exit with the cost model's prediction",
    )  # fmt: skip
    wan: str = option(
        "broadband", "the gateways' link to the cloud emulated with link (a wan profile)"
    )
    cloud_port: int = option(0, "the cloud's port (0: a free one)", PORT, section="ports")
    gateway_port: int = option(
        0, "the first site's gateway port, site k's is this + k (0: free ones)", PORT,
        section="ports",
    )  # fmt: skip

    def check(self) -> None:
        if self.batch is None:  # a radio sends each sample as it comes
            object.__setattr__(self, "batch", 64 if self.link is None else 1)
        _one_sample_rounds(self)
        super().check()
        if self.broker is not None and self.transport != "mqtt":
            raise ConfigError("a broker is used with transport mqtt only.", argument="broker")
        if (self.kill_device is None) != (self.kill_at is None):
            raise ConfigError("kill_device and kill_at go together.", argument="kill_at")
        if self.cloud_down_at is not None and self.restart_cloud_at is not None:
            raise ConfigError("excludes restart_cloud_at.", argument="cloud_down_at")
        if self.cloud_retry_s is None:  # long enough for a restart to come back
            retry = (
                5.0 if self.restart_cloud_at is None else 180.0 if self.engine == "ray" else 60.0
            )
            object.__setattr__(self, "cloud_retry_s", retry)
