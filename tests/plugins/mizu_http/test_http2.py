"""HTTP/2 frames, HPACK and streams, fed as bytes made by the h2 library and by hand."""

from __future__ import annotations

import base64
from typing import Any

import hpack
import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from hpack.hpack import encode_integer
from mizu_http import grpc, plugin
from mizu_http.dissector import HttpDissector, Start, offer
from mizu_http.hpack_decoder import HpackDecoder
from mizu_http.http2 import MAX_KNOWN_BLOCK_SIZE, MAX_KNOWN_BLOCKS, PREFACE, _Blocks
from mizu_http.http2_frames import FRAME_HEADER, FrameRules, find_frames, frames_verdict

from mizu_core import (
    NEED_MORE,
    CloseReason,
    ConnectionContext,
    ConnectionInfo,
    ConnectionStats,
    Direction,
    Endpoint,
    Pair,
)
from mizu_core.testkit import run_bytes

C, S = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT
REQUEST = [(":method", "GET"), (":path", "/x?a=1"), (":scheme", "http"), (":authority", "h")]


def session_pairs(
    chunks: list[tuple[Direction, bytes | int]],
    start: Start = Start.HTTP2,
    flipped: bool = False,
    step: float = 0.001,
) -> tuple[list[Pair], dict[str, int]]:
    """Feed one connection's chunks to the HTTP dissector (an ``int`` is a gap of that many
    bytes), ``step`` seconds apart; its pairs and counters."""
    pairs: list[Pair] = []
    connection = ConnectionInfo(1, Endpoint("10.0.0.1", 5000), Endpoint("10.0.0.2", 7000), 1.0)
    connection.role_guessed = start is Start.HTTP2_MIDSTREAM
    context = ConnectionContext(
        connection,
        ConnectionStats.empty(1.0),
        pairs.append,
        settings={"http": plugin.configure(settings={})},
    )
    context.owner = "http"
    dissector = HttpDissector(context, context.settings, start, flipped)
    time = 1.0
    for index, (direction, data) in enumerate(chunks):
        time = 1.0 + index * step
        if isinstance(data, int):
            dissector.gap(direction, data, time)
        else:
            dissector.feed(direction, data, time)
    dissector.close(time, CloseReason.FIN)
    context.flush()
    return pairs, dict(context.counters)


def pair_summary(pair: Pair) -> dict[str, Any]:
    """The request and response objects of a pair (None for a missing one), and why."""
    return {
        "request": pair.request.data if pair.request else None,
        "response": pair.response.data if pair.response else None,
        "unpaired": pair.unpaired,
    }


def frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (
        len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload
    )


def peers() -> tuple[H2Connection, H2Connection, list[tuple[Direction, bytes]]]:
    """A client and a server past their handshake, and the handshake's bytes."""
    client = H2Connection(H2Configuration(client_side=True))
    server = H2Connection(H2Configuration(client_side=False))
    client.initiate_connection()
    server.initiate_connection()
    handshake = [(C, client.data_to_send()), (S, server.data_to_send())]
    server.receive_data(handshake[0][1])
    client.receive_data(handshake[1][1])
    handshake += [(C, client.data_to_send()), (S, server.data_to_send())]  # SETTINGS ACKs
    return client, server, handshake


def test_streams_pair_by_id_even_when_answered_out_of_order() -> None:
    client, server, handshake = peers()
    client.send_headers(1, REQUEST, end_stream=True)
    client.send_headers(3, [*REQUEST[:1], (":path", "/y"), *REQUEST[2:]], end_stream=True)
    requests = client.data_to_send()
    server.receive_data(requests)
    server.send_headers(3, [(":status", "404")], end_stream=True)
    server.send_headers(1, [(":status", "200"), ("content-type", "text/plain")])
    server.send_data(1, b"one", end_stream=True)
    chunks = [*handshake, (C, requests), (S, server.data_to_send())]
    outputs = run_bytes(chunks, plugin)
    assert [(e["request"]["path"], e["response"]["status"]) for e in outputs.entries] == [
        ("/y", 404),
        ("/x", 200),
    ]
    assert outputs.entries[1]["response"]["content"]["text"] == "one"
    assert outputs.entries[1]["request"]["queryString"] == {"a": "1"}


def test_padding_priority_continuation_and_push_promise_by_hand() -> None:
    encoder = hpack.Encoder()
    server_encoder = hpack.Encoder()
    block = encoder.encode([*REQUEST, ("x-long", "v" * 40)])
    first, rest = block[:10], block[10:]
    client = (
        PREFACE
        + frame(4, 0, 0, b"")
        + frame(1, 0x08 | 0x20, 1, bytes([3]) + b"\x00\x00\x00\x00\x10" + first + b"pad")
        + frame(9, 0x04 | 0x01, 1, rest)
        + frame(2, 0, 1, b"\x00\x00\x00\x00\x10")
    )
    promise = server_encoder.encode([(":method", "GET"), (":path", "/pushed"), (":scheme", "http")])
    response = server_encoder.encode([(":status", "200")])
    server = (
        frame(4, 0, 0, b"")
        + frame(5, 0x04, 1, b"\x00\x00\x00\x02" + promise)
        + frame(1, 0x04, 1, response)
        + frame(0, 0x08 | 0x01, 1, bytes([2]) + b"body" + b"\x00\x00")
        + frame(1, 0x04, 2, response)
        + frame(0, 0x01, 2, b"pushed body")
        + frame(7, 0, 0, b"\x00\x00\x00\x02\x00\x00\x00\x00")
    )
    outputs = run_bytes([(C, client), (S, server)], plugin)
    first_entry, pushed = outputs.entries
    assert first_entry["request"]["headers"]["x-long"] == "v" * 40
    assert first_entry["response"]["content"]["text"] == "body"
    assert first_entry["response"]["bodySize"] == 4
    assert pushed["request"]["path"] == "/pushed" and pushed["request"]["pushed"] is True
    assert pushed["response"]["content"]["text"] == "pushed body"


def test_reset_stream_is_an_entry_with_the_reset_code() -> None:
    client, server, handshake = peers()
    client.send_headers(1, REQUEST, end_stream=True)
    requests = client.data_to_send()
    server.receive_data(requests)
    server.reset_stream(1, error_code=8)
    outputs = run_bytes([*handshake, (C, requests), (S, server.data_to_send())], plugin)
    (entry,) = outputs.entries
    assert entry["response"]["resetCode"] == 8


def test_mid_connection_headers_report_what_could_not_be_decoded() -> None:
    encoder = hpack.Encoder()
    encoder.encode([("x-before", "capture")])  # enters the table before the capture starts
    block = encoder.encode([*REQUEST, ("x-before", "capture"), ("x-new", "seen")])
    pairs: list[Pair] = []
    connection = ConnectionInfo(1, Endpoint("10.0.0.1", 5000), Endpoint("10.0.0.2", 7000), 1.0)
    connection.role_guessed = True
    context = ConnectionContext(
        connection,
        ConnectionStats.empty(1.0),
        pairs.append,
        settings={"http": plugin.configure(settings={})},
    )
    context.owner = "http"
    head = frame(1, 0x05, 7, block)
    verdict = plugin.dissect(context=context, client_head=head, server_head=b"")
    assert isinstance(verdict, HttpDissector)
    verdict.feed(C, head, 1.0)
    verdict.close(2.0, CloseReason.FIN)
    context.flush()
    request = pairs[0].request
    assert request is not None
    assert request.data["target"] == "/x?a=1"
    assert request.data["headers"]["x-new"] == "seen"
    assert request.data["undecodedHeaders"] == 1
    assert "x-before" not in request.data["headers"]


def test_hpack_decoder_resolves_entries_it_saw_added() -> None:
    encoder = hpack.Encoder()
    decoder = HpackDecoder()
    assert decoder.decode(encoder.encode([("a", "1")])) == ([("a", "1")], 0)
    assert decoder.decode(encoder.encode([("a", "1"), ("b", "2")])) == ([("a", "1"), ("b", "2")], 0)


def test_a_repeated_block_decodes_against_the_table_as_it_is_now() -> None:
    encoder = hpack.Encoder()
    adding_one = encoder.encode([*REQUEST, ("x-id", "1")])
    indexed = encoder.encode([*REQUEST, ("x-id", "1")])  # every header an index
    adding_two = encoder.encode([*REQUEST, ("x-id", "2")])  # the indices move by one
    indexed_two = encoder.encode([*REQUEST, ("x-id", "2")])
    tagged = encoder.encode([*REQUEST, ("x-tag", "a"), ("x-tag", "b")])
    retagged = encoder.encode([*REQUEST, ("x-tag", "a"), ("x-tag", "b")])
    blocks = [adding_one, indexed, indexed, adding_two, indexed_two, indexed]
    blocks += [tagged, retagged, retagged]
    client = PREFACE + b"".join(
        frame(1, 0x05, 2 * index + 1, block) for index, block in enumerate(blocks)
    )
    pairs, _ = session_pairs([(C, client)])
    requests = [pair_summary(pair)["request"] for pair in pairs]
    oracle = hpack.Decoder()
    expected = []
    for block in blocks:
        headers: dict[str, Any] = {}
        for name, value in oracle.decode(block):
            headers[name] = [headers[name], value] if name in headers else value
        expected.append(headers)
    assert [request["headers"] for request in requests] == expected
    assert expected[5] != expected[1]  # the same bytes, another table
    first_tags, second_tags = (request["headers"]["x-tag"] for request in requests[7:])
    assert first_tags is not second_tags  # one entry's list is not another's to edit


def test_blocks_kept_decoded_are_bounded_in_number_and_size() -> None:
    def unindexed(name: str, value: str) -> bytes:  # a literal the table does not take
        return hpack.Encoder().encode([hpack.NeverIndexedHeaderTuple(name, value)], huffman=False)

    blocks = _Blocks(HpackDecoder())
    for index in range(MAX_KNOWN_BLOCKS + 10):
        block = unindexed("x-n", str(index))
        assert blocks.decode(block).headers == [("x-n", str(index))]
        assert blocks.decode(block) is blocks.decode(block)  # kept: the table did not change
    assert len(blocks.known) <= MAX_KNOWN_BLOCKS
    large = unindexed("x-large", "v" * MAX_KNOWN_BLOCK_SIZE)
    assert blocks.decode(large).headers == [("x-large", "v" * MAX_KNOWN_BLOCK_SIZE)]
    assert large not in blocks.known


def test_grpc_messages_decode_each_message_or_show_it_as_sent() -> None:
    def framed(data: bytes, compressed: int = 0) -> bytes:
        return bytes([compressed]) + len(data).to_bytes(4, "big") + data

    body = framed(b"\x08\x96\x01") + framed(b'{"a": 1}') + framed(b"zz", compressed=1)
    decoded, not_protobuf, not_deflate, cut = grpc.messages(
        body + framed(b"\x08\x01")[:-1], "deflate", 1 << 20
    )
    assert decoded == {
        "compressed": False,
        "size": 3,
        "fields": [{"field": 1, "wireType": "varint", "value": 150}],
    }
    assert not_protobuf["data"] == base64.b64encode(b'{"a": 1}').decode()
    assert not_protobuf["decodeError"] == "97 bytes needed at offset 3, 5 left"
    assert not_deflate["compressed"] is True and "decodeError" in not_deflate
    assert "fields" not in not_deflate
    assert cut == {
        "compressed": False,
        "size": 2,
        "truncated": True,
        "data": "CA==",
        "encoding": "base64",
    }


def test_a_gap_inside_a_frame_is_passed_over_by_arithmetic() -> None:
    client, server, handshake = peers()
    client.send_headers(1, [*REQUEST, ("x-trace", "t1")], end_stream=True)
    first_request = client.data_to_send()
    server.receive_data(first_request)
    server.send_headers(1, [(":status", "200"), ("x-served-by", "s1")])
    server.send_data(1, b"x" * 3000, end_stream=True)
    answer = server.data_to_send()
    client.send_headers(3, [*REQUEST, ("x-trace", "t1")], end_stream=True)
    second_request = client.data_to_send()
    server.receive_data(second_request)
    server.send_headers(3, [(":status", "200"), ("x-served-by", "s1")], end_stream=True)
    chunks: list[tuple[Direction, bytes | int]] = [
        *handshake,
        (C, first_request),
        (S, answer[:100]),
        (S, 500),  # inside the DATA frame, whose header was seen
        (S, answer[600:]),
        (C, second_request),
        (S, server.data_to_send()),
    ]
    pairs, counters = session_pairs(chunks)
    cut, after = (pair_summary(pair) for pair in pairs)
    assert cut["response"]["unrecovered"] == ["body"]
    assert cut["response"]["content"]["truncated"] is True
    assert cut["response"]["content"]["text"] == "x" * (100 - len(answer) + 3000)
    assert "incomplete" not in cut["response"]  # END_STREAM was in the cut frame's header
    # the frame boundaries and both HPACK tables survived: entries from before still resolve
    assert after["request"]["headers"]["x-trace"] == "t1"
    assert after["response"]["headers"]["x-served-by"] == "s1"
    assert "undecodedHeaders" not in after["request"] and "unrecovered" not in after["response"]
    assert "resyncs" not in counters


def test_lost_frames_resync_and_the_hpack_table_is_rebuilt_from_what_follows() -> None:
    client, server, handshake = peers()
    requests = {}
    for number, extra in ((1, ("x-early", "e")), (3, ("x-lost", "l")), (5, ("x-late", "5"))):
        client.send_headers(number, [*REQUEST[:1], (":path", f"/{number}"), *REQUEST[2:], extra])
        client.send_data(number, b"body %d" % number, end_stream=True)
        requests[number] = client.data_to_send()
    client.send_headers(7, [*REQUEST[:1], (":path", "/7"), *REQUEST[2:], ("x-late", "5")])
    client.send_data(7, b"body 7", end_stream=True)
    requests[7] = client.data_to_send()
    for request in requests.values():
        server.receive_data(request)
    for number in requests:
        server.send_headers(number, [(":status", "200")], end_stream=True)
    chunks: list[tuple[Direction, bytes | int]] = [
        *handshake,
        (C, requests[1]),
        (C, len(requests[3])),  # whole frames lost: where the next one begins is not known
        (C, requests[5] + requests[7]),
        (S, server.data_to_send()),
    ]
    pairs, counters = session_pairs(chunks)
    by_stream = {pair_summary(pair)["response"]["streamId"]: pair for pair in pairs}
    assert by_stream[3].request is None and by_stream[3].unpaired == "gap"  # answered alone
    late, later = pair_summary(by_stream[5])["request"], pair_summary(by_stream[7])["request"]
    assert late["target"] == "/5" and later["target"] == "/7"  # literals and the static table
    assert late["headers"]["x-late"] == "5"
    assert later["headers"]["x-late"] == "5"  # added to the table after the gap: resolved
    assert later["undecodedHeaders"] == 1  # :authority, added before it: not recoverable
    assert late["postData"]["text"] == "body 5"
    assert counters["resyncs"] == 1 and "bytes_skipped" not in counters


def test_a_frame_cut_with_more_lost_resyncs_past_the_tail_of_the_next() -> None:
    client, server, handshake = peers()
    for number in (1, 3, 5):
        client.send_headers(number, REQUEST, end_stream=True)
    requests = client.data_to_send()
    server.receive_data(requests)
    for number, status, body in (
        (1, "200", b"a" * 2000),
        (3, "404", b"b" * 2000),
        (5, "200", b"c"),
    ):
        server.send_headers(number, [(":status", status)])
        server.send_data(number, body, end_stream=True)
    answer = server.data_to_send()
    resumed = 50 + 3000
    tail = answer.index(b"c") - FRAME_HEADER - 1 - FRAME_HEADER - resumed  # the 404's body's
    chunks: list[tuple[Direction, bytes | int]] = [
        *handshake,
        (C, requests),
        (S, answer[:50]),
        (S, 3000),  # the end of stream 1's DATA, the 404's HEADERS and some of its DATA
        (S, answer[resumed:]),
    ]
    pairs, counters = session_pairs(chunks)
    summaries = {pair_summary(pair)["request"]["streamId"]: pair_summary(pair) for pair in pairs}
    one, three, five = summaries[1], summaries[3], summaries[5]
    assert one["response"]["status"] == 200 and one["response"]["unrecovered"] == ["body"]
    assert "incomplete" not in one["response"]  # the cut frame's header had END_STREAM
    assert three["response"] is None  # nothing of it survived: never joined to another
    assert three["unpaired"] == "gap" and one["unpaired"] == five["unpaired"] == ""
    assert five["response"]["status"] == 200 and five["response"]["content"]["text"] == "c"
    assert "unrecovered" not in five["response"]
    assert counters["resyncs"] == 1 and counters["bytes_skipped"] == tail


def test_a_frame_too_large_to_buffer_ends_decoding() -> None:
    client, _, handshake = peers()
    huge = (3 << 20).to_bytes(3, "big") + b"\x00\x00\x00\x00\x00\x01"
    client.send_headers(1, REQUEST)
    outputs = run_bytes([*handshake, (C, client.data_to_send() + huge)], plugin)
    (entry,) = outputs.entries
    assert entry["request"]["path"] == "/x" and entry["request"]["incomplete"] is True


def test_frames_verdict() -> None:
    settings = frame(4, 0, 0, b"\x00\x03\x00\x00\x00\x64")
    assert frames_verdict(settings) is True
    assert frames_verdict(settings[:5]) is None
    assert frames_verdict(frame(4, 0, 1, b"")) is False  # SETTINGS on a stream
    assert frames_verdict(frame(0, 0, 0, b"x")) is False  # DATA on stream 0
    assert frames_verdict(frame(8, 0, 0, b"\x00")) is False  # WINDOW_UPDATE is 4 bytes


def test_hpack_decoder_caps_size_updates_and_bounds_header_lists() -> None:
    decoder = HpackDecoder(max_allowed=100)
    update = encode_integer(1 << 20, 5)
    update[0] |= 0x20
    assert decoder.decode(bytes(update)) == ([], 0)
    assert decoder.max_size == 100
    big = hpack.Encoder()
    block = big.encode([("x-big", "v" * 4000)])  # a literal added to the table
    block += bytes([0x80 | 62]) * 300  # then referenced 300 times: 1.2 MB of headers
    with pytest.raises(hpack.HPACKDecodingError, match="larger than the bound"):
        HpackDecoder(max_allowed=8192).decode(block)


def test_hpack_decoder_rejects_a_cut_block() -> None:
    block = hpack.Encoder().encode([("name", "value" * 10)])
    with pytest.raises((hpack.HPACKDecodingError, IndexError)):
        HpackDecoder().decode(block[:-3])


def test_a_capture_begun_inside_a_response_finds_the_frames_and_the_roles() -> None:
    client, server, _ = peers()
    client.send_headers(1, REQUEST, end_stream=True)
    server.receive_data(client.data_to_send())
    server.send_headers(1, [(":status", "200"), ("content-type", "text/plain")])
    server.send_data(1, b"early " * 500)
    server.send_data(1, b"late", end_stream=True)
    in_flight = server.data_to_send()[1000:]  # the capture began inside the first DATA frame
    client.send_headers(3, [*REQUEST[:1], (":path", "/after"), *REQUEST[2:]], end_stream=True)
    request = client.data_to_send()
    server.receive_data(request)
    server.send_headers(3, [(":status", "404")], end_stream=True)
    answer = server.data_to_send()
    # the server spoke first, so the core took it for the client: the header blocks tell
    assert offer(in_flight, request, role_guessed=True) == (Start.HTTP2_MIDSTREAM, True)
    assert offer(in_flight, b"", role_guessed=True) is NEED_MORE
    chunks: list[tuple[Direction, bytes | int]] = [(C, in_flight), (S, request), (C, answer)]
    pairs, counters = session_pairs(chunks, Start.HTTP2_MIDSTREAM, flipped=True)
    tail, after = (pair_summary(pair) for pair in pairs)
    assert tail["request"] is None and tail["unpaired"] == "midstream"
    assert tail["response"]["unrecovered"] == ["headers", "body"]
    assert tail["response"]["content"]["text"] == "late"
    assert after["request"]["target"] == "/after" and after["response"]["status"] == 404
    assert counters["resyncs"] == 2  # each side found its frames
    assert counters["bytes_skipped"] == in_flight.index(b"late") - FRAME_HEADER  # a frame's tail


def test_find_frames_believes_only_plausible_runs() -> None:
    headers = frame(1, 0x05, 3, b"\x82")
    data = frame(0, 0x01, 3, b"body")
    rules = FrameRules()
    assert find_frames(b"\x62" * 40 + headers + data, rules) == (40, 40)
    assert find_frames(b"\x62" + headers + data[:5], rules) == (None, 1)  # one and a bit
    assert find_frames(headers + data[:5], rules) == (0, 0)  # ... from the first byte: sure
    assert find_frames(b"\x62" + headers, rules) == (1, 1)  # one whole frame ending the bytes
    assert find_frames(b"\x62" + headers, FrameRules(lone_frame=False)) == (None, 1)
    assert find_frames(frame(1, 0x05, 4, b"\x82") + data, rules)[0] != 0  # even: the server's
    assert find_frames(frame(0, 0x40, 3, b"x") + data, rules)[0] != 0  # undefined flag
    assert find_frames(frame(9, 0x04, 3, b"x") + data, rules)[0] != 0  # no block to continue
    assert find_frames(headers + data, FrameRules(max_frame=0))[0] is None
    assert find_frames(frame(1, 0x05, 9001, b"\x82"), FrameRules(highest_stream=3))[0] is None


def test_hpack_decoder_forgets_the_table_after_lost_blocks() -> None:
    encoder = hpack.Encoder()
    decoder = HpackDecoder()
    decoder.decode(encoder.encode([("a", "1")]))
    decoder.forget()
    block = encoder.encode([("a", "1"), ("b", "2")])  # a: an index; b: a literal, added
    assert decoder.decode(block) == ([("b", "2")], 1)
    assert decoder.decode(encoder.encode([("b", "2")])) == ([("b", "2")], 0)


def test_answers_wait_for_a_client_side_that_is_behind() -> None:
    client, server, handshake = peers()
    client.send_headers(1, REQUEST, end_stream=True)
    first = client.data_to_send()
    client.send_headers(3, REQUEST, end_stream=True)
    second = client.data_to_send()
    server.receive_data(first + second)
    server.send_headers(1, [(":status", "200")], end_stream=True)
    server.send_headers(3, [(":status", "204")], end_stream=True)
    answers = server.data_to_send()

    def summary(pairs: list[Pair]) -> list[tuple[int, int, str]]:
        return [
            (pair_summary(p)["response"]["streamId"], p.response.data["status"], p.unpaired)
            for p in pairs
            if p.response is not None
        ]

    # the capture's reassembly held the client's bytes back (a hole it waited for)
    pairs, _ = session_pairs([*handshake, (S, answers), (C, first + second)])
    assert summary(pairs) == [(1, 200, ""), (3, 204, "")]
    # stream 1's request was lost: the client's side passing it tells
    pairs, _ = session_pairs([*handshake, (S, answers), (C, len(first)), (C, second)])
    assert summary(pairs) == [(1, 200, "gap"), (3, 204, "")]
    # or the time the reassembly could have held it back runs out
    ping = frame(6, 0, 0, b"12345678")
    pairs, _ = session_pairs([*handshake, (S, answers), (S, ping), (S, ping), (C, second)], step=1)
    assert summary(pairs) == [(1, 200, "gap"), (3, 204, "gap")]


def test_a_gap_in_the_preface_resyncs_on_the_frames_after_it() -> None:
    client, server, handshake = peers()
    preface_and_settings = handshake[0][1]
    client.send_headers(1, REQUEST, end_stream=True)
    request = client.data_to_send()
    server.receive_data(request)
    server.send_headers(1, [(":status", "200")])
    server.send_data(1, b"x" * 100, end_stream=True)
    answer = server.data_to_send()
    chunks: list[tuple[Direction, bytes | int]] = [
        (C, preface_and_settings[:10]),
        (C, len(preface_and_settings) - 10),
        (S, handshake[1][1] + answer[:30]),
        (S, 40),
        (S, answer[70:]),
        (C, request),
    ]
    pairs, counters = session_pairs(chunks)
    (pair,) = pairs
    assert pair.request is not None and pair.request.data["target"] == "/x?a=1"
    assert pair.response is not None and pair.response.data["unrecovered"] == ["body"]
    assert pair.response.first_time > 0 and pair.response.last_time > 0
    assert counters["resyncs"] == 1
