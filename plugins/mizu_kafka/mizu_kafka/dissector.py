"""The per-connection Kafka dissector: frames in, request/response pairs out."""

from __future__ import annotations

import struct
from collections import OrderedDict

from mizu_core import CloseReason, ConnectionContext, Direction, Dissector, Message, Protocol
from mizu_kafka.framing import MAX_FRAME, Frame, FrameSplitter
from mizu_kafka.protocol import (
    RequestKey,
    Settings,
    decode_request,
    decode_response,
    find_request_start,
)

KAFKA = Protocol(
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
)
PRODUCE = 0
MAX_PENDING = 4096


class KafkaDissector(Dissector):
    """Decodes requests as they come, pairs responses by correlation id and decodes each with
    its request's API key and version."""

    def __init__(
        self,
        context: ConnectionContext,
        settings: Settings,
        skip: int = 0,
        requests: Direction = Direction.CLIENT_TO_SERVER,
    ) -> None:
        """``skip`` bytes of the requests' direction precede the first request; ``requests``
        is the direction requests travel (the server's, when the core guessed the roles of a
        connection caught mid-stream the wrong way round)."""
        super().__init__(context)
        self._settings = settings
        self._requests = requests
        self._matcher = context.keyed_matcher(MAX_PENDING)
        self._pending: OrderedDict[int, RequestKey] = OrderedDict()
        request_splitter = FrameSplitter(settings.max_frame_bytes, find_request_start, skip)
        response_splitter = FrameSplitter(settings.max_frame_bytes, self._find_response_start)
        self._splitters = {requests: request_splitter, requests.reverse: response_splitter}

    def feed(self, direction: Direction, data: bytes, timestamp: float) -> None:
        for frame in self._splitters[direction].push(data, timestamp):
            if direction is self._requests:
                self._request(frame)
            else:
                self._response(frame)

    def gap(self, direction: Direction, length: int, timestamp: float) -> None:
        self._splitters[direction].lose_sync()

    def close(self, timestamp: float, reason: CloseReason) -> None:
        self._pending.clear()
        # Counted once per connection: the splitters' hot path stays free of counter calls.
        for splitter in self._splitters.values():
            if splitter.dropped_bytes:
                self.context.count("dropped_bytes", splitter.dropped_bytes)
            if splitter.resyncs:
                self.context.count("resyncs", splitter.resyncs)

    def _message(self, direction: Direction, frame: Frame, data: dict) -> Message:
        if frame.truncated:
            data["truncatedSize"] = frame.size
        return Message(KAFKA, direction, frame.first_time, frame.last_time, 4 + frame.size, data)

    def _request(self, frame: Frame) -> None:
        if len(frame.body) < 8:
            self._splitters[self._requests].lose_sync()
            return
        data = decode_request(frame.body, frame.truncated, self._settings)
        message = self._message(self._requests, frame, data)
        if data["apiKey"] == PRODUCE and data.get("payload", {}).get("acks") == 0:
            self.context.emit(message, None)  # acks=0: the broker never answers
            return
        correlation_id = data["correlationId"]
        self._pending.pop(correlation_id, None)
        if len(self._pending) >= MAX_PENDING:
            self._pending.popitem(last=False)
        self._pending[correlation_id] = RequestKey(data["apiKey"], data["apiVersion"])
        self._matcher.request(correlation_id, message)

    def _response(self, frame: Frame) -> None:
        if len(frame.body) < 4:
            self._splitters[self._requests.reverse].lose_sync()
            return
        (correlation_id,) = struct.unpack_from(">i", frame.body)
        request = self._pending.pop(correlation_id, None)
        data = decode_response(frame.body, frame.truncated, request, self._settings)
        self._matcher.response(correlation_id, self._message(self._requests.reverse, frame, data))

    def _find_response_start(self, data: bytes) -> int | None:
        """After lost bytes, a response starts with a plausible size and the correlation id of
        a request still waiting for its answer."""
        for correlation_id in self._pending:
            needle = struct.pack(">i", correlation_id)
            start = data.find(needle, 4)
            while start >= 4:
                (size,) = struct.unpack_from(">i", data, start - 4)
                if 4 <= size <= MAX_FRAME:
                    return start - 4
                start = data.find(needle, start + 1)
        return None
