"""Schema-driven decoding of Kafka request and response bodies (sans-IO, bytes in, dicts out).

Field names are the upstream definitions' in camelCase; ``records`` fields are decoded into
records by :mod:`mizu_kafka.records`; ``bytes`` fields become base64. A body cut short (a frame
larger than the buffering cap) decodes as far as it goes: the dicts are attached to their parent
before they are filled, so what was read before :class:`Truncated` stays in the result.

Each struct of a message is decoded by a plan worked out once per version (:func:`_plan`): the
version checks done, consecutive fixed-width fields read with one ``struct`` call, and error
codes noted on the way (a response's status without walking its payload again).
"""

from __future__ import annotations

import base64
import struct
import uuid
from collections.abc import Callable
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
        end = position + layout.size
        if end > self.end:
            raise Truncated
        self.position = end
        return layout.unpack_from(self.data, position)[0]

    def int8(self) -> int:
        return self._unpack(INT8)

    def int16(self) -> int:
        return self._unpack(INT16)

    def uint16(self) -> int:
        return self._unpack(UINT16)

    def int32(self) -> int:
        return self._unpack(INT32)

    def int64(self) -> int:
        return self._unpack(INT64)

    def float64(self) -> float:
        return self._unpack(FLOAT64)

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
    error_code: int = 0
    """The first non-zero ``…errorCode`` decoded, in the order the payload's dicts list them
    (what :func:`mizu_kafka.protocol.error_codes` walks): the response's status."""


ERROR_CODE_SUFFIXES = ("errorCode", "ErrorCode")


def is_error_code(field: Field) -> bool:
    return field.kind == "int16" and field.name.endswith(ERROR_CODE_SUFFIXES)


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
        _records(reader, field.name, flexible, layout, out)
    else:
        value = out[field.name] = _scalar(reader, kind, flexible)
        if value and not layout.error_code and is_error_code(field):
            layout.error_code = value


FIXED_WIDTH = {"int8": "b", "int16": "h", "uint16": "H", "int32": "i", "int64": "q", "float64": "d"}
"""Kinds of a fixed width: a run of them decodes with one ``struct`` call ("bool" is an int8)."""

Step = Callable[[Reader, Layout, dict[str, Any]], None]


@dataclass(slots=True)
class _Plan:
    """The fields of one struct in one version, worked out once: fixed-width runs merged into
    one ``struct`` call each, the other fields bound to their decoder, tags looked up."""

    fields: tuple[Field, ...]
    """Kept so that the ``id`` the plan is cached under stays this tuple's."""
    steps: tuple[Step, ...]
    tagged: dict[int, Field]


_PLANS: dict[tuple[int, int, bool], _Plan] = {}
"""Plans by (fields tuple, version, flexible). The tables are module constants: a few hundred
plans once every API and version in use has been seen."""


def _plan(fields: tuple[Field, ...], version: int, flexible: bool) -> _Plan:
    key = (id(fields), version, flexible)
    plan = _PLANS.get(key)
    if plan is None:
        plan = _PLANS[key] = _compile(fields, version, flexible)
    return plan


def _compile(fields: tuple[Field, ...], version: int, flexible: bool) -> _Plan:
    present = [field for field in fields if field.low <= version <= field.high]
    steps: list[Step] = []
    run: list[Field] = []
    for field in present:
        if field.tag is not None:
            continue
        if field.kind in FIXED_WIDTH or field.kind == "bool":
            run.append(field)
            continue
        if run:
            steps.append(_fixed_run(tuple(run)))
            run = []
        steps.append(_field_step(field, version, flexible))
    if run:
        steps.append(_fixed_run(tuple(run)))
    tagged = {field.tag: field for field in present if field.tag is not None}
    return _Plan(fields, tuple(steps), tagged)


def _fixed_run(fields: tuple[Field, ...]) -> Step:
    layout = struct.Struct(">" + "".join(FIXED_WIDTH.get(field.kind, "b") for field in fields))
    size = layout.size
    unpack = layout.unpack_from
    names = tuple(field.name for field in fields)
    booleans = tuple(index for index, field in enumerate(fields) if field.kind == "bool")
    error_codes = tuple(index for index, field in enumerate(fields) if is_error_code(field))
    if len(fields) == 1 and not booleans:
        (name,) = names
        error_code = bool(error_codes)

        def one_fixed(reader: Reader, plan_layout: Layout, out: dict[str, Any]) -> None:
            position = reader.position
            end = position + size
            if end > reader.end:
                raise Truncated
            reader.position = end
            value = out[name] = unpack(reader.data, position)[0]
            if error_code and value and not plan_layout.error_code:
                plan_layout.error_code = value

        return one_fixed

    def fixed_run(reader: Reader, plan_layout: Layout, out: dict[str, Any]) -> None:
        position = reader.position
        end = position + size
        if end > reader.end:
            # Cut short: field by field, so the ones that fit are kept before Truncated.
            for field in fields:
                _decode_field(reader, field, plan_layout, out)
            return
        reader.position = end
        values = unpack(reader.data, position)
        if booleans:
            values = tuple(
                value != 0 if index in booleans else value for index, value in enumerate(values)
            )
        out.update(zip(names, values, strict=True))
        if error_codes and not plan_layout.error_code:
            for index in error_codes:
                if values[index]:
                    plan_layout.error_code = values[index]
                    break

    return fixed_run


def _field_step(field: Field, version: int, flexible: bool) -> Step:
    name = field.name
    if field.kind == "string" and not flexible:

        def string(reader: Reader, layout: Layout, out: dict[str, Any]) -> None:
            position = reader.position
            if position + 2 > reader.end:
                raise Truncated
            data = reader.data
            (length,) = INT16.unpack_from(data, position)
            position += 2
            if length < 0:
                reader.position = position
                out[name] = None
                return
            end = position + length
            if end > reader.end:
                raise Truncated
            reader.position = end
            out[name] = data[position:end].decode("utf-8", "replace")

        return string
    if field.kind == "[]struct":
        item_plan = _plan(field.fields, version, flexible)

        def struct_array(reader: Reader, layout: Layout, out: dict[str, Any]) -> None:
            if flexible:
                count = reader.unsigned_varint() - 1
            else:
                position = reader.position
                if position + 4 > reader.end:
                    raise Truncated
                reader.position = position + 4
                (count,) = INT32.unpack_from(reader.data, position)
            if count < 0:
                out[name] = None
                return
            items: list[dict[str, Any]] = []
            out[name] = items
            for _ in range(count):
                item: dict[str, Any] = {}
                items.append(item)
                _run(item_plan, reader, layout, item)

        return struct_array

    if field.kind == "records":

        def records(reader: Reader, layout: Layout, out: dict[str, Any]) -> None:
            _records(reader, name, flexible, layout, out)

        return records

    def generic(reader: Reader, layout: Layout, out: dict[str, Any]) -> None:
        _decode_field(reader, field, layout, out)

    return generic


def _run(plan: _Plan, reader: Reader, layout: Layout, out: dict[str, Any]) -> None:
    for step in plan.steps:
        step(reader, layout, out)
    if layout.flexible:
        _read_tagged(reader, plan.tagged, layout, out)


def _records(
    reader: Reader, name: str, flexible: bool, layout: Layout, out: dict[str, Any]
) -> None:
    length = _length(reader, flexible, wide=True)
    if length < 0:
        out[name] = None
        return
    # A body cut short by the buffering cap still shows the records it holds.
    available = min(length, reader.remaining)
    decoded = decode_records(reader.take(available), layout.budget)
    out[name] = decoded.records
    out["recordCount"] = decoded.count
    out["recordBatches"] = decoded.batches
    if available < length:
        raise Truncated


def decode_fields(
    reader: Reader, fields: tuple[Field, ...], layout: Layout, out: dict[str, Any]
) -> None:
    """Decode the fields of ``fields`` present in ``layout.version`` into ``out``."""
    _run(_plan(fields, layout.version, layout.flexible), reader, layout, out)


def read_tagged_fields(
    reader: Reader, fields: tuple[Field, ...], layout: Layout, out: dict[str, Any]
) -> None:
    """The tagged-field section of a flexible struct; tags the tables do not know are skipped."""
    by_tag = {
        field.tag: field
        for field in fields
        if field.tag is not None and field.low <= layout.version <= field.high
    }
    _read_tagged(reader, by_tag, layout, out)


def _read_tagged(
    reader: Reader, by_tag: dict[int, Field], layout: Layout, out: dict[str, Any]
) -> None:
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
