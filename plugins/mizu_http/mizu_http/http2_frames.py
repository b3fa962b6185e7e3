"""HTTP/2 frames (RFC 9113 sections 4 and 6): their types, flags and headers, and where frames
begin in bytes whose frame boundaries are not known (after a capture gap, or in a capture that
began mid-connection), which :mod:`mizu_http.http2`'s session and the plugin's offer read.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Final

import hpack

from mizu_http.hpack_decoder import MAX_HPACK_TABLE, HpackDecoder

# The constants are Final: the compiled build then inlines them, where it would look each
# name up in the module's dictionary every time it is read (seven times a frame).
FRAME_HEADER: Final = 9
FRAME_HEADER_FIELDS = struct.Struct("!BHBBI")
"""A frame header: its 24-bit length (high octet, low 16 bits), type, flags, stream."""
MAX_BUFFERED_FRAME: Final = 2 << 20
"""Largest frame kept whole (peers default to 16 KiB and rarely allow more than 1 MiB); a
larger one ends the decoding of the connection rather than the memory bound."""

DATA: Final = 0
HEADERS: Final = 1
PRIORITY: Final = 2
RST_STREAM: Final = 3
SETTINGS: Final = 4
PUSH_PROMISE: Final = 5
PING: Final = 6
GOAWAY: Final = 7
WINDOW_UPDATE: Final = 8
CONTINUATION: Final = 9
END_STREAM: Final = 0x1
ACK: Final = 0x1
END_HEADERS: Final = 0x4
PADDED: Final = 0x8
PRIORITY_FLAG: Final = 0x20
SETTINGS_HEADER_TABLE_SIZE: Final = 1

SETTINGS_MAX_FRAME_SIZE: Final = 5
DEFAULT_MAX_FRAME: Final = 1 << 14
"""The largest frame a peer may send until the other peer's SETTINGS allow more."""

_FIXED_LENGTHS = {PRIORITY: 5, RST_STREAM: 4, PING: 8, WINDOW_UPDATE: 4}
_CONNECTION_FRAMES = frozenset((SETTINGS, PING, GOAWAY))
_STREAM_FRAMES = frozenset((DATA, HEADERS, PRIORITY, RST_STREAM, PUSH_PROMISE, CONTINUATION))
_BLOCK_FRAMES = frozenset((HEADERS, PUSH_PROMISE, CONTINUATION))
OPENING_FRAMES = frozenset((DATA, HEADERS, PUSH_PROMISE, CONTINUATION))
"""Frames only the side that opened a stream sends on it (odd ids: the client)."""
_FLAGS = (
    END_STREAM | PADDED,  # DATA
    END_STREAM | END_HEADERS | PADDED | PRIORITY_FLAG,  # HEADERS
    0,  # PRIORITY
    0,  # RST_STREAM
    ACK,  # SETTINGS
    END_HEADERS | PADDED,  # PUSH_PROMISE
    ACK,  # PING
    0,  # GOAWAY
    0,  # WINDOW_UPDATE
    END_HEADERS,  # CONTINUATION
)
"""The flags each frame type defines: a header with others is not believed on a resync."""
STREAM_WINDOW: Final = 4096
"""How far beyond the highest stream id seen a resynchronised frame's stream may be."""
_HEADER_CANDIDATE = re.compile(rb"(?=...[\x00-\x09][\x00-\x2d][\x00-\x7f])", re.S)
"""Where a frame header may start (type, flags, reserved bit): found in C, checked in Python."""


@dataclass(slots=True)
class FrameRules:
    """What frame headers must look like to be believed where the frame boundaries are not
    known: after a capture gap, or at the start of a capture that began mid-connection."""

    max_frame: int = DEFAULT_MAX_FRAME
    highest_stream: int = 0
    """The highest stream id seen, 0 before any: ids far beyond it are not believed."""
    even_streams: bool = False
    """Whether DATA and HEADERS may be on even (server-opened, pushed) streams."""
    push_promise: bool = True
    """Whether the sender may be the server (the only one that sends PUSH_PROMISE)."""
    lone_frame: bool = True
    """Whether one whole frame that ends the bytes is believed anywhere: a peer's write
    usually ends with a frame, so a segment ends with one too. One whole frame is believed
    from the first byte (a capture or a gap ends at a segment's start, often a frame's)."""

    def plausible(self, length: int, kind: int, flags: int, stream: int) -> bool:
        if kind > CONTINUATION or flags & ~_FLAGS[kind] or stream >> 31:
            return False
        if length > self.max_frame or _FIXED_LENGTHS.get(kind, length) != length:
            return False
        if kind == SETTINGS and (length % 6 or (flags & ACK and length)):
            return False
        if kind in _CONNECTION_FRAMES:
            return not stream
        if kind == PUSH_PROMISE and not self.push_promise:
            return False
        if kind in _STREAM_FRAMES and not stream:
            return False
        if kind in OPENING_FRAMES and not stream & 1 and not self.even_streams:
            return False
        return not self.highest_stream or stream <= self.highest_stream + STREAM_WINDOW

    def chain(self, head: bytes, start: int) -> bool | None:
        """Whether frames believed to be frames run from ``start`` to the end of ``head``:
        True once two are whole (or one, as :attr:`lone_frame` says), False at the first
        header not believed, None while the run is too short to tell."""
        position = start
        complete = 0
        block_stream = 0
        end = len(head)
        while position + FRAME_HEADER <= end:
            length_high, length_low, kind, flags, stream = FRAME_HEADER_FIELDS.unpack_from(
                head, position
            )
            length = length_high << 16 | length_low
            if not self.plausible(length, kind, flags, stream):
                return False
            if (kind == CONTINUATION) != bool(block_stream) or (
                block_stream and stream != block_stream
            ):
                return False  # a header block goes on in CONTINUATION frames and nothing else
            if kind in _BLOCK_FRAMES:
                block_stream = 0 if flags & END_HEADERS else stream
            position += FRAME_HEADER + length
            if position > end:
                break
            complete += 1
        if complete >= 2 or (complete and (not start or (position == end and self.lone_frame))):
            return True
        return None


def find_frames(head: bytes, rules: FrameRules) -> tuple[int | None, int]:
    """Where believable frames begin in ``head``: ``(offset, offset)`` once sure; while not,
    ``(None, keep)``, with the bytes before ``keep`` known not to start any."""
    for match in _HEADER_CANDIDATE.finditer(head):
        start = match.start()
        verdict = rules.chain(head, start)
        if verdict:
            return start, start
        if verdict is None:
            return None, start
    return None, max(len(head) - FRAME_HEADER + 1, 0)


def sends_requests(head: bytes, start: int) -> bool | None:
    """Whether the first header block in the frames of ``head`` from ``start`` is a request's
    (True) or a response's (False), by its first pseudo-header that decodes without the
    dynamic table; None when no block tells."""
    position = start
    while position + FRAME_HEADER <= len(head):
        length_high, length_low, kind, flags, _ = FRAME_HEADER_FIELDS.unpack_from(head, position)
        payload_start = position + FRAME_HEADER
        position = payload_start + (length_high << 16 | length_low)
        if kind != HEADERS or not flags & END_HEADERS or position > len(head):
            continue
        payload = head[payload_start:position]
        fragment = unpad(payload, flags)
        if flags & PRIORITY_FLAG:
            fragment = fragment[5:]
        try:
            headers, _ = HpackDecoder(MAX_HPACK_TABLE).decode(fragment)
        except (hpack.HPACKError, IndexError):
            continue
        for name, _ in headers:
            if name == ":status":
                return False
            if name in (":method", ":path", ":scheme", ":authority"):
                return True
    return None


def frames_verdict(head: bytes) -> bool | None:
    """Whether ``head`` is a run of valid HTTP/2 frames from its first byte: True, False, or
    None when not even one frame header is there yet."""
    position = 0
    complete = 0
    while position + FRAME_HEADER <= len(head):
        length = int.from_bytes(head[position : position + 3], "big")
        kind = head[position + 3]
        stream = int.from_bytes(head[position + 5 : position + 9], "big")
        if kind > CONTINUATION or stream >> 31:
            return False
        if kind in _CONNECTION_FRAMES and stream:
            return False
        if kind in _STREAM_FRAMES and not stream:
            return False
        if _FIXED_LENGTHS.get(kind, length) != length or (kind == SETTINGS and length % 6):
            return False
        if length > MAX_BUFFERED_FRAME:
            return False
        position += FRAME_HEADER + length
        if position <= len(head):
            complete += 1
    if complete:
        return True
    return None if position == 0 else False


def unpad(payload: bytes, flags: int) -> bytes:
    if flags & PADDED and payload:
        padding = payload[0]
        return payload[1 : max(len(payload) - padding, 1)]
    return payload
