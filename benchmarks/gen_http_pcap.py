"""Record real HTTP/1.1 keep-alive traffic on loopback into a pcap file.

An aiohttp server (in a child process) and an aiohttp load client talk over 127.0.0.1 while
`tcpdump -i lo` writes the server port's packets to a file. The client stops as soon as
tcpdump's own running count (asked for with SIGUSR1) reaches the target, or when its request
or time budget runs out; it then closes its connections so their FINs are captured too, and
the written file is counted once more to verify the total.

Needs root (or CAP_NET_RAW) for tcpdump. Only loopback traffic is generated.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import re
import signal
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pcap
from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

DEFAULT_OUT = Path(__file__).resolve().parent / "data" / "http-keepalive-300k.pcap"
HOST = "127.0.0.1"

ASSET_SIZES = (4_096, 16_384, 65_536)
# A deterministic, mildly compressible body for the larger responses.
ASSET_BODY = b"".join(
    b"%06d lorem ipsum dolor sit amet, mizu benchmark asset\n" % i
    for i in range(max(ASSET_SIZES) // 50 + 1)
)

_CAPTURED = re.compile(rb"(\d+) packets? captured")
_DROPPED = re.compile(rb"(\d+) packets? dropped by kernel")


# --------------------------------------------------------------------------- server


def build_app() -> web.Application:
    """The server's routes: small JSON, a POST, a tiny text body, sized assets, chunked streams."""
    routes = web.RouteTableDef()

    @routes.get("/api/users/{uid}")
    async def user(request: web.Request) -> web.Response:
        uid = int(request.match_info["uid"])
        return web.json_response(
            {
                "id": uid,
                "name": f"user-{uid}",
                "email": f"user{uid}@example.test",
                "roles": ["reader", "writer"] if uid % 3 else ["admin"],
                "active": uid % 7 != 0,
            }
        )

    @routes.get("/api/items")
    async def items(request: web.Request) -> web.Response:
        page = int(request.query.get("page", "1"))
        limit = min(int(request.query.get("limit", "10")), 50)
        first = (page - 1) * limit
        return web.json_response(
            {
                "page": page,
                "items": [
                    {"id": i, "sku": f"SKU-{i:08d}", "price": round(i * 0.37, 2)}
                    for i in range(first, first + limit)
                ],
            }
        )

    @routes.post("/api/orders")
    async def orders(request: web.Request) -> web.Response:
        order = await request.json()
        total = sum(line["qty"] * line["price"] for line in order["lines"])
        return web.json_response(
            {"status": "accepted", "total": round(total, 2), **order}, status=201
        )

    @routes.get("/health")
    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    @routes.get("/assets/{size}")
    async def asset(request: web.Request) -> web.Response:
        size = int(request.match_info["size"])
        if size not in ASSET_SIZES:
            raise web.HTTPNotFound()
        return web.Response(body=ASSET_BODY[:size], content_type="application/octet-stream")

    @routes.get("/stream/{chunks}")
    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for i in range(min(int(request.match_info["chunks"]), 16)):
            await response.write(
                b'{"seq": %d, "event": "tick", "payload": "%s"}\n' % (i, b"x" * (40 + 20 * i))
            )
        await response.write_eof()
        return response

    app = web.Application()
    app.add_routes(routes)
    return app


def serve(sock: socket.socket) -> None:
    """Child-process entry point: serve on an already listening socket until SIGTERM."""
    web.run_app(build_app(), sock=sock, print=None, access_log=None)


# --------------------------------------------------------------------------- client


Request = tuple[str, str, dict[str, Any] | None]


def pick_request(rng: random.Random) -> Request:
    """One request of the mix: method, path and optional JSON body."""
    roll = rng.random()
    if roll < 0.35:
        return "GET", f"/api/users/{rng.randrange(1, 100_000)}", None
    if roll < 0.55:
        page, limit = rng.randrange(1, 50), rng.choice((5, 10, 20))
        return "GET", f"/api/items?page={page}&limit={limit}", None
    if roll < 0.70:
        lines = [
            {
                "sku": f"SKU-{rng.randrange(10**8):08d}",
                "qty": rng.randrange(1, 5),
                "price": rng.randrange(100, 10_000) / 100,
            }
            for _ in range(rng.randrange(1, 6))
        ]
        return "POST", "/api/orders", {"customer": rng.randrange(1, 100_000), "lines": lines}
    if roll < 0.80:
        return "GET", "/health", None
    if roll < 0.88:
        return "GET", f"/stream/{rng.randrange(3, 9)}", None
    if roll < 0.95:
        return "GET", f"/assets/{rng.choices(ASSET_SIZES, weights=(4, 2, 1))[0]}", None
    return "GET", "/missing", None


@dataclass
class LoadState:
    """What the workers share: budgets, the stop signal and the tallies."""

    max_requests: int
    deadline: float
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    issued: int = 0
    statuses: Counter[int] = field(default_factory=Counter)

    def may_issue(self) -> bool:
        return (
            not self.stop.is_set()
            and self.issued < self.max_requests
            and time.monotonic() < self.deadline
        )


async def worker(session: ClientSession, base: str, rng: random.Random, state: LoadState) -> None:
    """Send requests one after the other on one keep-alive connection while budgets allow."""
    while state.may_issue():
        state.issued += 1
        method, path, body = pick_request(rng)
        async with session.request(method, base + path, json=body) as response:
            await response.read()
            state.statuses[response.status] += 1


# --------------------------------------------------------------------------- tcpdump


class Tcpdump:
    """A running `tcpdump -w`, whose packet count is refreshed by SIGUSR1."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.captured = 0
        self.dropped = 0
        self.stderr_tail: list[bytes] = []
        self._reader = asyncio.create_task(self._read_stderr())

    @classmethod
    async def start(cls, out: Path, port: int) -> Tcpdump:
        proc = await asyncio.create_subprocess_exec(
            "tcpdump",
            "-i",
            "lo",
            "-B",
            "131072",
            "-w",
            str(out),
            f"tcp port {port}",
            stdin=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stderr is not None
        line = await proc.stderr.readline()  # "listening on lo, ..." once the filter is set
        if b"listening on" not in line:
            rest = await proc.stderr.read()
            await proc.wait()
            sys.exit(
                f"tcpdump did not start (exit {proc.returncode}): "
                f"{(line + rest).decode(errors='replace').strip()}"
            )
        return cls(proc)

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.stderr_tail = [*self.stderr_tail[-4:], line]
            if match := _CAPTURED.search(line):
                self.captured = int(match[1])
            if match := _DROPPED.search(line):
                self.dropped = int(match[1])

    def ask_count(self) -> None:
        """Ask for a fresh count; it lands in `captured` a moment later."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGUSR1)

    async def stop(self) -> None:
        """Stop capturing; tcpdump flushes the file and prints its final statistics."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
        await self.proc.wait()
        await self._reader
        if self.proc.returncode:
            tail = b"".join(self.stderr_tail).decode(errors="replace").strip()
            sys.exit(f"tcpdump failed (exit {self.proc.returncode}): {tail}")


# --------------------------------------------------------------------------- run


@dataclass
class Options:
    out: Path
    packets: int
    port: int
    connections: int
    max_requests: int
    max_seconds: float
    seed: int


async def monitor(tcpdump: Tcpdump, state: LoadState, target: int, started: float) -> None:
    """Poll tcpdump's count, print progress each second, and stop the load at the target."""
    last_print = 0.0
    while not state.stop.is_set():
        tcpdump.ask_count()
        await asyncio.sleep(0.1)
        elapsed = time.monotonic() - started
        if tcpdump.captured >= target:
            state.stop.set()
        if elapsed - last_print >= 1.0 or state.stop.is_set():
            last_print = elapsed
            print(
                f"[{elapsed:6.1f}s] requests {state.issued:>9,}  packets "
                f"{tcpdump.captured:>9,} / {target:,} ({100 * tcpdump.captured / target:5.1f}%)"
                f"  {state.issued / elapsed:,.0f} req/s",
                flush=True,
            )


async def record(opts: Options, port: int) -> tuple[LoadState, Tcpdump, float]:
    """Capture while loading the server; returns the tallies, tcpdump's stats and the seconds."""
    tcpdump = await Tcpdump.start(opts.out, port)
    started = time.monotonic()
    state = LoadState(max_requests=opts.max_requests, deadline=started + opts.max_seconds)
    base = f"http://{HOST}:{port}"
    connector = TCPConnector(limit=opts.connections)
    try:
        async with ClientSession(
            connector=connector,
            timeout=ClientTimeout(total=30),
            headers={"User-Agent": "mizu-bench/1.0"},
        ) as session:
            watcher = asyncio.create_task(monitor(tcpdump, state, opts.packets, started))
            await asyncio.gather(
                *(
                    worker(session, base, random.Random(opts.seed + i), state)
                    for i in range(opts.connections)
                )
            )
            state.stop.set()
            await watcher
        elapsed = time.monotonic() - started
        # libpcap hands tcpdump a buffer block at the latest after its 1 s timeout, and what
        # is still in the kernel at SIGINT is lost: wait so the last exchanges and FINs land.
        await asyncio.sleep(1.5)
    finally:
        await tcpdump.stop()
    return state, tcpdump, elapsed


def count_pcap(path: Path) -> tuple[int, int]:
    """Packets and captured packet bytes in a pcap file."""
    packets = data = 0
    for _ts, buf in pcap.pcap(str(path)):
        packets += 1
        data += len(buf)
    return packets, data


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Record real HTTP/1.1 keep-alive traffic between a local aiohttp server and "
        "load client on 127.0.0.1 into a pcap with tcpdump (needs root or "
        "CAP_NET_RAW). Stops by itself once tcpdump has captured --packets packets, "
        "or when --max-requests or --max-seconds runs out."
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="PATH",
        default=DEFAULT_OUT,
        help="pcap file to write (default: %(default)s)",
    )
    parser.add_argument(
        "--packets",
        type=int,
        metavar="N",
        default=300_000,
        help="stop the load once tcpdump has captured this many packets; the "
        "file ends a little above it, with the connections' FINs "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--port",
        type=int,
        metavar="PORT",
        default=0,
        help="server port on 127.0.0.1 (default: a free one)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        metavar="N",
        default=8,
        help="concurrent keep-alive connections (default: %(default)s)",
    )
    parser.add_argument(
        "--max-requests",
        type=int,
        metavar="N",
        help="request budget (default: as many as --packets, which every "
        "exchange of two or more packets makes enough)",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        metavar="SECONDS",
        default=600.0,
        help="time budget of the load in seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        metavar="N",
        default=1,
        help="seed of the request mix (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    opts = Options(
        out=args.out,
        packets=args.packets,
        port=args.port,
        connections=args.connections,
        max_requests=args.max_requests or args.packets,
        max_seconds=args.max_seconds,
        seed=args.seed,
    )
    opts.out.parent.mkdir(parents=True, exist_ok=True)

    listener = socket.create_server((HOST, opts.port), backlog=512)
    port = listener.getsockname()[1]
    server = multiprocessing.get_context("spawn").Process(
        target=serve, args=(listener,), name="bench-http-server", daemon=True
    )
    server.start()
    listener.close()  # the child holds its own copy
    print(f"server on http://{HOST}:{port} (pid {server.pid}); recording to {opts.out}", flush=True)
    try:
        state, tcpdump, elapsed = asyncio.run(record(opts, port))
    finally:
        server.terminate()
        server.join(10)

    packets, data = count_pcap(opts.out)
    statuses = ", ".join(f"{code}: {n:,}" for code, n in sorted(state.statuses.items()))
    print(f"\nwrote {opts.out}")
    print(
        f"  packets   {packets:,} in the file (tcpdump: {tcpdump.captured:,} captured, "
        f"{tcpdump.dropped:,} dropped by kernel)"
    )
    print(
        f"  bytes     {opts.out.stat().st_size / 1e6:,.1f} MB file, "
        f"{data / 1e6:,.1f} MB of packet data"
    )
    print(
        f"  requests  {sum(state.statuses.values()):,} answered in {elapsed:.1f} s "
        f"({sum(state.statuses.values()) / elapsed:,.0f} req/s) over {opts.connections} "
        f"keep-alive connections to port {port}; statuses {statuses}"
    )
    if tcpdump.dropped:
        print("  warning: the kernel dropped packets; the capture has gaps", file=sys.stderr)
    if packets < opts.packets:
        print(
            f"  warning: below the {opts.packets:,} packet target: the request or time "
            "budget ran out first",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
