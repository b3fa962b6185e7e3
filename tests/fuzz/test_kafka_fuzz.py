"""Kafka length fields claiming gigabytes allocate nothing big (the plugin's mutated traffic
is in test_fuzz_plugins.py)."""

from __future__ import annotations

import struct
import tracemalloc
from collections.abc import Iterator

from mizu_kafka import plugin

from mizu_core import Direction
from mizu_core.testkit import HookOutputs, run_bytes

C, S = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT


# -- size caps -------------------------------------------------------------------------------------


def api_versions_request(correlation_id: int) -> bytes:
    """ApiVersions v0 from client "c": a whole request frame."""
    body = struct.pack(">hhih", 18, 0, correlation_id, 1) + b"c"
    return struct.pack(">i", len(body)) + body


def run_traced(chunks: Iterator[tuple[Direction, bytes]], limit: int) -> HookOutputs:
    """Run the plugin; fail when Python allocated more than ``limit`` bytes at any point."""
    tracemalloc.start()
    try:
        outputs = run_bytes(chunks, plugin, settings={"max-frame-bytes": 1 << 20})
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outputs.stats["plugin_errors"] == {}
    assert peak < limit, f"peak of traced memory {peak / 1e6:.1f} MB"
    return outputs


def two_gigabyte_claims() -> Iterator[tuple[Direction, bytes]]:
    """A frame whose size claims 2 GB (past any Kafka frame: garbage), 4 MB of what follows,
    a request that checks out, then a frame of 1 GB of which 16 MB arrive (kept up to the
    1 MiB cap, the rest counted), then the end of the connection."""
    yield C, api_versions_request(1)
    yield C, struct.pack(">i", 0x7FFFFFFF) + b"\x00\x12\x00\x00"
    for _ in range(4):
        yield C, b"\xff" * (1 << 20)
    yield C, api_versions_request(2)
    yield C, struct.pack(">ihhih", 1 << 30, 18, 0, 3, 1) + b"c"
    for _ in range(16):
        yield C, b"\x00" * (1 << 20)


def test_a_length_of_2_gigabytes_allocates_nothing_big() -> None:
    outputs = run_traced(two_gigabyte_claims(), limit=12 << 20)
    requests = [entry["request"] for entry in outputs.entries]
    assert [request["correlationId"] for request in requests] == [1, 2]
    counters = outputs.stats["plugin_counters"]["plugin"]
    assert counters["resyncs"] >= 1
    assert counters["bytes_skipped"] > 4 << 20
    assert counters["dropped_bytes"] > 15 << 20
