"""The AMQP 0-9-1 connection dissector: frames → messages → entries.

Each direction has a :class:`FrameReader` and a :class:`_Side` that decodes its frames (the
hot ones by hand, :mod:`mizu_amqp.hot`, the rest with pamqp) and assembles content (a
``basic.publish``, ``basic.deliver``, ``basic.return`` or ``basic.get-ok`` with its content
header and body frames) per channel, so that channels may interleave. Complete methods go to
:class:`AmqpDissector`, which pairs them:

- a synchronous method waits for its reply on the same channel (``queue.declare`` ↔
  ``queue.declare-ok``, ``basic.get`` ↔ ``basic.get-ok`` or ``basic.get-empty``), either side
  may ask (``connection.start`` comes from the broker, ``channel.close`` from both);
- methods without a reply are entries with no response;
- in confirm mode (after ``confirm.select``) a ``basic.publish`` waits for the broker's
  ``basic.ack`` / ``basic.nack`` covering its sequence number (``multiple`` covers every earlier
  one) and gains ``confirmed``; the wait is bounded in count (``max-unconfirmed``) and in time
  (the core expires it like an unanswered request), and the publish is then emitted without it.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass, field
from typing import Any, cast

from pamqp import base, commands, exceptions, header

from mizu_amqp.frames import (
    DEFAULT_FRAME_LIMIT,
    FRAME_OVERHEAD,
    FrameReader,
)
from mizu_amqp.hot import HOT_METHODS, METHOD_INDEX, content_header
from mizu_amqp.values import body_json, method_arguments, properties_json, spec_name
from mizu_core import CloseReason, ConnectionContext, Direction, Dissector, Message, Protocol

AMQP = Protocol(
    name="amqp",
    version="0-9-1",
    abbr="AMQP",
    long_name="Advanced Message Queuing Protocol 0-9-1",
    macro="amqp",
    background_color="#ff6600",
    foreground_color="#ffffff",
    reference_link="https://www.rabbitmq.com/amqp-0-9-1-reference.html",
    priority=1,
    ports=(5672,),
)

CONTENT_METHODS = frozenset(
    {commands.Basic.Publish, commands.Basic.Deliver, commands.Basic.Return, commands.Basic.GetOk}
)
"""Methods followed by a content header and body frames."""

METHOD_CLASSES = cast(list[type[base.Frame]], list(commands.INDEX_MAPPING.values()))

REPLY_TO: dict[str, str] = {
    spec_name(reply): spec_name(method.name)
    for method in METHOD_CLASSES
    for reply in method.valid_responses
}
"""Reply method → the method it answers (``basic.get-empty`` → ``basic.get``)."""

DECODE_ERRORS = (
    exceptions.UnmarshalingException,
    ValueError,
    struct.error,
    KeyError,
    IndexError,
    OverflowError,  # a timestamp property past what datetime holds
    OSError,  # the same, on some platforms
)

MethodType = type[base.Frame]

STATEFUL_METHODS = frozenset(
    {
        commands.Confirm.Select,
        commands.Channel.Open,
        commands.Channel.Close,
        commands.Channel.CloseOk,
        commands.Connection.TuneOk,
    }
)
"""Methods that change what the dissector expects of a channel or of the connection."""

RequestKey = tuple[int, str, Direction]
"""(channel, method, who sent it): a synchronous method waiting for its reply."""


@dataclass
class Settings:
    """The plugin's settings (``plugins.amqp.*``)."""

    max_body_size: int = 64 << 10
    """Body octets kept per message; the rest is counted, not kept."""
    max_unconfirmed: int = 1024
    """Publishes of one connection held for their publisher confirm."""
    max_frame_size: int = DEFAULT_FRAME_LIMIT
    """Largest frame accepted when the connection's negotiation (``frame-max``) was not seen
    or allowed more: a larger size is taken for garbage."""


@dataclass(slots=True)
class _Content:
    """A content method waiting for its header and body frames."""

    method: MethodType
    data: dict[str, Any]
    first_time: float
    last_time: float
    size: int
    body_size: int = -1
    """From the content header; -1 until it arrives."""
    received: int = 0
    chunks: list[bytes] = field(default_factory=list)
    kept: int = 0


@dataclass(slots=True)
class _Channel:
    """What pairing needs to remember about one channel."""

    confirm_mode: bool = False
    published: int = 0
    """Sequence number of the last publish in confirm mode (the broker's delivery tag)."""
    unconfirmed: deque[int] = field(default_factory=deque)
    open_requests: set[RequestKey] = field(default_factory=set)


class _Side:
    """One direction: frames in, complete methods out to the dissector."""

    def __init__(self, dissector: AmqpDissector, direction: Direction) -> None:
        self.dissector = dissector
        self.count = dissector.context.count
        self.direction = direction
        self.max_body_size = dissector.settings.max_body_size
        self.reader = FrameReader(self, dissector.settings.max_frame_size)
        self.contents: dict[int, _Content] = {}

    # -- FrameHandler --------------------------------------------------------------------------

    def on_protocol_header(self, header: bytes, timestamp: float) -> None:
        self.count("protocol_headers")
        self.dissector.protocol_header = header[4:].hex(".")

    def on_heartbeat(self) -> None:
        self.count("heartbeats")
        self.dissector.heartbeats += 1

    def on_body(self, channel: int, payload: bytes, timestamp: float) -> None:
        content = self.contents.get(channel)
        if content is None or content.body_size < 0:
            self.count("orphan_frames")
            return
        content.size += len(payload) + FRAME_OVERHEAD
        self._keep(content, payload)
        self._check_complete(channel, content, timestamp)

    def on_body_start(self, channel: int, size: int, timestamp: float) -> None:
        content = self.contents.get(channel)
        if content is None or content.body_size < 0:
            self.count("orphan_frames")
            return
        content.size += size + FRAME_OVERHEAD

    def on_body_chunk(self, channel: int, chunk: bytes, timestamp: float) -> None:
        content = self.contents.get(channel)
        if content is not None and content.body_size >= 0:
            self._keep(content, chunk)

    def _keep(self, content: _Content, chunk: bytes) -> None:
        """Count a piece of the body and keep what the body cap allows."""
        content.received += len(chunk)
        room = self.max_body_size - content.kept
        if room >= len(chunk):
            content.chunks.append(chunk)
            content.kept += len(chunk)
            return
        if room > 0:
            content.chunks.append(chunk[:room])
            content.kept += room
        self.count("body_bytes_dropped", len(chunk) - max(room, 0))

    def on_body_end(self, channel: int, timestamp: float) -> None:
        content = self.contents.get(channel)
        if content is not None and content.body_size >= 0:
            self._check_complete(channel, content, timestamp)

    def on_lost_sync(self) -> None:
        self.count("lost_sync")
        self.abandon()

    def on_skipped(self, count: int) -> None:
        if count:
            self.count("skipped_bytes", count)

    # -- decoding ------------------------------------------------------------------------------

    def on_method(self, channel: int, payload: bytes, timestamp: float) -> None:
        try:
            (index,) = METHOD_INDEX.unpack_from(payload)
            hot = HOT_METHODS.get(index)
            if hot is not None:
                data = hot(payload, channel)
            else:
                method = commands.INDEX_MAPPING[index]()
                method.unmarshal(payload[4:])
                data = {"method": spec_name(method.name), "channel": channel}
                data.update(method_arguments(method))
        except DECODE_ERRORS:
            self.count("malformed_frames")
            return
        method_type = commands.INDEX_MAPPING[index]
        size = len(payload) + FRAME_OVERHEAD
        if self.contents:
            pending = self.contents.pop(channel, None)
            if pending is not None:
                self._finish(channel, pending, complete=False)
        if method_type in CONTENT_METHODS:
            self.contents[channel] = _Content(method_type, data, timestamp, timestamp, size)
            return
        message = Message(AMQP, self.direction, timestamp, timestamp, size, data)
        self.dissector.method(self.direction, channel, method_type, message)

    def on_content_header(self, channel: int, payload: bytes, timestamp: float) -> None:
        content = self.contents.get(channel)
        if content is None or content.body_size >= 0:
            self.count("orphan_frames")
            return
        try:
            decoded = content_header(payload)
            if decoded is None:
                content_header_frame = header.ContentHeader()
                content_header_frame.unmarshal(payload)
                body_size = content_header_frame.body_size
                properties = properties_json(content_header_frame.properties, payload)
            else:
                body_size, properties = decoded
        except DECODE_ERRORS:
            self.count("malformed_frames")
            return
        content.body_size = body_size
        content.size += len(payload) + FRAME_OVERHEAD
        content.data["properties"] = properties
        self._check_complete(channel, content, timestamp)

    def _check_complete(self, channel: int, content: _Content, timestamp: float) -> None:
        content.last_time = timestamp
        if content.received >= content.body_size:
            del self.contents[channel]
            self._finish(channel, content, complete=True)

    def _finish(self, channel: int, content: _Content, complete: bool) -> None:
        """Hand over a content method, complete or cut short (by a gap, garbage or a method
        that came before its last body frame)."""
        chunks = content.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        data = content.data
        if "properties" not in data:
            data["properties"] = {}
        data["body"], is_base64 = body_json(body, complete=len(body) == content.received)
        if is_base64:
            data["bodyEncoding"] = "base64"
        data["bodySize"] = max(content.body_size, content.received)
        if content.kept < content.received:
            data["bodyTruncated"] = True
        if not complete:
            data["incomplete"] = True
            self.count("incomplete_messages")
        message = Message(
            AMQP, self.direction, content.first_time, content.last_time, content.size, data
        )
        self.dissector.method(self.direction, channel, content.method, message)

    def abandon(self) -> None:
        """The bytes that would complete pending content are lost: hand it over as it is."""
        contents, self.contents = self.contents, {}
        for channel, content in contents.items():
            self._finish(channel, content, complete=False)


class AmqpDissector(Dissector):
    """One AMQP connection."""

    def __init__(self, context: ConnectionContext, settings: Settings) -> None:
        super().__init__(context)
        self.settings = settings
        self.sides = (
            _Side(self, Direction.CLIENT_TO_SERVER),
            _Side(self, Direction.SERVER_TO_CLIENT),
        )
        self.requests = context.keyed_matcher()
        self.unconfirmed = context.keyed_matcher(max_pending=settings.max_unconfirmed)
        self.channels: dict[int, _Channel] = {}
        self.heartbeats = 0
        self.protocol_header = ""
        self.counters = context.counters

    def feed(self, direction: Direction, data: bytes, timestamp: float) -> None:
        frames = self.sides[direction].reader.feed(data, timestamp)
        if frames:
            self.counters["frames"] += frames

    def gap(self, direction: Direction, length: int, timestamp: float) -> None:
        side = self.sides[direction]
        side.reader.gap()
        side.abandon()

    def close(self, timestamp: float, reason: CloseReason) -> None:
        for side in self.sides:
            side.abandon()

    # -- pairing -------------------------------------------------------------------------------

    def method(
        self, direction: Direction, channel: int, method: MethodType, message: Message
    ) -> None:
        data = message.data
        name = data["method"]
        state = self.channels.get(channel)
        if state is None:
            state = self.channels[channel] = _Channel()
        answered = REPLY_TO.get(name)
        if answered is not None:
            key: RequestKey = (channel, answered, direction.reverse)
            state.open_requests.discard(key)
            self.requests.response(key, message)
        elif method.synchronous and not data.get("nowait"):
            key = (channel, name, direction)
            state.open_requests.add(key)
            self.requests.request(key, message)
        elif state.confirm_mode and name == "basic.publish":
            self._hold_for_confirm(channel, state, message)
        elif (
            state.confirm_mode
            and name in ("basic.ack", "basic.nack")
            and direction == Direction.SERVER_TO_CLIENT
        ):
            self._confirm(channel, state, data["deliveryTag"], data["multiple"], name)
            self.context.emit(message, None)
        else:
            self.context.emit(message, None)
        if method in STATEFUL_METHODS:
            self._track(direction, channel, state, method, data)

    def _track(
        self,
        direction: Direction,
        channel: int,
        state: _Channel,
        method: MethodType,
        data: dict[str, Any],
    ) -> None:
        """The state changes a method makes to its channel or connection."""
        if method is commands.Confirm.Select:
            state.confirm_mode = True
        elif method is commands.Channel.Close or method is commands.Channel.Open:
            self._abort_channel(channel, state, keep=(channel, data["method"], direction))
            if method is commands.Channel.Open:
                state.confirm_mode = False
                state.published = 0
        elif method is commands.Channel.CloseOk:
            self._abort_channel(channel, state, keep=None)
            del self.channels[channel]
        elif method is commands.Connection.TuneOk and data.get("frameMax"):
            for side in self.sides:
                side.reader.negotiate(data["frameMax"])

    def _abort_channel(self, channel: int, state: _Channel, keep: RequestKey | None) -> None:
        """The channel is closing: what it waited for will not come."""
        for key in state.open_requests - {keep}:
            self._emit_unanswered(self.requests.take(key))
        state.open_requests &= {keep} if keep else set()
        while state.unconfirmed:
            self._emit_unanswered(self.unconfirmed.take((channel, state.unconfirmed.popleft())))

    def _emit_unanswered(self, message: Message | None) -> None:
        if message is not None:
            self.context.emit(message, None)

    def _hold_for_confirm(self, channel: int, state: _Channel, message: Message) -> None:
        state.published += 1
        if len(state.unconfirmed) >= self.settings.max_unconfirmed:
            self._emit_unanswered(self.unconfirmed.take((channel, state.unconfirmed.popleft())))
        state.unconfirmed.append(state.published)
        self.unconfirmed.request((channel, state.published), message)

    def _confirm(self, channel: int, state: _Channel, tag: int, multiple: bool, name: str) -> None:
        """Mark the publishes a broker ``basic.ack``/``basic.nack`` covers and emit them."""
        confirmed = name == "basic.ack"
        if multiple:
            # Tag 0 with multiple set covers every outstanding publish (spec, basic.ack).
            while state.unconfirmed and (tag == 0 or state.unconfirmed[0] <= tag):
                tag_covered = state.unconfirmed.popleft()
                self._emit_confirmed(self.unconfirmed.take((channel, tag_covered)), confirmed)
        else:
            self._emit_confirmed(self.unconfirmed.take((channel, tag)), confirmed)
        self._forget_confirmed(channel, state)

    def _forget_confirmed(self, channel: int, state: _Channel) -> None:
        """Drop sequence numbers no longer pending (confirmed singly, or expired by the core)."""
        pending = state.unconfirmed
        while pending and self.unconfirmed.get((channel, pending[0])) is None:
            pending.popleft()

    def _emit_confirmed(self, message: Message | None, confirmed: bool) -> None:
        if message is not None:
            message.data["confirmed"] = confirmed
            self.context.emit(message, None)
