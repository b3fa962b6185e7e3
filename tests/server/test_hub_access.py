"""Who may read the traffic: every route of the browser API needs the access token (a cookie
the dashboard URL's ``?token=`` turns into, or ``Authorization: Bearer``), ``/ws`` refuses
other origins, the Host must be one the hub serves, and tappers present their own token in a
header only."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from mizu_core.plugins import PluginManager
from mizu_server.app import create_app, static_file, tapper_socket
from mizu_server.frames import pack_encoded_entries
from mizu_server.hub import LOCAL_HOSTS, Hub, HubSettings
from tests.server.hub_support import make_entry

TAPPER_TOKEN = "tapper-token"
ACCESS_TOKEN = "access-token"
BEARER = {"Authorization": f"Bearer {ACCESS_TOKEN}"}


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, timeout=30))


@asynccontextmanager
async def hub_client(plugins: PluginManager, **settings: Any) -> AsyncIterator[TestClient]:
    hub = Hub(HubSettings(token=TAPPER_TOKEN, access_token=ACCESS_TOKEN, **settings), plugins)
    async with TestClient(TestServer(create_app(hub))) as client:
        await store_entries(client, 3)
        yield client


async def store_entries(client: TestClient, count: int) -> None:
    async with client.ws_connect(
        "/wsTapper", headers={"Authorization": f"Bearer {TAPPER_TOKEN}"}
    ) as socket:
        await socket.send_bytes(pack_encoded_entries(make_entry(n) for n in range(count)))
        assert json.loads((await socket.receive()).data) == {"ack": 1}


def browser_api_paths(app: web.Application) -> list[tuple[str, str]]:
    """``(method, path)`` of every route but the dashboard's files and the tappers' socket."""
    paths = []
    for route in app.router.routes():
        if route.handler in (static_file, tapper_socket) or route.method == "HEAD":
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info["formatter"].format(entry_id="tapper-1-1", service="x")
        paths.append((route.method, path))
    return paths


def test_every_route_of_the_browser_api_needs_the_token(plugins: PluginManager) -> None:
    async def scenario() -> None:
        async with hub_client(plugins) as client:
            paths = browser_api_paths(client.server.app)
            assert len(paths) >= 13
            for method, path in paths:
                for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "x"}):
                    response = await client.request(method, path, headers=headers)
                    assert response.status == 401, (method, path, headers)
                    assert "token" in (await response.json())["error"]
                    assert response.headers["WWW-Authenticate"].startswith("Bearer")
                response = await client.request(method, path, headers=BEARER)
                assert response.status not in (401, 403), (method, path)
            # the token in the URL is for the dashboard's address only, not the API
            listing = await client.get("/entries", params={"token": ACCESS_TOKEN})
            assert listing.status == 401

    run(scenario())


def test_the_dashboard_url_token_becomes_a_strict_http_only_cookie(
    plugins: PluginManager,
) -> None:
    async def scenario() -> None:
        async with hub_client(plugins) as client:
            page = await client.get("/")  # the page itself holds no traffic
            assert page.status == 200 and "text/html" in page.headers["Content-Type"]
            assert (await client.get("/entries")).status == 401
            wrong = await client.get("/", params={"token": "guess"}, allow_redirects=False)
            assert wrong.status == 401 and not wrong.cookies
            exchange = await client.get(
                "/", params={"token": ACCESS_TOKEN, "q": "http"}, allow_redirects=False
            )
            assert exchange.status == 303
            assert exchange.headers["Location"] == "/?q=http"  # the token leaves the address
            cookie = exchange.headers["Set-Cookie"]
            name = f"mizu-token-{client.port}"
            assert cookie.startswith(f"{name}={ACCESS_TOKEN};")
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
            listing = await client.get("/entries")  # the client's jar sends the cookie
            assert listing.status == 200
            assert len((await listing.json())["data"]) == 3
            # a hub on another port has a cookie of its own: this one is not it
            client.session.cookie_jar.clear()
            other = await client.get("/entries", cookies={"mizu-token-1": ACCESS_TOKEN})
            assert other.status == 401

    run(scenario())


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1:1"])
def test_a_cross_origin_websocket_is_refused_even_with_the_cookie(
    plugins: PluginManager, origin: str
) -> None:
    async def scenario() -> None:
        async with hub_client(plugins) as client:
            await client.get("/", params={"token": ACCESS_TOKEN})  # the browser holds it
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await client.ws_connect("/ws", headers={"Origin": origin})
            assert refused.value.status == 403
            validate = await client.post(
                "/query/validate", json={"query": "http"}, headers={"Origin": origin}
            )
            assert validate.status == 403

    run(scenario())


def test_the_live_stream_serves_its_own_origin_with_the_cookie(plugins: PluginManager) -> None:
    async def scenario() -> None:
        async with hub_client(plugins) as client:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await client.ws_connect("/ws")
            assert refused.value.status == 401
            await client.get("/", params={"token": ACCESS_TOKEN})
            origin = f"http://{client.host}:{client.port}"
            async with client.ws_connect("/ws", headers={"Origin": origin}) as socket:
                await socket.send_json({"query": ""})
                kinds = [json.loads((await socket.receive()).data)["type"] for _ in range(5)]
            assert kinds == ["protocols", "entry", "entry", "entry", "meta"]

    run(scenario())


def test_tappers_present_their_token_in_a_header_only(plugins: PluginManager) -> None:
    async def scenario() -> None:
        async with hub_client(plugins) as client:
            for params, headers in (
                ({"token": TAPPER_TOKEN}, {}),  # URLs end up in logs: refused
                ({}, BEARER),  # the browser's token is not a tapper's
                ({}, {"Authorization": f"Basic {TAPPER_TOKEN}"}),
            ):
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await client.ws_connect("/wsTapper", params=params, headers=headers)
                assert refused.value.status == 401
            # and the tapper's token opens none of the browser's routes
            tapper = {"Authorization": f"Bearer {TAPPER_TOKEN}"}
            assert (await client.get("/entries", headers=tapper)).status == 401

    run(scenario())


def test_a_host_the_hub_does_not_serve_is_refused(plugins: PluginManager) -> None:
    """DNS rebinding: a page of evil.example resolved to the hub's address sends its own
    name as Host; the hub answers only to its own names, token or not."""

    async def scenario() -> None:
        async with hub_client(plugins, allowed_hosts=LOCAL_HOSTS) as client:
            for host in ("evil.example:18900", "evil.example", "127.0.0.1.evil.example"):
                response = await client.get("/entries", headers={"Host": host, **BEARER})
                assert response.status == 421, host
            response = await client.get("/entries", headers={"Host": "localhost:8899", **BEARER})
            assert response.status == 200

    run(scenario())
