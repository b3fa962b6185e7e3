"""Entries for the hub's tests."""

from __future__ import annotations

from typing import Any

from mizu_core.query import Query
from mizu_core.tcp_plugin import TCP
from mizu_server.store import FORWARD, SqliteStore

ACCESS_TOKEN = "test-access-token"
"""The hub's access token in tests that make their own hub (``HubSettings(access_token=)``)."""
BEARER = {"Authorization": f"Bearer {ACCESS_TOKEN}"}
"""How a script presents :data:`ACCESS_TOKEN` to the browser API."""


def make_entry(number: int, method: str = "GET", status: int = 200, **extra: Any) -> dict[str, Any]:
    """An HTTP entry shaped as docs/entries.md describes."""
    timestamp = 1_700_000_000_000 + number
    return {
        "id": f"tapper-1-{number}",
        "protocol": {
            **TCP.to_json(),
            "name": "http",
            "version": "1.1",
            "abbr": "HTTP",
            "macro": "http",
        },
        "src": {"ip": "127.0.0.1", "port": 40000 + number % 1000, "name": "", "namespace": ""},
        "dst": {"ip": "127.0.0.1", "port": 8080, "name": "", "namespace": ""},
        "outgoing": False,
        "timestamp": timestamp,
        "startTime": "2023-11-14T22:13:20.000Z",
        "elapsedTime": 1.5,
        "requestSize": 80,
        "responseSize": 120,
        "request": {
            "method": method,
            "url": f"http://127.0.0.1:8080/items/{number}?q=1",
            "path": f"/items/{number}",
            "httpVersion": "HTTP/1.1",
            "headers": {"Host": "127.0.0.1:8080", "Authorization": "Bearer secret"},
            "queryString": {"q": "1"},
            "cookies": {},
            "headersSize": 60,
            "bodySize": 0,
        },
        "response": {
            "status": status,
            "statusText": "OK",
            "httpVersion": "HTTP/1.1",
            "headers": {"Content-Type": "application/json", "Set-Cookie": ["a=1", "b=2"]},
            "cookies": {"a": "1", "b": "2"},
            "content": {"size": 9, "mimeType": "application/json", "text": '{"n": 1}'},
            "headersSize": 80,
            "bodySize": 9,
        },
        **extra,
    }


def listed_seqs(
    store: SqliteStore, query: Query, size: int, direction: int, budget: float | None = None
) -> list[int]:
    """The sequences a listing pages through, ``size`` at a time, in ``direction`` order."""
    seen: list[int] = []
    left_off = None
    for _ in range(10_000):
        page = store.page(query, size, left_off, direction, budget=budget)
        ordered = [item.seq for item in page.entries]
        seen += ordered if direction == FORWARD else ordered[::-1]
        left_off = page.left_off
        if page.exhausted:
            return seen
    raise AssertionError("the listing never ended")
