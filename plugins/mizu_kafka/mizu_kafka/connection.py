"""One Kafka connection's frames, decoded and paired: what :class:`KafkaDissector` feeds.

The dissector itself subclasses the core's :class:`~mizu_core.Dissector` (interpreted, as
every plugin's may be); this is the part that runs for every frame, a plain class that the
compiled build turns into a native one.
"""

from __future__ import annotations

from typing import Any, Final

from mizu_core import ConnectionContext, Direction, KeyedMatcher, Message, Protocol
from mizu_kafka.framing import MAX_FRAME, Frame, FrameSplitter
from mizu_kafka.protocol import (
    RequestKey,
    Settings,
    decode_request,
    decode_response,
    find_request_start,
)

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
        self.request_splitter = FrameSplitter(settings.max_frame_bytes, find_request_start, skip)
        self.response_splitter = FrameSplitter(settings.max_frame_bytes, self.find_response_start)

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
        # Counted once per connection: the splitters' hot path stays free of counter calls.
        for splitter in (self.request_splitter, self.response_splitter):
            if splitter.dropped_bytes:
                self.context.count("dropped_bytes", splitter.dropped_bytes)
            if splitter.resyncs:
                self.context.count("resyncs", splitter.resyncs)

    def message(self, direction: Direction, frame: Frame, data: dict[str, Any]) -> Message:
        if frame.truncated:
            data["truncatedSize"] = frame.size
        return Message(KAFKA, direction, frame.first_time, frame.last_time, 4 + frame.size, data)

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
        correlation_id = int.from_bytes(body[:4], "big", signed=True)
        request = self.pending.pop(correlation_id, None)
        data = decode_response(body, frame.truncated, request, self.settings)
        self.matcher.response(correlation_id, self.message(self.responses, frame, data))

    def find_response_start(self, data: bytes) -> int | None:
        """After lost bytes, a response starts with a plausible size and the correlation id of
        a request still waiting for its answer."""
        for correlation_id in self.pending:
            needle = correlation_id.to_bytes(4, "big", signed=True)
            start = data.find(needle, 4)
            while start >= 4:
                size = int.from_bytes(data[start - 4 : start], "big", signed=True)
                if 4 <= size <= MAX_FRAME:
                    return start - 4
                start = data.find(needle, start + 1)
        return None
