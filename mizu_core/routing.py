"""Which worker process each packet of a capture goes to: every packet of a TCP connection
to the same one, IP fragments included (held until their datagram's first fragment names the
connection). Every worker runs the same router over every packet, so all agree on every route
without telling each other (:mod:`mizu_core.parallel`)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Final

from mizu_core.decode import (
    IPPROTO_TCP,
    IPV6_FRAGMENT,
    ipv4_fragment_key,
    ipv6_fragment_key,
    network_offset,
    skip_ipv6_options,
)
from mizu_core.reassembly import FAST_IPV4_LAYOUTS, plain_ipv4_tcp

FLOW_GENERATION = 600.0
"""Seconds of capture time a connection's route is kept after its last packet (two
generations of this long): longer than the reassembler keeps an idle connection (300 s)."""
MAX_HELD_DATAGRAMS = 1024
MAX_HELD_BYTES = 16 << 20
MAX_FRAGMENT_ROUTES = 4096
_NO_SHORT_PATH: Final = 1 << 60  # no frame is this long


class WorkerLoad:
    """A worker and the bytes of the packets routed to it so far. The routes of a connection
    lead to it, and the count goes up for every packet as a machine integer (in a list, every
    sum would be a new Python integer)."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.bytes = 0


@dataclass(slots=True)
class RouterStats:
    flows: int = 0
    fragments_held: int = 0
    fragments_unrouted: int = 0
    """Fragments whose connection was not known in time (the hold was full): sent to worker 0,
    where the decoder counts them as dropped."""
    loads: list[WorkerLoad] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "flows": self.flows,
            "fragments_held": self.fragments_held,
            "fragments_unrouted": self.fragments_unrouted,
            "worker_bytes": [load.bytes for load in self.loads],
        }


class ConnectionRouter:
    """Which worker each packet goes to: every packet of a TCP connection to the same one."""

    def __init__(self, workers: int) -> None:
        self.stats = RouterStats(loads=[WorkerLoad(number) for number in range(workers)])
        self.flows: dict[bytes, WorkerLoad] = {}
        self.old_flows: dict[bytes, WorkerLoad] = {}
        self.generation_end = -1.0
        self.fragment_routes: dict[tuple[bytes, ...], int] = {}
        self.held: dict[tuple[bytes, ...], list[tuple[int, float, bytes]]] = {}
        self.held_bytes = 0
        # The link type's layout, for plain_route (none until told)
        self.ip = -1
        self.ethertype_at = -1
        self.minimum = _NO_SHORT_PATH

    def read_link_type(self, linktype: int) -> None:
        """Packets of ``linktype`` follow (a file begins)."""
        self.ip, self.ethertype_at = FAST_IPV4_LAYOUTS.get(linktype, (-1, -1))
        self.minimum = self.ip + 40 if self.ip >= 0 else _NO_SHORT_PATH

    def plain_route(self, data: bytes, at: int, size: int) -> int:
        """The worker of the frame of ``size`` octets at ``at`` in ``data`` when it is the
        common case, IPv4 without options or fragments carrying TCP; -1 when :meth:`route`
        decides. Read in place, by a few header octets: every worker routes every packet, and
        makes ``bytes`` of its own frames only."""
        if size < self.minimum or not plain_ipv4_tcp(data, at, self.ip, self.ethertype_at):
            return -1
        addresses = at + self.ip + 12
        key = data[addresses : addresses + 12]  # addresses and ports
        load = self.flows.get(key)
        if load is None:
            load = self._load_of(key)
        load.bytes += size
        return load.number

    def flow(self, key: bytes) -> int:
        """The worker of the connection whose packet has ``key`` (addresses, then ports, of
        the sender first); a new connection goes to the least loaded worker."""
        return self._load_of(key).number

    def _load_of(self, key: bytes) -> WorkerLoad:
        load = self.flows.get(key)
        if load is not None:
            return load
        load = self.old_flows.get(key)
        if load is None:
            for candidate in self.stats.loads:
                if load is None or candidate.bytes < load.bytes:
                    load = candidate
            assert load is not None
            self.stats.flows += 1
        half = len(key) // 2 - 2
        reverse = key[half : 2 * half] + key[:half] + key[-2:] + key[-4:-2]
        self.flows[key] = self.flows[reverse] = load
        return load

    def rotate_if_due(self, time: float) -> None:
        """Forget the routes not used for a whole generation: the reassembler has ended those
        connections, and a later packet of the same 4-tuple makes a new one."""
        if self.generation_end < 0:
            self.generation_end = time + FLOW_GENERATION
        elif time >= self.generation_end:
            self.old_flows, self.flows = self.flows, {}
            self.generation_end = time + FLOW_GENERATION

    def route(
        self, linktype: int, index: int, time: float, frame: bytes
    ) -> list[tuple[int, int, float, bytes]]:
        """Where a packet :meth:`plain_route` did not take goes: ``(worker, index, time,
        frame)`` for it and for the fragments it releases (none while it is a fragment held
        until its datagram's first fragment tells the connection)."""
        routes = self._route(linktype, index, time, frame)
        loads = self.stats.loads
        for worker, _, _, routed in routes:
            loads[worker].bytes += len(routed)
        return routes

    def _route(
        self, linktype: int, index: int, time: float, frame: bytes
    ) -> list[tuple[int, int, float, bytes]]:
        try:
            ip = network_offset(linktype, frame)
            if ip < 0:
                return [(0, index, time, frame)]
            version = frame[ip] >> 4
            if version == 4:
                return self._ipv4(frame, ip, index, time)
            if version == 6:
                return self._ipv6(frame, ip, index, time)
        except (IndexError, struct.error):
            pass
        return [(0, index, time, frame)]

    def _ipv4(
        self, frame: bytes, ip: int, index: int, time: float
    ) -> list[tuple[int, int, float, bytes]]:
        header_len = (frame[ip] & 0x0F) * 4
        if frame[ip + 9] != IPPROTO_TCP or header_len < 20:
            return [(0, index, time, frame)]
        flags_fragment = frame[ip + 6] << 8 | frame[ip + 7]
        tcp = ip + header_len
        if not flags_fragment & 0x3FFF:
            return [(self._flow_at(frame, ip + 12, 4, tcp), index, time, frame)]
        key = ipv4_fragment_key(frame, ip)
        if flags_fragment & 0x1FFF:
            return self._later_fragment(key, index, time, frame)
        return self._first_fragment(key, self._flow_at(frame, ip + 12, 4, tcp), index, time, frame)

    def _ipv6(
        self, frame: bytes, ip: int, index: int, time: float
    ) -> list[tuple[int, int, float, bytes]]:
        next_header, offset = skip_ipv6_options(frame, frame[ip + 6], ip + 40)
        if next_header == IPPROTO_TCP:
            return [(self._flow_at(frame, ip + 8, 16, offset), index, time, frame)]
        if next_header != IPV6_FRAGMENT:
            return [(0, index, time, frame)]
        key = ipv6_fragment_key(frame[ip + 8 : ip + 24], frame[ip + 24 : ip + 40], frame, offset)
        if (frame[offset + 2] << 8 | frame[offset + 3]) & 0xFFF8:
            return self._later_fragment(key, index, time, frame)
        next_header, tcp = skip_ipv6_options(frame, frame[offset], offset + 8)
        if next_header != IPPROTO_TCP:
            return [(0, index, time, frame)]
        return self._first_fragment(key, self._flow_at(frame, ip + 8, 16, tcp), index, time, frame)

    def _flow_at(self, frame: bytes, addresses: int, size: int, tcp: int) -> int:
        ports = frame[tcp : tcp + 4]
        if len(ports) < 4:
            raise IndexError("TCP header cut short")
        return self.flow(frame[addresses : addresses + 2 * size] + ports)

    def _first_fragment(
        self, key: tuple[bytes, ...], worker: int, index: int, time: float, frame: bytes
    ) -> list[tuple[int, int, float, bytes]]:
        if len(self.fragment_routes) >= MAX_FRAGMENT_ROUTES:
            del self.fragment_routes[next(iter(self.fragment_routes))]
        self.fragment_routes[key] = worker
        held = self.held.pop(key, [])
        self.held_bytes -= sum(len(held_frame) for _, _, held_frame in held)
        # Held fragments go now, in their capture order and before this one; they are tagged
        # with this packet's index so that each worker's indices stay in order.
        return [(worker, index, held_time, held_frame) for _, held_time, held_frame in held] + [
            (worker, index, time, frame)
        ]

    def _later_fragment(
        self, key: tuple[bytes, ...], index: int, time: float, frame: bytes
    ) -> list[tuple[int, int, float, bytes]]:
        worker = self.fragment_routes.get(key)
        if worker is not None:
            return [(worker, index, time, frame)]
        held = self.held.get(key)
        if held is None and len(self.held) >= MAX_HELD_DATAGRAMS:
            self.stats.fragments_unrouted += 1
            return [(0, index, time, frame)]
        if self.held_bytes + len(frame) > MAX_HELD_BYTES:
            self.stats.fragments_unrouted += 1
            return [(0, index, time, frame)]
        if held is None:
            held = self.held[key] = []
        held.append((index, time, frame))
        self.held_bytes += len(frame)
        self.stats.fragments_held += 1
        return []

    def release_held(self, index: int) -> list[tuple[int, int, float, bytes]]:
        """At the end of a file: fragments whose first fragment never came go to worker 0 (its
        decoder counts them), in capture order, tagged with ``index``."""
        released = sorted(
            (held_index, held_time, held_frame)
            for held in self.held.values()
            for held_index, held_time, held_frame in held
        )
        self.stats.fragments_unrouted += len(released)
        self.held.clear()
        self.held_bytes = 0
        self.fragment_routes.clear()
        return [(0, index, held_time, held_frame) for _, held_time, held_frame in released]
