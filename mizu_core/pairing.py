"""Matching requests with responses.

Dissectors decide what a message is; these matchers decide which messages belong together and
hand complete pairs to a sink. The core keeps track of every matcher of a connection so that it
can expire requests left unanswered (they become entries with ``response`` None) and flush them
when the connection ends.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Hashable

from mizu_core.model import Message

PairSink = Callable[[Message | None, Message | None], None]


class Matcher:
    """What the core needs of every matcher: expiry and flushing."""

    def __init__(self, sink: PairSink, max_pending: int) -> None:
        self._sink = sink
        self._max_pending = max_pending

    @property
    def pending(self) -> int:
        raise NotImplementedError

    def expire(self, older_than: float) -> int:
        """Emit, unanswered, every request whose first byte is older than ``older_than``."""
        raise NotImplementedError

    def flush(self) -> int:
        """Emit every pending request unanswered (the connection ended)."""
        return self.expire(float("inf"))


class InOrderMatcher(Matcher):
    """Responses answer requests in the order the requests were sent (HTTP/1.x, Redis)."""

    def __init__(self, sink: PairSink, max_pending: int = 1024) -> None:
        super().__init__(sink, max_pending)
        self._requests: deque[Message] = deque()

    @property
    def pending(self) -> int:
        return len(self._requests)

    def request(self, message: Message) -> None:
        if len(self._requests) >= self._max_pending:
            self._sink(self._requests.popleft(), None)
        self._requests.append(message)

    def response(self, message: Message) -> None:
        """Pair with the oldest unanswered request; a response with none becomes a pair with no
        request (the capture missed it)."""
        request = self._requests.popleft() if self._requests else None
        self._sink(request, message)

    def peek(self) -> Message | None:
        """The request the next response answers, if any (an HTTP HEAD changes how the response
        is parsed, say)."""
        return self._requests[0] if self._requests else None

    def expire(self, older_than: float) -> int:
        count = 0
        while self._requests and self._requests[0].first_time < older_than:
            self._sink(self._requests.popleft(), None)
            count += 1
        return count


class KeyedMatcher(Matcher):
    """Responses name the request they answer (an HTTP/2 stream id, a Kafka correlation id)."""

    def __init__(self, sink: PairSink, max_pending: int = 4096) -> None:
        super().__init__(sink, max_pending)
        self._requests: OrderedDict[Hashable, Message] = OrderedDict()

    @property
    def pending(self) -> int:
        return len(self._requests)

    def request(self, key: Hashable, message: Message) -> None:
        """Remember a request; a second request under a key still pending ends the first one
        unanswered."""
        previous = self._requests.pop(key, None)
        if previous is not None:
            self._sink(previous, None)
        elif len(self._requests) >= self._max_pending:
            self._sink(self._requests.popitem(last=False)[1], None)
        self._requests[key] = message

    def response(self, key: Hashable, message: Message) -> None:
        self._sink(self._requests.pop(key, None), message)

    def get(self, key: Hashable) -> Message | None:
        """The pending request under ``key`` (a Kafka response is decoded with its request's
        API version, say)."""
        return self._requests.get(key)

    def take(self, key: Hashable) -> Message | None:
        """Remove and return the pending request under ``key`` without emitting it, for
        protocols that build the pair themselves."""
        return self._requests.pop(key, None)

    def expire(self, older_than: float) -> int:
        expired = [
            key for key, message in self._requests.items() if message.first_time < older_than
        ]
        for key in expired:
            self._sink(self._requests.pop(key), None)
        return len(expired)
