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


def test_gap_in_a_request_head_resynchronises_and_keeps_pairs_aligned() -> None:
    chunks = [
        (C, get("/one")),
        (C, b"GET /lo"),
        (C, b""),  # the rest of /lost's head is lost
        (C, b"st HTTP/1.1\r\nHost: h\r\n\r\n" + get("/three")),
        (S, ok(b"1") + ok(b"2") + ok(b"3")),
    ]
    assert summary(chunks) == [("/one", 200, "1"), (None, 200, "2"), ("/three", 200, "3")]
    counters = run_bytes(chunks, plugin).stats["plugin_counters"]
    assert list(counters.values()) == [
        {"http1 messages dropped": 1, "paired": 2, "unpaired.gap": 1}
    ]


def test_garbage_instead_of_a_response_is_skipped_to_the_next_status_line() -> None:
    chunks = [
        (C, get("/a") + get("/b")),
        (S, ok(b"a") + b"\x00\xffnot http at all\r\nstill not\r\n\r\n" + ok(b"b")),
    ]
    assert summary(chunks) == [("/a", 200, "a"), ("/b", 200, "b")]


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
