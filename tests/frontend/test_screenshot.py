"""The README's screenshot, taken of the dashboard with real traffic (HTTP with JSON bodies,
WebSocket messages, Redis commands) captured on loopback.

Every run takes it and checks it; to refresh the committed one:
``MIZU_DASHBOARD_SCREENSHOT=docs/dashboard.png pytest tests/frontend -k screenshot``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from playwright.sync_api import Page, expect

from tests.frontend.conftest import Traffic
from tests.support.processes import Dashboard

sys.path.insert(0, str(Path(__file__).parents[2] / "examples" / "mizu-redis" / "tests"))
from redis_peers import redis_server, send_commands

pytestmark = pytest.mark.live

TRAFFIC = [
    ("GET", "/api/v1/users?page=1", None),
    ("POST", "/api/v1/orders", {"user": 7, "items": [{"sku": "A-12", "qty": 2}], "express": True}),
    ("GET", "/api/v1/orders/1042", None),
    ("PUT", "/api/v1/carts/7", {"items": [{"sku": "B-3", "qty": 1}]}),
    ("GET", "/missing/page", None),
    ("DELETE", "/api/v1/carts/7", None),
    ("GET", "/api/v1/catalogue?tags=blue,red", None),
    ("POST", "/api/v1/login", {"user": "ann", "password": "••••"}),
]


@pytest.fixture
def redis_port() -> Iterator[int]:
    with redis_server() as server:
        yield server.port


def redis_commands(port: int) -> None:
    send_commands(
        port,
        [
            ["SET", "cart:7", '{"items":2}'],
            ["GET", "cart:7"],
            ["INCR", "visits"],
            ["HSET", "user:7", "name", "Ann"],
            ["LPUSH", "jobs", "mail:7"],
        ],
    )


def send_traffic(traffic: Traffic) -> None:
    for method, path, body in TRAFFIC:
        data = json.dumps(body).encode() if body is not None else None
        if method == "GET":
            with contextlib.suppress(OSError):  # the 404 is traffic too
                traffic.get(path, Accept="application/json")
        else:
            traffic.raw(
                f"{method} {path} HTTP/1.1\r\nHost: shop.local\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data or b'')}\r\n"
                "Connection: close\r\n\r\n".encode()
                + (data or b"")
            )

    async def chat() -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"http://127.0.0.1:{traffic.port}/chat") as chat_socket,
        ):
            await chat_socket.send_str(json.dumps({"type": "hello", "room": 7}))
            await chat_socket.receive(timeout=5)

    # Playwright's event loop runs on this thread: the client gets a thread of its own
    talker = threading.Thread(target=lambda: asyncio.run(chat()))
    talker.start()
    talker.join(10)


def test_screenshot(
    page: Page, hub: Dashboard, traffic: Traffic, redis_port: int, tmp_path: Path
) -> None:
    send_traffic(traffic)
    redis_commands(redis_port)
    # this test's own traffic (the session's server also carries the other tests')
    paths = 'request.path.startsWith("/api/") or request.path.endsWith("/chat")'
    paths += ' or request.path == "/missing/page"'
    query = f"(redis and dst.port == {redis_port}) or (dst.port == {traffic.port} and ({paths}))"
    page.goto(hub.page_url(q=query))
    page.wait_for_function("() => window.mizu && window.mizu.list.rows.length >= 14")
    page.locator(
        "#viewport .row", has=page.locator(".summary", has_text="/api/v1/orders")
    ).first.locator(".cell.time").click()
    expect(page.locator("#detail pre.code.json")).to_be_visible()
    page.wait_for_timeout(2200)  # one status poll, so the status bar is filled in
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=shot)
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    target = os.environ.get("MIZU_DASHBOARD_SCREENSHOT")
    if target:
        shutil.copyfile(shot, target)
