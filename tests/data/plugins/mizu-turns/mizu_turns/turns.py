"""Pairs turns of speech: what the client says until the server answers, and the answer."""

from collections.abc import Sequence

from mizu_core import ConnectionContext, Direction, Dissector, Message, Protocol, hookimpl

TURNS = Protocol(
    name="turns",
    version="1",
    abbr="TURN",
    long_name="Turn taking",
    macro="turns",
    priority=5,
    ports=(7777,),
)


class TurnDissector(Dissector):
    def __init__(self, context: ConnectionContext, protocol: Protocol = TURNS) -> None:
        super().__init__(context)
        self.protocol = protocol
        self.matcher = context.in_order_matcher()
        self.speaker: Direction | None = None
        self.size = 0
        self.first = self.last = 0.0

    def feed(self, direction: Direction, data: bytes, timestamp: float) -> None:
        if direction != self.speaker:
            self._end_turn()
            self.speaker, self.size, self.first = direction, 0, timestamp
        self.size += len(data)
        self.last = timestamp

    def _end_turn(self) -> None:
        if self.speaker is None:
            return
        message = Message(
            self.protocol,
            self.speaker,
            self.first,
            self.last,
            self.size,
            {"method": "TURN", "bytes": self.size},
        )
        if self.speaker == Direction.CLIENT_TO_SERVER:
            self.matcher.request(message)
        else:
            self.matcher.response(message)

    def close(self, timestamp, reason) -> None:
        self._end_turn()


@hookimpl
def protocols() -> Sequence[Protocol]:
    return [TURNS]


@hookimpl
def dissect(context, client_head, server_head):
    return TurnDissector(context)


@hookimpl
def summarize(entry):
    return {
        "summary": f"{entry['request']['bytes'] if entry['request'] else 0} bytes",
        "summaryQuery": "turns",
    }
