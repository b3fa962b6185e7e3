"""When a connection's ``tls`` entry is made (at the end of its handshake, at its first bytes
when the capture joined it later, at its end when the handshake did not finish), and what bad
input does: counted, reported once, never a crash."""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import dpkt
import pytest
from mizu_tls import dissector
from mizu_tls.records import RecordReader

from mizu_core import Direction
from mizu_core.testkit import run_bytes
from tests.fuzz.mutations import capture_streams
from tests.plugins.mizu_tls.tls_oracle import client_port, dissect
from tests.support.perturb import read_pcap, write_pcap

DATA = Path(__file__).resolve().parents[2] / "data" / "tls"
PCAP, KEYS = DATA / "mizu-tls.pcap", DATA / "mizu-tls.keys"
HANDSHAKE_STARTS = (b"\x16", b"\x14")
"""How a segment starting a handshake or ChangeCipherSpec record begins."""


def test_the_tls_entry_is_made_when_the_handshake_ends_before_the_requests() -> None:
    entries, _ = dissect(PCAP, KEYS)
    by_connection: dict[int, list[dict]] = defaultdict(list)
    for entry in entries:
        by_connection[client_port(entry)].append(entry)
    assert len(by_connection) == 9
    for connection in by_connection.values():
        session, *requests = connection
        assert session["protocol"]["name"] == "tls" and session["tls"]["decrypted"]
        assert "ended" not in session["response"]  # made while the connection was open
        assert requests and {entry["protocol"]["name"] for entry in requests} == {"http"}
        handshake_end = session["timestamp"] + session["elapsedTime"]
        # Timestamps are whole milliseconds: a request may start within the same one.
        assert all(entry["timestamp"] + 1 >= handshake_end for entry in requests)


def test_a_connection_joined_after_its_handshake_is_listed_at_once_saying_so(
    tmp_path: Path,
) -> None:
    capture = read_pcap(PCAP)

    def connection_and_handshake(frame: bytes) -> tuple[frozenset[int], bool]:
        segment = dpkt.ethernet.Ethernet(frame).data.data
        starts = segment.data[:1]
        return frozenset((segment.sport, segment.dport)), starts in HANDSHAKE_STARTS

    last_handshake_packet = {}
    for index, (_, frame) in enumerate(capture.packets):
        connection, handshake = connection_and_handshake(frame)
        if handshake:
            last_handshake_packet[connection] = index
    joined = tmp_path / "joined.pcap"
    packets = [
        packet
        for index, packet in enumerate(capture.packets)
        if index > last_handshake_packet[connection_and_handshake(packet[1])[0]]
    ]
    write_pcap(joined, packets, capture.linktype)
    entries, stats = dissect(joined, KEYS)
    assert len(entries) == 9 and stats["plugin_errors"] == {}
    for entry in entries:
        assert entry["protocol"]["name"] == "tls"
        assert entry["response"]["status"] == "handshake not seen"
        assert entry["tls"]["reason"] == "the capture missed the handshake"
        assert entry["tls"]["decrypted"] is False
        assert entry["elapsedTime"] == 0  # made at the connection's first bytes
        assert "ended" not in entry["response"]


def test_a_malformed_client_hello_is_counted_reported_once_and_the_entry_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(dissector, "_reported", set())
    client, server = capture_streams([PCAP])[0]
    hello = bytearray(client)
    # The ClientHello's extensions block claims more bytes than its message has.
    session_id_end = 5 + 4 + 2 + 32 + 1 + hello[5 + 4 + 2 + 32]
    suites_end = session_id_end + 2 + int.from_bytes(hello[session_id_end : session_id_end + 2])
    extensions_at = suites_end + 1 + hello[suites_end]
    hello[extensions_at : extensions_at + 2] = b"\xff\xff"
    chunks = [(Direction.CLIENT_TO_SERVER, bytes(hello)), (Direction.SERVER_TO_CLIENT, server)]
    with caplog.at_level(logging.WARNING, logger="mizu_tls"):
        outputs = [run_bytes(chunks, "tls", settings={"keylog": str(KEYS)}) for _ in range(2)]
    for output in outputs:
        [entry] = output.entries
        malformed = entry["response"]["malformed"]
        assert malformed == "handshake: a handshake field runs past its message"
        assert entry["tls"]["reason"] == "the ClientHello is not valid TLS (see malformed)"
        assert entry["request"]["sni"] == "" and entry["tls"]["version"] == "TLS 1.3"
        assert output.stats["plugin_counters"]["tls"]["malformed"] == 1
        assert output.stats["plugin_errors"] == {}
    [report] = [record for record in caplog.records if "not valid TLS" in record.getMessage()]
    assert "the connection's entry shows what was read before them" in report.getMessage()


def test_bytes_that_are_not_records_stop_the_reading_not_the_connection_entry() -> None:
    client, server = capture_streams([PCAP])[0]
    client_hello_record = 5 + int.from_bytes(client[3:5])
    chunks = [
        (Direction.CLIENT_TO_SERVER, client[:client_hello_record]),
        (Direction.CLIENT_TO_SERVER, b"\x99" * 40),  # no record header starts with 0x99
        (Direction.SERVER_TO_CLIENT, server),
    ]
    output = run_bytes(chunks, "tls")
    [entry] = output.entries
    assert entry["response"]["malformed"].startswith("not a TLS record header: 99999999")
    assert entry["tls"]["reason"] == "not TLS: " + entry["response"]["malformed"]
    assert output.stats["plugin_counters"]["tls"]["malformed"] == 1
    assert output.stats["plugin_errors"] == {}


def test_a_connection_joined_in_the_middle_of_a_record_is_taken_up_at_the_next() -> None:
    client, server = capture_streams([PCAP])[8]  # httpx: HTTP/2, five streams
    starts = []
    for stream in (client, server):
        boundaries, offset = [], 0
        for record in RecordReader().feed(stream):
            boundaries.append(offset)
            offset += record.size
        # Three records from the end, three bytes into a record.
        cut = boundaries[-3] + 3
        starts.append((cut, boundaries[-2]))
    (client_cut, client_next), (server_cut, server_next) = starts
    chunks = [
        (Direction.CLIENT_TO_SERVER, client[client_cut:]),
        (Direction.SERVER_TO_CLIENT, server[server_cut:]),
    ]
    output = run_bytes(chunks, "tls", settings={"keylog": str(KEYS)}, role_guessed=True)
    [entry] = output.entries
    assert entry["response"]["status"] == "handshake not seen"
    assert entry["tls"]["reason"] == "the capture missed the handshake"
    assert entry["request"]["records"] >= 1
    counters = output.stats["plugin_counters"]["tls"]
    assert counters["bytes_skipped"] == client_next - client_cut + server_next - server_cut
    assert counters["resyncs"] == 2
    assert output.stats["plugin_errors"] == {}
