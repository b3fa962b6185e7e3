"""Tests for :mod:`perturb`: the perturbed captures are read back with dpkt and
reassembled by a deliberately trivial reference implementation, which must
find the original byte streams again (or, after ``drop``, exactly the
dropped bytes missing).

The reference reassembler is also checked against the tshark oracles
(``*.streams.json``) of the captures in ``tests/data/core``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import itertools
import json
import random
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .perturb import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    Capture,
    Flow,
    Packet,
    Perturber,
    read_pcap,
    seq_diff,
    write_pcap,
)

CORE = Path(__file__).resolve().parents[1] / "data" / "core"

# Captures the perturbation tests run on: IPv4 and IPv6 (with extension headers),
# Ethernet with and without VLAN tag, raw IP, BSD loopback, Linux SLL/SLL2, RSTs.
CAPTURES = [
    "http11-keepalive.pcap",
    "http11-ipv6-exthdrs.pcap",
    "http11-keepalive-vlan.pcap",
    "http11-keepalive-raw.pcap",
    "http11-keepalive-null.pcap",
    "linux-sll.pcap",
    "linux-sll2.pcap",
    "rst-and-refused.pcap",
]
# The reference reassembler does no IP defragmentation.
ORACLES = sorted(p for p in CORE.glob("*.streams.json") if "ipfrag" not in p.name)

SEEDS = st.integers(min_value=0, max_value=2**32 - 1)
PROPERTY = settings(max_examples=8, deadline=None)


# --- reference implementation ------------------------------------------------------------------


def tcp_of(linktype: int, frame: bytes) -> tuple[dpkt.Packet, dpkt.tcp.TCP] | None:
    """(IP, TCP) of a frame, using dpkt's own link-layer decoders; None if not unfragmented TCP."""
    if linktype == LINKTYPE_ETHERNET:
        ip = dpkt.ethernet.Ethernet(frame).data
    elif linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        ip = dpkt.loopback.Loopback(frame).data
    elif linktype == LINKTYPE_RAW:
        ip = dpkt.ip.IP(frame) if frame[0] >> 4 == 4 else dpkt.ip6.IP6(frame)
    elif linktype == LINKTYPE_LINUX_SLL:
        ip = dpkt.sll.SLL(frame).data
    elif linktype == LINKTYPE_LINUX_SLL2:
        ip = dpkt.sll2.SLL2(frame).data
    else:
        raise ValueError(f"linktype {linktype}")
    if isinstance(ip, dpkt.ip.IP) and (ip.mf or ip.offset):
        return None
    if isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6) and isinstance(ip.data, dpkt.tcp.TCP):
        return ip, ip.data
    return None


@dataclass
class Stream:
    """One reassembled direction: bytes by offset from ``base``, the sequence number after SYN."""

    base: int
    data: bytearray
    have: bytearray  # 0xff where a byte was seen

    def missing(self, length: int) -> list[tuple[int, int]]:
        """Half-open ranges in [0, length) that no segment covered."""
        have = self.have[:length] + bytes(max(0, length - len(self.have)))
        return [m.span() for m in re.finditer(rb"\x00+", have)]

    def complete(self) -> bytes:
        """The bytes, asserting there is no hole."""
        assert not self.missing(len(self.have)), "holes in the stream"
        return bytes(self.data)


def reassemble(linktype: int, packets: Sequence[Packet]) -> dict[Flow, Stream]:
    """Reassemble every TCP direction; fail if overlapping segments disagree on a byte."""
    syn: dict[Flow, int] = {}
    chunks: dict[Flow, list[tuple[int, bytes]]] = {}
    for _, frame in packets:
        decoded = tcp_of(linktype, frame)
        if decoded is None:
            continue
        ip, tcp = decoded
        flow = (ip.src, tcp.sport, ip.dst, tcp.dport)
        if tcp.flags & dpkt.tcp.TH_SYN:
            syn[flow] = (tcp.seq + 1) % 2**32
        if tcp.data:
            chunks.setdefault(flow, []).append((tcp.seq, bytes(tcp.data)))
    streams = {}
    for flow, parts in chunks.items():
        first = parts[0][0]
        base = syn.get(flow, min((p[0] for p in parts), key=lambda s: seq_diff(s, first)))
        end = max(seq_diff(seq, base) + len(payload) for seq, payload in parts)
        stream = Stream(base, bytearray(end), bytearray(end))
        for seq, payload in parts:
            a = seq_diff(seq, base)
            assert a >= 0, "data before the start of the stream"
            b = a + len(payload)
            mask = int.from_bytes(stream.have[a:b])
            old, new = int.from_bytes(stream.data[a:b]), int.from_bytes(payload)
            assert (old ^ new) & mask == 0, f"segments disagree on bytes in [{a}, {b})"
            stream.data[a:b] = payload
            stream.have[a:b] = b"\xff" * len(payload)
        streams[flow] = stream
    return streams


def complete(streams: dict[Flow, Stream]) -> dict[Flow, bytes]:
    """The streams as bytes, asserting they have no holes."""
    return {flow: stream.complete() for flow, stream in streams.items()}


# --- helpers ----------------------------------------------------------------------------------


@cache
def load(name: str) -> Capture:
    return read_pcap(CORE / name)


def perturber(name: str, seed: int) -> Perturber:
    return Perturber(random.Random(seed), load(name).linktype)


@cache
def original(name: str) -> dict[Flow, bytes]:
    capture = load(name)
    return complete(reassemble(capture.linktype, capture.packets))


def assert_well_formed(linktype: int, before: Sequence[Packet], after: Sequence[Packet]) -> None:
    """Rewritten packets have exact IP lengths and a valid IPv4 header checksum."""
    untouched = {frame for _, frame in before}
    for _, frame in after:
        decoded = tcp_of(linktype, frame)
        if frame in untouched or decoded is None:
            continue
        ip = decoded[0]
        raw = bytes(ip)  # dpkt re-serializes from the header fields as found in the frame
        assert frame.endswith(raw)
        if isinstance(ip, dpkt.ip.IP):
            assert ip.len == len(raw)
            assert dpkt.in_cksum(raw[: ip.hl * 4]) == 0
        else:
            assert ip.plen == len(raw) - 40


# --- tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("oracle", ORACLES, ids=lambda p: p.name)
def test_reference_reassembly_agrees_with_tshark(oracle: Path) -> None:
    expected = json.loads(oracle.read_text())
    capture = read_pcap(CORE / expected["capture"])
    streams = {
        (
            ipaddress.ip_address(f[0]).compressed,
            f[1],
            ipaddress.ip_address(f[2]).compressed,
            f[3],
        ): s
        for f, s in reassemble(capture.linktype, capture.packets).items()
    }
    for entry in expected["streams"]:
        client = (entry["client"]["ip"], entry["client"]["port"])
        server = (entry["server"]["ip"], entry["server"]["port"])
        for key, src, dst in (
            ("client_to_server", client, server),
            ("server_to_client", server, client),
        ):
            stream = streams.get((*src, *dst))
            got = b"" if stream is None else stream.complete()
            assert len(got) == entry[key]["length"], (entry["stream"], key)
            assert hashlib.sha256(got).hexdigest() == entry[key]["sha256"], (entry["stream"], key)


def test_read_write_roundtrip(tmp_path: Path) -> None:
    capture = load("linux-sll2.pcap")
    write_pcap(tmp_path / "copy.pcap", capture.packets, capture.linktype)
    copy = read_pcap(tmp_path / "copy.pcap")
    assert copy.linktype == capture.linktype
    assert [f for _, f in copy.packets] == [f for _, f in capture.packets]
    assert all(abs(a[0] - b[0]) < 1e-6 for a, b in zip(copy.packets, capture.packets, strict=True))


@pytest.mark.parametrize("name", CAPTURES)
@PROPERTY
@given(seed=SEEDS, window=st.integers(min_value=1, max_value=10))
def test_reorder_preserves_streams(name: str, seed: int, window: int) -> None:
    packets = load(name).packets
    p = perturber(name, seed)
    out = p.reorder(packets, window)
    assert complete(reassemble(p.linktype, out)) == original(name)
    assert [ts for ts, _ in out] == [ts for ts, _ in packets]
    assert sorted(f for _, f in out) == sorted(f for _, f in packets)
    slots = [s.index for s in p.segments(packets)]
    position = {frame: rank for rank, frame in enumerate(packets[i][1] for i in slots)}
    for rank, i in enumerate(slots):
        assert abs(position[out[i][1]] - rank) < window


@pytest.mark.parametrize("name", CAPTURES)
@PROPERTY
@given(seed=SEEDS, prob=st.floats(min_value=0, max_value=1))
def test_duplicate_preserves_streams(name: str, seed: int, prob: float) -> None:
    packets = load(name).packets
    p = perturber(name, seed)
    out = p.duplicate(packets, prob)
    assert complete(reassemble(p.linktype, out)) == original(name)
    copies = len(out) - len(packets)
    assert len(p.segments(out)) == len(p.segments(packets)) + copies
    if prob == 1:
        assert copies == len(p.segments(packets))


@pytest.mark.parametrize("name", CAPTURES)
@PROPERTY
@given(seed=SEEDS, prob=st.floats(min_value=0, max_value=1))
def test_overlap_preserves_streams(name: str, seed: int, prob: float) -> None:
    packets = load(name).packets
    p = perturber(name, seed)
    out = p.overlap(packets, prob)
    assert complete(reassemble(p.linktype, out)) == original(name)
    assert_well_formed(p.linktype, packets, out)
    before = {s.index: s for s in p.segments(packets)}
    after = {s.index: s for s in p.segments(out)}
    assert before.keys() == after.keys()
    for index, new in after.items():
        old = before[index]
        if new != old:  # starts earlier and carries the old payload inside
            shift = seq_diff(old.seq, new.seq)
            assert shift > 0 and new.payload[shift : shift + len(old.payload)] == old.payload


def test_overlap_overlaps() -> None:
    packets = load("http11-keepalive.pcap").packets
    p = perturber("http11-keepalive.pcap", 1)
    out = p.overlap(packets, 0.5)
    changed = sum(a != b for a, b in zip(packets, out, strict=True))
    assert changed > 10
    overlaps = 0
    for flow in {s.flow for s in p.segments(out)}:
        seqs = [(s.seq, len(s.payload)) for s in p.segments(out) if s.flow == flow]
        ranges = sorted((seq_diff(seq, seqs[0][0]), n) for seq, n in seqs)
        overlaps += sum(b[0] < a[0] + a[1] for a, b in itertools.pairwise(ranges))
    assert overlaps > 0


@pytest.mark.parametrize("name", CAPTURES)
@PROPERTY
@given(seed=SEEDS, max_len=st.integers(min_value=64, max_value=1500))
def test_split_preserves_streams(name: str, seed: int, max_len: int) -> None:
    packets = load(name).packets
    p = perturber(name, seed)
    out = p.split(packets, max_len)
    assert complete(reassemble(p.linktype, out)) == original(name)
    assert_well_formed(p.linktype, packets, out)
    assert all(len(s.payload) <= max_len for s in p.segments(out))
    total = sum(len(s.payload) for s in p.segments(packets))
    assert sum(len(s.payload) for s in p.segments(out)) == total


@pytest.mark.parametrize("name", CAPTURES)
def test_wrap_sequence_preserves_streams_and_wraps(name: str) -> None:
    packets = load(name).packets
    p = perturber(name, 0)
    out = p.wrap_sequence(packets)
    assert complete(reassemble(p.linktype, out)) == original(name)
    assert_well_formed(p.linktype, packets, out)
    for flow, stream in reassemble(p.linktype, packets).items():
        if len(stream.data) < 2:
            continue
        seqs = [s.seq for s in p.segments(out) if s.flow == flow]
        ends = [(s.seq + len(s.payload)) % 2**32 for s in p.segments(out) if s.flow == flow]
        assert max(seqs) >= 2**31 and min(ends) < 2**31, "did not wrap"
    # every ACK still acknowledges a point of the (shifted) opposite direction
    syn_seq = {}
    for _, frame in out:
        decoded = tcp_of(p.linktype, frame)
        if decoded is None:
            continue
        ip, tcp = decoded
        if tcp.flags & dpkt.tcp.TH_SYN:
            syn_seq[(ip.src, tcp.sport, ip.dst, tcp.dport)] = tcp.seq
        reverse = (ip.dst, tcp.dport, ip.src, tcp.sport)
        if tcp.flags & dpkt.tcp.TH_ACK and reverse in syn_seq:
            assert 0 <= seq_diff(tcp.ack, syn_seq[reverse]) <= 2**20


def test_wrap_sequence_shifts_sack_blocks() -> None:
    a, b = b"\x7f\x00\x00\x01", b"\x7f\x00\x00\x02"
    sack = dpkt.tcp.TCP(
        sport=80,
        dport=4000,
        seq=5001,
        ack=1001,
        flags=dpkt.tcp.TH_ACK,
        opts=b"\x01\x01\x05\x0a" + struct.pack(">II", 1004, 1006),
    )
    sack.off = 8
    segments = [
        dpkt.tcp.TCP(sport=4000, dport=80, seq=1000, flags=dpkt.tcp.TH_SYN),
        dpkt.tcp.TCP(sport=80, dport=4000, seq=5000, ack=1001, flags=dpkt.tcp.TH_SYN | 0x10),
        dpkt.tcp.TCP(sport=4000, dport=80, seq=1004, ack=5001, flags=0x18, data=b"lo"),
        sack,
        dpkt.tcp.TCP(sport=4000, dport=80, seq=1001, ack=5001, flags=0x18, data=b"hel"),
    ]
    packets = []
    for i, tcp in enumerate(segments):
        src, dst = (a, b) if tcp.sport == 4000 else (b, a)
        packets.append((float(i), bytes(dpkt.ip.IP(src=src, dst=dst, p=6, data=tcp))))
    out = Perturber(random.Random(0), LINKTYPE_RAW).wrap_sequence(packets)
    shifted = dpkt.ip.IP(out[3][1]).data
    left, right = struct.unpack_from(">II", shifted.opts, 4)
    assert (seq_diff(left, shifted.ack), seq_diff(right, shifted.ack)) == (3, 5)
    assert shifted.ack != 1001


def merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


@pytest.mark.parametrize("name", CAPTURES)
@PROPERTY
@given(seed=SEEDS, data=st.data())
def test_drop_removes_exactly_the_dropped_bytes(name: str, seed: int, data: st.DataObject) -> None:
    packets = load(name).packets
    p = perturber(name, seed)
    segments = p.segments(packets)
    dropped = data.draw(st.lists(st.sampled_from(segments), max_size=6, unique=True))
    out = p.drop(packets, [s.index for s in dropped])
    assert len(out) == len(packets) - len(dropped)
    after = reassemble(p.linktype, out)
    for flow, stream in reassemble(p.linktype, packets).items():
        full = stream.complete()
        # the recorded captures have no retransmissions: each byte is in exactly one segment
        assert sum(len(s.payload) for s in segments if s.flow == flow) == len(full)
        lost = [
            (seq_diff(s.seq, stream.base), seq_diff(s.seq, stream.base) + len(s.payload))
            for s in dropped
            if s.flow == flow
        ]
        got = after.get(flow, Stream(stream.base, bytearray(), bytearray()))
        assert got.base == stream.base
        assert got.missing(len(full)) == merge(lost)
        for match in re.finditer(rb"\xff+", got.have):
            a, b = match.span()
            assert got.data[a:b] == full[a:b]


def test_drop_rejects_packets_without_data() -> None:
    packets = load("http11-keepalive.pcap").packets
    with pytest.raises(ValueError, match="not data segments"):
        perturber("http11-keepalive.pcap", 0).drop(packets, [0])  # the SYN


@pytest.mark.parametrize("name", ["http11-keepalive.pcap", "http11-ipv6-exthdrs.pcap"])
@PROPERTY
@given(seed=SEEDS)
def test_chained_perturbations_preserve_streams(name: str, seed: int) -> None:
    packets = load(name).packets
    p = perturber(name, seed)
    out = p.wrap_sequence(p.duplicate(p.overlap(p.reorder(p.split(packets, 700), 5), 0.5), 0.2))
    assert complete(reassemble(p.linktype, out)) == original(name)
    assert_well_formed(p.linktype, packets, out)


def test_same_seed_same_output() -> None:
    packets = load("http11-keepalive.pcap").packets

    def run(seed: int) -> list[Packet]:
        p = perturber("http11-keepalive.pcap", seed)
        return p.overlap(p.duplicate(p.reorder(packets, 4), 0.3), 0.5)

    assert run(7) == run(7)
    assert run(7) != run(8)
