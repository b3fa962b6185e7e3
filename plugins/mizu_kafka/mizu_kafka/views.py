"""The list row (``summarize``) and detail view (``represent``) of Kafka entries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from mizu_core import (
    Representation,
    Section,
    Summary,
    TableRow,
    all_of,
    equals,
    json_body,
    row,
    table,
)
from mizu_kafka.protocol import error_codes, error_name

MAX_ROWS = 200
MAX_SUMMARY_TOPICS = 3
TOPIC_LISTS = ("topics", "topicData", "responses", "topicNames", "groups")
"""Payload lists whose items name topics (``groups`` holds OffsetFetch v8+'s topics)."""


def topics(payload: Any, path: str = "") -> list[tuple[str, str, dict[str, Any] | None]]:
    """``(selector, topic name, topic item)`` for each topic a payload names."""
    # A list rather than a generator: the list row asks for it for every entry, and the
    # compiled build makes a generator an object stepped through Python's protocol.
    found: list[tuple[str, str, dict[str, Any] | None]] = []
    if not isinstance(payload, dict):
        return found
    for list_name in TOPIC_LISTS:
        items = payload.get(list_name)
        if not isinstance(items, list):
            continue
        for index, item in enumerate(items):
            selector = f"{path}{list_name}[{index}]"
            if isinstance(item, str):
                found.append((selector, item, None))
            elif isinstance(item, dict):
                if list_name == "groups":
                    found += topics(item, f"{selector}.")
                    continue
                for key in ("name", "topic"):
                    name = item.get(key)
                    if isinstance(name, str):
                        found.append((f"{selector}.{key}", name, item))
                        break
    return found


MAX_REMEMBERED: Final = 4096
"""Row queries kept, at most (all are forgotten when there are more)."""
_ROW_QUERIES: Final[dict[tuple[str, str], str]] = {}
"""``kafka and SELECTOR == "VALUE"`` by selector and text value: the row is asked for every
entry, and a capture's entries name a few topics, methods and clients over and over."""
_STATUS_QUERIES: Final[dict[int, str]] = {}
"""The row's status query by error code."""


def _row_query(selector: str, value: Any) -> str:
    """``kafka and selector == value``, remembered when ``value`` is text."""
    if not isinstance(value, str):
        return all_of("kafka", equals(selector, value))
    query = _ROW_QUERIES.get((selector, value))
    if query is None:
        if len(_ROW_QUERIES) >= MAX_REMEMBERED:
            _ROW_QUERIES.clear()
        query = _ROW_QUERIES[(selector, value)] = all_of("kafka", equals(selector, value))
    return query


def _status_query(code: int) -> str:
    query = _STATUS_QUERIES.get(code)
    if query is None:
        if len(_STATUS_QUERIES) >= MAX_REMEMBERED:
            _STATUS_QUERIES.clear()
        query = _STATUS_QUERIES[code] = all_of("kafka", equals("response.errorCode", code))
    return query


def _group(payload: Mapping[str, Any]) -> str | None:
    for key in ("groupId", "key", "transactionalId"):
        value = payload.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _error_code(response: Mapping[str, Any]) -> int:
    """The response's status: the first error code other than NONE anywhere in it (a topic's,
    a partition's), 0 when none (or no response)."""
    return int(response.get("errorCode", 0)) if response else 0


def is_error_entry(entry: Mapping[str, Any]) -> bool:
    """The ``error`` of :func:`summarize_entry`'s row, without the rest of the row (texts and
    queries): the core asks it of every entry as it is made."""
    return _error_code(entry.get("response") or {}) != 0


def summarize_entry(entry: Mapping[str, Any]) -> Summary:
    request = entry.get("request") or {}
    response = entry.get("response") or {}
    method = request.get("method", "")
    payload = request.get("payload") or {}
    named = topics(payload)
    if named:
        distinct: dict[str, None] = {}
        for _, name, _ in named:
            distinct[name] = None
        names = list(distinct)
        summary = ", ".join(names[:MAX_SUMMARY_TOPICS])
        if len(names) > MAX_SUMMARY_TOPICS:
            summary += f" (+{len(names) - MAX_SUMMARY_TOPICS})"
        first_selector, first_name, _ = named[0]
        summary_query = _row_query(f"request.payload.{first_selector}", first_name)
    elif group := _group(payload):
        key = next(k for k in ("groupId", "key", "transactionalId") if payload.get(k) == group)
        summary = group
        summary_query = _row_query(f"request.payload.{key}", group)
    elif request:
        # Stored entries come from tappers of any version: the row holds whatever the id is.
        client_id = request.get("clientId") or ""
        summary = str(client_id)
        summary_query = _row_query("request.clientId", client_id)
    else:
        summary = f"correlation id {response.get('correlationId')}"
        summary_query = "kafka and request == nil"
    code = _error_code(response)
    if response:
        status = response.get("errorName") or error_name(code)
        status_query = _status_query(code)
    else:
        status = ""
        status_query = "kafka and response == nil"
    return {
        # the first error code other than NONE anywhere in the response (a topic's, a
        # partition's): Kafka answers a request in part, and any part failing is an error
        "error": code != 0,
        "statusName": status,
        "summary": summary,
        "summaryQuery": summary_query,
        "method": method,
        "methodQuery": _row_query("request.method", method) if method else "kafka",
        "status": status,
        "statusQuery": status_query,
    }


def _table(title: str, rows: list[TableRow]) -> Section:
    return table(title, rows[:MAX_ROWS])


def _partitions(item: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    if not item:
        return []
    for key in ("partitions", "partitionData", "partitionResponses", "partitionIndexes"):
        value = item.get(key)
        if isinstance(value, list):
            return value
    return []


def _partition_index(partition: Any) -> Any:
    if isinstance(partition, Mapping):
        for key in ("index", "partitionIndex", "partition"):
            if key in partition:
                return partition[key]
    return partition


def _topic_rows(side: str, payload: Any) -> list[TableRow]:
    rows = []
    for selector, name, item in topics(payload):
        indexes = [str(_partition_index(p)) for p in _partitions(item)]
        value = f"partitions {', '.join(indexes)}" if indexes else ""
        rows.append(row(name, value, f"{side}.payload.{selector}"))
    return rows


def _records(payload: Any) -> list[dict[str, Any]]:
    shown = []
    for _, name, item in topics(payload):
        for partition in _partitions(item):
            if not isinstance(partition, Mapping):
                continue
            for record in partition.get("records") or []:
                shown.append({"topic": name, "partition": _partition_index(partition), **record})
    return shown


def _side(side: str, message: Mapping[str, Any]) -> list[Section]:
    header = [
        row(label, message[key], f"{side}.{key}")
        for label, key in (
            ("API", "method"),
            ("API key", "apiKey"),
            ("API version", "apiVersion"),
            ("Correlation ID", "correlationId"),
            ("Client ID", "clientId"),
            ("Decoding", "decodeError"),
            ("Size on the wire (cut)", "truncatedSize"),
        )
        if key in message
    ]
    title = "Request Header" if side == "request" else "Response Header"
    sections = [_table(title, header)]
    payload = message.get("payload")
    if rows := _topic_rows(side, payload):
        sections.append(_table("Topics/Partitions", rows))
    if records := _records(payload):
        sections.append(json_body("Records", records, f"{side}.payload"))
    if side == "response" and payload is not None:
        codes = [
            row(selector, f"{code} {error_name(code)}", f"response.payload.{selector}")
            for selector, code in error_codes(payload)
        ]
        if codes:
            sections.append(_table("Error codes", codes))
    if payload is not None:
        sections.append(json_body("Payload", payload, f"{side}.payload"))
    return sections


def represent_entry(entry: Mapping[str, Any]) -> Representation:
    request = entry.get("request")
    response = entry.get("response")
    return {
        "request": _side("request", request) if request else [],
        "response": _side("response", response) if response else [],
    }
