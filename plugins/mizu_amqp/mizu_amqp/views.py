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

MAX_CACHED: Final = 4096
"""Rows' texts and queries remembered per cache, at most (the cache is emptied when full)."""

_ROUTES: Final[dict[tuple[str, str, str], tuple[str, str]]] = {}
"""The summary of a route and its row query, by side, exchange and routing key: a connection
publishes to a few routes over and over, and the row is asked for every entry."""

_METHOD_QUERIES: Final[dict[tuple[str, str], str]] = {}
"""The row's method query by side and method."""


def _route(side: str, exchange: Any, key: Any) -> tuple[str, str]:
    """The summary and row query of a message to ``exchange`` with ``key``."""
    cacheable = isinstance(exchange, str) and isinstance(key, str)
    if cacheable:
        cached = _ROUTES.get((side, exchange, key))
        if cached is not None:
            return cached
    query = all_of(equals(f"{side}.exchange", exchange), equals(f"{side}.routingKey", key))
    route = f"{exchange or '(default)'} → {key}", all_of("amqp", query)
    if cacheable:
        if len(_ROUTES) >= MAX_CACHED:
            _ROUTES.clear()
        _ROUTES[(side, exchange, key)] = route
    return route


def _summary(side: str, message: Mapping[str, Any]) -> tuple[str, str]:
    """Exchange and routing key, or queue, of one message, with the row query selecting it."""
    if "routingKey" in message and "exchange" in message:
        return _route(side, message["exchange"], message["routingKey"])
    for name in ("queue", "exchange", "destination", "consumerTag"):
        value = message.get(name)
        if value:
            return str(value), all_of("amqp", equals(f"{side}.{name}", value))
    return "", "amqp"


def _method_query(side: str, method: str) -> str:
    query = _METHOD_QUERIES.get((side, method))
    if query is None:
        if len(_METHOD_QUERIES) >= MAX_CACHED:
            _METHOD_QUERIES.clear()
        query = _METHOD_QUERIES[(side, method)] = all_of("amqp", equals(f"{side}.method", method))
    return query


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


CONFIRMED_QUERY: Final = all_of("amqp", equals("request.confirmed", True))
NACKED_QUERY: Final = all_of("amqp", equals("request.confirmed", False))


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


def _reply_code_side(request: Mapping[str, Any], response: Mapping[str, Any]) -> str:
    """The side whose ``replyCode`` is the row's status: the response's when it has one, else
    the request's; "" when neither has."""
    if "replyCode" in response:
        return "response"
    return "request" if "replyCode" in request else ""


def is_error_entry(entry: Entry) -> bool:
    """The ``error`` of :func:`summarize_entry`'s row, without the rest of the row (texts and
    queries): the core asks it of every entry as it is made."""
    request = entry.get("request") or {}
    response = entry.get("response") or {}
    method = str((request or response).get("method", ""))
    code_side = _reply_code_side(request, response)
    status = ""
    if code_side:
        status = str((response if code_side == "response" else request)["replyCode"])
    return _verdict(entry, method, status)[0]


def summarize_entry(entry: Entry) -> Summary:
    request = entry.get("request") or {}
    response = entry.get("response") or {}
    side, message = ("request", request) if request else ("response", response)
    method = str(message.get("method", ""))
    summary, summary_query = _summary(side, message)
    if not summary and response:
        summary, summary_query = _summary("response", response)
    status, status_query = "", ""
    code_side = _reply_code_side(request, response)
    if code_side:
        code = (response if code_side == "response" else request)["replyCode"]
        status = str(code)
        status_query = all_of("amqp", equals(f"{code_side}.replyCode", code))
    if "confirmed" in request:
        confirmed = request["confirmed"]
        status = "confirmed" if confirmed else "nacked"
        if confirmed is True:
            status_query = CONFIRMED_QUERY
        elif confirmed is False:
            status_query = NACKED_QUERY
        else:
            status_query = all_of("amqp", equals("request.confirmed", confirmed))
    error, status_name = _verdict(entry, method, status)
    return {
        "error": error,
        "statusName": status_name,
        "summary": summary,
        "summaryQuery": summary_query,
        "method": method,
        "methodQuery": _method_query(side, method),
        "status": status,
        "statusQuery": status_query,
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
