"""The reading primitives of Kafka request and response bodies (sans-IO, bytes in, dicts out).

:mod:`mizu_kafka.messages` holds one generated reader per struct of every message, which reads
the struct's fields in wire order with a :class:`Reader`. Field names are the upstream
definitions' in camelCase; ``records`` fields are decoded by :mod:`mizu_kafka.records`; ``bytes``
fields become base64. A body cut short (a frame larger than the buffering cap) decodes as far as
it goes: each dict is attached to its parent before it is filled, and each field is stored as
soon as it is read, so what was read before :class:`Truncated` stays in the result.

Everything reads by offset from one buffer, the frame's body: no slice is made but for the
strings and byte strings a field shows.
"""

from __future__ import annotations

import base64
import struct
from typing import Any, Final

from mizu_kafka.records import RecordBudget, decode_records

FLOAT64: Final = struct.Struct(">d")

MAX_BYTES_SHOWN: Final = 4096
"""A ``bytes`` field longer than this shows only its first bytes (and its length)."""

ERROR_CODE_SUFFIXES: Final = ("errorCode", "ErrorCode")
"""Names of the ``int16`` fields that carry a Kafka error code."""


class Truncated(Exception):
    """The data ended before the layout did."""


class Malformed(Exception):
    """The data contradicts the layout (a negative length, a runaway varint)."""


class Reader:
    """A cursor over one message's bytes, with what selects its encoding: the message's version
    and whether that version is flexible (compact lengths and tagged fields)."""

    data: bytes
    position: int
    end: int
    version: int
    flexible: bool
    budget: RecordBudget
    error_code: int
    """The first non-zero ``…errorCode`` read, in wire order (what
    :func:`mizu_kafka.protocol.error_codes` walks): a response's status."""

    def __init__(
        self,
        data: bytes,
        version: int = 0,
        flexible: bool = False,
        budget: RecordBudget | None = None,
    ) -> None:
        self.data = data
        self.position = 0
        self.end = len(data)
        self.version = version
        self.flexible = flexible
        self.budget = budget if budget is not None else RecordBudget()
        self.error_code = 0

    @property
    def remaining(self) -> int:
        return self.end - self.position

    def _advance(self, size: int) -> int:
        """The current position, after checking that ``size`` bytes follow it and moving past
        them."""
        position = self.position
        if position + size > self.end:
            raise Truncated
        self.position = position + size
        return position

    # The fixed-width reads are written out, not built on _advance: they are most of the
    # calls, and a call each is a good part of their cost (in either build).

    def int8(self) -> int:
        position = self.position
        if position >= self.end:
            raise Truncated
        self.position = position + 1
        value = self.data[position]
        return value - 0x100 if value >= 0x80 else value

    def boolean(self) -> bool:
        position = self.position
        if position >= self.end:
            raise Truncated
        self.position = position + 1
        return self.data[position] != 0

    def uint16(self) -> int:
        position = self.position
        if position + 2 > self.end:
            raise Truncated
        self.position = position + 2
        data = self.data
        return data[position] << 8 | data[position + 1]

    def int16(self) -> int:
        position = self.position
        if position + 2 > self.end:
            raise Truncated
        self.position = position + 2
        data = self.data
        value = data[position] << 8 | data[position + 1]
        return value - 0x10000 if value >= 0x8000 else value

    def error_code_field(self) -> int:
        """An ``int16`` error code, noted when it is the message's first non-zero one."""
        value = self.int16()
        if value and not self.error_code:
            self.error_code = value
        return value

    def int32(self) -> int:
        position = self.position
        if position + 4 > self.end:
            raise Truncated
        self.position = position + 4
        data = self.data
        value = (
            data[position] << 24
            | data[position + 1] << 16
            | data[position + 2] << 8
            | data[position + 3]
        )
        return value - 0x100000000 if value >= 0x80000000 else value

    def int64(self) -> int:
        position = self.position
        if position + 8 > self.end:
            raise Truncated
        self.position = position + 8
        data = self.data
        high = (
            data[position] << 24
            | data[position + 1] << 16
            | data[position + 2] << 8
            | data[position + 3]
        )
        low = (
            data[position + 4] << 24
            | data[position + 5] << 16
            | data[position + 6] << 8
            | data[position + 7]
        )
        # The sign goes on the high half: a small negative (an offset or id of -1) then never
        # passes through an unsigned value too large for the compiled build's short ints.
        if high >= 0x80000000:
            high -= 0x100000000
        return high << 32 | low

    def float64(self) -> float:
        position = self._advance(8)
        value: float = FLOAT64.unpack_from(self.data, position)[0]
        return value

    def take(self, length: int) -> bytes:
        if length < 0:
            raise Malformed(f"negative length {length}")
        position = self._advance(length)
        return self.data[position : position + length]

    def skip(self, length: int) -> None:
        if length < 0:
            raise Malformed(f"negative length {length}")
        self._advance(length)

    def unsigned_varint(self) -> int:
        data = self.data
        end = self.end
        position = self.position
        value = 0
        shift = 0
        while True:
            if position >= end:
                self.position = position
                raise Truncated
            byte = data[position]
            position += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                self.position = position
                return value
            shift += 7
            if shift > 63:
                self.position = position
                raise Malformed("varint longer than 10 bytes")

    def count(self) -> int:
        """The length of an array, a ``bytes`` field or ``records``: compact (varint + 1) in
        flexible versions, else an int32; -1 is null."""
        if self.flexible:
            return self.unsigned_varint() - 1
        return self.int32()

    def string(self) -> str | None:
        """A string (null when its length is negative): compact in flexible versions, else
        with an int16 length."""
        length = self.unsigned_varint() - 1 if self.flexible else self.int16()
        if length < 0:
            return None
        position = self.position
        end = position + length
        if end > self.end:
            raise Truncated
        self.position = end
        return self.data[position:end].decode("utf-8", "replace")

    def bytes_field(self) -> str | None:
        """A ``bytes`` field as base64, cut to :data:`MAX_BYTES_SHOWN`."""
        length = self.count()
        if length < 0:
            return None
        position = self._advance(length)
        return show_bytes(self.data[position : position + min(length, MAX_BYTES_SHOWN)])

    def uuid(self) -> str:
        """A UUID in its canonical text form."""
        position = self._advance(16)
        text = self.data[position : position + 16].hex()
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"

    def null_struct(self) -> bool:
        """A nullable struct's presence octet says it is null."""
        return self.int8() < 0

    def records(self, out: dict[str, Any], name: str) -> None:
        """A ``records`` field: the records decoded (up to the budget) into ``name``, with
        ``recordCount`` and ``recordBatches`` beside it."""
        length = self.count()
        if length < 0:
            out[name] = None
            return
        # A body cut short by the buffering cap still shows the records it holds.
        available = min(length, self.end - self.position)
        start = self.position
        self.position = start + available
        decoded = decode_records(self.data, self.budget, start, start + available)
        out[name] = decoded.records
        out["recordCount"] = decoded.count
        out["recordBatches"] = decoded.batches
        if available < length:
            raise Truncated

    def tagged_field_count(self) -> int:
        """The number of fields in a flexible struct's tagged-field section."""
        return self.unsigned_varint()

    def enter_tagged_field(self) -> tuple[int, int]:
        """Read a tagged field's tag and size, and bound the reader to its value: returns
        ``(tag, end)``, the offset where the reader's bound is to go back to."""
        tag = self.unsigned_varint()
        size = self.unsigned_varint()
        end = self.position + size
        if end > self.end:
            raise Truncated
        outer = self.end
        self.end = end
        return tag, outer

    def leave_tagged_field(self, outer: int) -> None:
        """Past the tagged field :meth:`enter_tagged_field` bounded the reader to, whatever of
        it was read."""
        self.position = self.end
        self.end = outer

    def skip_tagged_fields(self) -> None:
        """A tagged-field section none of whose tags the reader knows."""
        for _ in range(self.unsigned_varint()):
            self.unsigned_varint()  # the tag
            self.skip(self.unsigned_varint())


def show_bytes(data: bytes) -> str:
    """Base64 of a ``bytes`` field's shown bytes."""
    return base64.b64encode(data).decode("ascii")
