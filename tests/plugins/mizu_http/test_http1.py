"""HTTP/1 framing, pairing and recovery, fed as bytes (no sockets)."""

from __future__ import annotations

import pytest
from mizu_http import plugin
from mizu_http.dissector import Start, offer

from mizu_core import NEED_MORE, Direction
from mizu_core.testkit import run_bytes

C, S = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT


def get(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: h\r\n{extra}\r\n".encode()


def ok(body: bytes = b"", status: str = "200 OK", extra: str = "") -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode()
    return head + body


def pair_of(entry: dict) -> tuple[str | None, str | None, str | None]:
    """The request's path, the response's body, and why it is unpaired."""
    request, response = entry["request"], entry["response"]
    return (
        request and request["path"],
        response and response["content"]["text"],
        entry.get("unpaired"),
    )


def summary(chunks: list[tuple[Direction, bytes]], **kwargs: object) -> list[tuple]:
    outputs = run_bytes(chunks, plugin, **kwargs)  # type: ignore[arg-type]
    assert outputs.stats["plugin_errors"] == {}
    return [
        (
            (entry["request"] or {}).get("path"),
            (entry["response"] or {}).get("status"),
            ((entry["response"] or {}).get("content") or {}).get("text"),
        )
        for entry in outputs.entries
    ]


def test_pipelined_requests_pair_in_order_across_any_split() -> None:
    client = get("/a") + get("/b") + get("/c")
    server = ok(b"A") + ok(b"BB") + ok(b"CCC")
    expected = [("/a", 200, "A"), ("/b", 200, "BB"), ("/c", 200, "CCC")]
    assert summary([(C, client), (S, server)]) == expected
    one_byte_at_a_time = [(C, client[i : i + 1]) for i in range(len(client))] + [
        (S, server[i : i + 1]) for i in range(len(server))
    ]
    assert summary(one_byte_at_a_time) == expected


def test_head_204_304_and_interim_answers_have_no_body() -> None:
    client = b"HEAD /h HTTP/1.1\r\nHost: h\r\n\r\n" + get("/n") + get("/m") + get("/c")
    server = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"
        + b"HTTP/1.1 204 No Content\r\n\r\n"
        + b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"
        + b"HTTP/1.1 100 Continue\r\n\r\n"
        + ok(b"done")
    )
    assert summary([(C, client), (S, server)]) == [
        ("/h", 200, ""),
        ("/n", 204, ""),
        ("/m", 304, ""),
        ("/c", 200, "done"),
    ]


def test_chunked_body_with_extensions_and_trailers() -> None:
    server = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: abc\r\n\r\n"
    )
    outputs = run_bytes([(C, get("/")), (S, server)], plugin)
    response = outputs.entries[0]["response"]
    assert response["content"]["text"] == "hello world"
    assert response["trailers"] == {"X-Checksum": "abc"}
    assert response["bodySize"] == len(server) - server.index(b"\r\n\r\n") - 4


def test_body_read_until_the_connection_closes() -> None:
    server = b"HTTP/1.0 200 OK\r\n\r\nuntil the end"
    outputs = run_bytes([(C, b"GET / HTTP/1.0\r\n\r\n"), (S, server)], plugin)
    entry = outputs.entries[0]
    assert entry["protocol"]["version"] == "1.0"
    assert entry["response"]["content"]["text"] == "until the end"


def test_gap_inside_a_known_length_body_keeps_the_message() -> None:
    chunks = [
        (C, get("/big")),
        (S, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"),
        (S, b""),  # one byte lost
        (S, b"efghij"),
        (C, get("/next")),
        (S, ok(b"n")),
    ]
    outputs = run_bytes(chunks, plugin)
    first, second = outputs.entries
    assert first["response"]["content"]["truncated"] is True
    assert first["response"]["bodySize"] == 10
    assert (second["request"]["path"], second["response"]["content"]["text"]) == ("/next", "n")


def test_a_gap_in_pipelined_requests_leaves_the_answers_after_it_unpaired() -> None:
    """The gap could have held any number of requests: the answers after /one's cannot be
    told apart, and none is guessed."""
    chunks = [
        (C, get("/one")),
        (C, b"GET /lo"),
        (C, b""),  # the rest of /lost's head is lost
        (C, b"st HTTP/1.1\r\nHost: h\r\n\r\n" + get("/three")),
        (S, ok(b"1") + ok(b"2") + ok(b"3")),
    ]
    outputs = run_bytes(chunks, plugin)
    assert [pair_of(entry) for entry in outputs.entries] == [
        ("/one", "1", None),
        ("/three", None, "gap"),
        (None, "2", "gap"),
        (None, "3", "gap"),
    ]
    (counters,) = outputs.stats["plugin_counters"].values()
    assert counters == {
        "http1 messages dropped": 1,
        "paired": 1,
        "unpaired.gap": 3,
        "resyncs": 1,
        "bytes_skipped": 24,
    }


def test_after_a_lost_answer_pairing_restarts_from_a_request_whose_answer_follows_it() -> None:
    chunks = [
        (C, get("/one")),
        (S, b""),  # /one's answer is lost
        (C, get("/two")),
        (S, ok(b"2")),
        (C, get("/three")),
        (S, ok(b"3")),
    ]
    assert [pair_of(entry) for entry in run_bytes(chunks, plugin).entries] == [
        ("/one", None, "gap"),
        ("/two", "2", None),
        ("/three", "3", None),
    ]


def test_a_server_loss_before_an_answer_is_ruled_out_by_the_clients_side() -> None:
    """The bytes lost before /two's answer may have been sent after /two began: they were
    not its answer unless the client sent another request meanwhile, which its side, seen
    whole up to the answer, rules out. Had the client lost bytes too, nothing is proven."""
    chunks = [
        (C, get("/one")),
        (C, get("/two")),
        (S, b""),
        (S, ok(b"2")),
        (C, get("/three")),
        (S, ok(b"3")),
    ]
    assert [pair_of(entry) for entry in run_bytes(chunks, plugin).entries] == [
        ("/one", None, "gap"),
        ("/two", "2", None),
        ("/three", "3", None),
    ]
    both_lost = [*chunks[:2], (C, b""), *chunks[2:]]
    assert [pair_of(entry) for entry in run_bytes(both_lost, plugin).entries] == [
        ("/one", None, "gap"),
        ("/two", None, "gap"),
        (None, "2", "gap"),
        ("/three", "3", None),
    ]


def test_a_capture_joined_mid_way_pairs_from_the_first_request_answered_after_it() -> None:
    body_tail = b"tail of a body whose head the capture missed\r\nHTTP/1.1 is in here too"
    chunks = [
        (S, body_tail),
        (S, ok(b"answer to a request sent before the capture")),
        (C, get("/first")),
        (S, ok(b"1")),
        (C, get("/second")),
        (S, ok(b"2")),
    ]
    outputs = run_bytes(chunks, plugin, role_guessed=True)
    assert [pair_of(entry) for entry in outputs.entries] == [
        (None, "", "midstream"),
        (None, "answer to a request sent before the capture", "midstream"),
        ("/first", "1", None),
        ("/second", "2", None),
    ]
    in_flight = outputs.entries[0]["response"]
    assert in_flight["unrecovered"] == ["headers", "body"]
    assert in_flight["bodySize"] == len(body_tail)


def test_garbage_instead_of_a_response_is_skipped_to_the_next_status_line() -> None:
    chunks = [
        (C, get("/a")),
        (S, ok(b"a") + b"\x00\xffnot http at all\r\nstill not\r\n\r\n"),
        (C, get("/b")),
        (S, ok(b"b")),
    ]
    assert summary(chunks) == [("/a", 200, "a"), ("/b", 200, "b")]
    pipelined = [(C, get("/a") + get("/b")), *chunks[1:2], chunks[3]]
    assert summary(pipelined) == [("/a", 200, "a"), ("/b", None, None), (None, 200, "b")]


def test_a_start_line_found_by_searching_needs_header_lines_after_it() -> None:
    chunks = [
        (C, get("/a")),
        (S, b""),
        (S, b"body\r\nHTTP/1.1 200 OK but this is prose\r\nnot a header\r\n\r\n"),
        (C, get("/b")),
        (S, ok(b"b")),
    ]
    assert summary(chunks) == [("/a", None, None), ("/b", 200, "b")]


def test_a_gap_within_a_chunk_is_skipped_by_arithmetic() -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunks = [
        (C, get("/chunked")),
        (S, head + b"a\r\nabcd"),
        (S, b""),  # "e" is lost
        (S, b"fghij\r\n0\r\n\r\n"),
        (C, get("/next")),
        (S, ok(b"n")),
    ]
    first, second = run_bytes(chunks, plugin).entries
    assert first["response"]["content"]["truncated"] is True
    assert pair_of(first)[0] == "/chunked" and pair_of(second) == ("/next", "n", None)


def test_a_gap_past_the_end_of_a_body_ends_the_message_and_what_followed_is_searched() -> None:
    chunks = [
        (C, get("/a")),
        (S, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"),
        (S, b""),  # "cde" and the head of an answer that never was
        (S, b""),
        (S, b""),
        (S, b""),
        (C, get("/b")),
        (S, ok(b"b")),
    ]
    first, second = run_bytes(chunks, plugin).entries
    assert pair_of(first)[0] == "/a" and first["response"]["content"]["truncated"] is True
    assert pair_of(second) == ("/b", "b", None)


def test_a_response_that_began_before_its_request_answers_it_not() -> None:
    chunks = [(S, ok(b"early")), (C, get("/late")), (S, ok(b"late"))]
    outputs = run_bytes(chunks, plugin, role_guessed=True)
    assert [pair_of(entry) for entry in outputs.entries] == [
        (None, "early", "midstream"),
        ("/late", "late", None),
    ]


def test_body_cap_keeps_the_first_bytes_and_counts_the_rest() -> None:
    body = b"x" * 100
    outputs = run_bytes([(C, get("/")), (S, ok(body))], plugin, {"max-body-size": 10})
    content = outputs.entries[0]["response"]["content"]
    assert (content["text"], content["truncated"]) == ("x" * 10, True)
    assert outputs.entries[0]["response"]["bodySize"] == 100


def test_refused_upgrade_resumes_http1() -> None:
    upgrade = get("/ws", "Upgrade: websocket\r\nConnection: Upgrade\r\n")
    chunks = [
        (C, upgrade + get("/after")),
        (S, ok(b"no", "426 Upgrade Required") + ok(b"yes")),
    ]
    assert summary(chunks) == [("/ws", 426, "no"), ("/after", 200, "yes")]


def test_connect_tunnel_stops_decoding() -> None:
    chunks = [
        (C, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
        (S, b"HTTP/1.1 200 Connection established\r\n\r\n"),
        (C, b"\x16\x03\x01 tls bytes"),
        (S, b"\x16\x03\x03 more tls"),
    ]
    outputs = run_bytes(chunks, plugin)
    assert [entry["request"]["method"] for entry in outputs.entries] == ["CONNECT"]


@pytest.mark.parametrize(
    ("client", "server", "guessed", "verdict"),
    [
        (b"GET / HTTP/1.1\r\n", b"", False, (Start.HTTP1, False)),
        (b"GET /very/long/pa", b"", False, NEED_MORE),
        (b"G", b"", False, NEED_MORE),
        (b"\x00\x01binary", b"", False, None),
        (b"", b"HTTP/1.1 200 OK\r\n", False, (Start.HTTP1, False)),
        (b"HTTP/1.1 200 OK\r\n", b"", True, (Start.HTTP1, True)),
        (b"HTTP/1.1 200 OK\r\n", b"", False, None),
        (b"tail of a body\r\nGET / HTTP/1.1\r\n", b"", True, (Start.HTTP1_MIDSTREAM, False)),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"", False, (Start.HTTP2, False)),
        (b"PRI * HTTP/2", b"", False, NEED_MORE),
        (b"", b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64", False, NEED_MORE),
        # mid-connection HTTP/2: frames, then a header block that tells requests (GET) apart
        (b"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00\x00\xff\xff", b"", True, NEED_MORE),
        (b"\x00\x00\x01\x01\x05\x00\x00\x00\x03\x82", b"", True, (Start.HTTP2_MIDSTREAM, False)),
        (b"\x00\x00\x01\x01\x05\x00\x00\x00\x03\x82", b"", False, None),
        (b"", b"\x00\x00\x01\x01\x05\x00\x00\x00\x03\x82", True, (Start.HTTP2_MIDSTREAM, True)),
        (b"\x00\x00\x04\x0c" + b"\xff" * 20, b"\xff" * 20, True, None),
        (b"", b"tail of a body", True, NEED_MORE),
        (b"body tail\r\nHTTP/1.1 200 OK\r\n", b"", True, (Start.HTTP1_MIDSTREAM, True)),
        (b"", b"ail\r\n3\r\nabc\r\n2\r\nde\r\n", True, (Start.HTTP1_MIDSTREAM, False)),
        (b"ail\r\n3\r\nabc\r\n0\r\n\r\n", b"", True, (Start.HTTP1_MIDSTREAM, True)),
    ],
)  # fmt: skip
def test_offer(client: bytes, server: bytes, guessed: bool, verdict: object) -> None:
    assert offer(client, server, guessed) == verdict


def test_configure_validates_keys_and_values() -> None:
    with pytest.raises(ValueError, match="unknown key 'max-body'"):
        plugin.configure(settings={"max-body": 1})
    with pytest.raises(ValueError, match="max-body-size"):
        plugin.configure(settings={"max-body-size": "lots"})
    assert plugin.configure(settings={"max-body-size": "2048"}).max_body_size == 2048
    assert plugin.configure(settings={}).max_body_size == 1 << 20
