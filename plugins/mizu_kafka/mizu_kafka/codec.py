"""Schema-driven decoding of Kafka request and response bodies (sans-IO, bytes in, dicts out).

Field names are the upstream definitions' in camelCase; ``records`` fields are decoded into
records by :mod:`mizu_kafka.records`; ``bytes`` fields become base64. A body cut short (a frame
larger than the buffering cap) decodes as far as it goes: the dicts are attached to their parent
before they are filled, so what was read before :class:`Truncated` stays in the result.
"""

from __future__ import annotations

import base64
import struct
import uuid
from dataclasses import dataclass
from typing import Any

from mizu_kafka.records import RecordBudget, decode_records
from mizu_kafka.schema import Field

INT8 = struct.Struct(">b")
INT16 = struct.Struct(">h")
UINT16 = struct.Struct(">H")
INT32 = struct.Struct(">i")
INT64 = struct.Struct(">q")
FLOAT64 = struct.Struct(">d")

MAX_BYTES_SHOWN = 4096
"""A ``bytes`` field longer than this shows only its first bytes (and its length)."""


class Truncated(Exception):
    """The data ended before the layout did."""


class Malformed(Exception):
    """The data contradicts the layout (a negative length, a runaway varint)."""


class Reader:
    """A cursor over one message's bytes."""

    __slots__ = ("data", "end", "position")

    def __init__(self, data: bytes, position: int = 0, end: int | None = None) -> None:
        self.data = data
        self.position = position
        self.end = len(data) if end is None else end

    @property
    def remaining(self) -> int:
        return self.end - self.position

    def _unpack(self, layout: struct.Struct) -> Any:
        position = self.position
        if position + layout.size > self.end:
            raise Truncated
        self.position = position + layout.size
        return layout.unpack_from(self.data, position)[0]

    def int8(self) -> int:
        return int(self._unpack(INT8))

    def int16(self) -> int:
        return int(self._unpack(INT16))

    def uint16(self) -> int:
        return int(self._unpack(UINT16))

    def int32(self) -> int:
        return int(self._unpack(INT32))

    def int64(self) -> int:
        return int(self._unpack(INT64))

    def float64(self) -> float:
        return float(self._unpack(FLOAT64))

    def take(self, length: int) -> bytes:
        if length < 0:
            raise Malformed(f"negative length {length}")
        position = self.position
        if position + length > self.end:
            raise Truncated
        self.position = position + length
        return self.data[position : position + length]

    def skip(self, length: int) -> None:
        self.take(length)

    def unsigned_varint(self) -> int:
        value = 0
        shift = 0
        data = self.data
        while True:
            if self.position >= self.end:
                raise Truncated
            byte = data[self.position]
            self.position += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise Malformed("varint longer than 10 bytes")

    def varint(self) -> int:
        """A zigzag-encoded signed varint (record fields)."""
        value = self.unsigned_varint()
        return (value >> 1) ^ -(value & 1)


@dataclass(slots=True)
class Layout:
    """What selects the encoding of one message: its version and whether that is flexible."""

    version: int
    flexible: bool
    budget: RecordBudget


def _nullable(field: Field, version: int) -> bool:
    return field.nullable_low <= version <= field.nullable_high


def _length(reader: Reader, flexible: bool, wide: bool) -> int:
    """A string/bytes/array length: compact (varint + 1) when flexible, else int16/int32."""
    if flexible:
        return reader.unsigned_varint() - 1
    return reader.int32() if wide else reader.int16()


def read_string(reader: Reader, flexible: bool) -> str | None:
    length = _length(reader, flexible, wide=False)
    if length < 0:
        return None
    return reader.take(length).decode("utf-8", "replace")


def show_bytes(data: bytes) -> str:
    """Base64 of a ``bytes`` field, cut to :data:`MAX_BYTES_SHOWN`."""
    return base64.b64encode(data[:MAX_BYTES_SHOWN]).decode("ascii")


def _scalar(reader: Reader, kind: str, flexible: bool) -> Any:
    if kind == "int32":
        return reader.int32()
    if kind == "int16":
        return reader.int16()
    if kind == "int64":
        return reader.int64()
    if kind == "int8":
        return reader.int8()
    if kind == "string":
        return read_string(reader, flexible)
    if kind == "bool":
        return reader.int8() != 0
    if kind == "uuid":
        return str(uuid.UUID(bytes=reader.take(16)))
    if kind == "uint16":
        return reader.uint16()
    if kind == "float64":
        return reader.float64()
    if kind == "bytes":
        length = _length(reader, flexible, wide=True)
        return None if length < 0 else show_bytes(reader.take(length))
    raise Malformed(f"unknown field type {kind}")


def _decode_field(reader: Reader, field: Field, layout: Layout, out: dict[str, Any]) -> None:
    kind = field.kind
    flexible = layout.flexible
    if kind == "[]struct":
        count = _length(reader, flexible, wide=True)
        if count < 0:
            out[field.name] = None
            return
        items: list[dict[str, Any]] = []
        out[field.name] = items
        for _ in range(count):
            item: dict[str, Any] = {}
            items.append(item)
            decode_fields(reader, field.fields, layout, item)
    elif kind == "struct":
        if _nullable(field, layout.version) and reader.int8() < 0:
            out[field.name] = None
            return
        inner: dict[str, Any] = {}
        out[field.name] = inner
        decode_fields(reader, field.fields, layout, inner)
    elif kind.startswith("[]"):
        count = _length(reader, flexible, wide=True)
        if count < 0:
            out[field.name] = None
            return
        values: list[Any] = []
        out[field.name] = values
        element = kind[2:]
        for _ in range(count):
            values.append(_scalar(reader, element, flexible))
    elif kind == "records":
        length = _length(reader, flexible, wide=True)
        if length < 0:
            out[field.name] = None
            return
        # A body cut short by the buffering cap still shows the records it holds.
        available = min(length, reader.remaining)
        decoded = decode_records(reader.take(available), layout.budget)
        out[field.name] = decoded.records
        out["recordCount"] = decoded.count
        out["recordBatches"] = decoded.batches
        if available < length:
            raise Truncated
    else:
        out[field.name] = _scalar(reader, kind, flexible)


def decode_fields(
    reader: Reader, fields: tuple[Field, ...], layout: Layout, out: dict[str, Any]
) -> None:
    """Decode the fields of ``fields`` present in ``layout.version`` into ``out``."""
    version = layout.version
    tagged = False
    for field in fields:
        if not field.low <= version <= field.high:
            continue
        if field.tag is not None:
            tagged = True
            continue
        _decode_field(reader, field, layout, out)
    if layout.flexible:
        read_tagged_fields(reader, fields if tagged else (), layout, out)


def read_tagged_fields(
    reader: Reader, fields: tuple[Field, ...], layout: Layout, out: dict[str, Any]
) -> None:
    """The tagged-field section of a flexible struct; tags the tables do not know are skipped."""
    by_tag = {
        field.tag: field
        for field in fields
        if field.tag is not None and field.low <= layout.version <= field.high
    }
    for _ in range(reader.unsigned_varint()):
        tag = reader.unsigned_varint()
        size = reader.unsigned_varint()
        field = by_tag.get(tag)
        if field is None:
            reader.skip(size)
            continue
        end = reader.position + size
        if end > reader.end:
            raise Truncated
        _decode_field(Reader(reader.data, reader.position, end), field, layout, out)
        reader.position = end
