"""The decoding shortcuts give what the plain reading gives: merged fixed-width fields cut short,
frames cut from whole segments, text shown without a per-character test, varints in line."""

from __future__ import annotations

import base64
import struct
from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.record.memory_records import MemoryRecordsBuilder
from mizu_kafka import plugin
from mizu_kafka.codec import Reader
from mizu_kafka.framing import FrameSplitter
from mizu_kafka.protocol import Settings, decode_request, error_codes
from mizu_kafka.records import RecordBudget, decode_records, int32_at, render

from mizu_core import Direction
from mizu_core.testkit import HookOutputs, run_bytes
from tests.fuzz.mutations import Chunks, mutated
from tests.fuzz.targets import TARGETS, kafka_streams
from tests.support.fuzzing import fuzz_settings

C2S, S2C = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT
FETCH_V4_FIXED = {"replicaId": 4, "maxWaitMs": 4, "minBytes": 4, "maxBytes": 4, "isolationLevel": 1}
"""Fetch v4's leading fields, read with one merged struct: names and widths in wire order."""


def fetch_v4_body() -> bytes:
    fixed = struct.pack(">iiiib", -1, 500, 1, 1 << 20, 0)
    topic = struct.pack(">i", 1) + struct.pack(">h", 1) + b"t"
    partition = struct.pack(">iiqi", 1, 0, 42, 65536)
    return fixed + topic + partition


def request_body(api_key: int, version: int, body: bytes) -> bytes:
    return struct.pack(">hhih", api_key, version, 7, 1) + b"c" + body


def test_cut_inside_merged_fields_keeps_the_whole_ones() -> None:
    full = decode_request(request_body(1, 4, fetch_v4_body()), False, Settings())
    assert "decodeError" not in full
    assert full["payload"]["topics"] == [
        {
            "topic": "t",
            "partitions": [{"partition": 0, "fetchOffset": 42, "partitionMaxBytes": 65536}],
        }
    ]
    expected_names = list(FETCH_V4_FIXED)
    assert list(full["payload"])[: len(expected_names)] == expected_names
    widths = list(FETCH_V4_FIXED.values())
    for cut in range(sum(widths) + 1):
        body = fetch_v4_body()[:cut]
        data = decode_request(request_body(1, 4, body), True, Settings())
        whole = sum(1 for end in _ends(widths) if end <= cut)
        assert list(data["payload"]) == expected_names[:whole]
        assert data["payload"] == {name: full["payload"][name] for name in expected_names[:whole]}
        if cut < len(fetch_v4_body()):
            assert data["decodeError"] == "body cut at the capture cap"


def _ends(widths: list[int]) -> list[int]:
    ends, total = [], 0
    for width in widths:
        total += width
        ends.append(total)
    return ends


def frames_wire(sizes: list[int]) -> tuple[bytes, list[bytes]]:
    bodies = [bytes([index % 251]) * size for index, size in enumerate(sizes)]
    return b"".join(struct.pack(">i", len(body)) + body for body in bodies), bodies


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 300), min_size=1, max_size=8),
    st.lists(st.integers(1, 200), max_size=12),
    st.integers(16, 400),
)
def test_frames_are_the_same_however_the_stream_is_cut(
    sizes: list[int], cuts: list[int], cap: int
) -> None:
    wire, bodies = frames_wire(sizes)
    splitter = FrameSplitter(cap, lambda data: (0, False), Counter())
    frames = []
    position = 0
    for length in [*cuts, len(wire)]:
        chunk = wire[position : position + length]
        position += len(chunk)
        frames += splitter.push(chunk, float(position))
    assert [frame.size for frame in frames] == sizes
    for frame, body in zip(frames, bodies, strict=True):
        # A frame that arrived whole is kept whole; one that had to wait is cut at the cap.
        assert body.startswith(frame.body)
        assert len(frame.body) == len(body) or len(frame.body) == cap


def reference_render(data: bytes | None, cap: int) -> tuple[str | None, bool]:
    """The rule spelled out: text when the first ``cap`` bytes are UTF-8 (a character cut by the
    cap given up) without non-printable characters but tab, line feed and carriage return."""
    if data is None:
        return None, False
    shown = data[:cap]
    try:
        text = shown.decode("utf-8")
    except UnicodeDecodeError as error:
        if len(data) > cap and error.start >= len(shown) - 3:
            text = shown[: error.start].decode("utf-8")
        else:
            return base64.b64encode(shown).decode("ascii"), True
    if all(c.isprintable() or c in "\t\n\r" for c in text):
        return text, False
    return base64.b64encode(shown).decode("ascii"), True


ascii_or_text = st.one_of(
    st.binary(max_size=80),
    st.text(max_size=40).map(str.encode),
    st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=80).map(str.encode),
)


@settings(max_examples=500, deadline=None)
@given(st.none() | ascii_or_text, st.integers(1, 64))
def test_render_follows_the_rule(data: bytes | None, cap: int) -> None:
    assert render(data, cap) == reference_render(data, cap)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.none() | st.binary(max_size=20),
            st.binary(min_size=0, max_size=9000),
            st.integers(-(2**40), 2**40),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_records_with_long_varints_decode(records: list[tuple[bytes | None, bytes, int]]) -> None:
    """Values over 8191 octets and far-off timestamps take the varints of three or more
    octets, past the in-line one- and two-octet readings."""
    builder = MemoryRecordsBuilder(2, 0, batch_size=1 << 22)
    base = 1_700_000_000_000
    for key, value, delta in records:
        builder.append(base + delta, key, value, [("h", value[:3])])
    builder.close()
    decoded = decode_records(bytes(builder.buffer()), RecordBudget(value_bytes=1 << 20))
    assert decoded.count == len(records)
    assert [record["offset"] for record in decoded.records] == list(range(len(records)))
    for record, (key, value, delta) in zip(decoded.records, records, strict=True):
        assert record["timestamp"] == base + delta
        assert record["key"] == reference_render(key, 1 << 20)[0]
        assert record["value"] == reference_render(value, 1 << 20)[0]


def reference_error_code(payload: Any) -> int:
    """A response's status spelled out: the first non-zero code of the payload's walk."""
    return next((code for _, code in error_codes(payload) if code), 0)


def check_error_codes(outputs: HookOutputs) -> None:
    for entry in outputs.entries:
        response = entry["response"]
        if response and "errorCode" in response:
            assert response["errorCode"] == reference_error_code(response["payload"])


def test_status_is_the_first_error_code_of_the_captures() -> None:
    for client, server in kafka_streams():
        check_error_codes(run_bytes([(C2S, client), (S2C, server)], plugin))


@fuzz_settings
@given(chunks=mutated(kafka_streams, TARGETS["kafka"].size_claims))
def test_status_is_the_first_error_code_of_mutated_traffic(chunks: Chunks) -> None:
    """Error codes noted while decoding, cut short or not, are the ones the payload shows."""
    check_error_codes(run_bytes(chunks, plugin))


@settings(max_examples=500, deadline=None)
@given(st.integers(-(2**63), 2**63 - 1), st.integers(-(2**31), 2**31 - 1))
def test_integers_read_by_halves_are_what_struct_reads(int64: int, int32: int) -> None:
    # Both are read by shifting octets, the sign applied to the high half before the halves
    # meet (so that -1 and its kin stay small ints in the compiled build).
    assert Reader(struct.pack(">q", int64)).int64() == int64
    assert int32_at(b"\xff" + struct.pack(">i", int32), 1) == int32
