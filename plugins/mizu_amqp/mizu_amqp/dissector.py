"""The AMQP 0-9-1 connection dissector: frames → messages → entries (the work is
:class:`~mizu_amqp.connection.AmqpConnection`'s, which says how methods are paired)."""

from __future__ import annotations

from mizu_amqp.connection import AmqpConnection, Limits
from mizu_amqp.declarations import Settings
from mizu_core import CloseReason, ConnectionContext, Direction, Dissector


class AmqpDissector(Dissector):
    """One AMQP connection."""

    def __init__(self, context: ConnectionContext, settings: Settings) -> None:
        super().__init__(context)
        limits = Limits(settings.max_body_size, settings.max_unconfirmed, settings.max_frame_size)
        self._connection = AmqpConnection(context, limits)
        # The core calls the compiled reader itself, without a frame of this interpreted class
        # in between for every segment.
        self.feed = self._connection.feed  # type: ignore[method-assign]

    def gap(self, direction: Direction, length: int, timestamp: float) -> None:
        self._connection.gap(direction, timestamp)

    def close(self, timestamp: float, reason: CloseReason) -> None:
        self._connection.close()
