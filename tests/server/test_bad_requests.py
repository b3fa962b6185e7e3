"""Bad requests are the client's fault: a 400 (or an error message on a socket, which stays
open), and never a traceback in the hub's log for each one."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from mizu_core.plugins import PluginManager
from mizu_server.frames import pack_encoded_entries
from tests.server.hub_support import make_entry
from tests.server.test_hub_access import BEARER, TAPPER_TOKEN, hub_client, run

DEEP_JSON = "[" * 100_000 + "]" * 100_000
"""Nested far beyond what the standard library's JSON reader recurses into."""


def assert_quiet(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing logged as an error, and no traceback."""
    loud = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert loud == [], [record.getMessage()[:200] for record in loud]


def test_a_path_holding_nul_is_a_400(
    plugins: PluginManager, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with hub_client(plugins) as client:
            response = await client.get("/app.js%00.html")
            assert response.status == 400
            assert "NUL" in (await response.json())["error"]
            assert (await client.get("/app.js")).status == 200  # other paths: as before

    caplog.set_level(logging.INFO)
    run(scenario())
    assert_quiet(caplog)


def test_deeply_nested_json_to_query_validate_is_a_400(
    plugins: PluginManager, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with hub_client(plugins) as client:
            response = await client.post(
                "/query/validate",
                data=DEEP_JSON,
                headers={**BEARER, "Content-Type": "application/json"},
            )
            assert response.status == 400
            assert "query" in (await response.json())["error"]

    caplog.set_level(logging.INFO)
    run(scenario())
    assert_quiet(caplog)


def test_deeply_nested_json_on_the_live_stream_is_an_error_and_the_socket_stays(
    plugins: PluginManager, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with hub_client(plugins) as client:
            origin = f"http://{client.host}:{client.port}"
            headers = {**BEARER, "Origin": origin}
            async with client.ws_connect("/ws", headers=headers) as socket:
                await socket.send_str(DEEP_JSON)
                reply = json.loads((await socket.receive(timeout=10)).data)
                assert reply["type"] == "error"
                await socket.send_json({"query": ""})
                kinds = [json.loads((await socket.receive()).data)["type"] for _ in range(5)]
                assert kinds == ["protocols", "entry", "entry", "entry", "meta"]

    caplog.set_level(logging.INFO)
    run(scenario())
    assert_quiet(caplog)


def test_deeply_nested_json_from_a_tapper_is_ignored_and_the_socket_stays(
    plugins: PluginManager, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with hub_client(plugins) as client:
            tapper = {"Authorization": f"Bearer {TAPPER_TOKEN}"}
            async with client.ws_connect("/wsTapper", headers=tapper) as socket:
                await socket.send_str(DEEP_JSON)
                await socket.send_bytes(pack_encoded_entries([make_entry(10)]))
                assert json.loads((await socket.receive(timeout=10)).data) == {"ack": 1}

    caplog.set_level(logging.INFO)
    run(scenario())
    assert_quiet(caplog)


def test_an_over_long_url_is_a_400_logged_in_one_line(
    plugins: PluginManager, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with hub_client(plugins) as client:
            for _ in range(3):
                response = await client.get("/entries?query=" + "a" * 20_000, headers=BEARER)
                assert response.status == 400

    caplog.set_level(logging.INFO)
    run(scenario())
    assert_quiet(caplog)
    warnings = [r for r in caplog.records if r.name == "mizu_server.http"]
    assert len(warnings) == 3
    assert all("8190 bytes" in record.getMessage() for record in warnings)


def test_deeply_nested_captured_json_is_observed_quietly(
    plugins: PluginManager, caplog: pytest.LogCaptureFixture
) -> None:
    """The OpenAPI observer and the detail view read captured bodies nested at any depth."""

    async def scenario() -> None:
        async with hub_client(plugins) as client:
            entries = []
            for number, depth in enumerate((100, 900, 990, 5_000), start=10):
                entry = make_entry(number)
                entry["response"]["content"]["text"] = '{"a":' * depth + "1" + "}" * depth
                entries.append(entry)
            tapper = {"Authorization": f"Bearer {TAPPER_TOKEN}"}
            async with client.ws_connect("/wsTapper", headers=tapper) as socket:
                await socket.send_bytes(pack_encoded_entries(entries))
                assert json.loads((await socket.receive(timeout=10)).data) == {"ack": 1}
            for path in ("/oas", "/har", *(f"/entries/{entry['id']}" for entry in entries)):
                assert (await client.get(path, headers=BEARER)).status == 200, path
            for _ in range(100):  # observers run after the commit, on a thread of their own
                health = await (await client.get("/status/health", headers=BEARER)).json()
                if health["observers"]["observed"] >= 7:
                    break
                await asyncio.sleep(0.05)
            assert health["observers"] == {"observed": 7, "skipped": 0}

    caplog.set_level(logging.INFO)
    run(scenario())
    assert_quiet(caplog)
