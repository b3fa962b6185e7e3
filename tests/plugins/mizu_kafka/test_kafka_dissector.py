"""The Kafka dissector on crafted bytes: records of every format and codec (encoded by
kafka-python's own builders), unknown APIs, lost requests, caps, gaps and garbage."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.record.memory_records import MemoryRecordsBuilder
from mizu_kafka import plugin, records, views
from mizu_kafka.records import RecordBudget, decode_records

from mizu_core import Direction
from mizu_core.testkit import run_bytes

C2S, S2C = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT
CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def built_records(magic: int, codec: str, count: int = 5) -> bytes:
    builder = MemoryRecordsBuilder(magic, CODECS[codec], batch_size=1 << 20)
    for index in range(count):
        headers = [("h", b"\x00\x01")] if magic == 2 else None
        value = b'{"n": %d, "pad": "%s"}' % (index, b"x" * 50)
        builder.append(1000 + index, f"k{index}".encode(), value, headers)
    builder.close()
    return bytes(builder.buffer())


FORMATS = [(2, codec) for codec in CODECS] + [(1, c) for c in ("none", "gzip", "snappy", "lz4")]
FORMATS += [(0, "none"), (0, "gzip"), (0, "snappy")]
"""zstd exists only in record batches; kafka-python writes magic 0 LZ4 with the old broken
frame checksum of Kafka before 0.10, which no LZ4 library reads."""


@pytest.mark.parametrize(("magic", "codec"), FORMATS)
def test_records_of_every_format_and_codec(magic: int, codec: str) -> None:
    decoded = decode_records(built_records(magic, codec), RecordBudget())
    assert decoded.count == 5
    assert [record["offset"] for record in decoded.records] == [0, 1, 2, 3, 4]
    assert [record["key"] for record in decoded.records] == [f"k{i}" for i in range(5)]
    assert decoded.records[3]["value"] == '{"n": 3, "pad": "%s"}' % ("x" * 50)
    assert decoded.batches[0]["compression"] == codec
    if magic == 2:
        assert decoded.records[0]["headers"] == {"h": "AAE="}
        assert decoded.records[0]["base64Headers"] == ["h"]
    if magic >= 1:
        assert decoded.records[4]["timestamp"] == 1004


def test_header_names_repeat_into_lists_and_are_never_mixed_up() -> None:
    """Header names are remembered by their octets, and forgotten when there are too many:
    each record still shows its own, a repeated name as a list of its values."""
    builder = MemoryRecordsBuilder(2, 0, batch_size=1 << 24)
    names = records.MAX_HEADER_NAMES + 5
    for index in range(2 * names):
        name = f"h{index % names}"
        headers = [(name, b"1"), ("dup", b"a"), ("dup", None), ("dup", b"c"), ("", b"x")]
        builder.append(index, None, b"v", headers)
    builder.close()
    decoded = decode_records(bytes(builder.buffer()), RecordBudget(records=2 * names))
    assert len(decoded.records) == 2 * names
    for index, record in enumerate(decoded.records):
        assert record["headers"] == {f"h{index % names}": "1", "dup": ["a", None, "c"], "": "x"}


def test_record_budget_counts_what_it_does_not_decode() -> None:
    decoded = decode_records(built_records(2, "gzip", count=50), RecordBudget(records=10))
    assert decoded.count == 50
    assert len(decoded.records) == 10


def test_binary_and_long_values_are_capped_base64() -> None:
    builder = MemoryRecordsBuilder(2, 0, batch_size=1 << 20)
    builder.append(0, None, b"\xff\xfe" * 5000, [])
    builder.close()
    (record,) = decode_records(bytes(builder.buffer()), RecordBudget(value_bytes=16)).records
    assert record["key"] is None
    assert record["valueEncoding"] == "base64"
    assert record["valueSize"] == 10000
    assert record["value"] == "//7//v/+//7//v/+//7//g=="


def request(api_key: int, version: int, correlation_id: int, body: bytes) -> bytes:
    header = struct.pack(">hhih", api_key, version, correlation_id, 4) + b"test"
    return struct.pack(">i", len(header) + len(body)) + header + body


def response(correlation_id: int, body: bytes) -> bytes:
    return struct.pack(">ii", len(body) + 4, correlation_id) + body


HEARTBEAT_V3 = struct.pack(">h", 1) + b"g" + struct.pack(">ih", 7, 1) + b"m" + b"\xff\xff"


def test_heartbeat_pair_and_error_name() -> None:
    outputs = run_bytes(
        [
            (C2S, request(12, 3, 5, HEARTBEAT_V3)),
            (S2C, response(5, struct.pack(">ih", 0, 27))),
        ],
        plugin,
    )
    (entry,) = outputs.entries
    assert entry["request"]["payload"] == {
        "groupId": "g",
        "generationId": 7,
        "memberId": "m",
        "groupInstanceId": None,
    }
    assert entry["response"]["errorName"] == "REBALANCE_IN_PROGRESS"
    assert outputs.rows[0]["status"] == "REBALANCE_IN_PROGRESS"
    assert outputs.rows[0]["statusName"] == "REBALANCE_IN_PROGRESS"
    assert outputs.rows[0]["error"] is entry["error"] is True
    assert outputs.rows[0]["summaryQuery"] == 'kafka and request.payload.groupId == "g"'
    error_table = outputs.representations[0]["response"][1]
    assert error_table["title"] == "Error codes"


def test_remembered_row_queries_are_each_entrys_own() -> None:
    # More topics than the rows' queries kept: the kept ones are forgotten, never mixed up.
    topics = views.MAX_REMEMBERED + 7
    for index in range(2 * topics):
        topic = f"t{index % topics}"
        method = "Produce" if index % 2 else "Fetch"
        entry = {
            "request": {"method": method, "payload": {"topicData": [{"name": topic}]}},
            "response": {"errorCode": index % 3},
        }
        row = views.summarize_entry(entry)
        assert row["summary"] == topic
        assert row["summaryQuery"] == f'kafka and request.payload.topicData[0].name == "{topic}"'
        assert row["methodQuery"] == f'kafka and request.method == "{method}"'
        assert row["statusQuery"] == f"kafka and response.errorCode == {index % 3}"
        assert row["error"] is (index % 3 != 0)
    row = views.summarize_entry({"request": {"method": "", "clientId": "c"}})
    assert row["methodQuery"] == "kafka"
    assert row["summaryQuery"] == 'kafka and request.clientId == "c"'


def test_a_row_takes_a_client_id_that_is_not_text() -> None:
    """A stored entry may come from anywhere: the row of a number as client id is a row."""
    row = views.summarize_entry({"request": {"method": "Metadata", "clientId": 7}})
    assert row["summary"] == "7"
    assert row["summaryQuery"] == "kafka and request.clientId == 7"


def test_unknown_api_and_version_and_lost_request_are_entries() -> None:
    outputs = run_bytes(
        [
            (C2S, request(92, 0, 1, b"\x00")),
            (C2S, request(12, 9, 2, b"\x00")),
            (S2C, response(1, b"\x00")),
            (S2C, response(2, b"\x00")),
            (S2C, response(77, b"\x00")),
        ],
        plugin,
    )
    errors = [
        (entry["request"] or {}).get("decodeError") or entry["response"]["decodeError"]
        for entry in outputs.entries
    ]
    assert errors == [
        "API key 92 (DeleteShareGroupOffsets) is not in Mizu's Kafka tables",
        "Heartbeat v9 is not in Mizu's Kafka tables (known up to v4)",
        "request not captured: the response's layout is unknown",
    ]
    assert outputs.entries[2]["request"] is None


def test_a_negative_version_is_not_in_the_tables() -> None:
    """Found by comparing with mutated traffic: a request whose version is negative said
    nothing of it (an empty payload)."""
    outputs = run_bytes(
        [
            (C2S, request(12, 3, 2, HEARTBEAT_V3)),
            (S2C, response(2, b"\0\0\0\0\0\0")),
            (C2S, request(12, -1, 3, HEARTBEAT_V3)),
            (S2C, response(3, b"\0\0")),
        ],
        plugin,
    )
    assert "decodeError" not in outputs.entries[0]["request"]
    expected = "Heartbeat v-1 is not in Mizu's Kafka tables (known up to v4)"
    assert outputs.entries[1]["request"]["decodeError"] == expected
    assert outputs.entries[1]["response"]["decodeError"] == expected


def test_a_legacy_message_of_an_unknown_codec_is_a_decode_error() -> None:
    """A magic 0 message whose attributes name codec 5: said in its batch, not raised."""
    message = struct.pack(">IbbI", 0, 0, 5, 3) + b"abc" + struct.pack(">I", 3) + b"xyz"
    wire = struct.pack(">qi", 0, len(message)) + message
    decoded = decode_records(wire, RecordBudget())
    assert decoded.batches == [
        {"baseOffset": 0, "magic": 0, "compression": "5"},
        {"decodeError": "unknown compression codec 5"},
    ]


def test_frames_over_the_cap_keep_their_start() -> None:
    records = built_records(2, "none", count=200)
    # Produce v3: transactionalId null, acks, timeout, one topic "t" with partition 0.
    produce = b"\xff\xff" + struct.pack(">hii", 1, 1000, 1) + b"\x00\x01t"
    produce += struct.pack(">iii", 1, 0, len(records)) + records
    wire = request(0, 3, 9, produce)
    chunks = [(C2S, wire[start : start + 100]) for start in range(0, len(wire), 100)]
    outputs = run_bytes(chunks, plugin, settings={"max-frame-bytes": 256})
    (entry,) = outputs.entries
    partition = entry["request"]["payload"]["topicData"][0]["partitionData"][0]
    assert entry["request"]["truncatedSize"] == len(produce) + 14
    assert entry["request"]["decodeError"] == "body cut at the capture cap"
    assert partition["recordCount"] == 200
    assert partition["records"] == []


def test_settings_are_validated() -> None:
    # The key alone: the core puts "plugins.kafka: " before the message.
    with pytest.raises(ValueError, match=r"^max-rows: unknown setting"):
        plugin.configure({"max-rows": 3})
    with pytest.raises(ValueError, match=r"^max-records: expected a non-negative integer"):
        plugin.configure({"max-records": -1})


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([C2S, S2C]), st.binary(max_size=64)), min_size=1, max_size=12
    )
)
def test_gaps_and_garbage_never_crash(chunks: list[tuple[Direction, bytes]]) -> None:
    opening = [(C2S, request(12, 3, 5, HEARTBEAT_V3))]
    outputs = run_bytes(opening + chunks, plugin)
    assert outputs.stats["plugin_errors"] == {}


HEARTBEAT_OK = struct.pack(">ih", 0, 0)


def test_after_a_gap_a_response_starts_at_a_pending_correlation_id_that_decodes() -> None:
    decoy = struct.pack(">ii", 8, 7) + b"\xff\xff\xff\xff"  # too short for its layout
    outputs = run_bytes(
        [
            (C2S, request(12, 3, 6, HEARTBEAT_V3)),
            (C2S, request(12, 3, 7, HEARTBEAT_V3)),
            (S2C, response(6, HEARTBEAT_OK)[:5]),
            (S2C, b""),  # the rest of the answer to 6 is lost
            (S2C, b"\x01" + decoy + response(7, HEARTBEAT_OK)),
        ],
        plugin,
    )
    pairs = [
        (entry["request"]["correlationId"], (entry["response"] or {}).get("correlationId"))
        for entry in outputs.entries
    ]
    assert sorted(pairs, key=str) == [(6, None), (7, 7)]
    counters = outputs.stats["plugin_counters"]["plugin"]
    assert (counters["resyncs"], counters["bytes_skipped"]) == (1, 5 + 1 + len(decoy))


def test_a_request_after_a_gap_numbers_on_from_the_last_one() -> None:
    earlier = request(12, 3, 2, HEARTBEAT_V3)  # a request's bytes seen again, say in a value
    long_member = (
        struct.pack(">h", 1) + b"g" + struct.pack(">ih", 7, 300) + b"m" * 300 + b"\xff\xff"
    )
    outputs = run_bytes(
        [
            (C2S, request(12, 3, 3, HEARTBEAT_V3)),
            (C2S, b""),
            (C2S, b"\x00\x00" + earlier + request(12, 3, 4, long_member)),
            (S2C, response(3, HEARTBEAT_OK) + response(4, HEARTBEAT_OK)),
        ],
        plugin,
    )
    pairs = [
        (entry["request"]["correlationId"], entry["response"]["correlationId"])
        for entry in outputs.entries
    ]
    assert pairs == [(3, 3), (4, 4)]
    assert outputs.entries[1]["request"]["payload"]["memberId"] == "m" * 300


def test_requests_answered_out_of_their_turn_lost_their_answers() -> None:
    outputs = run_bytes(
        [
            (C2S, request(12, 3, 1, HEARTBEAT_V3)),
            (C2S, request(12, 3, 2, HEARTBEAT_V3)),
            (C2S, request(12, 3, 3, HEARTBEAT_V3)),
            (S2C, response(1, HEARTBEAT_OK)),
            (S2C, b""),  # the answer to 2
            (S2C, response(3, HEARTBEAT_OK)),
        ],
        plugin,
    )
    answers = [
        (entry["request"]["correlationId"], (entry["response"] or {}).get("correlationId"))
        for entry in outputs.entries
    ]
    assert answers == [(1, 1), (2, None), (3, 3)]
    assert outputs.entries[1]["unpaired"] == "gap"


@pytest.mark.parametrize(
    ("response", "error"),
    [
        ({"correlationId": 1, "errorCode": 0, "errorName": "NONE"}, False),
        ({"correlationId": 1, "errorCode": 27, "errorName": "REBALANCE_IN_PROGRESS"}, True),
        ({"correlationId": 1, "decodeError": "request not captured"}, False),
        (None, False),
    ],
)
def test_is_error_says_what_the_row_says(response: dict | None, error: bool) -> None:
    """The core keeps ``is_error``'s answer as the entry's ``error``: a response whose first
    error code is not NONE, as the row says; no response is no error."""
    entry = {"request": {"method": "Produce", "clientId": "c"}, "response": response}
    assert views.summarize_entry(entry)["error"] is error
    assert plugin.is_error(entry=entry) is error
