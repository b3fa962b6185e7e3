"""Real TLS peers on loopback for the plugin's tests: nginx (HTTP/1.1 and HTTP/2) and an aiohttp
``ssl`` server with a self-signed certificate made here; curl, requests/urllib3 and httpx clients
writing one NSS key log. Also a script that records the committed capture (from the top of the
repository):

    python tests/plugins/mizu_tls/tls_peers.py tests/data/tls/mizu-tls
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import requests
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from mizu_tls.names import CIPHER_SUITES
from requests.adapters import HTTPAdapter

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from tests.support.tcpdump import record

SERVER_NAME = "api.example.com"
NGINX_TLS12_CIPHERS = (
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-RSA-AES128-SHA",
    "ECDHE-RSA-AES256-SHA384",
)
RECORD_FLUSH = 1.2
"""tcpdump hands packets over in blocks of about a second: the recording outlasts the traffic."""


@dataclass(frozen=True)
class Expected:
    """A request as the client made it, and the connection's TLS as the client saw it."""

    client: str
    method: str
    path: str
    status: int
    http_version: str
    sni: str
    alpn: str
    version: str
    cipher: str


@dataclass
class Session:
    directory: Path
    keylog: Path
    certificate: Path
    key: Path
    expected: list[Expected] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed RSA certificate for api.example.com, localhost and 127.0.0.1."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_NAME)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName(SERVER_NAME),
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    certificate_path, key_path = directory / "server.crt", directory / "server.key"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return certificate_path, key_path


@contextmanager
def nginx(session: Session, port: int, plain_port: int = 0, groups: str = "auto") -> Iterator[int]:
    """nginx serving HTTP/1.1 and HTTP/2 over TLS on ``port`` (and the same in clear on
    ``plain_port``, when given), run as this user's process; ``groups`` are the key exchange
    groups it accepts (a client whose key share is not among them gets a HelloRetryRequest)."""
    executable = shutil.which("nginx") or "/usr/sbin/nginx"
    root = session.directory / "nginx"
    (root / "html").mkdir(parents=True, exist_ok=True)
    (root / "html" / "index.html").write_text("<h1>mizu</h1>\n")
    (root / "html" / "data.json").write_text('{"nginx": true}\n')
    config = root / "nginx.conf"
    config.write_text(
        f"""
worker_processes 1;
daemon on;
user root;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {root}/access.log;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    default_type application/octet-stream;
    keepalive_requests 100000;
    server {{
        {f"listen 127.0.0.1:{plain_port};" if plain_port else ""}
        listen 127.0.0.1:{port} ssl http2;
        server_name {SERVER_NAME} localhost;
        ssl_certificate {session.certificate};
        ssl_certificate_key {session.key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers {":".join(NGINX_TLS12_CIPHERS)};
        ssl_ecdh_curve {groups};
        ssl_session_cache off;
        ssl_session_tickets off;
        root {root}/html;
        location /missing {{ return 404; }}
        location /created {{ return 201 "made\\n"; }}
    }}
}}
"""
    )
    subprocess.run([executable, "-c", str(config), "-e", str(root / "error.log")], check=True)
    try:
        wait_for_port(port)
        yield port
    finally:
        pid_file = root / "nginx.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)


def wait_for_port(port: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


@contextmanager
def aiohttp_server(session: Session, port: int) -> Iterator[int]:
    """An aiohttp application over ``ssl`` with the session's certificate."""

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hello": request.query.get("name", "world")})

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read(), status=201, content_type="text/plain")

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(session.certificate, session.key)
    app = web.Application()
    app.router.add_get("/hello", hello)
    app.router.add_post("/echo", echo)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=context)
    loop.run_until_complete(site.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def client_context(session: Session, tls12_cipher: str = "") -> ssl.SSLContext:
    """A client context trusting the session's certificate and writing the key log."""
    context = ssl.create_default_context(cafile=str(session.certificate))
    context.keylog_filename = str(session.keylog)
    if tls12_cipher:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(tls12_cipher)
    return context


@dataclass(frozen=True)
class Seen:
    """A connection's TLS as its client reported it, in IANA's words."""

    version: str
    cipher: str
    alpn: str


@functools.cache
def suite_numbers() -> dict[str, int]:
    """OpenSSL's cipher suite names and their IANA numbers, as the ``ssl`` module lists them."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.set_ciphers("ALL")
    return {suite["name"]: suite["id"] & 0xFFFF for suite in context.get_ciphers()}


def seen(version: str, openssl_cipher: str, alpn: str | None) -> Seen:
    """What OpenSSL says (``TLSv1.2``, ``ECDHE-RSA-AES128-GCM-SHA256``), as IANA names it."""
    cipher = CIPHER_SUITES[suite_numbers()[openssl_cipher]]
    return Seen(version.replace("TLSv", "TLS "), cipher, alpn or "")


def seen_by(connection: ssl.SSLObject | ssl.SSLSocket) -> Seen:
    cipher, version = connection.cipher(), connection.version()
    assert cipher is not None and version is not None
    return seen(version, cipher[0], connection.selected_alpn_protocol())


CURL_TLS = re.compile(r"SSL connection using (TLSv[\d.]+) / (\S+)")
CURL_ALPN = re.compile(r"ALPN: server accepted (\S+)")


def curl(session: Session, url: str, *options: str) -> Seen:
    """One request; the connection's TLS as curl reports it (``-v``)."""
    environment = dict(os.environ, SSLKEYLOGFILE=str(session.keylog))
    result = subprocess.run(
        ["curl", "-sSv", "-o", "/dev/null", "--cacert", str(session.certificate), *options, url],
        check=True,
        env=environment,
        timeout=30,
        capture_output=True,
        text=True,
    )
    tls, alpn = CURL_TLS.search(result.stderr), CURL_ALPN.search(result.stderr)
    assert tls is not None, result.stderr
    return seen(tls[1], tls[2], alpn[1] if alpn else None)


CURL_RUNS = (
    # (options, version, cipher, ALPN, HTTP version): TLS 1.3's three suites, TLS 1.2 forced.
    (("--tls13-ciphers", "TLS_AES_128_GCM_SHA256", "--http1.1"), "TLS 1.3",
     "TLS_AES_128_GCM_SHA256", "http/1.1", "HTTP/1.1"),
    (("--tls13-ciphers", "TLS_AES_256_GCM_SHA384", "--http2"), "TLS 1.3",
     "TLS_AES_256_GCM_SHA384", "h2", "HTTP/2.0"),
    (("--tls13-ciphers", "TLS_CHACHA20_POLY1305_SHA256", "--http2"), "TLS 1.3",
     "TLS_CHACHA20_POLY1305_SHA256", "h2", "HTTP/2.0"),
    (("--tlsv1.2", "--tls-max", "1.2", "--ciphers", "ECDHE-RSA-AES128-GCM-SHA256", "--http1.1"),
     "TLS 1.2", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "http/1.1", "HTTP/1.1"),
    (("--tlsv1.2", "--tls-max", "1.2", "--ciphers", "ECDHE-RSA-CHACHA20-POLY1305", "--http2"),
     "TLS 1.2", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "h2", "HTTP/2.0"),
)  # fmt: skip


def run_clients(session: Session, nginx_port: int, aiohttp_port: int) -> None:
    """Every scenario, one after the other, each request noted in ``session.expected`` with
    the TLS its client reported."""
    expect = session.expected.append
    resolve = ("--resolve", f"{SERVER_NAME}:{nginx_port}:127.0.0.1")
    for options, version, cipher, alpn, http_version in CURL_RUNS:
        url = f"https://{SERVER_NAME}:{nginx_port}/index.html"
        tls = curl(session, url, *resolve, *options)
        assert tls == Seen(version, cipher, alpn)  # what the options asked for
        expect(Expected("curl", "GET", "/index.html", 200, http_version, SERVER_NAME, tls.alpn,
                        tls.version, tls.cipher))  # fmt: skip
    # No SNI: curl sends none to an IP address.
    tls = curl(session, f"https://127.0.0.1:{nginx_port}/missing", "--http1.1", "--tlsv1.3")
    expect(Expected("curl", "GET", "/missing", 404, "HTTP/1.1", "", tls.alpn, tls.version,
                    tls.cipher))  # fmt: skip

    # requests (urllib3) to aiohttp: TLS 1.3 on one keep-alive connection, then TLS 1.2.
    for tls12_cipher, calls in (
        ("", [("GET", "/hello?name=ada", None, 200), ("POST", "/echo", b"x" * 3000, 201)]),
        ("ECDHE-RSA-CHACHA20-POLY1305", [("GET", "/hello", None, 200)]),
    ):
        with requests.Session() as client:
            client.mount("https://", ContextAdapter(client_context(session, tls12_cipher)))
            for method, target, body, status in calls:
                url = f"https://localhost:{aiohttp_port}{target}"
                response = client.request(method, url, data=body, timeout=10, stream=True)
                tls = seen_by(response.raw.connection.sock)
                assert response.status_code == status and response.content
                expect(Expected("requests", method, target.split("?")[0], status, "HTTP/1.1",
                                "localhost", tls.alpn, tls.version, tls.cipher))  # fmt: skip
            assert tls.version == ("TLS 1.2" if tls12_cipher else "TLS 1.3")

    # httpx over HTTP/2 to nginx: concurrent streams on one connection.
    async def concurrent() -> None:
        async with httpx.AsyncClient(http2=True, verify=client_context(session)) as client:
            base = f"https://localhost:{nginx_port}"
            paths = ["/index.html", "/data.json", "/missing", "/created", "/index.html"]
            responses = await asyncio.gather(*(client.get(base + path) for path in paths))
            for path, response in zip(paths, responses, strict=True):
                assert response.http_version == "HTTP/2"
                stream = response.extensions["network_stream"]
                tls = seen_by(stream.get_extra_info("ssl_object"))
                expect(Expected("httpx", "GET", path, response.status_code, "HTTP/2.0",
                                "localhost", tls.alpn, tls.version, tls.cipher))  # fmt: skip

    asyncio.run(concurrent())


class ContextAdapter(HTTPAdapter):
    """requests with an ``ssl`` context of ours (urllib3 takes it through the pool manager)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        super().__init__()

    def init_poolmanager(self, *args: object, **kwargs: object) -> None:
        kwargs["ssl_context"] = self.context
        super().init_poolmanager(*args, **kwargs)  # type: ignore[arg-type]


@contextmanager
def peers(directory: Path) -> Iterator[tuple[Session, int, int]]:
    certificate, key = make_certificate(directory)
    session = Session(directory, directory / "keys.log", certificate, key)
    nginx_port, aiohttp_port = free_port(), free_port()
    with nginx(session, nginx_port), aiohttp_server(session, aiohttp_port):
        yield session, nginx_port, aiohttp_port


def record_session(directory: Path, pcap: Path) -> Session:
    """Run every scenario while tcpdump records it into ``pcap``."""
    with peers(directory) as (session, nginx_port, aiohttp_port):
        bpf = f"tcp port {nginx_port} or tcp port {aiohttp_port}"
        with record(pcap, bpf):
            run_clients(session, nginx_port, aiohttp_port)
            time.sleep(RECORD_FLUSH)
    return session


def save_expected(session: Session, path: Path) -> None:
    path.write_text(json.dumps([asdict(item) for item in session.expected], indent=1) + "\n")


def load_expected(path: Path) -> list[Expected]:
    return [Expected(**item) for item in json.loads(path.read_text())]


def main() -> None:
    """Record ``STEM.pcap``, its key log ``STEM.keys`` and the requests ``STEM.json``."""
    import tempfile

    stem = Path(sys.argv[1])
    with tempfile.TemporaryDirectory() as directory:
        session = record_session(Path(directory), stem.with_suffix(".pcap"))
        shutil.copyfile(session.keylog, stem.with_suffix(".keys"))
    save_expected(session, stem.with_suffix(".json"))
    print(f"{len(session.expected)} requests recorded into {stem}.pcap, key log {stem}.keys")


if __name__ == "__main__":
    main()
