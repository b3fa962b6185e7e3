"""From a captured frame to a TCP segment: link layer, IPv4/IPv6 and TCP headers.

This is the per-packet hot path, so headers are read with ``struct`` straight from the captured
buffer instead of building dpkt objects (those cost several microseconds a packet). IP
fragments are rare and take a slower path that joins them first.
"""

from __future__ import annotations

import struct
from typing import Final

# Link types as libpcap reports them (DLT_*) and as files store them (LINKTYPE_*).
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW_DLT = 12
LINKTYPE_RAW_OPENBSD = 14
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

SUPPORTED_LINKTYPES = {
    LINKTYPE_NULL: "BSD loopback",
    LINKTYPE_ETHERNET: "Ethernet",
    LINKTYPE_RAW_DLT: "raw IP",
    LINKTYPE_RAW_OPENBSD: "raw IP",
    LINKTYPE_RAW: "raw IP",
    LINKTYPE_LOOP: "OpenBSD loopback",
    LINKTYPE_LINUX_SLL: "Linux cooked (SLL)",
    LINKTYPE_IPV4: "raw IPv4",
    LINKTYPE_IPV6: "raw IPv6",
    LINKTYPE_LINUX_SLL2: "Linux cooked v2 (SLL2)",
}

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_VLAN = 0x8100
ETHERTYPE_QINQ = 0x88A8
ETHERTYPE_QINQ_OLD = 0x9100

IPPROTO_TCP = 6
IPV6_EXTENSION_HEADERS = {
    0,
    43,
    60,
    135,
    139,
    140,
}  # hop-by-hop, routing, dst opts, mobility, HIP, shim6
IPV6_FRAGMENT = 44
IPV6_AH = 51
IPV6_NO_NEXT = 59

TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_ACK = 0x10

_TCP_HEADER = struct.Struct("!HHIIH")
_BSD_AF_INET6 = {24, 28, 30}

Segment = tuple[bytes, bytes, int, int, int, int, int, bytes, int, bytes]
"""``(src, dst, sport, dport, seq, ack, flags, payload, missing, signature)``: addresses as
packed bytes, ``missing`` the payload bytes the snap length cut off, ``signature`` header
bytes (IPv4: the header from its total length on, IPv6: the payload length; then TCP ports,
sequence, acknowledgement and flags) that tell the same packet captured twice."""


class UnsupportedLinkType(ValueError):
    """The capture's link type is not one Mizu decodes."""


DECODE_COUNTERS: Final = (
    "frames",
    "frame_bytes",
    "not_ip",
    "not_tcp",
    "malformed",
    "snaplen_cut",
    "fragments",
    "fragments_reassembled",
    "fragments_dropped",
)
"""The decoder's counters, in the order its stats report them."""


class DecodeStats:
    """What the decoder counted. A plain class, not a dataclass: making a dataclass executes
    generated source at import, a few million instructions of every command's start-up."""

    __slots__ = (
        "fragments",
        "fragments_dropped",
        "fragments_reassembled",
        "frame_bytes",
        "frames",
        "malformed",
        "not_ip",
        "not_tcp",
        "snaplen_cut",
    )

    def __init__(self) -> None:
        self.frames = 0
        self.frame_bytes = 0
        self.not_ip = 0
        self.not_tcp = 0
        self.malformed = 0
        self.snaplen_cut = 0
        self.fragments = 0
        self.fragments_reassembled = 0
        self.fragments_dropped = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in DECODE_COUNTERS}

    def add(self, other: DecodeStats) -> None:
        for name in DECODE_COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class _PendingDatagram:
    __slots__ = ("first_time", "header", "pieces", "size", "total")

    def __init__(self, first_time: float) -> None:
        self.first_time = first_time
        self.header = b""
        self.pieces: dict[int, bytes] = {}
        self.total = -1
        self.size = 0


class FragmentJoiner:
    """Joins IPv4 and IPv6 fragments; bounded in datagrams, bytes and time."""

    def __init__(
        self, max_datagrams: int = 1024, max_bytes: int = 16 << 20, timeout: float = 30.0
    ) -> None:
        self.max_datagrams = max_datagrams
        self.max_bytes = max_bytes
        self.timeout = timeout
        self._pending: dict[tuple[bytes, ...], _PendingDatagram] = {}
        self._bytes = 0

    def add(
        self,
        key: tuple[bytes, ...],
        header: bytes,
        offset: int,
        more: bool,
        data: bytes,
        timestamp: float,
        stats: DecodeStats,
    ) -> bytes | None:
        """Store one fragment; returns the whole payload once every piece is there."""
        stats.fragments += 1
        pending = self._pending.get(key)
        if pending is None:
            if len(self._pending) >= self.max_datagrams or self._bytes + len(data) > self.max_bytes:
                self._evict(timestamp, stats)
            pending = self._pending[key] = _PendingDatagram(first_time=timestamp)
        if offset == 0:
            pending.header = header
        if not more:
            pending.total = offset + len(data)
        if offset not in pending.pieces:
            pending.pieces[offset] = data
            pending.size += len(data)
            self._bytes += len(data)
        if pending.total < 0 or pending.size < pending.total or not pending.header:
            return None
        payload = bytearray(pending.total)
        covered = 0
        for piece_offset in sorted(pending.pieces):
            if piece_offset > covered:
                return None  # overlapping pieces made up the count, but a hole remains
            piece = pending.pieces[piece_offset][: pending.total - piece_offset]
            payload[piece_offset : piece_offset + len(piece)] = piece
            covered = max(covered, piece_offset + len(piece))
        if covered < pending.total:
            return None
        del self._pending[key]
        self._bytes -= pending.size
        stats.fragments_reassembled += 1
        return bytes(payload)

    def _evict(self, now: float, stats: DecodeStats) -> None:
        stale = [k for k, p in self._pending.items() if now - p.first_time > self.timeout]
        if not stale and self._pending:
            stale = [min(self._pending, key=lambda k: self._pending[k].first_time)]
        for key in stale:
            pending = self._pending.pop(key)
            self._bytes -= pending.size
            stats.fragments_dropped += 1


def network_offset(linktype: int, buf: bytes) -> int:
    """Where the IP header of a ``linktype`` frame starts, or -1 for a frame that carries no IP
    (raises ``IndexError`` or ``struct.error`` on a frame cut short)."""
    if linktype == LINKTYPE_ETHERNET:
        ethertype = buf[12] << 8 | buf[13]
        offset = 14
        while ethertype in (ETHERTYPE_VLAN, ETHERTYPE_QINQ, ETHERTYPE_QINQ_OLD):
            ethertype = buf[offset + 2] << 8 | buf[offset + 3]
            offset += 4
        return offset if ethertype in (ETHERTYPE_IPV4, ETHERTYPE_IPV6) else -1
    if linktype == LINKTYPE_LINUX_SLL:
        ethertype = buf[14] << 8 | buf[15]
        return 16 if ethertype in (ETHERTYPE_IPV4, ETHERTYPE_IPV6) else -1
    if linktype == LINKTYPE_LINUX_SLL2:
        ethertype = buf[0] << 8 | buf[1]
        return 20 if ethertype in (ETHERTYPE_IPV4, ETHERTYPE_IPV6) else -1
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        family = struct.unpack_from("<I" if linktype == LINKTYPE_NULL else "!I", buf)[0]
        if family > 0xFFFF:  # written on a host of the other byte order
            family = struct.unpack_from(">I" if linktype == LINKTYPE_NULL else "<I", buf)[0]
        return 4 if family == 2 or family in _BSD_AF_INET6 else -1
    return 0  # raw IP, IPv4, IPv6


def skip_ipv6_options(buf: bytes, next_header: int, offset: int) -> tuple[int, int]:
    """Past the IPv6 extension headers that carry options (hop-by-hop, routing, destination,
    AH, ...): the first other header (TCP, a fragment header, ...) and where it starts."""
    while True:
        if next_header in IPV6_EXTENSION_HEADERS:
            next_header, offset = buf[offset], offset + (buf[offset + 1] + 1) * 8
        elif next_header == IPV6_AH:
            next_header, offset = buf[offset], offset + (buf[offset + 1] + 2) * 4
        else:
            return next_header, offset


def ipv4_fragment_key(buf: bytes, ip: int) -> tuple[bytes, ...]:
    """What the fragments of one IPv4 datagram share: addresses, identification, protocol."""
    return (buf[ip + 12 : ip + 20], buf[ip + 4 : ip + 6], buf[ip + 9 : ip + 10])


def ipv6_fragment_key(src: bytes, dst: bytes, buf: bytes, fragment: int) -> tuple[bytes, ...]:
    """What the fragments of one IPv6 datagram share: addresses and the fragment header's
    identification (``fragment``: where that header starts)."""
    return (src, dst, buf[fragment + 4 : fragment + 8])


class Decoder:
    """Decodes frames of one link type into TCP segments, counting everything it skips."""

    def __init__(self, linktype: int) -> None:
        if linktype not in SUPPORTED_LINKTYPES:
            supported = ", ".join(f"{v} ({k})" for k, v in sorted(SUPPORTED_LINKTYPES.items()))
            raise UnsupportedLinkType(
                f"link type {linktype} is not supported; Mizu decodes {supported}"
            )
        self.linktype = linktype
        self.stats = DecodeStats()
        self.fragments = FragmentJoiner()

    def decode(self, buf: bytes, timestamp: float) -> Segment | None:
        """The TCP segment in ``buf``, or ``None`` (counted) when there is none."""
        self.stats.frames += 1
        try:
            offset = network_offset(self.linktype, buf)
            if offset < 0:
                self.stats.not_ip += 1
                return None
            version = buf[offset] >> 4
            if version == 4:
                return self._ipv4(buf, offset, timestamp)
            if version == 6:
                return self._ipv6(buf, offset, timestamp)
            self.stats.not_ip += 1
            return None
        except (IndexError, struct.error):
            self.stats.malformed += 1
            return None

    def _ipv4(self, buf: bytes, ip: int, timestamp: float) -> Segment | None:
        header_len = (buf[ip] & 0x0F) * 4
        total_len = buf[ip + 2] << 8 | buf[ip + 3]
        if header_len < 20:
            self.stats.malformed += 1
            return None
        flags_fragment = buf[ip + 6] << 8 | buf[ip + 7]
        protocol = buf[ip + 9]
        if flags_fragment & 0x3FFF:
            # More-fragments set or a non-zero offset: join the datagram first.
            end = ip + total_len if total_len else len(buf)
            if end > len(buf):
                self.stats.snaplen_cut += 1
                self.stats.fragments_dropped += 1
                return None
            payload = self.fragments.add(
                ipv4_fragment_key(buf, ip),
                bytes(buf[ip : ip + header_len]),
                (flags_fragment & 0x1FFF) * 8,
                bool(flags_fragment & 0x2000),
                bytes(buf[ip + header_len : end]),
                timestamp,
                self.stats,
            )
            if payload is None:
                return None
            buf = buf[ip : ip + header_len] + payload
            ip = 0
            total_len = len(buf)
        if protocol != IPPROTO_TCP:
            self.stats.not_tcp += 1
            return None
        # A zero total length is what segmentation offload leaves on outgoing frames.
        end = ip + total_len if total_len else len(buf)
        tcp = ip + header_len
        return self._tcp(
            buf,
            tcp,
            end,
            buf[ip + 12 : ip + 16],
            buf[ip + 16 : ip + 20],
            buf[ip + 2 : ip + 20] + buf[tcp : tcp + 14],
        )

    def _ipv6(self, buf: bytes, ip: int, timestamp: float) -> Segment | None:
        length = buf[ip + 4 : ip + 6]
        payload_len = length[0] << 8 | length[1]
        next_header = buf[ip + 6]
        src = buf[ip + 8 : ip + 24]
        dst = buf[ip + 24 : ip + 40]
        end = ip + 40 + payload_len if payload_len else len(buf)
        offset = ip + 40
        while True:
            next_header, offset = skip_ipv6_options(buf, next_header, offset)
            if next_header == IPPROTO_TCP:
                break
            if next_header != IPV6_FRAGMENT:
                self.stats.not_tcp += 1
                return None
            if end > len(buf):
                self.stats.snaplen_cut += 1
                self.stats.fragments_dropped += 1
                return None
            fragment_field = buf[offset + 2] << 8 | buf[offset + 3]
            payload = self.fragments.add(
                ipv6_fragment_key(src, dst, buf, offset),
                bytes((buf[offset],)),
                fragment_field & 0xFFF8,
                bool(fragment_field & 1),
                bytes(buf[offset + 8 : end]),
                timestamp,
                self.stats,
            )
            if payload is None:
                return None
            next_header = buf[offset]
            buf, offset, end = payload, 0, len(payload)
        return self._tcp(buf, offset, end, src, dst, length + buf[offset : offset + 14])

    def _tcp(
        self, buf: bytes, tcp: int, end: int, src: bytes, dst: bytes, signature: bytes
    ) -> Segment | None:
        sport, dport, seq, ack, offset_flags = _TCP_HEADER.unpack_from(buf, tcp)
        data_offset = (offset_flags >> 12) * 4
        if data_offset < 20:
            self.stats.malformed += 1
            return None
        start = tcp + data_offset
        if start > end:
            self.stats.malformed += 1
            return None
        # Past the snap length: what was captured, and how many bytes were not.
        captured_end = max(min(end, len(buf)), start)
        missing = end - captured_end
        if missing:
            self.stats.snaplen_cut += 1
        payload = bytes(buf[start:captured_end])
        return (src, dst, sport, dport, seq, ack, offset_flags & 0x1FF, payload, missing, signature)
