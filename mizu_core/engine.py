"""The pipeline of one capture: source → decode → reassembly → dissectors → entries."""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Callable, Iterable
from typing import Any

from mizu_core.capture import FileSource, PacketSource
from mizu_core.decode import Decoder, DecodeStats
from mizu_core.dispatch import Dispatcher, EntrySink
from mizu_core.model import Pair
from mizu_core.plugins import PluginManager
from mizu_core.reassembly import Reassembler, ReassemblyLimits
from mizu_core.watchdog import Watchdog

STALL_LIMIT_ENV = "MIZU_STALL_SECONDS"
"""Overrides the stall limit (seconds; 0 turns the watchdog off)."""
DEFAULT_STALL_LIMIT = 5.0


def default_stall_limit() -> float:
    """:data:`DEFAULT_STALL_LIMIT`, or the environment's :data:`STALL_LIMIT_ENV`."""
    text = os.environ.get(STALL_LIMIT_ENV, "")
    try:
        seconds = float(text) if text else DEFAULT_STALL_LIMIT
    except ValueError:
        seconds = -1.0
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"{STALL_LIMIT_ENV}={text!r}: write a number of seconds (0: no limit)")
    return seconds


class EngineSettings:
    # A plain class, not a dataclass: its generated methods would be compiled at every start-up.
    __slots__ = (
        "limits",
        "offer_limit",
        "on_pair",
        "response_timeout",
        "stall_limit",
        "tapper_id",
    )

    def __init__(
        self,
        tapper_id: str = "",
        limits: ReassemblyLimits | None = None,
        response_timeout: float = 30.0,
        offer_limit: int = 16 << 10,
        on_pair: Callable[[Pair], None] | None = None,
        stall_limit: float | None = None,
    ) -> None:
        self.tapper_id = tapper_id
        self.limits = limits
        self.response_timeout = response_timeout
        self.offer_limit = offer_limit
        self.on_pair = on_pair
        """Sees every pair before it becomes an entry (the test kit records them)."""
        self.stall_limit = default_stall_limit() if stall_limit is None else stall_limit
        """Seconds a plugin's call may make no progress before it is interrupted and the plugin
        isolated (:mod:`mizu_core.watchdog`); 0: never. None: the environment's default."""


class Engine:
    """Runs packet sources through the stages and keeps every counter."""

    def __init__(
        self, plugins: PluginManager, sink: EntrySink, settings: EngineSettings | None = None
    ) -> None:
        settings = settings or EngineSettings()
        self.plugins = plugins
        self.dispatcher = Dispatcher(
            plugins,
            sink,
            tapper_id=settings.tapper_id or socket.gethostname(),
            offer_limit=settings.offer_limit,
            response_timeout=settings.response_timeout,
            on_pair=settings.on_pair,
        )
        self.reassembler = Reassembler(self.dispatcher, settings.limits, plugins.server_ports)
        self.watchdog = Watchdog(settings.stall_limit, self.dispatcher)
        self.dispatcher.swap_roles = self.reassembler.swap_roles
        self.decode_stats = DecodeStats()
        self.sources: list[PacketSource] = []
        self.last_time = 0.0
        self._decoder: Decoder | None = None  # the running source's, counting as it goes

    def run(self, source: PacketSource) -> None:
        """Read ``source`` to its end (a live source: until it is stopped)."""
        self.sources.append(source)
        decoder = self._decoder = Decoder(source.linktype)
        with self.watchdog.watching():
            self.last_time = self.reassembler.consume(source, decoder, self.last_time)
        if isinstance(source, FileSource):
            source.check_complete(decoder.stats.frames, decoder.stats.frame_bytes)
        self._decoder = None
        self.decode_stats.add(decoder.stats)

    def run_files(self, paths: Iterable[str]) -> None:
        """Each file is a capture of its own: its connections end with it."""
        for path in paths:
            self.run(FileSource(path))
            self.finish()

    def finish(self) -> None:
        """End every open connection and emit what is pending."""
        with self.watchdog.watching():
            self.reassembler.finish(self.last_time)
            self.dispatcher.expire(float("inf"))

    def stats(self) -> dict[str, Any]:
        decode = DecodeStats()
        decode.add(self.decode_stats)
        running = self._decoder
        if running is not None:
            decode.add(running.stats)
        capture = [source.stats.as_dict() | {"source": source.name} for source in self.sources]
        return {
            "packets": decode.frames,
            "tcp_packets": self.reassembler.stats.packets,
            "skipped": decode.not_ip + decode.not_tcp + decode.malformed,
            "connections": self.reassembler.stats.connections,
            "entries": self.dispatcher.stats.entries,
            "decode": decode.as_dict(),
            "reassembly": self.reassembler.stats.as_dict(),
            "dispatch": self.dispatcher.stats.as_dict(),
            "capture": capture,
            "plugin_errors": dict(self.plugins.errors),
            "plugin_counters": {
                name: dict(counters) for name, counters in self.dispatcher.plugin_counters.items()
            },
        }
