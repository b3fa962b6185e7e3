"""Record real gRPC traffic (grpcio client and server on loopback) into a pcap file.

A grpcio server (generic handlers, no generated code) answers unary, server-streaming and
client-streaming calls; client threads, each on a channel (one HTTP/2 connection) of its own,
make a fixed mix of ``--calls`` calls while ``tcpdump -i lo`` writes the server port's packets.
Messages are protobuf encoded by hand (a string field and a varint field), so the capture
decodes as protobuf without a schema.

Needs root (or CAP_NET_RAW) for tcpdump. Only loopback traffic is generated.
"""

from __future__ import annotations

import argparse
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from gen_http_pcap import count_pcap

DEFAULT_OUT = Path(__file__).resolve().parent / "data" / "grpc-20k-calls.pcap"
HOST = "127.0.0.1"
SERVICE = "bench.Catalog"
_DROPPED = re.compile(rb"(\d+) packets? dropped by kernel")


def varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def item(name: str, number: int) -> bytes:
    """A protobuf message: field 1 = ``name`` (string), field 2 = ``number`` (varint)."""
    data = name.encode()
    return b"\x0a" + varint(len(data)) + data + b"\x10" + varint(number)


def _number(request: bytes) -> int:
    """Field 2 of an :func:`item` message."""
    end = 2 + request[1]
    return request[end + 1] if len(request) > end + 1 else 0


def start_server(port: int) -> tuple[grpc.Server, int]:
    def get(request: bytes, context: Any) -> bytes:
        number = _number(request)
        return item(f"item-{number} " + "x" * 40, number)

    def listing(request: bytes, context: Any) -> Iterator[bytes]:
        for index in range(10):
            yield item(f"entry-{index}", index)

    def upload(requests: Iterator[bytes], context: Any) -> bytes:
        return item("stored", sum(1 for _ in requests))

    handlers = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Get": grpc.unary_unary_rpc_method_handler(get),
            "List": grpc.unary_stream_rpc_method_handler(listing),
            "Upload": grpc.stream_unary_rpc_method_handler(upload),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((handlers,))
    bound = server.add_insecure_port(f"{HOST}:{port}")
    server.start()
    return server, bound


def client(port: int, calls: int, seed: int) -> Counter[str]:
    """``calls`` calls on one channel: 70 % unary, 20 % server streaming, 10 % client
    streaming."""
    rng = random.Random(seed)
    made: Counter[str] = Counter()
    # A subchannel pool of its own: otherwise grpcio shares one connection between channels.
    options = [("grpc.use_local_subchannel_pool", 1)]
    with grpc.insecure_channel(f"{HOST}:{port}", options=options) as channel:
        get = channel.unary_unary(f"/{SERVICE}/Get")
        listing = channel.unary_stream(f"/{SERVICE}/List")
        upload = channel.stream_unary(f"/{SERVICE}/Upload")
        for _ in range(calls):
            kind = rng.random()
            if kind < 0.7:
                get(item("get", rng.randrange(100)), timeout=10)
                made["unary"] += 1
            elif kind < 0.9:
                list(listing(item("list", 1), timeout=10))
                made["server streaming"] += 1
            else:
                upload(iter([item("part", index) for index in range(5)]), timeout=10)
                made["client streaming"] += 1
    return made


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="default: %(default)s")
    parser.add_argument("--calls", type=int, default=20_000, help="default: %(default)s")
    parser.add_argument(
        "--channels", type=int, default=4, help="client threads and connections (default: 4)"
    )
    parser.add_argument("--port", type=int, default=50051, help="server port (default: 50051)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)

    server, port = start_server(args.port)
    tcpdump = subprocess.Popen(
        ["tcpdump", "-i", "lo", "-B", "131072", "-w", str(args.out), f"tcp port {port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert tcpdump.stderr is not None
    try:
        tcpdump.stderr.readline()  # "listening on lo, ...": packets are being written
        started = time.perf_counter()
        per_channel = args.calls // args.channels
        with futures.ThreadPoolExecutor(args.channels) as pool:
            counts = sum(
                pool.map(
                    client,
                    [port] * args.channels,
                    [per_channel] * args.channels,
                    range(args.seed, args.seed + args.channels),
                ),
                Counter(),
            )
        elapsed = time.perf_counter() - started
        time.sleep(1.5)  # tcpdump writes its buffer at least once a second
    finally:
        tcpdump.send_signal(signal.SIGINT)
        summary = tcpdump.stderr.read()
        tcpdump.wait(10)
        server.stop(None)
    dropped = _DROPPED.search(summary)
    packets, data = count_pcap(args.out)
    print(
        f"{args.out}: {packets:,} packets, {data / 1e6:.1f} MB; {sum(counts.values()):,} calls "
        f"in {elapsed:.1f} s ({dict(counts)}); "
        f"kernel drops: {dropped.group(1).decode() if dropped else '?'}"
    )
    if dropped and int(dropped.group(1)):
        sys.exit("tcpdump dropped packets: the capture is incomplete")


if __name__ == "__main__":
    main()
