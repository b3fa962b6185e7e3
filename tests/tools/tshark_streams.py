"""Write golden TCP stream oracles for captures, as tshark reassembles them.

Usage, from the repository root::

    python -m tests.tools.tshark_streams tests/data/core/http11-keepalive.pcap [...]

For ``NAME.pcap`` (or ``NAME.pcapng``) this writes ``NAME.streams.json``
next to it, with one entry per TCP stream index that tshark assigns
(``tcp.stream``): the client and server endpoint, how the client was told
apart, packet count, whether SYN / FIN / RST were seen, and length and
sha256 of each direction's byte stream as given by
``tshark -q -z follow,tcp,raw,N``.

The client is the sender of a SYN without ACK, else the receiver of a
SYN+ACK; without either (a capture that starts mid-connection) the endpoint
with the lower port is taken as the server.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

Endpoint = tuple[str, int]

_FIELDS = [
    "tcp.stream",
    "ip.src",
    "ipv6.src",
    "tcp.srcport",
    "ip.dst",
    "ipv6.dst",
    "tcp.dstport",
    "tcp.flags.syn",
    "tcp.flags.ack",
    "tcp.flags.fin",
    "tcp.flags.reset",
]


@dataclass
class _StreamInfo:
    packets: int = 0
    syn: bool = False
    fin: bool = False
    rst: bool = False
    endpoints: set[Endpoint] = field(default_factory=set)
    client: Endpoint | None = None
    client_by: str = "lower-port-is-server"


def _tshark(*args: str) -> str:
    result = subprocess.run(
        ["tshark", *args], check=True, capture_output=True, text=True, timeout=300
    )
    return result.stdout


def _norm(ip: str) -> str:
    return ipaddress.ip_address(ip.strip("[]")).compressed


def _flag(value: str) -> bool:
    return value in ("1", "True")


def tshark_version() -> str:
    return _tshark("--version").split("\n", 1)[0]


def _stream_infos(path: Path) -> dict[int, _StreamInfo]:
    args = ["-r", str(path), "-Y", "tcp && !icmp && !icmpv6", "-T", "fields", "-E", "separator=\t"]
    for name in _FIELDS:
        args += ["-e", name]
    infos: dict[int, _StreamInfo] = {}
    for line in _tshark(*args).splitlines():
        stream, ip_src, ip6_src, sport, ip_dst, ip6_dst, dport, syn, ack, fin, rst = line.split(
            "\t"
        )
        info = infos.setdefault(int(stream), _StreamInfo())
        src = (_norm(ip_src or ip6_src), int(sport))
        dst = (_norm(ip_dst or ip6_dst), int(dport))
        info.packets += 1
        info.endpoints |= {src, dst}
        info.syn |= _flag(syn)
        info.fin |= _flag(fin)
        info.rst |= _flag(rst)
        if _flag(syn) and not _flag(ack):
            info.client, info.client_by = src, "syn"
        elif _flag(syn) and info.client_by != "syn":
            info.client, info.client_by = dst, "syn-ack"
    return infos


def follow(path: Path, stream: int) -> dict[Endpoint, bytes]:
    """The bytes each endpoint of ``stream`` sent, per ``tshark -z follow,tcp,raw``."""
    out = _tshark("-r", str(path), "-q", "-z", f"follow,tcp,raw,{stream}")
    nodes: list[Endpoint] = []
    data = [bytearray(), bytearray()]
    for line in out.splitlines():
        if line.startswith("Node "):
            address, port = line.split(": ", 1)[1].rsplit(":", 1)
            nodes.append((_norm(address), int(port)))
        elif len(nodes) == 2 and line and not line.startswith("="):
            data[line.startswith("\t")].extend(bytes.fromhex(line.strip()))
    return {nodes[0]: bytes(data[0]), nodes[1]: bytes(data[1])}


def _digest(data: bytes) -> dict[str, object]:
    return {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def streams(path: Path) -> dict[str, object]:
    """The oracle for one capture, as a JSON-able dict."""
    entries = []
    for index, info in sorted(_stream_infos(path).items()):
        if info.client is None:
            info.client = max(info.endpoints, key=lambda e: (e[1], e))
        (server,) = info.endpoints - {info.client}
        sent = follow(path, index)
        entries.append(
            {
                "stream": index,
                "client": {"ip": info.client[0], "port": info.client[1]},
                "server": {"ip": server[0], "port": server[1]},
                "client_by": info.client_by,
                "packets": info.packets,
                "syn": info.syn,
                "fin": info.fin,
                "rst": info.rst,
                "client_to_server": _digest(sent.get(info.client, b"")),
                "server_to_client": _digest(sent.get(server, b"")),
            }
        )
    return {
        "capture": path.name,
        "capture_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "made_by": f"tests/tools/tshark_streams.py with {tshark_version()}",
        "streams": entries,
    }


def oracle_path(capture: Path) -> Path:
    return capture.with_suffix(".streams.json")


def write_oracle(capture: Path) -> None:
    oracle_path(capture).write_text(json.dumps(streams(capture), indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("captures", nargs="+", type=Path)
    for capture in parser.parse_args().captures:
        write_oracle(capture)


if __name__ == "__main__":
    main()
