"""The packet keeper's caps and the pcap writer, on frames of a real capture."""

from __future__ import annotations

import io
from pathlib import Path

import dpkt

from mizu_core.capture import FileSource
from mizu_core.decode import LINKTYPE_RAW
from mizu_core.pcap_export import PacketKeeper
from mizu_core.pcapfile import connection_key, write_capture, write_pcap

CAPTURE = Path(__file__).resolve().parent.parent / "data" / "http" / "mizu-http1.pcap"


def frames() -> tuple[int, list[tuple[float, bytes]]]:
    source = FileSource(CAPTURE)
    return source.linktype, [packet for packet in source if packet is not None]


def test_keeper_keeps_every_tcp_frame_by_connection_and_writes_them_back() -> None:
    linktype, packets = frames()
    keeper = PacketKeeper(linktype)
    assert list(keeper.wrap(iter(packets))) == packets
    taken = keeper.take()
    assert sum(len(batch.frames) for batch in taken) == len(packets) == keeper.stats.kept
    assert all(batch.key.count("|") == 3 for batch in taken)
    assert keeper.take() == []  # handed over once
    written = io.BytesIO()
    assert write_pcap(written, linktype, [f for b in taken for f in b.frames]) == len(packets)
    written.seek(0)
    reader = dpkt.pcap.Reader(written)
    assert reader.datalink() == linktype
    assert sorted(bytes(frame) for _, frame in reader) == sorted(frame for _, frame in packets)


def test_keeper_caps_per_connection_pending_and_connections() -> None:
    linktype, packets = frames()
    small = PacketKeeper(linktype, max_connection_bytes=2000)
    for timestamp, frame in packets:
        small.record(timestamp, frame)
    assert all(sum(len(f) for _, f in b.frames) <= 2000 for b in small.take())
    assert small.stats.over_connection_cap > 0
    tight = PacketKeeper(linktype, max_pending_bytes=5000)
    for timestamp, frame in packets:
        tight.record(timestamp, frame)
    assert sum(len(f) for b in tight.take() for _, f in b.frames) <= 5000
    assert tight.stats.over_pending_cap > 0
    few = PacketKeeper(linktype, max_connections=1)
    for timestamp, frame in packets:
        few.record(timestamp, frame)
    assert sum(len(b.frames) for b in few.take()) == len(packets)  # forgotten ones still ship
    assert few.stats.forgotten_connections > 0


def test_connection_key_is_the_same_both_ways() -> None:
    assert connection_key("10.0.0.2", 80, "10.0.0.1", 5000) == connection_key(
        "10.0.0.1", 5000, "10.0.0.2", 80
    )
    assert connection_key("::1", 80, "::1", 81) != connection_key("::1", 80, "::1", 82)


def test_frames_of_two_link_types_are_written_as_their_ip_packets(tmp_path: Path) -> None:
    ethernet, ethernet_frames = frames()
    loopback_source = FileSource(CAPTURE.with_name("sv_http-event-chunk.pcap"))
    loopback = loopback_source.linktype
    loopback_frames = [packet for packet in loopback_source if packet is not None]
    assert ethernet != loopback
    mixed = [(ethernet, time, frame) for time, frame in ethernet_frames] + [
        (loopback, time, frame) for time, frame in loopback_frames
    ]
    path = tmp_path / "mixed.pcap"
    with path.open("wb") as stream:
        assert write_capture(stream, mixed) == len(mixed)
    with path.open("rb") as stream:
        assert dpkt.pcap.Reader(stream).datalink() == LINKTYPE_RAW
    source = FileSource(path)
    read = [frame for time, frame in (packet for packet in source if packet is not None)]
    assert read == [frame[14:] for _, frame in ethernet_frames] + [
        frame[4:] for _, frame in loopback_frames
    ]
    one = io.BytesIO()
    single = [(ethernet, time, frame) for time, frame in ethernet_frames]
    assert write_capture(one, single) == len(single)
    one.seek(0)
    assert dpkt.pcap.Reader(one).datalink() == ethernet
