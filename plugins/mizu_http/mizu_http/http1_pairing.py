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

from collections.abc import Iterable
from typing import Any, Final

from mizu_core import (
    UNPAIRED_CLOSED,
    UNPAIRED_GAP,
    UNPAIRED_MIDSTREAM,
    UNPAIRED_TIMEOUT,
    ConnectionContext,
    Message,
)

MAX_TICKETS: Final = 1024
"""Requests waiting for their answer on one connection, at most (answers lost in gaps)."""
MAX_HELD: Final = 64
"""Responses held, at most, while the client's bytes before them are not delivered."""
_WINDOWS: Final = 64
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


def _may_have_sent(
    seen: Iterable[float], losses: Iterable[tuple[float, float]], start: float, end: float
) -> bool:
    """The server sent, or may have sent in bytes the capture lost, something between
    ``start`` and ``end``."""
    return any(start < sent <= end for sent in seen) or any(
        before < end and after > start for before, after in losses
    )


class Answer:
    """A response whose head was read, and the request it answers once that is decided."""

    __slots__ = ("decided", "first_time", "losses", "message", "reason", "seen", "ticket")

    def __init__(self, first_time: float) -> None:
        self.first_time = first_time
        self.decided = False
        self.ticket: Ticket | None = None
        self.reason = ""
        """Why it answers no request it can be shown with."""
        self.message: Message | None = None
        """The response, once complete, while what it answers is not decided."""
        self.seen: list[float] = []
        self.losses: list[tuple[float, float]] = []
        """What the server sent and lost before its head, while it is held."""

    def decide(self, ticket: Ticket | None, reason: str) -> None:
        self.decided = True
        self.ticket = ticket
        self.reason = reason

    @property
    def method(self) -> str:
        """The method of the request it answers ("" while that is not known)."""
        return self.ticket.method if self.ticket is not None else ""


class History:
    """What a connection's pairing remembers of what happened lately."""

    __slots__ = ("client_losses", "held", "server_losses", "server_seen")

    def __init__(self) -> None:
        self.server_seen: list[float] = []
        """When the server sent bytes that were no response head (a response's end, bytes
        passed over)."""
        self.server_losses: list[tuple[float, float]] = []
        """When the capture lost server bytes where a response may have begun: each between
        the bytes before and after them."""
        self.client_losses: list[tuple[float, float]] = []
        self.held: list[Answer] = []
        """Responses whose request is not decided yet: the client's bytes up to them are
        not all delivered (the capture lost some of them, and the reassembler waits)."""


def _remember(events: list[Any], event: Any) -> None:
    events.append(event)
    if len(events) > _WINDOWS:
        del events[0]


class Pairing:
    """The pairing of one HTTP/1 connection, told by its two parsers what they read."""

    def __init__(self, context: ConnectionContext) -> None:
        self.context = context
        self.matcher = context.keyed_matcher()
        self.joined_midway = context.connection.role_guessed
        self.tickets: list[Ticket] = []
        """Requests not answered yet, in order."""
        self.serials = 0
        self.counting = not self.joined_midway
        """A request read now is counted (see :attr:`Ticket.counted`)."""
        self.client_era = 0
        self.pipelined = False
        """The client sent a request before the previous one was answered: answers cannot be
        told apart by time on this connection."""
        self.history: History | None = None
        """What happened lately, from the first response or loss on (most connections a
        tapper waits on have neither: their memory stays small)."""
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
            oldest = tickets.pop(0)
            if oldest.counted:
                self._lose_count()
            self._abandon(oldest, UNPAIRED_TIMEOUT)
        return ticket

    def response_head(self, first_time: float) -> Answer:
        """A final response's head was read: what it answers, decided now when the capture
        tells already, else once the client's bytes up to then are known."""
        answer = Answer(first_time)
        tickets = self.tickets
        history = self.history
        held = history is not None and bool(history.held)
        if not held and tickets and tickets[0].counted:
            ticket = tickets[0]
            if ticket.first_time <= first_time:
                del tickets[0]
                answer.decide(self._answered(ticket), "")
                return answer
            self._lose_count()  # a response older than its request: the count is off
        if history is None:
            if self._decide(answer, (), (), False):
                return answer
            history = self.history = History()
        elif not held and self._decide(answer, history.server_seen, history.server_losses, False):
            return answer
        answer.seen = list(history.server_seen)
        answer.losses = list(history.server_losses)
        history.held.append(answer)
        if len(history.held) > MAX_HELD:
            self._settle(True)
        return answer

    def _decide(
        self,
        answer: Answer,
        seen: Iterable[float],
        losses: Iterable[tuple[float, float]],
        final: bool,
    ) -> bool:
        """Decide what ``answer`` answers, given the server's events before its head (False
        when the client's bytes up to it are not known yet, unless ``final``)."""
        first_time = answer.first_time
        tickets = self.tickets
        last: Ticket | None = None
        for ticket in tickets:
            if ticket.first_time > first_time:
                break
            if last is not None and not _may_have_sent(
                seen, losses, last.first_time, ticket.first_time
            ):
                self.pipelined = True  # no answer to ``last`` before the next request
            last = ticket
        client_known = final or self.client_seen_until >= first_time
        if last is None:
            if not client_known:
                return False  # a request begun before it may still be delivered
            midstream = self.joined_midway and not self.proven
            answer.decide(None, UNPAIRED_MIDSTREAM if midstream else UNPAIRED_GAP)
            return True
        provable = False
        if not self.pipelined:
            verdict = self._answers(last, first_time, seen, losses)
            if verdict is None and not client_known:
                return False
            provable = verdict is True
        while tickets[0] is not last:
            self._abandon(tickets.pop(0), UNPAIRED_GAP)  # answered in what the capture lost
        del tickets[0]
        if not provable:
            self._abandon(last, UNPAIRED_GAP)
            answer.decide(None, UNPAIRED_GAP)
            return True
        self.proven = True
        era = last.era
        for later in tickets:
            later.counted = later.era == era
        self.counting = self.client_era == era
        answer.decide(self._answered(last), "")
        return True

    def _answers(
        self,
        request: Ticket,
        first_time: float,
        seen: Iterable[float],
        losses: Iterable[tuple[float, float]],
    ) -> bool | None:
        """Whether a response begun at ``first_time`` surely answers ``request``, the last
        request begun before it, on a connection whose client sends a request once the
        previous one is answered (None: not known until the client's bytes up to the
        response are). It does unless the server answered ``request`` earlier and the client
        sent another request since: that takes bytes of both sides between the two, lost in
        the capture. Server bytes seen between them answer no request: the client did not
        wait for its answers."""
        begun = request.first_time
        for sent in seen:
            if begun < sent <= first_time:
                self.pipelined = True
                return False
        if not any(after > begun for _, after in losses):
            return True
        if self.client_seen_until < first_time:
            return None
        history = self.history
        return history is None or not any(
            before < first_time and after > begun for before, after in history.client_losses
        )

    def _settle(self, final: bool) -> None:
        """Decide the responses held, in order, as far as the capture tells (all of them when
        ``final``)."""
        if self.history is None:
            return
        held = self.history.held
        while held:
            answer = held[0]
            if not self._decide(answer, answer.seen, answer.losses, final):
                return
            del held[0]
            answer.seen, answer.losses = [], []
            if answer.message is not None:
                self._emit_response(answer, answer.message)

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
            _remember(self._history().client_losses, (before, after))
            return
        _remember(self._history().server_losses, (before, after))
        self._lose_count()

    def _history(self) -> History:
        history = self.history
        if history is None:
            history = self.history = History()
        return history

    def client_seen(self, timestamp: float) -> None:
        """Every request begun before ``timestamp`` has been read (or lost)."""
        self.client_seen_until = timestamp
        if self.history is not None and self.history.held:
            self._settle(False)

    def server_sent(self, timestamp: float) -> None:
        """Server bytes that were no response head were read or passed over."""
        _remember(self._history().server_seen, timestamp)

    def request_lost(self, ticket: Ticket | None) -> None:
        """The request of ``ticket`` will not be complete (its bytes were lost)."""
        if ticket is None:
            return
        if ticket.answer is not None:
            self.context.emit(None, ticket.answer, UNPAIRED_GAP)
        elif not ticket.answered and ticket in self.tickets:
            self.tickets.remove(ticket)

    def response_lost(self, answer: Answer | None) -> None:
        """The response of ``answer`` will not be complete."""
        if answer is None:
            return
        if answer.decided:
            if answer.ticket is not None:
                self._abandon(answer.ticket, UNPAIRED_GAP)
        elif self.history is not None and answer in self.history.held:
            self.history.held.remove(answer)

    def response_complete(self, answer: Answer, response: Message) -> None:
        self.server_sent(response.last_time)
        if answer.decided:
            self._emit_response(answer, response)
        else:
            answer.message = response  # emitted once what it answers is decided

    def _emit_response(self, answer: Answer, response: Message) -> None:
        ticket = answer.ticket
        if ticket is not None and self.tickets and self.tickets[0].first_time < response.last_time:
            self.pipelined = True  # the next request did not wait for this answer
        if ticket is None:
            self.context.emit(None, response, answer.reason or UNPAIRED_GAP)
        elif not ticket.complete:
            ticket.answer = response  # emitted with its request
        else:
            # Alone (timeout) when the matcher gave its request up: one call into the core
            # rather than asking first.
            self.matcher.response(ticket.serial, response, UNPAIRED_TIMEOUT)

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
        """The connection ended (while the client sent the request of ``ticket``)."""
        self._settle(True)
        if ticket is not None and ticket.answer is not None:
            self.context.emit(None, ticket.answer, UNPAIRED_CLOSED)
