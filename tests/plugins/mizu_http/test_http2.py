"""HTTP/2 frames, HPACK and streams, fed as bytes made by the h2 library and by hand."""

from __future__ import annotations

import hpack
import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from hpack.hpack import encode_integer
from mizu_http import plugin
from mizu_http.dissector import HttpDissector
from mizu_http.http2 import PREFACE, HpackDecoder, frames_verdict

from mizu_core import (
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


def test_a_gap_gives_up_on_the_connection_and_emits_what_it_holds() -> None:
    client, server, handshake = peers()
    client.send_headers(1, REQUEST, end_stream=True)
    requests = client.data_to_send()
    server.receive_data(requests)
    server.send_headers(1, [(":status", "200")])
    server.send_data(1, b"x" * 50, end_stream=True)
    answer = server.data_to_send()
    chunks = [*handshake, (C, requests), (S, answer[:20]), (S, b""), (S, answer[21:])]
    outputs = run_bytes(chunks, plugin)
    counters = outputs.stats["plugin_counters"]
    assert list(counters.values()) == [{"http2 gave up: capture gap": 1, "paired": 1}]
    (entry,) = outputs.entries
    assert entry["request"]["path"] == "/x"
    assert entry["response"]["incomplete"] is True


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
