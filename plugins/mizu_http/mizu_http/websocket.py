"""WebSocket (RFC 6455) after an HTTP/1.1 upgrade: frames to messages, one entry each.

Frames are read as they stream in (a large frame is never buffered whole: its payload beyond
the body cap is counted, not kept), unmasked, and joined into messages (fragmentation); control
frames may arrive between fragments. permessage-deflate (RFC 7692) is undone per direction,
with or without context takeover as negotiated.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from mizu_core import ConnectionContext, Direction, Message
from mizu_http import bodies, declarations
from mizu_http.settings import Settings

OPCODES = {0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}
_DEFLATE_TAIL = b"\x00\x00\xff\xff"


def unmask(data: bytes, key: bytes, offset: int) -> bytes:
    """XOR ``data`` with the masking ``key``, starting ``offset`` bytes into the payload."""
    if not data:
        return data
    rotated = key[offset % 4 :] + key[: offset % 4]
    repeated = (rotated * (len(data) // 4 + 1))[: len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        len(data), "big"
    )


@dataclass(slots=True)
class Deflate:
    """What the upgrade's ``Sec-WebSocket-Extensions`` answer negotiated."""

    client_no_context_takeover: bool = False
    server_no_context_takeover: bool = False

    @classmethod
    def negotiated(cls, extensions: str) -> Deflate | None:
        for offer in extensions.split(","):
            parameters = [part.strip().lower() for part in offer.split(";")]
            if parameters[0] == "permessage-deflate":
                return cls(
                    "client_no_context_takeover" in parameters,
                    "server_no_context_takeover" in parameters,
                )
        return None


class _Side:
    # A plain class, not a dataclass: its generated methods would be compiled at every start-up.
    __slots__ = (
        "buffer",
        "compressed",
        "control",
        "control_time",
        "control_wire",
        "fin",
        "first_time",
        "in_frame",
        "inflater",
        "key",
        "message",
        "message_compressed",
        "message_opcode",
        "offset",
        "opcode",
        "remaining",
        "wire",
    )

    def __init__(self) -> None:
        self.buffer: bytes = b""
        self.opcode: int = 0
        self.fin: bool = False
        self.compressed: bool = False
        self.key: bytes = b""
        self.remaining: int = 0
        """Payload bytes of the current frame still to come (0: between frames)."""
        self.offset: int = 0
        self.in_frame: bool = False
        self.message_opcode: int = 0
        self.message_compressed: bool = False
        self.message: bodies.Body | None = None
        """The data message being received (fragments joined, capped)."""
        self.wire: int = 0
        self.first_time: float = 0.0
        self.control: list[bytes] = []
        self.control_time: float = 0.0
        self.control_wire: int = 0
        self.inflater: Any = None


class WebSocketSession:
    """Both directions of a connection after ``101 Switching Protocols`` to WebSocket."""

    def __init__(
        self,
        context: ConnectionContext,
        settings: Settings,
        request_direction: Direction,
        path: str,
        deflate: Deflate | None,
    ) -> None:
        self.context = context
        self.max_body = settings.max_body_size
        self.request_direction = request_direction
        self.path = path
        self.deflate = deflate
        self.sides = (_Side(), _Side())
        self.stopped = [False, False]

    def feed(self, is_request: bool, data: bytes, timestamp: float) -> None:
        index = 0 if is_request else 1
        if self.stopped[index]:
            return
        side = self.sides[index]
        if side.buffer:
            data = side.buffer + data
            side.buffer = b""
        position = 0
        end = len(data)
        while position < end:
            if not side.in_frame:
                header = self._frame_header(side, data, position)
                if header < 0:
                    side.buffer = data[position:]
                    return
                position = header
                if side.opcode >= 8:
                    side.control_time = timestamp
                elif side.opcode:
                    side.first_time = timestamp
                if not side.remaining:
                    self._frame_done(index, timestamp)
                continue
            take = min(side.remaining, end - position)
            self._payload(side, data[position : position + take])
            position += take
            side.remaining -= take
            if not side.remaining:
                self._frame_done(index, timestamp)

    def _frame_header(self, side: _Side, data: bytes, position: int) -> int:
        """Read a frame header at ``position``; the position after it, or -1 if incomplete."""
        available = len(data) - position
        if available < 2:
            return -1
        first, second = data[position], data[position + 1]
        length = second & 0x7F
        cursor = position + 2
        if length == 126:
            if available < 4:
                return -1
            length = int.from_bytes(data[cursor : cursor + 2], "big")
            cursor += 2
        elif length == 127:
            if available < 10:
                return -1
            length = int.from_bytes(data[cursor : cursor + 8], "big")
            cursor += 8
        masked = second & 0x80
        if masked:
            if len(data) < cursor + 4:
                return -1
            side.key = data[cursor : cursor + 4]
            cursor += 4
        else:
            side.key = b""
        side.opcode = first & 0x0F
        side.fin = bool(first & 0x80)
        side.compressed = bool(first & 0x40)
        side.remaining = length
        side.offset = 0
        side.in_frame = True
        if side.opcode >= 8:
            side.control_wire = cursor - position + length
        else:
            side.wire += cursor - position + length
        if side.opcode < 8:
            if side.opcode:  # the first frame of a data message
                side.message_opcode = side.opcode
                side.message_compressed = side.compressed
        else:
            side.control = []
        return cursor

    def _payload(self, side: _Side, data: bytes) -> None:
        if side.key:
            data = unmask(data, side.key, side.offset)
        side.offset += len(data)
        if side.opcode >= 8:
            side.control.append(data[:125])  # control payloads are at most 125 bytes
            return
        if side.message is None:
            side.message = bodies.Body(self.max_body)
        side.message.add(data)

    def _frame_done(self, index: int, timestamp: float) -> None:
        side = self.sides[index]
        side.in_frame = False
        if side.opcode >= 8:
            payload = b"".join(side.control)
            self._emit(index, side.opcode, payload, side.control_wire, side.control_time, timestamp)
            if side.opcode == 8:
                self.stopped[index] = True
            return
        if not side.fin:
            return
        message = side.message or bodies.Body(self.max_body)
        payload = message.data
        compressed = side.message_compressed and self.deflate is not None
        if compressed and not message.truncated:
            payload = self._inflate(index, payload)
        extra: dict[str, Any] = {}
        if compressed:
            extra["compressed"] = True
        if message.truncated:
            extra["truncated"] = True
            extra["size"] = message.wire_size  # what was sent, of which the cap was kept
        self._emit(
            index, side.message_opcode, payload, side.wire, side.first_time, timestamp, extra
        )
        side.message = None
        side.wire = 0

    def _inflate(self, index: int, payload: bytes) -> bytes:
        side = self.sides[index]
        assert self.deflate is not None
        no_takeover = (
            self.deflate.client_no_context_takeover
            if index == 0
            else self.deflate.server_no_context_takeover
        )
        if side.inflater is None or no_takeover:
            side.inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            inflated: bytes = side.inflater.decompress(payload + _DEFLATE_TAIL, self.max_body)
            return inflated
        except zlib.error:
            side.inflater = None  # its window is lost: later messages may not inflate either
            return payload

    def _emit(
        self,
        index: int,
        opcode: int,
        payload: bytes,
        wire: int,
        first_time: float,
        timestamp: float,
        extra: dict[str, Any] | None = None,
    ) -> None:
        data: dict[str, Any] = {
            "method": OPCODES.get(opcode, f"opcode-{opcode}"),
            "path": self.path,
            "size": len(payload),
        }
        if opcode == 8 and len(payload) >= 2:
            data["closeCode"] = int.from_bytes(payload[:2], "big")
            payload = payload[2:]
        fields = bodies.base64_fields(payload) if opcode == 2 else bodies.text_fields(payload)
        data["payload"] = fields["text"]
        if "encoding" in fields:
            data["encoding"] = fields["encoding"]
        if extra:
            data.update(extra)
        direction = self.request_direction if index == 0 else self.request_direction.reverse
        message = Message(
            protocol=declarations.WEBSOCKET,
            direction=direction,
            first_time=first_time or timestamp,
            last_time=timestamp,
            size=wire,
            data=data,
        )
        self.context.emit(message, None)

    def gap(self, is_request: bool, length: int, timestamp: float) -> None:
        """Frame boundaries are lost: this direction is not decoded any further."""
        index = 0 if is_request else 1
        self.context.count("websocket directions given up")
        self.stopped[index] = True
        self.sides[index].buffer = b""

    def close(self, timestamp: float) -> None:
        """A message cut off by the end of the connection is not emitted: it never finished."""
