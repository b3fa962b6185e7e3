"""The shortcuts of the hot path give what the plain reading gives: bodies tested for control
characters on their octets, header tables decoded once, whole frames read in one loop."""

from __future__ import annotations

import base64
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from mizu_amqp.fields import headers_table
from mizu_amqp.frames import FRAME_BODY, FRAME_HEADER, FRAME_METHOD, FrameReader
from mizu_amqp.values import body_json
from pamqp import commands, frame, header, heartbeat
from pamqp.body import ContentBody

CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def reference_body(body: bytes, complete: bool) -> tuple[str, bool]:
    """The rule spelled out on the text: UTF-8 (up to three octets given up when the body was
    cut) without control characters but tab, line feed and carriage return, else base64."""
    candidates = [body] if complete else [body[: len(body) - cut] for cut in range(4)]
    for candidate in candidates:
        try:
            text = candidate.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if not CONTROL.search(text):
            return text, False
        break
    return base64.b64encode(body).decode("ascii"), True


bodies = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=40).map(str.encode),
    st.text(max_size=40).map(lambda text: text.encode()[:-1]),
)


@settings(max_examples=500, deadline=None)
@given(bodies, st.booleans())
def test_body_follows_the_rule(body: bytes, complete: bool) -> None:
    assert body_json(body, complete) == reference_body(body, complete)


def test_a_repeated_header_table_is_a_fresh_dict_each_time() -> None:
    encoded = frame.marshal(
        header.ContentHeader(
            0, 3, commands.Basic.Properties(headers={"tenant": "t1", "attempt": 1})
        ),
        1,
    )[7:-1]
    first, end = headers_table(encoded, 14)
    first["tenant"] = "changed"
    second, _ = headers_table(encoded, 14)
    assert second == {"tenant": "t1", "attempt": 1}
    assert end == len(encoded)


class Recorder:
    """A frame handler that writes down what it is told."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def on_protocol_header(self, header: bytes, timestamp: float) -> None:
        self.calls.append(("protocol", header))

    def on_frame(self, frame_type: int, channel: int, payload: bytes, timestamp: float) -> None:
        kind = {FRAME_METHOD: "method", FRAME_HEADER: "header", FRAME_BODY: "body"}[frame_type]
        self.calls.append((kind, channel, payload))

    def on_heartbeat(self) -> None:
        self.calls.append(("heartbeat",))

    def on_body_start(self, channel: int, size: int, timestamp: float) -> None:
        self.calls.append(("body", channel, b""))

    def on_body_chunk(self, channel: int, chunk: bytes, timestamp: float) -> None:
        kind, body_channel, payload = self.calls[-1]
        self.calls[-1] = (kind, body_channel, payload + chunk)

    def on_body_end(self, channel: int, timestamp: float) -> None:
        pass

    def on_lost_sync(self) -> None:
        self.calls.append(("lost",))

    def on_skipped(self, count: int) -> None:
        if count:
            self.calls.append(("skipped", count))

    def on_resync(self) -> None:
        self.calls.append(("resync",))


def stream() -> bytes:
    parts = [b"AMQP\x00\x00\x09\x01"]
    for index in range(3):
        body = b"x" * (index * 700)
        parts.append(frame.marshal(commands.Basic.Publish(routing_key=f"q{index}"), 1))
        parts.append(frame.marshal(header.ContentHeader(0, len(body)), 1))
        parts += [
            frame.marshal(ContentBody(body[i : i + 500]), 1) for i in range(0, len(body), 500)
        ]
        parts.append(frame.marshal(heartbeat.Heartbeat(), 0))
    return b"".join(parts)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 300), max_size=20))
def test_frames_are_the_same_however_the_stream_is_cut(cuts: list[int]) -> None:
    wire = stream()
    whole = Recorder()
    FrameReader(whole).feed(wire, 1.0)
    pieces = Recorder()
    reader = FrameReader(pieces)
    position = 0
    for length in [*cuts, len(wire)]:
        reader.feed(wire[position : position + length], 1.0)
        position += length
    assert pieces.calls == whole.calls
    kinds = [call[0] for call in whole.calls]
    assert (kinds.count("method"), kinds.count("header"), kinds.count("heartbeat")) == (3, 3, 3)
    assert ("lost",) not in whole.calls
