"""Where entries go: JSON lines on a stream now, msgpack frames to the hub."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from typing import IO, Any, Final, Protocol, TypeVar

import msgpack
import orjson

Written = TypeVar("Written")


class OutputError(Exception):
    """The output could not be written: its reader went away (``| head``) or its disk is full.

    Told apart from the system errors of reading a capture. Entries reach the output outside
    the isolation of plugins (the dispatcher makes them after a dissector's call returns), so
    it ends the run instead of being counted against a plugin."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error)
        self.error = error

    @property
    def reader_gone(self) -> bool:
        """The output was a pipe whose reader closed it (EPIPE)."""
        return isinstance(self.error, BrokenPipeError)


def raising_output_errors(write: Callable[[Written], None]) -> Callable[[Written], None]:
    """``write``, raising :class:`OutputError` for the system errors it meets."""

    def guarded(written: Written) -> None:
        try:
            write(written)
        except OSError as error:
            raise OutputError(error) from error

    return guarded


class Sink(Protocol):
    def write(self, entry: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class JsonlSink:
    """One entry per line, as ``mizu dissect -o jsonl`` prints them.

    orjson encodes an entry in a tenth of the time the standard library takes, which matters
    at a hundred thousand entries; the standard library still takes what orjson refuses
    (integers beyond 64 bits, which schema-less decoders can produce)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        binary = getattr(stream, "buffer", None)
        if isinstance(binary, io.RawIOBase):
            # Python runs unbuffered (PYTHONUNBUFFERED, -u): one system call per entry would
            # cost more than encoding it.
            binary = io.BufferedWriter(binary, buffer_size=1 << 16)
        self._binary: IO[bytes] | None = binary
        # kept bound: looking the method up is a third of the call
        self._write_binary: Callable[[bytes], object] | None = (
            binary.write if binary is not None else None
        )

    def write(self, entry: dict[str, Any]) -> None:
        try:
            # encode_json_line's first attempt, without a call per entry around it.
            line = _DUMPS(entry, default=_JSON_DEFAULT, option=_APPEND_NEWLINE)
        except orjson.JSONEncodeError:
            line = encode_json_line(entry)
        self.write_line(line)

    def write_line(self, line: bytes) -> None:
        """Lines encoded elsewhere (by worker processes), each with its newline: one line, or
        several joined to be written at once."""
        write = self._write_binary
        if write is not None:
            write(line)
        else:
            self.stream.write(line.decode())

    def flush(self) -> None:
        self.stream.flush()
        if self._binary is not None:
            self._binary.flush()

    def close(self) -> None:
        self.flush()


def encode_json_line(entry: dict[str, Any]) -> bytes:
    """``entry`` as one line of UTF-8 JSON, newline included."""
    return encode_json(entry, orjson.OPT_APPEND_NEWLINE)


def encode_json(value: Any, option: int = 0) -> bytes:
    """``value`` as UTF-8 JSON, by orjson (``option``: its flags), else by the standard
    library for what orjson refuses (integers beyond 64 bits)."""
    try:
        # Keys that are not strings are rare and the option that allows them costs a third
        # of the encoding: it is only asked for when orjson refused them.
        return orjson.dumps(value, default=json_default, option=option)
    except orjson.JSONEncodeError:
        pass
    try:
        return orjson.dumps(value, default=json_default, option=option | orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=json_default)
        newline = "\n" if option & orjson.OPT_APPEND_NEWLINE else ""
        return (text + newline).encode()


def json_default(value: object) -> object:
    """What entries hold that JSON has no type for: bytes as hex, sets and tuples as lists."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# Final, for JsonlSink.write: an attribute of a module, or a function of this one used as a
# value, is otherwise looked up in a dict for every entry
_DUMPS: Final = orjson.dumps
_APPEND_NEWLINE: Final = orjson.OPT_APPEND_NEWLINE
_JSON_DEFAULT: Final = json_default


def pack_entries(entries: Iterable[dict[str, Any]]) -> bytes:
    """One msgpack frame carrying a batch of entries as maps, which the hub's ``/wsTapper``
    takes and encodes itself (Mizu's tappers send them encoded already, for less hub work)."""
    return msgpack.packb({"entries": list(entries)}, use_bin_type=True, default=json_default)
