"""The committed capture (tests/data/tls): real clients and servers, decrypted with their key
log, checked against what the clients saw and against tshark."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from tests.plugins.mizu_tls.tls_oracle import (
    check_against_clients,
    check_against_tshark,
    client_port,
    dissect,
)
from tests.plugins.mizu_tls.tls_peers import load_expected

DATA = Path(__file__).resolve().parents[2] / "data" / "tls"
PCAP, KEYS, EXPECTED = DATA / "mizu-tls.pcap", DATA / "mizu-tls.keys", DATA / "mizu-tls.json"


def test_every_request_is_an_entry_with_the_tls_the_client_saw() -> None:
    entries, stats = dissect(PCAP, KEYS)
    check_against_clients(entries, load_expected(EXPECTED))
    assert stats["plugin_errors"] == {}
    assert stats["plugin_counters"]["tls"]["connections decrypted"] == 9


def test_tshark_with_the_same_key_log_agrees() -> None:
    entries, _ = dissect(PCAP, KEYS)
    check_against_tshark(PCAP, KEYS, entries)


def test_without_keys_each_connection_is_one_tls_entry_saying_why() -> None:
    entries, _ = dissect(PCAP, None)
    assert {entry["protocol"]["name"] for entry in entries} == {"tls"}
    assert len(entries) == 9
    for entry in entries:
        assert entry["tls"]["decrypted"] is False
        assert entry["tls"]["reason"] == "no key log (give one with --tls-keylog)"
        assert entry["response"]["certificates"] or entry["tls"]["version"] == "TLS 1.3"
    no_sni = [entry for entry in entries if not entry["tls"]["sni"]]
    assert len(no_sni) == 1 and no_sni[0]["request"]["alpn"] == ["http/1.1"]
    tls12 = [entry for entry in entries if entry["tls"]["version"] == "TLS 1.2"]
    assert len(tls12) == 3
    for entry in tls12:  # the certificate travels in clear up to TLS 1.2
        [certificate] = entry["response"]["certificates"]
        assert certificate["subject"] == "CN=api.example.com"
        assert certificate["sans"] == ["api.example.com", "localhost", "127.0.0.1"]


def test_tls13_certificates_and_alpn_come_from_the_decrypted_handshake() -> None:
    entries, _ = dissect(PCAP, KEYS)
    sessions = [e for e in entries if e["protocol"]["name"] == "tls"]
    for entry in sessions:
        assert entry["response"]["certificates"][0]["issuer"] == "CN=api.example.com"
    h2 = [e for e in sessions if e["tls"]["version"] == "TLS 1.3" and e["tls"]["alpn"] == "h2"]
    assert len(h2) == 3


def test_a_key_log_for_other_sessions_decrypts_nothing_and_says_so(tmp_path: Path) -> None:
    other = tmp_path / "other.keys"
    other.write_text("CLIENT_RANDOM " + "11" * 32 + " " + "22" * 48 + "\n")
    entries, _ = dissect(PCAP, other)
    assert {entry["protocol"]["name"] for entry in entries} == {"tls"}
    assert {entry["tls"]["reason"] for entry in entries} == {
        "no secret for this session in the key log"
    }


def test_wrong_secrets_fail_the_tag_check_are_counted_and_reported_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = tmp_path / "wrong.keys"
    lines = []
    for line in KEYS.read_text().splitlines():
        label, random, secret = line.split()
        flipped = f"{int(secret[0], 16) ^ 1:x}" + secret[1:]
        lines.append(f"{label} {random} {flipped}")
    wrong.write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING, logger="mizu_tls"):
        entries, stats = dissect(PCAP, wrong)
    assert {entry["protocol"]["name"] for entry in entries} == {"tls"}
    assert {entry["tls"]["reason"] for entry in entries} == {
        "the key log's secret does not decrypt this session (tag check failed)"
    }
    assert stats["plugin_counters"]["tls"]["tag failures"] >= 9
    assert stats["plugin_errors"] == {}
    reports = [r for r in caplog.records if "tag check" in r.getMessage()]
    assert len(reports) <= 1  # once per process (an earlier test may have reported it)
    for secret in (line.split()[2] for line in lines):
        assert secret not in caplog.text


def test_bad_key_log_lines_are_skipped_and_reported_without_their_content(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keys = tmp_path / "mixed.keys"
    keys.write_text(
        "# a comment\nnot a key log line at all\n" + KEYS.read_text() + "CLIENT_RANDOM zz\n"
    )
    with caplog.at_level(logging.WARNING, logger="mizu_tls"):
        entries, _ = dissect(PCAP, keys)
    assert sum(entry["protocol"]["name"] == "http" for entry in entries) == 14
    [report] = [r for r in caplog.records if "is not a key log line" in r.getMessage()]
    assert "line 2" in report.getMessage() and "not a key log line at all" not in caplog.text


def test_mizu_dissect_decrypts_with_tls_keylog_and_filters_on_tls_fields() -> None:
    command = [sys.executable, "-m", "mizu_cli.main", "dissect", str(PCAP)]
    result = subprocess.run(
        [*command, "--tls-keylog", str(KEYS), "--workers", "2", "-q",
         'protocol.name == "http" and tls.sni == "api.example.com" and tls.version == "TLS 1.2"'],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["request"]["path"], e["tls"]["cipher"]) for e in lines] == [
        ("/index.html", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
        ("/index.html", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
    ]
    sessions = subprocess.run(
        [*command, "-q", 'tls and tls.sni == "api.example.com"'],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    assert len(sessions.stdout.splitlines()) == 5
    missing = subprocess.run(
        [*command, "--tls-keylog", str(DATA / "no-such.keys")], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "no-such.keys" in missing.stderr
    no_plugin = subprocess.run(
        [*command, "--tls-keylog", str(KEYS), "--no-plugins", "tls"], capture_output=True,
        text=True,
    )  # fmt: skip
    assert no_plugin.returncode == 2 and "needs the tls plugin" in no_plugin.stderr


def test_one_tls_entry_per_connection_with_its_summary_and_status() -> None:
    from mizu_tls import plugin

    entries, _ = dissect(PCAP, KEYS)
    sessions = sorted((e for e in entries if e["protocol"]["name"] == "tls"), key=client_port)
    assert len({client_port(e) for e in sessions}) == len(sessions) == 9
    rows = [plugin.summarize(e) for e in sessions]
    assert {row["summary"] for row in rows} >= {"api.example.com", "localhost"}
    assert {row["status"] for row in rows} >= {"TLS 1.3 h2", "TLS 1.2 http/1.1", "TLS 1.3"}
    assert not any(row["error"] for row in rows)
    representation = plugin.represent(sessions[0])
    assert representation["request"][0]["title"] == "Client hello"
    assert any(section["title"] == "Certificate" for section in representation["response"])
