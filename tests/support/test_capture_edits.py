"""The capture edits other tests build lossy and mid-connection captures with."""

from __future__ import annotations

from pathlib import Path

from tests.support.capture_edits import (
    data_segments,
    remove_data_segments,
    remove_packets,
    start_mid_connection,
)
from tests.support.perturb import read_pcap

CAPTURE = Path(__file__).parent.parent / "data" / "core" / "http11-keepalive.pcap"


def test_removing_a_fraction_of_data_segments_is_seeded(tmp_path: Path) -> None:
    segments = data_segments(CAPTURE)
    first = remove_data_segments(CAPTURE, tmp_path / "a.pcap", 0.2, seed=7)
    again = remove_data_segments(CAPTURE, tmp_path / "b.pcap", 0.2, seed=7)
    other = remove_data_segments(CAPTURE, tmp_path / "c.pcap", 0.2, seed=8)
    assert first == again != other
    assert len(first) == round(len(segments) * 0.2)
    assert set(first) <= {segment.index for segment in segments}
    assert (tmp_path / "a.pcap").read_bytes() == (tmp_path / "b.pcap").read_bytes()
    original = read_pcap(CAPTURE).packets
    kept = read_pcap(tmp_path / "a.pcap").packets
    assert [packet[1] for packet in kept] == [
        packet[1] for index, packet in enumerate(original) if index not in set(first)
    ]
    assert len(remove_data_segments(CAPTURE, tmp_path / "d.pcap", 0.001, seed=1)) == 1


def test_chosen_packets_and_an_early_start_are_left_out(tmp_path: Path) -> None:
    segments = data_segments(CAPTURE)
    chosen = [segments[1].index, segments[3].index]
    remove_packets(CAPTURE, tmp_path / "chosen.pcap", chosen)
    assert data_segments(tmp_path / "chosen.pcap") != segments
    assert len(data_segments(tmp_path / "chosen.pcap")) == len(segments) - 2

    start = segments[2].index
    start_mid_connection(CAPTURE, tmp_path / "late.pcap", start)
    late = read_pcap(tmp_path / "late.pcap").packets
    assert [frame for _, frame in late] == [
        frame for _, frame in read_pcap(CAPTURE).packets[start:]
    ]
    assert data_segments(tmp_path / "late.pcap")[0].payload == segments[2].payload
