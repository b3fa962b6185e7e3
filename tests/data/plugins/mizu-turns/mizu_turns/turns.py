"""Pairs turns of speech: what the client says until the server answers, and the answer.

Settings, as a third party's plugin takes them (``plugins.turns.*``): ``label`` (a string every
message carries as ``label``) and ``max-turn-bytes`` (a positive integer: bytes counted per turn,
at most). ``configure`` parses them into :class:`TurnSettings`, which the dissector reads from its
context."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class TurnSettings:
    label: str | None = None
    max_turn_bytes: int | None = None


class TurnDissector(Dissector):
    def __init__(self, context: ConnectionContext, protocol: Protocol = TURNS) -> None:
        super().__init__(context)
        self.protocol = protocol
        settings = context.settings
        self.settings = settings if isinstance(settings, TurnSettings) else TurnSettings()
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
        data = {"method": "TURN", "bytes": self.size}
        if self.settings.max_turn_bytes is not None:
            data["bytes"] = min(self.size, self.settings.max_turn_bytes)
        if self.settings.label is not None:
            data["label"] = self.settings.label
        message = Message(self.protocol, self.speaker, self.first, self.last, self.size, data)
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
def configure(settings: Mapping) -> TurnSettings:
    for key in settings:
        if key not in ("label", "max-turn-bytes"):
            raise ValueError(f"unknown key {key!r} (turns knows label, max-turn-bytes)")
    limit = settings.get("max-turn-bytes")
    if limit is not None and (type(limit) is not int or limit < 1):
        raise ValueError(f"max-turn-bytes: expected a positive integer, got {limit!r}")
    label = settings.get("label")
    return TurnSettings(None if label is None else str(label), limit)


@hookimpl
def dissect(context, client_head, server_head):
    return TurnDissector(context)


@hookimpl
def summarize(entry):
    return {
        "summary": f"{entry['request']['bytes'] if entry['request'] else 0} bytes",
        "summaryQuery": "turns",
    }
