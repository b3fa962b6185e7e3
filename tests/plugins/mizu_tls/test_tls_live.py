"""Real TLS traffic recorded afresh on loopback (nginx, aiohttp; curl, requests, httpx writing a
key log), decrypted by Mizu and checked against the clients and tshark."""

from __future__ import annotations

from pathlib import Path

from tests.plugins.mizu_tls.tls_oracle import check_against_clients, check_against_tshark, dissect
from tests.plugins.mizu_tls.tls_peers import record_session


def test_recorded_tls_traffic_is_decrypted_as_the_clients_and_tshark_saw_it(
    tmp_path: Path,
) -> None:
    pcap = tmp_path / "tls.pcap"
    session = record_session(tmp_path, pcap)
    assert len(session.expected) == 14
    entries, stats = dissect(pcap, session.keylog)
    check_against_clients(entries, session.expected)
    check_against_tshark(pcap, session.keylog, entries)
    assert stats["plugin_errors"] == {}
