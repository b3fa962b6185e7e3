"""Redaction and ignored user agents, on entries of real HTTP and Redis traffic."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mizu_core.redact import (
    _SECRET_VALUE_SCAN,
    REDACTED,
    SECRET_VALUE,
    Redactor,
    UserAgentFilter,
)
from tests.support.tcpdump import record

sys.path.insert(0, str(Path(__file__).parents[2] / "examples" / "mizu-redis" / "tests"))
from redis_peers import redis_server, send_commands

pytestmark = pytest.mark.live

SECRET = "s3cr3t-value"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.answer(b'{"access_token": "' + SECRET.encode() + b'", "user": "ann"}')

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.answer(b'{"ok": true}')

    def answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Set-Cookie", f"session={SECRET}; HttpOnly")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return


def dissect(pcap: Path, *options: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, "-m", "mizu_cli", "dissect", str(pcap), *options],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture(scope="module")
def http_capture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    pcap = tmp_path_factory.mktemp("redact") / "http.pcap"
    base = f"http://127.0.0.1:{port}"
    bodies = [
        ("application/json", json.dumps({"user": "ann", "password": SECRET, "n": [1, 2]})),
        (
            "application/xml",
            f'<login><user>ann</user><password>{SECRET}</password><k api_key="{SECRET}"/></login>',
        ),
        ("application/x-www-form-urlencoded", f"user=ann&password={SECRET}&x=1"),
    ]
    with record(pcap, f"tcp port {port}"):
        request = urllib.request.Request(
            f"{base}/items?page=2&token={SECRET}",
            headers={
                "Authorization": f"Bearer {SECRET}",
                "Cookie": f"sid={SECRET}; theme=dark",
                "X-Api-Key": SECRET,
                "User-Agent": "kube-probe/1.29",
            },
        )
        urllib.request.urlopen(request, timeout=5).read()
        for mime, body in bodies:
            request = urllib.request.Request(
                f"{base}/login", data=body.encode(), headers={"Content-Type": mime}
            )
            urllib.request.urlopen(request, timeout=5).read()
    server.shutdown()
    yield pcap


def http_entries(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = [entry for entry in entries if entry["protocol"]["name"] == "http"]
    assert len(found) == 4, [entry["protocol"]["name"] for entry in entries]
    return sorted(found, key=lambda entry: entry["timestamp"])


def test_dissect_redact_hides_every_secret(http_capture: Path) -> None:
    entries = http_entries(dissect(http_capture, "--redact"))
    assert SECRET not in json.dumps(entries)
    get, as_json, as_xml, as_form = entries
    request = get["request"]
    assert request["headers"]["Authorization"] == REDACTED
    assert request["headers"]["Cookie"] == REDACTED
    assert request["headers"]["X-Api-Key"] == REDACTED
    assert request["headers"]["Host"].startswith("127.0.0.1")  # other names stay
    assert request["queryString"] == {"page": "2", "token": REDACTED}
    assert request["url"].endswith(f"?page=2&token={REDACTED}")
    assert request["cookies"] == {"sid": REDACTED, "theme": REDACTED}
    assert request["path"] == "/items"
    response = get["response"]
    assert response["headers"]["Set-Cookie"] == REDACTED
    assert json.loads(response["content"]["text"]) == {"access_token": REDACTED, "user": "ann"}
    assert json.loads(as_json["request"]["postData"]["text"]) == {
        "user": "ann",
        "password": REDACTED,
        "n": [1, 2],
    }
    xml = as_xml["request"]["postData"]["text"]
    assert f"<password>{REDACTED}</password>" in xml and "<user>ann</user>" in xml
    assert f'api_key="{REDACTED}"' in xml
    form = as_form["request"]["postData"]
    assert form["text"] == f"user=ann&password={REDACTED}&x=1"
    assert {p["name"]: p["value"] for p in form["params"]}["password"] == REDACTED


def test_dissect_keeps_secrets_without_redact(http_capture: Path) -> None:
    entries = http_entries(dissect(http_capture))
    get = entries[0]
    assert get["request"]["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert get["request"]["queryString"]["token"] == SECRET
    assert SECRET in entries[1]["request"]["postData"]["text"]


def test_user_agent_filter_drops_probes(http_capture: Path) -> None:
    entries = http_entries(dissect(http_capture))
    probes = UserAgentFilter(["kube-probe", "^prometheus"])
    assert [probes.ignores(entry) for entry in entries] == [True, False, False, False]
    assert not any(UserAgentFilter([]).ignores(entry) for entry in entries)


def test_base64_bodies_and_names_that_only_look_alike() -> None:
    redactor = Redactor()
    body = base64.b64encode(b'{"secret": "x", "keyword": "y"}').decode()
    entry = {
        "id": "e",
        "request": {
            "method": "POST",
            "headers": {":authority": "a.svc", "Keep-Alive": "5", "X-Auth": "t"},
            "postData": {"mimeType": "application/json", "text": body, "encoding": "base64"},
        },
        "response": None,
    }
    redacted = redactor(entry)
    assert redacted["request"]["headers"] == {
        ":authority": "a.svc",
        "Keep-Alive": "5",
        "X-Auth": REDACTED,
    }
    decoded = json.loads(base64.b64decode(redacted["request"]["postData"]["text"]))
    assert decoded == {"secret": REDACTED, "keyword": "y"}
    assert entry["request"]["headers"]["X-Auth"] == "t"  # the original is left alone
    custom = Redactor(["^theme$"])
    assert custom({"request": {"headers": {"Theme": "dark", "Token": "t"}}})["request"] == {
        "headers": {"Theme": REDACTED, "Token": "t"}
    }


def test_redis_key_stays(tmp_path: Path) -> None:
    """A protocol's own fields are not names to redact: a Redis key called ``token`` stays."""
    pcap = tmp_path / "redis.pcap"
    with redis_server() as server, record(pcap, f"tcp port {server.port}"):
        send_commands(server.port, [["SET", "password", SECRET]])
    entries = [e for e in dissect(pcap, "--redact") if e["protocol"]["name"] == "redis"]
    assert entries, "the Redis plugin (examples/mizu-redis) must be installed"
    assert entries[0]["request"]["key"] == "password"
    assert SECRET in json.dumps(entries[0]["request"])
    assert "OK" in json.dumps(entries[0]["response"])


_SHAPE_PIECES = st.sampled_from(
    [
        "Bearer ",
        "basic ",
        "Token\t",
        "eyJ",
        "abcd",
        ".",
        "AKIA",
        "ASIA",
        "0123456789ABCDEF",
        "sk_live_",
        "ghp_",
        "github_pat_",
        "glpat-",
        "xoxb-",
        "AIza",
        "-----BEGIN RSA",
        " PRIVATE KEY-----",
        "-----END RSA",
        "\n",
        " ",
        "é",
        "\u00a0",
        "_",
        "-",
        "=",
        "x" * 40,
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_SHAPE_PIECES, max_size=30))
def test_long_texts_are_scanned_for_the_same_shapes_as_short_ones(pieces: list[str]) -> None:
    """Bodies are scanned by RE2, short values by re: both must redact the same spans."""
    text = "".join(pieces)
    assert _SECRET_VALUE_SCAN.sub(REDACTED, text) == SECRET_VALUE.sub(REDACTED, text)
