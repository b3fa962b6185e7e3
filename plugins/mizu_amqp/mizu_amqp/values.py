"""The JSON of entries: the spec's names, field values, properties and bodies."""

from __future__ import annotations

import base64
import datetime
import decimal
import math
import re
from typing import Any

from pamqp import commands

_CAMEL_BOUNDARY = re.compile(r"(?<!^)(?=[A-Z])")

RENAMED = {"exchange_type": "type", "global_": "global", "message_type": "type"}
"""pamqp names that differ from the spec's (``type`` and ``global`` are Python words)."""

RESERVED = frozenset(
    {"ticket", "capabilities", "insist", "out_of_band", "channel_id", "known_hosts", "cluster_id"}
)
"""Arguments that AMQP 0-9-1 reserves (deprecated, always empty): not shown."""

SECRET_ARGUMENTS = frozenset({"response", "new_secret"})
"""connection.start-ok / secure-ok carry credentials, connection.update-secret a token."""

REDACTED = "[REDACTED]"


def spec_name(pamqp_name: str) -> str:
    """``Queue.DeclareOk`` → ``queue.declare-ok``, the name the AMQP 0-9-1 spec uses."""
    class_name, method_name = pamqp_name.split(".")
    return f"{class_name.lower()}.{_CAMEL_BOUNDARY.sub('-', method_name).lower()}"


def camel_case(name: str) -> str:
    name = RENAMED.get(name, name)
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def to_json(value: Any) -> Any:
    """A field value (table, array, decimal, timestamp, byte array …) as JSON.

    Byte strings that are not UTF-8 become ``{"base64": ...}``; decimals become strings so that
    no digit is lost; timestamps ISO 8601 in UTC.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, datetime.datetime):
        return iso_time(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    return str(value)


def iso_time(value: datetime.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


def property_flags(header_payload: bytes) -> int:
    """The property flags of a content header (after class, weight and body size): 16-bit
    words, each but the last with its lowest bit set to say another follows."""
    flags, offset, word_index = 0, 12, 0
    while offset + 2 <= len(header_payload):
        word = int.from_bytes(header_payload[offset : offset + 2])
        flags |= word << (16 * word_index)
        if not word & 1:
            break
        offset += 2
        word_index += 1
    return flags


def properties_json(properties: commands.Basic.Properties, header_payload: bytes) -> dict[str, Any]:
    """The properties the content header carries (its flags say which), in camelCase."""
    flags = property_flags(header_payload)
    return {
        camel_case(name): to_json(value)
        for name, value in properties
        if flags & properties.flags[name]
    }


CONTROL_OCTETS = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
"""Control characters that make a body binary (tab, line feed and carriage return do not).
All are ASCII, and UTF-8 never uses an ASCII octet inside another character: looking for them
in the octets is looking for them in the text."""

_MARK_CONTROL = bytes(octet ^ 0x80 if octet in CONTROL_OCTETS else octet for octet in range(256))
"""A ``bytes.translate`` table that changes the control octets and nothing else: a body
translates to itself when it holds none. Translating by a table is a third cheaper than
deleting the octets (which builds a table on every call), and several times cheaper than a
regular expression over the text."""


def body_json(body: bytes, complete: bool) -> tuple[str, bool]:
    """The ``body`` of an entry: the text when the bytes are text, else base64, and whether
    it is base64.

    A body cut at the size cap may end in the middle of a UTF-8 sequence; up to three octets
    are then given up to still show it as text.
    """
    for cut in range(1 if complete else 4):
        candidate = body[: len(body) - cut] if cut else body
        try:
            text = candidate.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if candidate.translate(_MARK_CONTROL) == candidate:
            return text, False
        break
    return base64.b64encode(body).decode("ascii"), True
