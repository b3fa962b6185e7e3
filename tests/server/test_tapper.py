"""The tapper runtime's side of the hub: the names the hub sends reach the entries before they
are encoded, and follow the cluster's changes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp import web

from mizu_core.plugins import PluginManager
from mizu_server import hub as hub_module
from mizu_server.app import create_app
from mizu_server.hub import Hub, HubSettings
from mizu_server.resolver import NameResolver
from mizu_server.tapper import Tapper
from mizu_server.tapper_client import TapperClient
from tests.server.hub_support import make_entry
from tests.server.test_tapper_client import TOKEN, free_port, stored_ids, wait_until


def pod(name: str, ip: str) -> dict[str, object]:
    return {"metadata": {"name": name, "namespace": "shop"}, "status": {"podIP": ip}}


def test_tappers_name_entries_from_the_table_the_hub_sends(
    plugins: PluginManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_module, "NAMES_INTERVAL", 0.05)

    async def scenario() -> None:
        port = free_port()
        hub = Hub(HubSettings(db_path=tmp_path / "e.db", token=TOKEN), plugins)
        hub.resolver = NameResolver()
        hub.resolver.apply("Pod", "ADDED", pod("api-1", "10.1.0.9"))
        runner = web.AppRunner(create_app(hub))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        client = TapperClient(f"http://127.0.0.1:{port}/wsTapper", TOKEN, "node-1")
        tapper = Tapper(plugins, client, "node-1")
        try:
            client.start()
            await wait_until(lambda: bool(tapper.names))
            assert tapper.names == {"10.1.0.9": ["api-1.shop", "shop"]}
            first = make_entry(1)
            first["dst"] = {"ip": "10.1.0.9", "port": 80, "name": "", "namespace": ""}
            tapper.emit(first)
            hub.resolver.apply("Pod", "ADDED", pod("web-1", "10.1.0.7"))
            await wait_until(lambda: "10.1.0.7" in tapper.names)
            second = make_entry(2)
            second["src"] = {"ip": "10.1.0.7", "port": 4000, "name": "", "namespace": ""}
            tapper.emit(second)
            assert await client.flush(timeout=10)
            assert await stored_ids(hub) == ["tapper-1-1", "tapper-1-2"]
            page = await hub.run(hub.db.page, hub.compile('dst.name == "api-1.shop"'), 10, None, -1)
            assert [item.entry["id"] for item in page.entries] == ["tapper-1-1"]
            assert page.exact  # answered from the name column the tapper's encoding filled
            page = await hub.run(hub.db.page, hub.compile('src.name == "web-1.shop"'), 10, None, -1)
            assert [item.entry["dst"]["namespace"] for item in page.entries] == [""]
            assert page.entries[0].entry["src"]["namespace"] == "shop"
        finally:
            await client.stop()
            await runner.cleanup()

    asyncio.run(asyncio.wait_for(scenario(), 60))
