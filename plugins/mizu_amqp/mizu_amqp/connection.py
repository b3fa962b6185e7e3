"""One AMQP 0-9-1 connection: frames → messages → pairs. What :class:`AmqpDissector` feeds.

Each direction has a :class:`FrameReader` and a :class:`Side` that decodes its frames (the
hot ones by hand, :mod:`mizu_amqp.hot`, the rest with pamqp) and assembles content (a
``basic.publish``, ``basic.deliver``, ``basic.return`` or ``basic.get-ok`` with its content
header and body frames) per channel, so that channels may interleave. Complete methods go to
:class:`AmqpConnection`, which pairs them:

- a synchronous method waits for its reply on the same channel (``queue.declare`` ↔
  ``queue.declare-ok``, ``basic.get`` ↔ ``basic.get-ok`` or ``basic.get-empty``), either side
  may ask (``connection.start`` comes from the broker, ``channel.close`` from both);
- methods without a reply are entries with no response;
- in confirm mode (after ``confirm.select``) a ``basic.publish`` waits for the broker's
  ``basic.ack`` / ``basic.nack`` covering its sequence number (``multiple`` covers every earlier
  one) and gains ``confirmed``; the wait is bounded in count (``max-unconfirmed``) and in time
  (the core expires it like an unanswered request), and the publish is then emitted without it.

The dissector itself subclasses the core's :class:`~mizu_core.Dissector` (interpreted, as every
plugin's may be); this is the part that runs for every frame, plain classes that the compiled
build turns into native ones.
"""

from __future__ import annotations

import math
import struct
from collections import deque
from collections.abc import Callable
from typing import Any, Final, cast

from pamqp import base, commands, exceptions, header
from pamqp.commands import INDEX_MAPPING

from mizu_amqp.declarations import AMQP
from mizu_amqp.fields import method_fields
from mizu_amqp.frames import FRAME_BODY, FRAME_METHOD, FRAME_OVERHEAD, FrameReader
from mizu_amqp.hot import ACK, DELIVER, PUBLISH, ack, content_header, deliver, publish
from mizu_amqp.values import body_json, properties_json, spec_name
from mizu_core import ConnectionContext, Direction, KeyedMatcher, Message, make_message

DECODE_ERRORS: Final = (
    exceptions.UnmarshalingException,
    ValueError,
    struct.error,
    KeyError,
    IndexError,
    OverflowError,  # a timestamp property past what datetime holds
    OSError,  # the same, on some platforms
)

PROTOCOL: Final = AMQP
"""Read from a C static in the compiled build, where the imported name is looked up in the
module's dict for every message."""
CLIENT_TO_SERVER: Final = Direction.CLIENT_TO_SERVER
SERVER_TO_CLIENT: Final = Direction.SERVER_TO_CLIENT
"""The directions as constants: the compiled build reads a constant where it would look the
member up on the enum class, for every segment and method."""

CONFIRM_SELECT: Final = commands.Confirm.Select.index
CHANNEL_OPEN: Final = commands.Channel.Open.index
CHANNEL_CLOSE: Final = commands.Channel.Close.index
CHANNEL_CLOSE_OK: Final = commands.Channel.CloseOk.index
CONNECTION_TUNE_OK: Final = commands.Connection.TuneOk.index
BASIC_RETURN: Final = commands.Basic.Return.index
BASIC_GET_OK: Final = commands.Basic.GetOk.index
CONTENT_METHODS: Final = frozenset({PUBLISH, DELIVER, BASIC_RETURN, BASIC_GET_OK})
"""Methods followed by a content header and body frames."""
STATEFUL_METHODS: Final = frozenset(
    {CONFIRM_SELECT, CHANNEL_OPEN, CHANNEL_CLOSE, CHANNEL_CLOSE_OK, CONNECTION_TUNE_OK}
)
"""Methods that change what the dissector expects of a channel or of the connection."""


class MethodKind:
    """What pairing needs to know of a method, from the AMQP 0-9-1 specification (pamqp's)."""

    def __init__(self, name: str, answers: str | None, synchronous: bool) -> None:
        self.name = name
        self.answers = answers
        """The method this one replies to (``basic.get-empty`` → ``basic.get``), if any."""
        self.synchronous = synchronous


def _method_kinds() -> dict[int, MethodKind]:
    methods = cast(dict[int, type[base.Frame]], INDEX_MAPPING)
    answered = {
        spec_name(reply): spec_name(method.name)
        for method in methods.values()
        for reply in method.valid_responses
    }
    return {
        index: MethodKind(
            spec_name(method.name), answered.get(spec_name(method.name)), method.synchronous
        )
        for index, method in methods.items()
    }


METHOD_KINDS: Final = _method_kinds()

RequestKey = tuple[int, str, Direction]
"""(channel, method, who sent it): a synchronous method waiting for its reply."""
WaitingKey = tuple[int, str, Direction, int]
"""A :data:`RequestKey` and the method's number on the connection: the matcher's key."""
MAX_WAITING: Final = 64
"""Synchronous methods of one kind on one channel kept waiting for their replies (several wait
when pipelined, or when their replies are held behind lost bytes)."""


class Limits:
    """The plugin's settings as a connection uses them (``plugins.amqp.*``)."""

    def __init__(self, max_body_size: int, max_unconfirmed: int, max_frame_size: int) -> None:
        self.max_body_size = max_body_size
        self.max_unconfirmed = max_unconfirmed
        self.max_frame_size = max_frame_size


class Content:
    """A content method waiting for its header and body frames."""

    def __init__(self, index: int, data: dict[str, Any], first_time: float, size: int) -> None:
        self.index = index
        self.data = data
        self.first_time = first_time
        self.last_time = first_time
        self.size = size
        self.body_size = -1
        """From the content header; -1 until it arrives."""
        self.received = 0
        self.chunks: list[bytes] = []
        self.kept = 0


class Channel:
    """What pairing needs to remember about one channel."""

    def __init__(self) -> None:
        self.confirm_mode = False
        self.published = 0
        """Sequence number of the last publish in confirm mode (the broker's delivery tag)."""
        self.sequence_known = True
        """No publish of the channel was lost since confirm mode began: ``published`` is the
        broker's count too."""
        self.unconfirmed: deque[int] = deque()
        self.waiting: dict[RequestKey, deque[WaitingKey]] = {}
        """The synchronous methods waiting for their reply, oldest first."""


class Side:
    """One direction: frames in (as the :class:`FrameReader`'s handler), complete methods out
    to the connection."""

    def __init__(self, connection: AmqpConnection, direction: Direction) -> None:
        self.connection = connection
        self.count: Callable[..., None] = connection.context.count
        self.direction = direction
        self.max_body_size = connection.limits.max_body_size
        self.reader = SideReader(self, connection.limits.max_frame_size)
        self.contents: dict[int, Content] = {}

    # -- FrameHandler --------------------------------------------------------------------------

    def on_protocol_header(self, header: bytes, timestamp: float) -> None:
        self.count("protocol_headers")

    def on_heartbeat(self) -> None:
        self.count("heartbeats")

    def on_frame(self, frame_type: int, channel: int, payload: bytes, timestamp: float) -> None:
        if frame_type == FRAME_METHOD:
            self.on_method(channel, payload, timestamp)
        elif frame_type == FRAME_BODY:
            self.on_body(channel, payload, timestamp)
        else:
            self.on_content_header(channel, payload, timestamp)

    def on_body(self, channel: int, payload: bytes, timestamp: float) -> None:
        content = self.contents.get(channel)
        if content is None or content.body_size < 0:
            self.count("orphan_frames")
            return
        content.size += len(payload) + FRAME_OVERHEAD
        self.keep(content, payload)
        self.check_complete(channel, content, timestamp)

    def on_body_start(self, channel: int, size: int, timestamp: float) -> None:
        content = self.contents.get(channel)
        if content is None or content.body_size < 0:
            self.count("orphan_frames")
            return
        content.size += size + FRAME_OVERHEAD

    def on_body_chunk(self, channel: int, chunk: bytes, timestamp: float) -> None:
        content = self.contents.get(channel)
        if content is not None and content.body_size >= 0:
            self.keep(content, chunk)

    def keep(self, content: Content, chunk: bytes) -> None:
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
            self.check_complete(channel, content, timestamp)

    def on_lost_sync(self) -> None:
        self.count("lost_sync")
        self.abandon()

    def on_skipped(self, count: int) -> None:
        if count:
            self.count("bytes_skipped", count)

    def on_resync(self) -> None:
        self.count("resyncs")

    # -- decoding ------------------------------------------------------------------------------

    def on_method(self, channel: int, payload: bytes, timestamp: float) -> None:
        try:
            data = decode_method(payload, channel)
        except DECODE_ERRORS:
            self.count("malformed_frames")
            return
        index = payload[0] << 24 | payload[1] << 16 | payload[2] << 8 | payload[3]
        size = len(payload) + FRAME_OVERHEAD
        if self.contents:
            pending = self.contents.pop(channel, None)
            if pending is not None:
                self.finish(channel, pending, complete=False)
        if index in CONTENT_METHODS:
            self.contents[channel] = Content(index, data, timestamp, size)
            return
        message = make_message(PROTOCOL, self.direction, timestamp, timestamp, size, data)
        self.connection.method(self.direction, channel, index, message)

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
        self.check_complete(channel, content, timestamp)

    def check_complete(self, channel: int, content: Content, timestamp: float) -> None:
        content.last_time = timestamp
        if content.received >= content.body_size:
            del self.contents[channel]
            self.finish(channel, content, complete=True)

    def finish(self, channel: int, content: Content, complete: bool) -> None:
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
        message = make_message(
            PROTOCOL, self.direction, content.first_time, content.last_time, content.size, data
        )
        self.connection.method(self.direction, channel, content.index, message)

    def abandon(self) -> None:
        """The bytes that would complete pending content are lost: hand it over as it is."""
        contents, self.contents = self.contents, {}
        for channel, content in contents.items():
            self.finish(channel, content, complete=False)


class SideReader(FrameReader):
    """The frame reader of a :class:`Side`: it knows its handler's class, so that the compiled
    build calls the handler's methods directly, not through Python, for every frame."""

    __slots__ = ("side",)

    def __init__(self, side: Side, limit: int) -> None:
        super().__init__(side, limit)
        self.side = side

    def whole_frame(self, frame_type: int, channel: int, payload: bytes, timestamp: float) -> None:
        self.side.on_frame(frame_type, channel, payload, timestamp)


def decode_method(payload: bytes, channel: int) -> dict[str, Any]:
    """A method frame's payload as the entry's fields (the frequent methods by hand, the
    others by their layout); raises one of :data:`DECODE_ERRORS` when it does not decode."""
    if len(payload) < 4:
        raise struct.error("a method frame shorter than its method index")
    index = payload[0] << 24 | payload[1] << 16 | payload[2] << 8 | payload[3]
    if index == PUBLISH:
        return publish(payload, channel)
    if index == DELIVER:
        return deliver(payload, channel)
    if index == ACK:
        return ack(payload, channel)
    return method_fields(payload, channel)


class AmqpConnection:
    """Both directions of one connection, and the pairing of their methods."""

    def __init__(self, context: ConnectionContext, limits: Limits) -> None:
        self.context = context
        self.counters = context.counters
        self.emit: Callable[[Message | None, Message | None, str | None], None] = context.emitter
        self.limits = limits
        self.requests: KeyedMatcher = context.keyed_matcher()
        self.sent = 0
        """Synchronous methods seen (numbers their :data:`WaitingKey`)."""
        self.unconfirmed: KeyedMatcher = context.keyed_matcher(max_pending=limits.max_unconfirmed)
        self.channels: dict[int, Channel] = {}
        self.client = Side(self, CLIENT_TO_SERVER)
        self.server = Side(self, SERVER_TO_CLIENT)
        self.fed_time = [-math.inf, -math.inf]
        """Per direction, when its latest bytes were sent."""
        self.lost_time = [-math.inf, -math.inf]
        """Per direction, when the bytes after the last loss were sent."""

    def side(self, direction: Direction) -> Side:
        return self.client if direction is CLIENT_TO_SERVER else self.server

    def feed(self, direction: Direction, data: bytes, timestamp: float) -> None:
        """Read what ``data`` completes, counting its frames."""
        if timestamp > self.fed_time[direction]:
            # Bytes held behind lost ones come later with their own (earlier) time.
            self.fed_time[direction] = timestamp
        frames = self.side(direction).reader.feed(data, timestamp)
        if frames:
            self.counters["frames"] += frames

    def gap(self, direction: Direction, timestamp: float) -> None:
        """Bytes of ``direction`` were lost: partial content is void, a reply lost in them
        must not be taken from a later one (a synchronous method waiting for a reply from
        ``direction`` is emitted without one), and publisher confirms no longer prove which
        publish they cover."""
        side = self.side(direction)
        side.reader.gap()
        side.abandon()
        self.lost_time[direction] = timestamp
        for channel, state in self.channels.items():
            for key, queue in state.waiting.items():
                if key[2] is direction:
                    continue
                # Those sent before the bytes after the loss may have had their reply in it.
                while queue:
                    request = self.requests.get(queue[0])
                    if request is not None and request.first_time >= timestamp:
                        break
                    self.emit_unanswered(self.requests.take(queue.popleft()), "gap")
            if not state.confirm_mode:
                continue
            if direction is CLIENT_TO_SERVER:
                # The broker's delivery tags count publishes lost here too.
                state.sequence_known = False
            else:
                # A lost basic.nack would be taken for covered by a later multiple basic.ack.
                while state.unconfirmed:
                    self.emit_unanswered(
                        self.unconfirmed.take((channel, state.unconfirmed.popleft())), "gap"
                    )

    def close(self) -> None:
        self.client.abandon()
        self.server.abandon()

    # -- pairing -------------------------------------------------------------------------------

    def method(self, direction: Direction, channel: int, index: int, message: Message) -> None:
        data = message.data
        kind = METHOD_KINDS[index]
        name = kind.name
        state = self.channels.get(channel)
        if state is None:
            state = self.channels[channel] = Channel()
        if kind.answers is not None:
            self.answer(state, (channel, kind.answers, direction.reverse), message)
        elif kind.synchronous and not data.get("nowait"):
            if self.late(direction, message):
                self.emit(message, None, "gap")
            else:
                self.wait_for_reply(state, (channel, name, direction), message)
        elif state.confirm_mode and index == PUBLISH and state.sequence_known:
            self.hold_for_confirm(channel, state, message)
        elif (
            state.confirm_mode
            and name in ("basic.ack", "basic.nack")
            and direction is SERVER_TO_CLIENT
        ):
            self.confirm(channel, state, data["deliveryTag"], data["multiple"], name)
            self.emit(message, None, None)
        else:
            self.emit(message, None, None)
        if index in STATEFUL_METHODS:
            self.track(direction, channel, state, index, data)

    def track(
        self,
        direction: Direction,
        channel: int,
        state: Channel,
        index: int,
        data: dict[str, Any],
    ) -> None:
        """The state changes a method makes to its channel or connection."""
        if index == CONFIRM_SELECT:
            state.confirm_mode = True
        elif index in (CHANNEL_CLOSE, CHANNEL_OPEN):
            # A peer closing a channel still answers what it was asked before; what it asked
            # itself will not be answered (a broker closes a channel to refuse a method).
            waits = direction.reverse if index == CHANNEL_CLOSE else None
            self.abort_channel(channel, state, (channel, data["method"], direction), waits)
            if index == CHANNEL_OPEN:
                state.confirm_mode = False
                state.published = 0
                state.sequence_known = True
        elif index == CHANNEL_CLOSE_OK:
            self.abort_channel(channel, state, None)
            del self.channels[channel]
        elif index == CONNECTION_TUNE_OK and data.get("frameMax"):
            self.client.reader.negotiate(data["frameMax"])
            self.server.reader.negotiate(data["frameMax"])

    def wait_for_reply(self, state: Channel, key: RequestKey, message: Message) -> None:
        queue = state.waiting.get(key)
        if queue is None:
            queue = state.waiting[key] = deque()
        elif len(queue) >= MAX_WAITING:
            self.emit_unanswered(self.requests.take(queue.popleft()), "timeout")
        self.sent += 1
        waiting: WaitingKey = (key[0], key[1], key[2], self.sent)
        queue.append(waiting)
        self.requests.request(waiting, message)

    def answer(self, state: Channel, key: RequestKey, message: Message) -> None:
        """Pair a reply with the earliest method of its kind waiting on the channel: replies
        come in the order of the methods (several wait only when pipelined, or when their
        replies were held behind lost bytes). A method sent after the reply ended is not the
        one it answers: with none other waiting, the reply answers one the capture lost."""
        requests = self.requests
        queue = state.waiting.get(key)
        if not queue:
            requests.response((*key, 0), message)
            return
        chosen = -1
        earliest = message.last_time
        for position, waiting in enumerate(queue):
            request = requests.get(waiting)
            if request is not None and request.first_time <= earliest:
                chosen, earliest = position, request.first_time
        if chosen < 0:
            self.emit(None, message, "gap")
            return
        answered = queue[chosen]
        del queue[chosen]
        requests.response(answered, message)

    def late(self, direction: Direction, message: Message) -> bool:
        """Whether ``message`` was held behind bytes the capture lost, so that its reply may
        already have gone by: it was sent before the other side's bytes already read, or it
        is the first after its direction's loss."""
        return (
            message.first_time < self.fed_time[direction.reverse]
            or message.first_time <= self.lost_time[direction]
        )

    def abort_channel(
        self,
        channel: int,
        state: Channel,
        keep: RequestKey | None,
        sender: Direction | None = None,
    ) -> None:
        """The channel is closing: what it waited for (what ``sender`` sent, when given) will
        not come."""
        for key, queue in state.waiting.items():
            if key == keep or (sender is not None and key[2] is not sender):
                continue
            while queue:
                self.emit_unanswered(self.requests.take(queue.popleft()), "closed")
        if sender is SERVER_TO_CLIENT:
            return  # the broker's confirms may still come
        while state.unconfirmed:
            self.emit_unanswered(
                self.unconfirmed.take((channel, state.unconfirmed.popleft())), "closed"
            )

    def emit_unanswered(self, message: Message | None, reason: str) -> None:
        if message is not None:
            self.emit(message, None, reason)

    def hold_for_confirm(self, channel: int, state: Channel, message: Message) -> None:
        state.published += 1
        if len(state.unconfirmed) >= self.limits.max_unconfirmed:
            self.emit_unanswered(
                self.unconfirmed.take((channel, state.unconfirmed.popleft())), "timeout"
            )
        state.unconfirmed.append(state.published)
        self.unconfirmed.request((channel, state.published), message)

    def confirm(self, channel: int, state: Channel, tag: int, multiple: bool, name: str) -> None:
        """Mark the publishes a broker ``basic.ack``/``basic.nack`` covers and emit them."""
        confirmed = name == "basic.ack"
        if multiple:
            # Tag 0 with multiple set covers every outstanding publish (spec, basic.ack).
            while state.unconfirmed and (tag == 0 or state.unconfirmed[0] <= tag):
                tag_covered = state.unconfirmed.popleft()
                self.emit_confirmed(self.unconfirmed.take((channel, tag_covered)), confirmed)
        else:
            self.emit_confirmed(self.unconfirmed.take((channel, tag)), confirmed)
        self.forget_confirmed(channel, state)

    def forget_confirmed(self, channel: int, state: Channel) -> None:
        """Drop sequence numbers no longer pending (confirmed singly, or expired by the core)."""
        pending = state.unconfirmed
        while pending and self.unconfirmed.get((channel, pending[0])) is None:
            pending.popleft()

    def emit_confirmed(self, message: Message | None, confirmed: bool) -> None:
        if message is not None:
            message.data["confirmed"] = confirmed
            self.emit(message, None, None)
