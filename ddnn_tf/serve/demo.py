"""``ddnn serve demo MODEL_DIR``: the phone app of ``android_demo/`` with its LiteRT.js
runtime, the converted model (its manifest and the tier files it lists, nothing else) and
the cloud tier on one origin; with ``mode``, also a gateway under ``/gateway/`` whose end
devices are the page's. The Phone page describes the origin, what it prints, HTTPS on the
LAN and the token. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import json
import mimetypes
import os
import secrets
import socket
import sys
from pathlib import Path
from urllib.parse import urlencode

from ddnn_tf.errors import ConfigError
from ddnn_tf.serve.settings import DemoSettings, is_loopback, settings_of, shared_token

__all__ = [
    "APP_DIR",
    "create_demo_app",
    "default_cert_dir",
    "serve_demo",
    "lan_address",
    "self_signed_cert",
]

#: The web app's sources (a clone's ``android_demo/``).
APP_DIR = Path(__file__).resolve().parents[2] / "android_demo"
_APP_FILES = ("index.html", "style.css", "sw.js", "app.webmanifest")
_APP_DIRS = ("js", "icons", "samples")
_LITERT = {  # URL folder -> folder inside node_modules/@litertjs
    "vendor/litertjs/core": "core/dist",
    "vendor/litertjs/wasm-utils": "wasm-utils/dist",
    "vendor/litertjs/wasm": "core/wasm",
}

mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("application/manifest+json", ".webmanifest")
mimetypes.add_type("application/octet-stream", ".tflite")


def _check_app(app_dir: Path) -> Path:
    if not (app_dir / "index.html").is_file():
        raise FileNotFoundError(
            f"The phone app is not at {app_dir} (no index.html); serve demo runs from a clone "
            "of the repository."
        )
    litert = app_dir / "node_modules" / "@litertjs"
    for folder in _LITERT.values():
        if not (litert / folder).is_dir():
            raise FileNotFoundError(
                f"LiteRT.js is not installed: {litert / folder} is missing; run `npm ci "
                "--prefix android_demo` in the repository (the Makefile's setup does)."
            )
    return litert


def create_demo_app(settings: DemoSettings | str | Path, app_dir: str | Path = APP_DIR, **options):
    """The demo's FastAPI app: the web app, the model files and the cloud tier.

    Args:
        settings: the :class:`~ddnn_tf.serve.settings.DemoSettings`, or the model
            directory (then ``options`` are the other settings: ``token``,
            ``max_body_bytes``, ``deadline_s``, ``target``). The cloud tier runs on the
            settings' target; the page always runs the portable device and aggregator
            binaries.
        app_dir: the web app's folder (default: the clone's ``android_demo/``).

    Returns:
        The app; ``app.state.tier`` is the loaded :class:`~ddnn_tf.serve.cloud.CloudTier`
        (and ``app.state.gateway`` the :class:`~ddnn_tf.serve.gateway.Gateway`, with ``mode``).

    Raises:
        FileNotFoundError: no web app, LiteRT.js not installed, or a bad model directory.
        ValueError: a malformed model, or a model the page cannot run (no portable target).
    """
    from fastapi import HTTPException
    from fastapi.responses import FileResponse
    from fastapi.staticfiles import StaticFiles

    from ddnn_tf.serve.cloud import CloudTier, cloud_app

    s = settings_of(DemoSettings, settings, options)
    app_dir = Path(app_dir)
    litert = _check_app(app_dir)
    tier = CloudTier(s.model, target=s.target)
    manifest = tier.manifest
    if "portable" not in manifest["targets"]:
        raise ConfigError(
            f"{manifest.directory}: the page runs portable tier binaries; this model was "
            f"converted for {manifest['targets']} only."
        )
    model_files = {"manifest.json": manifest.directory / "manifest.json"}
    for meta in manifest["tiers"].values():
        for entry in meta["files"].values():
            model_files[entry["file"]] = manifest.directory / entry["file"]
    app = cloud_app(tier, s, "ddnn-tf phone demo", max_batch=1024)
    if s.mode is not None:
        _add_gateway(app, s)

    @app.middleware("http")
    async def no_stale_app(request, call_next):
        response = await call_next(request)
        # revalidate every time: the service worker keeps its own copy for offline use
        response.headers.setdefault("Cache-Control", "no-cache")
        # cross-origin isolation: finer performance.now() for the per-tier times (and
        # SharedArrayBuffer, should LiteRT.js run threaded); everything is same-origin
        response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        response.headers["Cross-Origin-Embedder-Policy"] = "require-corp"
        return response

    @app.get("/model/{name}")
    async def model_file(name: str) -> FileResponse:
        path = model_files.get(name)
        if path is None:
            raise HTTPException(404, f"{name} is not a file of model {manifest['name']}")
        return FileResponse(path)

    for name in ("", *_APP_FILES):  # "/" is index.html
        page = app_dir / (name or "index.html")
        app.add_route(f"/{name}", lambda _, page=page: FileResponse(page), methods=["GET"])
    for folder in _APP_DIRS:
        app.mount(f"/{folder}", StaticFiles(directory=app_dir / folder), name=folder)
    for url, folder in _LITERT.items():
        app.mount(f"/{url}", StaticFiles(directory=litert / folder), name=url)
    return app


def _add_gateway(app, s: DemoSettings) -> None:
    """A gateway under ``/gateway/`` whose devices are the page's and whose cloud is
    ``app``'s own cloud route (an in-process ASGI call: no port, no second hop)."""
    import contextlib

    import httpx

    from ddnn_tf.serve.gateway import Gateway, gateway_router
    from ddnn_tf.serve.settings import GatewaySettings

    settings = GatewaySettings(
        model=s.model,
        cloud="http://demo",
        token=s.token,
        target="portable",
        max_body_bytes=s.max_body_bytes,
        deadline_s=s.deadline_s,
        batch=1,
        mode=s.mode,
    )
    gw = Gateway(settings)
    app.include_router(gateway_router(gw, settings), prefix="/gateway")
    app.state.gateway = gw
    serving = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a):
        async with serving(a):
            await gw.start(transport=httpx.ASGITransport(app=app))
            try:
                yield
            finally:
                await gw.stop()

    app.router.lifespan_context = lifespan


def lan_address() -> str:
    """This machine's address on its default route (no packet is sent); loopback if none."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.254.254.254", 9))
            return probe.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def default_cert_dir() -> Path:
    """Where the demo keeps its HTTPS certificate: ``$XDG_CACHE_HOME/ddnn_tf/demo-tls``."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "ddnn_tf" / "demo-tls"


def _reusable(cert_path: Path, key_path: Path, hosts: list[str]) -> bool:
    """An existing certificate that names every host and stays valid for a day or more."""
    from cryptography import x509

    if not (cert_path.is_file() and key_path.is_file()):
        return False
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    have = {str(n) for n in names.get_values_for_type(x509.IPAddress)}
    have |= set(names.get_values_for_type(x509.DNSName))
    soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    return set(hosts) <= have and cert.not_valid_after_utc > soon


def self_signed_cert(folder: Path, hosts: list[str]) -> tuple[Path, Path]:
    """A self-signed certificate and key for ``hosts`` (names or IPs) in ``folder``.

    A certificate already there is reused when it names every host and is valid for at
    least another day (so a phone that trusts it keeps trusting it); otherwise a new one
    (ECDSA P-256, valid 365 days) replaces it.

    Returns:
        ``(cert.pem, key.pem)`` paths (the key is readable by its owner only).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    hosts = list(dict.fromkeys(hosts))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    if _reusable(cert_path, key_path, hosts):
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    names = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ddnn-tf phone demo")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    pem, pkcs8 = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    with open(key_path, "wb", opener=functools.partial(os.open, mode=0o600)) as f:
        f.write(key.private_bytes(pem, pkcs8, serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(pem))
    return cert_path, key_path


def serve_demo(settings: DemoSettings) -> None:
    """Serve the phone app, the model and the cloud tier on one origin until stopped,
    printing the URL to open on the phone (the Phone page shows the output)."""
    from ddnn_tf.serve.run_server import bind, serve_socket

    host, https = settings.host, settings.https
    token = shared_token(settings.token)
    if token is None and not is_loopback(host):
        token = secrets.token_urlsafe(16)
    app = create_demo_app(settings.replace(token=token))
    public = lan_address() if host in ("0.0.0.0", "::") else host
    ssl = {}
    if https:
        folder = Path(settings.cert_dir) if settings.cert_dir else default_cert_dir()
        cert, key = self_signed_cert(folder, [public, "localhost", "127.0.0.1"])
        ssl = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    sock = bind(host, settings.port)
    actual = sock.getsockname()[1]
    shown = f"[{public}]" if ":" in public else public
    query = urlencode(
        {k: v for k, v in (("mode", settings.mode), ("token", token)) if v is not None}
    )
    url = f"{'https' if https else 'http'}://{shown}:{actual}/" + (query and f"?{query}")
    print(json.dumps({"url": url}), flush=True)
    print(f"Open on the phone: {url}")
    if is_loopback(host):
        print(f"  over USB: adb reverse tcp:{actual} tcp:{actual}, then open the URL in Chrome")
    elif not https:
        print("  on the LAN without HTTPS the camera and installing are disabled by Chrome")
    if https:
        print(
            f"  self-signed certificate: {ssl['ssl_certfile']} (install it on the phone to trust it)"
        )
    if settings.qr:
        import qrcode

        qr = qrcode.QRCode(border=2)
        qr.add_data(url)
        qr.print_ascii(out=sys.stdout, invert=True)
    sys.stdout.flush()
    serve_socket(app, sock, **ssl)
