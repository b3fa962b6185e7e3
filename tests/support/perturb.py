"""Deterministic perturbation of captured TCP segments, for reassembly tests.

A capture is handled as a list of ``(timestamp, frame bytes)`` pairs plus the
pcap link type of the frames.  :class:`Perturber` rewrites the TCP segments of
such a list the way a real network or capture point would mangle them --
reordering, duplication, overlapping retransmission, loss, resegmentation and
sequence-number wrap-around -- driven only by the ``random.Random`` it is
given, so a seed reproduces the exact output.

Every transformation except :meth:`Perturber.drop` keeps the byte stream of
each TCP direction intact (every byte that was in the capture is still carried
by at least one segment, and overlapping segments carry the same bytes), so a
correct reassembler must produce the same streams from the perturbed capture
as from the original one.  :meth:`Perturber.drop` removes whole packets, and
the reassembler must report the missing ranges as gaps.

Only "plain" TCP segments are rewritten: IPv4 or IPv6 (with any extension
headers) over Ethernet (with VLAN tags), BSD loopback, raw IP or Linux cooked
(SLL / SLL2) framing, not fragmented and not cut short by the snap length.
Every other packet is passed through unchanged.  Rewritten packets get correct
IPv4 total / IPv6 payload lengths and recomputed IPv4 header and TCP
checksums; Ethernet padding is dropped from them.
"""

from __future__ import annotations

import os
import random
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import dpkt
from dpkt.tcp import TH_ACK, TH_FIN, TH_PUSH, TH_RST, TH_SYN

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276

_SEQ_MOD = 2**32
_VLAN_ETHERTYPES = (0x8100, 0x88A8, 0x9100)
_IP_ETHERTYPES = (0x0800, 0x86DD)
_TCP_OPT_SACK = 5
_FIXED_LINK_HEADER = {
    LINKTYPE_NULL: 4,
    LINKTYPE_LOOP: 4,
    LINKTYPE_RAW: 0,
    LINKTYPE_LINUX_SLL: 16,
    LINKTYPE_LINUX_SLL2: 20,
}

Packet = tuple[float, bytes]
"""One captured packet: timestamp in seconds and the frame bytes."""

Flow = tuple[bytes, int, bytes, int]
"""One direction of a TCP connection: (src address, src port, dst address, dst port)."""


class Capture(NamedTuple):
    """The link type and the packets of one capture file."""

    linktype: int
    packets: list[Packet]


def read_pcap(path: str | os.PathLike[str]) -> Capture:
    """Read a pcap or (single-interface) pcapng file."""
    with open(path, "rb") as f:
        reader = dpkt.pcap.UniversalReader(f)
        return Capture(reader.datalink(), [(float(ts), bytes(buf)) for ts, buf in reader])


def write_pcap(
    path: str | os.PathLike[str],
    packets: Iterable[Packet],
    linktype: int,
    snaplen: int = 262144,
) -> None:
    """Write ``packets`` as a classic microsecond pcap file with ``linktype``."""
    with open(path, "wb") as f:
        writer = dpkt.pcap.Writer(f, snaplen=snaplen, linktype=linktype)
        for ts, frame in packets:
            writer.writepkt(frame, ts)


def seq_add(seq: int, delta: int) -> int:
    """Add ``delta`` to a TCP sequence number, modulo 2**32."""
    return (seq + delta) % _SEQ_MOD


def seq_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` between two TCP sequence numbers (RFC 1982 style)."""
    return (a - b + 2**31) % _SEQ_MOD - 2**31


@dataclass(frozen=True)
class Segment:
    """A TCP segment that carries payload, as found by :meth:`Perturber.segments`."""

    index: int
    """Position of the packet in the packet list."""
    flow: Flow
    seq: int
    flags: int
    payload: bytes


class _Decoded(NamedTuple):
    link: bytes
    ip: dpkt.ip.IP | dpkt.ip6.IP6
    tcp: dpkt.tcp.TCP

    @property
    def flow(self) -> Flow:
        return (self.ip.src, self.tcp.sport, self.ip.dst, self.tcp.dport)


def _l3_offset(linktype: int, frame: bytes) -> int | None:
    """Offset of the IP header in ``frame``, or None if it is not IP."""
    if linktype != LINKTYPE_ETHERNET:
        return _FIXED_LINK_HEADER.get(linktype)
    offset = 12
    while len(frame) >= offset + 2:
        (ethertype,) = struct.unpack_from(">H", frame, offset)
        if ethertype not in _VLAN_ETHERTYPES:
            return offset + 2 if ethertype in _IP_ETHERTYPES else None
        offset += 4
    return None


def _decode(linktype: int, frame: bytes) -> _Decoded | None:
    """Split a frame into link header, IP and TCP, or None if it is not a plain TCP segment."""
    offset = _l3_offset(linktype, frame)
    if offset is None or len(frame) <= offset:
        return None
    l3 = frame[offset:]
    ip: dpkt.ip.IP | dpkt.ip6.IP6
    try:
        if l3[0] >> 4 == 4:
            ip = dpkt.ip.IP(l3)
            if ip.mf or ip.offset or ip.len > len(l3):
                return None
        elif l3[0] >> 4 == 6:
            ip = dpkt.ip6.IP6(l3)
            if 44 in ip.extension_hdrs or 40 + ip.plen > len(l3):
                return None
        else:
            return None
    except dpkt.UnpackError:
        return None
    if not isinstance(ip.data, dpkt.tcp.TCP):
        return None
    return _Decoded(frame[:offset], ip, ip.data)


def _encode(decoded: _Decoded) -> bytes:
    """Serialize with fresh lengths and checksums."""
    ip, tcp = decoded.ip, decoded.tcp
    ip.data = tcp
    tcp.sum = 0
    if isinstance(ip, dpkt.ip.IP):
        ip.sum = 0  # makes dpkt recompute ip.len, ip.sum and tcp.sum
    else:
        ip.plen = len(ip) - ip.__hdr_len__
    return decoded.link + bytes(ip)


def _shift_sack(opts: bytes, delta: int) -> bytes:
    """Return TCP options with every SACK block edge moved by ``delta``."""
    out = bytearray(opts)
    i = 0
    while i < len(out):
        kind = out[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(out) or out[i + 1] < 2:
            break
        length = out[i + 1]
        if kind == _TCP_OPT_SACK:
            for edge in range(i + 2, min(i + length, len(out)) - 3, 4):
                (value,) = struct.unpack_from(">I", out, edge)
                struct.pack_into(">I", out, edge, seq_add(value, delta))
        i += length
    return bytes(out)


class _Stream:
    """What the original capture holds of one direction, by offset from a base sequence number."""

    def __init__(self, segments: Sequence[Segment]) -> None:
        self.base = segments[0].seq
        rel = [(seq_diff(s.seq, self.base), s.payload) for s in segments]
        self.start = min(r for r, _ in rel)
        end = max(r + len(p) for r, p in rel)
        self.data = bytearray(end - self.start)
        self.have = bytearray(end - self.start)
        for r, payload in rel:
            self.data[r - self.start : r - self.start + len(payload)] = payload
            self.have[r - self.start : r - self.start + len(payload)] = b"\x01" * len(payload)

    def offset(self, seq: int) -> int:
        """Index into ``data`` of the byte with sequence number ``seq``."""
        return seq_diff(seq, self.base) - self.start

    def run_before(self, index: int, limit: int) -> int:
        """Number of known bytes (at most ``limit``) ending right before ``index``."""
        n = 0
        while n < limit and index - n - 1 >= 0 and self.have[index - n - 1]:
            n += 1
        return n

    def run_after(self, index: int, limit: int) -> int:
        """Number of known bytes (at most ``limit``) starting at ``index``."""
        n = 0
        while n < limit and index + n < len(self.have) and self.have[index + n]:
            n += 1
        return n


class Perturber:
    """Seeded TCP-segment perturbations of the packets of one capture.

    Each method takes a packet list and returns a new one; the input is not
    modified, and methods can be chained.  "Data segment" below means a plain
    TCP segment with at least one payload byte; pure ACK/SYN/FIN/RST segments
    are never moved, copied or dropped (only renumbered by
    :meth:`wrap_sequence`).
    """

    def __init__(self, rng: random.Random, linktype: int = LINKTYPE_ETHERNET) -> None:
        self.rng = rng
        self.linktype = linktype

    def segments(self, packets: Sequence[Packet]) -> list[Segment]:
        """The data segments in ``packets``, in packet order."""
        found = []
        for index, (_, frame) in enumerate(packets):
            decoded = _decode(self.linktype, frame)
            if decoded is not None and decoded.tcp.data:
                found.append(
                    Segment(
                        index,
                        decoded.flow,
                        decoded.tcp.seq,
                        decoded.tcp.flags,
                        bytes(decoded.tcp.data),
                    )
                )
        return found

    def _decode_segment(self, frame: bytes) -> _Decoded:
        decoded = _decode(self.linktype, frame)
        if decoded is None:
            raise ValueError("not a plain TCP segment")
        return decoded

    def reorder(self, packets: Sequence[Packet], window: int) -> list[Packet]:
        """Shuffle data segments within consecutive blocks of ``window`` data segments.

        Non-data packets keep their positions, and every position keeps its
        timestamp, so timestamps stay non-decreasing; a data segment moves by
        fewer than ``window`` places among the data segments.
        """
        if window < 1:
            raise ValueError("window must be >= 1")
        out = list(packets)
        slots = [s.index for s in self.segments(packets)]
        for start in range(0, len(slots), window):
            block = slots[start : start + window]
            shuffled = block[:]
            self.rng.shuffle(shuffled)
            for dst, src in zip(block, shuffled, strict=True):
                out[dst] = (packets[dst][0], packets[src][1])
        return out

    def duplicate(self, packets: Sequence[Packet], prob: float) -> list[Packet]:
        """Follow each data segment, with probability ``prob``, by an exact copy."""
        chosen = {s.index for s in self.segments(packets) if self.rng.random() < prob}
        out: list[Packet] = []
        for index, packet in enumerate(packets):
            out.append(packet)
            if index in chosen:
                out.append(packet)
        return out

    def overlap(
        self, packets: Sequence[Packet], prob: float, max_overlap: int = 64
    ) -> list[Packet]:
        """Re-send data segments with ranges that overlap their neighbours.

        With probability ``prob`` a data segment is replaced by one that
        starts 1..``max_overlap`` bytes earlier (overlapping the data before
        it) and ends 0..``max_overlap`` bytes later (overlapping the data
        after it), carrying the same bytes as the rest of the capture for the
        overlapping parts.  Segments with SYN, FIN or RST, and segments with
        no captured byte right before them, are left alone.
        """
        segments = self.segments(packets)
        by_flow: dict[Flow, list[Segment]] = {}
        for s in segments:
            by_flow.setdefault(s.flow, []).append(s)
        streams = {flow: _Stream(segs) for flow, segs in by_flow.items()}
        out = list(packets)
        for s in segments:
            if s.flags & (TH_SYN | TH_FIN | TH_RST) or self.rng.random() >= prob:
                continue
            stream = streams[s.flow]
            start = stream.offset(s.seq)
            end = start + len(s.payload)
            before = stream.run_before(start, max_overlap)
            if not before:
                continue
            new_start = start - self.rng.randint(1, before)
            new_end = end + self.rng.randint(0, stream.run_after(end, max_overlap))
            ts, frame = packets[s.index]
            decoded = self._decode_segment(frame)
            decoded.tcp.seq = seq_add(s.seq, new_start - start)
            decoded.tcp.data = bytes(stream.data[new_start:new_end])
            out[s.index] = (ts, _encode(decoded))
        return out

    def drop(self, packets: Sequence[Packet], indices: Iterable[int]) -> list[Packet]:
        """Remove the data segments at packet positions ``indices`` (with any flags they carry)."""
        chosen = set(indices)
        unknown = chosen - {s.index for s in self.segments(packets)}
        if unknown:
            raise ValueError(f"not data segments: {sorted(unknown)}")
        return [p for i, p in enumerate(packets) if i not in chosen]

    def split(self, packets: Sequence[Packet], max_len: int) -> list[Packet]:
        """Cut every data segment longer than ``max_len`` into consecutive segments.

        The pieces share the original timestamp and header; PSH and FIN stay
        on the last piece only.  Segments with SYN or RST are not split.
        """
        if max_len < 1:
            raise ValueError("max_len must be >= 1")
        to_split = {
            s.index: s
            for s in self.segments(packets)
            if len(s.payload) > max_len and not s.flags & (TH_SYN | TH_RST)
        }
        out: list[Packet] = []
        for index, (ts, frame) in enumerate(packets):
            s = to_split.get(index)
            if s is None:
                out.append((ts, frame))
                continue
            decoded = self._decode_segment(frame)
            for start in range(0, len(s.payload), max_len):
                last = start + max_len >= len(s.payload)
                decoded.tcp.flags = s.flags if last else s.flags & ~(TH_PUSH | TH_FIN)
                decoded.tcp.seq = seq_add(s.seq, start)
                decoded.tcp.data = s.payload[start : start + max_len]
                out.append((ts, _encode(decoded)))
        return out

    def wrap_sequence(self, packets: Sequence[Packet]) -> list[Packet]:
        """Renumber every TCP connection so that each direction wraps past 2**32 mid-stream.

        Each direction is shifted by its own constant, chosen so that the
        middle byte of its captured data gets sequence number 0; the
        acknowledgement numbers and SACK blocks of the opposite direction are
        shifted by the same constant.
        """
        first: dict[Flow, int] = {}
        span: dict[Flow, tuple[int, int]] = {}
        for _, frame in packets:
            decoded = _decode(self.linktype, frame)
            if decoded is None:
                continue
            flow, tcp = decoded.flow, decoded.tcp
            base = first.setdefault(flow, tcp.seq)
            start = seq_diff(tcp.seq, base)
            lo, hi = span.get(flow, (start, start))
            span[flow] = (min(lo, start), max(hi, start + len(tcp.data)))
        delta = {
            flow: (-(first[flow] + (lo + hi) // 2)) % _SEQ_MOD for flow, (lo, hi) in span.items()
        }
        out: list[Packet] = []
        for ts, frame in packets:
            decoded = _decode(self.linktype, frame)
            if decoded is None:
                out.append((ts, frame))
                continue
            flow, tcp = decoded.flow, decoded.tcp
            back = delta.get((flow[2], flow[3], flow[0], flow[1]), 0)
            tcp.seq = seq_add(tcp.seq, delta[flow])
            if tcp.flags & TH_ACK:
                tcp.ack = seq_add(tcp.ack, back)
            tcp.opts = _shift_sack(tcp.opts, back)
            out.append((ts, _encode(decoded)))
        return out
