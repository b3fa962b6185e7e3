"""Views of the traffic over a window of time, computed by the hub when asked: the service map
(:mod:`mizu_server.servicemap`) and the statistics (:mod:`mizu_server.stats`).

Both read the stored entries the filter matches between the window's start and the newest
stored entry (:meth:`~mizu_server.store.SqliteStore.window`), at most :data:`WINDOW_ROWS` of
them, newest first, and say what they were computed from: ``entries`` read, ``matched`` in the
window when more matched than were read (``complete`` is false then), ``partial`` when a query
that needs Python re-checks ran out of time first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mizu_core.query import Query
from mizu_server import servicemap, stats
from mizu_server.windows import Window, Windows

WINDOW_ROWS = 100_000
"""Entries a view reads at most: the newest of the window when more match."""
DEFAULT_SECONDS = 900
MAX_SECONDS = 30 * 86_400
MAX_BUCKETS = 240


def window_seconds(text: str | None) -> int:
    """The ``window`` parameter: whole seconds, 1 to 30 days; ValueError saying so."""
    if text in (None, ""):
        return DEFAULT_SECONDS
    if not (text.isascii() and text.isdecimal()) or not 1 <= int(text) <= MAX_SECONDS:
        raise ValueError(f"window is a number of seconds from 1 to {MAX_SECONDS}")
    return int(text)


def bucket_count(text: str | None) -> int:
    if text in (None, ""):
        return 60
    if not (text.isascii() and text.isdecimal()) or not 1 <= int(text) <= MAX_BUCKETS:
        raise ValueError(f"buckets is a whole number from 1 to {MAX_BUCKETS}")
    return int(text)


def coverage(window: Window, query: Query, seconds: int) -> dict[str, Any]:
    return {
        "query": query.text,
        "window": {"seconds": seconds, "since": window.since, "until": window.until},
        "entries": len(window.rows),
        "matched": window.matched,
        "complete": window.matched == len(window.rows) and not window.partial,
        "partial": window.partial,
    }


def service_map(
    windows: Windows,
    query: Query,
    seconds: int,
    protocols: Mapping[str, Mapping[str, Any]],
    budget: float | None,
) -> dict[str, Any]:
    """``GET /servicemap``: runs on the store's thread."""
    window = windows.window(query, servicemap.COLUMNS, seconds * 1000, WINDOW_ROWS, None, budget)
    return {**servicemap.build(window.rows, protocols), **coverage(window, query, seconds)}


def statistics(
    windows: Windows,
    query: Query,
    seconds: int,
    by: str,
    buckets: int,
    protocols: Mapping[str, Mapping[str, Any]],
    budget: float | None,
) -> dict[str, Any]:
    """``GET /stats``: runs on the store's thread."""
    window = windows.window(query, stats.COLUMNS, seconds * 1000, WINDOW_ROWS, None, budget)
    answer = coverage(window, query, seconds)
    since = window.since
    if not answer["complete"] and window.rows:
        # only the newest entries of the window were read: the series start where they do
        since = max(since, min(row[0] for row in window.rows if isinstance(row[0], int)))
    return {**stats.build(window.rows, since, window.until, by, buckets, protocols), **answer}
