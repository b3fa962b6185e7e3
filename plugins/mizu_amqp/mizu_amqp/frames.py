"""Splitting one direction of an AMQP 0-9-1 connection into frames.

A frame is ``type:u8 channel:u16 size:u32 payload[size] 0xCE``; the client opens with the
8-byte protocol header ``AMQP\\x00\\x00\\x09\\x01``. The reader is sans-IO: bytes in, calls on a
:class:`FrameHandler` out. Method and content-header frames are small and handed over whole;
body frames can be as large as the negotiated ``frame-max`` and are streamed in chunks, so a
reader never holds more than one small frame.

A reader starts unsynchronised (the capture may begin mid-connection) and falls back to that
state after a gap or garbage: it then looks for the next frame it can prove, a method frame of
a known method, a content header or a heartbeat, each with its frame-end octet in place. Body
frames are never trusted for resynchronisation: their payload is arbitrary.
"""

from __future__ import annotations

import re
import struct
from typing import Final, Protocol

FRAME_METHOD: Final = 1
FRAME_HEADER: Final = 2
FRAME_BODY: Final = 3
FRAME_HEARTBEAT: Final = 8
FRAME_END: Final = 0xCE
FRAME_OVERHEAD: Final = 8
"""Header (7 octets) and frame-end octet around every frame's payload."""

PROTOCOL_HEADER_PREFIX: Final = b"AMQP"
PROTOCOL_HEADER_SIZE: Final = 8
BASIC_CLASS_ID: Final = 60

_FRAME_HEADER = struct.Struct(">BHI")
"""Frame type, channel, payload size."""
_PROTOCOL_HEADER_FIRST = PROTOCOL_HEADER_PREFIX[0]

DEFAULT_FRAME_LIMIT: Final = 16 << 20
"""Largest frame accepted by default when none was negotiated (RabbitMQ's default is 128 KiB)."""

MAX_CONTROL_FRAME: Final = 1 << 20
"""Largest method or content-header frame accepted once synchronised (they hold a few tables)."""

_CANDIDATE = re.compile(rb"AMQP|[\x01\x02\x08]..\x00\x00", re.DOTALL)
"""Where a frame may start while resynchronising: a protocol header, or a method, header or
heartbeat frame under 64 KiB (the two high octets of its size are zero)."""

_METHODS_BY_CLASS: Final = {
    10: (10, 11, 20, 21, 30, 31, 40, 41, 50, 51, 60, 61, 70, 71),  # connection
    20: (10, 11, 20, 21, 40, 41),  # channel
    40: (10, 11, 20, 21, 30, 31, 40, 51),  # exchange
    50: (10, 11, 20, 21, 30, 31, 40, 41, 50, 51),  # queue
    60: (10, 11, 20, 21, 30, 31, 40, 50, 60, 70, 71, 72, 80, 90, 100, 110, 111, 120),  # basic
    85: (10, 11),  # confirm
    90: (10, 11, 20, 21, 30, 31),  # tx
}
"""AMQP 0-9-1's methods (with RabbitMQ's extensions), as pamqp knows them: written out because
detection runs on every connection of a capture and importing pamqp costs more than all the rest
of the plugin's detection; a test holds the table to pamqp's."""

KNOWN_METHODS: Final = frozenset(
    class_id << 16 | method_id
    for class_id, method_ids in _METHODS_BY_CLASS.items()
    for method_id in method_ids
)
"""Method identifiers (``class_id << 16 | method_id``) as they open a method frame's payload."""


class FrameHandler(Protocol):
    """What a :class:`FrameReader` reports to."""

    def on_protocol_header(self, header: bytes, timestamp: float) -> None: ...

    def on_frame(self, frame_type: int, channel: int, payload: bytes, timestamp: float) -> None:
        """A whole method, content-header or body frame that checked out (``frame_type`` is
        :data:`FRAME_METHOD`, :data:`FRAME_HEADER` or :data:`FRAME_BODY`; ``payload`` without
        framing)."""

    def on_heartbeat(self) -> None: ...

    def on_body_start(self, channel: int, size: int, timestamp: float) -> None:
        """A body frame larger than what has arrived: its payload follows in chunks."""

    def on_body_chunk(self, channel: int, chunk: bytes, timestamp: float) -> None: ...

    def on_body_end(self, channel: int, timestamp: float) -> None:
        """The body frame's frame-end octet checked out."""

    def on_lost_sync(self) -> None:
        """A synchronised stream stopped making sense: partial content is void."""

    def on_skipped(self, count: int) -> None:
        """``count`` octets were thrown away while looking for a frame."""

    def on_resync(self) -> None:
        """A frame was found again after lost or skipped octets."""


def verify_frame(data: bytes | bytearray, offset: int) -> int:
    """Check whether a provable frame starts at ``offset``.

    :returns: the frame's length when it is a protocol header, method, content-header or
        heartbeat frame that checks out; 0 when ``data`` ends before it can be told; -1 when
        it is not one.
    """
    available = len(data) - offset
    if data[offset : offset + 4] == PROTOCOL_HEADER_PREFIX:
        if available < PROTOCOL_HEADER_SIZE:
            return 0
        return PROTOCOL_HEADER_SIZE if data[offset + 4] in (0, 1) else -1
    if available < 7:
        return 0
    frame_type = data[offset]
    size = int.from_bytes(data[offset + 3 : offset + 7])
    if frame_type == FRAME_HEARTBEAT:
        if size != 0 or data[offset + 1] or data[offset + 2]:
            return -1
    elif frame_type == FRAME_METHOD:
        if size < 4:
            return -1
        if available >= 11 and int.from_bytes(data[offset + 7 : offset + 11]) not in KNOWN_METHODS:
            return -1
    elif frame_type == FRAME_HEADER:
        if size < 14:
            return -1
        if available >= 11 and (
            int.from_bytes(data[offset + 7 : offset + 9]) != BASIC_CLASS_ID
            or data[offset + 9]
            or data[offset + 10]
        ):
            return -1
    else:
        return -1
    end = offset + 7 + size
    if len(data) <= end:
        return 0
    return size + FRAME_OVERHEAD if data[end] == FRAME_END else -1


def find_frame(data: bytes | bytearray, start: int = 0) -> tuple[int, int]:
    """The first offset from ``start`` where :func:`verify_frame` does not say no.

    :returns: ``(offset, length)``: ``length`` > 0 for a proven frame, 0 when the frame at
        ``offset`` needs more data; ``(-1, 0)`` when there is no candidate at all.
    """
    position = start
    while True:
        match = _CANDIDATE.search(data, position)
        if match is None:
            return -1, 0
        offset = match.start()
        length = verify_frame(data, offset)
        if length >= 0:
            return offset, length
        position = offset + 1


class FrameReader:
    """One direction's frames, resynchronising after gaps and garbage.

    No frame may be larger than the negotiated ``frame-max`` (:attr:`max_frame`) nor than
    :attr:`limit`: a size past them is garbage, not a reason to wait for gigabytes.
    """

    __slots__ = (
        "_body_channel",
        "_body_left",
        "_buffer",
        "_end_expected",
        "_largest_body",
        "_largest_control",
        "_resyncing",
        "_synchronised",
        "handler",
        "limit",
        "max_frame",
    )

    def __init__(self, handler: FrameHandler, limit: int = DEFAULT_FRAME_LIMIT) -> None:
        self.handler = handler
        self.limit = limit
        """The largest frame accepted whatever was negotiated (octets, framing included)."""
        self.max_frame = 0
        """The negotiated ``frame-max`` (0: not known yet, or no limit)."""
        self._largest_control = min(MAX_CONTROL_FRAME, limit - FRAME_OVERHEAD)
        """Largest method or header payload every limit allows (the fast path's check)."""
        self._largest_body = limit - FRAME_OVERHEAD
        self._buffer = bytearray()
        self._synchronised = False
        self._resyncing = False
        """Octets were lost or skipped since the last frame that checked out."""
        self._body_left = 0
        self._body_channel = 0
        self._end_expected = False

    def negotiate(self, frame_max: int) -> None:
        """The connection's ``frame-max``, from its ``connection.tune-ok``."""
        self.max_frame = frame_max
        self._largest_body = min(self.limit, frame_max) - FRAME_OVERHEAD
        self._largest_control = min(MAX_CONTROL_FRAME, self._largest_body)

    def gap(self) -> None:
        """Bytes were lost: whatever was half read is dropped."""
        self._buffer.clear()
        self._synchronised = False
        self._resyncing = True
        self._body_left = 0
        self._end_expected = False

    def feed(self, data: bytes, timestamp: float) -> int:
        """Read what ``data`` completes; the number of frames read."""
        buffer = self._buffer
        if buffer:
            buffer += data
            view: bytes | bytearray = buffer
        else:
            view = data
        handler = self.handler
        offset = 0
        frames = 0
        size = len(view)
        while offset < size:
            if self._synchronised and not (self._body_left or self._end_expected):
                offset, read = self._whole_frames(view, offset, timestamp)
                frames += read
                if offset >= size:
                    break
            if self._body_left:
                take = min(self._body_left, size - offset)
                # bytes() of a slice of bytes is that slice, not another copy.
                chunk = bytes(view[offset : offset + take])
                handler.on_body_chunk(self._body_channel, chunk, timestamp)
                self._body_left -= take
                offset += take
                continue
            if self._end_expected:
                self._end_expected = False
                if view[offset] == FRAME_END:
                    offset += 1
                    handler.on_body_end(self._body_channel, timestamp)
                else:
                    offset += self._lose_sync()
                continue
            if not self._synchronised:
                found, length = find_frame(view, offset)
                if found < 0:
                    # Keep a tail that may be the start of a candidate.
                    keep = max(offset, size - 6)
                    if keep > offset:
                        handler.on_skipped(keep - offset)
                        self._resyncing = True
                    offset = keep
                    break
                if found > offset:
                    handler.on_skipped(found - offset)
                    self._resyncing = True
                offset = found
                if length == 0:
                    break
                self._synchronised = True
                if self._resyncing:
                    self._resyncing = False
                    handler.on_resync()
                continue
            # What _whole_frames left: a frame not all here yet, a heartbeat, a protocol
            # header, or one that breaks a limit or the framing.
            if size - offset < 7:
                break
            frame_type, channel, length = _FRAME_HEADER.unpack_from(view, offset)
            if (
                frame_type == _PROTOCOL_HEADER_FIRST
                and view[offset : offset + 4] == PROTOCOL_HEADER_PREFIX
            ):
                if size - offset < PROTOCOL_HEADER_SIZE:
                    break
                handler.on_protocol_header(bytes(view[offset : offset + 8]), timestamp)
                offset += PROTOCOL_HEADER_SIZE
                continue
            consumed = self._frame(view, offset, frame_type, channel, length, timestamp)
            if consumed == 0:
                break
            frames += consumed > 1  # not a resynchronising skip
            offset += consumed
        if view is buffer:
            del buffer[:offset]
        else:
            buffer += data[offset:]
        return frames

    def _whole_frames(
        self, view: bytes | bytearray, offset: int, timestamp: float
    ) -> tuple[int, int]:
        """Read the whole method, content-header and body frames within every limit from
        ``offset`` on (nearly all of a synchronised stream) in one tight loop; the offset of
        the first octet it leaves to :meth:`feed`, and the frames read."""
        size = len(view)
        data: bytes
        if isinstance(view, bytes):
            data = view
        else:
            # The reassembly buffer: copied once so that every payload is a slice of bytes,
            # but only when a whole frame is there (a large frame arriving in many segments
            # waits in the buffer without being copied again and again).
            if size - offset < 7 or offset + 7 + _FRAME_HEADER.unpack_from(view, offset)[2] >= size:
                return offset, 0
            data = bytes(view)
        frames = 0
        # The header is read octet by octet: struct's tuple of boxed integers, and the generic
        # arithmetic on them, cost more than the rest of a frame's reading.
        while size - offset >= 7:
            frame_type = data[offset]
            length = (
                data[offset + 3] << 24
                | data[offset + 4] << 16
                | data[offset + 5] << 8
                | data[offset + 6]
            )
            end = offset + 7 + length
            if end >= size or data[end] != FRAME_END:
                break
            channel = data[offset + 1] << 8 | data[offset + 2]
            # A method may renegotiate the limits: they are read again for every frame.
            if frame_type == FRAME_BODY:
                fits = length <= self._largest_body
            elif frame_type in (FRAME_METHOD, FRAME_HEADER):
                fits = length <= self._largest_control
            else:
                fits = False
            if not fits:
                break
            self.whole_frame(frame_type, channel, data[offset + 7 : end], timestamp)
            offset = end + 1
            frames += 1
        return offset, frames

    def whole_frame(self, frame_type: int, channel: int, payload: bytes, timestamp: float) -> None:
        """Hand a whole method, content-header or body frame to the handler (a subclass that
        knows its handler's class calls it directly)."""
        self.handler.on_frame(frame_type, channel, payload, timestamp)

    def _frame(
        self,
        view: bytes | bytearray,
        offset: int,
        frame_type: int,
        channel: int,
        length: int,
        timestamp: float,
    ) -> int:
        """Read the frame whose header is at ``offset``; the octets used (0: wait for more)."""
        if length + FRAME_OVERHEAD > self.limit or (
            self.max_frame and length + FRAME_OVERHEAD > self.max_frame
        ):
            return self._lose_sync()
        if frame_type == FRAME_BODY:
            # Not all here yet (feed reads whole ones): stream it.
            self.handler.on_body_start(channel, length, timestamp)
            self._body_left = length
            self._body_channel = channel
            self._end_expected = True
            return 7
        if frame_type not in (FRAME_METHOD, FRAME_HEADER, FRAME_HEARTBEAT):
            return self._lose_sync()
        if length > MAX_CONTROL_FRAME:
            return self._lose_sync()
        end = offset + 7 + length
        if len(view) <= end:
            return 0
        if view[end] != FRAME_END:
            return self._lose_sync()
        if frame_type == FRAME_HEARTBEAT:
            self.handler.on_heartbeat()
        else:
            self.whole_frame(frame_type, channel, bytes(view[offset + 7 : end]), timestamp)
        return length + FRAME_OVERHEAD

    def _lose_sync(self) -> int:
        """Fall back to searching, one octet past the frame that did not check out."""
        self._synchronised = False
        self._resyncing = True
        self.handler.on_lost_sync()
        self.handler.on_skipped(1)
        return 1
