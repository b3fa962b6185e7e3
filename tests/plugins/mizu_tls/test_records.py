"""Records and handshake messages from bytes cut anywhere; bad bytes are errors, never crashes
nor unbounded buffers."""

from __future__ import annotations

import pytest
from mizu_tls.records import (
    MAX_HANDSHAKE_MESSAGE,
    HandshakeReader,
    RecordReader,
    TlsError,
)


def record(content_type: int, payload: bytes, version: int = 0x0303) -> bytes:
    return (
        bytes([content_type])
        + version.to_bytes(2, "big")
        + len(payload).to_bytes(2, "big")
        + payload
    )


def message(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + len(body).to_bytes(3, "big") + body


def test_records_split_anywhere_come_out_whole() -> None:
    stream = record(22, b"a" * 300) + record(23, b"b" * 10) + record(21, b"\x01\x00")
    for cut in range(1, len(stream)):
        reader = RecordReader()
        records = reader.feed(stream[:cut]) + reader.feed(stream[cut:])
        assert [(r.content_type, r.fragment[:1], r.size) for r in records] == [
            (22, b"a", 305),
            (23, b"b", 15),
            (21, b"\x01", 7),
        ]


@pytest.mark.parametrize(
    "header",
    [
        b"\x17\x02\x00\x00\x01",
        b"\x30\x03\x03\x00\x01",
        b"\x17\x03\x09\x00\x01",
        b"\x17\x03\x03\xff\xff",
    ],
)
def test_what_cannot_be_a_record_header_is_an_error(header: bytes) -> None:
    with pytest.raises(TlsError):
        RecordReader().feed(header + b"x")


def test_handshake_messages_split_across_records_and_several_per_record() -> None:
    hello = message(1, b"h" * 1000)
    finished = message(20, b"f" * 12)
    stream = hello + finished + message(4, b"")
    reader = HandshakeReader()
    found = []
    for start in range(0, len(stream), 7):
        found += reader.feed(stream[start : start + 7])
    assert [(kind, len(body)) for kind, body in found] == [(1, 1000), (20, 12), (4, 0)]
    assert not reader.partial


def test_a_message_longer_than_the_bound_is_skipped_not_kept() -> None:
    reader = HandshakeReader()
    huge = message(11, b"")[:1] + (MAX_HANDSHAKE_MESSAGE + 10).to_bytes(3, "big")
    assert reader.feed(huge + b"x" * 5000) == []
    assert len(reader.buffer) == 0
    rest = b"x" * (MAX_HANDSHAKE_MESSAGE + 10 - 5000)
    assert reader.feed(rest + message(20, b"ok")) == [(20, b"ok")]
