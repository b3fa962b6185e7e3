"""Writing entries: output errors stop the run and are never a plugin's fault."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from mizu_core import (
    ConnectionContext,
    Direction,
    Dissector,
    Message,
    Protocol,
    hookimpl,
)
from mizu_core.capture import FileSource
from mizu_core.emit import JsonlSink, OutputError, raising_output_errors
from mizu_core.engine import Engine
from mizu_core.plugins import PluginManager
from tests.support.packets import conversation, write_frames

DATA = Path(__file__).parents[1] / "data"


@contextlib.contextmanager
def failing_output(stream: IO[str]) -> Iterator[JsonlSink]:
    """A sink writing to ``stream``, closed at the end although what it holds fails again."""
    try:
        yield JsonlSink(stream)
    finally:
        with contextlib.suppress(OSError):
            stream.close()


@pytest.fixture
def closed_pipe() -> Iterator[JsonlSink]:
    """A sink writing to a pipe whose reader is gone."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    with failing_output(os.fdopen(write_end, "w")) as sink:
        yield sink


def test_an_entry_written_to_a_closed_pipe_stops_the_engine(closed_pipe: JsonlSink) -> None:
    """The dispatcher isolates plugins with ``except Exception`` around their hooks: entries
    are written once the hook returned, so a BrokenPipeError is never counted against the
    plugin (the connection going on to the next plugin, the file read to its end)."""
    written: list[str] = []

    def write(entry: dict[str, object]) -> None:
        written.append(str(entry["id"]))
        closed_pipe.write(entry)
        closed_pipe.close()  # past the stream's buffer, to the pipe

    plugins = PluginManager().discover(allow=["http", "tcp"])
    engine = Engine(plugins, raising_output_errors(write))
    with pytest.raises(OutputError) as raised:
        engine.run(FileSource(DATA / "core" / "http11-keepalive.pcap"))
    assert raised.value.reader_gone
    assert written == [written[0]]  # stopped at the first entry
    assert plugins.errors == {}


def test_other_write_errors_are_output_errors_too() -> None:
    with failing_output(open("/dev/full", "w")) as sink:
        sink.write({"id": "a"})
        with pytest.raises(OutputError) as raised:
            raising_output_errors(lambda _: sink.close())(None)
    assert not raised.value.reader_gone
    assert raised.value.error.strerror == "No space left on device"


LINE = Protocol("line", "1", "LINE", "Lines", "line")


class LineDissector(Dissector):
    """A client line answered by a server line; knows when one of its calls is running."""

    feeding = False

    def __init__(self, context: ConnectionContext) -> None:
        super().__init__(context)
        self.matcher = context.in_order_matcher()

    def feed(self, direction: Direction, data: bytes, timestamp: float) -> None:
        LineDissector.feeding = True
        try:
            message = Message(LINE, direction, timestamp, timestamp, len(data), {"method": "x"})
            if direction == Direction.CLIENT_TO_SERVER:
                self.matcher.request(message)
            else:
                self.matcher.response(message)
        finally:
            LineDissector.feeding = False


class LinePlugin:
    @hookimpl
    def protocols(self) -> list[Protocol]:
        return [LINE]

    @hookimpl
    def dissect(
        self, context: ConnectionContext, client_head: bytes, server_head: bytes
    ) -> Dissector | None:
        return LineDissector(context)


def test_output_errors_are_ordinary_exceptions_raised_outside_the_plugins_calls(
    tmp_path: Path,
) -> None:
    """The sink runs after the dissector's call has returned: no call of the plugin is under
    way when it fails (told by the dissector itself: compiled code leaves no Python frames
    to look at)."""
    during_feed: list[bool] = []

    def write(entry: dict[str, object]) -> None:
        during_feed.append(LineDissector.feeding)
        raise OSError(28, "No space left on device")

    turns = [(True, b"ASK\n"), (False, b"ANSWER\n")]
    capture = write_frames(
        tmp_path / "lines.pcap", conversation(("127.0.0.1", 40001), ("127.0.0.2", 9000), turns)
    )
    plugins = PluginManager()
    plugins.register(LinePlugin(), "line")
    engine = Engine(plugins, raising_output_errors(write))
    with pytest.raises(OutputError):
        engine.run(FileSource(capture))
    assert issubclass(OutputError, Exception)
    assert during_feed == [False]
    assert plugins.errors == {}
