"""A plugin that loops forever on a connection whose bytes hold ``STUCK``, and raises on one
whose bytes hold ``RAISE``: what the fuzz runner must report."""

from __future__ import annotations

from collections.abc import Sequence

from mizu_core import ConnectionContext, Direction, Dissector, Protocol, hookimpl

STUCK = Protocol(name="stuck", version="1", abbr="STK", long_name="Stuck", macro="stuck")


class _Stuck(Dissector):
    def feed(self, direction: Direction, data: bytes, timestamp: float) -> None:
        if b"RAISE" in data:
            raise ValueError("a bug the fuzz runner must report")
        while b"STUCK" in data:
            data = data[:]


@hookimpl
def protocols() -> Sequence[Protocol]:
    return [STUCK]


@hookimpl
def dissect(context: ConnectionContext, client_head: bytes, server_head: bytes) -> Dissector:
    return _Stuck(context)
