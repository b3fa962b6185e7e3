"""The SQLite store's layout: multi-row inserts, epoch-led indexes, id keys, and opening a
database written before epochs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest

from mizu_core.query import compile_query
from mizu_server import store as store_module
from mizu_server.pushdown import COLUMN_NAMES, column_values
from mizu_server.store import BACKWARD, FORWARD, SqliteStore, encode_entry, id_key
from tests.server.hub_support import listed_seqs, make_entry


def _entry(number: int, tapper: str = "node-a.18f3") -> dict[str, object]:
    return {
        "id": f"{tapper}-{number // 10 + 1}-{number % 10}",
        "timestamp": 1_700_000_000_000 + number,
        "protocol": {"name": "http", "macro": "http"},
        "request": {"method": "GET", "path": f"/items/{number % 7}"},
        "response": {"status": 500 if number % 13 == 0 else 200},
        "src": {"ip": f"10.0.0.{number % 5}", "port": 40000 + number},
        "dst": {"ip": "10.0.1.1", "port": 80, "name": "items"},
    }


def test_batches_beyond_one_statement_are_stored_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "ROWS_PER_INSERT", 7)
    store = SqliteStore(":memory:")
    entries = [_entry(number) for number in range(50)]
    stored = store.insert(entries)
    assert [item.seq for item in stored] == list(range(1, 51))
    assert store.count() == 50
    assert all(store.get(str(entry["id"])) == entry for entry in entries)
    assert store.insert(entries[10:20]) == []
    assert store.stats.duplicates == 10


@pytest.mark.parametrize("direction", [BACKWARD, FORWARD])
def test_index_plan_walks_every_epoch(monkeypatch: pytest.MonkeyPatch, direction: int) -> None:
    """Forced onto the index plan (no time to walk the table), a listing collects matches
    epoch by epoch and pages on from where it left off."""
    monkeypatch.setattr(store_module, "EPOCH_BITS", 3)
    monkeypatch.setattr(store_module, "_WALK_PROBE", 0.0)
    monkeypatch.setattr(store_module, "_PROGRESS_STEPS", 1)
    store = SqliteStore(":memory:")
    store.insert([_entry(number) for number in range(100)])
    epochs = {row[0] for row in store.db.execute("SELECT DISTINCT epoch FROM entries")}
    assert epochs == set(range((100 >> 3) + 1))
    query = compile_query("response.status == 500")
    expected = [number + 1 for number in range(100) if number % 13 == 0]
    if direction == BACKWARD:
        expected.reverse()
    assert listed_seqs(store, query, 3, direction) == expected


def test_ids_of_one_run_keep_their_order_in_the_index() -> None:
    keys = [
        id_key(f"node-a.18f3-{connection}-{sequence}")
        for connection in (1, 2, 10)
        for sequence in (0, 1, 2)
    ]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
    other_run = id_key("node-a.18f4-1-0")
    assert abs(other_run - keys[0]) > 1 << 40
    # ids of any other shape are hashed whole
    assert id_key("custom id") != id_key("custom id2")
    assert id_key("node-1-٣") != id_key("node-1-3")  # Arabic-Indic three is not parsed


def test_entries_whose_keys_collide_are_told_apart_by_id() -> None:
    store = SqliteStore(":memory:")
    # sequences beyond 16 bits wrap in the key: the same key, different ids
    first, second = _entry(0), _entry(1)
    first["id"], second["id"] = "run-1-5", f"run-1-{5 + (1 << 16)}"
    assert id_key(str(first["id"])) == id_key(str(second["id"]))
    assert len(store.insert([first, second])) == 2
    assert store.get("run-1-5") == first
    assert store.get(f"run-1-{5 + (1 << 16)}") == second
    assert store.insert([second]) == []


def test_a_database_from_before_epochs_is_brought_up_to_date(tmp_path: Path) -> None:
    """The layout before epochs: column indexes without the epoch, ids keyed by a hash."""
    path = tmp_path / "entries.db"
    old = sqlite3.connect(path)
    columns = ", ".join(COLUMN_NAMES)
    old.execute(
        "CREATE TABLE entries (seq INTEGER PRIMARY KEY, id_key INTEGER NOT NULL, id TEXT NOT "
        f"NULL, {columns}, size INTEGER NOT NULL, data BLOB NOT NULL)"
    )
    old.execute("CREATE INDEX entries_id_key ON entries (id_key)")
    old.execute("CREATE INDEX entries_path ON entries (path)")
    entries = [_entry(number) for number in range(40)]
    for seq, entry in enumerate(entries, 1):
        data = orjson.dumps(entry)
        old.execute(
            f"INSERT INTO entries (seq, id_key, id, {columns}, size, data) "
            f"VALUES ({', '.join('?' * (len(COLUMN_NAMES) + 5))})",
            (seq, seq * 7919, entry["id"], *column_values(entry), len(data), data),
        )
    old.commit()
    old.close()

    store = SqliteStore(path)
    assert store.count() == 40
    assert all(store.get(str(entry["id"])) == entry for entry in entries)
    indexes = {
        row[0] for row in store.db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
    }
    assert "entries_path" not in indexes
    assert "entries_epoch_path" in indexes
    page = store.page(compile_query('request.path == "/items/3"'), 100, None, FORWARD)
    assert [item.seq for item in page.entries] == [n + 1 for n in range(40) if n % 7 == 3]
    assert [item.seq for item in store.insert([_entry(40)])] == [41]


def test_the_oldest_timestamp_is_found_in_any_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "EPOCH_BITS", 2)
    store = SqliteStore(":memory:")
    assert store.oldest_timestamp() is None
    entries = [_entry(number) for number in range(20)]
    entries[13]["timestamp"] = 1_600_000_000_000  # a late arrival, in the fourth epoch
    entries[2]["timestamp"] = "not a time"
    store.insert(entries)
    assert store.oldest_timestamp() == 1_600_000_000_000


def test_following_forward_picks_up_what_is_stored_after_the_end() -> None:
    """An exhausted forward page's leftOff is the last seq it reached, so the next entry
    stored is the first of the next page (it was skipped)."""
    store = SqliteStore(":memory:")
    store.insert([_entry(number) for number in range(5)])
    query = compile_query("")
    page = store.page(query, 100, None, FORWARD)
    assert page.exhausted and page.left_off == 5
    store.insert([_entry(5)])
    assert [item.seq for item in store.page(query, 100, page.left_off, FORWARD).entries] == [6]


def test_the_windowed_walk_forward_stops_at_the_newest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "_WALK_PROBE", 0.0)
    monkeypatch.setattr(store_module, "_PROGRESS_STEPS", 1)
    monkeypatch.setattr(store_module, "_WINDOW", 7)
    store = SqliteStore(":memory:")
    store.insert([_entry(number) for number in range(20)])
    query = compile_query('request.path.contains("/items/3")')
    seen = listed_seqs(store, query, 2, FORWARD, budget=0.0)
    left_off = store.page(query, 100, seen[-1], FORWARD, budget=0.0).left_off
    assert left_off <= 20
    store.insert([_entry(24)])  # /items/3 again
    assert [item.seq for item in store.page(query, 100, left_off, FORWARD).entries] == [21]


def test_left_off_zero_going_back_is_the_end() -> None:
    store = SqliteStore(":memory:")
    store.insert([_entry(number) for number in range(5)])
    page = store.page(compile_query(""), 100, 0, BACKWARD)
    assert page.entries == [] and page.exhausted


def files_size(path: Path) -> int:
    """The database and its WAL, in bytes."""
    return sum(
        candidate.stat().st_size
        for candidate in (path, path.with_name(path.name + "-wal"))
        if candidate.exists()
    )


@pytest.mark.parametrize("batch", [500, 8000], ids=["frames", "a-busy-commit"])
def test_the_database_and_its_wal_stay_within_the_cap(tmp_path: Path, batch: int) -> None:
    """2 MB cap, 25 MB of entries: the file and its WAL together never pass 1.2x the cap (a
    2 MB cap once grew a 48 MB database and WAL)."""
    cap = 2_000_000
    path = tmp_path / "entries.db"
    store = SqliteStore(path, cap)
    worst = 0
    try:
        for start in range(0, 20_000, batch):
            store.insert_encoded([encode_entry(make_entry(n)) for n in range(start, start + batch)])
            worst = max(worst, files_size(path))
        assert store.stats.evicted > 15_000
        assert store.count() > 500  # the cap keeps the newest, not nothing
    finally:
        store.close()
    assert worst <= 1.2 * cap, f"{worst / cap:.2f}x the cap"


def test_the_database_files_are_for_their_owner_only(tmp_path: Path) -> None:
    directory = tmp_path / "new" / "dir"
    path = directory / "entries.db"
    store = SqliteStore(path)
    store.insert_encoded([encode_entry(make_entry(1))])
    names = ["entries.db", "entries.db-wal", "entries.db-shm", "entries.db.lock"]
    assert {name: oct(directory.joinpath(name).stat().st_mode & 0o777) for name in names} == {
        name: "0o600" for name in names
    }
    assert directory.stat().st_mode & 0o777 == 0o700
    store.close()
    # a database an older version made readable by all is made private when opened
    for name in names:
        if directory.joinpath(name).exists():
            directory.joinpath(name).chmod(0o644)
    SqliteStore(path).close()
    assert path.stat().st_mode & 0o777 == 0o600
