"""Writing entries: output errors stop the run and are never a plugin's fault."""

from __future__ import annotations

import contextlib
import os
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from mizu_core.capture import FileSource
from mizu_core.emit import JsonlSink, OutputError, raising_output_errors
from mizu_core.engine import Engine
from mizu_core.plugins import PluginManager

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


def test_output_errors_are_ordinary_exceptions_raised_outside_the_plugins_calls() -> None:
    """The sink runs after the dissector's call has returned: nothing of the plugin is on the
    stack when it fails."""
    stacks: list[list[str]] = []

    def write(entry: dict[str, object]) -> None:
        stacks.append([frame.name for frame in traceback.extract_stack()])
        raise OSError(28, "No space left on device")

    plugins = PluginManager().discover(allow=["http", "tcp"])
    engine = Engine(plugins, raising_output_errors(write))
    with pytest.raises(OutputError):
        engine.run(FileSource(DATA / "core" / "http11-keepalive.pcap"))
    assert issubclass(OutputError, Exception)
    assert "feed" not in stacks[0] and "_drain" in stacks[0]
    assert plugins.errors == {}
