"""Writing entries: output errors stop the run and are never a plugin's fault."""

from __future__ import annotations

import contextlib
import os
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
    """The dispatcher isolates plugins with ``except Exception`` around their hooks, from
    which entries are written: a BrokenPipeError there was counted against the plugin, the
    connection went on to the next plugin, and the file was read to its end."""
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
