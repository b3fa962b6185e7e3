"""TLS from peers that make what the other clients do not: nginx accepting only P-256, so that
``openssl s_client``, offering an X25519 key share first, gets a HelloRetryRequest, then
updates its keys (``k``) and asks nginx to update its own (``K``) before its request; TLS 1.2
CBC suites with and without encrypt_then_mac; a handshake nginx refuses."""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from mizu_tls import plugin

from tests.plugins.mizu_tls.tls_oracle import check_against_clients, check_against_tshark, dissect
from tests.plugins.mizu_tls.tls_peers import (
    RECORD_FLUSH,
    SERVER_NAME,
    Expected,
    Seen,
    Session,
    curl,
    free_port,
    make_certificate,
    nginx,
    seen,
)
from tests.support.tcpdump import record

COMMAND_PAUSE = 0.3
"""s_client reads a command only when it is alone in what it reads from its input, and is
given this long for each step."""
TLS13_CIPHERS = ("TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256")
KEY_UPDATES = (b"k\n", b"K\n")


def s_client(session: Session, port: int, *options: str, commands: tuple[bytes, ...] = ()) -> str:
    """One HTTP/1.1 request through ``openssl s_client`` after ``commands``; what it printed."""
    client = subprocess.Popen(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", SERVER_NAME,
         "-alpn", "http/1.1", "-keylogfile", str(session.keylog),
         "-CAfile", str(session.certificate), *options],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    assert client.stdin is not None
    time.sleep(COMMAND_PAUSE)  # the handshake
    for command in commands:
        client.stdin.write(command)
        client.stdin.flush()
        time.sleep(COMMAND_PAUSE)
    request = f"GET /data.json HTTP/1.1\r\nHost: {SERVER_NAME}\r\nConnection: close\r\n\r\n"
    client.stdin.write(request.encode())
    client.stdin.flush()
    time.sleep(COMMAND_PAUSE)  # s_client ends the connection when its input ends
    output, _ = client.communicate(timeout=10)
    return output.decode(errors="replace")


S_CLIENT_TLS = re.compile(r"New, (TLSv[\d.]+), Cipher is (\S+)")
S_CLIENT_ALPN = re.compile(r"ALPN protocol: (\S+)")


def seen_by_s_client(output: str) -> Seen:
    tls, alpn = S_CLIENT_TLS.search(output), S_CLIENT_ALPN.search(output)
    assert tls is not None, output
    return seen(tls[1], tls[2], alpn[1] if alpn else None)


def expected(client: str, tls: Seen) -> Expected:
    return Expected(client, "GET", "/data.json", 200, "HTTP/1.1", SERVER_NAME, tls.alpn,
                    tls.version, tls.cipher)  # fmt: skip


@dataclass
class Recorded:
    pcap: Path
    session: Session
    printed: list[str]
    """What each s_client printed."""
    made: list[Expected]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    """Every scenario, recorded once for the module's tests."""
    directory = tmp_path_factory.mktemp("openssl")
    certificate, key = make_certificate(directory)
    session = Session(directory, directory / "keys.log", certificate, key)
    port, pcap = free_port(), directory / "tls.pcap"
    url = f"https://{SERVER_NAME}:{port}/data.json"
    resolve = ("--resolve", f"{SERVER_NAME}:{port}:127.0.0.1", "--http1.1")
    with nginx(session, port, groups="prime256v1"), record(pcap, f"tcp port {port}"):
        printed = [
            s_client(session, port, "-tls1_3", "-ciphersuites", cipher, "-groups",
                     "X25519:P-256", commands=KEY_UPDATES)
            for cipher in TLS13_CIPHERS
        ]  # fmt: skip
        printed.append(s_client(session, port, "-tls1_2", "-cipher", "ECDHE-RSA-AES256-SHA384",
                                "-no_etm"))  # fmt: skip
        by_curl = curl(session, url, *resolve, "--tls-max", "1.2", "--ciphers",
                       "ECDHE-RSA-AES128-SHA")  # fmt: skip
        with pytest.raises(subprocess.CalledProcessError):  # nginx has an RSA key only
            curl(session, url, *resolve, "--tls-max", "1.2", "--ciphers",
                 "ECDHE-ECDSA-AES128-GCM-SHA256")  # fmt: skip
        time.sleep(RECORD_FLUSH)
    by_s_client = [seen_by_s_client(output) for output in printed]
    assert [*by_s_client, by_curl] == [
        *(Seen("TLS 1.3", cipher, "http/1.1") for cipher in TLS13_CIPHERS),
        Seen("TLS 1.2", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", "http/1.1"),
        Seen("TLS 1.2", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "http/1.1"),
    ]  # what the options asked for
    made = [expected("openssl", tls) for tls in by_s_client] + [expected("curl", by_curl)]
    return Recorded(pcap, session, printed, made)


def test_every_request_is_decrypted_as_the_clients_and_tshark_saw_it(recorded: Recorded) -> None:
    pcap, keylog = recorded.pcap, recorded.session.keylog
    for output in recorded.printed[:2]:
        assert output.count("KEYUPDATE") == 2 and "HTTP/1.1 200 OK" in output
        assert "Server Temp Key: ECDH, prime256v1" in output  # the retry's group
    entries, stats = dissect(pcap, keylog)
    check_against_clients(entries, recorded.made)
    check_against_tshark(pcap, keylog, entries)
    assert stats["plugin_errors"] == {}
    assert "tag failures" not in stats["plugin_counters"]["tls"]


def test_hello_retry_requests_and_key_updates_are_followed(recorded: Recorded) -> None:
    entries, stats = dissect(recorded.pcap, recorded.session.keylog)
    sessions = [entry for entry in entries if entry["protocol"]["name"] == "tls"]
    tls13 = [entry for entry in sessions if entry["tls"]["version"] == "TLS 1.3"]
    assert [entry["response"]["helloRetry"] for entry in tls13] == [True, True]
    assert all(entry["tls"]["decrypted"] for entry in tls13)
    # Each connection: the client's two updates and the one nginx makes when asked.
    assert stats["plugin_counters"]["tls"]["key updates"] == 6


def test_a_refused_handshake_is_an_entry_with_the_alert_made_when_it_ends(
    recorded: Recorded,
) -> None:
    entries, _ = dissect(recorded.pcap, recorded.session.keylog)
    [refused] = [e for e in entries if e["protocol"]["name"] == "tls" and not e["tls"]["version"]]
    assert refused["response"]["alerts"] == [
        {"from": "server", "level": "fatal", "description": "handshake_failure"}
    ]
    assert refused["response"]["status"] == "handshake_failure"
    assert refused["response"]["ended"] in ("FIN", "RST") and refused["error"] is True
    assert "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" in refused["request"]["cipherSuites"]
    row = plugin.summarize(refused)
    assert row["error"] is True and row["statusName"] == "handshake_failure"
