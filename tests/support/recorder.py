"""A plugin for tests that takes every connection and records what the core feeds it."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mizu_core import CloseReason, ConnectionContext, Direction, Dissector, Protocol, hookimpl
from mizu_core.capture import FileSource
from mizu_core.engine import Engine, EngineSettings
from mizu_core.plugins import PluginManager

RECORDED = Protocol(
    name="recorded", version="1", abbr="REC", long_name="Recorded", macro="rec", priority=0
)


@dataclass
class RecordedConnection:
    client: tuple[str, int]
    server: tuple[str, int]
    role_guessed: bool
    streams: tuple[bytearray, bytearray] = field(default_factory=lambda: (bytearray(), bytearray()))
    gaps: list[tuple[Direction, int]] = field(default_factory=list)
    events: list[tuple[Direction, int]] = field(default_factory=list)
    """Feed order: (direction, length) per chunk, gaps as negative lengths."""
    times: list[float] = field(default_factory=list)
    """The time given with each of :attr:`events`."""
    close_reason: CloseReason | None = None
    packets: list[int] = field(default_factory=list)
    """Packets each way as the core counted them (set at close)."""

    def digest(self, direction: Direction) -> dict[str, Any]:
        data = bytes(self.streams[direction])
        return {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}


class _Recorder(Dissector):
    def __init__(self, context: ConnectionContext, record: RecordedConnection) -> None:
        super().__init__(context)
        self.record = record

    def feed(self, direction: Direction, data: bytes, timestamp: float) -> None:
        self.record.streams[direction].extend(data)
        self.record.events.append((direction, len(data)))
        self.record.times.append(timestamp)

    def gap(self, direction: Direction, length: int, timestamp: float) -> None:
        self.record.gaps.append((direction, length))
        self.record.events.append((direction, -length))
        self.record.times.append(timestamp)

    def close(self, timestamp: float, reason: CloseReason) -> None:
        self.record.close_reason = reason
        self.record.packets = list(self.context.stats.packets)


class StreamRecorder:
    """Register with a PluginManager; :attr:`connections` fills as the engine runs."""

    def __init__(self) -> None:
        self.connections: list[RecordedConnection] = []

    @hookimpl
    def protocols(self) -> Sequence[Protocol]:
        return [RECORDED]

    @hookimpl
    def dissect(
        self, context: ConnectionContext, client_head: bytes, server_head: bytes
    ) -> Dissector:
        info = context.connection
        record = RecordedConnection(
            (info.client.ip, info.client.port),
            (info.server.ip, info.server.port),
            info.role_guessed,
        )
        self.connections.append(record)
        return _Recorder(context, record)


def record_streams(
    capture: str | Path, engine_settings: EngineSettings | None = None
) -> tuple[list[RecordedConnection], Engine]:
    """Run ``capture`` through the engine with only the recorder; its connections in order."""
    recorder = StreamRecorder()
    plugins = PluginManager()
    plugins.register(recorder, "recorder")
    engine = Engine(plugins, lambda entry: None, engine_settings)
    engine.run(FileSource(capture))
    engine.finish()
    return recorder.connections, engine
