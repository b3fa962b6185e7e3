"""(Re-)make the test captures in ``tests/data/core/``.

Run from the repository root, as root (tcpdump needs to capture on ``lo``)::

    python -m tests.tools.make_core_captures all

Steps (each can be run alone):

``copy``
    Copy the chosen third-party captures from a local copy of the public
    captures (``--corpus DIR``) and check their sha256 against its ``SOURCES.txt``.
``record``
    Start aiohttp servers, a tiny DNS responder and clients (aiohttp, curl,
    sockets) on 127.0.0.1 / ::1 and record their traffic with tcpdump.
    Only loopback traffic to servers started here is generated and captured.
``derive``
    Craft link-layer / IP-layer variants and broken files from the recorded
    ``http11-keepalive.pcap`` and ``http11-ipv6.pcap`` (deterministic).
``oracles``
    Write ``<capture>.streams.json`` for every capture tshark can follow, see
    ``tests/tools/tshark_streams.py``, and check that every IP/link-layer
    variant has exactly the streams of the capture it was made from.

The recorded captures differ from run to run (ports, sequence numbers,
timestamps); the derived ones depend only on the recorded ones.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import json
import random
import shutil
import signal
import socket
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import cast

import dpkt
from aiohappyeyeballs import AddrInfoType
from aiohttp import ClientError, ClientSession, TCPConnector, web

from tests.support.perturb import (
    LINKTYPE_ETHERNET,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    Packet,
    read_pcap,
    write_pcap,
)
from tests.tools.tshark_streams import oracle_path, write_oracle

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "tests" / "data" / "core"

CORPUS_FILES = [
    "http1/zeek_pipelined-requests.pcap",
    "http1/sv_http-multipart-post_chunked_ipv6.pcap",
    "http1/deepflow_http.pcap",
    "http1/zeek_100-continue_chunked.pcap",
    "http2/ndpi_http2.pcapng",
    "kafka/deepflow_00-produce-v2.pcap",
    "kafka/gosniffer_kafka.pcap",
    "redis/zeek_redis_start-with-server.pcapng",
]

SERVER_MSS = 1460  # TCP_MAXSEG of the listening sockets: Ethernet-sized segments
CLIENT_RCVBUF = 4096  # SO_RCVBUF of the keep-alive clients: window-limited, many segments
BIG_BODY = random.Random(200).randbytes(200 * 1024)
POST_BODY = b"".join(b"line %04d of the POST body, mizu core test\n" % i for i in range(72))
SEED = 20240601
FRAGMENT_PAYLOAD = 1024  # bytes of IP payload per fragment (multiple of 8)
LINKTYPE_USER0 = 147

# derived capture -> the capture whose streams it must have
VARIANTS = {
    "http11-keepalive-vlan.pcap": "http11-keepalive.pcap",
    "http11-keepalive-raw.pcap": "http11-keepalive.pcap",
    "http11-keepalive-null.pcap": "http11-keepalive.pcap",
    "http11-keepalive-ipfrag.pcap": "http11-keepalive.pcap",
    "http11-ipv6-exthdrs.pcap": "http11-ipv6.pcap",
}
# captures without a stream oracle: tshark cannot read them, or its view is not a useful oracle
NO_ORACLE = {
    "empty.pcap",
    "garbage.pcap",
    "truncated.pcap",
    "snaplen-96.pcap",
    "unknown-linktype.pcap",
}


# --- copy -------------------------------------------------------------------------------------


def copy_corpus(corpus: Path, out: Path) -> None:
    for name in CORPUS_FILES:
        src = corpus / name
        with open(src.parent / "SOURCES.txt", newline="") as f:
            sources = {row["file"]: row for row in csv.DictReader(f, delimiter="\t")}
        expected = sources[src.name]["sha256"]
        if hashlib.sha256(src.read_bytes()).hexdigest() != expected:
            raise SystemExit(f"{src}: sha256 differs from SOURCES.txt")
        shutil.copyfile(src, out / src.name)
        print(f"copied {src.name}")


# --- record -----------------------------------------------------------------------------------


@asynccontextmanager
async def tcpdump(
    path: Path, bpf: str, iface: str = "lo", linktype: str | None = None
) -> AsyncIterator[None]:
    """Capture with tcpdump while the block runs; stop it with SIGINT afterwards."""
    cmd = ["tcpdump", "-i", iface, "-Z", "root", "--immediate-mode", "-B", "32768"]
    cmd += ["-s", "262144", "-w", str(path)]
    if linktype:
        cmd += ["-y", linktype]
    proc = await asyncio.create_subprocess_exec(*cmd, bpf, stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    for _ in range(3):  # with "-y", a "data link type ..." line comes first
        line = await asyncio.wait_for(proc.stderr.readline(), timeout=10)
        if not line or b"listening on" in line:
            break
    if b"listening on" not in line:
        proc.kill()
        raise RuntimeError(f"tcpdump did not start: {line.decode(errors='replace')}")
    try:
        yield
        await asyncio.sleep(0.5)  # let the last FIN/ACKs pass
    finally:
        proc.send_signal(signal.SIGINT)
        stats = await asyncio.wait_for(proc.stderr.read(), timeout=10)
        await asyncio.wait_for(proc.wait(), timeout=10)
        print(f"{path.name}: {' / '.join(stats.decode().split(chr(10))[:3])}")


async def hello(_: web.Request) -> web.Response:
    return web.Response(text="hello from mizu\n")


async def small_json(_: web.Request) -> web.Response:
    return web.json_response({"service": "mizu", "items": [1, 2, 3]})


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response({"length": len(body), "sha256": hashlib.sha256(body).hexdigest()})


async def big(_: web.Request) -> web.Response:
    return web.Response(body=BIG_BODY, content_type="application/octet-stream")


async def put_item(request: web.Request) -> web.Response:
    item = await request.json()
    return web.json_response({"id": request.match_info["id"], "stored": item})


async def delete_item(_: web.Request) -> web.Response:
    return web.Response(status=204)


async def abort(request: web.Request) -> web.StreamResponse:
    """Send part of a response, then reset the connection (SO_LINGER 0 + close)."""
    response = web.StreamResponse(headers={"Content-Length": "10000"})
    await response.prepare(request)
    await response.write(b"partial " * 125)
    await asyncio.sleep(0.1)
    transport = request.transport
    assert transport is not None
    transport.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
    )
    transport.abort()
    return response


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/hello", hello)
    app.router.add_get("/json", small_json)
    app.router.add_post("/echo", echo)
    app.router.add_get("/big", big)
    app.router.add_put("/items/{id}", put_item)
    app.router.add_delete("/items/{id}", delete_item)
    app.router.add_get("/abort", abort)
    return app


@asynccontextmanager
async def http_server(host: str) -> AsyncIterator[int]:
    """Serve :func:`make_app` on ``host`` (an ephemeral port, which is yielded)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, SERVER_MSS)
    sock.bind((host, 0))
    sock.listen()
    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    try:
        yield sock.getsockname()[1]
    finally:
        await runner.cleanup()


def url(host: str, port: int, path: str) -> str:
    return f"http://[{host}]:{port}{path}" if ":" in host else f"http://{host}:{port}{path}"


def free_port(kind: socket.SocketKind) -> int:
    """A port on 127.0.0.1 with nothing bound to it (bound once, then released)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def small_rcvbuf_socket(addr_info: AddrInfoType) -> socket.socket:
    family, type_, proto, _, _ = addr_info
    sock = socket.socket(family, type_, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_RCVBUF)
    return sock


async def curl(*args: str, expect_rc: int = 0) -> None:
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "--max-time", "5", "--http1.1", *args, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    if proc.returncode != expect_rc:
        raise RuntimeError(f"curl {args}: rc {proc.returncode}: {err.decode()}")


async def keepalive_exchange(host: str, port: int) -> None:
    """Five request/response pairs on one keep-alive connection, then close."""
    requests: list[tuple[str, str, bytes | None, object]] = [  # method, path, data, json
        ("GET", "/hello", None, None),
        ("POST", "/echo", POST_BODY, None),
        ("GET", "/big", None, None),
        ("PUT", "/items/42", None, {"name": "answer", "tags": ["a", "b"]}),
        ("DELETE", "/items/42", None, None),
    ]
    connector = TCPConnector(limit=1, socket_factory=small_rcvbuf_socket)
    async with ClientSession(connector=connector) as session:
        for method, path, data, json_body in requests:
            target = url(host, port, path)
            async with session.request(method, target, data=data, json=json_body) as response:
                response.raise_for_status()
                await response.read()


async def record_keepalive(out: Path, name: str, host: str) -> None:
    async with http_server(host) as port, tcpdump(out / name, f"tcp port {port} and host {host}"):
        await keepalive_exchange(host, port)


async def record_rst(out: Path) -> None:
    async with http_server("127.0.0.1") as port:
        closed = free_port(socket.SOCK_STREAM)
        bpf = f"host 127.0.0.1 and tcp and (port {port} or port {closed})"
        async with tcpdump(out / "rst-and-refused.pcap", bpf):
            await curl("-o", "/dev/null", url("127.0.0.1", closed, "/"), expect_rc=7)
            async with ClientSession() as session:
                try:
                    async with session.get(url("127.0.0.1", port, "/abort")) as response:
                        await response.read()
                except ClientError:
                    pass
                else:
                    raise RuntimeError("/abort was not reset")


async def record_sll(out: Path, name: str, linktype: str) -> None:
    async with http_server("127.0.0.1") as port:
        bpf = f"tcp port {port} and host 127.0.0.1"
        async with tcpdump(out / name, bpf, iface="any", linktype=linktype):
            urls = [url("127.0.0.1", port, "/hello"), url("127.0.0.1", port, "/json")]
            await curl("-o", "/dev/null", "-o", "/dev/null", *urls)


class DnsResponder(asyncio.DatagramProtocol):
    """Answers every A/AAAA query with 127.0.0.1 / ::1."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, int]) -> None:
        query = dpkt.dns.DNS(data)
        question = query.qd[0]
        rdata = {
            dpkt.dns.DNS_A: socket.inet_pton(socket.AF_INET, "127.0.0.1"),
            dpkt.dns.DNS_AAAA: socket.inet_pton(socket.AF_INET6, "::1"),
        }[question.type]
        answer = dpkt.dns.DNS.RR(name=question.name, type=question.type, ttl=60, rdata=rdata)
        reply = dpkt.dns.DNS(id=query.id, qr=dpkt.dns.DNS_R, rd=1, ra=1, qd=query.qd, an=[answer])
        self.transport.sendto(bytes(reply), addr)


def dns_query(port: int, qtype: int, qid: int) -> None:
    query = dpkt.dns.DNS(id=qid, rd=1, qd=[dpkt.dns.DNS.Q(name="api.mizu.test", type=qtype)])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(bytes(query), ("127.0.0.1", port))
        reply = dpkt.dns.DNS(sock.recv(512))
    if reply.id != qid or len(reply.an) != 1:
        raise RuntimeError("bad DNS reply")


def icmp_echo() -> None:
    """One ICMP echo request to 127.0.0.1 over a raw socket; the kernel answers it."""
    echo_id = 0x4D5A
    request = dpkt.icmp.ICMP(
        type=dpkt.icmp.ICMP_ECHO, data=dpkt.icmp.ICMP.Echo(id=echo_id, seq=1, data=b"mizu-ping")
    )
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        sock.settimeout(2)
        sock.sendto(bytes(request), ("127.0.0.1", 0))
        for _ in range(4):  # the raw socket also sees our own request
            reply = dpkt.ip.IP(sock.recv(1024)).data
            if reply.type == dpkt.icmp.ICMP_ECHOREPLY and reply.data.id == echo_id:
                return
    raise RuntimeError("no ICMP echo reply")


def udp_to_closed_port(port: int) -> None:
    """A UDP datagram to a port nobody listens on; the kernel answers ICMP port unreachable."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.connect(("127.0.0.1", port))
        sock.send(b"anyone there?")
        try:
            sock.recv(64)
        except ConnectionRefusedError:
            return
    raise RuntimeError("UDP to a closed port was not refused")


def bind_dns_socket() -> socket.socket:
    """UDP socket on 127.0.0.1:53 (so tshark decodes DNS), or an ephemeral port if 53 is taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 53))
    except OSError:
        sock.bind(("127.0.0.1", 0))
    return sock


async def record_non_tcp(out: Path) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(DnsResponder, sock=bind_dns_socket())
    dns_port = transport.get_extra_info("sockname")[1]
    closed = free_port(socket.SOCK_DGRAM)
    try:
        async with http_server("127.0.0.1") as port:
            bpf = (
                f"host 127.0.0.1 and (tcp port {port} or udp port {dns_port}"
                f" or udp port {closed} or icmp)"
            )
            async with tcpdump(out / "non-tcp.pcap", bpf):
                await asyncio.to_thread(dns_query, dns_port, dpkt.dns.DNS_A, 0x1001)
                await curl("-o", "/dev/null", url("127.0.0.1", port, "/json"))
                await asyncio.to_thread(dns_query, dns_port, dpkt.dns.DNS_AAAA, 0x1002)
                await asyncio.to_thread(icmp_echo)
                await asyncio.to_thread(udp_to_closed_port, closed)
    finally:
        transport.close()


async def record_all(out: Path) -> None:
    await record_keepalive(out, "http11-keepalive.pcap", "127.0.0.1")
    await record_keepalive(out, "http11-ipv6.pcap", "::1")
    await record_rst(out)
    await record_sll(out, "linux-sll.pcap", "LINUX_SLL")
    await record_sll(out, "linux-sll2.pcap", "LINUX_SLL2")
    await record_non_tcp(out)


# --- derive -----------------------------------------------------------------------------------


def to_vlan(frame: bytes) -> bytes:
    """Insert an 802.1Q tag (PCP 0, VID 100) after the MAC addresses."""
    return frame[:12] + struct.pack(">HH", 0x8100, 100) + frame[12:]


def to_raw(frame: bytes) -> bytes:
    return frame[14:]


def to_null(frame: bytes) -> bytes:
    """BSD loopback header: the address family in the byte order of the pcap file (little)."""
    family = {0x0800: 2, 0x86DD: 30}[struct.unpack_from(">H", frame, 12)[0]]
    return struct.pack("<I", family) + frame[14:]


def with_ipv6_exthdrs(frame: bytes) -> bytes:
    """Insert hop-by-hop (PadN) and destination-options (option 0x1e "mizu") headers."""
    ip6 = frame[14:54]
    next_header, plen = ip6[6], struct.unpack_from(">H", ip6, 4)[0]
    hop_by_hop = bytes([60, 0, 1, 4, 0, 0, 0, 0])
    dest_options = bytes([next_header, 0, 0x1E, 4]) + b"mizu"
    header = ip6[:4] + struct.pack(">HB", plen + 16, 0) + ip6[7:]
    return frame[:14] + header + hop_by_hop + dest_options + frame[54:]


def fragment(frame: bytes, rng: random.Random) -> list[bytes]:
    """Split an IPv4-over-Ethernet frame into fragments; about half come out shuffled."""
    ip = dpkt.ip.IP(frame[14:])
    payload = frame[14 + 4 * ip.hl : 14 + ip.len]
    frames = []
    for start in range(0, len(payload), FRAGMENT_PAYLOAD):
        more = start + FRAGMENT_PAYLOAD < len(payload)
        piece = dpkt.ip.IP(
            tos=ip.tos,
            id=ip.id,
            mf=int(more),
            offset=start // 8,
            ttl=ip.ttl,
            p=ip.p,
            src=ip.src,
            dst=ip.dst,
            data=payload[start : start + FRAGMENT_PAYLOAD],
        )
        frames.append(frame[:14] + bytes(piece))
    if rng.random() < 0.5:
        rng.shuffle(frames)
    return frames


def fragment_big_response(packets: list[Packet], rng: random.Random) -> list[Packet]:
    """Fragment the IPv4 packets that carry more than FRAGMENT_PAYLOAD bytes server->client."""
    server_port = dpkt.ip.IP(packets[0][1][14:]).data.dport
    out: list[Packet] = []
    ids = set()
    for ts, frame in packets:
        ip = dpkt.ip.IP(frame[14:])
        if ip.data.sport == server_port and len(ip.data.data) > FRAGMENT_PAYLOAD:
            if ip.id in ids:
                raise RuntimeError(f"IP id {ip.id} used twice; cannot fragment")
            ids.add(ip.id)
            out.extend((ts, piece) for piece in fragment(frame, rng))
        else:
            out.append((ts, frame))
    return out


def write_records(path: Path, records: list[tuple[float, bytes, int]], snaplen: int) -> None:
    """Write a little-endian microsecond pcap from (timestamp, captured bytes, wire length)."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, LINKTYPE_ETHERNET))
        for ts, data, wire_len in records:
            usec = round(ts * 1_000_000)
            f.write(struct.pack("<IIII", usec // 1_000_000, usec % 1_000_000, len(data), wire_len))
            f.write(data)


def cut_offset(path: Path) -> int:
    """Offset halfway into the data of the first record of 1000+ bytes of a LE pcap."""
    data = path.read_bytes()
    offset = 24
    while offset < len(data):
        caplen = struct.unpack_from("<I", data, offset + 8)[0]
        if caplen >= 1000:
            return offset + 16 + caplen // 2
        offset += 16 + caplen
    raise RuntimeError(f"{path}: no record of 1000+ bytes")


def derive_all(out: Path) -> None:
    rng = random.Random(SEED)
    linktype, packets = read_pcap(out / "http11-keepalive.pcap")
    if linktype != LINKTYPE_ETHERNET:
        raise RuntimeError("http11-keepalive.pcap must be Ethernet")

    def mapped(fn: Callable[[bytes], bytes]) -> list[Packet]:
        return [(ts, fn(frame)) for ts, frame in packets]

    write_pcap(out / "http11-keepalive-vlan.pcap", mapped(to_vlan), LINKTYPE_ETHERNET)
    write_pcap(out / "http11-keepalive-raw.pcap", mapped(to_raw), LINKTYPE_RAW)
    write_pcap(out / "http11-keepalive-null.pcap", mapped(to_null), LINKTYPE_NULL)
    fragmented = fragment_big_response(packets, rng)
    write_pcap(out / "http11-keepalive-ipfrag.pcap", fragmented, LINKTYPE_ETHERNET)
    _, packets6 = read_pcap(out / "http11-ipv6.pcap")
    exthdrs = [(ts, with_ipv6_exthdrs(frame)) for ts, frame in packets6]
    write_pcap(out / "http11-ipv6-exthdrs.pcap", exthdrs, LINKTYPE_ETHERNET)

    (out / "empty.pcap").write_bytes(b"")
    noise = [rng.randbytes(rng.randint(1, 200)) for _ in range(rng.randint(20, 30))]
    garbage = [(packets[0][0] + i / 10, data, len(data)) for i, data in enumerate(noise)]
    write_records(out / "garbage.pcap", garbage, 262144)
    cut = cut_offset(out / "http11-keepalive.pcap")
    (out / "truncated.pcap").write_bytes((out / "http11-keepalive.pcap").read_bytes()[:cut])
    write_records(
        out / "snaplen-96.pcap", [(ts, frame[:96], len(frame)) for ts, frame in packets], 96
    )
    write_pcap(out / "unknown-linktype.pcap", packets[:12], LINKTYPE_USER0)
    print(f"derived; truncated.pcap cut at byte {cut}")


# --- oracles ----------------------------------------------------------------------------------


def oracles(out: Path) -> None:
    captures = sorted(p for p in out.iterdir() if p.suffix in (".pcap", ".pcapng"))
    for path in captures:
        if path.name not in NO_ORACLE:
            write_oracle(path)
            print(f"oracle for {path.name}")

    def streams(name: str) -> list[dict[str, object]]:
        data = json.loads(oracle_path(out / name).read_text())
        return [{k: v for k, v in s.items() if k != "packets"} for s in data["streams"]]

    for variant, base in VARIANTS.items():
        if streams(variant) != streams(base):
            raise SystemExit(f"{variant}: streams differ from {base}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=["copy", "record", "derive", "oracles", "all"])
    layout = "the public captures, as DIR/<protocol>/<file>"
    parser.add_argument("--corpus", type=Path, help=f"{layout}; copy and all need it")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if args.step in ("copy", "all") and args.corpus is None:
        parser.error(f"{args.step} needs --corpus DIR ({layout})")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.step in ("copy", "all"):
        copy_corpus(args.corpus, args.out)
    if args.step in ("record", "all"):
        asyncio.run(record_all(args.out))
    if args.step in ("derive", "all"):
        derive_all(args.out)
    if args.step in ("oracles", "all"):
        oracles(args.out)


if __name__ == "__main__":
    main()
