"""Garbage, gaps and arbitrary splits never make the dissector raise (Hypothesis)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mizu_http import plugin
from mizu_http.http2 import PREFACE

from mizu_core import Direction
from mizu_core.testkit import run_bytes

C, S = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT
STARTS = {
    "http1": [(C, b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")],
    "http2": [(C, PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")],
    "websocket": [
        (C, b"GET /w HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
        (S, b"HTTP/1.1 101 OK\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"),
    ],
}
# Fragments that steer the parsers into their less travelled states.
PIECES = st.sampled_from(
    [
        b"\r\n",
        b"0\r\n\r\n",
        b"ffffffff\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
        b"HTTP/1.1 101 S\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
        b"GET / HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
        b"\x00\x00\x05\x01\x04\x00\x00\x00\x01\xbe\xbf\xff\xff\xff",
        b"\x00\x00\x03\x09\x04\x00\x00\x00\x01\x82\x86\x84",
        b"\xc1\x85\x01\x02\x03\x04abcde",
        b"\x88\x02\x03\xe8",
    ]
)
CHUNKS = st.lists(
    st.tuples(st.sampled_from([C, S]), st.one_of(st.binary(max_size=64), PIECES)),
    max_size=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=st.sampled_from(sorted(STARTS)), chunks=CHUNKS)
def test_no_input_makes_the_plugin_raise(start: str, chunks: list[tuple[Direction, bytes]]) -> None:
    outputs = run_bytes(STARTS[start] + chunks, plugin)
    assert outputs.stats["plugin_errors"] == {}
