"""More real clients, recorded on loopback: curl, requests, http.client speaking HTTP/1.0, and
grpcio (client streaming, metadata, a 1 MB message). Every pair must match what its client saw:
status, body (length and hash), and the headers the client reports."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from http_peers import BIG_GRPC_TEXT, RECORD_FLUSH, build_app, grpc_server, hello, serving

from mizu_core.testkit import HookOutputs, run_capture
from tests.server.test_har_schema import schema_errors
from tests.support.tcpdump import record


@dataclass
class Seen:
    """One exchange as its client reported it."""

    method: str
    target: str
    status: int
    body: bytes
    """The body as the client handed it over (content encodings undone when it undoes them)."""
    headers: list[tuple[str, str]]
    version: str = "HTTP/1.1"


def merged(headers: Iterable[tuple[str, Any]]) -> dict[str, str]:
    """Headers by lower-cased name, repeated names joined with ", " (as requests shows them)."""
    result: dict[str, list[str]] = {}
    for name, value in headers:
        values = value if isinstance(value, list) else [value]
        result.setdefault(name.lower(), []).extend(values)
    return {name: ", ".join(values) for name, values in result.items()}


def curl(port: int, target: str, *options: str) -> Seen:
    with_headers = subprocess.run(
        ["curl", "-s", "-D", "-", "-o", "-", *options, f"http://127.0.0.1:{port}{target}"],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    head, _, body = with_headers.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = [(name, value.strip()) for name, _, value in (line.partition(":") for line in lines)]
    method = "POST" if "--data-binary" in options else "GET"
    return Seen(method, target, int(status_line.split()[1]), body, headers)


def curl_calls(port: int) -> list[Seen]:
    return [
        curl(port, "/json?client=curl"),
        curl(port, "/chunked?client=curl"),
        curl(port, "/coded/gzip?client=curl", "--compressed"),
        curl(port, "/echo?client=curl", "--data-binary", "curl body \x01\x02"),
    ]


def requests_calls(port: int) -> list[Seen]:
    seen = []
    with requests.Session() as session:  # one keep-alive connection
        for method, target, body in (
            ("GET", "/json?client=requests", None),
            ("GET", "/coded/br?client=requests", None),
            ("GET", "/chunked?client=requests", None),
            ("GET", "/empty?client=requests", None),
            ("HEAD", "/json?client=requests", None),
            ("POST", "/echo?client=requests", b"\x00requests\xff" * 100),
        ):
            response = session.request(
                method, f"http://127.0.0.1:{port}{target}", data=body, timeout=10
            )
            seen.append(
                Seen(
                    method,
                    target,
                    response.status_code,
                    response.content,
                    [*response.headers.items()],
                )
            )
    return seen


class Http10Connection(http.client.HTTPConnection):
    """http.client speaking HTTP/1.0: a connection per request, bodies until the close."""

    _http_vsn = 10
    _http_vsn_str = "HTTP/1.0"


def http10_calls(port: int) -> list[Seen]:
    seen = []
    for target in ("/json?client=http10", "/stream?client=http10"):
        connection = Http10Connection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", target)
            response = connection.getresponse()
            body = response.read()
            version = f"HTTP/1.{response.version - 10}"
            seen.append(Seen("GET", target, response.status, body, response.getheaders(), version))
        finally:
            connection.close()
    return seen


@pytest.fixture(scope="module")
def http1_capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Seen], Path]:
    capture = tmp_path_factory.mktemp("clients") / "clients.pcap"
    with serving(build_app()) as server, record(capture, f"tcp port {server.port}"):
        seen = curl_calls(server.port) + requests_calls(server.port) + http10_calls(server.port)
        time.sleep(RECORD_FLUSH)
    return seen, capture


@pytest.fixture(scope="module")
def http1_clients(http1_capture: tuple[list[Seen], Path]) -> tuple[list[Seen], HookOutputs]:
    seen, capture = http1_capture
    return seen, run_capture(capture, "http")


def body_bytes(body: dict[str, Any]) -> bytes:
    if body.get("encoding") == "base64":
        return base64.b64decode(body["text"])
    return str(body["text"]).encode()


def target_of(request: dict[str, Any]) -> str:
    url = urlsplit(request["url"])
    return f"{url.path}?{url.query}" if url.query else url.path


def test_every_pair_matches_what_its_client_saw(
    http1_clients: tuple[list[Seen], HookOutputs],
) -> None:
    seen, outputs = http1_clients
    assert outputs.stats["plugin_errors"] == {}
    entries = {
        (entry["request"]["method"], target_of(entry["request"])): entry
        for entry in outputs.entries
    }
    assert len(entries) == len(outputs.entries) == len(seen) == 12
    for exchange in seen:
        entry = entries[(exchange.method, exchange.target)]
        response = entry["response"]
        assert response["status"] == exchange.status, exchange.target
        body = body_bytes(response["content"])
        assert response["content"]["size"] == len(exchange.body), exchange.target
        assert hashlib.sha256(body).digest() == hashlib.sha256(exchange.body).digest()
        assert merged(response["headers"].items()) == merged(exchange.headers), exchange.target
        assert response["httpVersion"] == exchange.version


def test_request_bodies_versions_and_framings(
    http1_clients: tuple[list[Seen], HookOutputs],
) -> None:
    seen, outputs = http1_clients
    assert [exchange.status for exchange in seen] == [200] * 7 + [204] + [200] * 4
    by_target = {target_of(entry["request"]): entry for entry in outputs.entries}
    assert (
        body_bytes(by_target["/echo?client=curl"]["request"]["postData"]) == b"curl body \x01\x02"
    )
    posted = by_target["/echo?client=requests"]["request"]
    assert body_bytes(posted["postData"]) == b"\x00requests\xff" * 100
    assert posted["postData"]["encoding"] == "base64"
    for target in ("/json?client=http10", "/stream?client=http10"):
        entry = by_target[target]
        assert entry["request"]["httpVersion"] == "HTTP/1.0"
        assert entry["protocol"]["version"] == "1.0"
    close_delimited = by_target["/stream?client=http10"]["response"]
    assert {"content-length", "transfer-encoding"}.isdisjoint(
        map(str.lower, close_delimited["headers"])
    )
    assert close_delimited["content"]["text"] == "part 0\npart 1\npart 2\n"
    chunked = by_target["/chunked?client=requests"]["response"]
    assert chunked["headers"]["Transfer-Encoding"] == "chunked"


def test_dissect_har_output_of_the_capture_validates(
    http1_capture: tuple[list[Seen], Path],
) -> None:
    seen, capture = http1_capture
    output = subprocess.run(
        [sys.executable, "-m", "mizu_cli", "dissect", str(capture), "-o", "har"],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout
    document = json.loads(output)
    assert len(document["log"]["entries"]) == len(seen)
    assert schema_errors(document) == []


# -- gRPC ------------------------------------------------------------------------------------------


@dataclass
class SeenCall:
    path: str
    code: int
    replies: list[bytes]
    initial: dict[str, str]
    trailing: dict[str, str]


@pytest.fixture(scope="module")
def grpc_clients(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[SeenCall], HookOutputs]:
    import grpc

    def custom(metadata: Any) -> dict[str, str]:
        return {key: value for key, value in metadata if key.startswith("x-")}

    capture = tmp_path_factory.mktemp("grpc-clients") / "grpc.pcap"
    server, port = grpc_server()
    calls: list[SeenCall] = []
    try:
        with (
            record(capture, f"tcp port {port}"),
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            for path, call in (
                (
                    "/test.Greeter/ClientStream",
                    lambda method: method.with_call(
                        iter([hello("a"), hello("b"), hello("c")]), timeout=10
                    ),
                ),
                (
                    "/test.Greeter/Metadata",
                    lambda method: method.with_call(
                        hello("m"), metadata=(("x-trace", "t-1"),), timeout=10
                    ),
                ),
                ("/test.Greeter/Big", lambda method: method.with_call(hello("big"), timeout=30)),
            ):
                kind = channel.stream_unary if "Stream" in path else channel.unary_unary
                reply, state = call(kind(path))
                calls.append(
                    SeenCall(
                        path,
                        state.code().value[0],
                        [reply],
                        custom(state.initial_metadata()),
                        custom(state.trailing_metadata()),
                    )
                )
            time.sleep(RECORD_FLUSH)
    finally:
        server.stop(None)
    return calls, run_capture(capture, "http")


def test_grpc_calls_match_what_the_client_saw(
    grpc_clients: tuple[list[SeenCall], HookOutputs],
) -> None:
    calls, outputs = grpc_clients
    assert outputs.stats["plugin_errors"] == {}
    entries = {entry["request"]["path"]: entry for entry in outputs.entries}
    assert len(entries) == len(outputs.entries) == len(calls) == 3
    for call in calls:
        response = entries[call.path]["response"]
        assert response["grpcStatus"] == call.code
        assert [message["size"] for message in response["messages"]] == [
            len(reply) for reply in call.replies
        ]
        texts = [message["fields"][0]["value"] for message in response["messages"]]
        assert [hello(text) for text in texts] == call.replies
        for name, value in {**call.initial, **call.trailing}.items():
            assert response["headers"][name] == value


def test_grpc_client_streaming_metadata_and_a_large_message(
    grpc_clients: tuple[list[SeenCall], HookOutputs],
) -> None:
    _, outputs = grpc_clients
    entries = {entry["request"]["path"]: entry for entry in outputs.entries}
    streamed = entries["/test.Greeter/ClientStream"]
    assert [m["fields"][0]["value"] for m in streamed["request"]["messages"]] == ["a", "b", "c"]
    assert entries["/test.Greeter/Metadata"]["request"]["headers"]["x-trace"] == "t-1"
    big = entries["/test.Greeter/Big"]["response"]
    assert big["bodySize"] > BIG_GRPC_TEXT
    assert "truncated" not in big["messages"][0]
    assert big["messages"][0]["fields"][0]["value"] == "b" * BIG_GRPC_TEXT
