"""WebSocket after an aiohttp upgrade (permessage-deflate) and from a raw client (fragments,
a ping between them), checked against tshark."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from http_peers import record_websocket

from mizu_core.testkit import HookOutputs, run_capture
from tests.support.tshark import REASSEMBLE_OUT_OF_ORDER

OPCODE_NAMES = {"1": "text", "2": "binary", "8": "close", "9": "ping", "10": "pong"}


@pytest.fixture(scope="module")
def websocket(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, HookOutputs]:
    capture = record_websocket(tmp_path_factory.mktemp("ws") / "ws.pcap")
    return capture, run_capture(capture, "http")


def _tshark_frames(capture: Path) -> list[dict[str, Any]]:
    output = subprocess.run(
        [
            "tshark",
            "-r",
            str(capture),
            *REASSEMBLE_OUT_OF_ORDER,
            "-Y",
            "websocket",
            "-T",
            "json",
            "--no-duplicate-keys",
        ],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    frames = []
    for packet in json.loads(output):
        layer = packet["_source"]["layers"]["websocket"]
        frames.extend(layer if isinstance(layer, list) else [layer])
    return frames


def test_messages_match_tshark(websocket: tuple[Path, HookOutputs]) -> None:
    capture, outputs = websocket
    frames = _tshark_frames(capture)
    ours = [entry["request"] for entry in outputs.entries if entry["protocol"]["abbr"] == "WS"]
    first_frames = [frame for frame in frames if frame["websocket.opcode"] != "0"]
    assert Counter(message["method"] for message in ours) == Counter(
        OPCODE_NAMES[str(frame["websocket.opcode"])] for frame in first_frames
    )
    whole_texts = {
        frame["websocket.payload"]["websocket.payload.text"]
        for frame in first_frames
        if frame["websocket.opcode"] == "1" and frame["websocket.fin"] == "1"
    }
    assert whole_texts <= {message["payload"] for message in ours}


def test_upgrade_then_messages(websocket: tuple[Path, HookOutputs]) -> None:
    _, outputs = websocket
    entries = outputs.entries
    upgrade = entries[0]
    assert upgrade["protocol"]["abbr"] == "HTTP"
    assert upgrade["response"]["status"] == 101
    messages = [entry for entry in entries if entry["protocol"]["abbr"] == "WS"]
    assert {message["request"]["path"] for message in messages} == {"/ws?room=1", "/ws"}
    compressed = [m["request"] for m in messages if m["request"].get("compressed")]
    assert {m["payload"] for m in compressed} >= {"hello " * 20, "last"}
    binary = next(m["request"] for m in messages if m["request"]["method"] == "binary")
    assert binary == {
        "method": "binary",
        "path": "/ws?room=1",
        "payload": "AAEC/w==",
        "encoding": "base64",
        "size": 4,
        "compressed": True,
    }
    from_server = [m for m in messages if m["src"]["port"] == upgrade["dst"]["port"]]
    assert "echo: fragmented message" in {m["request"]["payload"] for m in from_server}


def test_fragments_join_and_control_frames_interleave(
    websocket: tuple[Path, HookOutputs],
) -> None:
    _, outputs = websocket
    raw = [
        entry["request"]
        for entry in outputs.entries
        if entry["protocol"]["abbr"] == "WS" and entry["request"]["path"] == "/ws"
    ]
    client_methods = [(m["method"], m["payload"]) for m in raw]
    assert ("ping", "mid") in client_methods
    assert ("text", "fragmented message") in client_methods
    close = next(m for m in raw if m["method"] == "close" and m["payload"] == "bye")
    assert close["closeCode"] == 1000
    assert client_methods.index(("ping", "mid")) < client_methods.index(
        ("text", "fragmented message")
    )
