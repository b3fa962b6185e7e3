"""AMQP 0-9-1 method arguments and field tables, read by offset straight into entry JSON.

Every method's arguments are read from a layout taken once from pamqp's specification (the
argument names and their domains, in wire order); field tables (``headers``, ``arguments``,
``server-properties`` …) hold any value the RabbitMQ errata lists. The values are those pamqp
gives, turned into JSON as :func:`mizu_amqp.values.to_json` turns them, with pamqp's leniency
(a string cut short by the end of the frame is taken as it is) and its errors (``ValueError``
for what does not decode), so that a method reads the same whichever path reads it. Two things
differ, on purpose: a table or array is read in one pass over the frame (pamqp copies the rest
of the frame for every value, quadratic in the table's size), and nesting deeper than
:data:`MAX_DEPTH` is an error (pamqp recurses until Python's stack runs out).
"""

from __future__ import annotations

import base64
import datetime
import decimal
import functools
import math
import struct
from typing import Any, Final, cast

from pamqp import base
from pamqp.commands import INDEX_MAPPING

from mizu_amqp.values import (
    REDACTED,
    RESERVED,
    SECRET_ARGUMENTS,
    camel_case,
    iso_time,
    spec_name,
)

MAX_DEPTH: Final = 32
"""Tables and arrays nested deeper than this do not decode (real ones nest two or three)."""

FLOAT32: Final = struct.Struct(">f")
FLOAT64: Final = struct.Struct(">d")

# Argument domains, as small integers.
BIT: Final = 0
OCTET: Final = 1
SHORT: Final = 2
LONG: Final = 3
LONGLONG: Final = 4
SHORTSTR: Final = 5
LONGSTR: Final = 6
TABLE: Final = 7
TIMESTAMP: Final = 8
DOMAINS: Final = {
    "bit": BIT,
    "octet": OCTET,
    "short": SHORT,
    "long": LONG,
    "longlong": LONGLONG,
    "shortstr": SHORTSTR,
    "longstr": LONGSTR,
    "table": TABLE,
    "timestamp": TIMESTAMP,
}
START_OK: Final = 10 << 16 | 11
"""connection.start-ok, whose SASL PLAIN response names the user."""


class FieldError(ValueError):
    """A field value that does not decode."""


def _need(data: bytes, position: int, size: int) -> None:
    if position + size > len(data):
        raise FieldError("field value cut short")


def _u16(data: bytes, position: int) -> int:
    _need(data, position, 2)
    return data[position] << 8 | data[position + 1]


def _u32(data: bytes, position: int) -> int:
    _need(data, position, 4)
    return (
        data[position] << 24
        | data[position + 1] << 16
        | data[position + 2] << 8
        | data[position + 3]
    )


def u64(data: bytes, position: int) -> int:
    return _u32(data, position) << 32 | _u32(data, position + 4)


def as_signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) else value


def _octets(data: bytes, start: int, length: int) -> Any:
    """A long string or byte array: its text when it is UTF-8, else ``{"base64": …}``. Bytes
    past the end of the frame are simply not there."""
    raw = data[start : start + length]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(raw).decode("ascii")}


def _float(value: float) -> Any:
    return value if math.isfinite(value) else str(value)


@functools.lru_cache(maxsize=4096)
def timestamp_text(seconds: int) -> str:
    """A timestamp in ISO 8601 (publishers stamp many messages with one second)."""
    # pamqp's reading: anything past the year 2106 is in milliseconds.
    when = seconds / 1000.0 if seconds > 0xFFFFFFFF else seconds
    return iso_time(datetime.datetime.fromtimestamp(when, tz=datetime.UTC))


def field_table(data: bytes, position: int, depth: int = 0) -> tuple[dict[str, Any], int]:
    """The field table at ``position`` and the offset after it (as its length says)."""
    table, end, _last = _table(data, position, depth)
    return table, end


def _table(data: bytes, position: int, depth: int) -> tuple[dict[str, Any], int, int]:
    """:func:`field_table`, and the offset after its last value (past its length when a value
    ran over it, as pamqp reads it)."""
    if depth > MAX_DEPTH:
        raise FieldError("field tables nested too deep")
    end = position + 4 + _u32(data, position)
    if end > len(data):
        raise FieldError("field table longer than the frame")
    position += 4
    table: dict[str, Any] = {}
    while position < end:
        key_end = position + 1 + data[position]
        if key_end > end:
            raise FieldError("field table key longer than the table")
        key = data[position + 1 : key_end].decode("utf-8")
        table[key], position = field_value(data, key_end, depth)
    return table, end, position


_FLAT_TABLES: Final[dict[bytes, dict[str, Any]]] = {}
"""Flat header tables by their octets (length included), as they decoded."""
MAX_FLAT_TABLES: Final = 4096


def headers_table(data: bytes, position: int) -> tuple[dict[str, Any], int]:
    """:func:`field_table` for a content header's ``headers``. Publishers send the same few
    tables over and over (a tenant, a content kind, a retry count): one that holds no table or
    array and whose values end where its length says is read once and remembered by its
    octets, which then decide its every value; each message gets a copy of its own."""
    if position + 4 <= len(data):
        end = position + 4 + _u32(data, position)
        cached = _FLAT_TABLES.get(data[position:end])
        if cached is not None:
            return dict(cached), end
    table, end, last = _table(data, position, 0)
    if last == end and not any(isinstance(value, dict | list) for value in table.values()):
        if len(_FLAT_TABLES) >= MAX_FLAT_TABLES:
            _FLAT_TABLES.clear()
        _FLAT_TABLES[data[position:end]] = dict(table)
    return table, end


def field_array(data: bytes, position: int, depth: int) -> tuple[list[Any], int]:
    """The field array at ``position`` and the offset after its last value (which may run
    past the length the array gives, as pamqp reads it)."""
    if depth > MAX_DEPTH:
        raise FieldError("field arrays nested too deep")
    end = position + 4 + _u32(data, position)
    if end > len(data):
        raise FieldError("field array longer than the frame")
    position += 4
    values: list[Any] = []
    while position < end:
        value, position = field_value(data, position, depth)
        values.append(value)
    return values, position


def field_value(data: bytes, position: int, depth: int) -> tuple[Any, int]:
    """A table's or array's value (its type octet first) and the offset after it."""
    if position >= len(data):
        return None, position  # a key at the very end of the frame
    kind = data[position]
    position += 1
    if kind == 0x53:  # S: long string
        length = _u32(data, position)
        return _octets(data, position + 4, length), position + 4 + length
    if kind == 0x49:  # I: signed 32-bit
        return as_signed(_u32(data, position), 32), position + 4
    if kind == 0x74:  # t: boolean
        _need(data, position, 1)
        return data[position] != 0, position + 1
    if kind == 0x46:  # F: nested table
        table, end, _last = _table(data, position, depth + 1)
        return table, end
    if kind == 0x41:  # A: array
        return field_array(data, position, depth + 1)
    if kind == 0x6C or kind == 0x4C:  # l, L: signed 64-bit (pamqp reads L signed too)
        return as_signed(u64(data, position), 64), position + 8
    if kind == 0x62:  # b: signed 8-bit
        _need(data, position, 1)
        return as_signed(data[position], 8), position + 1
    if kind == 0x42:  # B: unsigned 8-bit
        _need(data, position, 1)
        return data[position], position + 1
    if kind == 0x73:  # s: signed 16-bit
        return as_signed(_u16(data, position), 16), position + 2
    if kind == 0x75:  # u: unsigned 16-bit
        return _u16(data, position), position + 2
    if kind == 0x69:  # i: unsigned 32-bit
        return _u32(data, position), position + 4
    if kind == 0x54:  # T: timestamp
        return timestamp_text(u64(data, position)), position + 8
    if kind == 0x66:  # f: 32-bit float
        _need(data, position, 4)
        return _float(FLOAT32.unpack_from(data, position)[0]), position + 4
    if kind == 0x64:  # d: 64-bit float
        _need(data, position, 8)
        return _float(FLOAT64.unpack_from(data, position)[0]), position + 8
    if kind == 0x44:  # D: decimal, as a string so that no digit is lost
        _need(data, position, 5)
        places = data[position]
        raw = as_signed(_u32(data, position + 1), 32)
        return str(decimal.Decimal(raw) * (decimal.Decimal(10) ** -places)), position + 5
    if kind == 0x78:  # x: byte array
        length = _u32(data, position)
        return _octets(data, position + 4, length), position + 4 + length
    if kind == 0x56 or kind == 0:  # V, and NUL as seen in the wild: void
        return None, position
    raise FieldError(f"unknown field type {chr(kind)!r}")


class Argument:
    """One argument of a method: its name in entries (None: reserved, not shown) and its
    domain."""

    def __init__(self, name: str | None, domain: int, secret: bool) -> None:
        self.name = name
        self.domain = domain
        self.secret = secret


def _layouts() -> dict[int, tuple[str, tuple[Argument, ...]]]:
    methods = cast(dict[int, type[base.Frame]], INDEX_MAPPING)
    return {
        index: (
            spec_name(method.name),
            tuple(
                Argument(
                    None if attribute in RESERVED else camel_case(attribute),
                    DOMAINS[getattr(method, "_" + attribute)],
                    attribute in SECRET_ARGUMENTS,
                )
                for attribute in method.__slots__
            ),
        )
        for index, method in methods.items()
    }


LAYOUTS: Final = _layouts()
"""Method index → (method name, its arguments in wire order)."""


def method_fields(payload: bytes, channel: int) -> dict[str, Any]:
    """A method frame's payload (its method index first) as the entry's fields: the method,
    the channel and the arguments but the reserved ones, secrets redacted."""
    index = _u32(payload, 0)
    layout = LAYOUTS.get(index)
    if layout is None:
        raise FieldError(f"unknown method {index >> 16}.{index & 0xFFFF}")
    name, arguments = layout
    data: dict[str, Any] = {"method": name, "channel": channel}
    position = 4
    bit = -1
    """The bit of the current octet the last bit argument used; -1 outside a run of bits."""
    mechanism: Any = None
    for argument in arguments:
        domain = argument.domain
        if bit >= 0 and (domain != BIT or bit == 7):
            position += 1  # past the octet of the bits read
            bit = -1
        value: Any
        if domain == BIT:
            bit += 1
            _need(payload, position, 1)
            value = payload[position] & (1 << bit) != 0
        elif domain == SHORTSTR:
            _need(payload, position, 1)
            end = position + 1 + payload[position]
            value = payload[position + 1 : end].decode("utf-8")
            position = end
        elif domain == SHORT:
            value = _u16(payload, position)
            position += 2
        elif domain == LONG:
            value = _u32(payload, position)
            position += 4
        elif domain == LONGLONG:
            value = as_signed(u64(payload, position), 64)
            position += 8
        elif domain == OCTET:
            _need(payload, position, 1)
            value = payload[position]
            position += 1
        elif domain == TABLE:
            value, position = field_table(payload, position)
        elif domain == LONGSTR:
            length = _u32(payload, position)
            value = _octets(payload, position + 4, length)
            position += 4 + length
        else:
            value = timestamp_text(u64(payload, position))
            position += 8
        if argument.name is None:
            continue
        if argument.secret:
            data[argument.name] = REDACTED
            if index == START_OK and mechanism == "PLAIN":
                user = _plain_user(value)
                if user is not None:
                    data["user"] = user
            continue
        if argument.name == "mechanism":
            mechanism = value
        data[argument.name] = value
    return data


def _plain_user(response: Any) -> str | None:
    """Who logged in with SASL PLAIN, whose response is ``\\0user\\0password``."""
    if isinstance(response, str):
        raw = response.encode("utf-8")
    elif isinstance(response, dict):
        raw = base64.b64decode(response["base64"])
    else:
        return None
    parts = raw.split(b"\x00")
    return parts[1].decode("utf-8", "replace") if len(parts) == 3 else None
