"""A store that fails to write (a full disk) is loud and recoverable: the error is logged and
/status/health says ``degraded`` with the reason, nothing the hub acknowledged is lost, ingest
resumes by itself once the fault clears, entries the store refuses are counted and reported,
and no asyncio future is left with an exception nobody retrieved."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from mizu_core.plugins import PluginManager
from mizu_server.app import create_app
from mizu_server.hub import Hub, HubSettings
from mizu_server.store import EncodedEntry, SqliteStore, StoredEntry
from mizu_server.tapper_client import TapperClient
from tests.cli.test_local import free_port
from tests.server.hub_support import ACCESS_TOKEN, BEARER, make_entry

TOKEN = "fault-token"
FULL = "database or disk is full"


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, timeout=120))


class FaultyStore(SqliteStore):
    """A SQLite store whose writes fail as a full disk makes them fail while ``full`` is set,
    and which refuses, as bad data, the entries whose id is in ``refused``."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.full = False
        self.refused: set[str] = set()
        self.failed_writes = 0

    def insert_encoded(self, encoded: Sequence[EncodedEntry]) -> list[StoredEntry]:
        if self.full:
            self.failed_writes += 1
            raise sqlite3.OperationalError(FULL)
        if any(entry[0] in self.refused for entry in encoded):
            raise sqlite3.IntegrityError("CHECK constraint failed: entry refused")
        return super().insert_encoded(encoded)


@asynccontextmanager
async def served(hub: Hub) -> AsyncIterator[str]:
    port = free_port()
    runner = web.AppRunner(create_app(hub), access_log=None, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def health(base: str) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession(headers=BEARER) as session,
        session.get(f"{base}/status/health") as reply,
    ):
        return dict(await reply.json())


async def wait_until(condition: Any, seconds: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def never_retrieved(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()]


def test_a_failing_write_degrades_health_loses_nothing_and_ingest_resumes(
    plugins: PluginManager, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    total = 3000
    store = FaultyStore(tmp_path / "entries.db")
    hub = Hub(HubSettings(token=TOKEN, access_token=ACCESS_TOKEN), plugins, store)

    async def scenario() -> None:
        async with served(hub) as base:
            client = TapperClient(f"{base}/wsTapper", TOKEN, "node-a", frame_entries=50)
            client.start()
            for number in range(1000):
                client.submit(make_entry(number))
            await wait_until(lambda: client.stats.acked_entries == 1000)
            store.full = True
            for number in range(1000, total):
                client.submit(make_entry(number))
            await wait_until(lambda: store.failed_writes >= 3)
            acked_while_full = client.stats.acked_entries
            degraded = await health(base)
            assert degraded["status"] == "degraded"
            assert FULL in degraded["reason"] and "retrying" in degraded["reason"]
            await asyncio.sleep(1)
            assert client.stats.acked_entries == acked_while_full  # nothing acked unstored
            store.full = False  # space comes back
            assert await client.flush(timeout=30)
            await client.stop()
            recovered = await health(base)
            assert recovered["status"] == "ok" and "reason" not in recovered
            assert recovered["notStored"] == 0
            assert recovered["store"]["entries"] == total

    with caplog.at_level(logging.INFO):
        run(scenario())
    assert stored_ids(tmp_path / "entries.db") == total
    said = caplog.text
    assert f"storing 50 entries failed (OperationalError: {FULL})" in said or FULL in said
    assert "storing entries works again after" in said
    assert never_retrieved(caplog) == []


def stored_ids(database: Path) -> int:
    """How many entries, each once, the (closed) database holds; checked for integrity."""
    store = SqliteStore(database)
    try:
        assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        ids = [row[0] for row in store.db.execute("SELECT id FROM entries")]
    finally:
        store.close()
    assert len(ids) == len(set(ids))
    return len(ids)


def test_entries_the_store_refuses_are_counted_and_the_rest_stored(
    plugins: PluginManager, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FaultyStore(tmp_path / "entries.db")
    store.refused = {"tapper-1-7", "tapper-1-8"}
    hub = Hub(HubSettings(token=TOKEN, access_token=ACCESS_TOKEN), plugins, store)

    async def scenario() -> None:
        async with served(hub) as base:
            client = TapperClient(f"{base}/wsTapper", TOKEN, "node-a", frame_entries=10)
            client.start()
            for number in range(30):
                client.submit(make_entry(number))
            assert await client.flush(timeout=30)  # every frame acknowledged
            await client.stop()
            report = await health(base)
            assert report["notStored"] == 2
            assert "IntegrityError" in report["refusedBecause"]
            assert report["store"]["entries"] == 28

    with caplog.at_level(logging.INFO):
        run(scenario())
    assert "storing them one by one" in caplog.text
    assert never_retrieved(caplog) == []


def test_a_hub_stopping_while_the_store_fails_acknowledges_nothing_unstored(
    plugins: PluginManager, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FaultyStore(tmp_path / "entries.db")
    hub = Hub(HubSettings(token=TOKEN, access_token=ACCESS_TOKEN), plugins, store)
    closed: list[int | None] = []

    async def scenario() -> None:
        async with served(hub) as base:
            store.full = True
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with aiohttp.ClientSession(headers=headers) as session:
                socket = await session.ws_connect(f"{base}/wsTapper")
                from mizu_server.frames import pack_encoded_entries

                await socket.send_bytes(pack_encoded_entries(make_entry(n) for n in range(5)))
                await wait_until(lambda: store.failed_writes >= 1)
                stopping = asyncio.create_task(hub.stop())
                message = await socket.receive(timeout=30)
                closed.append(socket.close_code)
                assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
                await stopping
                await socket.close()

    with caplog.at_level(logging.INFO):
        run(scenario())
    assert closed == [1013]  # try again later: nothing of the frame was acknowledged
    assert hub.not_stored == 5
    assert "5 entries not stored: the store still fails" in caplog.text
    assert never_retrieved(caplog) == []


# -- a real full disk -------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB tmpfs mounted for the test (root only): room for the entries and their WAL."""
    if os.geteuid() != 0:
        pytest.fail("mounting a tmpfs needs root (run the suite as root)")
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mountpoint)], check=True)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def fill(disk: Path) -> Path:
    """A file that takes every free byte of ``disk``."""
    filler = disk / "filler"
    with filler.open("wb") as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 65536)
            out.flush()
    return filler


def test_a_full_disk_then_free_space_loses_nothing(
    plugins: PluginManager, small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    total = 4000
    database = small_disk / "entries.db"
    hub = Hub(
        HubSettings(db_path=database, token=TOKEN, access_token=ACCESS_TOKEN, max_db_bytes=1 << 30),
        plugins,
    )

    async def scenario() -> None:
        async with served(hub) as base:
            client = TapperClient(f"{base}/wsTapper", TOKEN, "node-a", frame_entries=100)
            client.start()
            for number in range(500):
                client.submit(make_entry(number))
            await wait_until(lambda: client.stats.acked_entries == 500)
            filler = await asyncio.to_thread(fill, small_disk)
            for number in range(500, total):
                client.submit(make_entry(number))
            await wait_until(lambda: hub.store_fault is not None)
            degraded = await health(base)
            assert degraded["status"] == "degraded"
            assert "full" in degraded["reason"]
            acked_while_full = client.stats.acked_entries
            await asyncio.sleep(1)
            assert client.stats.acked_entries == acked_while_full
            filler.unlink()  # space comes back
            assert await client.flush(timeout=60)
            await client.stop()
            recovered = await health(base)
            assert recovered["status"] == "ok", recovered
            assert recovered["store"]["entries"] == total

    with caplog.at_level(logging.INFO):
        run(scenario())
    assert stored_ids(database) == total
    assert never_retrieved(caplog) == []
    shutil.rmtree(small_disk, ignore_errors=True)
