"""One Redis connection: commands and replies paired in order, pub/sub, transactions."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from mizu_core import CloseReason, ConnectionContext, Direction, Dissector, Message, Protocol

from mizu_redis.commands import command_key, command_name, without_password
from mizu_redis.resp import Frame, Limits, RespReader

RESP2 = Protocol(
    name="redis",
    version="2",
    abbr="REDIS",
    long_name="Redis Serialization Protocol",
    macro="redis",
    background_color="#a41e11",
    foreground_color="#ffffff",
    reference_link="https://redis.io/docs/latest/develop/reference/protocol-spec/",
    priority=3,
    ports=(6379,),
    secret_fields=("password",),
    payload_fields=("args", "payload"),
)
RESP3 = replace(RESP2, version="3")

CONFIRMATIONS = {
    "subscribe": ("subscribe", True),
    "unsubscribe": ("subscribe", False),
    "psubscribe": ("psubscribe", True),
    "punsubscribe": ("psubscribe", False),
    "ssubscribe": ("ssubscribe", True),
    "sunsubscribe": ("ssubscribe", False),
}
"""A confirmation's kind: the subscription family it changes, and whether it adds."""
MESSAGES = {"message": 3, "smessage": 3, "pmessage": 4}
"""Pushed pub/sub messages and their number of items."""


@dataclass(slots=True)
class _Subscribing:
    """A (P|S)(UN)SUBSCRIBE waiting for its confirmations, one per channel or pattern."""

    request: Message
    kind: str
    expected: int | None
    confirmations: list[Any] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)


def error_status(message: str) -> str:
    """The error code Redis puts first (``ERR``, ``WRONGTYPE``, ``MOVED``…)."""
    code = message.split(" ", 1)[0]
    return code if code.isupper() else "ERR"


class RedisDissector(Dissector):
    def __init__(self, context: ConnectionContext, limits: Limits) -> None:
        super().__init__(context)
        self.limits = limits
        self.readers = (RespReader(limits, inline=True), RespReader(limits, inline=False))
        self.matcher = context.in_order_matcher()
        self.protocol = RESP2
        self.subscribing: deque[_Subscribing] = deque()
        self.subscriptions: dict[str, set[str]] = {
            family: set() for family, _ in CONFIRMATIONS.values()
        }
        self.subscribed = False
        """The server said this connection has subscriptions (RESP2 messages are then pushes)."""
        self.transaction: list[dict[str, str]] | None = None
        self.replies_unpaired = False
        """Bytes were lost: replies cannot be matched until the client sends a command again."""
        self.unpaired_reason = "gap"
        """Why a message is alone while replies are unpaired: ``midstream`` until the first
        command of a connection caught mid-way, ``gap`` after bytes were lost."""
        self.last_reply_time = -math.inf
        """When the server's latest bytes were sent."""
        self.lost_time = -math.inf
        """When bytes were last found lost."""
        self.counters = context.counters
        if context.connection.role_guessed:
            # Caught mid-connection: the first bytes may be the middle of a command or a
            # reply, and replies to commands sent before the capture may still come (shown
            # alone, when a segment starts with one).
            for reader in self.readers:
                reader.lose()
            self.replies_unpaired = True
            self.unpaired_reason = "midstream"

    # -- the core's calls ----------------------------------------------------------------------

    def feed(self, direction: Direction, data: bytes, timestamp: float) -> None:
        reader = self.readers[direction]
        if direction == Direction.SERVER_TO_CLIENT:
            # Bytes held behind lost ones come later with their own (earlier) time.
            self.last_reply_time = max(self.last_reply_time, timestamp)
            if reader.lost and self.replies_unpaired and self.unpaired_reason == "gap":
                # Replies carry no marker: after lost bytes, resynchronise only on the reply
                # to a command seen whole (what comes first is likely the rest of a reply).
                reader.skipped += len(data)
                self.counters["bytes_skipped"] += len(data)
                return
        errors, skipped, resyncs = reader.errors, reader.skipped, reader.resyncs
        frames = reader.feed(data, timestamp)
        if reader.skipped != skipped:
            self.counters["bytes_skipped"] += reader.skipped - skipped
        if reader.resyncs != resyncs:
            self.counters["resyncs"] += reader.resyncs - resyncs
        handle = self._command if direction == Direction.CLIENT_TO_SERVER else self._reply
        for frame in frames:
            if frame.errors_before:
                self._lost_track()
                errors += frame.errors_before
            handle(frame)
        if reader.errors != errors:  # bytes after the last frame were not RESP
            self._lost_track()
        if direction == Direction.SERVER_TO_CLIENT and reader.saw_resp3:
            self.protocol = RESP3

    def gap(self, direction: Direction, length: int, timestamp: float) -> None:
        self.readers[direction].lose()
        self.lost_time = timestamp
        if direction == Direction.SERVER_TO_CLIENT and not (
            self.replies_unpaired or self.subscribed or self.subscribing
        ):
            # Replies come in the order of the commands: those sent before the bytes after the
            # loss may have had theirs in it, later ones get theirs after it. (A reply that
            # ended before the oldest command waiting was sent is not its reply.)
            self.matcher.expire(timestamp, "gap")
        else:
            self._lost_track()

    def close(self, timestamp: float, reason: CloseReason) -> None:
        self._flush_subscribing("closed")

    # -- client to server ----------------------------------------------------------------------

    def _command(self, frame: Frame) -> None:
        words = [item if isinstance(item, str) else str(item) for item in _items(frame.value)]
        name, args = command_name(words)
        data: dict[str, Any] = {"method": name}
        key = command_key(name, args)
        if key is not None:
            data["key"] = key
        args, password = without_password(name, args)
        data["args"] = args
        if password is not None:
            data["password"] = password
        if frame.type == "inline":
            data["inline"] = True
        if frame.truncated:
            data["truncated"] = True
        self._track_transaction(name, key, data)
        if name == "HELLO" and args:
            self.protocol = RESP3 if args[0] == "3" else RESP2
        request = self._message(Direction.CLIENT_TO_SERVER, frame, data)
        if self.replies_unpaired:
            if frame.first_time <= max(self.last_reply_time, self.lost_time):
                # Sent before server bytes already read, or held behind lost bytes until
                # now: its reply may have gone by, unrecognised. Pairing resumes with a
                # command sent after everything the server said so far.
                self.context.emit(request, None, unpaired=self.unpaired_reason)
                return
            self.replies_unpaired = False
        lowered = name.lower()
        if lowered in CONFIRMATIONS:
            self.subscribing.append(_Subscribing(request, lowered, len(args) or None))
        else:
            self.matcher.request(request)

    def _track_transaction(self, name: str, key: str | None, data: dict[str, Any]) -> None:
        if name == "MULTI":
            self.transaction = []
        elif self.transaction is not None and name in ("EXEC", "DISCARD"):
            if name == "EXEC":
                data["transaction"] = self.transaction
            self.transaction = None
        elif self.transaction is not None and len(self.transaction) < self.limits.max_elements:
            self.transaction.append({"method": name} | ({"key": key} if key is not None else {}))

    # -- server to client ----------------------------------------------------------------------

    def _reply(self, frame: Frame) -> None:
        items: list[Any] = frame.value if frame.type in ("push", "array") else []
        kind = items[0].lower() if items and isinstance(items[0], str) else ""
        out_of_band = frame.type == "push" or (self.subscribed and frame.type == "array")
        if kind in CONFIRMATIONS and (out_of_band or self.subscribing) and len(items) == 3:
            self._confirmation(kind, frame)
        elif out_of_band and MESSAGES.get(kind) == len(items):
            self._push(frame, _message_data(kind, items))
        elif frame.type == "push":
            self._push(frame, {"method": kind, "args": items[1:]})
        elif self.replies_unpaired:
            self.context.emit(None, self._response(frame), unpaired=self.unpaired_reason)
        else:
            request = self.matcher.peek()
            if request is not None and request.first_time > frame.first_time:
                # Sent after this reply began: the reply answers an earlier command, which
                # the capture lost or gave up on at a gap.
                self.context.emit(None, self._response(frame), unpaired="gap")
                return
            if frame.type == "error" and request and request.data["method"] == "HELLO":
                self.protocol = RESP2  # the server refused RESP3 (NOPROTO)
            self.matcher.response(self._response(frame))

    def _push(self, frame: Frame, data: dict[str, Any]) -> None:
        if frame.truncated:
            data["truncated"] = True
        self.context.emit(self._message(Direction.SERVER_TO_CLIENT, frame, data), None)

    def _confirmation(self, kind: str, frame: Frame) -> None:
        _, channel, count = frame.value
        family, adds = CONFIRMATIONS[kind]
        channels = self.subscriptions[family]
        pending = self.subscribing[0] if self.subscribing else None
        if pending is not None and pending.kind == kind:
            if pending.expected is None:  # UNSUBSCRIBE with no argument: all of this family
                pending.expected = max(len(channels), 1)
            pending.confirmations.append(frame.value)
            pending.frames.append(frame)
        if isinstance(channel, str):
            if adds:
                channels.add(channel)
            else:
                channels.discard(channel)
        self.subscribed = isinstance(count, int) and count > 0
        if pending is None or pending.kind != kind:
            self.context.emit(None, self._response(frame), unpaired=self.unpaired_reason)
        elif len(pending.confirmations) >= (pending.expected or 1):
            self.subscribing.popleft()
            self.context.emit(pending.request, self._confirmations(pending))

    def _confirmations(self, pending: _Subscribing) -> Message:
        first, last = pending.frames[0], pending.frames[-1]
        return Message(
            protocol=self.protocol,
            direction=Direction.SERVER_TO_CLIENT,
            first_time=first.first_time,
            last_time=last.last_time,
            size=sum(frame.size for frame in pending.frames),
            data={"type": first.type, "value": pending.confirmations, "status": "OK"},
        )

    def _response(self, frame: Frame) -> Message:
        status = error_status(frame.value) if frame.type == "error" else "OK"
        data: dict[str, Any] = {"type": frame.type, "value": frame.value, "status": status}
        if frame.attributes:
            data["attributes"] = frame.attributes
        if frame.truncated:
            data["truncated"] = True
        return self._message(Direction.SERVER_TO_CLIENT, frame, data)

    # -- helpers -------------------------------------------------------------------------------

    def _message(self, direction: Direction, frame: Frame, data: dict[str, Any]) -> Message:
        return Message(
            self.protocol, direction, frame.first_time, frame.last_time, frame.size, data
        )

    def _lost_track(self) -> None:
        """Bytes are missing: what is pending will get no reply we can recognise."""
        self.matcher.flush("gap")
        self._flush_subscribing("gap")
        self.transaction = None
        self.replies_unpaired = True
        self.unpaired_reason = "gap"

    def _flush_subscribing(self, reason: str) -> None:
        while self.subscribing:
            self.context.emit(self.subscribing.popleft().request, None, unpaired=reason)


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _message_data(kind: str, items: list[Any]) -> dict[str, Any]:
    """A pushed pub/sub message as an entry's request."""
    if kind == "pmessage":
        _, pattern, channel, payload = items
        return {
            "method": kind,
            "key": channel,
            "channel": channel,
            "pattern": pattern,
            "payload": payload,
        }
    _, channel, payload = items
    return {"method": kind, "key": channel, "channel": channel, "payload": payload}
