"""From a response on the wire to the dashboard: real traffic on lo, captured by ``mizu tap
--local``, must be readable through ``GET /entries`` and pushed on ``WS /ws`` within a second."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.server.local_tap import local_tap
from tests.server.multiservice import free_port
from tests.support.processes import Dashboard

pytestmark = pytest.mark.live

REQUESTS = 8
MAX_DELAY = 1.0


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Dashboard]:
    with local_tap(tmp_path, "--local", "-i", "lo") as dashboard:
        yield dashboard


@asynccontextmanager
async def web_server() -> AsyncIterator[int]:
    """An aiohttp server on lo answering ``/latency/{number}``; yields its port."""

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path})

    app = web.Application()
    app.router.add_get("/latency/{number}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port
    finally:
        await runner.cleanup()


async def first_listed(session: aiohttp.ClientSession, hub: Dashboard, path: str) -> float:
    """When ``GET /entries`` first lists the entry of ``path`` (polled every 10 ms)."""
    query = f'request.path == "{path}"'
    while True:
        async with session.get(f"{hub.base}/entries", params={"query": query}) as r:
            if (await r.json())["data"]:
                return time.monotonic()
        await asyncio.sleep(0.01)


async def measure(hub: Dashboard) -> list[tuple[float, float]]:
    """Per request: seconds from its response to its entry listed, and to its row pushed."""
    pushed: dict[str, float] = {}
    delays = []
    async with web_server() as port, aiohttp.ClientSession(headers=hub.headers) as session:
        live = await session.ws_connect(f"{hub.base}/ws")
        await live.send_str(json.dumps({"query": f"dst.port == {port}", "limit": 0}))

        async def listen() -> None:
            async for message in live:
                body = json.loads(message.data)
                if body["type"] == "entry":
                    pushed.setdefault(body["data"]["summary"], time.monotonic())

        listener = asyncio.create_task(listen())
        try:
            for number in range(REQUESTS):
                path = f"/latency/{number}"
                async with session.get(f"http://127.0.0.1:{port}{path}") as response:
                    assert (await response.json()) == {"path": path}
                answered = time.monotonic()
                listed = await asyncio.wait_for(first_listed(session, hub, path), 5)
                async with asyncio.timeout(5):
                    while path not in pushed:
                        await asyncio.sleep(0.005)
                delays.append((listed - answered, pushed[path] - answered))
        finally:
            listener.cancel()
            await live.close()
    return delays


def test_entries_reach_the_api_and_the_live_stream_within_a_second(hub: Dashboard) -> None:
    delays = asyncio.run(measure(hub))
    shown = [(round(listed * 1000), round(live * 1000)) for listed, live in delays]
    print("ms from response to GET /entries and to WS /ws, per request:", shown)
    assert all(listed <= MAX_DELAY and live <= MAX_DELAY for listed, live in delays), shown
