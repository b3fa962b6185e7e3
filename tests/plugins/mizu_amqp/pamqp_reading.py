"""pamqp's reading of a method frame, turned into an entry's fields as the plugin once showed
it: the reference the plugin's own decoders are compared with."""

from __future__ import annotations

import struct
from typing import Any

from mizu_amqp.values import REDACTED, RESERVED, SECRET_ARGUMENTS, camel_case, spec_name, to_json
from pamqp import base, commands


def method_arguments(method: base.Frame) -> dict[str, Any]:
    """The method's arguments in camelCase, reserved ones left out and secrets redacted."""
    arguments: dict[str, Any] = {}
    for name, value in method:
        if name in RESERVED:
            continue
        if name in SECRET_ARGUMENTS:
            arguments[camel_case(name)] = REDACTED
            user = plain_user(method, value)
            if user is not None:
                arguments["user"] = user
            continue
        arguments[camel_case(name)] = to_json(value)
    return arguments


def plain_user(method: base.Frame, response: Any) -> str | None:
    """Who logged in with SASL PLAIN, whose response is ``\\0user\\0password``."""
    if not isinstance(method, commands.Connection.StartOk) or method.mechanism != "PLAIN":
        return None
    raw = response.encode("utf-8") if isinstance(response, str) else bytes(response or b"")
    parts = raw.split(b"\x00")
    return parts[1].decode("utf-8", "replace") if len(parts) == 3 else None


def through_pamqp(payload: bytes, channel: int = 1) -> dict[str, Any]:
    """A method frame's payload as pamqp reads it, as entry fields."""
    (index,) = struct.unpack_from(">I", payload)
    method = commands.INDEX_MAPPING[index]()
    method.unmarshal(payload[4:])
    return {"method": spec_name(method.name), "channel": channel, **method_arguments(method)}
