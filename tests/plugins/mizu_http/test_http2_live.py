"""HTTP/2 and gRPC between real peers on loopback (hypercorn + httpx/curl, grpcio), checked
against tshark stream by stream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from http_peers import ASSET, check_h2_against_tshark, record_grpc, record_h2c

from mizu_core.testkit import HookOutputs, run_capture


@pytest.fixture(scope="module")
def h2c(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, HookOutputs]:
    capture = record_h2c(tmp_path_factory.mktemp("h2c") / "h2c.pcap")
    return capture, run_capture(capture, "http")


@pytest.fixture(scope="module")
def grpc_calls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, HookOutputs]:
    capture = record_grpc(tmp_path_factory.mktemp("grpc") / "grpc.pcap")
    return capture, run_capture(capture, "http")


def test_h2c_streams_match_tshark(h2c: tuple[Path, HookOutputs]) -> None:
    capture, outputs = h2c
    assert check_h2_against_tshark(capture, outputs.entries) == 4
    assert outputs.stats["plugin_errors"] == {}


def test_h2c_prior_knowledge_and_upgrade(h2c: tuple[Path, HookOutputs]) -> None:
    _, outputs = h2c
    summary = [
        (
            entry["protocol"]["abbr"],
            entry["request"]["method"],
            entry["request"]["path"],
            entry["response"]["status"],
        )
        for entry in outputs.entries
    ]
    assert summary == [
        ("HTTP/2", "GET", "/json", 200),
        ("HTTP/2", "GET", "/gzip", 200),
        ("HTTP/2", "POST", "/echo", 200),
        ("HTTP", "GET", "/json", 101),
        ("HTTP/2", "GET", "/json", 200),
    ]
    first, gzipped, echoed = outputs.entries[:3]
    assert first["request"]["queryString"] == {"q": "1"}
    assert first["request"]["cookies"] == {"a": "1", "b": "2"}
    assert first["request"]["headers"][":authority"].startswith("127.0.0.1:")
    assert gzipped["response"]["content"]["text"] == ASSET.decode()
    assert gzipped["response"]["bodySize"] < len(ASSET)
    assert echoed["request"]["postData"]["text"] == "h2 body " * 500
    assert [entry["request"]["streamId"] for entry in outputs.entries[:3]] == [1, 3, 5]


def test_grpc_calls_match_tshark(grpc_calls: tuple[Path, HookOutputs]) -> None:
    capture, outputs = grpc_calls
    assert check_h2_against_tshark(capture, outputs.entries) == 5


def test_grpc_messages_statuses_and_compression(grpc_calls: tuple[Path, HookOutputs]) -> None:
    _, outputs = grpc_calls
    assert all(entry["protocol"]["abbr"] == "gRPC" for entry in outputs.entries)
    unary, zipped, server_stream, bidi, failing = outputs.entries

    def values(messages: list[dict[str, Any]]) -> list[str]:
        return [message["fields"][0]["value"] for message in messages]

    assert unary["request"]["path"] == "/test.Greeter/Unary"
    assert values(unary["response"]["messages"]) == ["hi ada"]
    assert zipped["request"]["messages"][0]["compressed"] is True
    assert values(zipped["request"]["messages"]) == ["zip " * 50]
    assert values(server_stream["response"]["messages"]) == ["part 0", "part 1", "part 2"]
    assert values(bidi["request"]["messages"]) == ["one", "two"]
    assert values(bidi["response"]["messages"]) == ["echo one", "echo two"]
    assert [entry["response"]["grpcStatus"] for entry in outputs.entries] == [0, 0, 0, 0, 5]
    assert failing["response"]["grpcMessage"] == "no such thing"
    assert failing["response"]["headers"]["grpc-status"] == "5"


def test_grpc_rows_show_the_grpc_status(grpc_calls: tuple[Path, HookOutputs]) -> None:
    _, outputs = grpc_calls
    row = outputs.rows[-1]
    assert row["summary"] == "/test.Greeter/Fail"
    assert row["status"] == row["statusName"] == "NOT_FOUND"
    assert row["statusQuery"] == "grpc and response.grpcStatus == 5"
    # the plugin's word, kept on the entry too: a non-OK status fails, OK ones do not
    assert [row["error"] for row in outputs.rows] == [False, False, False, False, True]
    assert [entry["error"] for entry in outputs.entries] == [False, False, False, False, True]
