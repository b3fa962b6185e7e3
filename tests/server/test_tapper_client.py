"""The tapper's client against a hub that goes away and comes back."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from mizu_core.plugins import PluginManager
from mizu_server.app import create_app
from mizu_server.frames import read_tapper_frame
from mizu_server.hub import Hub, HubSettings
from mizu_server.tapper_client import TapperClient
from tests.server.hub_support import make_entry

TOKEN = "client-token"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def serve(plugins: PluginManager, db: Path, port: int) -> tuple[web.AppRunner, Hub]:
    hub = Hub(HubSettings(db_path=db, token=TOKEN), plugins)
    runner = web.AppRunner(create_app(hub))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, hub


async def stored_ids(hub: Hub) -> list[str]:
    page = await hub.run(hub.db.page, hub.compile(""), 10_000, None, -1)
    return [item.entry["id"] for item in page.entries]


async def wait_until(condition: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_buffers_while_the_hub_is_away_and_resends(plugins: PluginManager, tmp_path: Path) -> None:
    async def scenario() -> None:
        port = free_port()
        runner, hub = await serve(plugins, tmp_path / "e.db", port)
        client = TapperClient(
            f"http://127.0.0.1:{port}/wsTapper",
            TOKEN,
            "node-1",
            max_buffered=300,
            frame_entries=50,
            retry_delay=0.05,
            max_retry_delay=0.2,
        )
        client.start()
        for number in range(100):
            client.submit(make_entry(number))
        assert await client.flush(timeout=10)
        assert len(await stored_ids(hub)) == 100
        await runner.cleanup()  # the hub goes away
        await wait_until(lambda: not client.connected)
        for number in range(100, 250):
            client.submit(make_entry(number))
        await asyncio.sleep(0.3)
        assert client.buffered() == 150 and client.stats.shed == 0
        runner, hub = await serve(plugins, tmp_path / "e.db", port)  # and comes back
        assert await client.flush(timeout=10)
        assert await stored_ids(hub) == [f"tapper-1-{n}" for n in range(250)]
        assert client.stats.connects == 2
        await client.stop()
        await runner.cleanup()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_an_outage_longer_than_the_buffer_sheds_the_oldest(
    plugins: PluginManager, tmp_path: Path
) -> None:
    async def scenario() -> None:
        port = free_port()
        client = TapperClient(
            f"http://127.0.0.1:{port}/wsTapper",
            TOKEN,
            "node-1",
            max_buffered=100,
            retry_delay=0.05,
            max_retry_delay=0.1,
        )
        counted = {"http": {"paired": 240, "unpaired.gap": 3, "resyncs": 2}}
        client.plugin_counters = lambda: counted
        client.start()
        for number in range(250):  # no hub yet
            client.submit(make_entry(number))
        assert client.buffered() == 100 and client.stats.shed == 150
        runner, hub = await serve(plugins, tmp_path / "e.db", port)
        assert await client.flush(timeout=10)
        assert await stored_ids(hub) == [f"tapper-1-{n}" for n in range(150, 250)]
        await wait_until(lambda: any(t.reported.get("shed") == 150 for t in hub.tappers))
        (tapper,) = hub.tappers
        assert tapper.reported["plugins"] == counted  # shown by /status/tap
        await client.stop()
        await runner.cleanup()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_unacknowledged_frames_are_resent_and_deduplicated(
    plugins: PluginManager, tmp_path: Path
) -> None:
    """A hub that commits three frames and drops the connection before acknowledging them:
    the client sends them again, and the next hub keeps each entry once."""

    async def scenario() -> None:
        port = free_port()
        hub = Hub(HubSettings(db_path=tmp_path / "e.db", token=TOKEN), plugins)
        await hub.start()

        async def commit_without_ack(request: web.Request) -> web.WebSocketResponse:
            socket = web.WebSocketResponse()
            await socket.prepare(request)
            frames = 0
            async for message in socket:
                if message.type == WSMsgType.BINARY:
                    kind, encoded = read_tapper_frame(message.data)
                    assert kind == "encoded"
                    await hub.submit_encoded(encoded)
                    frames += 1
                    if frames == 3:
                        break
            await socket.close()
            return socket

        app = web.Application()
        app.router.add_get("/wsTapper", commit_without_ack)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        client = TapperClient(
            f"http://127.0.0.1:{port}/wsTapper",
            TOKEN,
            "node-1",
            frame_entries=10,
            retry_delay=0.3,
        )
        for number in range(30):
            client.submit(make_entry(number))
        client.start()
        await wait_until(lambda: client.stats.resent_entries == 30)
        await runner.cleanup()
        await hub.stop()
        runner, hub = await serve(plugins, tmp_path / "e.db", port)
        assert await client.flush(timeout=10)
        assert await stored_ids(hub) == [f"tapper-1-{n}" for n in range(30)]
        assert (await hub.status())["store"]["duplicates"] == 30
        await client.stop()
        await runner.cleanup()

    asyncio.run(asyncio.wait_for(scenario(), 60))
