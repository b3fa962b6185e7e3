"""A plugin stuck on its input never hangs Mizu: every command that runs plugins isolates it
after the stall limit (``MIZU_STALL_SECONDS``), and Ctrl-C or SIGTERM ends the command within
5 seconds whatever the plugin does, saying which plugin was stuck.

The plugin is ``stuck`` of ``tests/data/plugins/mizu-turns``, installed apart as a third party's
would be: it claims the connections to one port and never returns from its dissector's feed
(``stubborn``: it swallows every exception, KeyboardInterrupt included)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_local import free_port
from tests.support.packets import conversation, write_frames

STOPPED_WITHIN = 5.0


def mizu(*args: str) -> list[str]:
    return [sys.executable, "-m", "mizu_cli", *args]


def environment(turns_plugins: Path, stall_seconds: float) -> dict[str, str]:
    return dict(
        os.environ,
        PYTHONPATH=str(turns_plugins),
        MIZU_PLUGINS="stuck,turns,tcp",
        MIZU_STALL_SECONDS=str(stall_seconds),
    )


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    """A connection to the stuck plugin's port between two connections it does not claim."""
    frames = [
        *conversation(("127.0.0.1", 40001), ("127.0.0.2", 7777), [(True, b"a"), (False, b"b")]),
        *conversation(("127.0.0.1", 40002), ("127.0.0.2", 7001), [(True, b"spin")]),
        *conversation(("127.0.0.1", 40003), ("127.0.0.2", 7777), [(True, b"c"), (False, b"d")]),
    ]
    return write_frames(tmp_path / "stuck.pcap", frames)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_dissect_isolates_a_stuck_plugin_and_goes_on(
    turns_plugins: Path, capture: Path, workers: str
) -> None:
    started = time.monotonic()
    result = subprocess.run(
        mizu("dissect", str(capture), "--workers", workers),
        env=environment(turns_plugins, 1.0),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 20
    entries = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(entry["src"]["port"] for entry in entries if entry["protocol"]["name"] == "turns")
    assert {entry["src"]["port"] for entry in entries} >= {40001, 40003}
    assert "plugin stuck made no progress for 1." in result.stderr
    assert "on 127.0.0.2:7001" not in result.stderr  # the client is named first
    assert "127.0.0.1:40002 → 127.0.0.2:7001" in result.stderr
    assert "plugin errors: stuck 1" in result.stderr


def read_until(process: subprocess.Popen[str], marker: str) -> str:
    """What the process said up to its first line holding ``marker`` (a loaded machine may
    take seconds to start it)."""
    assert process.stderr is not None
    said = []
    for line in process.stderr:
        said.append(line)
        if marker in line:
            return "".join(said)
    pytest.fail(f"ended without {marker!r}: {''.join(said)}")


def stop_when_stuck(
    process: subprocess.Popen[str], signum: int, marker: str | None, after: float = 2.0
) -> tuple[float, str]:
    """Wait for ``marker`` on the process's standard error (None: for nothing), give the
    plugin ``after`` more seconds stuck, then send ``signum``; how long the process took to
    end, and all it said."""
    assert process.stderr is not None
    said: list[str] = []
    seen = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            said.append(line)
            if marker is not None and marker in line:
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if marker is not None:
        assert seen.wait(60), f"no {marker!r}: {''.join(said)}"
    time.sleep(after)
    assert process.poll() is None, "".join(said)
    process.send_signal(signum)
    sent = time.monotonic()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"still running 30 s after {signal.Signals(signum).name}: {''.join(said)}")
    took = time.monotonic() - sent
    reader.join(5)
    return took, "".join(said)


@pytest.mark.parametrize(
    ("workers", "signum", "stubborn"),
    [
        ("1", signal.SIGINT, False),
        ("1", signal.SIGTERM, False),
        ("1", signal.SIGINT, True),
        ("2", signal.SIGINT, False),
        ("2", signal.SIGTERM, True),
    ],
    ids=["sigint", "sigterm", "sigint-stubborn", "workers-sigint", "workers-sigterm-stubborn"],
)
def test_dissect_stops_within_seconds_whatever_the_plugin_does(
    turns_plugins: Path, capture: Path, workers: str, signum: int, stubborn: bool
) -> None:
    process = subprocess.Popen(
        [
            *mizu("--log-level", "info", "dissect", str(capture), "--workers", workers),
            *("--set", f"plugins.stuck.stubborn={'true' if stubborn else 'false'}"),
        ],
        env=environment(turns_plugins, 600),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    # nothing is said before the plugin is stuck: give Python and the plugins time to load
    took, said = stop_when_stuck(process, signum, None, after=6.0)
    assert took < STOPPED_WITHIN, said
    assert process.returncode != 0
    assert "plugin stuck was busy for" in said, said
    assert "127.0.0.1:40002 → 127.0.0.2:7001" in said


def test_tap_pcap_stops_within_seconds_naming_the_stuck_plugin(
    turns_plugins: Path, capture: Path, tmp_path: Path
) -> None:
    process = subprocess.Popen(
        [
            *mizu("tap", "--pcap", str(capture), "--no-browser"),
            *("--db", str(tmp_path / "entries.db"), "-p", str(free_port())),
        ],
        env=environment(turns_plugins, 600),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    took, said = stop_when_stuck(process, signal.SIGINT, "dashboard at")
    assert took < STOPPED_WITHIN, said
    assert "stopping: plugin stuck was busy for" in said, said
    assert "127.0.0.1:40002 → 127.0.0.2:7001; interrupted" in said


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP server on loopback that reads and never answers; yields its port."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            connection.settimeout(0.2)
            with connection:
                while not stop.is_set():
                    try:
                        if not connection.recv(65536):
                            break
                    except TimeoutError:
                        continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    server.close()


@pytest.mark.live
def test_a_node_tapper_stops_within_seconds_naming_the_stuck_plugin(
    turns_plugins: Path, listener: int, tmp_path: Path
) -> None:
    """``mizu tapper`` capturing lo, as a cluster's tapper runs: a connection to the stuck
    plugin's port stalls its capture thread; SIGTERM (the kubelet's) still ends it."""
    if os.geteuid() != 0:
        pytest.fail("live capture on lo needs root (run the live tests as root)")
    process = subprocess.Popen(
        [
            *mizu("--log-level", "info", "tapper", "--hub", f"http://127.0.0.1:{free_port()}"),
            *("--token", "t", "-i", "lo", "--filter", f"tcp port {listener}"),
            *("--config-path", str(tmp_path / "none.yaml")),
            *("--set", f"plugins.stuck.port={listener}"),
        ],
        env=environment(turns_plugins, 600),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    started = read_until(process, "capturing on lo")

    def talk() -> None:
        with socket.create_connection(("127.0.0.1", listener)) as client:
            for _ in range(20):
                client.sendall(b"spin")
                time.sleep(0.1)

    threading.Thread(target=talk, daemon=True).start()
    took, said = stop_when_stuck(process, signal.SIGTERM, None, after=3.0)
    said = started + said
    assert took < STOPPED_WITHIN, said
    assert "stopping: plugin stuck was busy for" in said, said
    assert f"→ 127.0.0.1:{listener}; interrupted" in said
