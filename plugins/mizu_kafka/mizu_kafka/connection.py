"""One Kafka connection's frames, decoded and paired: what :class:`KafkaDissector` feeds.

The dissector itself subclasses the core's :class:`~mizu_core.Dissector` (interpreted, as
every plugin's may be); this is the part that runs for every frame, a plain class that the
compiled build turns into a native one.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Final

from mizu_core import ConnectionContext, Direction, KeyedMatcher, Message, Protocol, make_message
from mizu_kafka.framing import MAX_FRAME, Frame, FrameSplitter
from mizu_kafka.protocol import (
    RequestKey,
    Settings,
    decode_request,
    decode_response,
    frame_checks_out,
    plausible_request,
)
from mizu_kafka.records import int32_at

KAFKA: Final = Protocol(
    name="kafka",
    version="",
    abbr="KAFKA",
    long_name="Apache Kafka Protocol",
    macro="kafka",
    background_color="#000000",
    foreground_color="#ffffff",
    reference_link="https://kafka.apache.org/protocol",
    priority=2,
    ports=(9092,),
    secret_fields=("authBytes",),
    payload_fields=("value",),
)
PRODUCE: Final = 0
MAX_PENDING: Final = 4096


class KafkaConnection:
    """Decodes requests as they come, pairs responses by correlation id and decodes each with
    its request's API key and version."""

    def __init__(
        self,
        context: ConnectionContext,
        settings: Settings,
        skip: int,
        requests: Direction,
    ) -> None:
        self.context = context
        self.settings = settings
        self.requests = requests
        """The direction requests travel."""
        self.responses = requests.reverse
        self.matcher: KeyedMatcher = context.keyed_matcher(MAX_PENDING)
        self.pending: dict[int, RequestKey] = {}
        """What decoding each awaited response needs, oldest first."""
        self.last_correlation_id = -1
        """Of the latest request: clients number their requests upwards."""
        counters = context.counters
        cap = settings.max_frame_bytes
        self.request_splitter = FrameSplitter(cap, self.find_request_start, counters, skip)
        # Caught mid-connection, the responses' first bytes may be the tail of one.
        self.joined_midway = context.connection.role_guessed
        """No response start has been found yet on a connection the capture joined midway."""
        self.response_splitter = FrameSplitter(
            cap, self.find_response_start, counters, lost=self.joined_midway
        )

    def feed(self, direction: Direction, data: bytes, timestamp: float) -> None:
        if direction is self.requests:
            for frame in self.request_splitter.push(data, timestamp):
                self.request(frame)
        else:
            for frame in self.response_splitter.push(data, timestamp):
                self.response(frame)

    def splitter(self, direction: Direction) -> FrameSplitter:
        return self.request_splitter if direction is self.requests else self.response_splitter

    def close(self) -> None:
        self.pending.clear()

    def message(self, direction: Direction, frame: Frame, data: dict[str, Any]) -> Message:
        if frame.truncated:
            data["truncatedSize"] = frame.size
        return make_message(
            KAFKA, direction, frame.first_time, frame.last_time, 4 + frame.size, data
        )

    def request(self, frame: Frame) -> None:
        if len(frame.body) < 8:
            self.request_splitter.lose_sync()
            return
        data = decode_request(frame.body, frame.truncated, self.settings)
        message = self.message(self.requests, frame, data)
        if data["apiKey"] == PRODUCE:
            payload = data.get("payload")
            if payload is not None and payload.get("acks") == 0:
                self.context.emit(message, None)  # acks=0: the broker never answers
                return
        correlation_id: int = data["correlationId"]
        self.last_correlation_id = correlation_id
        pending = self.pending
        pending.pop(correlation_id, None)
        if len(pending) >= MAX_PENDING:
            del pending[next(iter(pending))]
        pending[correlation_id] = RequestKey(data["apiKey"], data["apiVersion"])
        self.matcher.request(correlation_id, message)

    def response(self, frame: Frame) -> None:
        body = frame.body
        if len(body) < 4:
            self.response_splitter.lose_sync()
            return
        correlation_id = int32_at(body, 0)
        pending = self.pending
        request = pending.get(correlation_id)
        if request is not None:
            if next(iter(pending)) != correlation_id:
                self.unanswered_before(correlation_id)
            del pending[correlation_id]
        data = decode_response(body, frame.truncated, request, self.settings)
        self.matcher.response(correlation_id, self.message(self.responses, frame, data))

    def unanswered_before(self, correlation_id: int) -> None:
        """A broker answers a connection's requests in the order they came: those sent before
        the one just answered whose answers did not come were lost (with the capture's lost
        bytes, or before the capture joined)."""
        pending = self.pending
        older = []
        for key in pending:
            if key == correlation_id:
                break
            older.append(key)
        for key in older:
            del pending[key]
            request = self.matcher.take(key)
            if request is not None:
                self.context.emit(request, None, unpaired="gap")

    def find_request_start(self, data: bytes) -> tuple[int, bool]:
        """After lost bytes, a request starts with a plausible header, a correlation id past
        the last one seen, and a body within the cap that decodes whole (see
        :data:`FrameStart`)."""
        after = self.last_correlation_id
        decode = partial(decode_request, settings=self.settings)
        largest = self.settings.max_frame_bytes
        waiting = -1
        end = len(data) - 4
        start = data.find(b"\x00")  # sizes past 16 MiB are not looked for
        while 0 <= start < end:
            plausible = plausible_request(data, start)
            if plausible is None:
                return first_of(waiting, start), False
            if plausible and int.from_bytes(data[start + 8 : start + 12], signed=True) > after:
                verdict = frame_checks_out(data, start, decode, largest)
                if verdict:
                    return start, True
                if verdict is None and waiting < 0:
                    waiting = start
            start = data.find(b"\x00", start + 1)
        return first_of(waiting, max(end, 0)), False

    def find_response_start(self, data: bytes) -> tuple[int, bool]:
        """After lost bytes, a response starts with a plausible size, the correlation id of a
        request still waiting for its answer, and a body within the cap that decodes whole as
        that request's answer (see :data:`FrameStart`). The first bytes of a connection the
        capture joined midway may also be whole responses to requests sent before it: they
        are when frames follow one another from there to the end of what arrived."""
        if self.joined_midway:
            self.joined_midway = False
            if whole_frames(data):
                return 0, True
        settings = self.settings
        candidates: list[tuple[int, RequestKey]] = []
        for correlation_id, request in self.pending.items():
            needle = correlation_id.to_bytes(4, signed=True)
            found = data.find(needle, 4)
            while found >= 4:
                candidates.append((found - 4, request))
                found = data.find(needle, found + 1)
        waiting = -1
        for start, request in sorted(candidates, key=first_item):
            if not 4 <= int.from_bytes(data[start : start + 4], signed=True) <= MAX_FRAME:
                continue
            decode = partial(decode_response, request=request, settings=settings)
            verdict = frame_checks_out(data, start, decode, settings.max_frame_bytes)
            if verdict:
                return start, True
            if verdict is None and waiting < 0:
                waiting = start
        return first_of(waiting, max(len(data) - 7, 0)), False


def whole_frames(data: bytes) -> bool:
    """Whether ``data`` is one or more whole response frames, back to back."""
    position = 0
    while len(data) - position >= 8:
        size = int.from_bytes(data[position : position + 4], signed=True)
        if size < 4 or int.from_bytes(data[position + 4 : position + 8], signed=True) < 0:
            return False
        position += 4 + size
    return position == len(data) and position > 0


def first_of(waiting: int, otherwise: int) -> int:
    """Where a search resumes: at the first frame start that needed more bytes to tell, if
    any. A later start that checks out wins over it meanwhile: a frame claiming megabytes of
    garbage does not hold up the ones that follow."""
    return waiting if waiting >= 0 else otherwise


def first_item(candidate: tuple[int, RequestKey]) -> int:
    return candidate[0]
