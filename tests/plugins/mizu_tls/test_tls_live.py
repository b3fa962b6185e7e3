"""Real TLS traffic recorded afresh on loopback (nginx, aiohttp; curl, requests, httpx writing a
key log), decrypted by Mizu and checked against the clients and tshark."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.plugins.mizu_tls.tls_oracle import check_against_clients, check_against_tshark, dissect
from tests.plugins.mizu_tls.tls_peers import (
    ContextAdapter,
    Session,
    aiohttp_server,
    client_context,
    free_port,
    make_certificate,
    record_session,
)
from tests.support.processes import Dashboard, wait_for_stderr

HUB_WAIT = 10.0
"""Seconds for an entry to reach the hub: the capture hands packets over about every second."""


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


def test_tap_local_follows_a_key_log_written_while_it_captures(tmp_path: Path) -> None:
    """The key log does not exist when ``mizu tap --local`` starts; the clients create it and
    append to it as they connect, and their requests come out decrypted. A connection held
    open is listed by the hub while it is open."""
    if os.geteuid() != 0:
        pytest.fail("live capture on lo needs root (run the live tests as root)")
    certificate, key = make_certificate(tmp_path)
    session = Session(tmp_path, tmp_path / "keys.log", certificate, key)
    server_port, hub_port = free_port(), free_port()
    with aiohttp_server(session, server_port):
        tap = subprocess.Popen(
            [sys.executable, "-m", "mizu_cli", "tap", "--local", "-i", "lo", "--no-browser",
             "--db", str(tmp_path / "entries.db"), "-p", str(hub_port), "-o", "jsonl",
             "--tls-keylog", str(session.keylog)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            dashboard = Dashboard.parse(wait_for_stderr(tap, "dashboard at"))
            with (
                socket.create_connection(("127.0.0.1", server_port)) as raw,
                client_context(session).wrap_socket(raw, server_hostname="localhost") as held,
            ):
                held_port = held.getsockname()[1]
                query = f"tls and src.port == {held_port} and tls.decrypted"
                deadline = time.monotonic() + HUB_WAIT
                while not (rows := dashboard.get_json("/entries", query=query)["data"]):
                    assert time.monotonic() < deadline, "the open connection is not listed"
                    time.sleep(0.2)
                assert rows[0]["summary"] == "localhost"
            for name in ("ann", "bob"):
                with requests.Session() as client:  # a connection, and its secrets, each
                    client.mount("https://", ContextAdapter(client_context(session)))
                    url = f"https://localhost:{server_port}/hello?name={name}"
                    assert client.get(url, timeout=10).json() == {"hello": name}
            time.sleep(2)  # the closing handshakes reach the capture
        finally:
            tap.send_signal(signal.SIGINT)
            stdout, stderr = tap.communicate(timeout=30)
    assert tap.returncode == 0, stderr
    printed = [json.loads(line) for line in stdout.splitlines()]
    mine = [entry for entry in printed if entry["dst"]["port"] == server_port]
    hellos = [entry for entry in mine if entry["protocol"]["name"] == "http"]
    assert sorted(entry["request"]["url"].rsplit("=", 1)[1] for entry in hellos) == ["ann", "bob"]
    assert all(entry["tls"]["decrypted"] and entry["tls"]["sni"] == "localhost" for entry in hellos)
    assert sum(entry["protocol"]["name"] == "tls" for entry in mine) == 3
    lines = session.keylog.read_text().splitlines()
    secrets = [line.split()[2] for line in lines if not line.startswith("#")]
    assert len(secrets) >= 8  # TLS 1.3: four traffic secrets a connection, at least
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("entries.db*"))
    for secret in secrets:  # never logged, printed or stored by the hub, as hex or as bytes
        assert secret not in stderr and secret not in stdout
        assert secret.encode() not in stored and bytes.fromhex(secret) not in stored
