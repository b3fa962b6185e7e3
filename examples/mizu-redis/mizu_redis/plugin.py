"""The Redis plugin's hooks (entry point ``redis`` in the ``mizu.plugins`` group)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from mizu_core import (
    NEED_MORE,
    ConnectionContext,
    Dissector,
    Entry,
    Protocol,
    Representation,
    Section,
    Summary,
    Verdict,
    all_of,
    body,
    equals,
    hookimpl,
    json_body,
    row,
    table,
)

from mizu_redis.commands import names
from mizu_redis.dissector import RESP2, RESP3, RedisDissector
from mizu_redis.resp import COMMAND_START, Limits

SETTINGS = {
    "max-value-bytes": "max_value_bytes",
    "max-elements": "max_elements",
    "max-frame-bytes": "max_frame_bytes",
}
"""The ``plugins.redis.*`` keys and the :class:`Limits` field each one sets."""


INLINE_COMMANDS = names(
    "AUTH DBSIZE DECR DEL ECHO EXISTS EXPIRE FLUSHALL FLUSHDB GET HELLO HGET HGETALL INCR INFO "
    "KEYS LPUSH LRANGE MGET MONITOR MSET PING PUBLISH QUIT RPUSH SADD SELECT SET SMEMBERS "
    "SUBSCRIBE TTL TYPE"
)
"""Commands people type by hand (telnet, nc): an inline first line must start with one."""

_INLINE = re.compile(rb"([A-Za-z]{1,16})(?:[ \t][^\r\n]*)?\r?\n")
_COMMAND_PREFIX = re.compile(rb"\*[0-9]*(?:\r(?:\n(?:\$[0-9]*\r?)?)?)?")
_REPLY_LINE = re.compile(
    rb"(?:[+-][^\r\n]*|[:(]-?[0-9]+|[$*=!%~>|][0-9]+|[$*]-1|_|#[tf]|,[^\r\n]+)\r?\n"
)
_MID_STREAM_COMMAND = re.compile(rb"\r\n\*[1-9][0-9]{0,8}\r\n\$[0-9]{1,10}\r\n")


@hookimpl
def protocols() -> Sequence[Protocol]:
    return [RESP2, RESP3]


@hookimpl
def configure(settings: Mapping[str, Any]) -> Limits:
    values: dict[str, int] = {}
    for key, value in settings.items():
        if key not in SETTINGS:
            raise ValueError(f"unknown key {key!r} (known: {', '.join(SETTINGS)})")
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{key} must be a positive integer, not {value!r}")
        values[SETTINGS[key]] = value
    return Limits(**values)


@hookimpl
def dissect(
    context: ConnectionContext, client_head: bytes, server_head: bytes
) -> Dissector | Verdict | None:
    if COMMAND_START.match(client_head):
        return RedisDissector(context, context.settings)
    if client_head and _COMMAND_PREFIX.fullmatch(client_head):
        return NEED_MORE
    on_redis_port = context.connection.server.port in RESP2.ports
    inline = _INLINE.match(client_head)
    if inline and (on_redis_port or inline.group(1).decode().upper() in INLINE_COMMANDS):
        if _REPLY_LINE.match(server_head):
            return RedisDissector(context, context.settings)
        return None if server_head else NEED_MORE
    if re.fullmatch(rb"[A-Za-z]{1,16}", client_head):
        return NEED_MORE
    if context.connection.role_guessed and _MID_STREAM_COMMAND.search(client_head):
        # A capture that starts mid-connection: a command after the end of a line.
        return RedisDissector(context, context.settings)
    if not on_redis_port:
        return NEED_MORE if context.connection.role_guessed else None
    # On Redis's port, trust a stream whose replies look like RESP.
    if _REPLY_LINE.match(server_head):
        return RedisDissector(context, context.settings)
    return None if server_head else NEED_MORE


@hookimpl
def summarize(entry: Entry) -> Summary:
    request = entry.get("request") or {}
    response = entry.get("response") or {}
    method = request.get("method", "")
    key = request.get("key")
    status = response.get("status", "")
    method_query = all_of("redis", equals("request.method", method))
    return {
        "summary": f"{method} {key}" if key is not None else method,
        "summaryQuery": all_of(method_query, equals("request.key", key) if key is not None else ""),
        "method": method,
        "methodQuery": method_query,
        "status": status,
        "statusQuery": all_of("redis", equals("response.status", status) if status else ""),
        # an error reply (-ERR, -WRONGTYPE, !… in RESP3); its status is the error's prefix
        "error": response.get("type") == "error",
        "statusName": status,
    }


@hookimpl
def represent(entry: Entry) -> Representation:
    request = entry.get("request")
    response = entry.get("response")
    return {
        "request": _request_sections(request) if request else [],
        "response": _response_sections(response) if response else [],
    }


def _request_sections(request: Mapping[str, Any]) -> list[Section]:
    names = ("method", "key", "channel", "pattern", "password", "inline", "truncated")
    sections = [_table("Command", request, names, "request")]
    if "payload" in request:
        sections.append(_body("Payload", request["payload"]))
    if request.get("args"):
        rows = [
            row(f"Argument {index + 1}", value, f"request.args[{index}]")
            for index, value in enumerate(request["args"])
        ]
        sections.append(table("Arguments", rows))
    if "transaction" in request:
        rows = [
            row(str(index + 1), " ".join(step.values()), f"request.transaction[{index}]")
            for index, step in enumerate(request["transaction"])
        ]
        sections.append(table("Transaction", rows))
    return sections


def _response_sections(response: Mapping[str, Any]) -> list[Section]:
    sections = [_table("Reply", response, ("type", "status", "truncated"), "response")]
    if response.get("attributes"):
        sections.append(_body("Attributes", response["attributes"]))
    sections.append(_body("Value", response.get("value")))
    return sections


def _table(title: str, message: Mapping[str, Any], names: Sequence[str], side: str) -> Section:
    return table(
        title,
        [(name.capitalize(), message[name], f"{side}.{name}") for name in names if name in message],
    )


def _body(title: str, value: Any) -> Section:
    return body(title, value) if isinstance(value, str) else json_body(title, value)
