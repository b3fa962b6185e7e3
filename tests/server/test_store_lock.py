"""One store per database: a second process that opens it is refused, until the first closes it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from mizu_server.store import DatabaseInUseError, SqliteStore

OPEN_IN_ANOTHER_PROCESS = """
import sys
from mizu_server.store import DatabaseInUseError, SqliteStore
try:
    store = SqliteStore(sys.argv[1])
except DatabaseInUseError as error:
    print(error)
    sys.exit(3)
store.insert([{"id": "other-1-1", "timestamp": 1, "protocol": {"name": "tcp"}}])
store.close()
"""


def open_in_another_process(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", OPEN_IN_ANOTHER_PROCESS, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_second_process_is_refused_while_the_first_holds_the_database(tmp_path: Path) -> None:
    """Two stores on one file both numbered entries on from the same last sequence: every
    insert of the second failed on the first's sequences and its entries were lost."""
    path = tmp_path / "entries.db"
    store = SqliteStore(path)
    try:
        refused = open_in_another_process(path)
        assert refused.returncode == 3, refused.stderr
        assert refused.stdout.strip() == f"{path} is in use by another mizu (pid {os.getpid()})"
    finally:
        store.close()
    allowed = open_in_another_process(path)
    assert allowed.returncode == 0, allowed.stderr
    reopened = SqliteStore(path)
    try:
        assert reopened.get("other-1-1") is not None
    finally:
        reopened.close()


def test_a_store_that_fails_to_open_lets_the_database_go(tmp_path: Path) -> None:
    path = tmp_path / "entries.db"
    path.write_text("not a database\n")
    with pytest.raises(sqlite3.DatabaseError):
        SqliteStore(path)
    path.unlink()
    SqliteStore(path).close()  # not refused: the failed store released its lock


def test_in_memory_stores_take_no_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    first, second = SqliteStore(":memory:"), SqliteStore(":memory:")
    first.close()
    second.close()
    assert list(tmp_path.iterdir()) == []


def test_closing_twice_does_nothing(tmp_path: Path) -> None:
    path = tmp_path / "entries.db"
    store = SqliteStore(path)
    store.close()
    held = SqliteStore(path)
    store.close()  # must not let go of the lock the next store holds
    try:
        with pytest.raises(DatabaseInUseError):
            SqliteStore(path)
    finally:
        held.close()
