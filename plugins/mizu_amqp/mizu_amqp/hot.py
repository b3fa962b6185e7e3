"""Hand-written decoders of the frames that make up nearly all of a busy connection.

``basic.publish``, ``basic.deliver``, ``basic.ack`` and content headers are decoded here by
offset straight into the JSON of entries, without the layout walk of
:func:`mizu_amqp.fields.method_fields` (which reads every other method). The results are the
same as pamqp's reading gives (same names, same order, the same errors for the same malformed
input: ``ValueError`` or ``IndexError``).
"""

from __future__ import annotations

from typing import Any, Final

from mizu_amqp.fields import as_signed, headers_table, timestamp_text, u64

PUBLISH: Final = 60 << 16 | 40
DELIVER: Final = 60 << 16 | 60
ACK: Final = 60 << 16 | 80

PROPERTIES: Final = (
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


def _int64(payload: bytes, offset: int) -> int:
    """A signed 64-bit integer (a delivery tag: pamqp reads them signed, and so the methods
    it decodes show them)."""
    if offset + 8 > len(payload):
        raise IndexError("a 64-bit integer cut short")
    return as_signed(u64(payload, offset), 64)


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
    delivery_tag = _int64(payload, offset)
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
    return {
        "method": "basic.ack",
        "channel": channel,
        "deliveryTag": _int64(payload, 4),
        "multiple": bool(payload[12] & 1),
    }


SHORT_STRING: Final = 0
OCTET: Final = 1
TABLE: Final = 2
TIMESTAMP: Final = 3
_KINDS: Final = {"headers": TABLE, "deliveryMode": OCTET, "priority": OCTET, "timestamp": TIMESTAMP}


_PRESENT: Final[dict[int, tuple[tuple[str, int], ...]]] = {}


def _present(flags: int) -> tuple[tuple[str, int], ...]:
    """The (name, kind) of each property the flags say is there, in wire order: a handful
    of combinations in any real traffic (at most 2**14 of them), worked out once each."""
    present = _PRESENT.get(flags)
    if present is None:
        present = _PRESENT[flags] = tuple(
            (name, _KINDS.get(name, SHORT_STRING)) for bit, name in PROPERTIES if flags & bit
        )
    return present


def content_header(payload: bytes) -> tuple[int, dict[str, Any]] | None:
    """Body size and properties of a content header, or None when its property flags run
    over more than one word (no basic property needs that: pamqp decides what it means)."""
    if len(payload) < 14:
        raise IndexError("a content header cut short")
    body_size = u64(payload, 4)
    flags = payload[12] << 8 | payload[13]
    if flags & 0x3:  # a continuation word, or the reserved bit
        return None
    properties: dict[str, Any] = {}
    offset = 14
    for name, kind in _present(flags):
        if kind == SHORT_STRING:
            end = offset + 1 + payload[offset]
            properties[name] = payload[offset + 1 : end].decode("utf-8")
            offset = end
        elif kind == OCTET:
            properties[name] = payload[offset]
            offset += 1
        elif kind == TIMESTAMP:
            if offset + 8 > len(payload):
                raise IndexError("a timestamp cut short")
            properties[name] = timestamp_text(u64(payload, offset))
            offset += 8
        else:
            properties[name], offset = headers_table(payload, offset)
    return body_size, properties
