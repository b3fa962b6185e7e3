"""TCP stream reassembly: segments in, the ordered byte stream of each direction out.

Each connection has two half-streams, one per direction. A half-stream delivers bytes in
sequence order whatever order the segments were captured in, trims retransmitted and
overlapping bytes (the first copy of a byte wins, as on Linux), survives sequence wraparound
(positions are kept as unbounded integers) and, when bytes are lost for good, tells the
consumer how many so that a dissector can resynchronise instead of parsing garbage.

Bytes are declared lost when the receiver acknowledged past a hole a few times (it got data the
capture did not), when a connection's out-of-order buffer is full, and when a connection ends
with holes. Memory is capped per connection and in total; everything dropped is counted.
"""

from __future__ import annotations

import bisect
import socket
import time as clock
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Final
from typing import Protocol as TypingProtocol

from mypy_extensions import i64

from mizu_core.decode import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_RAW,
    LINKTYPE_RAW_DLT,
    TCP_ACK,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    Decoder,
)
from mizu_core.dissector import CloseReason
from mizu_core.model import ConnectionInfo, ConnectionStats, Direction, Endpoint

# Final: the compiled build reads them as constants, not from the module's dict per packet.
_CLIENT_TO_SERVER: Final = Direction.CLIENT_TO_SERVER
_HALF_RANGE: Final = 1 << 31
_SEQ_MASK: Final = 0xFFFFFFFF

DUPLICATE_WINDOW: Final = 0.002
"""Seconds within which a packet with the same headers (lengths, IPv4 identification, TCP
sequence, acknowledgement and flags) is the same packet seen twice (capturing on ``any`` sees a
pod's packet on its veth and on the bridge); a real retransmission comes later (Linux waits at
least 10 ms)."""

FAST_IPV4_LAYOUTS = {
    LINKTYPE_ETHERNET: (14, 12),
    LINKTYPE_LINUX_SLL: (16, 14),
    LINKTYPE_LINUX_SLL2: (20, 0),
    LINKTYPE_RAW: (0, -1),
    LINKTYPE_RAW_DLT: (0, -1),
    LINKTYPE_IPV4: (0, -1),
}
"""Where the IPv4 header starts and where the link layer says "IPv4" (-1: nowhere to check), for
the link types whose common packets short paths read without the general decoder."""


def plain_ipv4_tcp(data: bytes, at: int, ip: int, ethertype_at: int) -> bool:
    """Whether the frame at ``at`` in ``data``, of a layout of :data:`FAST_IPV4_LAYOUTS`
    (``ip``, ``ethertype_at``), is what short paths take: IPv4 without options, TCP, not a
    fragment. The caller makes sure that ``data`` holds the 40 octets from the IPv4 header on.

    The header is read byte by byte, not unpacked with struct: the compiled build indexes bytes
    into machine integers, where an unpacking makes a tuple of Python objects."""
    ip += at
    return (
        data[ip] == 0x45  # IPv4 without options
        and data[ip + 9] == 6  # TCP
        and not (data[ip + 6] & 0x3F or data[ip + 7])  # not a fragment
        and (
            ethertype_at < 0
            or (data[at + ethertype_at] == 0x08 and data[at + ethertype_at + 1] == 0x00)
        )
    )


@dataclass(slots=True)
class ReassemblyLimits:
    """Bounds that keep a tapper's memory flat. The defaults fit a 1 GiB tapper."""

    max_connections: int = 128_000
    """Connections kept at once; beyond, the oldest is ended. Each costs about 7 KB with its
    dissector and a request waiting: 128,000 of them fit a 1 GiB tapper (200,000 did not)."""
    max_buffered_per_connection: int = 4 << 20
    max_buffered_total: int = 256 << 20
    idle_timeout: float = 300.0
    closed_linger: float = 10.0
    acked_hole_wait: float = 0.5
    """Seconds a hole may stay open after the receiver acknowledged past it. Past that, the
    capture lost those bytes; before, they may still come (captures merged from several
    interfaces or CPUs reorder packets)."""


@dataclass(slots=True)
class ReassemblyStats:
    packets: int = 0
    duplicate_packets: int = 0
    connections: int = 0
    connections_evicted: int = 0
    packets_after_close: int = 0
    retransmitted_bytes: int = 0
    out_of_order_packets: int = 0
    gaps: int = 0
    bytes_lost: int = 0
    buffer_overflows: int = 0

    def as_dict(self) -> dict[str, int]:
        return {counter.name: getattr(self, counter.name) for counter in fields(self)}


class StreamConsumer(TypingProtocol):
    """Where reassembled streams go (the dispatcher)."""

    def opened(self, connection: Connection) -> None: ...

    def data(
        self, connection: Connection, direction: Direction, data: bytes, time: float
    ) -> None: ...

    def gap(
        self, connection: Connection, direction: Direction, length: int, time: float
    ) -> None: ...

    def closed(self, connection: Connection, reason: CloseReason, time: float) -> None: ...

    def expire(self, now: float) -> None: ...


def _first_seq(peer_ack: int, seq: int) -> int:
    """Where a direction caught mid-way begins, its first segment starting at ``seq``: where
    the peer's acknowledgement before it said, when that is behind ``seq``. The bytes between
    were sent, the peer was to receive them, and the capture does not have them: a reply
    among them must be reported lost, or a plugin gives the next reply to its request."""
    if peer_ack >= 0 and 0 < ((seq - peer_ack) & _SEQ_MASK) < _HALF_RANGE:
        return peer_ack
    return seq


class HalfStream:
    """One direction of a connection."""

    __slots__ = (
        "buffered",
        "connection",
        "delivered_at",
        "direction",
        "fin_at",
        "hole_acked_at",
        "last_signature",
        "next_seq",
        "peer",
        "peer_ack",
        "position",
        "segments",
        "starts",
    )

    def __init__(self, connection: Connection, direction: Direction) -> None:
        self.connection = connection
        self.direction = direction
        # The other direction, set by the connection; an attribute, as reading
        # ``connection.halves`` in the compiled build makes a tuple.
        self.peer: HalfStream = self
        self.next_seq = -1  # wire sequence number of the next byte to deliver; -1: unknown yet
        self.peer_ack = -1
        """The peer's first acknowledgement, when it came before this direction's first
        segment (a connection caught mid-way): what of this direction the peer had then."""
        self.position = 0  # stream offset of that byte, an unbounded integer
        self.starts: list[int] = []  # sorted stream offsets of buffered out-of-order segments
        self.segments: dict[int, tuple[bytes, float]] = {}
        """Buffered out-of-order segments by stream offset, with the time each was captured."""
        self.buffered = 0
        self.delivered_at = 0.0
        """The time of the bytes delivered last."""
        self.fin_at = -1
        self.hole_acked_at = -1.0
        self.last_signature = b""


class Connection:
    """Both directions of one TCP connection, and what the dispatcher keeps for it."""

    __slots__ = (
        "closed",
        "halves",
        "handshake",
        "info",
        "keys",
        "refusable",
        "roles_known",
        "state",
        "stats",
    )

    def __init__(self, time: float) -> None:
        client_half = HalfStream(self, Direction.CLIENT_TO_SERVER)
        server_half = HalfStream(self, Direction.SERVER_TO_CLIENT)
        client_half.peer = server_half
        server_half.peer = client_half
        self.halves = (client_half, server_half)
        self.info: ConnectionInfo = None  # type: ignore[assignment]  # set by the reassembler
        self.stats = ConnectionStats.empty(time)
        self.keys: tuple[bytes, bytes] = (b"", b"")
        self.roles_known = False
        self.handshake = False
        self.refusable = False
        self.closed = False
        self.state: object = None  # the dispatcher's


def _endpoint(address: bytes, port: int) -> Endpoint:
    family = socket.AF_INET if len(address) == 4 else socket.AF_INET6
    return Endpoint(socket.inet_ntop(family, address), port)


class Reassembler:
    """Turns TCP segments into per-connection, per-direction ordered byte streams."""

    def __init__(
        self,
        consumer: StreamConsumer,
        limits: ReassemblyLimits | None = None,
        server_ports: frozenset[int] = frozenset(),
    ) -> None:
        self.consumer = consumer
        self.limits = limits or ReassemblyLimits()
        self.server_ports = server_ports
        self.stats = ReassemblyStats()
        self.table: dict[bytes, HalfStream] = {}
        self.buffered_total = 0
        self._connection_count = 0
        self._last_sweep = 0.0

    # -- the per-packet path -------------------------------------------------------------------

    def consume(
        self, packets: Iterable[tuple[float, bytes] | None], decoder: Decoder, last_time: float
    ) -> float:
        """Reassemble captured frames; ``None`` in ``packets`` means "nothing came for a while".
        Returns the time of the last frame.

        Most packets are the next data segment of a known connection, over IPv4 without options:
        those take a short path here (the per-packet budget is a few microseconds). Everything
        else goes through the decoder and :meth:`segment`.
        """
        table = self.table
        deliver = self.consumer.data
        decode = decoder.decode
        segment = self.segment
        layout = FAST_IPV4_LAYOUTS.get(decoder.linktype, (-1, -1))
        # Offsets into a frame as machine integers (i64): the compiled build then adds them
        # inline, where ``int`` arithmetic goes through checked tagged-integer calls.
        ip: i64 = layout[0]
        ethertype_at: i64 = layout[1]
        minimum: i64 = ip + 40 if ip >= 0 else 1 << 62  # no short path for other link types
        short_path: i64 = 0
        frame_bytes: i64 = 0
        # The headers are read byte by byte (see plain_ipv4_tcp); ``size >= minimum`` keeps
        # every index below inside the frame.
        for packet in packets:
            if packet is None:
                self._count_short_path(decoder, short_path, frame_bytes)
                short_path = frame_bytes = 0
                self.sweep(clock.time())
                continue
            time, frame = packet
            size: i64 = len(frame)
            frame_bytes += size
            if size >= minimum and plain_ipv4_tcp(frame, 0, ip, ethertype_at):
                # addresses and ports together: the connection table's key
                half = table.get(frame[ip + 12 : ip + 24])
                offset_flags: i64 = frame[ip + 32]
                seq: i64 = (
                    frame[ip + 24] << 24
                    | frame[ip + 25] << 16
                    | frame[ip + 26] << 8
                    | frame[ip + 27]
                )
                if (
                    half is not None
                    and not half.starts
                    and half.fin_at < 0
                    and seq == half.next_seq
                    and not frame[ip + 33] & 0x07  # neither SYN, RST nor FIN
                ):
                    end: i64 = ip + (frame[ip + 2] << 8 | frame[ip + 3])
                    start: i64 = ip + 20 + (offset_flags >> 4) * 4
                    connection = half.connection
                    direction = half.direction
                    side: i64 = 0 if direction is _CLIENT_TO_SERVER else 1
                    # A bare acknowledgement (with a whole TCP header) takes the short path
                    # too: a fifth of a gRPC capture's packets. A copy of one is the same
                    # packet seen twice (see segment), which the general path counts.
                    signature = frame[ip + 2 : ip + 34]
                    stats = connection.stats
                    if (
                        (
                            start < end
                            or (
                                start == end
                                and offset_flags >= 0x50
                                and not (
                                    signature == half.last_signature
                                    and time - stats.last_time < DUPLICATE_WINDOW
                                )
                            )
                        )
                        and end <= size
                        and connection.roles_known
                        and not connection.closed
                        and not half.peer.starts
                    ):
                        half.last_signature = signature
                        stats.last_time = time
                        # Not ``+=`` on the item: mypyc adds a list's items as Python objects
                        # then, as machine integers this way.
                        packet_counts = stats.packets
                        packet_counts[side] = packet_counts[side] + 1
                        short_path += 1
                        if start < end:
                            length = end - start
                            byte_counts = stats.bytes
                            byte_counts[side] = byte_counts[side] + length
                            half.position += length
                            half.next_seq = (seq + length) & _SEQ_MASK
                            deliver(connection, direction, frame[start:end], time)
                        if time - self._last_sweep >= 1.0:
                            self._count_short_path(decoder, short_path, frame_bytes)
                            short_path = frame_bytes = 0
                            self.sweep(time)
                        last_time = time
                        continue
            decoded = decode(frame, time)
            if decoded is not None:
                segment(time, *decoded)
            last_time = time
        self._count_short_path(decoder, short_path, frame_bytes)
        return last_time

    def _count_short_path(self, decoder: Decoder, packets: int, frame_bytes: int) -> None:
        """Add what the short path counted in local variables (about once a second) to the
        shared counters, which a status page may read meanwhile."""
        decoder.stats.frames += packets
        decoder.stats.frame_bytes += frame_bytes
        self.stats.packets += packets

    def segment(
        self,
        time: float,
        src: bytes,
        dst: bytes,
        sport: int,
        dport: int,
        seq: int,
        ack: int,
        flags: int,
        payload: bytes,
        missing: int,
        signature: bytes,
    ) -> None:
        """One TCP segment, as :meth:`mizu_core.decode.Decoder.decode` returns it."""
        self.stats.packets += 1
        key = src + dst + sport.to_bytes(2, "big") + dport.to_bytes(2, "big")
        half = self.table.get(key)
        if half is None:
            half = self._new_connection(key, time, src, dst, sport, dport, flags)
        connection = half.connection
        if connection.closed:
            if flags & (TCP_SYN | TCP_ACK) == TCP_SYN:
                self._forget(connection)
                half = self._new_connection(key, time, src, dst, sport, dport, flags)
                connection = half.connection
            else:
                self.stats.packets_after_close += 1
                return

        length = len(payload) + missing
        if (
            signature == half.last_signature
            and time - connection.stats.last_time < DUPLICATE_WINDOW
        ):
            self.stats.duplicate_packets += 1
            return
        half.last_signature = signature
        stats = connection.stats
        stats.last_time = time
        stats.packets[half.direction] += 1
        stats.bytes[half.direction] += length

        if flags & (TCP_SYN | TCP_RST):
            if flags & TCP_SYN:
                self._syn(half, seq, flags)
            else:
                self._rst(half, time)
                return
        elif half.next_seq < 0:
            half.next_seq = _first_seq(half.peer_ack, seq)
        peer = half.peer
        if flags & TCP_ACK:
            if peer.starts:
                self._check_acked_hole(peer, ack, time)
            elif peer.next_seq < 0 and peer.peer_ack < 0:
                peer.peer_ack = ack

        if length:
            if not connection.roles_known:
                self._decide_roles_by_speaker(half)
            self._data(half, seq + (1 if flags & TCP_SYN else 0), payload, missing, time)
        if flags & TCP_FIN:
            self._fin(half, seq + length + (1 if flags & TCP_SYN else 0), time)
        if time - self._last_sweep >= 1.0:
            self.sweep(time)

    def _data(self, half: HalfStream, seq: int, payload: bytes, missing: int, time: float) -> None:
        delta = ((seq - half.next_seq + _HALF_RANGE) & _SEQ_MASK) - _HALF_RANGE
        if delta == 0 and not half.starts:
            self._deliver(half, payload, missing, time)
            return
        length = len(payload) + missing
        if delta < 0:
            overlap = -delta
            if overlap >= length:
                self.stats.retransmitted_bytes += length
                return
            self.stats.retransmitted_bytes += overlap
            if overlap >= len(payload):
                missing -= overlap - len(payload)
                payload = b""
            else:
                payload = payload[overlap:]
            delta = 0
        if delta == 0:
            self._deliver(half, payload, missing, time)
            self._drain(half)
            return
        self.stats.out_of_order_packets += 1
        if missing:
            # Bytes beyond the snap length are unknown; only what was captured can wait.
            length = len(payload)
            if not length:
                return
        start = half.position + delta
        previous = half.segments.get(start)
        if previous is not None:
            kept = len(previous[0])
            if kept >= length:
                self.stats.retransmitted_bytes += length
                return
            half.buffered -= kept
            self.buffered_total -= kept
        else:
            bisect.insort(half.starts, start)
        half.segments[start] = (payload, time)
        half.buffered += length
        self.buffered_total += length
        if half.buffered > self.limits.max_buffered_per_connection or (
            self.buffered_total > self.limits.max_buffered_total
        ):
            self.stats.buffer_overflows += 1
            self._skip_hole(half)
        elif not half.position and half.peer_ack >= 0:
            # Before the first bytes captured of a direction caught mid-way: as bytes before
            # a direction's first segment never were, they are not waited for (sent before
            # the capture began, most likely), only reported lost.
            self._skip_hole(half)

    def _deliver(self, half: HalfStream, payload: bytes, missing: int, time: float) -> None:
        connection = half.connection
        half.delivered_at = time
        if payload:
            self.consumer.data(connection, half.direction, payload, time)
        length = len(payload) + missing
        if missing:
            self.stats.gaps += 1
            self.stats.bytes_lost += missing
            self.consumer.gap(connection, half.direction, missing, time)
        half.position += length
        half.next_seq = (half.next_seq + length) & _SEQ_MASK
        if half.fin_at >= 0 and half.position >= half.fin_at:
            self._half_finished(half, time)

    def _drain(self, half: HalfStream) -> None:
        """Deliver the buffered segments that now follow the delivered bytes. Each goes with
        the time it was captured, or that of the bytes before it when it came before them: a
        message is not older than its first byte, and the bytes after a hole given up on keep
        their own time, however long the hole was waited for."""
        starts = half.starts
        segments = half.segments
        while starts and starts[0] <= half.position:
            start = starts.pop(0)
            data, captured = segments.pop(start)
            half.buffered -= len(data)
            self.buffered_total -= len(data)
            overlap = half.position - start
            if overlap >= len(data):
                self.stats.retransmitted_bytes += len(data)
                continue
            if overlap:
                self.stats.retransmitted_bytes += overlap
                data = data[overlap:]
            delivered = half.delivered_at
            self._deliver(half, data, 0, captured if captured > delivered else delivered)
            half.hole_acked_at = -1.0

    def _skip_hole(self, half: HalfStream) -> None:
        """Give up on the bytes before the first buffered segment: report them lost, at the
        time of the bytes that follow them."""
        if not half.starts:
            return
        first = half.starts[0]
        lost = first - half.position
        if lost > 0:
            self.stats.gaps += 1
            self.stats.bytes_lost += lost
            after = half.segments[first][1]
            self.consumer.gap(half.connection, half.direction, lost, max(after, half.delivered_at))
            half.position += lost
            half.next_seq = (half.next_seq + lost) & _SEQ_MASK
        self._drain(half)

    def _check_acked_hole(self, half: HalfStream, ack: int, time: float) -> None:
        """The peer acknowledged ``ack``; past a hole of ``half`` it means the capture lost it."""
        if ((ack - half.next_seq + _HALF_RANGE) & _SEQ_MASK) - _HALF_RANGE > 0:
            if half.hole_acked_at < 0:
                half.hole_acked_at = time
            elif time - half.hole_acked_at >= self.limits.acked_hole_wait:
                self._skip_hole(half)

    # -- connection life -----------------------------------------------------------------------

    def _new_connection(
        self, key: bytes, time: float, src: bytes, dst: bytes, sport: int, dport: int, flags: int
    ) -> HalfStream:
        if len(self.table) >= 2 * self.limits.max_connections:
            self._evict_oldest(time)
        self._connection_count += 1
        self.stats.connections += 1
        connection = Connection(time)
        reverse = dst + src + dport.to_bytes(2, "big") + sport.to_bytes(2, "big")
        syn = flags & (TCP_SYN | TCP_ACK)
        if syn == TCP_SYN:
            sender_is_client, guessed = True, False
        elif syn == TCP_SYN | TCP_ACK:
            sender_is_client, guessed = False, False
        else:
            sender_is_client, guessed = self._guess_client(sport, dport)
        client = (src, sport) if sender_is_client else (dst, dport)
        server = (dst, dport) if sender_is_client else (src, sport)
        connection.info = ConnectionInfo(
            number=self._connection_count,
            client=_endpoint(*client),
            server=_endpoint(*server),
            start_time=time,
            role_guessed=guessed,
        )
        connection.roles_known = not guessed or self._ports_decide(sport, dport)
        connection.keys = (key, reverse) if sender_is_client else (reverse, key)
        client_half, server_half = connection.halves
        self.table[connection.keys[0]] = client_half
        self.table[connection.keys[1]] = server_half
        if connection.roles_known:
            self.consumer.opened(connection)
        return client_half if sender_is_client else server_half

    def _guess_client(self, sport: int, dport: int) -> tuple[bool, bool]:
        """Mid-connection: which end is the client? Returns (sender is client, guessed)."""
        if self._ports_decide(sport, dport):
            return self._server_rank(dport) < self._server_rank(sport), True
        return True, True  # decided for good by who sends payload first

    def _ports_decide(self, sport: int, dport: int) -> bool:
        return self._server_rank(sport) != self._server_rank(dport)

    def _server_rank(self, port: int) -> int:
        """Lower is more likely the server's port: a plugin's port, then a well-known one,
        then a registered one; ephemeral ports last."""
        if port in self.server_ports:
            return 0
        if port < 1024:
            return 1
        if port < 32768:
            return 2
        return 3

    def _decide_roles_by_speaker(self, half: HalfStream) -> None:
        """Ports did not tell; the first side to send payload is taken for the client."""
        connection = half.connection
        connection.roles_known = True
        if half.direction != Direction.CLIENT_TO_SERVER:
            self.swap_roles(connection)
        self.consumer.opened(connection)

    def swap_roles(self, connection: Connection) -> None:
        """Client and server were guessed the wrong way round: swap them, for what follows."""
        client_half, server_half = connection.halves
        connection.halves = (server_half, client_half)
        client_half.direction, server_half.direction = (
            Direction.SERVER_TO_CLIENT,
            Direction.CLIENT_TO_SERVER,
        )
        connection.keys = (connection.keys[1], connection.keys[0])
        info = connection.info
        info.client, info.server = info.server, info.client
        stats = connection.stats
        stats.packets.reverse()
        stats.bytes.reverse()

    def _syn(self, half: HalfStream, seq: int, flags: int) -> None:
        half.next_seq = (seq + 1) & _SEQ_MASK
        half.position = 0
        connection = half.connection
        if flags & TCP_ACK:
            connection.handshake = True
            connection.refusable = False
        elif not connection.handshake:
            connection.refusable = True

    def _rst(self, half: HalfStream, time: float) -> None:
        connection = half.connection
        refused = (
            connection.refusable
            and half.direction == Direction.SERVER_TO_CLIENT
            and not connection.stats.bytes[0]
        )
        self._close(connection, CloseReason.REFUSED if refused else CloseReason.RST, time)

    def _fin(self, half: HalfStream, fin_seq: int, time: float) -> None:
        if half.next_seq < 0:
            return
        delta = ((fin_seq - half.next_seq + _HALF_RANGE) & _SEQ_MASK) - _HALF_RANGE
        half.fin_at = half.position + max(delta, 0)
        if half.position >= half.fin_at:
            self._half_finished(half, time)

    def _half_finished(self, half: HalfStream, time: float) -> None:
        peer = half.peer
        if peer.fin_at >= 0 and peer.position >= peer.fin_at:
            self._close(half.connection, CloseReason.FIN, time)

    def _close(self, connection: Connection, reason: CloseReason, time: float) -> None:
        if connection.closed:
            return
        connection.closed = True  # before flushing: the flush may reach a FIN and close again
        if not connection.roles_known:
            connection.roles_known = True
            self.consumer.opened(connection)
        for half in connection.halves:
            while half.starts:
                self._skip_hole(half)
        self.consumer.closed(connection, reason, time)

    def _forget(self, connection: Connection) -> None:
        for key in connection.keys:
            self.table.pop(key, None)
        for half in connection.halves:
            self.buffered_total -= half.buffered
            half.buffered = 0

    def _evict_oldest(self, time: float) -> None:
        """Too many connections: end the one idle longest (approximately: the oldest)."""
        for half in self.table.values():
            connection = half.connection
            self.stats.connections_evicted += 0 if connection.closed else 1
            self._close(connection, CloseReason.OPEN, time)
            self._forget(connection)
            return

    def sweep(self, now: float) -> None:
        """Close idle connections, forget those closed a while ago, give up on holes the
        receiver acknowledged long ago. Called about once a second of capture time, and by a
        live capture when no packet arrives."""
        self._last_sweep = now
        self.consumer.expire(now)
        limits = self.limits
        for half in list(self.table.values()):
            if half.direction != Direction.CLIENT_TO_SERVER:
                continue
            connection = half.connection
            idle = now - connection.stats.last_time
            if connection.closed:
                if idle > limits.closed_linger:
                    self._forget(connection)
            elif idle > limits.idle_timeout:
                self._close(connection, CloseReason.TIMEOUT, now)
                self._forget(connection)
            else:
                for stalled in connection.halves:
                    acked = stalled.hole_acked_at
                    if acked >= 0 and now - acked >= limits.acked_hole_wait:
                        self._skip_hole(stalled)

    def finish(self, time: float) -> None:
        """End of capture: every connection still open ends as ``open``."""
        for half in list(self.table.values()):
            connection = half.connection
            if half.direction == Direction.CLIENT_TO_SERVER and not connection.closed:
                self._close(connection, CloseReason.OPEN, time)
        self.table.clear()
        self.buffered_total = 0
        # the next capture's clock starts afresh: a file recorded earlier than this one would
        # otherwise never reach the next sweep, and its requests would never time out
        self._last_sweep = 0.0
