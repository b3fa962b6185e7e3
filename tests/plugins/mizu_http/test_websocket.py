"""WebSocket frames fed as bytes: masking, fragmentation, deflate, the body cap."""

from __future__ import annotations

import zlib

from mizu_http import plugin
from mizu_http.websocket import Deflate, unmask

from mizu_core import Direction
from mizu_core.testkit import run_bytes

C, S = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT
UPGRADE = (
    b"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
KEY = b"\x0a\x0b\x0c\x0d"


def switching(extensions: str = "") -> bytes:
    extra = f"Sec-WebSocket-Extensions: {extensions}\r\n" if extensions else ""
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"{extra}\r\n"
    ).encode()


def masked(first: int, payload: bytes) -> bytes:
    length = len(payload)
    header = (
        bytes([first, 0x80 | length])
        if length < 126
        else bytes([first, 0xFE]) + (length.to_bytes(2, "big"))
    )
    return header + KEY + unmask(payload, KEY, 0)


def test_unmask_from_any_offset() -> None:
    payload = b"hello websocket"
    wire = unmask(payload, KEY, 0)
    assert unmask(wire[:5], KEY, 0) + unmask(wire[5:], KEY, 5) == payload


def test_deflate_negotiation() -> None:
    assert Deflate.negotiated("permessage-deflate; client_no_context_takeover") == Deflate(
        True, False
    )
    assert Deflate.negotiated("x-webkit-deflate-frame") is None


def test_messages_fed_one_byte_at_a_time() -> None:
    frames = masked(0x01, b"frag") + masked(0x89, b"p") + masked(0x80, b"ment")
    server = switching() + bytes([0x82, 3]) + b"\x01\x02\x03"
    chunks = [(C, UPGRADE), (S, server)] + [(C, frames[i : i + 1]) for i in range(len(frames))]
    outputs = run_bytes(chunks, plugin)
    messages = [entry["request"] for entry in outputs.entries[1:]]
    assert [(m["method"], m["payload"]) for m in messages] == [
        ("binary", "AQID"),
        ("ping", "p"),
        ("text", "fragment"),
    ]
    assert all(m["path"] == "/chat" for m in messages)


def test_permessage_deflate_with_context_takeover() -> None:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    first = compressor.compress(b"repeat repeat") + compressor.flush(zlib.Z_SYNC_FLUSH)
    second = compressor.compress(b"repeat repeat") + compressor.flush(zlib.Z_SYNC_FLUSH)
    frames = masked(0xC1, first[:-4]) + masked(0xC1, second[:-4])
    chunks = [(C, UPGRADE), (S, switching("permessage-deflate")), (C, frames)]
    outputs = run_bytes(chunks, plugin)
    assert [e["request"]["payload"] for e in outputs.entries[1:]] == ["repeat repeat"] * 2


def test_large_message_is_capped() -> None:
    chunks = [(C, UPGRADE), (S, switching()), (C, masked(0x81, b"y" * 300))]
    outputs = run_bytes(chunks, plugin, {"max-body-size": 100})
    message = outputs.entries[1]["request"]
    assert (len(message["payload"]), message["size"], message["truncated"]) == (100, 300, True)
