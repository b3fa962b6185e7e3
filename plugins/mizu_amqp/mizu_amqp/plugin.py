"""The ``amqp`` plugin's hooks: AMQP 0-9-1 (RabbitMQ) connections become entries.

Settings (``plugins.amqp.*``): ``max-body-size`` (octets of a message body kept, default 64 KiB)
``max-unconfirmed`` (publishes per connection held for their publisher confirm, default 1024)
and ``max-frame-size`` (the largest frame believed when no ``frame-max`` was negotiated, default
16 MiB). Counters (frames, heartbeats, resynchronisations …) go to the engine's
``plugin_counters``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from mizu_amqp.connection import AMQP
from mizu_amqp.dissector import AmqpDissector, Settings
from mizu_amqp.frames import FRAME_HEARTBEAT, find_frame
from mizu_core import (
    NEED_MORE,
    NOT_JSON,
    ConnectionContext,
    Dissector,
    Entry,
    Protocol,
    Representation,
    Section,
    Summary,
    TableRow,
    Verdict,
    all_of,
    body,
    equals,
    hookimpl,
    key_selector,
    parse_json,
    row,
    table,
)

SETTING_NAMES = {
    "max-body-size": "max_body_size",
    "max-unconfirmed": "max_unconfirmed",
    "max-frame-size": "max_frame_size",
}

SHORTEST_PROOF = 12
"""Octets of a head below which the absence of a frame is no evidence (a method frame is 12)."""

UNPROVEN_LIMIT = 1024
"""Octets one side may send without a provable frame before the connection is declined."""

CONTENT_FIELDS = ("properties", "body", "bodyEncoding", "bodySize", "bodyTruncated", "incomplete")
"""Fields of a content method that are not method arguments."""


@hookimpl
def protocols() -> Sequence[Protocol]:
    return [AMQP]


@hookimpl
def configure(settings: Mapping[str, Any]) -> Settings:
    values = {}
    for key, value in settings.items():
        attribute = SETTING_NAMES.get(key)
        if attribute is None:
            raise ValueError(f"plugins.amqp.{key}: unknown setting ({', '.join(SETTING_NAMES)})")
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"plugins.amqp.{key}: expected a positive integer, got {value!r}")
        values[attribute] = value
    return Settings(**values)


def _evidence(head: bytes) -> bool | None:
    """True when ``head`` holds a protocol header, a whole known method frame or a content
    header, None when it may still turn out to, False when it cannot."""
    position = 0
    while True:
        offset, length = find_frame(head, position)
        if offset < 0:
            # A few octets prove nothing either way (a first TCP segment can be that short).
            return None if len(head) - position < SHORTEST_PROOF else False
        if length == 0:
            return None
        if head[offset] != FRAME_HEARTBEAT:
            return True
        position = offset + length


@hookimpl
def dissect(
    context: ConnectionContext, client_head: bytes, server_head: bytes
) -> Dissector | Verdict | None:
    heads = [head for head in (client_head, server_head) if head]
    verdicts = [_evidence(head) for head in heads]
    if True in verdicts:
        return AmqpDissector(context, context.settings)
    connection = context.connection
    # The core may have guessed the roles of a connection caught mid-way: either port counts.
    on_amqp_port = connection.server.port in AMQP.ports or connection.client.port in AMQP.ports
    if on_amqp_port or None in verdicts:
        return NEED_MORE
    # Mid-connection, one side may start with the rest of a body: hear the other side too.
    if len(heads) == 2 or any(len(head) > UNPROVEN_LIMIT for head in heads):
        return None
    return NEED_MORE


# -- the list row --------------------------------------------------------------------------------


def _summary(side: str, message: Mapping[str, Any]) -> tuple[str, str]:
    """Exchange and routing key, or queue, of one message, with the filter selecting it."""
    if "routingKey" in message and "exchange" in message:
        exchange, key = message["exchange"], message["routingKey"]
        query = all_of(equals(f"{side}.exchange", exchange), equals(f"{side}.routingKey", key))
        return f"{exchange or '(default)'} → {key}", query
    for name in ("queue", "exchange", "destination", "consumerTag"):
        value = message.get(name)
        if value:
            return str(value), equals(f"{side}.{name}", value)
    return "", ""


REPLY_CODE_NAMES = {
    200: "REPLY_SUCCESS",
    311: "CONTENT_TOO_LARGE",
    312: "NO_ROUTE",
    313: "NO_CONSUMERS",
    320: "CONNECTION_FORCED",
    402: "INVALID_PATH",
    403: "ACCESS_REFUSED",
    404: "NOT_FOUND",
    405: "RESOURCE_LOCKED",
    406: "PRECONDITION_FAILED",
    501: "FRAME_ERROR",
    502: "SYNTAX_ERROR",
    503: "COMMAND_INVALID",
    504: "CHANNEL_ERROR",
    505: "UNEXPECTED_FRAME",
    506: "RESOURCE_ERROR",
    530: "NOT_ALLOWED",
    540: "NOT_IMPLEMENTED",
    541: "INTERNAL_ERROR",
}
"""The reply codes of AMQP 0-9-1 (its spec's constants), as ``channel.close``,
``connection.close`` and ``basic.return`` carry them."""


def _verdict(entry: Mapping[str, Any], method: str, status: str) -> tuple[bool, str]:
    """Whether the exchange failed, and its status's name: a message the broker returned as
    unroutable, a channel or connection closed with a code other than success, a publish
    the broker refused (its ``basic.nack``; a consumer's nack is its own choice)."""
    request = entry.get("request") or {}
    if "confirmed" in request:
        return not request["confirmed"], "ACK" if request["confirmed"] else "NACK"
    if method == "basic.nack":
        return entry.get("fromServer") is True, "NACK"
    if not status.isdigit():
        return False, ""
    code = int(status)
    name = REPLY_CODE_NAMES.get(code, "")
    if method == "basic.return":
        return True, name
    return code != 200, name


@hookimpl
def summarize(entry: Entry) -> Summary:
    request = entry.get("request") or {}
    response = entry.get("response") or {}
    side, message = ("request", request) if request else ("response", response)
    method = str(message.get("method", ""))
    summary, summary_query = _summary(side, message)
    if not summary and response:
        summary, summary_query = _summary("response", response)
    status, status_query = "", ""
    for status_side, fields in (("response", response), ("request", request)):
        if "replyCode" in fields:
            status = str(fields["replyCode"])
            status_query = equals(f"{status_side}.replyCode", fields["replyCode"])
            break
    if "confirmed" in request:
        status = "confirmed" if request["confirmed"] else "nacked"
        status_query = equals("request.confirmed", request["confirmed"])
    error, status_name = _verdict(entry, method, status)
    return {
        "error": error,
        "statusName": status_name,
        "summary": summary,
        "summaryQuery": all_of("amqp", summary_query),
        "method": method,
        "methodQuery": all_of("amqp", equals(f"{side}.method", method)),
        "status": status,
        "statusQuery": all_of("amqp", status_query) if status_query else "",
    }


# -- the detail view -----------------------------------------------------------------------------


def _shown(value: Any) -> Any:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value


def _row(name: str, value: Any, selector: str) -> TableRow:
    return row(name, _shown(value), selector)


def _sections(side: str, message: Mapping[str, Any] | None) -> list[Section]:
    if not message:
        return []
    method_rows = [_row("Method", message.get("method"), f"{side}.method")]
    method_rows += [
        _row(name, value, f"{side}.{name}")
        for name, value in message.items()
        if name != "method" and name not in CONTENT_FIELDS
    ]
    sections = [table("Method", method_rows)]
    if "properties" not in message:
        return sections
    properties = dict(message["properties"])
    headers = properties.pop("headers", None) or {}
    sections.append(
        table(
            "Properties",
            [_row(name, value, f"{side}.properties.{name}") for name, value in properties.items()],
        )
    )
    if headers:
        sections.append(
            table(
                "Headers",
                [
                    _row(name, value, key_selector(f"{side}.properties.headers", name))
                    for name, value in headers.items()
                ],
            )
        )
    sections.append(_body_section(side, message, properties.get("contentType", "")))
    return sections


def _body_section(side: str, message: Mapping[str, Any], content_type: str) -> Section:
    text = message.get("body", "")
    selector = f"{side}.body"
    if message.get("bodyEncoding") == "base64":
        return body("Body", text, selector, content_type or "application/octet-stream", "base64")
    parsed = parse_json(text) if text.lstrip()[:1] in ("{", "[") else NOT_JSON
    if parsed is not NOT_JSON:
        shown = json.dumps(parsed, indent=2, ensure_ascii=False)
        return body("Body", shown, selector, content_type or "application/json")
    return body("Body", text, selector, content_type or "text/plain")


@hookimpl
def represent(entry: Entry) -> Representation:
    return {
        "request": _sections("request", entry.get("request")),
        "response": _sections("response", entry.get("response")),
    }
