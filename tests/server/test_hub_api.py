"""The hub's API through aiohttp's test client and real WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from mizu_core.emit import pack_entries
from mizu_core.plugins import PluginManager
from mizu_server.app import CONTENT_SECURITY_POLICY, create_app
from mizu_server.frames import pack_encoded_entries
from mizu_server.hub import Hub, HubSettings
from tests.server.hub_support import ACCESS_TOKEN, BEARER, make_entry

TOKEN = "test-token"

Pack = Callable[[Iterable[dict[str, Any]]], bytes]


@pytest.fixture(params=[pack_encoded_entries, pack_entries], ids=["encoded", "maps"])
def pack(request: pytest.FixtureRequest) -> Pack:
    """Both frame formats: entries encoded by the tapper (what ``TapperClient`` sends), and
    entries as maps for the hub to encode."""
    packer: Pack = request.param
    return packer


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, timeout=30))


@asynccontextmanager
async def hub_client(plugins: PluginManager, **settings: Any) -> AsyncIterator[TestClient]:
    hub = Hub(HubSettings(token=TOKEN, access_token=ACCESS_TOKEN, **settings), plugins)
    async with TestClient(TestServer(create_app(hub)), headers=BEARER) as client:
        yield client


async def send_frames(
    client: TestClient, frames: list[list[dict[str, Any]]], pack: Pack = pack_encoded_entries
) -> list[int]:
    """Send frames on one tapper connection; return the acks received."""
    acks = []
    async with client.ws_connect(
        "/wsTapper", headers={"Authorization": f"Bearer {TOKEN}"}, params={"tapper": "t1"}
    ) as socket:
        for frame in frames:
            await socket.send_bytes(pack(frame))
        while len(acks) < len(frames):
            acks.append(json.loads((await socket.receive()).data)["ack"])
    return acks


def test_ingest_needs_the_token_and_acks_in_order(plugins: PluginManager, pack: Pack) -> None:
    async def scenario() -> None:
        async with hub_client(plugins) as client:
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                response = await client.get("/wsTapper", headers=headers)
                assert response.status == 401
            frames = [[make_entry(n) for n in range(k * 10, k * 10 + 10)] for k in range(5)]
            assert await send_frames(client, frames, pack) == [1, 2, 3, 4, 5]
            body = await (await client.get("/entries", params={"limit": "1000"})).json()
            assert [row["id"] for row in body["data"]] == [f"tapper-1-{n}" for n in range(50)]
            assert body["meta"]["total"] == 50
            tap = await (await client.get("/status/tap")).json()
            assert tap["tappers"][0]["id"] == "t1" and tap["tappers"][0]["entries"] == 50

    run(scenario())


def test_resent_entries_are_stored_once(plugins: PluginManager, pack: Pack) -> None:
    async def scenario() -> None:
        async with hub_client(plugins) as client:
            first = [make_entry(n) for n in range(20)]
            await send_frames(client, [first], pack)
            await send_frames(client, [first[10:] + [make_entry(n) for n in range(20, 30)]], pack)
            health = await (await client.get("/status/health")).json()
            assert health["store"]["entries"] == 30
            assert health["store"]["duplicates"] == 10

    run(scenario())


def test_entries_listing_detail_and_bad_queries(plugins: PluginManager) -> None:
    async def scenario() -> None:
        async with hub_client(plugins) as client:
            await send_frames(
                client, [[make_entry(n, status=500 if n % 3 == 0 else 200) for n in range(30)]]
            )
            listing = await client.get(
                "/entries", params={"query": "http and response.status >= 500", "limit": "4"}
            )
            body = await listing.json()
            assert [row["id"] for row in body["data"]] == [
                f"tapper-1-{n}" for n in (18, 21, 24, 27)
            ]
            assert body["meta"]["pushedDown"] is True
            older = await client.get(
                "/entries",
                params={"query": "response.status >= 500", "leftOff": str(body["meta"]["leftOff"])},
            )
            assert [row["id"] for row in (await older.json())["data"]][-1] == "tapper-1-15"
            bad = await client.get("/entries", params={"query": 'request.method = "GET"'})
            assert bad.status == 400
            error = await bad.json()
            assert error["position"] == 15 and "==" in error["hint"]
            detail = await (await client.get("/entries/tapper-1-3")).json()
            assert detail["data"]["response"]["status"] == 500
            assert detail["base"]["id"] == "tapper-1-3" and detail["protocol"]["name"] == "http"
            assert {"request", "response"} <= set(detail["representation"])
            assert (await client.get("/entries/nope")).status == 404
            valid = await client.post("/query/validate", json={"query": "http and limit(5)"})
            assert (await valid.json())["valid"] and (await valid.json())["limit"] == 5
            invalid = await client.post("/query/validate", json={"query": "http and"})
            assert invalid.status == 400 and (await invalid.json())["position"] == 8

    run(scenario())


def test_har_of_matching_http_entries(plugins: PluginManager) -> None:
    async def scenario() -> None:
        async with hub_client(plugins) as client:
            tcp = make_entry(99)
            tcp["protocol"] = {**tcp["protocol"], "name": "tcp", "macro": "tcp"}
            await send_frames(client, [[make_entry(1), make_entry(2, method="POST"), tcp]])
            response = await client.get(
                "/har", params={"query": 'redact("request.headers.Authorization")'}
            )
            har = await response.json()
            log = har["log"]
            assert log["version"] == "1.2" and log["creator"]["name"] == "mizu"
            assert [entry["request"]["method"] for entry in log["entries"]] == ["GET", "POST"]
            for entry in log["entries"]:
                for key in ("startedDateTime", "time", "request", "response", "cache", "timings"):
                    assert key in entry
                request, answer = entry["request"], entry["response"]
                for key in (
                    "method",
                    "url",
                    "httpVersion",
                    "cookies",
                    "headers",
                    "queryString",
                    "headersSize",
                    "bodySize",
                ):
                    assert key in request
                for key in (
                    "status",
                    "statusText",
                    "httpVersion",
                    "cookies",
                    "headers",
                    "content",
                    "redirectURL",
                    "headersSize",
                    "bodySize",
                ):
                    assert key in answer
                assert {"name": "Authorization", "value": "[REDACTED]"} in request["headers"]
                assert answer["headers"].count({"name": "Set-Cookie", "value": "b=2"}) == 1
                assert entry["timings"]["wait"] >= 0 and answer["content"]["mimeType"]
            only_post = await client.get("/har", params={"query": 'request.method == "POST"'})
            assert len((await only_post.json())["log"]["entries"]) == 1

    run(scenario())


class Browser:
    """A browser's /ws as the dashboard reads it: each row's protocol put back from the
    ``protocols`` messages, which come once per connection."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.protocols: dict[str, Any] = {}
        self.tables = 0

    async def send_json(self, message: Any) -> None:
        await self.socket.send_json(message)

    async def receive_json(self) -> dict[str, Any]:
        while True:
            message = await self.socket.receive_json()
            if message["type"] != "protocols":
                break
            self.tables += 1
            assert not set(message["data"]) & set(self.protocols), "a protocol sent twice"
            self.protocols.update(message["data"])
        if message["type"] == "entry":
            message["data"]["proto"] = self.protocols[message["data"]["proto"]]
        return message


def test_live_stream_sends_history_then_new_entries_and_replaces_queries(
    plugins: PluginManager, pack: Pack
) -> None:
    async def scenario() -> None:
        async with hub_client(plugins) as client:
            await send_frames(client, [[make_entry(n) for n in range(5)]], pack)
            async with client.ws_connect("/ws") as socket:
                browser = Browser(socket)
                await browser.send_json({"query": 'request.method == "POST"'})
                meta = await browser.receive_json()
                assert meta["type"] == "meta" and meta["data"]["current"] == 0
                await send_frames(client, [[make_entry(5, method="POST"), make_entry(6)]], pack)
                live = await browser.receive_json()
                assert live == {"type": "entry", "data": live["data"]}
                assert live["data"]["id"] == "tapper-1-5"
                assert live["data"]["proto"] == make_entry(5)["protocol"]
                await browser.send_json({"query": "http and limit(2)"})
                history = [await browser.receive_json() for _ in range(3)]
                assert [m["data"]["id"] for m in history[:2]] == ["tapper-1-5", "tapper-1-6"]
                assert history[2]["type"] == "meta"
                await send_frames(client, [[make_entry(7)]], pack)
                assert (await browser.receive_json())["data"]["id"] == "tapper-1-7"
                assert browser.tables == 1  # one protocol, sent once for five rows
                await browser.send_json({"query": "http and"})
                error = await browser.receive_json()
                assert error["type"] == "error" and error["data"]["position"] == 8

    run(scenario())


def test_size_cap_evicts_the_oldest(plugins: PluginManager, tmp_path: Path, pack: Pack) -> None:
    async def scenario() -> None:
        async with hub_client(plugins, db_path=tmp_path / "e.db", max_db_bytes=400_000) as client:
            padding = "x" * 2000
            for start in range(0, 600, 100):
                frame = [make_entry(n, note=padding) for n in range(start, start + 100)]
                await send_frames(client, [frame], pack)
            health = await (await client.get("/status/health")).json()
            store = health["store"]
            assert store["evicted"] > 0 and store["usedBytes"] <= 400_000
            assert store["entries"] + store["evicted"] == 600
            body = await (await client.get("/entries", params={"limit": "1000"})).json()
            ids = [row["id"] for row in body["data"]]
            assert ids[-1] == "tapper-1-599" and "tapper-1-0" not in ids
            assert body["meta"]["truncatedTimestamp"] == 1_700_000_000_000 + 600 - len(ids)

    run(scenario())


def test_entries_survive_a_restart(plugins: PluginManager, tmp_path: Path, pack: Pack) -> None:
    async def scenario() -> None:
        async with hub_client(plugins, db_path=tmp_path / "e.db") as client:
            await send_frames(client, [[make_entry(n) for n in range(10)]], pack)
        async with hub_client(plugins, db_path=tmp_path / "e.db") as client:
            await send_frames(client, [[make_entry(n) for n in range(5, 15)]], pack)
            body = await (await client.get("/entries", params={"limit": "100"})).json()
            assert [row["id"] for row in body["data"]] == [f"tapper-1-{n}" for n in range(15)]

    run(scenario())


def test_status_version_dashboard_and_headers(plugins: PluginManager, tmp_path: Path) -> None:
    async def scenario() -> None:
        (tmp_path / "index.html").write_text("<html>dash</html>")
        (tmp_path / "app.js").write_text("1;")
        async with hub_client(
            plugins, static_dir=tmp_path, insertion_filter='request.method != "DELETE"'
        ) as client:
            await send_frames(client, [[make_entry(1), make_entry(2, method="DELETE")]])
            stats = await (await client.get("/status/trafficStats")).json()
            assert stats["entries"] == 1 and stats["protocols"][0]["method"] == "GET"
            assert (await (await client.get("/status/health")).json())["filteredOut"] == 1
            version = await (await client.get("/metadata/version")).json()
            assert version["ver"] and "tcp" in version["plugins"]
            index = await client.get("/")
            assert await index.text() == "<html>dash</html>"
            assert index.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
            assert await (await client.get("/app.js")).text() == "1;"
            assert await (await client.get("/some/route")).text() == "<html>dash</html>"
            assert await (await client.get("/../../etc/passwd")).text() == "<html>dash</html>"

    run(scenario())


def test_local_hub_refuses_foreign_host_names(plugins: PluginManager) -> None:
    async def scenario() -> None:
        async with hub_client(plugins, allowed_hosts=frozenset({"127.0.0.1"})) as client:
            response = await client.get("/entries", headers={"Host": "evil.example:8899"})
            assert response.status == 421
            assert (await client.get("/entries", headers={"Host": "127.0.0.1:8899"})).status == 200

    run(scenario())


def test_the_hub_never_imports_capture_code() -> None:
    code = (
        "import sys, mizu_server.app, mizu_server.tapper_client;"
        "bad = [m for m in ('mizu_core.capture', 'pcap', 'mizu_core.engine') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_real_websocket_client_against_a_served_hub(plugins: PluginManager) -> None:
    """Over a real socket, with aiohttp's ordinary client session."""

    async def scenario() -> None:
        async with hub_client(plugins) as client:
            url = str(client.make_url("/ws")).replace("http", "ws", 1)
            async with (
                aiohttp.ClientSession(headers=BEARER) as session,
                session.ws_connect(url) as browser,
            ):
                await browser.send_str("http")  # a bare query string is accepted too
                live = Browser(browser)
                assert (await live.receive_json())["type"] == "meta"
                await send_frames(client, [[make_entry(1)]])
                assert (await live.receive_json())["data"]["id"] == "tapper-1-1"

    run(scenario())


def test_a_listing_that_scans_in_python_stops_at_the_scan_budget(plugins: PluginManager) -> None:
    async def scenario() -> None:
        async with hub_client(plugins, scan_budget=0.0) as client:
            await send_frames(
                client, [[make_entry(n) for n in range(k, k + 1000)] for k in range(0, 5000, 1000)]
            )
            no_such_host = 'request.headers["Host"] == "nowhere"'
            body = await (await client.get("/entries", params={"query": no_such_host})).json()
            meta = body["meta"]
            assert body["data"] == [] and meta["partial"] and not meta["exhausted"]
            assert not meta["pushedDown"] and 0 < meta["scanned"] < 5000
            params = {"query": no_such_host, "leftOff": str(meta["leftOff"])}
            more = (await (await client.get("/entries", params=params)).json())["meta"]
            assert more["leftOff"] < meta["leftOff"]
            exact = await (await client.get("/entries", params={"query": "http"})).json()
            assert len(exact["data"]) == 100 and not exact["meta"]["partial"]

    run(scenario())


def test_paging_values_and_query_bodies_that_make_no_sense_are_400s(
    plugins: PluginManager,
) -> None:
    async def scenario() -> None:
        async with hub_client(plugins) as client:
            await send_frames(client, [[make_entry(n) for n in range(3)]])
            for params in (
                {"limit": "-1"},
                {"limit": "1_0"},
                {"limit": " 1 "},
                {"leftOff": "-5"},
                {"leftOff": str(1 << 63)},
                {"leftOff": "99999999999999999999999"},
            ):
                response = await client.get("/entries", params=params)
                assert response.status == 400, params
                assert "must be" in await response.text()
            deep = "(" * 200 + "http" + ")" * 200
            for response in (
                await client.get("/entries", params={"query": deep}),
                await client.post("/query/validate", json={"query": deep}),
                await client.post("/query/validate", json={"query": " and ".join(["http"] * 1000)}),
            ):
                assert response.status == 400 and "deep" in str(await response.json())
            for body in ('request.method === "GET"', "[1, 2]"):
                response = await client.post("/query/validate", data=body)
                assert response.status == 400
                assert "query" in (await response.json())["error"]
            async with client.ws_connect("/ws") as browser:
                for message in (
                    {"query": "http", "limit": "Infinity"},
                    {"query": "http", "leftOff": -1},
                ):
                    await browser.send_str(json.dumps(message).replace('"Infinity"', "1e999"))
                    error = await browser.receive_json()
                    assert error["type"] == "error" and "must be" in error["data"]["message"]
                await browser.send_json({"query": None})
                error = await browser.receive_json()
                assert error == {"type": "error", "data": {"message": "query must be a string"}}
                await browser.send_json({"query": "http", "limit": 2})
                live = Browser(browser)
                rows = [await live.receive_json() for _ in range(3)]
                assert [row["type"] for row in rows] == ["entry", "entry", "meta"]

    run(scenario())
