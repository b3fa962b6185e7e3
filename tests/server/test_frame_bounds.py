"""Tapper frames are bounded: the hub takes frames of 4 MiB at most (a larger one closes the
connection, 1009), refuses frames that declare more items than fit, and decodes them off its
event loop; tappers split what they send to fit."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from typing import Any

import msgpack
import pytest
from aiohttp.test_utils import TestClient, TestServer

from mizu_core.plugins import PluginManager
from mizu_server import frames as frames_module
from mizu_server.app import create_app
from mizu_server.frames import MAX_FRAME_BYTES, pack_packets, pack_within, read_tapper_frame
from mizu_server.hub import Hub, HubSettings
from mizu_server.store import encode_entry
from mizu_server.tapper_client import TapperClient
from tests.server.hub_support import ACCESS_TOKEN, BEARER, make_entry

TOKEN = "frames-token"
TAPPER = {"Authorization": f"Bearer {TOKEN}"}


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, timeout=120))


def hub_of(plugins: PluginManager) -> Hub:
    return Hub(HubSettings(token=TOKEN, access_token=ACCESS_TOKEN), plugins)


async def closed_by(client: TestClient, frame: bytes) -> int | None:
    """How the hub closed the tapper connection ``frame`` was sent on (None: it reset it
    before the whole frame was even sent)."""
    async with client.ws_connect("/wsTapper", headers=TAPPER) as socket:
        try:
            await socket.send_bytes(frame)
            await socket.receive(timeout=60)
        except ConnectionError:
            return None
        return socket.close_code


def test_a_20_mib_frame_is_refused_and_the_hub_stays_up(
    plugins: PluginManager, caplog: pytest.LogCaptureFixture
) -> None:
    body = "x" * (1 << 20)
    entries = [make_entry(number) for number in range(20)]
    for entry in entries:
        entry["response"]["content"]["text"] = body
    frame = msgpack.packb({"entries": entries}, use_bin_type=True)
    assert len(frame) > 20 << 20

    async def scenario() -> None:
        async with TestClient(TestServer(create_app(hub_of(plugins))), headers=BEARER) as client:
            code = await closed_by(client, frame)
            assert code in (1009, None)  # message too big (or reset before it was all sent)
            health = await (await client.get("/status/health")).json()
            assert health["status"] == "ok" and health["store"]["entries"] == 0

    with caplog.at_level(logging.WARNING):
        run(scenario())
    assert "frames are 4 MiB at most" in caplog.text


def test_a_frame_declaring_more_items_than_fit_is_refused_before_it_is_built(
    plugins: PluginManager,
) -> None:
    """Hundreds of thousands of tiny entries in under 4 MiB: refused by the msgpack header,
    not decoded into as many objects."""
    frame = msgpack.packb({"entries": [{"id": "x"}] * 300_000}, use_bin_type=True)
    assert len(frame) < MAX_FRAME_BYTES
    with pytest.raises(ValueError, match="not msgpack"):
        read_tapper_frame(frame)

    async def scenario() -> None:
        async with TestClient(TestServer(create_app(hub_of(plugins))), headers=BEARER) as client:
            assert await closed_by(client, frame) == 1003

    run(scenario())


def test_frames_are_decoded_off_the_event_loop(
    plugins: PluginManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded_on: list[str] = []
    original = frames_module.read_tapper_frame

    def recording(data: bytes) -> Any:
        decoded_on.append(threading.current_thread().name)
        return original(data)

    monkeypatch.setattr("mizu_server.app.read_tapper_frame", recording)

    async def scenario() -> None:
        async with (
            TestClient(TestServer(create_app(hub_of(plugins))), headers=BEARER) as client,
            client.ws_connect("/wsTapper", headers=TAPPER) as socket,
        ):
            await socket.send_bytes(msgpack.packb({"entries": [make_entry(1)]}))
            assert (await socket.receive_json(timeout=30)) == {"ack": 1}

    run(scenario())
    assert decoded_on and all(name.startswith("mizu-frames") for name in decoded_on)


def test_a_tapper_splits_large_frames_and_drops_what_fits_in_none(
    plugins: PluginManager,
) -> None:
    hub = hub_of(plugins)

    async def scenario() -> None:
        async with TestClient(TestServer(create_app(hub)), headers=BEARER) as client:
            client_url = str(client.make_url("/wsTapper"))
            tapper = TapperClient(client_url, TOKEN, "big", frame_entries=500)
            for number in range(30):
                entry = make_entry(number)
                # 30 entries of 512 KiB: 15 MiB, more than three frames' worth
                entry["response"]["content"]["text"] = f"{number:04d}" * (128 << 10)
                tapper.submit(entry)
            huge = make_entry(99)
            huge["response"]["content"]["text"] = "h" * (5 << 20)
            tapper.submit(huge)
            tapper.start()
            assert await tapper.flush(timeout=60)
            await tapper.stop()
            assert tapper.stats.too_big == 1
            assert tapper.stats.acked_entries == 30
            assert tapper.stats.sent_frames >= 4
            health = await (await client.get("/status/health")).json()
            assert health["store"]["entries"] == 30

    run(scenario())


def test_entries_and_packets_are_packed_within_the_limit() -> None:
    entries = [make_entry(number) for number in range(10)]
    for entry in entries:
        entry["response"]["content"]["text"] = "y" * 3000
    encoded = [encode_entry(entry) for entry in entries]
    frames, too_big = pack_within(encoded, 10_000)
    assert too_big == []
    assert [item for part, _ in frames for item in part] == encoded
    assert all(len(packed) <= 10_000 for _, packed in frames)
    assert [e[0] for part, packed in frames for e in read_tapper_frame(packed)[1]] == [
        e["id"] for e in entries
    ]
    batches = [
        {
            "connection": f"c{n}",
            "linktype": 1,
            "frames": [[1.0 + i, b"p" * 1000] for i in range(50)],
        }
        for n in range(3)
    ]
    messages = pack_packets(batches, 20_000)
    assert len(messages) > 1 and all(len(message) <= 20_000 for message in messages)
    kept = [read_tapper_frame(message)[1] for message in messages]
    assert sum(len(batch["frames"]) for part in kept for batch in part) == 150
