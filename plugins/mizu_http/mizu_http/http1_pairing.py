"""Pairing HTTP/1 responses with their requests, on a connection whose capture may have lost
bytes or joined it mid-way.

Responses answer requests in order. While neither direction lost bytes, the n-th response
answers the n-th request. After a loss, or when the capture joined the connection mid-way, the
count is unknown, and a response is paired only when the capture proves it: a client that
sends a request once the previous one is answered (no pipelining seen on the connection) has a
single request outstanding, so a response answers the last request begun before it, when the
server sent nothing else (and lost nothing) since that request began. The count restarts from
such a pair. Anything else is emitted alone, marked ``unpaired``, never joined to a neighbour.
"""

from __future__ import annotations

from collections import deque

from mizu_core import (
    UNPAIRED_CLOSED,
    UNPAIRED_GAP,
    UNPAIRED_MIDSTREAM,
    UNPAIRED_TIMEOUT,
    ConnectionContext,
    Message,
)

MAX_TICKETS = 1024
"""Requests waiting for their answer on one connection, at most (answers lost in gaps)."""
_WINDOWS = 64
"""Recent events kept per side, to tell what happened between a request and a response."""


class Ticket:
    """A request whose head was read, until it is answered or given up: what pairing knows of
    it. ``serial`` is its key in the connection's matcher once it is complete."""

    __slots__ = (
        "abandoned",
        "answer",
        "answered",
        "complete",
        "counted",
        "era",
        "first_time",
        "method",
        "serial",
    )

    def __init__(
        self, serial: int, method: str, first_time: float, era: int, counted: bool
    ) -> None:
        self.serial = serial
        self.method = method
        self.first_time = first_time
        """When its first byte was captured."""
        self.era = era
        """How many losses the client side had had when its head was read."""
        self.counted = counted
        """The responses answer it in order: no loss on either side since a point both agree
        on (the connection's start, or a pair proven since)."""
        self.complete = False
        self.answered = False
        self.answer: Message | None = None
        """A response that ended before the request did (an early error)."""
        self.abandoned = ""
        """Why it was given up before it was complete: emitted alone then."""


class Pairing:
    """The pairing of one HTTP/1 connection, told by its two parsers what they read."""

    def __init__(self, context: ConnectionContext) -> None:
        self.context = context
        self.matcher = context.keyed_matcher()
        self.joined_midway = context.connection.role_guessed
        self.tickets: deque[Ticket] = deque()
        """Requests not answered yet, in order."""
        self.serials = 0
        self.counting = not self.joined_midway
        """A request read now is counted (see :attr:`Ticket.counted`)."""
        self.client_era = 0
        self.pipelined = False
        """The client sent a request before the previous one was answered: answers cannot be
        told apart by time on this connection."""
        self.server_seen: deque[float] = deque(maxlen=_WINDOWS)
        """When the server sent bytes that were no response head (a response's end, bytes
        passed over), lately."""
        self.server_losses: deque[tuple[float, float]] = deque(maxlen=_WINDOWS)
        """When the capture lost server bytes where a response may have begun, lately: each
        between the bytes before and after them."""
        self.client_losses: deque[tuple[float, float]] = deque(maxlen=_WINDOWS)
        self.client_seen_until = -1.0
        """The time of the client's last bytes (or loss) delivered."""
        self.proven = False
        """A response was paired: responses alone are put down to gaps from now on."""

    def request_head(self, method: str, first_time: float) -> Ticket:
        """A request's head was read: its ticket, in line for an answer."""
        tickets = self.tickets
        ticket = Ticket(self.serials, method, first_time, self.client_era, self.counting)
        self.serials += 1
        tickets.append(ticket)
        if len(tickets) > MAX_TICKETS:
            oldest = tickets.popleft()
            if oldest.counted:
                self._lose_count()
            self._abandon(oldest, "timeout")
        return ticket

    def response_head(self, first_time: float) -> tuple[Ticket | None, str]:
        """A final response's head was read: the ticket of the request it answers, or None
        and why none."""
        tickets = self.tickets
        if tickets and tickets[0].counted:
            ticket = tickets[0]
            if ticket.first_time <= first_time:
                tickets.popleft()
                return self._answered(ticket), ""
            self._lose_count()  # a response older than its request: the count is off
        last: Ticket | None = None
        for ticket in tickets:
            if ticket.first_time > first_time:
                break
            if last is not None and not self._server_may_have_sent(
                last.first_time, ticket.first_time
            ):
                self.pipelined = True  # no answer to ``last`` before the next request
            last = ticket
        if last is None:
            if self.joined_midway and not self.proven:
                return None, UNPAIRED_MIDSTREAM
            return None, UNPAIRED_GAP
        provable = not self.pipelined and self._answers(last, first_time)
        while tickets and tickets[0] is not last:
            self._abandon(tickets.popleft(), UNPAIRED_GAP)  # answered in what the capture lost
        tickets.popleft()
        if not provable:
            self._abandon(last, UNPAIRED_GAP)
            return None, UNPAIRED_GAP
        self.proven = True
        era = last.era
        for later in tickets:
            later.counted = later.era == era
        self.counting = self.client_era == era
        return self._answered(last), ""

    def _answers(self, request: Ticket, first_time: float) -> bool:
        """Whether a response begun at ``first_time`` surely answers ``request``, the last
        request begun before it, on a connection whose client sends a request once the
        previous one is answered. It does unless the server answered ``request`` earlier
        and the client sent another request since: that takes bytes of both sides between
        the two, lost in the capture. Server bytes seen between them answer no request: the
        client did not wait for its answers."""
        begun = request.first_time
        for seen in self.server_seen:
            if begun < seen <= first_time:
                self.pipelined = True
                return False
        if not any(after > begun for _, after in self.server_losses):
            return True
        if self.client_seen_until < first_time:
            return False  # what the client sent meanwhile is not known yet
        return not any(
            before < first_time and after > begun for before, after in self.client_losses
        )

    def _server_may_have_sent(self, start: float, end: float) -> bool:
        """The server sent, or may have sent in bytes the capture lost, something between
        ``start`` and ``end``."""
        return any(start < seen <= end for seen in self.server_seen) or any(
            before < end and after > start for before, after in self.server_losses
        )

    def _answered(self, ticket: Ticket) -> Ticket:
        ticket.answered = True
        self.matcher.answering(ticket.serial)
        return ticket

    def _lose_count(self) -> None:
        self.counting = False
        for ticket in self.tickets:
            ticket.counted = False

    def _abandon(self, ticket: Ticket, reason: str) -> None:
        """Give up on a request's answer: emitted alone (once complete)."""
        if not ticket.complete:
            ticket.abandoned = reason
            return
        request = self.matcher.take(ticket.serial)
        if request is not None:  # else the core emitted it already (timeout)
            self.context.emit(request, None, reason)

    def lost(self, is_request: bool, before: float, after: float) -> None:
        """A side lost track of where its messages start: bytes lost between the times
        ``before`` and ``after`` (a gap), or bytes at ``after`` that are not HTTP/1."""
        if is_request:
            self.client_era += 1
            self.counting = False
            self.client_losses.append((before, after))
            return
        self.server_losses.append((before, after))
        self._lose_count()

    def client_seen(self, timestamp: float) -> None:
        self.client_seen_until = timestamp

    def server_sent(self, timestamp: float) -> None:
        """Server bytes that were no response head were read or passed over."""
        self.server_seen.append(timestamp)

    def request_lost(self, ticket: Ticket | None) -> None:
        """The request of ``ticket`` will not be complete (its bytes were lost)."""
        if ticket is None:
            return
        if ticket.answer is not None:
            self.context.emit(None, ticket.answer, UNPAIRED_GAP)
        elif not ticket.answered and ticket in self.tickets:
            self.tickets.remove(ticket)

    def response_lost(self, ticket: Ticket | None) -> None:
        """The response that answers ``ticket`` will not be complete."""
        if ticket is not None:
            self._abandon(ticket, UNPAIRED_GAP)

    def response_complete(self, ticket: Ticket | None, response: Message, unpaired: str) -> None:
        last_time = response.last_time
        self.server_sent(last_time)
        if ticket is not None and self.tickets and self.tickets[0].first_time < last_time:
            self.pipelined = True  # the next request did not wait for this answer
        if ticket is None:
            self.context.emit(None, response, unpaired or UNPAIRED_GAP)
        elif not ticket.complete:
            ticket.answer = response  # emitted with its request
        elif self.matcher.get(ticket.serial) is not None:
            self.matcher.response(ticket.serial, response)
        else:
            self.context.emit(None, response, UNPAIRED_TIMEOUT)  # its request was given up on

    def request_complete(self, ticket: Ticket, request: Message) -> None:
        ticket.complete = True
        if ticket.answer is not None:
            self.context.emit(request, ticket.answer)
        elif ticket.abandoned:
            self.context.emit(request, None, ticket.abandoned)
        else:
            self.matcher.request(ticket.serial, request)
            if ticket.answered:
                self.matcher.answering(ticket.serial)

    def closed(self, ticket: Ticket | None) -> None:
        """The connection ended while the client sent the request of ``ticket``."""
        if ticket is not None and ticket.answer is not None:
            self.context.emit(None, ticket.answer, UNPAIRED_CLOSED)
