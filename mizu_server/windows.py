"""Windows of stored entries: what the service map and the statistics read
(:mod:`mizu_server.windowed`), through the store's connection or one of its own.

A window is the entries a query matches whose timestamps lie in a span of time, as the values
of some of the store's columns, newest first: read off each epoch's timestamp index
(:data:`~mizu_server.store.EPOCH_BITS`), the query pushed down to SQL where it can be
(:mod:`mizu_server.pushdown`), else re-checked on each decoded candidate within a time budget.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mizu_core.query import Query
from mizu_server.pushdown import COLUMN_NAMES, sql_regex, translate
from mizu_server.store import CACHE_KIB, EPOCH_BITS, SqliteStore, Store, readable_entry


@dataclass(slots=True)
class Window:
    """Entries of a time window a query matches, as column values (:meth:`Store.window`)."""

    rows: list[tuple[Any, ...]]
    """The columns asked for, newest entry first."""
    since: int
    until: int
    """The window, in ms since the epoch (both ends included)."""
    matched: int | None
    """Entries of the window the query matches: more than ``rows`` when the limit cut them
    (``rows`` holds the newest); None when a scan that needs Python re-checks stopped at the
    limit before counting them all."""
    partial: bool = False
    """The scan ran out of time: ``rows`` are the matches it found, the newest first."""


WINDOW_COLUMNS = frozenset({"seq", *COLUMN_NAMES})
"""What a window may read."""
_LATEST_TIMESTAMP = 1 << 62
"""Above every real timestamp (ms): bounds the index search for the newest one."""


class Windows(Protocol):
    """What reads windows of entries (:meth:`SqliteStore.window`, or its reader's)."""

    def window(
        self,
        query: Query,
        columns: Sequence[str],
        span_ms: int,
        limit: int,
        until_ms: int | None = None,
        budget: float | None = None,
    ) -> Window:
        """``columns`` of the entries ``query`` matches in the ``span_ms`` up to ``until_ms``
        (default: the newest stored timestamp), newest first, at most ``limit``."""

    def close(self) -> None: ...


class WindowReader:
    """Reads windows of entries (:meth:`Store.window`) through one SQLite connection: the
    store's own, or one of its own (:meth:`SqliteStore.reader`)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def _seqs(self) -> tuple[int | None, int]:
        first, last = self.db.execute("SELECT min(seq), max(seq) FROM entries").fetchone()
        return first, last or 0

    def newest_timestamp(self) -> int | None:
        """The latest timestamp stored: the greatest of each epoch's, each read off its index."""
        first, last = self._seqs()
        if first is None:
            return None
        newest = self.db.execute(
            "WITH RECURSIVE epochs(epoch) AS (SELECT ? UNION ALL SELECT epoch + 1 FROM epochs "
            "WHERE epoch < ?) SELECT max((SELECT max(timestamp) FROM entries "
            "WHERE entries.epoch = epochs.epoch AND timestamp <= ?)) FROM epochs",
            (first >> EPOCH_BITS, last >> EPOCH_BITS, _LATEST_TIMESTAMP),
        ).fetchone()[0]
        return int(newest) if isinstance(newest, int | float) else None

    def window(
        self,
        query: Query,
        columns: Sequence[str],
        span_ms: int,
        limit: int,
        until_ms: int | None = None,
        budget: float | None = None,
    ) -> Window:
        """``columns`` of the entries ``query`` matches whose timestamp lies in the ``span_ms``
        up to ``until_ms`` (default: the newest stored one, so that a replayed capture has a
        window too), newest first, at most ``limit`` of them. Each epoch's part of the window
        is read off its timestamp index. A query that needs Python re-checks decodes each
        candidate, until ``budget`` seconds have passed (then ``partial``)."""
        unknown = sorted(set(columns) - WINDOW_COLUMNS)
        if unknown:
            raise ValueError(f"not a column of the store: {', '.join(unknown)}")
        if until_ms is None:
            until_ms = self.newest_timestamp()
        first, last = self._seqs()
        if until_ms is None or first is None:
            return Window([], 0, 0, 0)
        since_ms = until_ms - span_ms
        if query.limit is not None:
            limit = min(limit, query.limit)
        sql = translate(query)
        selected = ", ".join(f"entries.{name}" for name in columns)
        matching = (
            "WITH RECURSIVE epochs(epoch) AS (SELECT ? UNION ALL SELECT epoch + 1 FROM epochs "
            "WHERE epoch < ?) SELECT {} FROM epochs JOIN entries ON entries.epoch = epochs.epoch "
            "AND typeof(entries.timestamp) IN ('integer', 'real') "
            f"AND entries.timestamp >= ? AND entries.timestamp <= ? WHERE {sql.where}"
        )
        params = (first >> EPOCH_BITS, last >> EPOCH_BITS, since_ms, until_ms, *sql.params)
        if sql.exact:
            rows = self.db.execute(
                matching.format(selected) + " ORDER BY entries.seq DESC LIMIT ?", (*params, limit)
            ).fetchall()
            matched = len(rows)
            if matched == limit:
                matched = self.db.execute(matching.format("count(*)"), params).fetchone()[0]
            return Window(rows, since_ms, until_ms, matched)
        deadline = None if budget is None else time.monotonic() + budget
        found: list[tuple[Any, ...]] = []
        partial = False
        candidates = self.db.execute(
            matching.format(f"{selected}, entries.seq, entries.data")
            + " ORDER BY entries.seq DESC",
            params,
        )
        for row in candidates:
            entry = readable_entry(row[-2], row[-1])
            if entry is not None and query(entry):
                found.append(row[:-2])
                if len(found) == limit:
                    return Window(found, since_ms, until_ms, None)
            if deadline is not None and time.monotonic() >= deadline:
                partial = True
                break
        return Window(found, since_ms, until_ms, len(found), partial)

    def close(self) -> None:
        self.db.close()


def open_reader(store: Store) -> tuple[WindowReader | None, bool]:
    """A reader of the store's windows, and whether it has a connection of its own: then it
    runs on a thread of its own, as SQLite's WAL lets it read while the store writes, so the
    service map and the statistics never hold ingest up. A store in memory, which only its
    own connection sees, is read through that connection, on the store's thread. (None: an
    engine this module does not read.)"""
    if not isinstance(store, SqliteStore):
        return None, False
    if store.path == ":memory:":
        return WindowReader(store.db), False
    connection = sqlite3.connect(
        f"file:{store.path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
    )
    connection.create_function("mizu_regex", 2, sql_regex, deterministic=True)
    connection.execute(f"PRAGMA cache_size=-{CACHE_KIB // 4}")
    return WindowReader(connection), True
