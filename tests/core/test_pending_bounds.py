"""A tapper's memory stays within its 1 GiB however many requests are left unanswered: the
connections kept are bounded (``ReassemblyLimits.max_connections``, the oldest ended beyond),
and so are the requests waiting for their answer across connections (``MAX_PENDING``, those
of the connections claimed first ended unanswered beyond: a few connections pipelining
thousands of requests each cannot hold them all)."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mizu_core.capture import FileSource
from mizu_core.dispatch import MAX_PENDING
from mizu_core.engine import Engine, EngineSettings
from mizu_core.plugins import PluginManager
from tests.support.packets import LINKTYPE_RAW
from tests.support.perturb import write_pcap

GIB = 1 << 30


def tcp_frame(
    src: tuple[str, int], dst: tuple[str, int], seq: int, ack: int, flags: int, data: bytes = b""
) -> bytes:
    """A raw IPv4 frame of one TCP segment, made quickly (millions of them)."""
    tcp = struct.pack("!HHIIBBHHH", src[1], dst[1], seq, ack, 5 << 4, flags, 65535, 0, 0) + data
    return (
        struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(tcp),
            0,
            0,
            64,
            6,
            0,
            socket.inet_aton(src[0]),
            socket.inet_aton(dst[0]),
        )
        + tcp
    )


def unanswered(connections: int, requests: int = 1) -> Iterator[tuple[float, bytes]]:
    """``connections`` HTTP/1.1 connections to one server, each with a handshake and
    ``requests`` pipelined GETs, none answered; a packet every 10 us."""
    server = ("10.1.0.1", 8080)
    time = 1.0
    for number in range(connections):
        client = (f"10.2.{number >> 16 & 255}.{number >> 8 & 255}", 1024 + (number & 255) * 200)
        gets = b"".join(
            b"GET /item/%d/%d HTTP/1.1\r\nHost: shop\r\nUser-Agent: load/1.0\r\n\r\n" % (number, n)
            for n in range(requests)
        )
        for frame in (
            tcp_frame(client, server, 999, 0, 0x02),
            tcp_frame(server, client, 4999, 1000, 0x12),
            tcp_frame(client, server, 1000, 5000, 0x10),
            tcp_frame(client, server, 1000, 5000, 0x18, gets),
        ):
            time += 0.00001
            yield time, frame


def test_requests_pending_across_connections_are_bounded(tmp_path: Path) -> None:
    """200 connections pipelining 1,000 requests each: 200,000 would wait; at most
    MAX_PENDING do, a second of capture later."""
    capture = tmp_path / "pipelined.pcap"
    frames = list(unanswered(200, requests=1000))
    # a last packet two seconds on, so that the engine looks at what is pending
    frames.append((frames[-1][0] + 2.0, tcp_frame(("10.9.9.9", 1), ("10.9.9.8", 2), 0, 0, 0x02)))
    write_pcap(capture, frames, LINKTYPE_RAW)
    plugins = PluginManager().discover(allow=["http", "tcp"])
    plugins.configure({})
    seen_pending: list[int] = []
    engine = Engine(plugins, lambda entry: None, EngineSettings(tapper_id="t"))
    engine.run(FileSource(capture))
    dispatcher = engine.dispatcher
    seen_pending.append(sum(state.context.pending for state in dispatcher._live if state.context))
    engine.finish()
    assert seen_pending[0] <= MAX_PENDING
    stats = dispatcher.stats
    assert stats.shed_pending >= 200_000 - MAX_PENDING
    assert stats.unanswered == 200_000  # every request is still an entry, without an answer


@pytest.mark.slow
def test_250k_pending_connections_stay_under_1_gib(tmp_path: Path) -> None:
    """250,000 connections, each with one request never answered, through ``mizu dissect``
    (the engine a tapper runs): its peak RSS stays under the 1 GiB a tapper is given."""
    capture = tmp_path / "pending.pcap"
    write_pcap(capture, unanswered(250_000), LINKTYPE_RAW)
    peak = subprocess.run(
        [
            sys.executable,
            "-c",
            "import resource, sys\n"
            "from mizu_cli.main import cli\n"
            "try:\n"
            "    cli(['dissect', '--workers', '1', sys.argv[1]])\n"
            "except SystemExit:\n"
            "    pass\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, file=sys.stderr)\n",
            str(capture),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=900,
        check=True,
    ).stderr.splitlines()
    (summary,) = [line for line in peak if line.startswith("mizu: ") and " packets" in line]
    rss = int(peak[-1])
    print(f"{summary}; peak RSS {rss / 1e6:.0f} MB")
    assert "250,000 connections, 250,000 entries" in summary
    assert "mizu: http: 250,000 unpaired (closed 70,000, timeout 180,000)" in peak
    assert rss < GIB
