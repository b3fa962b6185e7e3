"""``GET /har`` validates against the HAR 1.2 JSON schemas of the npm package har-schema
(vendored in ``tests/data/har-schema``), on real traffic: HTTP/1.1 captured live on lo with
several methods, bodies, cookies and query strings, and HTTP/2 replayed from a recording."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from jsonschema import Draft6Validator
from referencing import Registry
from referencing.jsonschema import DRAFT6

from tests.server.local_tap import local_tap
from tests.server.multiservice import free_port
from tests.support.processes import Dashboard

pytestmark = pytest.mark.live

DATA = Path(__file__).resolve().parent.parent / "data"
SCHEMAS = DATA / "har-schema"


def har_validator() -> Draft6Validator:
    """``har.json`` with every file of the package registered under its name, which is what
    the schemas' relative ``$id``s and ``$ref``s resolve to."""
    registry: Registry[Any] = Registry().with_resources(
        (path.name, DRAFT6.create_resource(json.loads(path.read_text())))
        for path in SCHEMAS.glob("*.json")
    )
    return Draft6Validator(
        {"$ref": "har.json"}, registry=registry, format_checker=Draft6Validator.FORMAT_CHECKER
    )


def schema_errors(document: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in har_validator().iter_errors(document)
    ]


def get_har(hub: Dashboard, query: str) -> dict[str, Any]:
    return dict(hub.get_json("/har", query=query))


async def exchange_traffic(port: int) -> None:
    """GET with a query string, POST JSON, PUT a form, DELETE; cookies both ways."""

    async def anything(request: web.Request) -> web.Response:
        body = await request.read()
        response = web.json_response({"method": request.method, "got": len(body)})
        response.set_cookie("session", "abc123", path="/")
        return response

    app = web.Application()
    app.router.add_route("*", "/shop/{tail:.*}", anything)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}/shop"
    try:
        # a connection each: a packet lost on a busy lo then costs one entry, not the rest
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector, cookies={"theme": "dark"}) as session:
            for method, path, options in (
                ("GET", "/items", {"params": {"page": "2", "tag": "a b"}}),
                ("POST", "/orders", {"json": {"item": 7, "count": 2}}),
                ("PUT", "/profile", {"data": {"name": "Ann", "city": "Oslo"}}),
                ("DELETE", "/orders/7", {}),
                ("GET", "/items/7", {"headers": {"Accept": "application/json"}}),
            ):
                async with session.request(method, base + path, **options) as response:
                    assert response.status == 200
                    await response.read()
    finally:
        await runner.cleanup()


def wait_for_entries(hub: Dashboard, query: str, count: int) -> None:
    for _ in range(200):
        if len(get_har(hub, query)["log"]["entries"]) >= count:
            return
        time.sleep(0.05)
    pytest.fail(f"fewer than {count} HAR entries for {query!r}")


def test_har_of_live_http1_traffic_is_valid_har_1_2(tmp_path: Path) -> None:
    port = free_port()
    with local_tap(tmp_path, "--local", "-i", "lo") as hub:
        asyncio.run(exchange_traffic(port))
        query = f"dst.port == {port}"
        wait_for_entries(hub, query, 5)
        document = get_har(hub, query)
    entries = document["log"]["entries"]
    assert Counter(entry["request"]["method"] for entry in entries) == {
        "GET": 2,
        "POST": 1,
        "PUT": 1,
        "DELETE": 1,
    }
    assert any(entry["request"]["queryString"] for entry in entries)
    assert any(entry["request"].get("postData") for entry in entries)
    for entry in entries:
        assert "theme" in {cookie["name"] for cookie in entry["request"]["cookies"]}
        assert "session" in {cookie["name"] for cookie in entry["response"]["cookies"]}
    assert schema_errors(document) == []


def test_har_of_replayed_http2_traffic_is_valid_har_1_2(tmp_path: Path) -> None:
    with local_tap(tmp_path, "--pcap", str(DATA / "http" / "mizu-h2c.pcap")) as hub:
        wait_for_entries(hub, "", 5)  # replayed, then sent to the hub: wait for its commit
        document = get_har(hub, "")
    versions = Counter(entry["request"]["httpVersion"] for entry in document["log"]["entries"])
    assert versions == {"HTTP/2.0": 4, "HTTP/1.1": 1}  # h2c: the upgrade request, then h2
    assert schema_errors(document) == []


def test_the_validator_rejects_what_is_not_har() -> None:
    """The registry really resolves the ``$ref``s: a bad nested field is caught."""
    entry: dict[str, Any] = {
        "startedDateTime": "2024-01-01T00:00:00.000Z",
        "time": 1,
        "request": {"method": "GET"},
        "response": {},
        "cache": {},
        "timings": {"send": 0, "wait": 1, "receive": 0},
    }
    creator = {"name": "x", "version": "1"}
    document = {"log": {"version": "1.2", "creator": creator, "entries": [entry]}}
    errors = schema_errors(document)
    assert any(error.startswith("log/entries/0/request") for error in errors), errors
    assert any(error.startswith("log/entries/0/response") for error in errors), errors
