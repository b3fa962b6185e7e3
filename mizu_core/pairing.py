"""Matching requests with responses.

Dissectors decide what a message is; these matchers decide which messages belong together and
hand complete pairs to a sink. The core keeps track of every matcher of a connection so that it
can expire requests left unanswered (they become entries with ``response`` None) and flush them
when the connection ends.

A message handed on without its partner goes with the reason (an entry's ``unpaired``):
``timeout`` (expired, or the matcher stopped waiting for its answer), ``closed`` (flushed when
the connection ended), ``gap`` (the capture lost its partner), ``midstream`` (its partner was
sent before the capture joined the connection).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Hashable
from typing import Final, Protocol

from mizu_core.model import ConnectionInfo, Message, Pair

PairSink = Callable[[Message | None, Message | None, str], None]
"""Takes a request, its response, and why one of them is missing ("" for a pair)."""

UNPAIRED_TIMEOUT: Final = "timeout"
UNPAIRED_CLOSED: Final = "closed"
UNPAIRED_GAP: Final = "gap"
UNPAIRED_MIDSTREAM: Final = "midstream"
UNPAIRED_REASONS: Final = (UNPAIRED_GAP, UNPAIRED_MIDSTREAM, UNPAIRED_TIMEOUT, UNPAIRED_CLOSED)
"""Why a message is alone (an entry's ``unpaired``)."""


class _Owned(Protocol):
    """What an :class:`Emitter` reads of its connection's context
    (:class:`mizu_core.dissector.ConnectionContext`)."""

    owner: str


class Emitter:
    """The work of ``ConnectionContext.emit``: counting a pair under the plugin that has the
    connection and handing it to the core.

    The context (plugin API, interpreted) hands its matchers this compiled object's
    :meth:`emit`, not its own method: a pair then reaches the core without an interpreted
    call."""

    __slots__ = ("_connection", "_context", "_counters", "_sink")

    def __init__(
        self,
        context: _Owned,
        connection: ConnectionInfo,
        sink: Callable[[Pair], None],
        counters: dict[str, Counter[str]],
    ) -> None:
        self._context = context
        self._connection = connection
        self._sink = sink
        self._counters = counters

    def counters(self) -> Counter[str]:
        """The counters of the plugin that has the connection (or is asked for it)."""
        owner = self._context.owner
        counters = self._counters.get(owner)
        if counters is None:
            counters = self._counters[owner] = Counter()
        return counters

    def emit(
        self, request: Message | None, response: Message | None, unpaired: str | None = None
    ) -> None:
        counters = self.counters()
        if request is not None and response is not None:
            counters["paired"] += 1
            unpaired = ""
        elif unpaired:
            counters["unpaired." + unpaired] += 1
        self._sink(Pair(self._connection, request, response, unpaired or ""))


class Matcher:
    """What the core needs of every matcher: expiry and flushing.

    ``joined_midway``: the capture began within the connection. A response that finds no
    request pending is then put down to the capture's start (``midstream``) until the
    matcher has seen a request; afterwards, and on a connection seen from its start, to a gap.
    """

    def __init__(self, sink: PairSink, max_pending: int, joined_midway: bool = False) -> None:
        self._sink = sink
        self._max_pending = max_pending
        self._before_first_request = joined_midway

    def _orphan_reason(self, unpaired: str) -> str:
        """Why a response with no request pending has none: ``unpaired`` when the dissector
        said, else what the matcher knows of the capture's start."""
        if unpaired:
            return unpaired
        return UNPAIRED_MIDSTREAM if self._before_first_request else UNPAIRED_GAP

    @property
    def pending(self) -> int:
        raise NotImplementedError

    def expire(self, older_than: float, reason: str = UNPAIRED_TIMEOUT) -> int:
        """Emit, unanswered (``reason``), every request whose first byte is older than
        ``older_than`` and whose answer has not begun (see ``answering``)."""
        raise NotImplementedError

    def flush(self, reason: str = UNPAIRED_CLOSED) -> int:
        """Emit every pending request unanswered: the connection ended (``closed``), or a gap
        means no answer to come can be told apart (``gap``)."""
        raise NotImplementedError


class InOrderMatcher(Matcher):
    """Responses answer requests in the order the requests were sent (HTTP/1.x, Redis)."""

    def __init__(
        self, sink: PairSink, max_pending: int = 1024, joined_midway: bool = False
    ) -> None:
        super().__init__(sink, max_pending, joined_midway)
        self._requests: deque[Message] = deque()
        self._answering = False
        """The oldest request's answer has begun."""

    @property
    def pending(self) -> int:
        return len(self._requests)

    def request(self, message: Message) -> None:
        self._before_first_request = False
        if len(self._requests) >= self._max_pending:
            self._answering = False
            self._sink(self._requests.popleft(), None, UNPAIRED_TIMEOUT)
        self._requests.append(message)

    def answering(self) -> None:
        """The answer to the oldest request has begun: it is not expired while the rest of
        the answer comes (a long poll, a slow download)."""
        self._answering = bool(self._requests)

    def response(self, message: Message, unpaired: str = "") -> None:
        """Pair with the oldest unanswered request. A response with none is handed on alone,
        marked ``unpaired`` (``gap`` or ``midstream``; by default as ``joined_midway`` says)."""
        self._answering = False
        if self._requests:
            self._sink(self._requests.popleft(), message, "")
        else:
            self._sink(None, message, self._orphan_reason(unpaired))

    def peek(self) -> Message | None:
        """The request the next response answers, if any (an HTTP HEAD changes how the response
        is parsed, say)."""
        return self._requests[0] if self._requests else None

    def expire(self, older_than: float, reason: str = UNPAIRED_TIMEOUT) -> int:
        if self._answering:
            return 0
        count = 0
        while self._requests and self._requests[0].first_time < older_than:
            self._sink(self._requests.popleft(), None, reason)
            count += 1
        return count

    def flush(self, reason: str = UNPAIRED_CLOSED) -> int:
        self._answering = False
        return self.expire(float("inf"), reason)


class KeyedMatcher(Matcher):
    """Responses name the request they answer (an HTTP/2 stream id, a Kafka correlation id)."""

    def __init__(
        self, sink: PairSink, max_pending: int = 4096, joined_midway: bool = False
    ) -> None:
        super().__init__(sink, max_pending, joined_midway)
        self._requests: dict[Hashable, Message] = {}
        """In the order they came (a dict keeps it; an ``OrderedDict``'s ``pop`` is a method
        call through Python, four times a plain dict's lookup and deletion)."""
        self._answering: set[Hashable] = set()
        """Keys of pending requests whose answer has begun."""

    @property
    def pending(self) -> int:
        return len(self._requests)

    def request(self, key: Hashable, message: Message) -> None:
        """Remember a request; a second request under a key still pending ends the first one
        unanswered (``timeout``: the matcher stopped waiting for its answer)."""
        self._before_first_request = False
        previous = self._pop(key)
        if previous is not None:
            self._answering.discard(key)
            self._sink(previous, None, UNPAIRED_TIMEOUT)
        elif len(self._requests) >= self._max_pending:
            oldest = next(iter(self._requests))
            request = self._requests.pop(oldest)
            self._answering.discard(oldest)
            self._sink(request, None, UNPAIRED_TIMEOUT)
        self._requests[key] = message

    def answering(self, key: Hashable) -> None:
        """The answer to the request under ``key`` has begun: it is not expired while the rest
        of the answer comes (a long poll, a stream of server messages)."""
        if key in self._requests:
            self._answering.add(key)

    def response(self, key: Hashable, message: Message, unpaired: str = "") -> None:
        """Pair with the request under ``key``. A response with none is handed on alone,
        marked ``unpaired`` (``gap`` or ``midstream``; by default as ``joined_midway`` says)."""
        if self._answering:
            self._answering.discard(key)
        request = self._pop(key)
        if request is not None:
            self._sink(request, message, "")
        else:
            self._sink(None, message, self._orphan_reason(unpaired))

    def get(self, key: Hashable) -> Message | None:
        """The pending request under ``key`` (a Kafka response is decoded with its request's
        API version, say)."""
        return self._requests.get(key)

    def take(self, key: Hashable) -> Message | None:
        """Remove and return the pending request under ``key`` without emitting it, for
        protocols that build the pair themselves."""
        if self._answering:
            self._answering.discard(key)
        return self._pop(key)

    def _pop(self, key: Hashable) -> Message | None:
        requests = self._requests
        request = requests.get(key)
        if request is not None:
            del requests[key]
        return request

    def expire(self, older_than: float, reason: str = UNPAIRED_TIMEOUT) -> int:
        answering = self._answering
        expired = [
            key
            for key, message in self._requests.items()
            if message.first_time < older_than and key not in answering
        ]
        for key in expired:
            self._sink(self._requests.pop(key), None, reason)
        return len(expired)

    def flush(self, reason: str = UNPAIRED_CLOSED) -> int:
        self._answering.clear()
        return self.expire(float("inf"), reason)
