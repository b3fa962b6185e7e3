"""Where the hub keeps entries: an interface, and SQLite behind it.

The SQLite store is used from one thread at a time (the hub gives it a single worker thread):
WAL mode, one transaction per batch, entries de-duplicated by id, and a size cap enforced by
evicting the oldest entries. Entries are kept whole (JSON, written by orjson: several times
cheaper to write and read than msgpack or the json module; msgpack for the rare entry JSON
cannot hold, such as integers beyond 64 bits) beside the columns that queries are pushed down
to (:mod:`mizu_server.pushdown`), whose indexes lead with the entry's epoch (:data:`EPOCH_BITS`)
so that inserts stay cheap however large the store grows. With pcap export on, the raw frames
of the entries' connections are kept too, and evicted with the entries of their time.

The store takes entries already encoded (:func:`encode_entry`: id, column values, JSON), the
form tappers send them in, so that the hub stores what it receives without decoding it; an
entry is decoded again only when something reads it (:class:`StoredEntry`).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import logging
import math
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import msgpack
import orjson

from mizu_core.emit import json_default
from mizu_core.query import Query
from mizu_server.pushdown import (
    COLUMN_NAMES,
    INDEXED,
    Sql,
    column_values,
    sql_regex,
    translate,
)

log = logging.getLogger(__name__)

BACKWARD, FORWARD = -1, 1
_SCAN_CHUNK = 2000
_WALK_PROBE = 0.03
"""Seconds a listing walks the table in order before it asks an index for its matches."""
_WINDOW = 20_000
"""Rows per step of a listing that no index helps."""
_PROGRESS_STEPS = 20_000
"""SQLite VM steps between checks of a running statement's time limit."""
CACHE_KIB = 32 * 1024
"""SQLite's page cache (its default is 2 MiB)."""
CHECKPOINT_PAGES = 10_000
"""WAL pages between checkpoints at most (SQLite's default is 1000). Each batch rewrites the
index pages its random keys (ids, paths, peers) land on; a checkpoint copies each page once
however many batches rewrote it, so rarer checkpoints write less (a fifth less over 200,000
entries) and sync a tenth as often. The WAL file grows to about this many pages, and to
:data:`WAL_SHARE` of the size cap at most."""
WAL_SHARE = 1 / 10
"""The part of the size cap the WAL may take (checkpointed, then cut back to it)."""
TRANSACTION_SHARE = 1 / 64
"""The part of the size cap one transaction may add (entries' data): the cap is enforced
between transactions, so neither the file nor the WAL outgrows it by more."""
MIN_TRANSACTION_BYTES = 16 << 10
FILE_MODE = 0o600
"""The database, its WAL and its lock: they hold other people's traffic, for their owner only."""

EncodedEntry = Sequence[Any]
"""``(id, *column values in COLUMN_NAMES order, data)``: an entry as the store takes it, made
by :func:`encode_entry` (tappers send entries in this form)."""
ENCODED_LENGTH = len(COLUMN_NAMES) + 2
INSERT_WIDTH = ENCODED_LENGTH + 4
"""Values per stored row: seq, the id's key, the encoded entry, its size, its epoch."""
EPOCH_BITS = 15
"""Entries are indexed in epochs of 2**15 consecutive sequences: every column index leads with
the epoch, ``(epoch, column)``. An insert batch then lands only in the newest epoch's part of
each index, a few hundred pages at most, where an index on the column alone took each batch's
keys to pages all over it, rewriting (and copying to the WAL) most of the index on every
commit: 1.7 GB of writes for 200,000 entries, growing with the database. Queries that use an
index walk the epochs one by one, newest first (:meth:`SqliteStore._indexed_rows`)."""
ROWS_PER_INSERT = 500
"""Rows per INSERT statement. One statement for many rows, rather than ``executemany``, lets the
store's thread hold the GIL once per statement instead of once per row: under load, each
re-acquisition of the GIL waits for the busy event-loop thread's switch interval (5 ms), which
starved the store to a fraction of its speed."""


class StoredEntry:
    """An entry the store holds, with its sequence; decoded from its stored bytes when first
    read (a batch that nobody watches is never decoded)."""

    __slots__ = ("_entry", "data", "id", "seq")

    def __init__(
        self, seq: int, entry_id: str, data: bytes, entry: dict[str, Any] | None = None
    ) -> None:
        self.seq = seq
        self.id = entry_id
        self.data = data
        self._entry = entry

    @property
    def entry(self) -> dict[str, Any]:
        if self._entry is None:
            self._entry = decode_data(self.data)
        return self._entry

    def made_from(self, entry: dict[str, Any]) -> None:
        """The entry this data was encoded from (the hub had it as it is): readers take it
        and never decode the data."""
        self._entry = entry


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
    partial: bool = False
    """The scan stopped at its time budget before the page was full: pass ``left_off`` back
    to scan on."""


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

    def insert_encoded(self, encoded: Sequence[EncodedEntry]) -> list[StoredEntry]:
        """:meth:`insert` for entries already encoded (:func:`encode_entry`)."""

    def page(
        self,
        query: Query,
        limit: int,
        left_off: int | None,
        direction: int,
        budget: float | None = None,
    ) -> Page:
        """``budget``: seconds a scan that needs Python re-checks may take before it returns
        what it found (``partial``)."""

    def insert_packets(self, connections: Iterable[Mapping[str, Any]]) -> int:
        """Keep ``{connection, linktype, frames: [[time, bytes]]}`` batches; return frames kept."""

    def packets(self, connections: Iterable[str]) -> list[tuple[int, float, bytes]]:
        """``(linktype, time, frame)`` of these connections, in time order."""

    def get(self, entry_id: str) -> dict[str, Any] | None: ...

    def last_seq(self) -> int: ...

    def count_matching(self, query: Query, budget: float) -> int | None:
        """How many entries ``query`` matches, if the engine can tell within ``budget``
        seconds; None otherwise."""

    def traffic(self) -> list[dict[str, Any]]: ...

    def status(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class SqliteStore:
    """Entries in one SQLite file (``:memory:`` for a throwaway store), which one store at a
    time may open (:func:`lock_database`)."""

    def __init__(self, path: str | Path, max_bytes: int = 200 * 1000 * 1000) -> None:
        self.path = str(path)
        self.max_bytes = max_bytes
        self.stats = StoreStats()
        self._lock: IO[str] | None = None
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._lock = lock_database(self.path)
            private_files(self.path)
        try:
            self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except BaseException:
            self._unlock()
            raise
        try:
            self._prepare()
        except BaseException:
            self.close()
            raise

    def _prepare(self) -> None:
        """Set the connection up, and the tables and indexes, upgrading an older layout."""
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        # index pages touched by random keys (paths, peers) stay cached across transactions
        self.db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        page_size = self.db.execute("PRAGMA page_size").fetchone()[0]
        wal_pages = max(16, min(CHECKPOINT_PAGES, int(self.max_bytes * WAL_SHARE) // page_size))
        self.db.execute(f"PRAGMA wal_autocheckpoint={wal_pages}")
        self.db.execute(f"PRAGMA journal_size_limit={wal_pages * page_size}")
        # Debian builds SQLite to zero every freed page, which doubled the writes of evicting
        # at the cap; FAST zeroes what it can without extra writes, and a freed page is soon
        # reused by the inserts that made room for themselves
        self.db.execute("PRAGMA secure_delete=FAST")
        self.db.create_function("mizu_regex", 2, sql_regex, deterministic=True)
        self.db.create_function("mizu_id_key", 1, id_key, deterministic=True)
        columns = ", ".join(COLUMN_NAMES)
        known = {row[1] for row in self.db.execute("PRAGMA table_info(entries)")}
        if known and "id_key" not in known:
            log.warning("%s holds entries of an older layout: starting it afresh", self.path)
            self.db.execute("DROP TABLE entries")
            known = set()
        elif known and "epoch" not in known:
            self._add_epochs()
        for column in COLUMN_NAMES:
            if known and column not in known:  # a column added since: NULL for older entries
                self.db.execute(f"ALTER TABLE entries ADD COLUMN {column}")
        # ids are found through a 64-bit key: an integer index costs far less per insert than
        # a unique index on the text
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS entries (seq INTEGER PRIMARY KEY, id_key INTEGER NOT "
            f"NULL, id TEXT NOT NULL, {columns}, size INTEGER NOT NULL, data BLOB NOT NULL, "
            "epoch INTEGER NOT NULL)"
        )
        self.db.execute("CREATE INDEX IF NOT EXISTS entries_id_key ON entries (id_key)")
        wanted = {"entries_id_key", *(f"entries_epoch_{column}" for column in INDEXED)}
        for (stale,) in self.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'entries' "
            "AND name LIKE 'entries_%'"
        ).fetchall():
            if stale not in wanted:  # an index an older version kept: it only slows inserts
                self.db.execute(f'DROP INDEX "{stale}"')
        for column in INDEXED:
            self.db.execute(
                f"CREATE INDEX IF NOT EXISTS entries_epoch_{column} ON entries (epoch, {column})"
            )
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS packets (seq INTEGER PRIMARY KEY, connection TEXT NOT "
            "NULL, time REAL NOT NULL, linktype INTEGER NOT NULL, frame BLOB NOT NULL)"
        )
        self.db.execute(
            "CREATE INDEX IF NOT EXISTS packets_connection ON packets (connection, time)"
        )
        self.page_size = self.db.execute("PRAGMA page_size").fetchone()[0]
        self._insert_head = (
            f"INSERT INTO entries (seq, id_key, id, {columns}, data, size, epoch) VALUES "
        )
        self._row_marks = f"({', '.join('?' * INSERT_WIDTH)})"
        self._rows_per_insert = max(
            1,
            min(
                ROWS_PER_INSERT,
                self.db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // INSERT_WIDTH,
            ),
        )
        self._insert_sql: dict[int, str] = {}
        self._seq = self.last_seq()
        self.stats.stored = self.count()

    # -- writing -------------------------------------------------------------------------------

    def insert(self, entries: Sequence[Mapping[str, Any]]) -> list[StoredEntry]:
        return self.insert_encoded([encode_entry(entry) for entry in entries if has_id(entry)])

    def insert_encoded(self, encoded: Sequence[EncodedEntry]) -> list[StoredEntry]:
        fresh = self._not_stored(encoded)
        stored: list[StoredEntry] = []
        # transactions of a bounded size, the cap enforced after each: a large batch must not
        # take the file, or its WAL, far beyond the cap before anything is evicted
        budget = max(MIN_TRANSACTION_BYTES, int(self.max_bytes * TRANSACTION_SHARE))
        start = 0
        while start < len(fresh):
            end, size = start, 0
            while end < len(fresh) and (end == start or size < budget):
                size += len(fresh[end][1][-1])
                end += 1
            stored += self._insert_fresh(fresh[start:end])
            start = end
        return stored

    def _insert_fresh(self, fresh: Sequence[tuple[int, EncodedEntry]]) -> list[StoredEntry]:
        """Store entries known to be new, in one transaction, then enforce the cap."""
        values: list[Any] = []
        stored = []
        seq = self._seq
        for key, entry in fresh:
            seq += 1
            data = entry[-1]
            values += (seq, key, *entry, len(data), seq >> EPOCH_BITS)
            stored.append(StoredEntry(seq, entry[0], data))
        step = self._rows_per_insert * INSERT_WIDTH
        with self._transaction():
            for start in range(0, len(values), step):
                chunk = values[start : start + step]
                self.db.execute(self._insert_statement(len(chunk) // INSERT_WIDTH), chunk)
        self._seq = seq
        self.stats.inserts += 1
        self.stats.stored += len(stored)
        self._enforce_cap()
        return stored

    def _add_epochs(self) -> None:
        """Bring a database of the layout before epochs up to date: its entries gain their
        epoch, and their ids the keys :func:`id_key` now gives (its old indexes are dropped
        as stale below)."""
        log.info("%s: adding epochs to its entries (once)", self.path)
        with self._transaction():
            self.db.execute("ALTER TABLE entries ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0")
            self.db.execute(
                f"UPDATE entries SET epoch = seq >> {EPOCH_BITS}, id_key = mizu_id_key(id)"
            )

    def _insert_statement(self, rows: int) -> str:
        sql = self._insert_sql.get(rows)
        if sql is None:
            sql = self._insert_sql[rows] = self._insert_head + ", ".join([self._row_marks] * rows)
        return sql

    def _not_stored(self, encoded: Sequence[EncodedEntry]) -> list[tuple[int, EncodedEntry]]:
        """The entries whose id is new, each with its id's key, in order."""
        by_id: dict[str, tuple[int, EncodedEntry]] = {}
        for entry in encoded:
            entry_id = entry[0]
            if entry_id in by_id:
                self.stats.duplicates += 1
                continue
            by_id[entry_id] = (id_key(entry_id), entry)
        keys = [key for key, _ in by_id.values()]
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            for (known,) in self.db.execute(
                f"SELECT id FROM entries WHERE id_key IN ({marks})", chunk
            ):
                if by_id.pop(known, None) is not None:
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
            count = self.stats.stored
            if count <= 0 or used <= target:
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
                # packets older than every remaining entry belong to evicted ones
                oldest = self.oldest_timestamp()
                self.db.execute(
                    "DELETE FROM packets WHERE time < ?",
                    (1e300 if oldest is None else oldest / 1000.0,),
                )
            used = self.used_bytes()

    # -- reading -------------------------------------------------------------------------------

    def count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM entries").fetchone()[0])

    def last_seq(self) -> int:
        return int(self.db.execute("SELECT coalesce(max(seq), 0) FROM entries").fetchone()[0])

    def count_matching(self, query: Query, budget: float) -> int | None:
        """How many stored entries ``query`` matches, when SQL alone answers it within
        ``budget`` seconds; None otherwise (a count that needs each entry decoded, or one that
        takes too long, is not worth holding the store for)."""
        sql = translate(query)
        if not sql.exact:
            return None
        rows = self._run(
            f"SELECT count(*) FROM entries WHERE {sql.where}",
            tuple(sql.params),
            time.monotonic() + budget,
        )
        return None if rows is None else int(rows[0][0])

    def _first_seq(self) -> int | None:
        """The oldest stored entry's seq (None when the store is empty)."""
        first: int | None = self.db.execute("SELECT min(seq) FROM entries").fetchone()[0]
        return first

    def oldest_timestamp(self) -> Any:
        """The earliest timestamp stored: the least of each epoch's, each read off its index
        (``min(timestamp)`` over the table would read every row)."""
        first = self._first_seq()
        if first is None:
            return None
        return self.db.execute(
            "WITH RECURSIVE epochs(epoch) AS (SELECT ? UNION ALL SELECT epoch + 1 FROM epochs "
            "WHERE epoch < ?) SELECT min((SELECT min(timestamp) FROM entries "
            "WHERE entries.epoch = epochs.epoch)) FROM epochs",
            (first >> EPOCH_BITS, self._seq >> EPOCH_BITS),
        ).fetchone()[0]

    def get(self, entry_id: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT data FROM entries WHERE id_key = ? AND id = ?", (id_key(entry_id), entry_id)
        ).fetchone()
        return readable_entry(entry_id, row[0]) if row else None

    def page(
        self,
        query: Query,
        limit: int,
        left_off: int | None,
        direction: int,
        budget: float | None = None,
    ) -> Page:
        """Up to ``limit`` matching entries next to ``left_off`` (exclusive) in ``direction``;
        backward from the newest when ``left_off`` is None. With a ``budget``, the listing
        returns what it found after that many seconds (``partial``, to be continued from
        ``left_off``)."""
        deadline = None if budget is None else time.monotonic() + budget
        if query.limit is not None:
            limit = min(limit, query.limit)
        sql = translate(query)
        start = 0 if direction == FORWARD else self._seq + 1
        cursor = start if left_off is None else left_off
        found: list[StoredEntry] = []
        scanned = 0
        exhausted = partial = False
        # Exact SQL needs no Python re-check, so it may fetch exactly `limit` rows; otherwise
        # scan in chunks, keeping what the query matches, until the page is full.
        chunk = limit if sql.exact else max(_SCAN_CHUNK, limit)
        while len(found) < limit:
            rows, reached, exhausted = self._matching_rows(sql, direction, cursor, chunk, deadline)
            for seq, data in rows:
                scanned += 1
                cursor = seq
                entry = readable_entry(seq, data)
                if entry is None:
                    continue
                if sql.exact or query(entry):
                    found.append(StoredEntry(seq, entry.get("id", ""), data, entry))
                    if len(found) == limit:
                        exhausted = exhausted and seq == rows[-1][0]
                        break
            else:
                cursor = reached
                if exhausted:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    partial = True
                    break
        if direction != FORWARD:
            found.reverse()
        return Page(found, cursor, scanned, sql.exact, exhausted, partial)

    def _matching_rows(
        self, sql: Sql, direction: int, cursor: int, chunk: int, deadline: float | None
    ) -> tuple[list[tuple[int, bytes]], int, bool]:
        """Up to ``chunk`` ``(seq, data)`` rows the SQL matches beyond ``cursor``, in order; the
        seq the search reached (the next cursor when fewer came back); whether nothing lies
        beyond. Three plans, each tried while the previous one runs too long:

        - walk the table from ``cursor`` (instant when matches are common);
        - let SQLite find the matches through an index, then sort them (``+seq`` keeps it
          from walking the table in order instead): instant for rare values of an indexed
          column, a path prefix or a time range;
        - walk windows of ``_WINDOW`` rows until the deadline (nothing indexed helps), so that
          a partial answer still moves ``cursor`` on.
        """
        forward = direction == FORWARD
        bound, order = ("seq > ?", "ASC") if forward else ("seq < ?", "DESC")
        select = f"SELECT seq, data FROM entries WHERE {bound} AND {sql.where}"
        params = (cursor, *sql.params, chunk)
        end = self._seq if forward else 0
        now = time.monotonic()
        probe = now + _WALK_PROBE if deadline is None else min(now + _WALK_PROBE, deadline)
        rows = self._run(f"{select} ORDER BY seq {order} LIMIT ?", params, probe)
        if rows is None:
            until = None if deadline is None else now + (deadline - now) / 2
            rows = self._indexed_rows(select, order, sql, direction, cursor, chunk, until)
        if rows is not None:
            full = len(rows) == chunk
            return rows, (rows[-1][0] if full else end), not full
        rows = []
        window = "seq <= ?" if forward else "seq >= ?"
        while True:
            edge = min(cursor + _WINDOW, self._seq) if forward else max(cursor - _WINDOW, 0)
            rows += self.db.execute(
                f"{select} AND {window} ORDER BY seq {order} LIMIT ?",
                (cursor, *sql.params, edge, chunk - len(rows)),
            ).fetchall()
            if len(rows) == chunk:
                return rows, rows[-1][0], False
            cursor = edge
            done = edge >= self._seq if forward else edge <= 0
            if done or (deadline is not None and time.monotonic() >= deadline):
                return rows, cursor, done

    def _indexed_rows(
        self,
        select: str,
        order: str,
        sql: Sql,
        direction: int,
        cursor: int,
        chunk: int,
        until: float | None,
    ) -> list[tuple[int, bytes]] | None:
        """The plan that lets SQLite find matches through an index: epoch by epoch from
        ``cursor``'s (the indexes lead with the epoch), sorting each epoch's matches (``+seq``
        keeps SQLite from walking the table in order instead). None if it was still running at
        ``until``."""
        epoch = cursor >> EPOCH_BITS
        if direction == FORWARD:
            last = self._seq >> EPOCH_BITS
        else:
            last = (self._first_seq() or 0) >> EPOCH_BITS
        step = direction
        rows: list[tuple[int, bytes]] = []
        while len(rows) < chunk and (epoch - last) * step <= 0:
            found = self._run(
                f"{select} AND epoch = ? ORDER BY +seq {order} LIMIT ?",
                (cursor, *sql.params, epoch, chunk - len(rows)),
                until,
            )
            if found is None:
                return None
            rows += found
            epoch += step
        return rows

    def _run(
        self, sql: str, params: tuple[Any, ...], until: float | None
    ) -> list[tuple[int, bytes]] | None:
        """The rows of ``sql``, or None if it was still running at ``until``."""
        if until is None:
            return self.db.execute(sql, params).fetchall()
        self.db.set_progress_handler(lambda: time.monotonic() >= until, _PROGRESS_STEPS)
        try:
            return self.db.execute(sql, params).fetchall()
        except sqlite3.OperationalError as error:
            if "interrupted" not in str(error):
                raise
            return None
        finally:
            self.db.set_progress_handler(None, 0)

    # -- raw packets (pcap export) ------------------------------------------------------------

    def insert_packets(self, connections: Iterable[Mapping[str, Any]]) -> int:
        rows = [
            (str(batch["connection"]), float(when), int(batch["linktype"]), bytes(frame))
            for batch in connections
            for when, frame in batch["frames"]
        ]
        with self._transaction():
            self.db.executemany(
                "INSERT INTO packets (connection, time, linktype, frame) VALUES (?, ?, ?, ?)",
                rows,
            )
        self._enforce_cap()
        return len(rows)

    def packets(self, connections: Iterable[str]) -> list[tuple[int, float, bytes]]:
        keys = sorted(set(connections))
        found: list[tuple[int, float, bytes]] = []
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            found.extend(
                self.db.execute(
                    "SELECT linktype, time, frame FROM packets WHERE connection IN "
                    f"({', '.join('?' * len(chunk))}) ORDER BY time, seq",
                    chunk,
                )
            )
        found.sort(key=lambda packet: packet[1])
        return found

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
        oldest = self.oldest_timestamp() if self.stats.evicted else None
        return {
            "engine": "sqlite",
            "path": self.path,
            "entries": self.stats.stored,
            "usedBytes": self.used_bytes(),
            "maxBytes": self.max_bytes,
            "evicted": self.stats.evicted,
            "duplicates": self.stats.duplicates,
            "truncatedTimestamp": oldest,
        }

    def close(self) -> None:
        """Close the database and let another store open it; closing twice does nothing."""
        self.db.close()
        self._unlock()

    def _unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file releases its lock
            self._lock = None


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN")

    def __exit__(self, kind: object, *rest: object) -> None:
        self.db.execute("ROLLBACK" if kind is not None else "COMMIT")


def id_key(entry_id: str) -> int:
    """The signed 64-bit key of an entry id that the store indexes.

    Ids as tappers make them, ``{run}-{connection}-{sequence}``, keep their order within one
    run: the run's hash, then the connection, then the sequence, so a batch of new entries
    lands together at the end of the run's range of the index instead of on pages all over it.
    Any other id is hashed whole. Keys may collide; every lookup compares the id as well."""
    run, _, rest = entry_id.rpartition("-")
    run, _, connection = run.rpartition("-")
    if (
        run
        and 0 < len(connection) <= _ID_NUMBER_DIGITS
        and 0 < len(rest) <= _ID_NUMBER_DIGITS
        and connection.isdecimal()
        and rest.isdecimal()
        and connection.isascii()
        and rest.isascii()
    ):
        return (
            _run_key(run)
            | (int(connection) & _CONNECTION_MASK) << _SEQUENCE_BITS
            | (int(rest) & _SEQUENCE_MASK)
        )
    digest = hashlib.blake2b(entry_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


_ID_NUMBER_DIGITS = 18
_SEQUENCE_BITS = 16
_SEQUENCE_MASK = (1 << _SEQUENCE_BITS) - 1
_CONNECTION_BITS = 27
_CONNECTION_MASK = (1 << _CONNECTION_BITS) - 1
_RUN_BITS = 63 - _CONNECTION_BITS - _SEQUENCE_BITS


@functools.lru_cache(maxsize=1024)
def _run_key(run: str) -> int:
    """A run's hash in the top bits of a non-negative 64-bit key."""
    digest = hashlib.blake2b(run.encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> (64 - _RUN_BITS)) << (63 - _RUN_BITS)


class DatabaseInUseError(Exception):
    """Another store holds the database: the message names it, and the holder's pid if known."""


def private_files(path: str) -> None:
    """Create the database file for its owner only, and make one of an older version so: SQLite
    gives its WAL and shared-memory files the database file's mode."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE))
    for name in (path, f"{path}-wal", f"{path}-shm", f"{path}.lock"):
        with contextlib.suppress(FileNotFoundError):
            if os.stat(name).st_mode & 0o077:
                os.chmod(name, FILE_MODE)


def lock_database(path: str) -> IO[str]:
    """Hold ``<path>.lock`` for as long as the returned file is open (the system lets it go
    when the process ends, however it ends). Two stores writing one database both number
    entries on from the same last sequence, so every insert of the second one failed."""
    lock = os.fdopen(os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, FILE_MODE), "r+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = lock.read().strip()
        lock.close()
        pid = f" (pid {holder})" if holder.isdigit() else ""
        raise DatabaseInUseError(f"{path} is in use by another mizu{pid}") from None
    except BaseException:
        lock.close()
        raise
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


def has_id(entry: Mapping[str, Any]) -> bool:
    """Whether ``entry`` has the non-empty string id the store keys entries by."""
    entry_id = entry.get("id")
    return isinstance(entry_id, str) and bool(entry_id)


def encode_entry(entry: Mapping[str, Any]) -> EncodedEntry:
    """``entry`` (with a string id) in the form the store takes: id, columns, data."""
    plain = entry if type(entry) is dict else dict(entry)
    return (plain["id"], *column_values(plain), encode_data(plain))


def encode_data(entry: dict[str, Any]) -> bytes:
    """The bytes the store keeps for ``entry``: JSON, msgpack when JSON cannot hold it."""
    try:
        return orjson.dumps(entry, default=json_default)
    except orjson.JSONEncodeError:
        pass
    try:  # keys that are not strings (decoded msgpack may have them) take the slower option
        return orjson.dumps(entry, default=json_default, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        return msgpack.packb(entry, use_bin_type=True, default=json_default)


_JSON_OBJECT = ord("{")
"""JSON entries start with ``{``; in msgpack that byte is the integer 123, never an entry."""


def is_entry_data(data: bytes) -> bool:
    """Whether ``data`` starts as :func:`encode_data` output does: a JSON object or a msgpack
    map (fixmap, map 16, map 32)."""
    first = data[0] if data else -1
    return first == _JSON_OBJECT or 0x80 <= first <= 0x8F or first in (0xDE, 0xDF)


def readable_entry(which: object, data: bytes) -> dict[str, Any] | None:
    """The stored entry, or None (logged) when it does not decode: one broken entry must not
    make every listing that reaches it fail."""
    try:
        return decode_data(data)
    except ValueError as error:
        log.warning("stored entry %s is left out: %s", which, error)
        return None


def decode_data(data: bytes) -> dict[str, Any]:
    """The entry :func:`encode_data` made ``data`` of; ValueError for data a tapper sent
    broken (the hub stores what tappers encode without decoding it)."""
    try:
        if data[:1] and data[0] == _JSON_OBJECT:
            entry = orjson.loads(data)
        else:
            entry = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (ValueError, TypeError) as error:
        raise ValueError(f"stored data does not decode ({error})") from None
    if not isinstance(entry, dict):
        raise ValueError("stored data is not an entry")
    return entry
