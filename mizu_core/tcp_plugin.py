"""The ``tcp`` plugin: connections no other plugin claims are entries too.

Built into the core but registered like any other plugin (entry point ``tcp`` in
``mizu.plugins``), ranked after every protocol plugin. Each connection it takes becomes one
entry when it ends: bytes and packets each way, duration, and how it ended.
"""

from __future__ import annotations

from collections.abc import Sequence

from mizu_core.dissector import CloseReason, ConnectionContext, Dissector
from mizu_core.entry import Entry, Representation, Summary, all_of, equals, table
from mizu_core.markers import hookimpl
from mizu_core.model import Direction, Message, Protocol

TCP = Protocol(
    name="tcp",
    version="",
    abbr="TCP",
    long_name="Transmission Control Protocol",
    macro="tcp",
    background_color="#6c757d",
    foreground_color="#ffffff",
    reference_link="https://www.rfc-editor.org/rfc/rfc9293",
    priority=1_000_000,
)
FAILED_ENDINGS = frozenset({CloseReason.RST, CloseReason.REFUSED, CloseReason.TIMEOUT})
"""Endings that are errors: reset, refused, or never answered."""


class TcpDissector(Dissector):
    """Counts nothing itself (the core keeps the counters); reports the connection at close."""

    def feed(self, direction: Direction, data: bytes, timestamp: float) -> None:
        pass

    def close(self, timestamp: float, reason: CloseReason) -> None:
        context = self.context
        stats = context.stats
        start = context.connection.start_time
        request = Message(
            protocol=TCP,
            direction=Direction.CLIENT_TO_SERVER,
            first_time=start,
            last_time=start,
            size=stats.bytes[Direction.CLIENT_TO_SERVER],
            data={
                "method": "TCP",
                "packets": stats.packets[Direction.CLIENT_TO_SERVER],
                "bytes": stats.bytes[Direction.CLIENT_TO_SERVER],
            },
        )
        response = Message(
            protocol=TCP,
            direction=Direction.SERVER_TO_CLIENT,
            first_time=start,
            last_time=max(stats.last_time, start),
            size=stats.bytes[Direction.SERVER_TO_CLIENT],
            data={
                "status": str(reason),
                "packets": stats.packets[Direction.SERVER_TO_CLIENT],
                "bytes": stats.bytes[Direction.SERVER_TO_CLIENT],
                "duration": round(max(stats.last_time - start, 0.0) * 1000, 3),
                "roleGuessed": context.connection.role_guessed,
            },
        )
        context.emit(request, response)


@hookimpl
def protocols() -> Sequence[Protocol]:
    return [TCP]


@hookimpl
def dissect(context: ConnectionContext, client_head: bytes, server_head: bytes) -> Dissector:
    return TcpDissector(context)


@hookimpl
def summarize(entry: Entry) -> Summary:
    response = entry.get("response") or {}
    status = response.get("status", "")
    dst = entry["dst"]
    return {
        "summary": f"{dst['ip']}:{dst['port']}",
        "summaryQuery": all_of("tcp", equals("dst.port", int(dst["port"]))),
        "method": "TCP",
        "methodQuery": "tcp",
        "status": status,
        "statusQuery": all_of("tcp", equals("response.status", status)),
        "error": status in FAILED_ENDINGS,
        "statusName": status,
    }


@hookimpl
def represent(entry: Entry) -> Representation:
    request = entry.get("request") or {}
    response = entry.get("response") or {}
    return {
        "request": [
            table(
                "Client to server",
                [
                    ("Packets", request.get("packets", 0), "request.packets"),
                    ("Bytes", request.get("bytes", 0), "request.bytes"),
                ],
            )
        ],
        "response": [
            table(
                "Server to client",
                [
                    ("Packets", response.get("packets", 0), "response.packets"),
                    ("Bytes", response.get("bytes", 0), "response.bytes"),
                    ("Ended with", response.get("status", ""), "response.status"),
                    (
                        "Duration (ms)",
                        response.get("duration", entry.get("elapsedTime", 0)),
                        "response.duration",
                    ),
                ],
            )
        ],
    }
