"""Entries (CONTRACT section 2) and their list rows, built from pairs."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from mizu_core.model import Direction, Pair, Protocol


class EntryBuilder:
    """Builds the generic part of entries; plugins fill in the rest in ``analyze``."""

    def __init__(self) -> None:
        self._protocols: dict[Protocol, dict[str, Any]] = {}

    def protocol_json(self, protocol: Protocol) -> dict[str, Any]:
        cached = self._protocols.get(protocol)
        if cached is None:
            cached = self._protocols[protocol] = protocol.to_json()
        return dict(cached)

    def build(self, entry_id: str, pair: Pair) -> dict[str, Any]:
        request, response = pair.request, pair.response
        first = request or response
        last = response or request
        assert first is not None and last is not None
        connection = pair.connection
        if first.direction == Direction.CLIENT_TO_SERVER:
            src, dst = connection.client, connection.server
        else:
            src, dst = connection.server, connection.client
        start = first.first_time
        return {
            "id": entry_id,
            "protocol": self.protocol_json(first.protocol),
            "src": src.to_json(),
            "dst": dst.to_json(),
            "outgoing": False,
            "timestamp": int(start * 1000),
            "startTime": iso_time(start),
            "elapsedTime": round(max(last.last_time - start, 0.0) * 1000, 3),
            "requestSize": request.size if request else 0,
            "responseSize": response.size if response else 0,
            "request": request.data if request else None,
            "response": response.data if response else None,
        }


def iso_time(seconds: float) -> str:
    """ISO 8601 in UTC with milliseconds: ``2024-05-01T12:00:00.250Z``."""
    milliseconds = int(seconds * 1000)
    whole, fraction = divmod(milliseconds, 1000)
    return f"{_iso_second(whole)}.{fraction:03d}Z"


@functools.lru_cache(maxsize=4096)
def _iso_second(whole_seconds: int) -> str:
    # Entries come in bursts within the same second: format each second once.
    return datetime.fromtimestamp(whole_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def base_row(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The generic fields of an entry's list row; ``summarize`` adds the protocol's."""
    protocol = entry["protocol"]
    request = entry.get("request") or {}
    response = entry.get("response") or {}
    method = str(request.get("method", ""))
    return {
        "id": entry["id"],
        "proto": protocol,
        "summary": "",
        "summaryQuery": "",
        "method": method,
        "methodQuery": f'request.method == "{escape_query_string(method)}"' if method else "",
        "status": response.get("status", "") if isinstance(response, Mapping) else "",
        "statusQuery": "",
        "timestamp": entry["timestamp"],
        "src": entry["src"],
        "dst": entry["dst"],
        "isOutgoing": entry.get("outgoing", False),
        "latency": entry.get("elapsedTime", 0),
    }


def escape_query_string(text: str) -> str:
    """``text`` as the inside of a double-quoted filter-language string."""
    return text.replace("\\", "\\\\").replace('"', '\\"')
