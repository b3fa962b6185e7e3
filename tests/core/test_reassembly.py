"""TCP reassembly against tshark's view of real captures, perturbed captures and hypothesis."""

from __future__ import annotations

import itertools
import json
import random
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mizu_core import CloseReason, Direction, reassembly
from mizu_core.engine import Engine, EngineSettings
from mizu_core.plugins import PluginManager
from mizu_core.reassembly import ReassemblyLimits
from tests.support.packets import (
    ACK,
    FIN,
    LINKTYPE_RAW,
    PSH,
    SYN,
    conversation,
    ip_frame,
    write_frames,
)
from tests.support.perturb import Perturber, read_pcap, write_pcap
from tests.support.recorder import RecordedConnection, record_streams

DATA = Path(__file__).parent.parent / "data" / "core"
ORACLES = sorted(DATA.glob("*.streams.json"))
KEEPALIVE = DATA / "http11-keepalive.pcap"


def by_endpoints(connections: list[RecordedConnection]) -> dict[frozenset, RecordedConnection]:
    return {frozenset((c.client, c.server)): c for c in connections}


def endpoint(value: dict) -> tuple[str, int]:
    return (value["ip"], value["port"])


@pytest.mark.parametrize("oracle", ORACLES, ids=[p.name.split(".")[0] for p in ORACLES])
def test_streams_match_tshark(oracle: Path) -> None:
    expected = json.loads(oracle.read_text())
    connections, engine = record_streams(DATA / expected["capture"])
    found = by_endpoints(connections)
    assert len(connections) == len(expected["streams"])
    for stream in expected["streams"]:
        client, server = endpoint(stream["client"]), endpoint(stream["server"])
        record = found[frozenset((client, server))]
        if stream["client_by"] == "syn":
            assert (record.client, record.server) == (client, server)
        by_role = {
            record.client: Direction.CLIENT_TO_SERVER,
            record.server: Direction.SERVER_TO_CLIENT,
        }
        assert record.digest(by_role[client]) == stream["client_to_server"]
        assert record.digest(by_role[server]) == stream["server_to_client"]
        assert not record.gaps
    assert engine.stats()["plugin_errors"] == {}


def original_streams() -> dict[frozenset, RecordedConnection]:
    connections, _ = record_streams(KEEPALIVE)
    return by_endpoints(connections)


def perturbed_streams(tmp_path: Path, packets: list, linktype: int) -> tuple[dict, dict]:
    path = tmp_path / "perturbed.pcap"
    write_pcap(path, packets, linktype)
    connections, engine = record_streams(path)
    return by_endpoints(connections), engine.stats()


def assert_same_streams(original: dict, perturbed: dict) -> None:
    assert perturbed.keys() == original.keys()
    for key, record in original.items():
        other = perturbed[key]
        assert (other.client, other.server) == (record.client, record.server)
        assert bytes(other.streams[0]) == bytes(record.streams[0])
        assert bytes(other.streams[1]) == bytes(record.streams[1])
        assert other.gaps == []
        assert other.close_reason == record.close_reason


PERTURBATIONS = {
    "reorder": lambda p, packets: p.reorder(packets, window=6),
    "duplicate": lambda p, packets: p.duplicate(packets, prob=0.5),
    "overlap": lambda p, packets: p.overlap(packets, prob=0.5),
    "split": lambda p, packets: p.split(packets, max_len=97),
    "wrap": lambda p, packets: p.wrap_sequence(packets),
    "split-wrap-reorder-overlap-duplicate": lambda p, packets: p.duplicate(
        p.overlap(p.reorder(p.wrap_sequence(p.split(packets, max_len=300)), window=10), 0.3), 0.3
    ),
}


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("name", list(PERTURBATIONS))
def test_perturbed_capture_gives_same_streams(tmp_path: Path, name: str, seed: int) -> None:
    capture = read_pcap(KEEPALIVE)
    perturber = Perturber(random.Random(seed), capture.linktype)
    packets = PERTURBATIONS[name](perturber, list(capture.packets))
    perturbed, stats = perturbed_streams(tmp_path, packets, capture.linktype)
    assert_same_streams(original_streams(), perturbed)
    if name == "duplicate":
        assert stats["reassembly"]["duplicate_packets"] > 0


def test_same_packet_seen_twice_is_counted_once(tmp_path: Path) -> None:
    capture = read_pcap(KEEPALIVE)
    doubled = [packet for packet in capture.packets for _ in range(2)]
    path = tmp_path / "doubled.pcap"
    write_pcap(path, doubled, capture.linktype)
    connections, engine = record_streams(path)
    single, single_engine = record_streams(KEEPALIVE)
    assert [bytes(c.streams[0]) for c in connections] == [bytes(c.streams[0]) for c in single]
    assert [c.packets for c in connections] == [c.packets for c in single]
    stats = engine.stats()["reassembly"]
    # Copies of the packets that follow the close are counted as late packets instead.
    late = stats["packets_after_close"] - single_engine.stats()["reassembly"]["packets_after_close"]
    assert stats["duplicate_packets"] + late == len(capture.packets)


@pytest.mark.parametrize("doubled", [False, True])
def test_the_short_path_counts_what_the_general_path_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, doubled: bool
) -> None:
    # Data and bare acknowledgements take the short path; copies of them (a packet seen
    # twice) do not: every stream and counter is what the decoder and segment() make of them.
    capture = read_pcap(KEEPALIVE)
    packets = [packet for packet in capture.packets for _ in range(2 if doubled else 1)]
    path = tmp_path / "short.pcap"
    write_pcap(path, packets, capture.linktype)
    short, short_engine = record_streams(path)
    monkeypatch.setattr(reassembly, "FAST_IPV4_LAYOUTS", {})
    general, general_engine = record_streams(path)
    assert [(c.streams, c.packets, c.gaps) for c in short] == [
        (c.streams, c.packets, c.gaps) for c in general
    ]
    short_stats, general_stats = short_engine.stats(), general_engine.stats()
    for name in ("packets", "decode", "reassembly", "dispatch"):
        assert short_stats[name] == general_stats[name], name
    assert (short_stats["reassembly"]["duplicate_packets"] > 0) is doubled


def test_dropped_segments_become_gaps_of_the_right_size(tmp_path: Path) -> None:
    capture = read_pcap(KEEPALIVE)
    perturber = Perturber(random.Random(7), capture.linktype)
    segments = perturber.segments(capture.packets)
    dropped = [segments[3], segments[len(segments) // 2], segments[-3]]
    packets = perturber.drop(capture.packets, [s.index for s in dropped])
    perturbed, stats = perturbed_streams(tmp_path, packets, capture.linktype)
    (record,) = perturbed.values()
    (original,) = original_streams().values()
    lost = {Direction.CLIENT_TO_SERVER: 0, Direction.SERVER_TO_CLIENT: 0}
    for direction, length in record.gaps:
        lost[direction] += length
    client_port = original.client[1]
    for direction in Direction:
        from_client = direction == Direction.CLIENT_TO_SERVER
        dropped_here = sum(
            len(s.payload) for s in dropped if (s.flow[1] == client_port) == from_client
        )
        assert lost[direction] == dropped_here
        received = len(record.streams[direction])
        assert received + lost[direction] == len(original.streams[direction])
    assert stats["reassembly"]["bytes_lost"] == sum(len(s.payload) for s in dropped)


def test_bytes_after_a_hole_keep_the_time_they_were_captured(tmp_path: Path) -> None:
    """However long the hole was waited for (here until the connection ends), what follows
    it goes with its own capture time, and so does the gap: pairing by time stays right."""
    capture = read_pcap(KEEPALIVE)
    perturber = Perturber(random.Random(0), capture.linktype)
    segments = perturber.segments(capture.packets)
    hole = segments[len(segments) // 2]
    after = next(s for s in segments if s.index > hole.index and s.flow == hole.flow)
    path = tmp_path / "hole.pcap"
    write_pcap(path, perturber.drop(capture.packets, [hole.index]), capture.linktype)
    limits = ReassemblyLimits(acked_hole_wait=1e9)
    (record,), _ = record_streams(path, EngineSettings(limits=limits))
    (gap,) = [index for index, (_, length) in enumerate(record.events) if length < 0]
    captured_at = capture.packets[after.index][0]
    assert record.times[gap] == pytest.approx(captured_at)
    assert record.times[gap + 1] == pytest.approx(captured_at)
    assert record.times[gap] < capture.packets[-1][0]


def test_close_reasons(tmp_path: Path) -> None:
    connections, _ = record_streams(DATA / "rst-and-refused.pcap")
    reasons = sorted(str(c.close_reason) for c in connections)
    assert "refused" in reasons and "RST" in reasons
    (keepalive,) = record_streams(KEEPALIVE)[0]
    assert keepalive.close_reason == CloseReason.FIN


def test_mid_connection_capture_guesses_the_server_by_port() -> None:
    (connection,), _ = record_streams(DATA / "deepflow_00-produce-v2.pcap")
    assert connection.server[1] == 9092
    assert connection.role_guessed


@pytest.mark.parametrize(
    ("server_seq", "lost"),
    [(505, 5), (500, 0), (498, 0)],
    ids=["first-bytes-lost", "none-lost", "first-bytes-seen-before"],
)
def test_joined_mid_way_the_peer_acknowledgement_shows_first_bytes_lost(
    tmp_path: Path, server_seq: int, lost: int
) -> None:
    """Caught mid-connection, the server's count starts at its first segment captured; the
    client's acknowledgement before it says where the server's bytes were then. Bytes between
    are lost to the capture, and a reply among them must not go unreported (a plugin would
    give the next reply to its command)."""
    client, server = ("127.0.0.1", 40000), ("127.0.0.2", 6379)
    reply = b"$3\r\nabc\r\n"
    frames = [
        ip_frame(*client, *server, 100, 500, ACK | PSH, b"SET k v\r\n"),
        ip_frame(*client, *server, 109, 500, ACK | PSH, b"GET k\r\n"),
        ip_frame(*server, *client, server_seq, 116, ACK | PSH, reply),
        ip_frame(*client, *server, 116, server_seq + len(reply), ACK),
    ]
    (record,), engine = record_streams(write_frames(tmp_path / "joined.pcap", frames))
    assert record.role_guessed
    server_events = [event for event in record.events if event[0] == Direction.SERVER_TO_CLIENT]
    expected = [(Direction.SERVER_TO_CLIENT, -lost)] if lost else []
    assert server_events == [*expected, (Direction.SERVER_TO_CLIENT, len(reply))]
    assert engine.stats()["reassembly"]["bytes_lost"] == lost


def test_per_connection_buffer_cap_skips_ahead_and_counts(tmp_path: Path) -> None:
    capture = read_pcap(KEEPALIVE)
    perturber = Perturber(random.Random(3), capture.linktype)
    first_data = perturber.segments(capture.packets)[0].index
    packets = perturber.drop(capture.packets, [first_data])
    path = tmp_path / "hole.pcap"
    write_pcap(path, packets, capture.linktype)
    limits = ReassemblyLimits(max_buffered_per_connection=1, acked_hole_wait=1e9)
    connections, engine = record_streams(path, EngineSettings(limits=limits))
    stats = engine.stats()["reassembly"]
    assert stats["buffer_overflows"] >= 1
    assert stats["gaps"] >= 1
    assert connections[0].gaps


def test_connection_table_is_bounded(tmp_path: Path) -> None:
    frames = [
        (1.0 + i / 1000, syn_frame(f"127.0.{i // 250}.{i % 250 + 1}", 40000 + i, "127.1.0.1", 80))
        for i in range(50)
    ]
    path = tmp_path / "many.pcap"
    write_pcap(path, frames, 101)
    limits = ReassemblyLimits(max_connections=10)
    connections, engine = record_streams(path, EngineSettings(limits=limits))
    assert len(connections) == 50
    assert engine.stats()["reassembly"]["connections_evicted"] == 40
    assert all(c.close_reason is not None for c in connections)


# -- any order of segments yields the same byte stream -------------------------------------------


def syn_frame(src: str, sport: int, dst: str, dport: int) -> bytes:
    return ip_frame(src, sport, dst, dport, 1000, 0, SYN)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(min_size=1, max_size=3000),
    cuts=st.lists(st.integers(min_value=1, max_value=2999), max_size=20),
    isn=st.integers(min_value=0, max_value=2**32 - 1),
    order=st.randoms(use_true_random=False),
    duplicates=st.integers(min_value=0, max_value=5),
)
def test_any_segment_order_yields_the_same_stream(data, cuts, isn, order, duplicates) -> None:
    bounds = sorted({0, len(data), *[c for c in cuts if c < len(data)]})
    pieces = [(start, data[start:end]) for start, end in itertools.pairwise(bounds)]
    pieces += [order.choice(pieces) for _ in range(duplicates)]
    # Overlapping retransmissions carry the same bytes at the same positions.
    for _ in range(duplicates):
        start = order.randrange(len(data))
        end = min(len(data), start + order.randrange(1, 400))
        pieces.append((start, data[start:end]))
    order.shuffle(pieces)
    client, server = ("127.0.0.1", 40000), ("127.0.0.2", 8080)
    syn, ack = SYN, ACK
    frames = [
        ip_frame(*client, *server, isn, 0, syn),
        ip_frame(*server, *client, 5000, (isn + 1) % 2**32, syn | ack),
    ]
    for start, piece in pieces:
        frames.append(ip_frame(*client, *server, (isn + 1 + start) % 2**32, 5001, ack, piece))
    frames.append(ip_frame(*client, *server, (isn + 1 + len(data)) % 2**32, 5001, ack | FIN))
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "order.pcap"
        write_pcap(path, [(1.0 + i / 1e4, f) for i, f in enumerate(frames)], 101)
        (record,), _ = record_streams(path)
    assert bytes(record.streams[Direction.CLIENT_TO_SERVER]) == data
    assert record.gaps == []


def test_a_pure_ack_then_data_with_the_same_numbers_is_no_duplicate(tmp_path: Path) -> None:
    client, server = ("127.0.0.1", 40000), ("127.0.0.2", 6379)
    frames = [
        ip_frame(*client, *server, 99, 0, SYN),
        ip_frame(*server, *client, 499, 100, SYN | ACK),
        ip_frame(*client, *server, 100, 500, ACK, b"GET"),
        ip_frame(*server, *client, 500, 103, ACK),  # the ACK of the request...
        ip_frame(*server, *client, 500, 103, ACK, b"x" * 1000),  # ...and data with its numbers
    ]
    path = tmp_path / "ack-then-data.pcap"
    write_pcap(path, [(1.0 + i / 1e6, frame) for i, frame in enumerate(frames)], 101)
    (record,), engine = record_streams(path)
    assert bytes(record.streams[Direction.SERVER_TO_CLIENT]) == b"x" * 1000
    assert engine.stats()["reassembly"]["duplicate_packets"] == 0


def test_each_file_times_out_requests_by_its_own_clock(tmp_path: Path) -> None:
    """A file recorded before the one read ahead of it never reached a sweep, so its requests
    never timed out: the same file gave other entries depending on what came before it."""

    def capture(name: str, start: float, answer_after: float) -> str:
        request = b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
        frames = conversation(
            ("10.0.0.1", 40000),
            ("10.0.0.2", 80),
            [(True, request), (False, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")],
        )
        # the server acknowledges the request, and answers a second later
        acknowledged = ip_frame("10.0.0.2", 80, "10.0.0.1", 40000, 5000, 1000 + len(request), ACK)
        frames.insert(3, acknowledged)
        acked_at = start + max(answer_after - 1, 0.001)
        times = [start, start, start, acked_at, *(start + answer_after,) * 4]
        path = tmp_path / name
        write_pcap(path, list(zip(times, frames, strict=True)), LINKTYPE_RAW)
        return str(path)

    later = capture("later.pcap", 1_900_000_000.0, 0.01)
    earlier = capture("earlier.pcap", 1_600_000_000.0, 40.0)

    def entries(paths: list[str]) -> list[tuple[bool, bool]]:
        found: list[dict[str, Any]] = []
        plugins = PluginManager().discover(allow=["http", "tcp"])
        Engine(plugins, found.append, EngineSettings(tapper_id="t")).run_files(paths)
        return [(entry["request"] is not None, entry["response"] is not None) for entry in found]

    alone = entries([earlier])
    assert alone == [(True, False), (False, True)]  # answered after the 30 s timeout
    assert entries([later, earlier]) == [(True, True), *alone]
