"""AMQP frames whose size field claims gigabytes are taken for garbage, not waited for nor
allocated (the plugin's mutated traffic is in test_fuzz_plugins.py)."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator

from mizu_amqp import plugin
from pamqp import commands, frame, header
from pamqp.body import ContentBody

from mizu_core import Direction
from mizu_core.testkit import HookOutputs, run_bytes

C, S = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT


# -- size caps -------------------------------------------------------------------------------------


def method(channel: int, value: object) -> bytes:
    return frame.marshal(value, channel)


def publish(key: str, body: bytes) -> list[bytes]:
    return [
        method(1, commands.Basic.Publish(exchange="x", routing_key=key)),
        frame.marshal(header.ContentHeader(0, len(body)), 1),
        frame.marshal(ContentBody(body), 1),
    ]


def published_keys(outputs: HookOutputs) -> list[str]:
    return [
        entry["request"]["routingKey"]
        for entry in outputs.entries
        if entry["request"]["method"] == "basic.publish"
    ]


def run_traced(chunks: Iterator[tuple[Direction, bytes]], **settings: int) -> HookOutputs:
    """Run the plugin; fail when Python allocated more than 8 MB at any point."""
    tracemalloc.start()
    try:
        outputs = run_bytes(chunks, plugin, settings=settings)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outputs.stats["plugin_errors"] == {}
    assert peak < 8 << 20, f"peak of traced memory {peak / 1e6:.1f} MB"
    return outputs


def four_gigabyte_claims() -> Iterator[tuple[Direction, bytes]]:
    """No handshake (a capture caught mid-connection): a publish whose body frame claims
    4 GB, then 4 MB of what follows, then a publish that checks out."""
    first, content_header, _body = publish("before", b"b" * 100)
    yield C, first + content_header
    yield C, b"\x03\x00\x01\xff\xff\xff\xf0"  # a body frame of 0xFFFFFFF0 octets
    for _ in range(4):
        yield C, b"\x00" * (1 << 20)
    yield C, b"".join(publish("after", b"ok"))
    yield C, b"\x01\x00\x01\xff\xff\xff\xff"  # a method frame of 4 GB
    yield C, b"\x00" * (1 << 20)
    yield C, b"".join(publish("last", b"ok"))


def test_a_frame_claiming_4_gigabytes_is_garbage_not_a_wait() -> None:
    outputs = run_traced(four_gigabyte_claims())
    assert published_keys(outputs) == ["before", "after", "last"]
    before = outputs.entries[0]["request"]
    assert before["incomplete"] is True and before["bodySize"] == 100
    counters = outputs.stats["plugin_counters"]["plugin"]
    assert counters["lost_sync"] == 2
    assert counters["bytes_skipped"] > 5 << 20
    assert counters["resyncs"] == 2


def test_a_frame_larger_than_the_negotiated_frame_max_is_garbage() -> None:
    handshake = [
        (C, b"AMQP\x00\x00\x09\x01"),
        (S, method(0, commands.Connection.Tune(2047, 4096, 60))),
        (C, method(0, commands.Connection.TuneOk(2047, 4096, 60))),
    ]
    oversized = publish("oversized", b"b" * 5000)  # one body frame past frame-max 4096
    chunks = [*handshake, (C, b"".join(oversized + publish("fits", b"ok")))]
    outputs = run_traced(iter(chunks))
    assert published_keys(outputs) == ["oversized", "fits"]
    assert outputs.entries[-2]["request"]["incomplete"] is True


def test_the_configured_limit_applies_without_a_negotiation() -> None:
    chunks = [(C, b"".join(publish("big", b"b" * 5000) + publish("small", b"ok")))]
    limited = run_traced(iter(chunks), **{"max-frame-size": 4096})
    assert [e["request"].get("incomplete", False) for e in limited.entries] == [True, False]
    unlimited = run_traced(iter(chunks))
    assert [e["request"]["bodySize"] for e in unlimited.entries] == [5000, 2]
