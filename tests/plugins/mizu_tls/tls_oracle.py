"""Mizu's TLS entries checked against the clients' own account and against tshark."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mizu_tls.names import CIPHER_SUITES, VERSIONS

from mizu_core.capture import FileSource
from mizu_core.engine import Engine, EngineSettings
from mizu_core.plugins import PluginManager
from tests.plugins.mizu_tls.tls_peers import Expected
from tests.support.tshark import REASSEMBLE_OUT_OF_ORDER


def dissect(pcap: Path, keylog: Path | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    plugins = PluginManager().discover(allow=["http", "tls", "tcp"])
    plugins.configure({"tls": {"keylog": str(keylog)}} if keylog else {})
    entries: list[dict[str, Any]] = []
    engine = Engine(plugins, entries.append, EngineSettings(tapper_id="file"))
    engine.run(FileSource(pcap))
    engine.finish()
    return entries, engine.stats()


def client_port(entry: dict[str, Any]) -> int:
    return int(entry["src"]["port"])


def check_against_clients(entries: list[dict[str, Any]], expected: list[Expected]) -> None:
    """Every request the clients made is an entry (method, path, status, HTTP version), and it
    and its connection's ``tls`` entry carry the TLS parameters the client saw."""
    http = [entry for entry in entries if entry["protocol"]["name"] == "http"]
    sessions = {client_port(e): e for e in entries if e["protocol"]["name"] == "tls"}
    made = Counter(
        (x.method, x.path, x.status, x.http_version, x.sni, x.alpn, x.version, x.cipher)
        for x in expected
    )
    seen = Counter(
        (
            e["request"]["method"],
            e["request"]["path"],
            e["response"]["status"],
            e["request"]["httpVersion"],
            e["tls"]["sni"],
            e["tls"]["alpn"],
            e["tls"]["version"],
            e["tls"]["cipher"],
        )
        for e in http
    )
    assert seen == made
    for entry in http:
        assert entry["tls"]["decrypted"] is True
        assert entry["request"]["url"].startswith("https://")
        session = sessions[client_port(entry)]["tls"]
        assert {key: session[key] for key in ("sni", "alpn", "version", "cipher")} == {
            key: entry["tls"][key] for key in ("sni", "alpn", "version", "cipher")
        }
        assert session["decrypted"] is True


def target(url: str) -> str:
    """The request target of an absolute URL (path and query)."""
    split = urlsplit(url)
    return split.path + (f"?{split.query}" if split.query else "")


def tshark_rows(pcap: Path, keylog: Path, display_filter: str, *fields: str) -> list[list[str]]:
    command = ["tshark", "-r", str(pcap), "-o", f"tls.keylog_file:{keylog}"]
    command += [*REASSEMBLE_OUT_OF_ORDER, "-Y", display_filter, "-T", "fields"]
    command += ["-E", "occurrence=a", "-E", "separator=|", "-E", "aggregator=;"]
    for name in fields:
        command += ["-e", name]
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    return [line.split("|") for line in result.stdout.splitlines() if line]


def check_against_tshark(pcap: Path, keylog: Path, entries: list[dict[str, Any]]) -> None:
    """tshark, given the same key log, sees the same handshakes and the same requests."""
    sessions = {client_port(e): e["tls"] for e in entries if e["protocol"]["name"] == "tls"}
    names = {f"0x{number:04x}": name for number, name in CIPHER_SUITES.items()}
    versions = {f"0x{number:04x}": name for number, name in VERSIONS.items()}
    hellos = tshark_rows(
        pcap,
        keylog,
        "tls.handshake.type == 1",
        "tcp.srcport",
        "tls.handshake.extensions_server_name",
    )
    assert {int(port): sni for port, sni in hellos} == {p: s["sni"] for p, s in sessions.items()}
    server_hellos = tshark_rows(
        pcap,
        keylog,
        "tls.handshake.type == 2",
        "tcp.dstport",
        "tls.handshake.ciphersuite",
        "tls.handshake.version",
        "tls.handshake.extensions.supported_version",
        "tls.handshake.extensions_alpn_str",
    )
    chosen_alpn = {int(port): alpn for port, _, _, _, alpn in server_hellos}
    for port, alpn in tshark_rows(
        pcap, keylog, "tls.handshake.type == 8", "tcp.dstport", "tls.handshake.extensions_alpn_str"
    ):
        chosen_alpn[int(port)] = alpn  # TLS 1.3 servers send it encrypted
    for port, cipher, legacy, supported, _ in server_hellos:
        session = sessions[int(port)]
        assert names[cipher] == session["cipher"]
        assert versions[supported or legacy] == session["version"]
        assert chosen_alpn[int(port)] == session["alpn"]
    http = [entry for entry in entries if entry["protocol"]["name"] == "http"]
    requests = Counter()
    for port, method, uri in tshark_rows(
        pcap, keylog, "http.request", "tcp.srcport", "http.request.method", "http.request.uri"
    ):
        requests[(int(port), method, uri)] += 1
    for port, methods, paths in tshark_rows(
        pcap, keylog, "http2.headers.method", "tcp.srcport", "http2.headers.method",
        "http2.headers.path",
    ):  # fmt: skip
        for method, path in zip(methods.split(";"), paths.split(";"), strict=True):
            requests[(int(port), method, path)] += 1
    assert requests == Counter(
        (client_port(e), e["request"]["method"], target(e["request"]["url"])) for e in http
    )
    statuses = Counter()
    for port, code in tshark_rows(
        pcap, keylog, "http.response", "tcp.dstport", "http.response.code"
    ):
        statuses[(int(port), int(code))] += 1
    for port, codes in tshark_rows(
        pcap, keylog, "http2.headers.status", "tcp.dstport", "http2.headers.status"
    ):
        for code in codes.split(";"):
            statuses[(int(port), int(code))] += 1
    assert statuses == Counter((client_port(e), e["response"]["status"]) for e in http)
