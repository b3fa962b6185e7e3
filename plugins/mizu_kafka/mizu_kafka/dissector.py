"""The per-connection Kafka dissector: frames in, request/response pairs out."""

from __future__ import annotations

from mizu_core import CloseReason, ConnectionContext, Direction, Dissector
from mizu_kafka.connection import KafkaConnection
from mizu_kafka.protocol import Settings


class KafkaDissector(Dissector):
    """Decodes requests as they come, pairs responses by correlation id and decodes each with
    its request's API key and version (the work is :class:`KafkaConnection`'s)."""

    def __init__(
        self,
        context: ConnectionContext,
        settings: Settings,
        skip: int = 0,
        requests: Direction = Direction.CLIENT_TO_SERVER,
    ) -> None:
        """``skip`` bytes of the requests' direction precede the first request; ``requests``
        is the direction requests travel (the server's, when the core guessed the roles of a
        connection caught mid-stream the wrong way round)."""
        super().__init__(context)
        self._connection = KafkaConnection(context, settings, skip, requests)
        # The core calls the compiled reader itself, without a frame of this interpreted class
        # in between for every segment.
        self.feed = self._connection.feed  # type: ignore[method-assign]

    def gap(self, direction: Direction, length: int, timestamp: float) -> None:
        self._connection.splitter(direction).lose_sync()

    def close(self, timestamp: float, reason: CloseReason) -> None:
        self._connection.close()
