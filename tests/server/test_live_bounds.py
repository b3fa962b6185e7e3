"""Browsers that do not read cost the hub neither its ingest speed nor unbounded memory: each
live stream may lag a few MiB behind, then it is closed with the reason; at most 100 stream at
once. Measured on ``mizu hub`` in a process of its own (its RSS from /proc)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mizu_server.tapper_client import TapperClient
from tests.cli.test_local import free_port
from tests.server.hub_support import make_entry
from tests.support.processes import Dashboard

TAPPER_TOKEN = "bounds-tapper"
ACCESS_TOKEN = "bounds-access"
CLIENTS = 100
ENTRIES = 10_000
MAX_RSS = 250 << 20


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[Dashboard, subprocess.Popen[bytes]]]:
    port = free_port()
    env = {**os.environ, "MIZU_TAPPER_TOKEN": TAPPER_TOKEN, "MIZU_HUB_TOKEN": ACCESS_TOKEN}
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "mizu_cli", "hub", "--no-watch", "--host", "127.0.0.1"),
            *("--port", str(port), "--db", str(tmp_path / "entries.db")),
            *(
                "--config-path",
                str(tmp_path / "absent.yaml"),
                "--set",
                "tap.max-entries-db-size=1GB",
            ),
        ],
        env=env,
    )
    dashboard = Dashboard(f"http://127.0.0.1:{port}", ACCESS_TOKEN)
    try:
        for _ in range(300):
            try:
                dashboard.get_json("/status/health")
                break
            except OSError:
                time.sleep(0.1)
        yield dashboard, process
    finally:
        process.terminate()
        process.wait(15)


def memory(process: subprocess.Popen[bytes]) -> dict[str, int]:
    """The process's resident memory now and at its peak (bytes)."""
    fields = {}
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
    return fields


def non_reading_browser(port: int, query: str = "") -> socket.socket:
    """A WebSocket client of ``/ws`` that sends its query, then never reads a byte."""
    client = socket.socket()
    client.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    client.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {ACCESS_TOKEN}\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += client.recv(1)
    status = int(head.split()[1])
    if status != 101:
        client.close()
        raise ConnectionRefusedError(status)
    payload = json.dumps({"query": query, "limit": 0}).encode()
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    client.sendall(struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + masked)
    return client


def ingest(dashboard: Dashboard, first: int) -> float:
    """Seconds for a tapper to have ENTRIES entries stored (acknowledged)."""

    async def send() -> float:
        client = TapperClient(f"{dashboard.base}/wsTapper", TAPPER_TOKEN, f"t{first}")
        client.start()
        started = time.perf_counter()
        for number in range(first, first + ENTRIES):
            entry: dict[str, Any] = make_entry(number)
            entry["id"] = f"bounds-1-{number}"
            client.submit(entry)
        assert await client.flush(timeout=120)
        took = time.perf_counter() - started
        await client.stop()
        return took

    return asyncio.run(send())


def test_browsers_that_do_not_read_are_dropped_and_cost_little(
    hub: tuple[Dashboard, subprocess.Popen[bytes]],
) -> None:
    dashboard, process = hub
    alone = ingest(dashboard, 0)
    browsers = [non_reading_browser(dashboard.port) for _ in range(CLIENTS)]
    try:
        with pytest.raises(ConnectionRefusedError) as refused:
            non_reading_browser(dashboard.port)
        assert refused.value.args == (503,)  # one more than the hub serves at once
        assert dashboard.get_json("/status/health")["liveClients"] == CLIENTS
        watched = ingest(dashboard, ENTRIES)
        seen = memory(process)
        deadline = time.monotonic() + 30
        while dashboard.get_json("/status/health")["liveClients"] and time.monotonic() < deadline:
            time.sleep(0.2)
        left = dashboard.get_json("/status/health")["liveClients"]
    finally:
        for browser in browsers:
            browser.close()
    rss, peak = seen["VmRSS"] >> 20, seen["VmHWM"] >> 20
    print(
        f"ingest of {ENTRIES:,} entries: {alone:.2f} s alone, {watched:.2f} s with {CLIENTS} "
        f"browsers that do not read; hub RSS {rss} MB, peak {peak} MB"
    )
    assert left == 0  # every one fell behind and was closed
    assert watched <= 2 * alone + 1.0
    assert seen["VmHWM"] < MAX_RSS
    assert dashboard.get_json("/status/health")["store"]["entries"] == 2 * ENTRIES


def test_a_slow_browser_is_told_why_it_was_closed(
    hub: tuple[Dashboard, subprocess.Popen[bytes]],
) -> None:
    """A browser that stops reading, then reads again, finds the close and its reason."""
    dashboard, _ = hub
    browser = non_reading_browser(dashboard.port)
    try:
        ingest(dashboard, 0)  # ~10 MB of entries: far more than a stream may lag
        browser.settimeout(10)
        received = b""
        while b"too slow" not in received:
            chunk = browser.recv(1 << 20)
            if not chunk:
                break
            received += chunk
    finally:
        browser.close()
    close = received.rfind(b"\x88")  # the close frame: code 1008 and the reason
    assert close >= 0, received[-200:]
    code = struct.unpack("!H", received[close + 2 : close + 4])[0]
    assert code == 1008
    assert b"too slow: over 4 MiB of entries waiting for this browser" in received[close:]
