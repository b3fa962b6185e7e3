"""Ingest when things go wrong: a hub restarted while a tapper sends, a tapper that goes
away, garbage on ``/wsTapper``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from mizu_core.plugins import PluginManager
from mizu_server.app import create_app
from mizu_server.hub import Hub, HubSettings
from mizu_server.store import SqliteStore
from mizu_server.tapper_client import TapperClient
from tests.cli.test_local import free_port
from tests.server.hub_support import ACCESS_TOKEN, BEARER, make_entry

TOKEN = "resilience-token"


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, timeout=60))


async def start_hub(plugins: PluginManager, port: int, db: Path) -> web.AppRunner:
    hub = Hub(HubSettings(db_path=db, token=TOKEN, access_token=ACCESS_TOKEN), plugins)
    runner = web.AppRunner(create_app(hub), access_log=None, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def test_hub_restart_loses_and_duplicates_nothing(plugins: PluginManager, tmp_path: Path) -> None:
    db = tmp_path / "entries.db"
    total = 3000

    async def scenario() -> None:
        port = free_port()
        runner = await start_hub(plugins, port, db)
        client = TapperClient(
            f"http://127.0.0.1:{port}/wsTapper",
            TOKEN,
            "t1",
            frame_entries=50,
            retry_delay=0.05,
            max_retry_delay=0.2,
        )
        client.start()

        async def produce() -> None:
            for number in range(total):
                client.submit(make_entry(number))
                if number % 100 == 0:
                    await asyncio.sleep(0.01)

        producer = asyncio.create_task(produce())
        while client.stats.acked_entries < 500:
            await asyncio.sleep(0.01)
        await runner.cleanup()  # the hub goes away mid-stream, frames unacknowledged
        await asyncio.sleep(0.3)
        runner = await start_hub(plugins, port, db)
        await producer
        assert await client.flush(timeout=30)
        await client.stop()
        await runner.cleanup()
        assert client.stats.connects >= 2 and client.stats.shed == 0

    run(scenario())
    store = SqliteStore(db)
    try:
        ids = [row[0] for row in store.db.execute("SELECT id FROM entries")]
    finally:
        store.close()
    assert len(ids) == len(set(ids)) == total


def test_a_tapper_that_goes_away_is_reported_gone(plugins: PluginManager, tmp_path: Path) -> None:
    async def scenario() -> None:
        port = free_port()
        runner = await start_hub(plugins, port, tmp_path / "e.db")
        try:
            client = TapperClient(f"http://127.0.0.1:{port}/wsTapper", TOKEN, "node-a")
            client.start()
            client.submit(make_entry(1))
            assert await client.flush(timeout=10)
            async with aiohttp.ClientSession(headers=BEARER) as http:
                status = await (await http.get(f"http://127.0.0.1:{port}/status/tap")).json()
                assert [(t["id"], t["connected"]) for t in status["tappers"]] == [("node-a", True)]
                await client.stop()  # the tapper process dies: its socket closes
                for _ in range(100):
                    status = await (await http.get(f"http://127.0.0.1:{port}/status/tap")).json()
                    if not status["tappers"][0]["connected"]:
                        break
                    await asyncio.sleep(0.05)
                assert status["tappers"][0]["connected"] is False
                assert status["tappers"][0]["entries"] == 1
        finally:
            await runner.cleanup()

    run(scenario())


@pytest.mark.parametrize(
    "frame",
    [b"\xc1garbage", b"\x93\x01\x02\x03", b"\x81\xa7entries\x92\x01\x02", b"\x80"],
    ids=["not-msgpack", "not-a-map", "entries-not-maps", "empty-map"],
)
def test_garbage_frames_are_rejected_and_logged(
    plugins: PluginManager, tmp_path: Path, frame: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        port = free_port()
        runner = await start_hub(plugins, port, tmp_path / "e.db")
        url = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession(headers=BEARER) as http:
                unauthenticated = await http.get(f"{url}/wsTapper")
                assert unauthenticated.status == 401
                async with http.ws_connect(
                    f"{url}/wsTapper", headers={"Authorization": f"Bearer {TOKEN}"}
                ) as socket:
                    await socket.send_bytes(frame)
                    message = await socket.receive(timeout=10)
                    assert message.type == aiohttp.WSMsgType.CLOSE
                    assert socket.close_code == 1003
                health = await http.get(f"{url}/status/health")
                assert health.status == 200  # the hub stays up
        finally:
            await runner.cleanup()

    with caplog.at_level(logging.WARNING, logger="mizu_server.app"):
        run(scenario())
    assert any("bad frame" in record.getMessage() for record in caplog.records)
