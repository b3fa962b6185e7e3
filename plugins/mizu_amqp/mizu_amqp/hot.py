"""Hand-written decoders of the frames that make up nearly all of a busy connection.

``basic.publish``, ``basic.deliver``, ``basic.ack`` and content headers are decoded here with
``struct`` straight into the JSON of entries: pamqp builds an object per frame and walks its
attributes, several times slower. Every other method still goes through pamqp. The results
are the same as pamqp's path gives (same names, same order, the same errors for the same
malformed input: ``ValueError``, ``IndexError`` or ``struct.error``).
"""

from __future__ import annotations

import datetime
import functools
import struct
from typing import Any

from pamqp import decode

from mizu_amqp.values import iso_time, to_json

_U64 = struct.Struct(">Q")
_DELIVERY_TAG = struct.Struct(">q")
"""Signed, as pamqp reads it (and so the methods it decodes show it)."""
_HEADER = struct.Struct(">HHQH")
"""Content header: class, weight, body size, first property-flags word."""

PUBLISH = 60 << 16 | 40
DELIVER = 60 << 16 | 60
ACK = 60 << 16 | 80

PROPERTIES = (
    (0x8000, "contentType"),
    (0x4000, "contentEncoding"),
    (0x2000, "headers"),
    (0x1000, "deliveryMode"),
    (0x0800, "priority"),
    (0x0400, "correlationId"),
    (0x0200, "replyTo"),
    (0x0100, "expiration"),
    (0x0080, "messageId"),
    (0x0040, "timestamp"),
    (0x0020, "type"),
    (0x0010, "userId"),
    (0x0008, "appId"),
    (0x0004, "clusterId"),
)
"""basic's content properties in wire order, with their flag bits and names in entries."""


def short_str(payload: bytes, offset: int) -> tuple[str, int]:
    """A shortstr at ``offset`` and the offset after it (like pamqp, a string cut short by the
    frame's end is taken as it is)."""
    end = offset + 1 + payload[offset]
    return payload[offset + 1 : end].decode("utf-8"), end


def publish(payload: bytes, channel: int) -> dict[str, Any]:
    exchange, offset = short_str(payload, 6)  # after the method index and the reserved ticket
    routing_key, offset = short_str(payload, offset)
    bits = payload[offset]
    return {
        "method": "basic.publish",
        "channel": channel,
        "exchange": exchange,
        "routingKey": routing_key,
        "mandatory": bool(bits & 1),
        "immediate": bool(bits & 2),
    }


def deliver(payload: bytes, channel: int) -> dict[str, Any]:
    consumer_tag, offset = short_str(payload, 4)
    (delivery_tag,) = _DELIVERY_TAG.unpack_from(payload, offset)
    redelivered = bool(payload[offset + 8] & 1)
    exchange, offset = short_str(payload, offset + 9)
    routing_key, offset = short_str(payload, offset)
    return {
        "method": "basic.deliver",
        "channel": channel,
        "consumerTag": consumer_tag,
        "deliveryTag": delivery_tag,
        "redelivered": redelivered,
        "exchange": exchange,
        "routingKey": routing_key,
    }


def ack(payload: bytes, channel: int) -> dict[str, Any]:
    (delivery_tag,) = _DELIVERY_TAG.unpack_from(payload, 4)
    return {
        "method": "basic.ack",
        "channel": channel,
        "deliveryTag": delivery_tag,
        "multiple": bool(payload[12] & 1),
    }


_INTEGER_LAYOUTS = {"b": "b", "B": "B", "s": "h", "u": "H", "I": "i", "i": "I", "l": "q", "L": "q"}
_SCALARS = {ord(code): struct.Struct(">" + layout) for code, layout in _INTEGER_LAYOUTS.items()}
"""Field-table integer types (pamqp's reading: ``s`` is signed 16-bit, ``L`` signed too)."""
_U32 = struct.Struct(">I")
_LONG_STRING = ord("S")
_BOOLEAN = ord("t")


def simple_table(payload: bytes, offset: int) -> tuple[dict[str, Any], int] | None:
    """A field table of strings, booleans and integers (what clients put in ``headers``) as
    JSON, and the offset after it; None when it holds anything else or does not check out,
    for pamqp to decode (or reject)."""
    (length,) = _U32.unpack_from(payload, offset)
    end = offset + 4 + length
    if end > len(payload):
        return None
    table = _table_json(payload[offset + 4 : end])
    # A copy: the cached table is shared by every message that carries the same octets.
    return None if table is None else (dict(table), end)


@functools.lru_cache(maxsize=4096)
def _table_json(encoded: bytes) -> dict[str, Any] | None:
    """:func:`simple_table` of a table's content octets. Publishers send the same few header
    tables over and over (a tenant, a content kind, a retry count): decoded once each."""
    table: dict[str, Any] = {}
    offset = 0
    end = len(encoded)
    try:
        while offset < end:
            key_end = offset + 1 + encoded[offset]
            key = encoded[offset + 1 : key_end].decode("utf-8")
            kind = encoded[key_end]
            offset = key_end + 1
            if kind == _LONG_STRING:
                (size,) = _U32.unpack_from(encoded, offset)
                value = encoded[offset + 4 : offset + 4 + size]
                offset += 4 + size
                try:
                    table[key] = value.decode("utf-8")
                except UnicodeDecodeError:
                    table[key] = to_json(value)  # base64, as pamqp's bytes would show
            elif kind == _BOOLEAN:
                table[key] = bool(encoded[offset])
                offset += 1
            else:
                scalar = _SCALARS.get(kind)
                if scalar is None:
                    return None
                (table[key],) = scalar.unpack_from(encoded, offset)
                offset += scalar.size
    except (IndexError, struct.error, UnicodeDecodeError):
        return None
    return table if offset == end else None


_SHORT_STRING, _OCTET, _TABLE, _TIMESTAMP = range(4)
_KINDS = {"headers": _TABLE, "deliveryMode": _OCTET, "priority": _OCTET, "timestamp": _TIMESTAMP}


@functools.cache
def _present(flags: int) -> tuple[tuple[str, int], ...]:
    """The (name, kind) of each property the flags say is there, in wire order: a handful
    of combinations in any real traffic, worked out once each."""
    return tuple((name, _KINDS.get(name, _SHORT_STRING)) for bit, name in PROPERTIES if flags & bit)


@functools.lru_cache(maxsize=4096)
def _timestamp(seconds: int) -> str:
    """A timestamp property in ISO 8601 (publishers stamp many messages with one second)."""
    # pamqp's reading: anything past the year 2106 is in milliseconds.
    when = seconds / 1000.0 if seconds > 0xFFFFFFFF else seconds
    return iso_time(datetime.datetime.fromtimestamp(when, tz=datetime.UTC))


def content_header(payload: bytes) -> tuple[int, dict[str, Any]] | None:
    """Body size and properties of a content header, or None when its property flags run
    over more than one word (no basic property needs that: pamqp decides what it means)."""
    _class, _weight, body_size, flags = _HEADER.unpack_from(payload)
    if flags & 0x3:  # a continuation word, or the reserved bit
        return None
    properties: dict[str, Any] = {}
    offset = 14
    for name, kind in _present(flags):
        if kind == _SHORT_STRING:
            end = offset + 1 + payload[offset]
            properties[name] = payload[offset + 1 : end].decode("utf-8")
            offset = end
        elif kind == _OCTET:
            properties[name] = payload[offset]
            offset += 1
        elif kind == _TIMESTAMP:
            properties[name] = _timestamp(_U64.unpack_from(payload, offset)[0])
            offset += 8
        else:
            simple = simple_table(payload, offset)
            if simple is None:
                used, table = decode.field_table(payload[offset:])
                properties[name] = to_json(table)
                offset += used
            else:
                properties[name], offset = simple
    return body_size, properties
