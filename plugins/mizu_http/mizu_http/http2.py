"""HTTP/2 (RFC 9113) without TLS: frames, HPACK (RFC 7541), streams paired, gRPC decoded.

Each direction has its own frame buffer and HPACK decoder (:mod:`mizu_http.hpack_decoder`). Every
frame type is understood: DATA and HEADERS with padding and priority, CONTINUATION,
PRIORITY, RST_STREAM, SETTINGS (the header table size a peer allows is applied to the other
direction's decoder), PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE; unknown types are skipped
as the RFC says. A stream is one pair: request headers, data and trailers from the client,
response headers, data and trailers from the server.

A capture that starts mid-connection misses the HPACK dynamic table built so far: the
:class:`HpackDecoder` knows the entries added since the capture began and reports the
references it cannot resolve (``undecodedHeaders``) instead of failing the block.

Lost bytes (a capture gap) cost as little as the frame layout allows. A gap inside a frame
whose header was seen is skipped by arithmetic: the frame boundaries stay known, and so does
the HPACK table unless the frame carried a header block. Otherwise the side resynchronises on
the first run of frame headers that :mod:`mizu_http.http2_frames` believes, and its HPACK
table restarts empty: only entries added after the gap resolve. Streams pair by id, so
nothing pairs across a gap by position; a body with a hole keeps only the bytes before it
(``unrecovered``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import hpack

from mizu_core import ConnectionContext, Direction, Message, make_message
from mizu_http import bodies, declarations, grpc
from mizu_http.hpack_decoder import MAX_HEADER_LIST, MAX_HPACK_TABLE, HpackDecoder
from mizu_http.http1 import add_header
from mizu_http.http2_frames import (
    ACK,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    FRAME_HEADER,
    FRAME_HEADER_FIELDS,
    GOAWAY,
    HEADERS,
    MAX_BUFFERED_FRAME,
    OPENING_FRAMES,
    PADDED,
    PRIORITY_FLAG,
    PUSH_PROMISE,
    RST_STREAM,
    SETTINGS,
    SETTINGS_HEADER_TABLE_SIZE,
    SETTINGS_MAX_FRAME_SIZE,
    FrameRules,
    find_frames,
    unpad,
)
from mizu_http.settings import Settings

PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# Final: a name imported from another module is looked up in this one's dict at every use
GRPC: Final = declarations.GRPC
HTTP2: Final = declarations.HTTP2
MAX_STREAMS: Final = 1000
"""Open streams kept per connection; beyond, the oldest is emitted as it is."""

HOLD_WAIT: Final = 2.0
"""Seconds an answer whose request has not been seen waits for it (see ``Http2Session.held``):
longer than the capture's reassembly waits for bytes the peer acknowledged (half a second by
default)."""
MAX_KNOWN_BLOCKS: Final = 64
"""Header blocks kept decoded per side (see ``_Blocks``): a client's calls to a few methods
and a server's answers and trailers repeat a handful."""
MAX_KNOWN_BLOCK_SIZE: Final = 512
"""Largest header block kept decoded: one whose headers are all indexed takes a few dozen
octets, and the bound keeps what a connection holds small (a small block may still name
many long table entries, which its headers share with the table rather than copy)."""


class _Half:
    """One direction of a stream (plain classes, as :class:`_Stream`: a dataclass's
    ``__init__`` runs interpreted in the compiled build, and three are made per stream)."""

    __slots__ = (
        "body",
        "body_cut",
        "ended",
        "first_time",
        "headers",
        "headers_lost",
        "headers_size",
        "last_time",
        "start_missing",
        "undecoded",
        "wire",
    )

    def __init__(self, body: bodies.Body) -> None:
        self.body = body
        self.first_time = 0.0
        self.last_time = 0.0
        self.headers: dict[str, Any] | None = None
        self.headers_size = 0
        self.undecoded = 0
        self.wire = 0
        self.ended = False
        self.start_missing = False
        """Its first header block was not captured (the stream began before the capture or
        in a gap): the headers are trailers at most, the body lacks its beginning."""
        self.headers_lost = False
        """A header block of it fell in a gap."""
        self.body_cut = False
        """Some of its DATA fell in a gap: the body holds what came before."""

    def unrecovered(self) -> list[str]:
        lost = []
        if self.start_missing or self.headers_lost:
            lost.append("headers")
        if self.start_missing or self.body_cut:
            lost.append("body")
        return lost

    def add_headers(self, block: _Block, size: int) -> None:
        if self.headers is None:
            self.headers = block.fields()
        else:
            for name, value in block.headers:
                add_header(self.headers, name, value)
        self.headers_size += size
        self.undecoded += block.undecoded


class _Block:
    """A decoded header block, with what a stream's half needs of it."""

    __slots__ = ("headers", "interim", "pseudo", "undecoded", "unique")

    def __init__(self, headers: list[tuple[str, str]], undecoded: int) -> None:
        self.headers = headers
        self.undecoded = undecoded
        self.pseudo = any(name[:1] == ":" for name, _ in headers)
        status = _first(headers, ":status")
        self.interim = status.startswith("1") and len(status) == 3
        """An interim response (100 Continue): the final one follows."""
        self.unique: dict[str, Any] | None = None
        """The header object, once made, when no name repeats (a copy then shares nothing)."""

    def fields(self) -> dict[str, Any]:
        """A new header object of the block."""
        if self.unique is not None:
            return self.unique.copy()
        fields: dict[str, Any] = {}
        for name, value in self.headers:
            add_header(fields, name, value)
        if len(fields) == len(self.headers):
            self.unique = fields.copy()
        return fields


class _Blocks:
    """One side's HPACK decoder, and the blocks it decoded without changing its table: while
    the table stays the same, the same bytes decode to the same headers, and gRPC peers send
    the same blocks call after call (every header indexed). Decoding and building the header
    object were a sixth of a gRPC call's cost."""

    __slots__ = ("changes", "decoder", "known")

    def __init__(self, decoder: HpackDecoder) -> None:
        self.decoder = decoder
        self.known: dict[bytes, _Block] = {}
        self.changes = decoder.changes

    def decode(self, fragment: bytes) -> _Block:
        """:raises hpack.HPACKError, IndexError: as :meth:`HpackDecoder.decode`."""
        decoder = self.decoder
        if self.changes != decoder.changes:
            self.known.clear()
            self.changes = decoder.changes
        else:
            known = self.known.get(fragment)
            if known is not None:
                return known
        headers, undecoded = decoder.decode(fragment)
        block = _Block(headers, undecoded)
        if self.changes == decoder.changes and len(fragment) <= MAX_KNOWN_BLOCK_SIZE:
            if len(self.known) >= MAX_KNOWN_BLOCKS:
                self.known.clear()
            self.known[fragment] = block
        return block


class _Stream:
    __slots__ = ("number", "pushed", "queued", "request", "reset", "response")

    def __init__(self, number: int, request: _Half, response: _Half) -> None:
        self.number = number
        self.request = request
        self.response = response
        self.pushed = False
        self.queued = False
        """The request is complete and waits in the matcher."""
        self.reset: int | None = None


def _header(headers: dict[str, Any] | None, name: str) -> str:
    if headers is None:
        return ""
    value = headers.get(name, "")
    if isinstance(value, str):  # most are: no call to str()
        return value
    return str(value[0] if isinstance(value, list) else value)


class Http2Session:
    """Both directions of an HTTP/2 connection."""

    def __init__(
        self,
        context: ConnectionContext,
        settings: Settings,
        request_direction: Direction,
        expect_preface: bool,
        midstream: bool = False,
    ) -> None:
        self.context = context
        self.emit: Callable[[Message | None, Message | None, str | None], None] = context.emitter
        """``context.emit`` without its interpreted call (a call's pair goes through it)."""
        self.max_body = settings.max_body_size
        self.request_direction = request_direction
        self.response_direction = request_direction.reverse  # a property: interpreted
        self.matcher = context.keyed_matcher()
        self.buffers = [b"", b""]
        self.expect_preface = expect_preface
        bound = MAX_HPACK_TABLE if midstream else 4096
        self.decoders = (HpackDecoder(bound, midstream), HpackDecoder(bound, midstream))
        self.blocks = (_Blocks(self.decoders[0]), _Blocks(self.decoders[1]))
        self.streams: dict[int, _Stream] = {}
        self.recent: _Stream | None = None
        """The open stream a frame was last on: most frames are on the stream of the one
        before (a call's HEADERS, DATA and trailers), which then needs no lookup."""
        self.pending_block: list[tuple[int, int, bytearray, int, int] | None] = [None, None]
        """Per side: a header block awaiting CONTINUATION (stream, flags, fragments, kind,
        promised stream)."""
        self.stopped = False
        self.midstream = midstream
        self.synced = [not midstream, not midstream]
        """Per side: whether the next byte buffered starts a frame."""
        self.skip = [0, 0]
        """Per side: bytes still to come of a frame a gap cut, passed over."""
        self.rules = (FrameRules(push_promise=False), FrameRules())
        """Per side: the frame headers believed when resynchronising."""
        self.gaps = [0, 0]
        """Per side: gaps seen, which tell why a message has no partner."""
        self.last_time = 0.0
        """When the last bytes were fed: the time of what a gap cut."""
        self.first_request = 0
        """The first stream whose request's header block was captured: the requests of
        those before it may have been sent before the capture began."""
        self.request_high = 0
        """The highest stream the client's side has sent a frame on: a stream below it whose
        request was not seen will not see it (streams open in order)."""
        self.held: dict[int, float] = {}
        """Streams answered with no request seen yet, and since when: the client's side may
        be behind (the capture's reassembly waits for lost bytes before reporting them), so
        they are held until it passes them, for HOLD_WAIT at most (counted when bytes come),
        or until the connection ends."""

    # -- bytes in --------------------------------------------------------------------------------

    def feed(self, is_request: bool, data: bytes, timestamp: float) -> None:
        if self.stopped:
            return
        self.last_time = timestamp
        if self.held and timestamp - next(iter(self.held.values())) > HOLD_WAIT:
            self._release_held(0, timestamp)
        side = 0 if is_request else 1
        skip = self.skip[side]
        if skip:
            if len(data) <= skip:
                self.skip[side] = skip - len(data)
                return
            self.skip[side] = 0
            data = data[skip:]
        buffer = self.buffers[side] + data if self.buffers[side] else data
        position = 0
        if not self.synced[side]:
            found, keep = find_frames(buffer, self.rules[side])
            if found is None:
                if keep:
                    self.context.count("bytes_skipped", keep)
                self.buffers[side] = buffer[keep:]
                return
            self.synced[side] = True
            self.context.count("resyncs")
            if found:
                self.context.count("bytes_skipped", found)
            position = found
        elif is_request and self.expect_preface:
            if len(buffer) < len(PREFACE):
                if PREFACE.startswith(buffer):
                    self.buffers[side] = buffer
                    return
                self._give_up("no connection preface")
                return
            if not buffer.startswith(PREFACE):
                self._give_up("no connection preface")
                return
            self.expect_preface = False
            position = len(PREFACE)
        end = len(buffer)
        while end - position >= FRAME_HEADER:
            # Octet by octet: the compiled build indexes bytes in C, where struct's
            # unpack_from is a call through Python and a tuple for every frame.
            length = buffer[position] << 16 | buffer[position + 1] << 8 | buffer[position + 2]
            if length > MAX_BUFFERED_FRAME:
                self._give_up("frame too large")
                return
            if end - position < FRAME_HEADER + length:
                break
            kind = buffer[position + 3]
            flags = buffer[position + 4]
            stream = (
                (buffer[position + 5] & 0x7F) << 24
                | buffer[position + 6] << 16
                | buffer[position + 7] << 8
                | buffer[position + 8]
            )
            payload = buffer[position + FRAME_HEADER : position + FRAME_HEADER + length]
            position += FRAME_HEADER + length
            self._frame(side, kind, flags, stream, payload, timestamp)
            if self.stopped:
                return
        self.buffers[side] = buffer[position:]

    def gap(self, is_request: bool, length: int, timestamp: float) -> None:
        """``length`` bytes of a side were lost. Inside a frame whose header was seen, the
        rest of the frame is passed over and the boundaries stay known; otherwise the side
        resynchronises on the frames that follow."""
        if self.stopped:
            return
        side = 0 if is_request else 1
        self.gaps[side] += 1
        skip = self.skip[side]
        buffer = self.buffers[side]
        if skip:  # a cut frame's rest is passing by
            if length <= skip:
                self.skip[side] = skip - length
                return
        elif side == 0 and self.expect_preface:  # the preface, and maybe frames, were lost
            self.expect_preface = False
        elif self.synced[side] and len(buffer) >= FRAME_HEADER:
            length_high, length_low, kind, flags, stream = FRAME_HEADER_FIELDS.unpack_from(buffer)
            remaining = FRAME_HEADER + (length_high << 16 | length_low) - len(buffer)
            self.buffers[side] = b""
            self._cut_frame(side, kind, flags, stream & 0x7FFFFFFF, buffer[FRAME_HEADER:])
            if length <= remaining:
                self.skip[side] = remaining - length
                return
        self._lose_sync(side)

    def _cut_frame(self, side: int, kind: int, flags: int, number: int, partial: bytes) -> None:
        """A frame whose end fell in a gap: what its header and first bytes still tell."""
        if kind not in OPENING_FRAMES or not number:
            self.context.count("bytes_skipped", FRAME_HEADER + len(partial))
            return
        stream = self._stream(number, self.last_time)
        half = self._half(stream, side)
        half.first_time = half.first_time or self.last_time
        half.last_time = self.last_time
        if kind == DATA:
            half.start_missing = half.start_missing or (not half.wire and half.headers is None)
            half.wire += FRAME_HEADER + len(partial)
            if not half.body_cut:
                half.body.add(partial[1:] if flags & PADDED else partial)
            half.body_cut = half.body.truncated = True
        else:
            half.wire += FRAME_HEADER + len(partial)
            self.context.count("bytes_skipped", FRAME_HEADER + len(partial))
            self._lose_headers(side, half)
        if kind in (DATA, HEADERS) and flags & END_STREAM:
            self._ended(stream, side, half.last_time)

    def _lose_headers(self, side: int, half: _Half) -> None:
        """A header block of ``half`` was lost: the HPACK table of the side is no longer
        known."""
        half.headers_lost = True
        self.pending_block[side] = None
        self.decoders[side].forget()

    def _lose_sync(self, side: int) -> None:
        """Whole frames may have been lost: header blocks (the HPACK table is no longer known)
        and the DATA of any message this side had begun and not ended (a message that had not
        begun shows by its first frame whether its start was lost)."""
        if self.buffers[side]:
            self.context.count("bytes_skipped", len(self.buffers[side]))
        self.buffers[side] = b""
        self.skip[side] = 0
        self.synced[side] = False
        self.pending_block[side] = None
        self.decoders[side].forget()
        for stream in self.streams.values():
            half = self._half(stream, side)
            if half.wire and not half.ended:
                half.body_cut = half.body.truncated = True

    def close(self, timestamp: float) -> None:
        for number in list(self.streams):
            self._finish(number, timestamp)

    def _give_up(self, reason: str) -> None:
        self.context.count(f"http2 gave up: {reason}")
        self.stopped = True
        self.buffers = [b"", b""]
        for number, stream in list(self.streams.items()):
            stream.request.body.truncated = stream.response.body.truncated = True
            self._finish(number, max(stream.request.last_time, stream.response.last_time), "gap")

    # -- frames ----------------------------------------------------------------------------------

    def _stream(self, number: int, timestamp: float) -> _Stream:
        recent = self.recent
        if recent is not None and recent.number == number:
            return recent
        stream = self.streams.get(number)
        if stream is None:
            if len(self.streams) >= MAX_STREAMS:
                self.context.count("http2 streams evicted")
                self._finish(next(iter(self.streams)), timestamp, "timeout")
            if number > self.rules[0].highest_stream:
                self.rules[0].highest_stream = self.rules[1].highest_stream = number
            stream = self.streams[number] = _Stream(
                number, _Half(bodies.Body(self.max_body)), _Half(bodies.Body(self.max_body))
            )
        self.recent = stream
        return stream

    def _half(self, stream: _Stream, side: int) -> _Half:
        return stream.request if side == 0 else stream.response

    def _frame(
        self, side: int, kind: int, flags: int, number: int, payload: bytes, timestamp: float
    ) -> None:
        if not side and number > self.request_high:
            self.request_high = number
            if self.held:
                self._release_held(number, timestamp)
        pending = self.pending_block[side]
        if pending is not None and kind != CONTINUATION:
            self.context.count("http2 header block interrupted")
            self._lose_headers(side, self._half(self._stream(pending[0], timestamp), side))
        if kind == DATA:
            stream = self._stream(number, timestamp)
            half = self._half(stream, side)
            half.start_missing = half.start_missing or (not half.wire and half.headers is None)
            half.last_time = timestamp
            half.first_time = half.first_time or timestamp
            half.wire += FRAME_HEADER + len(payload)
            if half.body_cut:  # the bytes after a hole are not joined to those before it
                half.body.wire_size += len(payload)
            else:
                half.body.add(unpad(payload, flags))
            if flags & END_STREAM:
                self._ended(stream, side, timestamp)
        elif kind in (HEADERS, PUSH_PROMISE):
            fragment = unpad(payload, flags)
            promised = 0
            if kind == HEADERS and flags & PRIORITY_FLAG:
                fragment = fragment[5:]
            elif kind == PUSH_PROMISE:
                promised = int.from_bytes(fragment[:4], "big") & 0x7FFFFFFF
                fragment = fragment[4:]
                self.rules[1].even_streams = True
            stream = self._stream(number, timestamp)
            half = self._half(stream, side)
            half.first_time = half.first_time or timestamp
            half.wire += FRAME_HEADER + len(payload)
            if not side and not self.first_request:
                self.first_request = number
            if flags & END_HEADERS:
                self._header_block(side, stream, flags, fragment, kind, promised, timestamp)
            else:
                self.pending_block[side] = (number, flags, bytearray(fragment), kind, promised)
        elif kind == CONTINUATION:
            if pending is None or pending[0] != number:
                self.context.count("http2 stray continuation")
                return
            pending[2].extend(payload)
            stream = self._stream(number, timestamp)
            half = self._half(stream, side)
            half.wire += FRAME_HEADER + len(payload)
            if len(pending[2]) > MAX_HEADER_LIST:
                self._give_up("header block too large")
            elif flags & END_HEADERS:
                self.pending_block[side] = None
                _, first_flags, fragments, first_kind, promised = pending
                self._header_block(
                    side, stream, first_flags, bytes(fragments), first_kind, promised, timestamp
                )
        elif kind == RST_STREAM:
            reset = self.streams.get(number)
            if reset is not None:
                reset.reset = int.from_bytes(payload[:4], "big")
                # A response already in flight when the client cancels still arrives: the
                # stream stays open for it (until the connection ends or streams are evicted).
                if side == 1:
                    self._finish(number, timestamp)
        elif kind == SETTINGS and not flags & ACK:
            for offset in range(0, len(payload) - 5, 6):
                identifier = int.from_bytes(payload[offset : offset + 2], "big")
                value = int.from_bytes(payload[offset + 2 : offset + 6], "big")
                # What this side can decode bounds what the other side sends.
                if identifier == SETTINGS_HEADER_TABLE_SIZE:
                    self.decoders[1 - side].max_allowed = min(value, MAX_HPACK_TABLE)
                elif identifier == SETTINGS_MAX_FRAME_SIZE:
                    self.rules[1 - side].max_frame = min(value, MAX_BUFFERED_FRAME)
        elif kind == GOAWAY:
            self.context.count("http2 goaway")
        # PRIORITY, PING, WINDOW_UPDATE and unknown types carry nothing an entry shows.

    def _header_block(
        self,
        side: int,
        stream: _Stream,
        flags: int,
        fragment: bytes,
        kind: int,
        promised: int,
        timestamp: float,
    ) -> None:
        """A whole header block: ``flags`` and ``kind`` are its first frame's."""
        block = self._decode(side, fragment)
        if block is None:
            self._lose_headers(side, self._half(stream, side))
            return
        if kind == PUSH_PROMISE:
            pushed = self._stream(promised, timestamp)
            pushed.pushed = True
            pushed.request.first_time = pushed.request.last_time = timestamp
            pushed.request.add_headers(block, len(fragment))
            self._ended(pushed, 0, timestamp)
            return
        half = self._half(stream, side)
        half.last_time = timestamp
        if half.headers is None and not block.undecoded and not block.pseudo:
            half.start_missing = True  # trailers: the block that began the message was missed
        if side == 1 and block.interim:
            return
        half.add_headers(block, len(fragment))
        if flags & END_STREAM:
            self._ended(stream, side, timestamp)
        elif side == 1 and stream.queued:
            self.matcher.answering(stream.number)

    def _decode(self, side: int, fragment: bytes) -> _Block | None:
        try:
            return self.blocks[side].decode(fragment)
        except (hpack.HPACKError, IndexError):
            self.context.count("http2 hpack blocks lost")
            return None

    # -- streams to messages ---------------------------------------------------------------------

    def _release_held(self, below: int, timestamp: float) -> None:
        """Emit the held answers of the streams below ``below`` whose request has not begun,
        and those held longer than HOLD_WAIT."""
        deadline = timestamp - HOLD_WAIT
        for number, since in list(self.held.items()):
            stream = self.streams.get(number)
            if stream is None or since < deadline or (number < below and not stream.request.wire):
                self._finish(number, timestamp)

    def _ended(self, stream: _Stream, side: int, timestamp: float) -> None:
        half = self._half(stream, side)
        half.ended = True
        half.last_time = timestamp
        if stream.number in self.held:
            if side == 0:  # the request of an answered stream came after its answer
                self._finish(stream.number, timestamp)
            return
        request = stream.request
        if side == 1 and not (stream.queued or request.wire) and stream.number >= self.request_high:
            self.held[stream.number] = timestamp
            return
        if side == 0 and not stream.queued:
            stream.queued = True
            self.matcher.request(stream.number, self._message(stream, True))
            if stream.response.headers is not None:  # answered before the request ended
                self.matcher.answering(stream.number)
        elif side == 1:
            self._finish(stream.number, timestamp)

    def _finish(self, number: int, timestamp: float, unanswered: str = "closed") -> None:
        """Emit a stream; ``unanswered`` says why if it ends with a request alone."""
        # get and del rather than pop with a default: that is a method call through Python
        if self.held:
            self.held.pop(number, None)
        stream = self.streams.get(number)
        if stream is None:
            return
        del self.streams[number]
        if stream is self.recent:
            self.recent = None
        if stream.queued:
            request = self.matcher.take(number)
        elif stream.request.headers is not None or stream.request.wire:
            request = self._message(stream, True)
        else:
            request = None
        response = None
        if stream.response.headers is not None or stream.response.wire:
            response = self._message(stream, False, request)
        elif stream.reset is not None:
            response = self._reset_message(stream, timestamp)
        if response is None:
            unpaired = "gap" if unanswered == "closed" and self.gaps[1] else unanswered
        elif request is None:
            first = self.first_request
            unpaired = "midstream" if self.midstream and (not first or number < first) else "gap"
        else:
            unpaired = None
        if request is not None or response is not None:
            self.emit(request, response, unpaired)

    def _message(
        self, stream: _Stream, is_request: bool, request: Message | None = None
    ) -> Message:
        half = stream.request if is_request else stream.response
        headers = half.headers or {}
        content_type = _header(headers, "content-type")
        if not is_request and request is not None and not content_type:
            content_type = _header(request.data.get("headers"), "content-type")
        body = half.body
        is_grpc = (
            grpc.is_grpc(content_type)
            or (request is not None and request.protocol is GRPC)
            # the content-type referred to an HPACK entry added before the capture began
            or (not content_type and half.undecoded > 0 and grpc.framed(body.data))
        )
        data: dict[str, Any]
        if is_request:
            data = {
                "method": _header(headers, ":method"),
                "target": _header(headers, ":path"),
                "httpVersion": "HTTP/2.0",
                "headers": headers,
                "headersSize": half.headers_size,
                "bodySize": body.wire_size,
                "streamId": stream.number,
            }
            if stream.pushed:
                data["pushed"] = True
        else:
            data = {
                "status": _status_number(_header(headers, ":status")),
                "statusText": "",
                "httpVersion": "HTTP/2.0",
                "headers": headers,
                "headersSize": half.headers_size,
                "bodySize": body.wire_size,
                "streamId": stream.number,
            }
            if stream.reset is not None:
                data["resetCode"] = stream.reset
        if half.undecoded:
            data["undecodedHeaders"] = half.undecoded
        unrecovered = half.unrecovered()
        if unrecovered:
            data["unrecovered"] = unrecovered
        if not half.ended:
            data["incomplete"] = True
        if is_grpc and not half.start_missing:  # messages are framed from the body's start
            data["messages"] = grpc.messages(
                body.data, _header(headers, "grpc-encoding"), self.max_body
            )
            if not is_request:
                grpc_status = _header(headers, "grpc-status")
                if grpc_status.isdigit():
                    data["grpcStatus"] = int(grpc_status)
                data["grpcMessage"] = _header(headers, "grpc-message")
        body_fields = bodies.describe(
            body, content_type, _header(headers, "content-encoding"), self.max_body
        )
        if is_request:
            if body.wire_size:
                data["postData"] = body_fields
        else:
            data["content"] = body_fields
        direction = self.request_direction if is_request else self.response_direction
        if stream.pushed and is_request:
            direction = self.response_direction
        protocol = GRPC if is_grpc else HTTP2
        return make_message(protocol, direction, half.first_time, half.last_time, half.wire, data)

    def _reset_message(self, stream: _Stream, timestamp: float) -> Message:
        return Message(
            protocol=HTTP2,
            direction=self.response_direction,
            first_time=timestamp,
            last_time=timestamp,
            size=0,
            data={
                "status": 0,
                "statusText": "RST_STREAM",
                "httpVersion": "HTTP/2.0",
                "headers": {},
                "headersSize": 0,
                "bodySize": 0,
                "content": {"size": 0, "mimeType": "", "text": ""},
                "streamId": stream.number,
                "resetCode": stream.reset,
            },
        )

    # -- h2c upgrade -----------------------------------------------------------------------------

    def upgraded_request(
        self, headers: dict[str, Any], body: bytes, first_time: float, last_time: float, size: int
    ) -> None:
        """The HTTP/1.1 request that asked for ``Upgrade: h2c`` is stream 1's request."""
        stream = self._stream(1, first_time)
        half = stream.request
        half.first_time, half.last_time = first_time, last_time
        half.headers = headers
        half.wire = size
        half.body.add(body)
        self._ended(stream, 0, last_time)


_STATUS_NUMBERS: Final[dict[str, int]] = {}
"""The ``:status`` texts seen, as numbers (a few, answer after answer): a lookup costs a
fifth of parsing one."""
MAX_STATUS_NUMBERS: Final = 64


def _status_number(status: str) -> int:
    number = _STATUS_NUMBERS.get(status)
    if number is None:
        number = int(status) if status.isdigit() else 0
        if len(_STATUS_NUMBERS) < MAX_STATUS_NUMBERS:
            _STATUS_NUMBERS[status] = number
    return number


def _first(headers: list[tuple[str, str]], name: str) -> str:
    for key, value in headers:
        if key == name:
            return value
    return ""
