"""Capture files written: classic pcap, the one writer of ``-w``, ``GET /pcap`` and tests,
and the names of TCP connections by which the hub finds the packets of entries."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

from mizu_core.decode import LINKTYPE_RAW, network_offset

Frame = tuple[float, bytes]
PCAP_SNAPLEN = 262144
_PCAP_HEADER = struct.Struct("<IHHiIII")
_PCAP_RECORD = struct.Struct("<IIII")
_PCAP_MAGIC = 0xA1B2C3D4


def connection_key(ip_a: str, port_a: int, ip_b: str, port_b: int) -> str:
    """The same text for both directions of one TCP connection."""
    first, second = sorted(((ip_a, int(port_a)), (ip_b, int(port_b))))
    return f"{first[0]}|{first[1]}|{second[0]}|{second[1]}"


def entry_connection_key(entry: Mapping[str, Any]) -> str | None:
    """The connection an entry came from, or None when its endpoints are incomplete."""
    src, dst = entry.get("src"), entry.get("dst")
    if not isinstance(src, Mapping) or not isinstance(dst, Mapping):
        return None
    try:
        return connection_key(str(src["ip"]), int(src["port"]), str(dst["ip"]), int(dst["port"]))
    except (KeyError, TypeError, ValueError):
        return None


@dataclass(slots=True)
class ConnectionPackets:
    """Frames of one connection, ready to ship."""

    key: str
    linktype: int
    frames: list[Frame]

    def to_json(self) -> dict[str, Any]:
        return {"connection": self.key, "linktype": self.linktype, "frames": self.frames}


class PcapWriter:
    """A classic pcap file (microsecond timestamps) written packet by packet."""

    def __init__(self, stream: IO[bytes], linktype: int, snaplen: int = PCAP_SNAPLEN) -> None:
        self.stream = stream
        self.count = 0
        stream.write(_PCAP_HEADER.pack(_PCAP_MAGIC, 2, 4, 0, 0, snaplen, linktype))

    def write(self, timestamp: float, frame: bytes) -> None:
        seconds = int(timestamp)
        micros = min(round((timestamp - seconds) * 1_000_000), 999_999)
        self.stream.write(_PCAP_RECORD.pack(seconds, micros, len(frame), len(frame)))
        self.stream.write(frame)
        self.count += 1


def write_pcap(stream: IO[bytes], linktype: int, frames: Iterable[Frame]) -> int:
    """A classic pcap file of ``frames``; returns how many."""
    writer = PcapWriter(stream, linktype)
    for timestamp, frame in frames:
        writer.write(timestamp, frame)
    return writer.count


def write_capture(stream: IO[bytes], packets: Iterable[tuple[int, float, bytes]]) -> int:
    """``(linktype, timestamp, frame)`` packets as one classic pcap file; returns how many.
    Packets of one link type are written as they are. Of several (captures of an Ethernet
    device and of loopback, say), the frames are cut to their IP packets under link type RAW:
    a file holds one link type, and libpcap reads pcapng only when all its interfaces share
    theirs. Frames that carry no IP are left out then."""
    packets = list(packets)
    linktypes = {linktype for linktype, _, _ in packets}
    if len(linktypes) == 1:
        return write_pcap(stream, linktypes.pop(), ((time, frame) for _, time, frame in packets))
    return write_pcap(stream, LINKTYPE_RAW, _ip_packets(packets))


def _ip_packets(packets: Iterable[tuple[int, float, bytes]]) -> Iterator[Frame]:
    for linktype, time, frame in packets:
        try:
            offset = network_offset(linktype, frame)
        except (IndexError, struct.error):
            continue
        if offset >= 0:
            yield time, frame[offset:]
