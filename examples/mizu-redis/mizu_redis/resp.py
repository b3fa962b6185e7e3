"""An incremental RESP2/RESP3 decoder for one direction of a connection (sans-IO).

Bytes go in with :meth:`RespReader.feed`; complete top-level values come out as :class:`Frame`
objects whose ``value`` is already JSON-ready (bulk strings decoded as UTF-8, invalid bytes as
``\\xNN`` escapes). Memory stays bounded whatever the peer sends: strings keep at most
``max_value_bytes``, aggregates at most ``max_elements`` items, a frame stores at most
``max_frame_bytes`` in all, and the bytes past those caps are skipped as they arrive, never
buffered. Nesting deeper than :data:`MAX_DEPTH`, a line longer than :data:`MAX_LINE` or a type
byte RESP does not have is a protocol error: the reader drops what it holds and waits for a
point to resynchronise (:meth:`RespReader.lose`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

MAX_LINE = 64 << 10
"""Longest header or inline-command line (Redis's own inline limit)."""
MAX_DEPTH = 32
MAX_BULK = 512 << 20
"""Redis's largest string (proto-max-bulk-len); a longer length is garbage."""
ELEMENT_COST = 16
"""What one stored aggregate item counts against a frame's byte budget."""

COMMAND_START = re.compile(rb"\*[1-9][0-9]{0,8}\r\n\$[0-9]{1,10}\r\n")
"""How a RESP command (an array of bulk strings) begins; where a lost client resynchronises."""

_AGGREGATES = {b"*": "array", b"%": "map", b"~": "set", b">": "push", b"|": "attribute"}
_BLOBS = {b"$": "bulk-string", b"=": "verbatim-string", b"!": "error"}


class RespError(ValueError):
    """Bytes that are not RESP."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_value_bytes: int = 1024
    max_elements: int = 128
    max_frame_bytes: int = 64 << 10


@dataclass(slots=True)
class Frame:
    """One complete top-level RESP value (or inline command) and where it was on the wire."""

    type: str
    """``simple-string``, ``error``, ``integer``, ``bulk-string``, ``array``, ``null``, ``map``,
    ``set``, ``double``, ``boolean``, ``big-number``, ``verbatim-string``, ``push`` or
    ``inline`` (a command typed as a line of words)."""
    value: Any
    first_time: float
    last_time: float
    size: int = 0
    truncated: bool = False
    attributes: dict[str, Any] = field(default_factory=dict)
    errors_before: int = 0
    """Protocol errors met since the previous frame of this direction."""


@dataclass(slots=True)
class _Aggregate:
    type: str
    remaining: int
    items: list[Any] = field(default_factory=list)


@dataclass(slots=True)
class _Blob:
    type: str
    remaining: int
    prefix: bytearray = field(default_factory=bytearray)
    awaiting_crlf: bool = False


def text(data: bytes) -> str:
    return data.decode("utf-8", "backslashreplace")


def map_key(key: Any) -> str:
    """A RESP3 map key as a JSON object key: strings as they are, anything else as JSON."""
    return key if isinstance(key, str) else json.dumps(key)


def _double(literal: str) -> float | str:
    number = float(literal)
    # JSON has no infinities nor NaN: keep Redis's spelling of those.
    return number if math.isfinite(number) else literal.lower()


class RespReader:
    """Decodes one direction. ``inline`` allows inline commands (the client side)."""

    def __init__(self, limits: Limits, inline: bool) -> None:
        self.limits = limits
        self.inline = inline
        self.lost = False
        """Waiting for a point to resynchronise after a gap or a protocol error."""
        self.skipped = 0
        """Bytes dropped while lost."""
        self.resyncs = 0
        """Times a frame start was found again after being lost."""
        self.errors = 0
        """Protocol errors met (each one made the reader lost)."""
        self._unreported_errors = 0
        self.saw_resp3 = False
        """A RESP3-only type went by."""
        self._buffer = bytearray()
        self._stack: list[_Aggregate] = []
        self._blob: _Blob | None = None
        self._frame: Frame | None = None
        self._budget = 0

    def lose(self) -> None:
        """Forget the partial frame: bytes were lost or were not RESP."""
        self.skipped += len(self._buffer)
        self._buffer.clear()
        self._stack.clear()
        self._blob = None
        self._frame = None
        self.lost = True

    def feed(self, data: bytes, timestamp: float) -> list[Frame]:
        """Decode ``data``, which follows the last bytes fed; the frames it completes.

        Bytes that are not RESP count in :attr:`errors`; the reader is then lost and skips
        bytes until a frame can start.
        """
        frames: list[Frame] = []
        while data:
            if self.lost:
                data = self._resynchronise(data)
                if not data:
                    break
            self._buffer += data
            position = 0
            try:
                while position < len(self._buffer):
                    advanced = self._step(position, timestamp, frames)
                    if advanced == position:
                        break
                    position = advanced
            except RespError:
                self.errors += 1
                self._unreported_errors += 1
                # A command may start later in the chunk; a reply only at a chunk's start.
                data = bytes(self._buffer[position + 1 :]) if self.inline else b""
                del self._buffer[position + 1 :]
                self.lose()
                continue
            del self._buffer[:position]
            break
        return frames

    def _resynchronise(self, data: bytes) -> bytes:
        """The part of ``data`` from where a frame can start, or ``b""``."""
        if self.inline:
            # a command starts a line: the chunk's first byte, or one after a line feed
            match = COMMAND_START.search(data)
            while match is not None and match.start() and data[match.start() - 1] != 0x0A:
                match = COMMAND_START.search(data, match.start() + 1)
            start = match.start() if match is not None else len(data)
        else:
            # Replies carry no marker: trust a chunk that starts with a well-formed line.
            start = 0 if _starts_like_reply(data) else len(data)
        self.skipped += start
        if start < len(data):
            self.lost = False
            self.resyncs += 1
        return data[start:]

    # -- decoding ------------------------------------------------------------------------------

    def _step(self, position: int, timestamp: float, frames: list[Frame]) -> int:
        buffer = self._buffer
        blob = self._blob
        if blob is not None:
            return self._step_blob(blob, position, timestamp, frames)
        end = buffer.find(b"\n", position)
        if end < 0:
            if len(buffer) - position > MAX_LINE:
                raise RespError("line too long")
            return position
        line = bytes(buffer[position:end]).removesuffix(b"\r")
        if self._frame is None:
            self._frame = Frame(
                "", None, timestamp, timestamp, errors_before=self._unreported_errors
            )
            self._unreported_errors = 0
            self._budget = self.limits.max_frame_bytes
        self._frame.size += end + 1 - position
        self._line(line, timestamp, frames)
        return end + 1

    def _step_blob(self, blob: _Blob, position: int, timestamp: float, frames: list[Frame]) -> int:
        buffer = self._buffer
        assert self._frame is not None
        if blob.awaiting_crlf:
            if len(buffer) - position < 2:
                return position
            if buffer[position : position + 2] != b"\r\n":
                raise RespError("string not followed by CRLF")
            self._frame.size += 2
            self._blob = None
            self._complete(blob_value(blob), blob.type, timestamp, frames)
            return position + 2
        take = min(blob.remaining, len(buffer) - position)
        room = max(min(self.limits.max_value_bytes, self._budget) - len(blob.prefix), 0)
        blob.prefix += buffer[position : position + min(take, room)]
        if take > room:
            self._frame.truncated = True
        blob.remaining -= take
        self._frame.size += take
        if blob.remaining == 0:
            blob.awaiting_crlf = True
            self._budget -= len(blob.prefix)
        return position + take

    def _line(self, line: bytes, timestamp: float, frames: list[Frame]) -> None:
        kind, rest = line[:1], line[1:]
        try:
            if kind in _BLOBS or kind in _AGGREGATES:
                count = int(rest)
            if kind == b"+":
                self._complete(text(rest), "simple-string", timestamp, frames)
            elif kind == b"-":
                self._complete(text(rest), "error", timestamp, frames)
            elif kind == b":":
                self._complete(int(rest), "integer", timestamp, frames)
            elif kind in _BLOBS:
                if count < 0 and kind == b"$":
                    self._complete(None, "null", timestamp, frames)
                elif not 0 <= count <= MAX_BULK:
                    raise RespError(f"bad string length {count}")
                else:
                    self._resp3(kind != b"$")
                    self._blob = _Blob(_BLOBS[kind], count, awaiting_crlf=count == 0)
            elif kind in _AGGREGATES:
                self._resp3(kind != b"*")
                if count < 0 and kind == b"*":
                    self._complete(None, "null", timestamp, frames)
                elif count < 0:
                    raise RespError(f"bad aggregate length {count}")
                else:
                    self._open(_AGGREGATES[kind], count, timestamp, frames)
            elif kind == b"_" and not rest:
                self._resp3(True)
                self._complete(None, "null", timestamp, frames)
            elif kind == b",":
                self._resp3(True)
                self._complete(_double(text(rest)), "double", timestamp, frames)
            elif kind == b"#" and rest in (b"t", b"f"):
                self._resp3(True)
                self._complete(rest == b"t", "boolean", timestamp, frames)
            elif kind == b"(":
                self._resp3(True)
                self._complete(str(int(rest)), "big-number", timestamp, frames)
            elif self.inline and not self._stack:
                self._inline(line, timestamp, frames)
            else:
                raise RespError(f"not RESP: {line[:16]!r}")
        except ValueError as error:
            if isinstance(error, RespError):
                raise
            raise RespError(f"bad number in {line[:24]!r}") from error

    def _resp3(self, is_resp3: bool) -> None:
        self.saw_resp3 = self.saw_resp3 or is_resp3

    def _inline(self, line: bytes, timestamp: float, frames: list[Frame]) -> None:
        words = line.split()
        if not words:  # Redis ignores empty lines between commands: no frame
            assert self._frame is not None
            self._unreported_errors += self._frame.errors_before
            self._frame = None
            return
        self._complete([text(word) for word in words], "inline", timestamp, frames)

    def _open(self, type_: str, count: int, timestamp: float, frames: list[Frame]) -> None:
        pairs = type_ in ("map", "attribute")
        if count == 0:
            self._complete({} if pairs else [], type_, timestamp, frames)
            return
        if len(self._stack) >= MAX_DEPTH:
            raise RespError("nested too deep")
        self._stack.append(_Aggregate(type_, count * 2 if pairs else count))

    def _complete(self, value: Any, type_: str, timestamp: float, frames: list[Frame]) -> None:
        """A value is complete: store it in its aggregate, closing those it completes."""
        frame = self._frame
        assert frame is not None
        limits = self.limits
        while self._stack:
            parent = self._stack[-1]
            if type_ == "attribute":
                frame.attributes.update(value)
                return  # attributes annotate the next value; they are no item of the parent
            pairs = parent.type in ("map", "attribute")
            kept = limits.max_elements * (2 if pairs else 1)
            if len(parent.items) < kept and self._budget > 0:
                parent.items.append(value)
                self._budget -= ELEMENT_COST
            else:
                frame.truncated = True
            parent.remaining -= 1
            if parent.remaining:
                return
            self._stack.pop()
            value, type_ = build(parent), parent.type
        if type_ == "attribute":
            frame.attributes.update(value)
            return
        frame.type, frame.value, frame.last_time = type_, value, timestamp
        frames.append(frame)
        self._frame = None


def blob_value(blob: _Blob) -> str:
    data = bytes(blob.prefix)
    if blob.type == "verbatim-string":
        data = data[4:]  # "txt:" / "mkd:": the format, not the text
    return text(data)


def build(aggregate: _Aggregate) -> Any:
    items = aggregate.items
    if aggregate.type in ("map", "attribute"):
        return {map_key(items[i]): items[i + 1] for i in range(0, len(items) - 1, 2)}
    return items


def _starts_like_reply(data: bytes) -> bool:
    end = data.find(b"\r\n")
    if end < 1 or end > MAX_LINE:
        return False
    kind, rest = data[:1], data[1:end]
    if kind in (b"+", b"-"):
        return True
    if kind in _BLOBS or kind in _AGGREGATES or kind in (b":", b"("):
        return rest.lstrip(b"-").isdigit()
    if kind == b"#":
        return rest in (b"t", b"f")
    return (kind == b"_" and not rest) or (kind == b"," and bool(rest))
