"""HTTP/1.0 and 1.1 (RFC 9112): a sans-IO parser of both directions of one connection.

Messages are framed by Content-Length, chunked transfer coding (its trailers kept apart, as
``trailers``) or the end of the connection. Requests and responses are paired by their order on
the connection (keep-alive and pipelining), numbered on each side so that a message lost in a
capture gap shifts nothing: its partner is emitted alone. A response's framing depends on its
request (HEAD) and its status (1xx, 204, 304 have no body), so each side's parser knows the
method of every request it has read the head of.

A hand-written parser rather than httptools/llhttp, although llhttp frames messages about
twice as fast (see the plugin's README for the measurement): httptools cannot be told that a
response answers a HEAD (its ``on_headers_complete`` result is fixed), reports no position
after an error (only after an upgrade) and cannot be told that the connection ended (a body
read until the close never completes), all of which a passive observer needs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final, NamedTuple

from mizu_core import UNPAIRED_MIDSTREAM, ConnectionContext, Direction, make_message
from mizu_http import bodies, declarations
from mizu_http.http1_pairing import Answer, Pairing, Ticket
from mizu_http.settings import Settings

MAX_HEAD: Final = 64 << 10
"""A start line with its headers longer than this is not HTTP (or not worth keeping)."""
MAX_PAUSED: Final = 256 << 10
"""Client bytes kept while an upgrade request waits for its answer."""
_RESYNC_TAIL: Final = 64
"""Bytes kept across feeds while searching for a start line (one may straddle two feeds)."""

_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
REQUEST_LINE: Final = re.compile(rb"[A-Z][A-Z_-]{2,19} [^ \r\n]+ HTTP/1\.[01]\r?\n")
STATUS_LINE: Final = re.compile(rb"HTTP/1\.[01] [1-9][0-9][0-9][ \r]")
_NO_BODY_STATUSES: Final = frozenset((204, 304))
# Final: a name imported from another module is looked up in this one's dict at every use
HTTP10: Final = declarations.HTTP10
HTTP11: Final = declarations.HTTP11
_COMMON_METHODS: Final = frozenset(("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"))
"""Methods accepted without matching the token pattern."""


class _State:
    HEAD: Final = 0
    BODY_LENGTH: Final = 1
    CHUNK_SIZE: Final = 2
    CHUNK_DATA: Final = 3
    CHUNK_END: Final = 4
    TRAILERS: Final = 5
    BODY_UNTIL_CLOSE: Final = 6
    RESYNC: Final = 7
    PAUSED: Final = 8
    """Client side after an upgrade request: bytes wait until the answer says what they are."""
    STOPPED: Final = 9
    """Not HTTP/1 any more (a CONNECT tunnel)."""


class HeaderBlock(NamedTuple):
    """The headers of a head (the lines after its start line) and what framing and decoding
    need of them."""

    headers: dict[str, Any]
    content_length: int = -1
    chunked: bool = False
    content_type: str = ""
    content_encoding: str = ""
    upgrade: str = ""
    connection: str = ""
    reusable: bool = True
    """Every value is a string: a copy of ``headers`` is independent of it."""


class Head:
    """A parsed start line and header block (not a dataclass: its ``__init__`` would run
    interpreted in the compiled build, for every message)."""

    __slots__ = ("first", "framing", "headers", "second", "size", "third")

    def __init__(
        self,
        first: str,
        second: str,
        third: str,
        headers: dict[str, Any],
        size: int,
        framing: HeaderBlock,
    ) -> None:
        self.first = first
        self.second = second
        self.third = third
        self.headers = headers
        self.size = size
        self.framing = framing
        """What framing and decoding need of the headers."""


def add_header(headers: dict[str, Any], name: str, value: str) -> None:
    """Add to a header object keyed by name as sent; a repeated name maps to a list."""
    existing = headers.get(name)
    if existing is None:
        headers[name] = value
    elif isinstance(existing, list):
        existing.append(value)
    else:
        headers[name] = [existing, value]


def _slow_headers(lines: list[str]) -> dict[str, Any]:
    """Headers with repeated names, obsolete line folding or malformed lines."""
    headers: dict[str, Any] = {}
    last_name = ""
    for line in lines:
        if line[:1] in (" ", "\t"):
            if last_name:  # obsolete line folding: a continuation of the previous value
                previous = headers[last_name]
                folded = line.strip()
                if isinstance(previous, list):
                    previous[-1] = f"{previous[-1]} {folded}"
                else:
                    headers[last_name] = f"{previous} {folded}"
            continue
        name, colon, value = line.partition(":")
        if colon:
            add_header(headers, name, value.strip())
            last_name = name
    return headers


def _headers(lines: list[str], text: str) -> tuple[dict[str, Any], bool]:
    """The header object of a header block's ``lines``, and whether each name came once
    (every value is a string); ``text`` is the block, searched once for folded lines."""
    headers: dict[str, Any] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon:
            return _slow_headers(lines), False
        headers[name] = value.strip()
    if (
        len(headers) != len(lines)
        or "\n " in text
        or "\n\t" in text
        or text.startswith((" ", "\t"))
    ):
        return _slow_headers(lines), False  # a repeated name, or a folded line
    return headers, True


def _framing_value(headers: dict[str, Any], name: str, lower: str) -> str | None:
    """A framing header's (last) value, found in the usual spellings first."""
    value = headers.get(name)
    if value is None:
        value = headers.get(lower)
        if value is None:
            for key, found in headers.items():
                if key.lower() == lower:
                    value = found
                    break
            else:
                return None
    return str(value[-1] if isinstance(value, list) else value)


def parse_header_block(text: str) -> HeaderBlock:
    """The header block ``text``. The framing headers are looked up only when the lower-cased
    block holds their names, which rules absent ones out without a pass over the names."""
    headers, reusable = _headers(text.split("\n"), text)
    lowered = text.lower()
    content_length = -1
    chunked = False
    content_type = content_encoding = upgrade = connection = ""
    if "content-length" in lowered:
        value = _framing_value(headers, "Content-Length", "content-length")
        if value is not None and value.isdigit():
            content_length = int(value)
    if "transfer-encoding" in lowered:
        value = _framing_value(headers, "Transfer-Encoding", "transfer-encoding")
        chunked = value is not None and value.lower().endswith("chunked")
    if "content-type" in lowered:
        content_type = _framing_value(headers, "Content-Type", "content-type") or ""
    if "content-encoding" in lowered:
        content_encoding = _framing_value(headers, "Content-Encoding", "content-encoding") or ""
    if "upgrade" in lowered:
        upgrade = (_framing_value(headers, "Upgrade", "upgrade") or "").lower()
        connection = (_framing_value(headers, "Connection", "connection") or "").lower()
    return HeaderBlock(
        headers,
        content_length,
        chunked,
        content_type,
        content_encoding,
        upgrade,
        connection,
        reusable,
    )


_NO_HEADERS: Final = HeaderBlock({})
_header_blocks: Final[dict[bytes, HeaderBlock]] = {}
"""Header blocks parsed lately, by their bytes. A client sends the same headers with most of
its requests, and a server with most of its answers: each such block is parsed once."""
MAX_HEADER_BLOCKS: Final = 512
MAX_CACHED_BLOCK: Final = 2048
"""Longer header blocks are parsed every time (the cache stays within about 2 MB)."""


def _ascii_header_block(block: bytes) -> HeaderBlock:
    """The ASCII header block ``block``, parsed once while it keeps coming. Its ``headers``
    are shared with the heads to come: a head takes a copy."""
    parsed = _header_blocks.get(block)
    if parsed is None:
        parsed = parse_header_block(block.decode("ascii"))
        if parsed.reusable and len(block) <= MAX_CACHED_BLOCK:
            if len(_header_blocks) >= MAX_HEADER_BLOCKS:
                _header_blocks.clear()
            _header_blocks[block] = parsed
    return parsed


def parse_head(block: bytes, is_request: bool, blank: int, line_end: int) -> Head | None:
    """The head in ``block`` (without the ``blank`` bytes that end it), or None when it is
    not HTTP/1. Text that is not UTF-8 is taken for Latin-1. ``line_end`` is where its first
    line feed is (-1: it has none), which the reader found already."""
    ascii_text = block.isascii()
    if ascii_text:
        start_line = (block if line_end < 0 else block[:line_end]).decode("ascii")
    else:
        try:
            text = block.decode()
        except UnicodeDecodeError:
            text = block.decode("latin-1")
        start_line = text if line_end < 0 else text[: text.index("\n")]
    parts = start_line.rstrip("\r").split(" ", 2)
    if is_request:
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return None
        if parts[0] not in _COMMON_METHODS and not _TOKEN.fullmatch(parts[0]):
            return None
    else:
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            return None
        if len(parts) == 2:
            parts.append("")
    if line_end < 0:
        fields = _NO_HEADERS
    elif ascii_text:
        fields = _ascii_header_block(block[line_end + 1 :])
    else:
        fields = parse_header_block(text[len(start_line) + 1 :])
    # Entries are changed in place downstream (redaction): each head gets its own headers.
    return Head(parts[0], parts[1], parts[2], fields.headers.copy(), len(block) + blank, fields)


class Partial:
    """A message whose head is read and whose body is coming (a plain class, as :class:`Head`
    is)."""

    __slots__ = ("body", "exchange", "first_time", "head", "trailers")

    def __init__(
        self, head: Head, first_time: float, exchange: Ticket | Answer, body: bodies.Body
    ) -> None:
        self.head = head
        self.first_time = first_time
        self.exchange = exchange
        """A request's ticket, or a response's answer: what pairing knows of the message."""
        self.body = body
        self.trailers: dict[str, Any] | None = None
        """Fields after a chunked body (RFC 9112 section 7.1.2), kept apart from the headers."""


class Http1Session:
    """Both directions of an HTTP/1 connection (their pairing: :class:`Pairing`).

    ``on_upgrade(kind, upgrade_request, client_rest, server_rest, timestamp)`` is called after
    a ``101 Switching Protocols`` to a protocol other than HTTP/1 (kind ``websocket`` or
    ``h2c``); the session is finished then and the caller takes the connection over.
    """

    def __init__(
        self,
        context: ConnectionContext,
        settings: Settings,
        request_direction: Direction,
        on_upgrade: Callable[[str, Partial, Head, bytes, bytes, float], None],
    ) -> None:
        self.context = context
        self.max_body = settings.max_body_size
        self.request_direction = request_direction
        self.response_direction = request_direction.reverse
        self.on_upgrade = on_upgrade
        self.sides = (Side(self, is_request=True), Side(self, is_request=False))
        self.pairing = Pairing(context)
        self.upgrades: dict[int, tuple[Partial, str]] = {}
        """Requests asking to switch protocols, by serial, until answered."""
        self.switch: tuple[str, Partial, Head] | None = None
        self.finished = False

    def feed(self, is_request: bool, data: bytes, timestamp: float) -> None:
        self.sides[0 if is_request else 1].feed(data, timestamp)

    def gap(self, is_request: bool, length: int, timestamp: float) -> None:
        self.sides[0 if is_request else 1].gap(length, timestamp)

    def close(self, timestamp: float) -> None:
        for side in self.sides:
            side.finish(timestamp)
        current = self.sides[0].current
        sending = current.exchange if current is not None else None
        self.pairing.closed(sending if isinstance(sending, Ticket) else None)

    def resync_both(self) -> None:
        """Start both sides searching for a start line (the capture began mid-connection)."""
        for side in self.sides:
            side.state = _State.RESYNC
            side.resynced = True
        self.sides[1].tail = 0

    def answer_in_flight(self, size: int, first_time: float, last_time: float) -> None:
        """The ``size`` bytes of an answer whose head came before the capture: shown alone,
        with what was not captured (its status, its headers, its body's start)."""
        data: dict[str, Any] = {
            "status": 0,
            "statusText": "",
            "httpVersion": "HTTP/1.1",
            "headers": {},
            "content": {"size": 0, "mimeType": "", "text": ""},
            "headersSize": 0,
            "bodySize": size,
            "unrecovered": ["headers", "body"],
        }
        message = make_message(HTTP11, self.response_direction, first_time, last_time, size, data)
        self.context.emit(None, message, UNPAIRED_MIDSTREAM)

    def message(
        self,
        head: Head,
        is_request: bool,
        exchange: Ticket | Answer,
        first_time: float,
        last_time: float,
        body: bytes,
        wire_size: int,
        truncated: bool,
        trailers: dict[str, Any] | None,
    ) -> None:
        """A complete message: ``body`` is what was kept of the ``wire_size`` bytes that
        followed the head (``truncated`` when that is not all)."""
        has_body = wire_size > 0 or head.framing.chunked
        if is_request:
            data: dict[str, Any] = {
                "method": head.first,
                "target": head.second,
                "httpVersion": head.third,
                "headers": head.headers,
                "headersSize": head.size,
                "bodySize": wire_size,
            }
            if has_body:
                data["postData"] = bodies.describe_data(
                    body,
                    truncated,
                    head.framing.content_type,
                    head.framing.content_encoding,
                    self.max_body,
                )
            version, direction = head.third, self.request_direction
        else:
            data = {
                "status": int(head.second),
                "statusText": head.third,
                "httpVersion": head.first,
                "headers": head.headers,
                "content": bodies.describe_data(
                    body,
                    truncated,
                    head.framing.content_type,
                    head.framing.content_encoding,
                    self.max_body,
                )
                if has_body
                else {"size": 0, "mimeType": head.framing.content_type, "text": ""},
                "headersSize": head.size,
                "bodySize": wire_size,
            }
            version, direction = head.first, self.response_direction
        if trailers:
            data["trailers"] = trailers
        protocol = HTTP10 if version == "HTTP/1.0" else HTTP11
        size = head.size + wire_size
        message = make_message(protocol, direction, first_time, last_time, size, data)
        if is_request:
            assert isinstance(exchange, Ticket)
            self.pairing.request_complete(exchange, message)
        else:
            assert isinstance(exchange, Answer)
            self.pairing.response_complete(exchange, message)

    # -- upgrades ------------------------------------------------------------------------------

    def answered_upgrade(self, response: Partial, timestamp: float) -> bool:
        """A final response arrived: resume a paused client, or get ready to hand the
        connection over (see :meth:`hand_over`). True when HTTP/1 ends with this response."""
        answer = response.exchange
        ticket = answer.ticket if isinstance(answer, Answer) else None
        pending = self.upgrades.pop(ticket.serial, None) if ticket is not None else None
        client = self.sides[0]
        if response.head.second != "101":
            if pending is not None and client.state == _State.PAUSED:
                client.resume(timestamp)
            return False
        self.finished = True
        if pending is not None and pending[1] in ("websocket", "h2c"):
            self.switch = (pending[1], pending[0], response.head)
        return True

    def hand_over(self, server_rest: bytes, timestamp: float) -> None:
        """After a 101: give the bytes that follow to the protocol switched to, if known."""
        client = self.sides[0]
        client_rest = client.buffer if client.state == _State.PAUSED else b""
        for side in self.sides:
            side.state = _State.STOPPED
            side.buffer = b""
        if self.switch is not None:
            kind, request, response = self.switch
            self.on_upgrade(kind, request, response, client_rest, server_rest, timestamp)


def _keeps_alive(head: Head) -> bool:
    """An HTTP/1.1 response that does not close the connection after it."""
    connection = _framing_value(head.headers, "Connection", "connection") or ""
    return head.first == "HTTP/1.1" and "close" not in connection.lower()


def _plausible_header_lines(block: bytes) -> bool:
    """Every line after the start line of ``block`` is a header field (``name: value``) or
    continues one: a start line found by searching is not taken on its looks alone."""
    lines = block.split(b"\n")
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            continue
        if _HEADER_LINE.match(line) is None:
            return False
    return True


_HEADER_LINE: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+:")


class Side:
    """One direction's parser."""

    __slots__ = (
        "buffer",
        "carried",
        "carried_at",
        "current",
        "fed_at",
        "is_request",
        "remaining",
        "resynced",
        "session",
        "state",
        "tail",
        "tail_from",
        "tail_to",
    )

    def __init__(self, session: Http1Session, is_request: bool) -> None:
        self.session = session
        self.tail = -1
        """Bytes of an answer begun before the capture, passed over so far (-1: none is)."""
        self.tail_from = self.tail_to = 0.0
        self.is_request = is_request
        self.state = _State.HEAD
        self.buffer = b""
        """Bytes of an incomplete head or chunk-size line (bounded by MAX_HEAD)."""
        self.carried = 0
        """How many bytes of the data being read were kept from earlier feeds..."""
        self.carried_at = 0.0
        """...and when they were captured: a head split across packets began then."""
        self.current: Partial | None = None
        self.remaining = 0
        self.resynced = False
        """The next head was found by searching after a loss: it is checked harder."""
        self.fed_at = session.context.connection.start_time
        """When the bytes fed last were captured (before any, the connection was seen)."""

    def feed(self, data: bytes, timestamp: float) -> None:
        self._read(data, timestamp)
        self.fed_at = timestamp
        if self.is_request:
            self._client_read(timestamp)

    def _client_read(self, timestamp: float) -> None:
        """Tell pairing up to when the client's requests are known: a request begun in
        the bytes kept for the next feed is not read yet."""
        self.session.pairing.client_seen(self.carried_at if self.buffer else timestamp)

    def _read(self, data: bytes, timestamp: float) -> None:
        if self.buffer:
            data = self.buffer + data
            self.carried = len(self.buffer)
            self.buffer = b""
        else:
            self.carried = 0
        state = self.state
        if state == _State.PAUSED:
            self._pause(data)
            return
        position = 0
        end = len(data)
        # Only a head can end HTTP/1 (a 101): the session is not finished while this runs on.
        while position < end:
            if state == _State.HEAD:
                position = self._head(data, position, timestamp)
                if position < 0:
                    return
                if self.session.finished:
                    self.session.hand_over(data[position:], timestamp)
                    return
            elif state == _State.BODY_LENGTH:
                take = self.remaining if self.remaining < end - position else end - position
                self._body(data if take == end else data[position : position + take], take)
                position += take
                self.remaining -= take
                if not self.remaining:
                    self._complete(timestamp)
            elif state == _State.BODY_UNTIL_CLOSE:
                self._body(data[position:] if position else data, end - position)
                return
            elif state in (_State.CHUNK_SIZE, _State.CHUNK_END, _State.TRAILERS):
                line_end = data.find(b"\n", position)
                if line_end < 0:
                    if end - position > MAX_HEAD:
                        self._lost(timestamp, timestamp)
                        return
                    self._keep(data, position, timestamp)
                    return
                self._chunk_line(data[position:line_end].strip(), line_end + 1 - position)
                if self.state == _State.RESYNC:
                    self._lost(timestamp, timestamp)
                    position = self._resync(data, line_end + 1, timestamp)
                    if position < 0:
                        return
                else:
                    position = line_end + 1
                    if self.state == _State.HEAD and self.current is not None:
                        self._complete(timestamp)
            elif state == _State.CHUNK_DATA:
                take = self.remaining if self.remaining < end - position else end - position
                self._body(data[position : position + take], take)
                position += take
                self.remaining -= take
                if not self.remaining:
                    self.state = _State.CHUNK_END
            elif state == _State.RESYNC:
                position = self._resync(data, position, timestamp)
                if position < 0:
                    return
            elif state == _State.PAUSED:
                self._pause(data[position:])
                return
            else:  # STOPPED
                return
            state = self.state

    def _keep(self, data: bytes, position: int, timestamp: float) -> None:
        """Keep the bytes from ``position`` for the next feed (an incomplete line)."""
        if position >= self.carried:
            self.carried_at = timestamp
        self.buffer = data[position:]

    def _head(self, data: bytes, position: int, timestamp: float) -> int:
        """Read a head at ``position`` (and the body after it when that is all there); the
        position after what was read, or -1 when the head is incomplete."""
        first = data[position]
        if first == 13 or first == 10:  # blank lines between messages
            while data.startswith(b"\r\n", position) or data.startswith(b"\n", position):
                position += 1 if data[position] == 10 else 2
            if position >= len(data):
                return position
        line_end = data.find(b"\n", position)
        if line_end > position and data[line_end - 1] != 13:
            end, blank = data.find(b"\n\n", position), 2  # bare LF line ends (tolerated)
        else:
            end, blank = data.find(b"\r\n\r\n", position), 4
        if end < 0:
            if len(data) - position > MAX_HEAD:
                self._lost(timestamp, timestamp)
                return self._resync(data, position + 1, timestamp)
            self._keep(data, position, timestamp)
            return -1
        block = data[position:end]
        head = parse_head(
            block, self.is_request, blank, line_end - position if line_end < end else -1
        )
        if head is None or (self.resynced and not _plausible_header_lines(block)):
            self._lost(timestamp, timestamp)
            return self._resync(data, position + 1, timestamp)
        self.resynced = False
        started = self.carried_at if position < self.carried else timestamp
        if self.is_request:
            return self._request(head, data, end + blank, started, timestamp)
        return self._response(head, data, end + blank, started, timestamp)

    def _request(
        self, head: Head, data: bytes, position: int, started: float, timestamp: float
    ) -> int:
        """Frame the request whose head ends at ``position``; the position after what was
        read of it."""
        session = self.session
        ticket = session.pairing.request_head(head.first, started)
        if head.framing.upgrade and "upgrade" in head.framing.connection:
            kind = (
                "h2c"
                if head.framing.upgrade.startswith("h2c")
                else head.framing.upgrade.split("/")[0]
            )
            partial = self._begin_body(head, ticket, started, _State.HEAD, 0)
            session.upgrades[ticket.serial] = (partial, kind)
            if head.framing.chunked:
                self.state = _State.CHUNK_SIZE
            elif head.framing.content_length > 0:
                self.state = _State.BODY_LENGTH
                self.remaining = head.framing.content_length
            else:
                self._complete(timestamp)
            return position
        if head.framing.chunked:
            self._begin_body(head, ticket, started, _State.CHUNK_SIZE, 0)
            return position
        return self._sized_body(
            head,
            ticket,
            max(head.framing.content_length, 0),
            data,
            position,
            started,
            timestamp,
        )

    def _response(
        self, head: Head, data: bytes, position: int, started: float, timestamp: float
    ) -> int:
        """Frame the response whose head ends at ``position``: its body depends on its status
        and on the method of the request it answers."""
        status = int(head.second)
        if status < 200 and status != 101:
            return position  # interim (100 Continue, 103 Early Hints): the final response follows
        session = self.session
        answer = session.pairing.response_head(started)
        method = answer.method
        if status == 101 or session.upgrades:
            partial = Partial(head, started, answer, bodies.Body(session.max_body))
            if session.answered_upgrade(partial, timestamp):
                self.current = partial
                self._complete(timestamp)
                return position
        if method == "HEAD" or status in _NO_BODY_STATUSES:
            session.message(head, False, answer, started, timestamp, b"", 0, False, None)
        elif method == "CONNECT" and status < 300:
            session.message(head, False, answer, started, timestamp, b"", 0, False, None)
            self.state = _State.STOPPED
            session.sides[0].state = _State.STOPPED
        elif head.framing.chunked:
            self._begin_body(head, answer, started, _State.CHUNK_SIZE, 0)
        elif head.framing.content_length >= 0:
            return self._sized_body(
                head, answer, head.framing.content_length, data, position, started, timestamp
            )
        elif answer.ticket is None and _keeps_alive(head):
            # Without its request, a kept-alive response with no length is taken for a HEAD's
            # answer: read until the close, it would swallow the responses after it.
            session.message(head, False, answer, started, timestamp, b"", 0, False, None)
        else:
            self._begin_body(head, answer, started, _State.BODY_UNTIL_CLOSE, 0)
        return position

    def _sized_body(
        self,
        head: Head,
        exchange: Ticket | Answer,
        length: int,
        data: bytes,
        position: int,
        started: float,
        timestamp: float,
    ) -> int:
        """A body of ``length`` bytes follows the head at ``position``. Usually all of it came
        with the head: the message is complete without a partial one."""
        end = position + length
        if end > len(data):
            self._begin_body(head, exchange, started, _State.BODY_LENGTH, length)
            return position
        limit = self.session.max_body
        body = data[position:end] if length else b""
        truncated = length > limit
        self.session.message(
            head,
            self.is_request,
            exchange,
            started,
            timestamp,
            body[:limit] if truncated else body,
            length,
            truncated,
            None,
        )
        return end

    def _begin_body(
        self, head: Head, exchange: Ticket | Answer, started: float, state: int, length: int
    ) -> Partial:
        partial = Partial(head, started, exchange, bodies.Body(self.session.max_body))
        self.current = partial
        self.state = state
        self.remaining = length
        return partial

    def _body(self, data: bytes, wire: int) -> None:
        assert self.current is not None
        self.current.body.add(data, wire)

    def _chunk_line(self, line: bytes, wire: int) -> None:
        """A line of chunked framing; sets RESYNC when it is not what the framing needs."""
        partial = self.current
        assert partial is not None
        partial.body.wire_size += wire
        if self.state == _State.CHUNK_END:
            self.state = _State.CHUNK_SIZE
            if line:  # data ran past its announced size: not chunked as claimed
                self.state = _State.RESYNC
            return
        if self.state == _State.TRAILERS:
            if line:
                name, _, value = line.decode("latin-1").partition(":")
                if partial.trailers is None:
                    partial.trailers = {}
                add_header(partial.trailers, name.strip(), value.strip())
            else:
                self.state = _State.HEAD
            return
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            self.state = _State.RESYNC
            return
        if size:
            self.state = _State.CHUNK_DATA
            self.remaining = size
        else:
            self.state = _State.TRAILERS

    def _complete(self, timestamp: float) -> None:
        partial = self.current
        self.current = None
        assert partial is not None
        exchange = partial.exchange
        upgrading = isinstance(exchange, Ticket) and exchange.serial in self.session.upgrades
        self.state = _State.PAUSED if upgrading else _State.HEAD
        body = partial.body
        self.session.message(
            partial.head,
            self.is_request,
            exchange,
            partial.first_time,
            timestamp,
            body.data,
            body.wire_size,
            body.truncated,
            partial.trailers,
        )

    # -- gaps, garbage and the end -------------------------------------------------------------

    def gap(self, length: int, timestamp: float) -> None:
        """``length`` bytes were lost (0: an unknown number). Within a body of known length
        (Content-Length, a chunk's size) they are skipped by arithmetic: the message goes on,
        marked truncated, and so does the pairing. Otherwise where messages start is lost."""
        self._lose(length, timestamp)
        self.fed_at = timestamp
        if self.is_request:
            self._client_read(timestamp)

    def _lose(self, length: int, timestamp: float) -> None:
        if self.tail >= 0:
            self._in_tail(length, timestamp)
        state = self.state
        current = self.current
        if state in (_State.STOPPED, _State.PAUSED):
            return
        if current is not None and length > 0:
            if state == _State.BODY_UNTIL_CLOSE:
                current.body.wire_size += length
                current.body.truncated = True
                return
            if state in (_State.BODY_LENGTH, _State.CHUNK_DATA):
                skipped = length if length < self.remaining else self.remaining
                current.body.wire_size += skipped
                current.body.truncated = True
                self.remaining -= skipped
                if self.remaining:
                    return
                if state == _State.CHUNK_DATA:
                    self.state = _State.CHUNK_END
                    if skipped == length:
                        return
                else:
                    self._complete(timestamp)  # its end was lost, what followed may be more
                    if skipped == length:
                        return
        self._lost(timestamp, self.fed_at)

    def _lost(self, timestamp: float, lost_since: float) -> None:
        """Give up on the message in progress and search for the next start line: bytes were
        lost between the times ``lost_since`` and ``timestamp``, or bytes that are not
        HTTP/1 came at ``timestamp`` (both the same)."""
        session = self.session
        current = self.current
        if current is not None:
            self.current = None
            if self.is_request:
                assert isinstance(current.exchange, Ticket)
                session.pairing.request_lost(current.exchange)
            else:
                assert isinstance(current.exchange, Answer)
                session.pairing.response_lost(current.exchange)
        session.context.count("http1 messages dropped")
        session.pairing.lost(self.is_request, lost_since, timestamp)
        self.buffer = b""
        self.carried = 0
        self.state = _State.RESYNC
        self.resynced = True

    def _resync(self, data: bytes, position: int, timestamp: float) -> int:
        """Search for the next start line from ``position``; its position, or -1 when there
        is none yet (the last bytes are kept: one may straddle two feeds)."""
        pattern = REQUEST_LINE if self.is_request else STATUS_LINE
        context = self.session.context
        while True:
            found = pattern.search(data, position)
            if found is None:
                kept = max(position, len(data) - _RESYNC_TAIL)
                self._skipped(position, kept, timestamp)
                self._keep(data, kept, timestamp)
                return -1
            start = found.start()
            # at a line's start, or a packet's: messages often begin one
            if start == 0 or data[start - 1] == 10 or start == self.carried:
                self._skipped(position, start, timestamp)
                self._tail_ended()
                context.count("resyncs")
                self.state = _State.HEAD
                return start
            self._skipped(position, start + 1, timestamp)
            position = start + 1

    def _skipped(self, start: int, end: int, timestamp: float) -> None:
        """The bytes from ``start`` to ``end`` of the data being read were passed over."""
        if end > start:
            self.session.context.count("bytes_skipped", end - start)
            if not self.is_request:
                when = self.carried_at if end <= self.carried else timestamp
                self.session.pairing.server_sent(when)
                if self.tail >= 0:
                    self._in_tail(end - start, when)

    def _in_tail(self, length: int, timestamp: float) -> None:
        if not self.tail:
            self.tail_from = timestamp
        self.tail += length
        self.tail_to = timestamp

    def _tail_ended(self) -> None:
        """The answer in flight when the capture began ended: shown alone, if it was seen."""
        if self.tail > 0:
            self.session.answer_in_flight(self.tail, self.tail_from, self.tail_to)
        self.tail = -1

    def _pause(self, data: bytes) -> None:
        self.buffer = (self.buffer + data)[:MAX_PAUSED]

    def resume(self, timestamp: float) -> None:
        self.state = _State.HEAD
        kept, self.buffer = self.buffer, b""
        if kept:
            self.feed(kept, timestamp)

    def finish(self, timestamp: float) -> None:
        """The connection ended: a body read until the close is complete now."""
        if self.state == _State.BODY_UNTIL_CLOSE and self.current is not None:
            self._complete(timestamp)
        self._tail_ended()
