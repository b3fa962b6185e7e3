"""Mutated real HTTP traffic (HTTP/1, WebSocket, HTTP/2, gRPC; see tests/fuzz/mutations.py)
fed to the HTTP plugin: no exception may escape it; and a 2 GB chunked body streamed through
it stays within its cap."""

from __future__ import annotations

import functools
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from mizu_http import plugin

from mizu_core import Direction
from mizu_core.testkit import run_bytes
from tests.fuzz.mutations import Chunks, Streams, capture_streams, mutated
from tests.support.fuzzing import fuzz_settings

DATA = Path(__file__).resolve().parents[1] / "data" / "http"
CAPTURES = (
    "mizu-http1.pcap",
    "zeek_pipelined-requests.pcap",
    "sv_http-multipart-post_chunked_ipv6.pcap",
    "mizu-websocket.pcap",
    "mizu-h2c.pcap",
    "sv_http2-continuation.pcap",
    "mizu-grpc.pcap",
)

SIZE_CLAIMS = (0, 1, 5, 0x3FFF, 0x4000, 1 << 20, 0xFFFFFF, 0x7FFFFFFF, 0xFFFFFFFF)
"""What an overwritten length field may claim: HTTP/2 frame lengths (24 bits, 16 KiB by
default), gRPC message prefixes and WebSocket extended lengths (up to 32 bits)."""


@functools.cache
def streams() -> Streams:
    return capture_streams(DATA / name for name in CAPTURES)


def test_every_capture_gives_connections() -> None:
    assert len(streams()) >= len(CAPTURES)


@fuzz_settings
@given(chunks=mutated(streams, SIZE_CLAIMS))
def test_mutated_traffic_raises_nothing(chunks: Chunks) -> None:
    outputs = run_bytes(chunks, plugin)
    assert outputs.stats["plugin_errors"] == {}


@fuzz_settings
@given(chunks=mutated(streams, SIZE_CLAIMS), max_body=st.integers(0, 4096))
def test_mutated_traffic_under_a_small_body_cap_raises_nothing(
    chunks: Chunks, max_body: int
) -> None:
    outputs = run_bytes(chunks, plugin, settings={"max-body-size": max_body})
    assert outputs.stats["plugin_errors"] == {}


# -- memory bound ----------------------------------------------------------------------------------

BODY_SIZE = 2 << 30
CHUNK = 1 << 20
CAP = 1 << 20


def two_gigabyte_upload() -> Iterator[tuple[Direction, bytes]]:
    """A chunked POST of 2 GiB and its answer, produced lazily from one 1 MiB block."""
    client, server = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT
    block = b"m" * CHUNK
    size_line = b"%x\r\n" % CHUNK
    yield client, b"POST /upload HTTP/1.1\r\nHost: big\r\nTransfer-Encoding: chunked\r\n\r\n"
    for _ in range(BODY_SIZE // CHUNK):
        yield client, size_line
        yield client, block
        yield client, b"\r\n"
    yield client, b"0\r\n\r\n"
    yield server, b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"


def test_a_two_gigabyte_chunked_body_is_cut_at_the_cap_in_bounded_memory() -> None:
    tracemalloc.start()
    try:
        outputs = run_bytes(two_gigabyte_upload(), plugin, settings={"max-body-size": CAP})
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outputs.stats["plugin_errors"] == {}
    (entry,) = outputs.entries
    post_data = entry["request"]["postData"]
    assert post_data["truncated"] is True
    assert post_data["size"] == CAP
    assert len(post_data["text"]) == CAP
    assert entry["request"]["bodySize"] > BODY_SIZE  # the chunk framing counts on the wire
    assert entry["response"]["status"] == 201
    # The body cap, the block being fed, its slice and the entry's text: a few MiB, not 2 GiB.
    assert peak < 32 << 20, f"peak of traced memory {peak / 1e6:.1f} MB"
