"""TLS records (RFC 8446 section 5, RFC 5246 section 6.2) and the handshake messages they carry,
from bytes cut anywhere: sans-IO, bounded, never trusting a length.
"""

from __future__ import annotations

import re

CHANGE_CIPHER_SPEC = 20
ALERT = 21
HANDSHAKE = 22
APPLICATION_DATA = 23
HEARTBEAT = 24
CONTENT_TYPES = frozenset({CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA, HEARTBEAT})

MAX_RECORD = (1 << 14) + 2048
"""The longest record fragment any version allows (TLS 1.2's ciphertext bound)."""
MAX_HANDSHAKE_MESSAGE = 256 << 10
"""A handshake message longer than this is not kept (certificate chains stay far below)."""
HEADER = 5


PROTECTED_HEADER = re.compile(rb"[\x15\x17]\x03\x03")
"""How an application data or alert record of TLS 1.2 or 1.3 starts."""


def record_run_start(data: bytes | bytearray) -> int | None:
    """Where whole records start in bytes taken up in the middle of a connection, or None:
    the first offset (within one record's length) of an application data or alert record
    header followed, after its fragment, by another (two by chance are unlikely); 0 also when
    the records from the start end with ``data``."""
    end = len(data)
    for found in PROTECTED_HEADER.finditer(data, 0, min(end, HEADER + MAX_RECORD + 3)):
        start = found.start()
        length = _protected_length(data, start)
        following = start + HEADER + length
        if length and (_protected_length(data, following) or (start == 0 and _whole_records(data))):
            return start
    return None


def _protected_length(data: bytes | bytearray, offset: int) -> int:
    """The fragment length of the protected record header at ``offset``; 0 when there is
    none (or not all of it yet)."""
    if len(data) < offset + HEADER or not PROTECTED_HEADER.match(data, offset):
        return 0
    length = (data[offset + 3] << 8) | data[offset + 4]
    return length if length <= MAX_RECORD else 0


def _whole_records(data: bytes | bytearray) -> bool:
    """``data`` is protected records, one after the other, the last ending with it."""
    offset = 0
    while offset < len(data):
        length = _protected_length(data, offset)
        if not length:
            return False
        offset += HEADER + length
    return offset == len(data)


class TlsError(ValueError):
    """Bytes that are not TLS where TLS was expected."""


class Record:
    # A plain class, not a dataclass: its generated methods would be compiled at every start-up.
    __slots__ = ("content_type", "fragment", "size", "version")

    def __init__(self, content_type: int, version: int, fragment: bytes, size: int) -> None:
        self.content_type = content_type
        self.version = version
        self.fragment = fragment
        self.size = size
        """Bytes on the wire, header included."""


def looks_like_header(data: bytes | bytearray, offset: int = 0) -> bool:
    """Whether a record header could start at ``offset`` (content type, version 3.x)."""
    return (
        len(data) >= offset + 3
        and data[offset] in CONTENT_TYPES
        and data[offset + 1] == 3
        and data[offset + 2] <= 4
    )


class RecordReader:
    """One direction's records, out of bytes fed in pieces."""

    __slots__ = ("buffer",)

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[Record]:
        """The records ``data`` completes; raises :class:`TlsError` at bytes that cannot be a
        record header (and keeps nothing)."""
        buffer = self.buffer
        if buffer:
            buffer += data
            view: bytes | bytearray = buffer
        else:
            view = data
        records: list[Record] = []
        offset = 0
        end = len(view)
        while end - offset >= HEADER:
            content_type = view[offset]
            major = view[offset + 1]
            minor = view[offset + 2]
            length = (view[offset + 3] << 8) | view[offset + 4]
            if content_type not in CONTENT_TYPES or major != 3 or minor > 4:
                self.buffer = bytearray()
                raise TlsError(
                    f"not a TLS record header: {bytes(view[offset : offset + HEADER]).hex()}"
                )
            if length > MAX_RECORD:
                self.buffer = bytearray()
                raise TlsError(f"a record of {length} bytes is longer than TLS allows")
            stop = offset + HEADER + length
            if stop > end:
                break
            records.append(
                Record(
                    content_type,
                    (major << 8) | minor,
                    bytes(view[offset + HEADER : stop]),
                    HEADER + length,
                )
            )
            offset = stop
        if buffer:
            del buffer[:offset]
        elif offset < end:
            self.buffer = bytearray(view[offset:])
        return records


class HandshakeReader:
    """One direction's handshake messages, out of handshake record fragments (a message may
    span records and a record may hold several messages)."""

    __slots__ = ("buffer", "skipping")

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.skipping = 0
        """Bytes still to drop of a message too long to keep."""

    def feed(self, fragment: bytes) -> list[tuple[int, bytes]]:
        """The ``(type, body)`` of each message ``fragment`` completes."""
        if self.skipping:
            dropped = min(self.skipping, len(fragment))
            self.skipping -= dropped
            fragment = fragment[dropped:]
        buffer = self.buffer
        buffer += fragment
        messages: list[tuple[int, bytes]] = []
        offset = 0
        while len(buffer) - offset >= 4:
            message_type = buffer[offset]
            length = int.from_bytes(buffer[offset + 1 : offset + 4], "big")
            if length > MAX_HANDSHAKE_MESSAGE:
                available = len(buffer) - offset - 4
                self.skipping = max(length - available, 0)
                offset = len(buffer) if available <= length else offset + 4 + length
                continue
            if len(buffer) - offset - 4 < length:
                break
            messages.append((message_type, bytes(buffer[offset + 4 : offset + 4 + length])))
            offset += 4 + length
        del buffer[:offset]
        return messages

    @property
    def partial(self) -> bool:
        return bool(self.buffer) or bool(self.skipping)
