"""Secrets planted in real traffic never reach what Mizu shows: ``mizu dissect -o jsonl
--redact``, and the hub's ``/entries``, ``/entries/{id}``, ``/har`` and ``/ws`` after ``mizu tap
--pcap`` (redaction on by default).

The traffic is recorded on loopback: an aiohttp client and server exchanging each kind of secret
(the ones redaction by name always caught, and the ones that once leaked: a multipart field,
bodies past the parse cap or nested too deep, NDJSON, a byte-order mark, ``text/plain``, a JWT
in a custom header, OAuth's ``code``, a WebSocket message), and Redis's ``AUTH``, ``HELLO …
AUTH`` and a value holding a token to a real redis-server. AMQP's SASL PLAIN login comes from a
committed capture of a real RabbitMQ client.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gzip
import json
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.server.local_tap import local_tap
from tests.server.multiservice import free_port
from tests.support.processes import Dashboard
from tests.support.tcpdump import record

sys.path.insert(0, str(Path(__file__).parents[2] / "examples" / "mizu-redis" / "tests"))
from redis_peers import redis_server, send_commands

pytestmark = pytest.mark.live

AMQP_CAPTURE = Path(__file__).parents[1] / "data" / "amqp" / "deepflow_amqp1.pcap"
AMQP_PLAIN = "\x00guest\x00guest"
"""The SASL PLAIN response of that capture's logins (user ``guest``, password ``guest``)."""
REDACTED = "[REDACTED]"
PARSE_CAP = 1 << 20
"""The HTTP plugin's body cap: a body beyond it is cut, and so no longer parses."""


def jwt(subject: str) -> str:
    def part(document: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part({'sub': subject})}.c2lnbmF0dXJl"


def nested(depth: int, leaf: dict[str, Any]) -> dict[str, Any]:
    document = leaf
    for _ in range(depth):
        document = {"level": document}
    return document


SECRETS = {
    "authorization header": "authz-7Rk2pQ",
    "proxy authorization": base64.b64encode(b"proxy:pr0xy-9Lm").decode(),
    "api key header": "apikey-3Hs8vN",
    "request cookie": "cookie-req-5Tq1",
    "response cookie": "cookie-resp-6Wz4",
    "query token": "query-token-2Bx7",
    "query api key": "query-key-8Cv3",
    "oauth code in the query": "oauth-code-4Nd9",
    "json request body": "json-password-1Fg6",
    "json response refresh token": "json-refresh-7Jk2",
    "form client secret": "form-secret-3Pl8",
    "form oauth code": "form-code-5Qm1",
    "xml body": "xml-password-9Rt4",
    "json nested object": "json-nested-2Sy5",
    "multipart field": "multipart-password-6Uv3",
    "json past the parse cap": "json-capped-8Wx7",
    "gzip inflating past the cap": "gzip-capped-1Yz9",
    "json nested deeper than 64": "json-deep-4Ab2",
    "ndjson": "ndjson-token-7Cd6",
    "json with a byte-order mark": "bom-password-3Ef1",
    "text/plain password=": "text-password-5Gh8",
    "jwt in a custom header": jwt("custom-header-jwt-9Ij4"),
    "key-shaped value under an innocent name": "ghp_" + "K1m2N3o4P5q6R7s8T9u0V1w2X3y4Z5a6B7c8",
    "websocket message": "ws-token-3Qr8",
    "redis value holding json": "redis-value-5St2",
    "redis AUTH": "redis-auth-6Kl3",
    "redis AUTH with a user": "redis-acl-2Mn7",
    "redis HELLO AUTH": "redis-hello-8Op5",
}
"""Each kind of secret planted, and its value (unique, so a leak names its kind)."""


async def answer(request: web.Request) -> web.StreamResponse:
    await request.read()
    if request.path == "/oauth/token":
        document = {"access_token": "x", "refresh_token": SECRETS["json response refresh token"]}
        response = web.json_response(document)
        response.set_cookie("session", SECRETS["response cookie"])
        return response
    if request.path == "/export.json.gz":
        document = {"password": SECRETS["gzip inflating past the cap"], "rows": "r" * PARSE_CAP}
        return web.Response(
            body=gzip.compress(json.dumps(document).encode()),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )
    if request.path == "/live":
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        await socket.receive()
        await socket.send_str("ok")
        await socket.close()
        return socket
    if request.path == "/deep":
        leaf = {"secret": SECRETS["json nested deeper than 64"]}
        return web.json_response(nested(80, leaf))
    return web.Response(text="ok")


async def http_traffic(port: int) -> None:
    """One request (or answer) per kind of HTTP secret."""
    base = f"http://127.0.0.1:{port}"
    json_type = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:

        async def send(method: str, path: str, **options: Any) -> None:
            async with session.request(method, base + path, **options) as response:
                await response.read()
                assert response.status == 200, path

        await send(
            "GET", "/a", headers={"Authorization": f"Bearer {SECRETS['authorization header']}"}
        )
        proxy = SECRETS["proxy authorization"]
        await send("GET", "/b", headers={"Proxy-Authorization": f"Basic {proxy}"})
        await send("GET", "/c", headers={"X-Api-Key": SECRETS["api key header"]})
        await send("GET", "/d", headers={"Cookie": f"sid={SECRETS['request cookie']}; theme=dark"})
        await send("GET", f"/e?page=1&access_token={SECRETS['query token']}")
        await send("GET", f"/f?api_key={SECRETS['query api key']}")
        await send("GET", f"/callback?code={SECRETS['oauth code in the query']}&state=s")
        login = {"user": "ann", "password": SECRETS["json request body"]}
        await send("POST", "/login", json=login)
        form = (
            f"grant_type=authorization_code&code={SECRETS['form oauth code']}"
            f"&client_id=app&client_secret={SECRETS['form client secret']}"
        )
        form_type = {"Content-Type": "application/x-www-form-urlencoded"}
        await send("POST", "/oauth/token", data=form, headers=form_type)
        xml = f"<login><user>ann</user><password>{SECRETS['xml body']}</password></login>"
        await send("POST", "/xml", data=xml, headers={"Content-Type": "application/xml"})
        deep_object = {"user": {"credentials": {"secret": SECRETS["json nested object"]}}}
        await send("POST", "/nested", json=deep_object)
        multipart = aiohttp.FormData()
        multipart.add_field("user", "ann")
        multipart.add_field("password", SECRETS["multipart field"])
        multipart.add_field("avatar", b"\x89PNG....", filename="a.png", content_type="image/png")
        await send("POST", "/upload", data=multipart)
        capped = {"password": SECRETS["json past the parse cap"], "rows": "r" * (PARSE_CAP + 4096)}
        await send("POST", "/import", data=json.dumps(capped), headers=json_type)
        await send("GET", "/export.json.gz")
        await send("GET", "/deep")
        lines = [{"event": "login"}, {"token": SECRETS["ndjson"], "event": "refresh"}]
        ndjson = "".join(json.dumps(line) + "\n" for line in lines)
        await send("POST", "/events", data=ndjson, headers={"Content-Type": "application/x-ndjson"})
        bom = "\ufeff" + json.dumps({"password": SECRETS["json with a byte-order mark"]})
        await send("POST", "/bom", data=bom.encode(), headers=json_type)
        text = f"user=ann password={SECRETS['text/plain password=']} remember=yes"
        await send("POST", "/text", data=text, headers={"Content-Type": "text/plain"})
        await send("GET", "/g", headers={"X-User-Context": SECRETS["jwt in a custom header"]})
        note = {"note": SECRETS["key-shaped value under an innocent name"]}
        await send("POST", "/notes", json=note)
        async with session.ws_connect(base + "/live") as socket:
            await socket.send_json({"type": "auth", "token": SECRETS["websocket message"]})
            assert (await socket.receive()).data == "ok"


def redis_traffic(port: int) -> None:
    commands = [
        ["AUTH", SECRETS["redis AUTH"]],
        ["AUTH", "ann", SECRETS["redis AUTH with a user"]],
        ["HELLO", "3", "AUTH", "ann", SECRETS["redis HELLO AUTH"], "SETNAME", "app"],
        ["SET", "session:7", json.dumps({"access_token": SECRETS["redis value holding json"]})],
        ["PING"],
    ]
    send_commands(port, commands, pause=0.05)


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    pcap = tmp_path_factory.mktemp("corpus") / "secrets.pcap"

    async def serve_and_send(port: int) -> None:
        app = web.Application(client_max_size=8 << 20)
        app.router.add_route("*", "/{tail:.*}", answer)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            await http_traffic(port)
        finally:
            await runner.cleanup()

    http_port = free_port()
    with redis_server() as redis, record(pcap, f"tcp port {http_port} or tcp port {redis.port}"):
        asyncio.run(serve_and_send(http_port))
        redis_traffic(redis.port)
    yield pcap


def revealed(document: Any) -> str:
    """Every string of ``document``, and what a base64 string or a gzip stream hides, joined:
    what someone reading the output could see."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                found.append(str(key))
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str):
            found.append(value)
            try:
                raw = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                return
            if raw.startswith(b"\x1f\x8b"):
                raw = zlib.decompressobj(wbits=47).decompress(raw, 16 << 20)
            found.append(raw.decode("latin-1"))

    walk(document)
    return "\n".join(found)


def leaks(document: Any) -> list[str]:
    """The kinds of secret that ``document`` shows."""
    text = revealed(document)
    kinds = [kind for kind, secret in SECRETS.items() if secret in text]
    if AMQP_PLAIN in text:
        kinds.append("amqp SASL PLAIN")
    return kinds


def assert_planted_in_the_capture(entries: list[dict[str, Any]]) -> None:
    """Without redaction every secret is there (the corpus tests what it claims to), but for
    AMQP's, which the plugin never shows."""
    assert leaks(entries) == list(SECRETS)
    logins = [
        entry["response"]
        for entry in entries
        if entry["protocol"]["name"] == "amqp"
        and (entry["response"] or {}).get("method") == "connection.start-ok"
    ]
    assert [login["mechanism"] for login in logins] == ["PLAIN", "PLAIN"]
    assert {login["response"] for login in logins} == {REDACTED}


def dissect(*options: str, capture: Path) -> list[dict[str, Any]]:
    captures = (str(capture), str(AMQP_CAPTURE))
    result = subprocess.run(
        [sys.executable, "-m", "mizu_cli", "dissect", *captures, "-o", "jsonl", *options],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_dissect_redact_shows_no_planted_secret(capture: Path) -> None:
    assert_planted_in_the_capture(dissect(capture=capture))
    entries = dissect("--redact", capture=capture)
    assert leaks(entries) == []
    protocols = {entry["protocol"]["name"] for entry in entries}
    assert protocols >= {"http", "redis", "amqp"}
    redis = [entry["request"] for entry in entries if entry["protocol"]["name"] == "redis"]
    assert [(r["method"], r["args"]) for r in redis if "password" in r] == [
        ("AUTH", []),
        ("AUTH", ["ann"]),
        ("HELLO", ["3", "AUTH", "ann", "SETNAME", "app"]),
    ]
    # what is not a secret stays readable
    text = revealed(entries)
    for kept in ('"user":"ann"', "grant_type=authorization_code", "theme", "remember=yes"):
        assert kept in text.replace(" ", ""), kept


async def live_rows(dashboard: Dashboard, count: int) -> list[Any]:
    """What ``/ws`` sends for the whole history."""
    messages: list[Any] = []
    headers = {**dashboard.headers, "Origin": dashboard.base}
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{dashboard.base}/ws", headers=headers) as socket,
    ):
        await socket.send_json({"query": "", "limit": count})
        rows = 0
        while rows < count:
            message = json.loads((await asyncio.wait_for(socket.receive(), 10)).data)
            messages.append(message)
            rows += message["type"] == "entry"
    return messages


def test_the_hub_shows_no_planted_secret(capture: Path, tmp_path: Path) -> None:
    dissected = dissect(capture=capture)
    expected = len(dissected)
    http = sum(entry["protocol"]["name"] == "http" for entry in dissected)
    with local_tap(tmp_path, "--pcap", str(capture), "--pcap", str(AMQP_CAPTURE)) as dashboard:
        deadline = time.monotonic() + 30
        while (listing := dashboard.get_json("/entries", limit=1000))["meta"]["total"] < expected:
            assert time.monotonic() < deadline, listing["meta"]
            time.sleep(0.1)
        rows = listing["data"]
        details = [dashboard.get_json(f"/entries/{row['id']}") for row in rows]
        har = dashboard.get_json("/har", limit=1000)
        live = asyncio.run(live_rows(dashboard, expected))
    assert len(rows) == len(details) == expected
    assert len(har["log"]["entries"]) == http  # HAR holds the HTTP entries
    assert leaks(rows) == []
    assert leaks(details) == []
    assert leaks(har) == []
    assert leaks(live) == []
