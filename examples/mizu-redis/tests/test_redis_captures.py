"""Every capture in ``data/`` against its goldens, plus what the goldens must show."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mizu_core.testkit import HookOutputs, run_capture

DATA = Path(__file__).parent / "data"
BULK_LOADING = "zeek_redis_bulk-loading.pcap"
"""A thousand pipelined SETs: checked by :func:`test_bulk_loading`, its goldens would weigh 4 MB."""
CAPTURES = sorted(
    p for p in DATA.iterdir() if p.suffix in (".pcap", ".pcapng") and p.name != BULK_LOADING
)


def entries(name: str) -> list[dict[str, Any]]:
    return run_capture(DATA / name, "redis").entries


def requests(name: str, method: str) -> list[dict[str, Any]]:
    return [e for e in entries(name) if e["request"] and e["request"]["method"] == method]


@pytest.mark.parametrize("capture", CAPTURES, ids=[p.name for p in CAPTURES])
def test_golden(mizu_golden: Any, capture: Path) -> None:
    outputs: HookOutputs = mizu_golden.check(capture, plugin="redis")
    assert outputs.stats["plugin_errors"] == {}


def test_resp2_reply_types_and_errors() -> None:
    by_command = {
        (e["request"]["method"], e["request"].get("key")): e for e in entries("resp2-commands.pcap")
    }
    assert by_command["GET", "greeting"]["response"]["value"] == "hello"
    assert by_command["GET", "missing"]["response"]["type"] == "null"
    assert by_command["LRANGE", "list"]["response"]["value"] == ["a", "b", "c"]
    wrong = by_command["INCRBY", "list"]["response"]
    assert (wrong["type"], wrong["status"]) == ("error", "WRONGTYPE")
    assert {e["protocol"]["version"] for e in by_command.values()} == {"2"}


def test_large_values_are_capped() -> None:
    [set_large] = [
        e for e in requests("resp2-commands.pcap", "SET") if e["request"]["key"] == "large"
    ]
    assert set_large["request"]["truncated"] is True
    assert set_large["request"]["args"][1] == "x" * 1024
    assert set_large["requestSize"] > 5000  # the wire size is the real one
    [get_large] = [
        e for e in requests("resp2-commands.pcap", "GET") if e["request"]["key"] == "large"
    ]
    assert get_large["response"]["value"] == "x" * 1024 and get_large["response"]["truncated"]


def test_pipeline_pairs_in_order() -> None:
    one = [e for e in entries("resp2-commands.pcap") if e["request"].get("key") == "one"]
    assert [(e["request"]["method"], e["response"]["value"]) for e in one] == [
        ("SET", "OK"),
        ("INCRBY", 2),
        ("GET", "2"),
    ]


def test_transaction() -> None:
    [exec_] = requests("resp2-commands.pcap", "EXEC")
    assert exec_["request"]["transaction"] == [
        {"method": "SET", "key": "account"},
        {"method": "DECRBY", "key": "account"},
        {"method": "GET", "key": "account"},
    ]
    assert exec_["response"]["value"] == ["OK", 70, "70"]
    queued = [e for e in entries("resp2-commands.pcap") if e["request"].get("key") == "account"]
    assert {e["response"]["value"] for e in queued[:3]} == {"QUEUED"}


def test_resp3_types() -> None:
    got = {
        (e["request"]["method"], tuple(e["request"]["args"][:1])): e["response"]
        for e in entries("resp3-types.pcap")
        if e["response"]
    }
    assert got["HGETALL", ("user:1",)]["value"] == {"name": "ada", "age": "36"}
    assert got["SMEMBERS", ("tags",)]["type"] == "set"
    assert got["ZSCORE", ("scores",)]["value"] == 1.5
    assert got["GET", ("missing",)] == {"type": "null", "value": None, "status": "OK"}
    assert got["DEBUG PROTOCOL", ("bignum",)]["type"] == "big-number"
    assert got["DEBUG PROTOCOL", ("true",)]["value"] is True
    assert got["DEBUG PROTOCOL", ("verbatim",)]["value"] == "This is a verbatim\nstring"
    assert got["DEBUG PROTOCOL", ("attrib",)]["attributes"] == {"key-popularity": ["key:123", 90]}
    assert {e["protocol"]["version"] for e in entries("resp3-types.pcap")} == {"3"}
    [push] = [e for e in entries("resp3-types.pcap") if e["response"] is None]
    assert push["request"] == {"method": "server-cpu-usage", "args": [42]}
    assert push["src"]["port"] == entries("resp3-types.pcap")[0]["dst"]["port"]


@pytest.mark.parametrize("name", ["pubsub-resp2.pcap", "pubsub-resp3.pcap"])
def test_pubsub(name: str) -> None:
    [subscribe] = requests(name, "SUBSCRIBE")
    assert [c[1] for c in subscribe["response"]["value"]] == ["news", "sport"]
    [unsubscribe] = requests(name, "UNSUBSCRIBE")
    assert sorted(c[1] for c in unsubscribe["response"]["value"]) == ["news", "sport"]
    [message] = requests(name, "message")
    assert message["request"] == {
        "method": "message",
        "key": "news",
        "channel": "news",
        "payload": "hello",
    }
    assert message["response"] is None
    [pmessage] = requests(name, "pmessage")
    assert pmessage["request"]["pattern"] == "weather.*"
    assert pmessage["src"]["port"] == subscribe["dst"]["port"]  # pushed by the server


def test_inline_commands() -> None:
    inline = [e for e in entries("redis-cli.pcap") if e["request"].get("inline")]
    assert [(e["request"]["method"], e["response"]["value"]) for e in inline] == [
        ("PING", "PONG"),
        ("SET", "OK"),
        ("GET", "value"),
        ("DEL", 1),
    ]


def test_bulk_loading() -> None:
    *loaded, end = entries(BULK_LOADING)
    assert end["request"]["method"] == "ECHO"  # redis-cli --pipe's marker of the last reply
    assert end["response"]["value"] == end["request"]["args"][0]
    assert [e["request"]["key"] for e in loaded] == [f"Key{i}" for i in range(1000)]
    assert [e["request"]["args"][1] for e in loaded] == [f"Value{i}" for i in range(1000)]
    assert {e["response"]["value"] for e in loaded} == {"OK"}
