"""The list row (``summarize``) and detail view (``represent``) of AMQP entries.

The core asks for the row of every entry as it is made (its ``error`` is kept in the entry),
so this module is compiled with the hot path.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from mizu_core import (
    NOT_JSON,
    Entry,
    Representation,
    Section,
    Summary,
    TableRow,
    all_of,
    body,
    equals,
    key_selector,
    parse_json,
    row,
    table,
)

CONTENT_FIELDS: Final = (
    "properties",
    "body",
    "bodyEncoding",
    "bodySize",
    "bodyTruncated",
    "incomplete",
)
"""Fields of a content method that are not method arguments."""


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


def summarize_entry(entry: Entry) -> Summary:
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


def represent_entry(entry: Entry) -> Representation:
    return {
        "request": _sections("request", entry.get("request")),
        "response": _sections("response", entry.get("response")),
    }
