"""Where entries go: JSON lines on a stream now, msgpack frames to the hub."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import IO, Any, Protocol

import msgpack


class Sink(Protocol):
    def write(self, entry: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class JsonlSink:
    """One entry per line, as ``mizu dissect -o jsonl`` prints them."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._encode = json.JSONEncoder(
            ensure_ascii=False, separators=(",", ":"), default=_json_default
        ).encode

    def write(self, entry: dict[str, Any]) -> None:
        self.stream.write(self._encode(entry))
        self.stream.write("\n")

    def close(self) -> None:
        self.stream.flush()


def _json_default(value: object) -> object:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def pack_entries(entries: Iterable[dict[str, Any]]) -> bytes:
    """One msgpack frame carrying a batch of entries, as tappers send them to the hub."""
    return msgpack.packb({"entries": list(entries)}, use_bin_type=True, default=_json_default)


def unpack_entries(frame: bytes) -> list[dict[str, Any]]:
    message = msgpack.unpackb(frame, raw=False)
    return list(message["entries"])
