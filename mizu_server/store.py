"""Where the hub keeps entries: an interface, and SQLite behind it.

The SQLite store is used from one thread at a time (the hub gives it a single worker thread):
WAL mode, one transaction per batch, entries de-duplicated by id, and a size cap enforced by
evicting the oldest entries. Entries are kept whole (msgpack) beside the columns that queries
are pushed down to (:mod:`mizu_server.pushdown`).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import msgpack

from mizu_core.query import Query
from mizu_server.pushdown import COLUMNS, INDEXED, column_value, sql_regex, translate

BACKWARD, FORWARD = -1, 1
_SCAN_CHUNK = 2000


@dataclass(slots=True)
class StoredEntry:
    seq: int
    entry: dict[str, Any]


@dataclass(slots=True)
class Page:
    """One page of a listing: entries in chronological order and where the scan stopped."""

    entries: list[StoredEntry]
    left_off: int
    """Pass back as ``leftOff`` to continue in the same direction."""
    scanned: int
    exact: bool
    """Whether the query was answered in SQL alone."""
    exhausted: bool
    """Nothing further in this direction (for now)."""


@dataclass(slots=True)
class StoreStats:
    stored: int = 0
    duplicates: int = 0
    evicted: int = 0
    inserts: int = 0


class Store(Protocol):
    """What the hub needs of a store; another engine can replace SQLite behind it."""

    def insert(self, entries: Sequence[Mapping[str, Any]]) -> list[StoredEntry]:
        """Store the entries not stored yet (by id); return those, with their sequence."""

    def page(self, query: Query, limit: int, left_off: int | None, direction: int) -> Page: ...

    def get(self, entry_id: str) -> dict[str, Any] | None: ...

    def last_seq(self) -> int: ...

    def traffic(self) -> list[dict[str, Any]]: ...

    def status(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


_COLUMN_NAMES = tuple(COLUMNS.values())


class SqliteStore:
    """Entries in one SQLite file (``:memory:`` for a throwaway store)."""

    def __init__(self, path: str | Path, max_bytes: int = 200 * 1000 * 1000) -> None:
        self.path = str(path)
        self.max_bytes = max_bytes
        self.stats = StoreStats()
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.create_function("mizu_regex", 2, sql_regex, deterministic=True)
        columns = ", ".join(_COLUMN_NAMES)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS entries (seq INTEGER PRIMARY KEY, id TEXT NOT NULL "
            f"UNIQUE, {columns}, size INTEGER NOT NULL, data BLOB NOT NULL)"
        )
        for column in INDEXED:
            self.db.execute(f"CREATE INDEX IF NOT EXISTS entries_{column} ON entries ({column})")
        self.page_size = self.db.execute("PRAGMA page_size").fetchone()[0]
        self._insert_sql = (
            f"INSERT INTO entries (seq, id, {columns}, size, data) "
            f"VALUES ({', '.join('?' * (len(_COLUMN_NAMES) + 4))})"
        )
        self._seq = self.last_seq()
        self.stats.stored = self.count()

    # -- writing -------------------------------------------------------------------------------

    def insert(self, entries: Sequence[Mapping[str, Any]]) -> list[StoredEntry]:
        fresh = self._not_stored(entries)
        if not fresh:
            return []
        rows = []
        stored = []
        paths = tuple(COLUMNS)
        for entry in fresh:
            self._seq += 1
            data = msgpack.packb(entry, use_bin_type=True)
            rows.append(
                (
                    self._seq,
                    entry["id"],
                    *(column_value(entry, path) for path in paths),
                    len(data),
                    data,
                )
            )
            stored.append(StoredEntry(self._seq, dict(entry)))
        with self._transaction():
            self.db.executemany(self._insert_sql, rows)
        self.stats.inserts += 1
        self.stats.stored += len(rows)
        self._enforce_cap()
        return stored

    def _not_stored(self, entries: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        by_id: dict[str, Mapping[str, Any]] = {}
        for entry in entries:
            entry_id = entry.get("id")
            if not isinstance(entry_id, str) or not entry_id:
                continue
            if entry_id in by_id:
                self.stats.duplicates += 1
                continue
            by_id[entry_id] = entry
        ids = list(by_id)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            for (known,) in self.db.execute(f"SELECT id FROM entries WHERE id IN ({marks})", chunk):
                del by_id[known]
                self.stats.duplicates += 1
        return list(by_id.values())

    def _transaction(self) -> _Transaction:
        return _Transaction(self.db)

    def used_bytes(self) -> int:
        pages = self.db.execute("PRAGMA page_count").fetchone()[0]
        free = self.db.execute("PRAGMA freelist_count").fetchone()[0]
        return int((pages - free) * self.page_size)

    def _enforce_cap(self) -> None:
        """Evict the oldest entries until the database is back under 90% of its cap; freed
        pages are reused by later inserts, so the file stops growing near the cap."""
        used = self.used_bytes()
        if used <= self.max_bytes:
            return
        target = self.max_bytes * 0.9
        for _ in range(8):
            count = self.count()
            if count == 0 or used <= target:
                break
            doomed = max(1, math.ceil(count * (used - target) / used))
            with self._transaction():
                cursor = self.db.execute(
                    "DELETE FROM entries WHERE seq IN "
                    "(SELECT seq FROM entries ORDER BY seq LIMIT ?)",
                    (doomed,),
                )
            self.stats.evicted += cursor.rowcount
            self.stats.stored -= cursor.rowcount
            used = self.used_bytes()

    # -- reading -------------------------------------------------------------------------------

    def count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM entries").fetchone()[0])

    def last_seq(self) -> int:
        return int(self.db.execute("SELECT coalesce(max(seq), 0) FROM entries").fetchone()[0])

    def get(self, entry_id: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT data FROM entries WHERE id = ?", (entry_id,)).fetchone()
        return _decode(row[0]) if row else None

    def page(self, query: Query, limit: int, left_off: int | None, direction: int) -> Page:
        """Up to ``limit`` matching entries next to ``left_off`` (exclusive) in ``direction``;
        backward from the newest when ``left_off`` is None."""
        if query.limit is not None:
            limit = min(limit, query.limit)
        sql = translate(query)
        if direction == FORWARD:
            bound, order, cursor = "seq > ?", "ASC", left_off or 0
        else:
            bound, order, cursor = "seq < ?", "DESC", left_off if left_off else self._seq + 1
        found: list[StoredEntry] = []
        scanned = 0
        exhausted = False
        # Exact SQL needs no Python re-check, so it may fetch exactly `limit` rows; otherwise
        # scan in chunks, keeping what the query matches, until the page is full.
        chunk = limit if sql.exact else max(_SCAN_CHUNK, limit)
        while len(found) < limit:
            rows = self.db.execute(
                f"SELECT seq, data FROM entries WHERE {bound} AND {sql.where} "
                f"ORDER BY seq {order} LIMIT ?",
                (cursor, *sql.params, chunk),
            ).fetchall()
            for seq, data in rows:
                scanned += 1
                cursor = seq
                entry = _decode(data)
                if sql.exact or query(entry):
                    found.append(StoredEntry(seq, entry))
                    if len(found) == limit:
                        break
            else:
                if len(rows) < chunk:
                    exhausted = True
                    break
        if direction != FORWARD:
            found.reverse()
        return Page(found, cursor, scanned, sql.exact, exhausted)

    def traffic(self) -> list[dict[str, Any]]:
        """Entries and bytes per protocol and method, busiest first."""
        rows = self.db.execute(
            "SELECT protocol, method, count(*), sum(size) FROM entries "
            "GROUP BY protocol, method ORDER BY count(*) DESC"
        ).fetchall()
        return [
            {"protocol": protocol, "method": method, "entries": count, "bytes": size}
            for protocol, method, count, size in rows
        ]

    def status(self) -> dict[str, Any]:
        oldest = self.db.execute("SELECT min(timestamp) FROM entries").fetchone()[0]
        return {
            "engine": "sqlite",
            "path": self.path,
            "entries": self.stats.stored,
            "usedBytes": self.used_bytes(),
            "maxBytes": self.max_bytes,
            "evicted": self.stats.evicted,
            "duplicates": self.stats.duplicates,
            "truncatedTimestamp": oldest if self.stats.evicted else None,
        }

    def close(self) -> None:
        self.db.close()


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN")

    def __exit__(self, kind: object, *rest: object) -> None:
        self.db.execute("ROLLBACK" if kind is not None else "COMMIT")


def _decode(data: bytes) -> dict[str, Any]:
    return dict(msgpack.unpackb(data, raw=False))
