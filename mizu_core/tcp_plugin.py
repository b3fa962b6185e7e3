"""The ``tcp`` plugin: connections no other plugin claims are entries too.

Built into the core but registered like any other plugin (entry point ``tcp`` in
``mizu.plugins``), ranked after every protocol plugin. Each connection it takes becomes one
entry when it ends: bytes and packets each way, duration, and how it ended.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mizu_core.dissector import CloseReason, ConnectionContext, Dissector
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
def summarize(entry: Mapping[str, Any]) -> dict[str, Any]:
    response = entry.get("response") or {}
    status = response.get("status", "")
    dst = entry["dst"]
    return {
        "summary": f"{dst['ip']}:{dst['port']}",
        "summaryQuery": f"tcp and dst.port == {int(dst['port'])}",
        "method": "TCP",
        "methodQuery": "tcp",
        "status": status,
        "statusQuery": f'tcp and response.status == "{status}"',
    }


@hookimpl
def represent(entry: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    request = entry.get("request") or {}
    response = entry.get("response") or {}
    return {
        "request": [
            {
                "type": "table",
                "title": "Client to server",
                "data": [
                    {
                        "name": "Packets",
                        "value": request.get("packets", 0),
                        "selector": "request.packets",
                    },
                    {
                        "name": "Bytes",
                        "value": request.get("bytes", 0),
                        "selector": "request.bytes",
                    },
                ],
            }
        ],
        "response": [
            {
                "type": "table",
                "title": "Server to client",
                "data": [
                    {
                        "name": "Packets",
                        "value": response.get("packets", 0),
                        "selector": "response.packets",
                    },
                    {
                        "name": "Bytes",
                        "value": response.get("bytes", 0),
                        "selector": "response.bytes",
                    },
                    {
                        "name": "Ended with",
                        "value": response.get("status", ""),
                        "selector": "response.status",
                    },
                    {
                        "name": "Duration (ms)",
                        "value": response.get("duration", entry.get("elapsedTime", 0)),
                        "selector": "response.duration",
                    },
                ],
            }
        ],
    }
