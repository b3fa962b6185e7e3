"""``GET /pcap``: a capture replayed with pcap export through the tapper runtime into the hub
of the same process, as local mode does; tshark reads the exported file and finds the same
HTTP messages as in the original."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from mizu_cli.local import open_replays
from mizu_core.plugins import PluginManager
from mizu_server.app import create_app
from mizu_server.hub import Hub, HubSettings
from mizu_server.tapper import Tapper
from mizu_server.tapper_client import TapperClient
from tests.cli.test_local import free_port
from tests.server.hub_support import ACCESS_TOKEN, BEARER

CAPTURE = Path(__file__).resolve().parent.parent / "data" / "http" / "mizu-http1.pcap"
LOOPBACK_CAPTURE = CAPTURE.with_name("sv_http-event-chunk.pcap")
"""Link type NULL (BSD loopback), where CAPTURE's is Ethernet."""
TSHARK_FIELDS = ("http.request.method", "http.request.uri", "http.response.code")


def tshark_http(pcap: Path) -> list[tuple[str, ...]]:
    """Each HTTP message tshark finds: (method, uri, status) with the blanks it leaves."""
    tshark = shutil.which("tshark")
    assert tshark is not None, "tshark is needed (apt-get install tshark)"
    arguments = [tshark, "-r", str(pcap), "-Y", "http", "-T", "fields", "-E", "occurrence=a"]
    for name in TSHARK_FIELDS:
        arguments += ["-e", name]
    output = subprocess.run(arguments, capture_output=True, text=True, timeout=60, check=True)
    return sorted(tuple(line.split("\t")) for line in output.stdout.splitlines())


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, timeout=60))


async def replay_and_fetch(
    plugins: PluginManager,
    pcap_export: bool,
    queries: list[str],
    captures: tuple[Path, ...] = (CAPTURE,),
) -> list[tuple[int, bytes]]:
    """Replay captures through a tapper and its hub; return (status, body) of /pcap per
    query."""
    port = free_port()
    settings = HubSettings(pcap_export=pcap_export, access_token=ACCESS_TOKEN)
    hub = Hub(settings, plugins)
    shipper = TapperClient(f"http://127.0.0.1:{port}/wsTapper", settings.token, "local")
    tapper = Tapper(plugins, shipper, "local", pcap_export=pcap_export)
    runner = web.AppRunner(create_app(hub), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        shipper.start()
        replays = open_replays([str(path) for path in captures], keep_packets=pcap_export)
        assert await asyncio.to_thread(tapper.capture, replays)
        tapper.ship_packets()
        assert await shipper.flush(timeout=10)
        results = []
        async with aiohttp.ClientSession(headers=BEARER) as http:
            for query in queries:
                # packets go best effort in frames of their own: wait until they are stored
                for _ in range(50):
                    async with http.get(
                        f"http://127.0.0.1:{port}/pcap", params={"query": query}
                    ) as reply:
                        status, body = reply.status, await reply.read()
                    if status != 404:
                        break
                    await asyncio.sleep(0.1)
                results.append((status, body))
        await shipper.stop()
        return results
    finally:
        await runner.cleanup()


def test_pcap_holds_the_matching_connections(plugins: PluginManager, tmp_path: Path) -> None:
    async def scenario() -> None:
        (status, everything), (_, one_path) = await replay_and_fetch(
            plugins, True, ["", 'request.path == "/coded/br"']
        )
        assert status == 200
        exported = tmp_path / "all.pcap"
        exported.write_bytes(everything)
        assert tshark_http(exported) == tshark_http(CAPTURE)
        selected = tmp_path / "one.pcap"
        selected.write_bytes(one_path)
        messages = tshark_http(selected)
        assert ("GET", "/coded/br", "") in messages
        assert 0 < len(messages) < len(tshark_http(CAPTURE))  # only that connection

    run(scenario())


def test_connections_of_two_link_types_are_all_exported(
    plugins: PluginManager, tmp_path: Path
) -> None:
    """A pcap file holds one link type: the connections of the other were left out."""

    async def scenario() -> None:
        ((status, everything),) = await replay_and_fetch(
            plugins, True, [""], (CAPTURE, LOOPBACK_CAPTURE)
        )
        assert status == 200
        exported = tmp_path / "all.pcap"
        exported.write_bytes(everything)
        both = sorted(tshark_http(CAPTURE) + tshark_http(LOOPBACK_CAPTURE))
        assert tshark_http(exported) == both

    run(scenario())


def test_pcap_is_refused_when_export_is_off(plugins: PluginManager) -> None:
    async def scenario() -> None:
        port = free_port()
        runner = web.AppRunner(
            create_app(Hub(HubSettings(access_token=ACCESS_TOKEN), plugins)), access_log=None
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", port).start()
            async with (
                aiohttp.ClientSession(headers=BEARER) as http,
                http.get(f"http://127.0.0.1:{port}/pcap") as reply,
            ):
                assert reply.status == 409
                assert "--pcap-export" in (await reply.json())["error"]
        finally:
            await runner.cleanup()

    run(scenario())
