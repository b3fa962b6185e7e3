"""Claiming a connection, and the dissector that follows it across protocol switches.

A connection starts as HTTP/1 (a request or status line) or HTTP/2 (the client preface, or,
when the capture began mid-connection, a run of believable frames on either side, which may
begin after the tail of a frame in flight). HTTP/1 can switch to WebSocket or to
HTTP/2 (``Upgrade: h2c``) after a ``101``; the dissector then hands the bytes that follow to
the new protocol's session.
"""

from __future__ import annotations

import enum
import re
from typing import Protocol as TypingProtocol

from mizu_core import NEED_MORE, CloseReason, ConnectionContext, Direction, Dissector, Verdict
from mizu_http import http1, http2, http2_frames, websocket
from mizu_http.analysis import header_values
from mizu_http.settings import Settings

MAX_FIRST_LINE = 8 << 10
"""How long a start line may be before the offer is declined."""
ROLE_EVIDENCE_WAIT = 8 << 10
"""Bytes of a mid-connection HTTP/2 capture waited for a header block that tells which side
sends the requests, before the core's guess of the roles is taken (the core's offer limit
is twice that by default)."""
_OFFER_FRAMES = http2_frames.FrameRules(lone_frame=False)
"""Claiming needs more proof than resynchronising a connection known to be HTTP/2."""
_LINE_PREFIX = re.compile(rb"[A-Z][A-Z_-]{0,19}(?: [^ \r\n]*)?(?: [HTP/1.0]{0,8})?\r?")
_STATUS_PREFIX = b"HTTP/1."


class Session(TypingProtocol):
    """What each protocol's per-connection decoder offers the dissector."""

    def feed(self, is_request: bool, data: bytes, timestamp: float) -> None: ...
    def gap(self, is_request: bool, length: int, timestamp: float) -> None: ...
    def close(self, timestamp: float) -> None: ...


class Start(enum.Enum):
    HTTP1 = "http1"
    HTTP1_MIDSTREAM = "http1-midstream"
    HTTP2 = "http2"
    HTTP2_MIDSTREAM = "http2-midstream"


def _first_line(head: bytes) -> Verdict | bool:
    """True when ``head`` starts with a request line; NEED_MORE while it may still become one."""
    if http1.REQUEST_LINE.match(head):
        return True
    if len(head) < MAX_FIRST_LINE and b"\n" not in head and _LINE_PREFIX.fullmatch(head):
        return NEED_MORE
    return False


def _status_line(head: bytes) -> Verdict | bool:
    if http1.STATUS_LINE.match(head):
        return True
    if len(head) < len(_STATUS_PREFIX) + 4 and (
        _STATUS_PREFIX.startswith(head[:7]) and head[7:8] in (b"", b"0", b"1")
    ):
        return NEED_MORE
    return False


def _contains_start_line(head: bytes, is_request: bool) -> bool:
    """A start line after a line break: the capture began inside a message."""
    pattern = http1.REQUEST_LINE if is_request else http1.STATUS_LINE
    for found in pattern.finditer(head):
        start = found.start()
        if start and head[start - 1] == 10:
            return True
    return False


def offer(
    client_head: bytes, server_head: bytes, role_guessed: bool
) -> tuple[Start, bool] | Verdict | None:
    """What the first bytes are: ``(start, roles flipped)``, NEED_MORE, or None (not HTTP)."""
    if client_head.startswith(http2.PREFACE):
        return Start.HTTP2, False
    if client_head and http2.PREFACE.startswith(client_head):
        return NEED_MORE
    if not client_head and server_head[3:4] == b"\x04" and http2_frames.frames_verdict(server_head):
        return NEED_MORE  # an HTTP/2 server's SETTINGS can precede the client's preface
    undecided = False
    for head, is_request, flipped in (
        (client_head, True, False),
        (server_head, False, False),
        (server_head, True, True),
        (client_head, False, True),
    ):
        if not head or (flipped and not role_guessed):
            continue
        verdict = _first_line(head) if is_request else _status_line(head)
        if verdict is True:
            return Start.HTTP1, flipped
        undecided = undecided or verdict is NEED_MORE
    if undecided:
        return NEED_MORE
    if not role_guessed:
        return None
    if _contains_start_line(client_head, True) or _contains_start_line(server_head, False):
        return Start.HTTP1_MIDSTREAM, False
    if _contains_start_line(client_head, False) or _contains_start_line(server_head, True):
        return Start.HTTP1_MIDSTREAM, True
    # The capture began within a chunked body (a download, usually: the side that spoke
    # first, taken for the client, is the server when the other is silent).
    if _chunks_in_flight(server_head):
        return Start.HTTP1_MIDSTREAM, False
    if _chunks_in_flight(client_head):
        return Start.HTTP1_MIDSTREAM, not server_head
    midstream = _midstream_http2(client_head, server_head)
    if midstream is None and not (client_head and server_head):
        # The first bytes may be the tail of an HTTP/1 body, the next message a long way
        # off: the other side's next bytes tell.
        return NEED_MORE
    return midstream


_CHUNK_SIZE_LINE = re.compile(rb"\r\n([0-9a-fA-F]{1,8})(?:;[^\r\n]{0,64})?\r\n")


def _chunks_in_flight(head: bytes) -> bool:
    """A chunk of a chunked body whose size line is followed, exactly that many bytes later,
    by the next chunk's: not a coincidence of binary data."""
    for found in _CHUNK_SIZE_LINE.finditer(head):
        size = int(found.group(1), 16)
        if size and _CHUNK_SIZE_LINE.match(head, found.end() + size):
            return True
    return False


def _midstream_http2(client_head: bytes, server_head: bytes) -> tuple[Start, bool] | Verdict | None:
    """Frames on either side (the other may be inside a frame in flight); the roles from the
    first header block that tells a request from a response."""
    found: dict[bool, bool | None] = {}
    undecided = False
    for head, is_client in ((client_head, True), (server_head, False)):
        offset, keep = http2_frames.find_frames(head, _OFFER_FRAMES)
        if offset is not None:
            found[is_client] = http2_frames.sends_requests(head, offset)
        # a head too short for a header, or with a frame begun, may still show frames
        undecided = undecided or keep < len(head) - http2_frames.FRAME_HEADER + 1 or keep == 0
    if not found:
        in_flight = len(client_head) + len(server_head) < http2_frames.DEFAULT_MAX_FRAME + 2 * (
            http2_frames.FRAME_HEADER
        )
        return NEED_MORE if undecided and in_flight else None
    if found.get(True) is False or found.get(False) is True:
        return Start.HTTP2_MIDSTREAM, True
    if found.get(True) or found.get(False) is False:
        return Start.HTTP2_MIDSTREAM, False
    if len(client_head) + len(server_head) < ROLE_EVIDENCE_WAIT:
        return NEED_MORE
    return Start.HTTP2_MIDSTREAM, False


class HttpDissector(Dissector):
    """Feeds the current protocol's session; directions are flipped when the core guessed the
    roles of a mid-connection capture the wrong way round."""

    def __init__(
        self, context: ConnectionContext, settings: Settings, start: Start, flipped: bool
    ) -> None:
        super().__init__(context)
        self.settings = settings
        if flipped and context.swap_roles():
            flipped = False  # the core corrects its guess: entries show who the client is
        self.request_direction = (
            Direction.SERVER_TO_CLIENT if flipped else Direction.CLIENT_TO_SERVER
        )
        self.session: Session
        self.http1_sides: tuple[http1.Side, http1.Side] | None = None
        """The HTTP/1 parsers of the client's and the server's bytes (none after a switch)."""
        self.h2: http2.Http2Session | None = None
        """The session when it is HTTP/2's, which compiled code calls directly (through the
        ``Session`` protocol, each chunk is a method call through Python)."""
        if start in (Start.HTTP2, Start.HTTP2_MIDSTREAM):
            self.session = self.h2 = http2.Http2Session(
                context,
                settings,
                self.request_direction,
                expect_preface=start is Start.HTTP2,
                midstream=start is Start.HTTP2_MIDSTREAM,
            )
            return
        session = http1.Http1Session(context, settings, self.request_direction, self._upgraded)
        if start is Start.HTTP1_MIDSTREAM or context.connection.role_guessed:
            session.resync_both()  # either side may begin within a message
        self.session = session
        # Each packet goes straight to its direction's parser while the connection is HTTP/1.
        self.http1_sides = session.sides[::-1] if flipped else session.sides

    def feed(self, direction: Direction, data: bytes, timestamp: float) -> None:
        sides = self.http1_sides
        if sides is not None:
            sides[direction].feed(data, timestamp)
            return
        h2 = self.h2
        if h2 is not None:
            h2.feed(direction == self.request_direction, data, timestamp)
        else:
            self.session.feed(direction == self.request_direction, data, timestamp)

    def gap(self, direction: Direction, length: int, timestamp: float) -> None:
        self.session.gap(direction == self.request_direction, length, timestamp)

    def close(self, timestamp: float, reason: CloseReason) -> None:
        self.session.close(timestamp)

    def _upgraded(
        self,
        kind: str,
        request: http1.Partial,
        response: http1.Head,
        client_rest: bytes,
        server_rest: bytes,
        timestamp: float,
    ) -> None:
        """HTTP/1 ended with a ``101``: the bytes that follow belong to ``kind``."""
        self.http1_sides = None
        head = request.head
        session: Session
        if kind == "websocket":
            extensions = ", ".join(header_values(response.headers, "sec-websocket-extensions"))
            session = websocket.WebSocketSession(
                self.context,
                self.settings,
                self.request_direction,
                head.second,
                websocket.Deflate.negotiated(extensions),
            )
        else:
            h2 = http2.Http2Session(
                self.context, self.settings, self.request_direction, expect_preface=True
            )
            hosts = header_values(head.headers, "host")
            headers: dict[str, object] = {
                ":method": head.first,
                ":path": head.second,
                ":scheme": "http",
                ":authority": hosts[0] if hosts else "",
            }
            headers.update(head.headers)
            h2.upgraded_request(
                headers,
                request.body.data,
                request.first_time,
                timestamp,
                head.size + request.body.wire_size,
            )
            session = self.h2 = h2
        self.session = session
        if client_rest:
            session.feed(True, client_rest, timestamp)
        if server_rest:
            session.feed(False, server_rest, timestamp)
