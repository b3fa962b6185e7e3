"""``mizu tap --local`` end to end: capture on lo, real HTTP traffic, the hub's API."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from mizu_cli.local import parse_size
from tests.support.processes import wait_for_stderr
from tests.support.web import threaded_server

pytestmark = pytest.mark.live


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def web_server() -> Iterator[int]:
    """A local aiohttp server answering /hello/{name}, on a thread of its own."""

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hello": request.match_info["name"]})

    with threaded_server(
        lambda app: app.router.add_get("/hello/{name}", hello), free_port()
    ) as port:
        yield port


@pytest.fixture
def local_tap(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[str], Path]]:
    if os.geteuid() != 0:
        pytest.fail("live capture on lo needs root (run the live tests as root)")
    port = free_port()
    pcap = tmp_path / "written.pcap"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mizu_cli",
            "tap",
            "--local",
            "-i",
            "lo",
            "--no-browser",
            "--db",
            str(tmp_path / "entries.db"),
            "-p",
            str(port),
            "-o",
            "jsonl",
            "-w",
            str(pcap),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert f"http://127.0.0.1:{port}" in wait_for_stderr(process, "dashboard at")
    yield port, process, pcap
    if process.poll() is None:
        process.kill()
        process.wait()


def get_json(port: int, path: str, **params: str) -> Any:
    url = f"http://127.0.0.1:{port}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_local_mode_shows_real_traffic(
    local_tap: tuple[int, subprocess.Popen[str], Path], web_server: int
) -> None:
    port, process, pcap = local_tap
    query = f"dst.port == {web_server}"

    async def watch_live() -> list[dict[str, Any]]:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"ws://127.0.0.1:{port}/ws") as browser,
        ):
            await browser.send_json({"query": query})
            assert (await browser.receive_json(timeout=10))["type"] == "meta"
            for name in ("ann", "bob"):
                async with session.get(f"http://127.0.0.1:{web_server}/hello/{name}") as reply:
                    assert (await reply.json()) == {"hello": name}
            live = []
            while len(live) < 2:
                message = await browser.receive_json(timeout=15)
                if message["type"] == "entry":
                    live.append(message["data"])
            return live

    live = asyncio.run(watch_live())
    assert all(row["dst"]["port"] == web_server for row in live)
    deadline = time.monotonic() + 15
    while True:
        listing = get_json(port, "/entries", query=query)
        if len(listing["data"]) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(listing["data"]) >= 2
    detail = get_json(port, f"/entries/{listing['data'][0]['id']}")
    protocol = detail["data"]["protocol"]["name"]
    if protocol == "http":  # the HTTP plugin is installed: paths and statuses are there
        assert detail["data"]["request"]["path"] in {"/hello/ann", "/hello/bob"}
        assert get_json(port, "/entries", query=f"{query} and response.status == 200")["data"]
    else:
        assert protocol == "tcp"
    tap = get_json(port, "/status/tap")
    assert tap["local"]["capture"]["entries"] >= 2
    assert tap["local"]["client"]["ackedEntries"] >= 2
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "entries" in stderr and "sent to the hub" in stderr
    printed = [json.loads(line) for line in stdout.splitlines()]
    assert sum(1 for entry in printed if entry["dst"]["port"] == web_server) >= 2
    assert pcap.stat().st_size > 24
    # the hub's own port never shows up: the capture filter leaves it out
    assert not any(port in (entry["src"]["port"], entry["dst"]["port"]) for entry in printed)


def test_tap_without_local_says_what_to_do() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mizu_cli", "tap"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "--local" in result.stderr and "cluster" in result.stderr


@pytest.mark.parametrize(
    ("text", "size"),
    [("200MB", 200_000_000), ("1.5GiB", 1_610_612_736), ("500k", 500_000), ("4096", 4096)],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_pcap_replay_ends_on_sigint_and_reads_rules_from_config(tmp_path: Path) -> None:
    """Replaying left libpcap's SIGINT handler installed, so Ctrl-C was ignored; and
    ``tap.traffic-validation-file`` in the config stands in for the flag."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n  - name: answers-in-a-minute\n    type: slo\n    response-time: 60000\n"
    )
    config = tmp_path / "config.yaml"
    config.write_text(f"tap:\n  traffic-validation-file: {rules}\n")
    port = free_port()
    capture = Path(__file__).resolve().parent.parent / "data" / "http" / "mizu-http1.pcap"
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "mizu_cli", "tap", "--pcap", str(capture), "--no-browser"),
            *("--db", str(tmp_path / "entries.db"), "-p", str(port), "--config-path", str(config)),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_stderr(process, "still serving")
        rows = get_json(port, "/entries", query="http")["data"]
        assert rows and all(row["rules"] == {"passed": 1, "failed": 0} for row in rows)
        process.send_signal(signal.SIGINT)
        started = time.monotonic()
        remaining = process.stderr.read()
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - started < 3
        assert "entries" in remaining and "sent to the hub" in remaining
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_second_run_on_the_same_database_keeps_its_entries(tmp_path: Path) -> None:
    """Connections are numbered from 1 again in every run: the second run's entries must not
    be taken for the first run's (the hub drops entries whose id it has) and lost."""
    capture = Path(__file__).resolve().parent.parent / "data" / "http" / "mizu-http1.pcap"
    counts = []
    for _ in range(2):
        port = free_port()
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "mizu_cli", "tap", "--pcap", str(capture)),
                *("--no-browser", "--db", str(tmp_path / "entries.db"), "-p", str(port)),
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for_stderr(process, "still serving")
            rows = get_json(port, "/entries", query="http", limit="10000")["data"]
            counts.append(len(rows))
            assert len({row["id"] for row in rows}) == len(rows)
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert counts[0] > 0
    assert counts[1] == 2 * counts[0]
