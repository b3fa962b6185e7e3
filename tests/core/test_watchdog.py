"""A plugin that makes no progress on its input is interrupted after the stall limit and
isolated as one that raised, named with its connection; and the engine's run can be ended at
once whatever a plugin is doing.

The plugin is ``stuck`` of ``tests/data/plugins/mizu-turns``: it claims the connections to
port 7001 and never returns from its dissector's feed."""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path

import pytest

from mizu_core.capture import FileSource
from mizu_core.engine import Engine, EngineSettings
from mizu_core.plugins import PluginManager
from mizu_core.watchdog import EngineStopped
from tests.support.packets import conversation, write_frames


def two_connections(directory: Path) -> Path:
    """A connection to the stuck plugin's port, then one to turns' port."""
    stuck = conversation(("127.0.0.1", 40001), ("127.0.0.2", 7001), [(True, b"spin")])
    fine = conversation(
        ("127.0.0.1", 40002), ("127.0.0.2", 7777), [(True, b"hi"), (False, b"hello")]
    )
    return write_frames(directory / "stuck.pcap", [*stuck, *fine])


def engine_of(*names: str, stall_limit: float) -> tuple[Engine, list[dict]]:
    plugins = PluginManager().discover(allow=list(names))
    entries: list[dict] = []
    return Engine(plugins, entries.append, EngineSettings(stall_limit=stall_limit)), entries


def test_a_stuck_dissector_is_interrupted_isolated_and_named(
    turns_on_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine, entries = engine_of("stuck", "turns", "tcp", stall_limit=0.5)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        engine.run(FileSource(two_connections(tmp_path)))
        engine.finish()
    assert time.monotonic() - started < 5
    stats = engine.stats()
    assert stats["plugin_errors"] == {"stuck": 1}
    assert engine.watchdog.interrupted == 1
    # the stuck plugin's connection went on to the plugins ranked after it, and the other
    # connection was dissected as ever
    assert stats["dispatch"]["connections_claimed"] == {"stuck": 1, "turns": 2}
    assert [entry["dst"]["port"] for entry in entries] == [7777]
    said = caplog.text
    assert re.search(
        r"plugin stuck made no progress for 0\.[5-9] s on 127\.0\.0\.1:40001 → 127\.0\.0\.2:7001",
        said,
    )
    assert "plugin stuck was stuck in dissector.feed" in said
    assert 'stuck.py", line' in said  # the traceback shows where it was stuck


def test_without_a_limit_nothing_is_interrupted_until_the_run_is_stopped(
    turns_on_path: Path, tmp_path: Path
) -> None:
    engine, _ = engine_of("stuck", "tcp", stall_limit=0)
    ended = threading.Event()
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            engine.run(FileSource(two_connections(tmp_path)))
        except EngineStopped as error:
            outcome.append(error)
        ended.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    time.sleep(1.0)
    assert not ended.is_set()
    busy = engine.watchdog.current()
    assert busy is not None and busy.plugin == "stuck"
    assert busy.connection == "127.0.0.1:40001 → 127.0.0.2:7001"
    stopped = engine.watchdog.stop()
    assert stopped is not None and stopped.plugin == "stuck"
    assert ended.wait(5), "the run did not end"
    assert len(outcome) == 1
    assert engine.watchdog.current() is None  # no longer watching


def test_the_test_kit_reports_a_hang_as_a_plugin_error(
    turns_on_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fuzz tests and plugin authors' tests get a hang as a failure, not a hung suite."""
    import mizu_turns.stuck

    from mizu_core import Direction, Endpoint
    from mizu_core.testkit import run_bytes

    monkeypatch.setenv("MIZU_STALL_SECONDS", "0.3")
    started = time.monotonic()
    outputs = run_bytes(
        [(Direction.CLIENT_TO_SERVER, b"x")],
        mizu_turns.stuck,
        server=Endpoint("10.0.0.2", 7001),
    )
    assert time.monotonic() - started < 3
    assert outputs.stats["plugin_errors"] == {"stuck": 1}


def test_a_bad_stall_limit_in_the_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIZU_STALL_SECONDS", "soon")
    with pytest.raises(ValueError, match="MIZU_STALL_SECONDS='soon'"):
        EngineSettings()
