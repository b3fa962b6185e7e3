"""Raw packets for ``GET /pcap``: kept per connection by the tapper, written out by the hub.

Raw packets carry every secret redaction removes, so a tapper keeps them only when pcap export
is enabled (off by default). :class:`PacketKeeper` wraps a packet source's iterator, outside
the reassembly hot path, and sets aside each TCP connection's frames up to a cap per connection
and a cap on what waits to be shipped; :meth:`PacketKeeper.take` hands over what it kept since
the last call. Connections are named by :func:`connection_key`, which the hub computes from an
entry's ``src`` and ``dst`` to find the packets of the entries a query matches.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from mizu_core.decode import LINKTYPE_RAW, Decoder, network_offset

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


@dataclass(slots=True)
class KeeperStats:
    kept: int = 0
    kept_bytes: int = 0
    over_connection_cap: int = 0
    """Frames not kept: their connection had used its share."""
    over_pending_cap: int = 0
    """Frames not kept: too much was waiting to be shipped."""
    forgotten_connections: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "kept": self.kept,
            "keptBytes": self.kept_bytes,
            "overConnectionCap": self.over_connection_cap,
            "overPendingCap": self.over_pending_cap,
            "forgottenConnections": self.forgotten_connections,
        }


@dataclass(slots=True)
class _Connection:
    key: str
    kept_bytes: int = 0
    pending: list[Frame] = field(default_factory=list)


class PacketKeeper:
    """Keeps the frames of each TCP connection seen on one packet source (one link type).

    ``record`` runs on the capture thread, ``take`` on any other: a lock guards the hand-over.
    Connections are remembered (for their cap) least recently seen first out, up to
    ``max_connections``.
    """

    def __init__(
        self,
        linktype: int,
        max_connection_bytes: int = 1 << 20,
        max_pending_bytes: int = 32 << 20,
        max_connections: int = 65_536,
    ) -> None:
        self.linktype = linktype
        self.max_connection_bytes = max_connection_bytes
        self.max_pending_bytes = max_pending_bytes
        self.max_connections = max_connections
        self.stats = KeeperStats()
        self._decoder = Decoder(linktype)
        self._connections: OrderedDict[tuple[bytes, bytes, int, int], _Connection] = OrderedDict()
        self._pending_bytes = 0
        self._orphans: list[ConnectionPackets] = []
        self._lock = threading.Lock()

    def wrap(self, packets: Iterable[Frame | None]) -> Iterator[Frame | None]:
        """``packets`` unchanged, each frame recorded on the way."""
        record = self.record
        for packet in packets:
            if packet is not None:
                record(packet[0], packet[1])
            yield packet

    def record(self, timestamp: float, frame: bytes) -> None:
        segment = self._decoder.decode(frame, timestamp)
        if segment is None:
            return
        src, dst, sport, dport = segment[0], segment[1], segment[2], segment[3]
        endpoints = (
            (src, dst, sport, dport) if (src, sport) <= (dst, dport) else (dst, src, dport, sport)
        )
        size = len(frame)
        with self._lock:
            connection = self._connections.get(endpoints)
            if connection is None:
                connection = self._remember(endpoints)
            else:
                self._connections.move_to_end(endpoints)
            if connection.kept_bytes + size > self.max_connection_bytes:
                self.stats.over_connection_cap += 1
                return
            if self._pending_bytes + size > self.max_pending_bytes:
                self.stats.over_pending_cap += 1
                return
            connection.kept_bytes += size
            connection.pending.append((timestamp, frame))
            self._pending_bytes += size
            self.stats.kept += 1
            self.stats.kept_bytes += size

    def _remember(self, endpoints: tuple[bytes, bytes, int, int]) -> _Connection:
        first, second, first_port, second_port = endpoints
        connection = _Connection(
            connection_key(_address(first), first_port, _address(second), second_port)
        )
        self._connections[endpoints] = connection
        while len(self._connections) > self.max_connections:
            _, forgotten = self._connections.popitem(last=False)
            self.stats.forgotten_connections += 1
            if forgotten.pending:
                self._orphans.append(
                    ConnectionPackets(forgotten.key, self.linktype, forgotten.pending)
                )
        return connection

    def take(self) -> list[ConnectionPackets]:
        """The frames kept since the last call, by connection."""
        with self._lock:
            taken, self._orphans = self._orphans, []
            for connection in self._connections.values():
                if connection.pending:
                    taken.append(
                        ConnectionPackets(connection.key, self.linktype, connection.pending)
                    )
                    connection.pending = []
            self._pending_bytes = 0
        return taken


def _address(packed: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(packed) == 4 else socket.AF_INET6, packed)


def write_pcap(stream: IO[bytes], linktype: int, frames: Iterable[Frame]) -> int:
    """A classic pcap file (microsecond timestamps) of ``frames``; returns how many."""
    stream.write(_PCAP_HEADER.pack(_PCAP_MAGIC, 2, 4, 0, 0, PCAP_SNAPLEN, linktype))
    count = 0
    for timestamp, frame in frames:
        seconds = int(timestamp)
        micros = min(round((timestamp - seconds) * 1_000_000), 999_999)
        stream.write(_PCAP_RECORD.pack(seconds, micros, len(frame), len(frame)))
        stream.write(frame)
        count += 1
    return count


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
