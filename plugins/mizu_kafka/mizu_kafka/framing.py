"""Size-prefixed frames of one direction of a Kafka connection, with bounded buffering.

Every Kafka message is an int32 size and that many bytes. :class:`FrameSplitter` keeps at most
``cap`` bytes of a frame's body (the rest is counted and dropped: the header and the first
records still decode) and, after a gap or nonsense, searches the stream for the next frame
start with a protocol-supplied test.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable
from typing import Final

from mizu_kafka.records import int32_at

SIZE: Final = struct.Struct(">i")
MAX_FRAME: Final = 1 << 30

FrameStart = Callable[[bytes], tuple[int, bool]]
"""Given the bytes buffered while lost, ``(offset, True)`` when a frame that checks out starts
at ``offset``; ``(offset, False)`` when none can start before ``offset`` (those bytes are
dropped) and more bytes are needed to tell."""


class Frame:
    def __init__(self, body: bytes, size: int, first_time: float, last_time: float) -> None:
        self.body = body
        self.size = size
        """The body's size on the wire; ``len(body) < size`` when the cap cut it."""
        self.first_time = first_time
        self.last_time = last_time

    @property
    def truncated(self) -> bool:
        return len(self.body) < self.size


class FrameSplitter:
    """Cuts one direction's bytes into frames."""

    def __init__(
        self,
        cap: int,
        find_start: FrameStart,
        counters: Counter[str],
        skip: int = 0,
        lost: bool = False,
    ) -> None:
        """``counters`` gets ``bytes_skipped`` and ``resyncs`` (looking for a frame start) and
        ``dropped_bytes`` (past the cap); ``lost`` starts by looking for a frame start (a
        connection caught mid-stream)."""
        self._cap = cap
        self._find_start = find_start
        self._counters = counters
        self._buffer = bytearray()
        self._skip = skip
        self._lost = lost
        self._first_time = 0.0
        self._kept: bytes | None = None
        """The capped body of a frame whose remaining bytes are being dropped."""
        self._size = 0
        self._dropping = 0

    def lose_sync(self) -> None:
        """Forget the partial frame; look for the next frame start."""
        if self._buffer:
            self._counters["bytes_skipped"] += len(self._buffer)
        self._buffer.clear()
        self._kept = None
        self._dropping = 0
        self._lost = True

    def push(self, data: bytes, timestamp: float) -> list[Frame]:
        frames: list[Frame] = []
        if self._skip:
            skipped = min(self._skip, len(data))
            self._skip -= skipped
            data = data[skipped:]
        if self._dropping:
            dropped = min(self._dropping, len(data))
            self._dropping -= dropped
            self._counters["dropped_bytes"] += dropped
            data = data[dropped:]
            if self._dropping:
                return frames
            assert self._kept is not None
            frames.append(Frame(self._kept, self._size, self._first_time, timestamp))
            self._kept = None
        if not data:
            return frames
        if not self._buffer:
            self._first_time = timestamp
            if not self._lost:
                # Most segments hold whole frames: cut them from ``data`` without buffering.
                position = self._whole_frames(data, timestamp, frames)
                if position == len(data):
                    return frames
                data = data[position:]
        self._buffer += data
        while True:
            if self._lost and not self._search():
                return frames
            buffer = self._buffer
            if len(buffer) < 4:
                return frames
            (size,) = SIZE.unpack_from(buffer)
            if not 0 <= size <= MAX_FRAME:
                # Not a frame start: search the bytes after it.
                self._lost = True
                self._counters["bytes_skipped"] += 1
                del buffer[:1]
                continue
            if len(buffer) >= 4 + size:
                frames.append(Frame(bytes(buffer[4 : 4 + size]), size, self._first_time, timestamp))
                del buffer[: 4 + size]
                self._first_time = timestamp
                continue
            if len(buffer) - 4 > self._cap:
                self._kept = bytes(buffer[4 : 4 + self._cap])
                self._size = size
                self._dropping = size - (len(buffer) - 4)
                self._counters["dropped_bytes"] += len(buffer) - 4 - self._cap
                buffer.clear()
            return frames

    def _whole_frames(self, data: bytes, timestamp: float, frames: list[Frame]) -> int:
        """Append the whole frames at the start of ``data``; the offset after the last."""
        position = 0
        available = len(data)
        # The size read in place, as a native int, and the body a slice of ``data``: the
        # dissector's input is bytes, so a slice of it is a frame body already.
        while available - position >= 4:
            size = int32_at(data, position)
            end = position + 4 + size
            if not 0 <= size <= MAX_FRAME or end > available:
                break
            frames.append(Frame(data[position + 4 : end], size, timestamp, timestamp))
            position = end
        return position

    def _search(self) -> bool:
        buffer = self._buffer
        start, found = self._find_start(bytes(buffer))
        counters = self._counters
        if start:
            counters["bytes_skipped"] += start
            del buffer[:start]
        if not found:
            return False
        self._lost = False
        counters["resyncs"] += 1
        return True
