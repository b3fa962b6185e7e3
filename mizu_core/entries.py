"""Entries (CONTRACT section 2) and their list rows, built from pairs."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from mizu_core.model import Direction, Pair, Protocol

_CLIENT_TO_SERVER = Direction.CLIENT_TO_SERVER


class EntryBuilder:
    """Builds the generic part of entries; plugins fill in the rest in ``analyze``."""

    def __init__(self) -> None:
        self._protocols: dict[int, tuple[Protocol, dict[str, Any]]] = {}
        """Each protocol's JSON, by the identity of its (long-lived, declared) object: a
        protocol's own hash goes through all its fields."""

    def protocol_json(self, protocol: Protocol) -> dict[str, Any]:
        cached = self._protocols.get(id(protocol))
        if cached is None or cached[0] is not protocol:
            if len(self._protocols) >= 256:  # protocols made on the fly: keep memory flat
                self._protocols.clear()
            cached = self._protocols[id(protocol)] = (protocol, protocol.to_json())
        return dict(cached[1])

    def build(self, entry_id: str, pair: Pair) -> dict[str, Any]:
        request, response = pair.request, pair.response
        first = request or response
        last = response or request
        assert first is not None and last is not None
        connection = pair.connection
        if first.direction == _CLIENT_TO_SERVER:
            src, dst = connection.client, connection.server
        else:
            src, dst = connection.server, connection.client
        start = first.first_time
        milliseconds = int(start * 1000)
        elapsed = last.last_time - start
        if elapsed < 0.0:
            elapsed = 0.0
        return {
            "id": entry_id,
            "protocol": self.protocol_json(first.protocol),
            "src": src.to_json(),
            "dst": dst.to_json(),
            "outgoing": False,
            "timestamp": milliseconds,
            "startTime": iso_time(milliseconds),
            "elapsedTime": round(elapsed * 1000, 3),
            "requestSize": request.size if request else 0,
            "responseSize": response.size if response else 0,
            "request": request.data if request else None,
            "response": response.data if response else None,
        }


def iso_time(milliseconds: int) -> str:
    """ISO 8601 in UTC with milliseconds (since the epoch): ``2024-05-01T12:00:00.250Z``."""
    return _iso_second(milliseconds // 1000) + _ISO_FRACTIONS[milliseconds % 1000]


_ISO_FRACTIONS = tuple(f".{fraction:03d}Z" for fraction in range(1000))


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
