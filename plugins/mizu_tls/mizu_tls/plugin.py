"""The hook implementations: the module registered as the ``tls`` plugin.

Settings (``plugins.tls.*``): ``keylog``, the path of an NSS key log (``SSLKEYLOGFILE``) whose
secrets decrypt the sessions they belong to; ``mizu dissect --tls-keylog`` and ``mizu tap
--local --tls-keylog`` set it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mizu_core import (
    NEED_MORE,
    ConnectionContext,
    Dissector,
    Pair,
    Protocol,
    Verdict,
    escape_query_string,
    hookimpl,
)
from mizu_tls.declarations import RESYNC_WINDOW, TLS
from mizu_tls.keylog import KeyLog
from mizu_tls.records import HANDSHAKE, looks_like_header, record_run_start

SETTINGS = frozenset({"keylog"})


@dataclass(frozen=True, slots=True)
class Settings:
    keylog: KeyLog | None = None
    """The key log of this run, when one was given."""


@hookimpl
def protocols() -> Sequence[Protocol]:
    return [TLS]


@hookimpl
def configure(settings: Mapping[str, Any]) -> Settings:
    unknown = sorted(set(settings) - SETTINGS)
    if unknown:
        raise ValueError(f"unknown setting {unknown[0]!r} (known: {', '.join(sorted(SETTINGS))})")
    path = settings.get("keylog") or ""
    if not isinstance(path, str | Path):
        raise ValueError("keylog: expected the path of a key log file")
    if path and Path(path).is_dir():
        raise ValueError(f"keylog: {path} is a directory, not a key log file")
    return Settings(KeyLog(path) if path else None)


def _dissector(context: ConnectionContext, midstream: bool = False) -> Dissector:
    # Deferred to the first TLS connection: captures without one never load the handshake,
    # JA4 and certificate modules. A failing import raises here, where the core isolates it as
    # this plugin's error.
    from mizu_tls.dissector import TlsDissector

    settings = context.settings
    keylog = settings.keylog if isinstance(settings, Settings) else None
    return TlsDissector(context, keylog, midstream=midstream)


def _client_hello_start(head: bytes) -> bool | Verdict:
    """Whether ``head`` starts with a handshake record holding a ClientHello."""
    prefix = head[:6]
    if len(prefix) < 6:
        expected = b"\x16\x03"
        if not expected.startswith(prefix[:2]) or (len(prefix) >= 3 and prefix[2] > 4):
            return False
        return NEED_MORE
    return looks_like_header(prefix) and prefix[0] == HANDSHAKE and prefix[5] == 1


@hookimpl
def dissect(
    context: ConnectionContext, client_head: bytes, server_head: bytes
) -> Dissector | Verdict | None:
    if client_head:
        verdict = _client_hello_start(client_head)
        if verdict is True:
            return _dissector(context)
        if verdict is NEED_MORE:
            return NEED_MORE
    if context.connection.role_guessed:
        if server_head and _client_hello_start(server_head) is True and context.swap_roles():
            return _dissector(context)
        # A capture that began after the handshake, maybe in the middle of a record.
        heads = (client_head, server_head)
        if any(record_run_start(head) is not None for head in heads):
            return _dissector(context, midstream=True)
        connection = context.connection
        if (connection.client.port in TLS.ports or connection.server.port in TLS.ports) and len(
            client_head
        ) + len(server_head) < 2 * RESYNC_WINDOW:
            return NEED_MORE  # the next record boundary is in the next record's length
    return None


@hookimpl
def analyze(pair: Pair, entry: dict[str, Any]) -> dict[str, Any] | None:
    request = entry.get("request") or {}
    response = entry.get("response") or {}
    session = {
        "version": response.get("version", ""),
        "cipher": response.get("cipher", ""),
        "sni": request.get("sni", ""),
        "alpn": response.get("alpn", ""),
        "decrypted": bool(response.get("decrypted")),
    }
    if "ja4" in request:
        session["ja4"] = request["ja4"]
    if response.get("reason"):
        session["reason"] = response["reason"]
    entry["tls"] = session
    return entry


@hookimpl
def summarize(entry: Mapping[str, Any]) -> dict[str, Any]:
    request = entry.get("request") or {}
    response = entry.get("response") or {}
    sni = str(request.get("sni", ""))
    dst = entry["dst"]
    status = str(response.get("status", ""))
    fatal = any(alert.get("level") == "fatal" for alert in response.get("alerts", ()))
    row: dict[str, Any] = {
        "summary": sni or f"{dst['ip']}:{dst['port']}",
        "summaryQuery": f'tls and tls.sni == "{escape_query_string(sni)}"'
        if sni
        else f"tls and dst.port == {int(dst['port'])}",
        "method": "TLS",
        "methodQuery": "tls",
        "status": status,
        "statusQuery": f'tls and response.status == "{escape_query_string(status)}"',
        "error": fatal,
    }
    if fatal:
        row["statusName"] = status
    return row


def _row(name: str, value: Any, selector: str) -> dict[str, Any]:
    if isinstance(value, list):
        value = ", ".join(str(item) for item in value)
    return {"name": name, "value": value, "selector": selector}


@hookimpl
def represent(entry: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    request = entry.get("request") or {}
    response = entry.get("response") or {}
    client_rows = [
        _row("Server name (SNI)", request.get("sni", ""), "request.sni"),
        _row("ALPN offered", request.get("alpn", []), "request.alpn"),
        _row("Versions offered", request.get("versions", []), "request.versions"),
        _row("Cipher suites offered", request.get("cipherSuites", []), "request.cipherSuites"),
        _row("JA4", request.get("ja4", ""), "request.ja4"),
        _row("JA4 (raw)", request.get("ja4_r", ""), "request.ja4_r"),
        _row("Records", request.get("records", 0), "request.records"),
        _row("Bytes", request.get("bytes", 0), "request.bytes"),
    ]
    server_rows = [
        _row("Version", response.get("version", ""), "response.version"),
        _row("Cipher suite", response.get("cipher", ""), "response.cipher"),
        _row("ALPN chosen", response.get("alpn", ""), "response.alpn"),
        _row("Decrypted", response.get("decrypted", False), "response.decrypted"),
    ]
    if response.get("reason"):
        server_rows.append(_row("Not decrypted because", response["reason"], "response.reason"))
    if "ended" in response:
        server_rows.append(_row("Ended with", response["ended"], "response.ended"))
    server_rows += [
        _row("Records", response.get("records", 0), "response.records"),
        _row("Bytes", response.get("bytes", 0), "response.bytes"),
    ]
    sections = [{"type": "table", "title": "Session", "data": server_rows}]
    alerts = response.get("alerts") or []
    if alerts:
        sections.append(
            {
                "type": "table",
                "title": "Alerts",
                "data": [
                    _row(
                        f"From the {alert['from']}",
                        f"{alert['level']} {alert['description']}".strip(),
                        f"response.alerts[{index}].description",
                    )
                    for index, alert in enumerate(alerts)
                ],
            }
        )
    for index, certificate in enumerate(response.get("certificates") or []):
        prefix = f"response.certificates[{index}]"
        sections.append(
            {
                "type": "table",
                "title": "Certificate" if index == 0 else f"Issuer certificate {index}",
                "data": [
                    _row(label, certificate.get(key, ""), f"{prefix}.{key}")
                    for label, key in (
                        ("Subject", "subject"),
                        ("Issuer", "issuer"),
                        ("Names (SAN)", "sans"),
                        ("Not before", "notBefore"),
                        ("Not after", "notAfter"),
                        ("Serial number", "serialNumber"),
                        ("Error", "error"),
                    )
                    if key in certificate
                ],
            }
        )
    return {
        "request": [{"type": "table", "title": "Client hello", "data": client_rows}],
        "response": sections,
    }
