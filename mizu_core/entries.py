"""Entries and their list rows (docs/entries.md), built from pairs."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from mizu_core.entry import Row, equals
from mizu_core.model import ConnectionInfo, Direction, Endpoint, Pair, Protocol

_CLIENT_TO_SERVER: Final = Direction.CLIENT_TO_SERVER


_Endpoints = tuple[Endpoint, Endpoint, dict[str, Any], dict[str, Any], ConnectionInfo]
"""A connection's client and server, their JSON, and the connection (kept so that its
identity is not another's while it is cached)."""


class EntryBuilder:
    """Builds the generic part of entries; plugins fill in the rest in ``analyze``.

    Entries come in runs of the same protocol, connection and second: the builder keeps what
    it made for the last of each and hands out copies (a plugin or the hub's name resolver may
    change an entry's ``protocol``, ``src`` or ``dst`` in place)."""

    def __init__(self) -> None:
        self._protocols: dict[int, tuple[Protocol, dict[str, Any]]] = {}
        """Each protocol's JSON, by the identity of its (long-lived, declared) object: a
        protocol's own hash goes through all its fields."""
        self._last_protocol: Protocol | None = None
        self._last_protocol_json: dict[str, Any] = {}
        self._endpoints: dict[int, _Endpoints] = {}
        """The JSON of each connection's client and server, by the identity of its (long-lived)
        information: a run of entries interleaves connections (keep-alive clients)."""
        self._second = -1
        self._second_text = ""

    def protocol_json(self, protocol: Protocol) -> dict[str, Any]:
        cached = self._protocols.get(id(protocol))
        if cached is None or cached[0] is not protocol:
            if len(self._protocols) >= 256:  # protocols made on the fly: keep memory flat
                self._protocols.clear()
            cached = self._protocols[id(protocol)] = (protocol, protocol.to_json())
        self._last_protocol = protocol
        self._last_protocol_json = cached[1]
        return cached[1].copy()

    def build(self, entry_id: str, pair: Pair) -> dict[str, Any]:
        request, response = pair.request, pair.response
        # not `request or response`: the truth of a message (a class plugins may subclass)
        # is asked of Python
        first = request if request is not None else response
        last = response if response is not None else request
        assert first is not None and last is not None
        connection = pair.connection
        client, server = connection.client, connection.server
        endpoints = self._endpoints.get(id(connection))
        # the roles of a connection swap when the core corrects its guess
        if endpoints is None or endpoints[0] is not client or endpoints[1] is not server:
            if len(self._endpoints) >= 4096:  # keep memory flat
                self._endpoints.clear()
            endpoints = (client, server, client.to_json(), server.to_json(), connection)
            self._endpoints[id(connection)] = endpoints
        if first.direction == _CLIENT_TO_SERVER:
            src, dst = endpoints[2].copy(), endpoints[3].copy()
        else:
            src, dst = endpoints[3].copy(), endpoints[2].copy()
        start = first.first_time
        milliseconds = int(start * 1000)
        second = milliseconds // 1000
        if second != self._second:
            self._second, self._second_text = second, _iso_second(second)
        elapsed = last.last_time - start
        if elapsed < 0.0:
            elapsed = 0.0
        # round(elapsed * 1000, 3) converts through decimal digits, a fifth of this method.
        # It is the double nearest to N / 1000, N the integer nearest to the exact product
        # milliseconds_float * 1000; so is whole / 1000 (an integer below 2**53 divides correctly
        # rounded) when whole is N. The product's rounding error is below 1e-4 under 1e12:
        # whole is N unless the product lies that close to a half, and then round decides
        # (so it does past 1e12, and for a NaN a plugin's times might make).
        milliseconds_float = elapsed * 1000
        scaled = milliseconds_float * 1000
        whole = int(scaled + 0.5) if scaled < 1e12 else -1
        near_half = not -0.4999 <= scaled - whole <= 0.4999
        elapsed_ms = round(milliseconds_float, 3) if near_half else whole / 1000
        protocol = first.protocol
        # A copy of a dict with the keys in place, whose values are then replaced, costs half
        # a dict made key by key (its table is copied whole, no key is inserted).
        entry = _ENTRY_KEYS.copy()
        entry["id"] = entry_id
        entry["protocol"] = (
            self._last_protocol_json.copy()
            if protocol is self._last_protocol
            else self.protocol_json(protocol)
        )
        entry["src"] = src
        entry["dst"] = dst
        entry["fromServer"] = first.direction != _CLIENT_TO_SERVER
        entry["timestamp"] = milliseconds
        entry["startTime"] = self._second_text + _ISO_FRACTIONS[milliseconds - second * 1000]
        entry["elapsedTime"] = elapsed_ms
        if request is not None:
            entry["requestSize"] = request.size
            entry["request"] = request.data
        if response is not None:
            entry["responseSize"] = response.size
            entry["response"] = response.data
        if pair.unpaired:
            entry["unpaired"] = pair.unpaired
        return entry


_ENTRY_KEYS: Final[dict[str, Any]] = {
    "id": "",
    "protocol": None,
    "src": None,
    "dst": None,
    "outgoing": False,
    "fromServer": False,
    "timestamp": 0,
    "startTime": "",
    "elapsedTime": 0.0,
    "requestSize": 0,
    "responseSize": 0,
    "request": None,
    "response": None,
}
"""The generic fields of an entry, in their order, with the values of a side missing."""


def iso_time(milliseconds: int) -> str:
    """ISO 8601 in UTC with milliseconds (since the epoch): ``2024-05-01T12:00:00.250Z``."""
    return _iso_second(milliseconds // 1000) + _ISO_FRACTIONS[milliseconds % 1000]


_ISO_FRACTIONS: Final = tuple(f".{fraction:03d}Z" for fraction in range(1000))


@functools.lru_cache(maxsize=4096)
def _iso_second(whole_seconds: int) -> str:
    # Entries come in bursts within the same second: format each second once.
    return datetime.fromtimestamp(whole_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def base_row(entry: Mapping[str, Any]) -> Row:
    """The generic fields of an entry's list row; ``summarize`` adds the protocol's."""
    protocol = entry["protocol"]
    request = entry.get("request") or {}
    response = entry.get("response") or {}
    method = str(request.get("method", ""))
    row: Row = {
        "id": entry["id"],
        "proto": protocol,
        "summary": "",
        "summaryQuery": "",
        "method": method,
        "methodQuery": equals("request.method", method) if method else "",
        "status": response.get("status", "") if isinstance(response, Mapping) else "",
        "statusQuery": "",
        "timestamp": entry["timestamp"],
        "src": entry["src"],
        "dst": entry["dst"],
        "isOutgoing": entry.get("outgoing", False),
        "latency": entry.get("elapsedTime", 0),
        "error": entry.get("error") is True,
        "statusName": "",
    }
    tls = entry.get("tls")
    if isinstance(tls, Mapping):  # decrypted traffic, or a tls entry: the list shows a lock
        row["tls"] = dict(tls)
    return row
