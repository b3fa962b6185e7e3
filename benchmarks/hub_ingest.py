"""How fast the hub stores entries that tappers send over ``/wsTapper``.

The hub runs as a child process of its own (``--serve``) on a SQLite file in a temporary
directory, so its CPU time and peak RSS are its own (``getrusage``, reported by the child when
it stops). The parent packs HTTP entries shaped as the HTTP plugin makes them (headers, query,
JSON bodies of a few hundred bytes) into frames as ``TapperClient`` does
(``pack_encoded_entries``; ``--entry-maps``: plain ``pack_entries`` maps, which the hub encodes
itself) before the clock starts, sends them on one tapper connection with a window of
unacknowledged frames as ``TapperClient`` does, and stops the clock at the last ack: every entry
is committed by then. Entries/s = entries ÷ that time.

The hub always feeds stored entries to OAS inference and the service map (sampled when they
fall behind: ``observers`` in the output says how many were observed and skipped); ``--rules``
also checks every entry against a rules file of three rules (JSON body, header, SLO). The
hub's CPU time is reported too: on a shared machine, entries per hub CPU second is the steadier
figure.

    python benchmarks/hub_ingest.py                   # 200,000 entries, frames of 500
    python benchmarks/hub_ingest.py --rules --entries 1000000 --json result.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import aiohttp

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from mizu_core.emit import pack_entries  # noqa: E402
from mizu_server.frames import pack_encoded_entries  # noqa: E402

TOKEN = "benchmark-token"
ACCESS_TOKEN = "benchmark-access-token"
"""What the served hub's browser API asks of the benchmarks that query it."""
METHODS = ("GET", "GET", "GET", "POST", "PUT", "DELETE")
STATUSES = (200, 200, 200, 201, 204, 404, 500)
RULES = """
rules:
  - name: users-have-an-id
    type: json
    key: "$.id"
    value: "^[0-9]+$"
    path: "^/api/v1/users"
  - name: answers-json
    type: header
    key: "content-type"
    value: "application/json"
  - name: fast
    type: slo
    response-time: 30
"""


def http_entry(number: int, tapper: str = "bench") -> dict[str, Any]:
    """One HTTP/1.1 entry of about 1.3 KB of JSON, varied in path, method, status and peer."""
    method = METHODS[number % len(METHODS)]
    status = STATUSES[number % len(STATUSES)]
    path = f"/api/v1/{('users', 'orders', 'items', 'carts')[number % 4]}/{number % 5000}"
    timestamp = 1_700_000_000_000 + number
    body = json.dumps({"id": number, "name": f"user-{number}", "tags": ["a", "b"], "ok": True})
    client = f"10.0.{number % 200}.{number % 250 + 1}"
    return {
        "id": f"{tapper}-{number // 100}-{number % 100}",
        "protocol": {
            "name": "http",
            "version": "1.1",
            "abbr": "HTTP",
            "longName": "Hypertext Transfer Protocol -- HTTP/1.1",
            "macro": "http",
            "backgroundColor": "#205cf5",
            "foregroundColor": "#ffffff",
            "referenceLink": "https://datatracker.ietf.org/doc/html/rfc2616",
            "priority": 0,
        },
        "src": {"ip": client, "port": 30000 + number % 30000, "name": "", "namespace": ""},
        "dst": {"ip": "10.1.0.7", "port": 8080, "name": "", "namespace": ""},
        "outgoing": False,
        "fromServer": False,
        "timestamp": timestamp,
        "startTime": "2023-11-14T22:13:20.000Z",
        "elapsedTime": 1.25 + number % 40,
        "requestSize": 180,
        "responseSize": 240 + len(body),
        "request": {
            "method": method,
            "url": f"http://api.shop.svc{path}?page={number % 9}",
            "path": path,
            "httpVersion": "HTTP/1.1",
            "headers": {
                "Host": "api.shop.svc",
                "User-Agent": "python-requests/2.31",
                "Accept": "application/json",
                "Authorization": "[REDACTED]",
            },
            "queryString": {"page": str(number % 9)},
            "cookies": {},
            "headersSize": 120,
            "bodySize": 0,
        },
        "response": {
            "status": status,
            "statusText": "OK",
            "httpVersion": "HTTP/1.1",
            "headers": {
                "Content-Type": "application/json",
                "Content-Length": str(len(body)),
                "Date": "Tue, 14 Nov 2023 22:13:20 GMT",
            },
            "cookies": {},
            "content": {"size": len(body), "mimeType": "application/json", "text": body},
            "headersSize": 110,
            "bodySize": len(body),
        },
        "error": status >= 400,
    }


# -- the hub, in its own process --------------------------------------------------------------


def serve(port: int, db_path: str, max_bytes: int, with_rules: bool = False) -> None:
    from aiohttp import web

    from mizu_core.plugins import PluginManager
    from mizu_server.app import create_app
    from mizu_server.hub import Hub, HubSettings
    from mizu_server.rules import load_rules

    plugins = PluginManager().discover()
    plugins.configure({})
    rules = load_rules(RULES) if with_rules else None
    settings = HubSettings(
        db_path=db_path,
        max_db_bytes=max_bytes,
        token=TOKEN,
        access_token=ACCESS_TOKEN,
        rules=rules,
    )
    hub = Hub(settings, plugins)
    observers: dict[str, int] = {}
    threads: dict[str, float] = {}

    async def main() -> None:
        runner = web.AppRunner(create_app(hub), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        print("ready", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        observers.update(hub.observers.as_json())
        threads.update(thread_cpu_seconds())
        await runner.cleanup()

    asyncio.run(main())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    report = {
        "peakRssBytes": peak_rss_bytes(usage),
        "cpuSeconds": usage.ru_utime + usage.ru_stime,
        "observers": observers,
        "threads": threads,
    }
    print(json.dumps(report), flush=True)


def thread_cpu_seconds() -> dict[str, float]:
    """CPU seconds of each of this process's threads so far, by Python name (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for thread in threading.enumerate():
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/self/task/{thread.native_id}/stat").read_text().split(")")[-1]
            user, system = fields.split()[11:13]
            seconds[thread.name] = round((int(user) + int(system)) / tick, 2)
    return seconds


def peak_rss_bytes(usage: resource.struct_rusage) -> int:
    """This process's peak RSS. Linux's ``ru_maxrss`` also counts the parent's RSS when it
    forked this process (the frames packed for sending): ``VmHWM`` is this program's own."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return usage.ru_maxrss * 1024


# -- the tapper's side ------------------------------------------------------------------------


async def send(port: int, frames: list[bytes], window: int) -> float:
    url = f"http://127.0.0.1:{port}/wsTapper"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.ws_connect(url, params={"tapper": "bench"}, max_msg_size=0) as socket_,
    ):
        started = time.perf_counter()
        in_flight: deque[int] = deque()
        acked = 0
        sent = 0
        while acked < len(frames):
            while sent < len(frames) and len(in_flight) < window:
                await socket_.send_bytes(frames[sent])
                in_flight.append(sent)
                sent += 1
            message = await socket_.receive(timeout=120)
            if message.type != aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"the hub closed the connection: {message}")
            ack = json.loads(message.data).get("ack")
            if isinstance(ack, int):
                while acked < ack:
                    in_flight.popleft()
                    acked += 1
        return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run(
    entries: int,
    frame_entries: int,
    window: int,
    max_bytes: int,
    with_rules: bool = False,
    entry_maps: bool = False,
) -> dict[str, Any]:
    pack = pack_entries if entry_maps else pack_encoded_entries
    frames = [
        pack(http_entry(n) for n in range(start, min(start + frame_entries, entries)))
        for start in range(0, entries, frame_entries)
    ]
    frame_bytes = sum(len(frame) for frame in frames)
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        db_path = os.path.join(directory, "entries.db")
        hub = subprocess.Popen(
            [
                *(sys.executable, __file__, "--serve", str(port), db_path, str(max_bytes)),
                *(["--rules"] if with_rules else []),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert hub.stdout is not None
        if hub.stdout.readline().strip() != "ready":
            raise RuntimeError("the hub did not start")
        try:
            seconds = asyncio.run(send(port, frames, window))
        finally:
            hub.send_signal(signal.SIGTERM)
            output, _ = hub.communicate(timeout=60)
        db_bytes = os.path.getsize(db_path)
    report = json.loads(output.strip().splitlines()[-1])
    return {
        "entries": entries,
        "rules": with_rules,
        "frameFormat": "entries" if entry_maps else "encoded",
        "frameEntries": frame_entries,
        "frames": len(frames),
        "frameMB": round(frame_bytes / 1e6, 1),
        "seconds": round(seconds, 2),
        "entriesPerSecond": round(entries / seconds),
        "hubCpuSeconds": round(report["cpuSeconds"], 2),
        "entriesPerHubCpuSecond": round(entries / report["cpuSeconds"]),
        "hubPeakRssMB": round(report["peakRssBytes"] / 1e6, 1),
        "observed": report["observers"].get("observed", 0),
        "observersSkipped": report["observers"].get("skipped", 0),
        "hubThreadCpuSeconds": report["threads"],
        "dbMB": round(db_bytes / 1e6, 1),
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), "--rules" in sys.argv[5:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--frame-entries", type=int, default=500, help="entries per frame")
    parser.add_argument(
        "--window", type=int, default=16, help="unacknowledged frames in flight (as TapperClient)"
    )
    parser.add_argument("--max-db-bytes", type=int, default=10**10, help="the store's cap")
    parser.add_argument("--rules", action="store_true", help="check entries against API rules")
    parser.add_argument(
        "--entry-maps", action="store_true", help="send entries as maps for the hub to encode"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    arguments = parser.parse_args()
    result = run(
        arguments.entries,
        arguments.frame_entries,
        arguments.window,
        arguments.max_db_bytes,
        arguments.rules,
        arguments.entry_maps,
    )
    for name, value in result.items():
        print(f"{name:>22}  {value:,}" if type(value) is int else f"{name:>22}  {value}")
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
