"""Raw packets for ``GET /pcap``: kept per connection by the tapper, written out by the hub.

Raw packets carry every secret redaction removes, so a tapper keeps them only when pcap export
is enabled (off by default). :class:`PacketKeeper` wraps a packet source's iterator, outside
the reassembly hot path, and sets aside each TCP connection's frames up to a cap per connection
and a cap on what waits to be shipped; :meth:`PacketKeeper.take` hands over what it kept since
the last call. Connections are named by :func:`~mizu_core.pcapfile.connection_key`, which the
hub computes from an entry's ``src`` and ``dst`` to find the packets of the entries a query
matches; the hub writes them out with :mod:`mizu_core.pcapfile`.
"""

from __future__ import annotations

import socket
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from mizu_core.decode import Decoder
from mizu_core.pcapfile import ConnectionPackets, Frame, connection_key

Kept = TypeVar("Kept", Frame, Frame | None)
"""A packet source's items: a file's frames, or a live source's, with None when idle."""


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

    def wrap(self, packets: Iterable[Kept]) -> Iterator[Kept]:
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
