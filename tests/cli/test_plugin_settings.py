"""A third party's plugin gets its settings (``plugins.<name>.*``) from the config file and from
``--set`` in every command that runs plugins, and its dissectors read them from their context;
a key the plugin refuses stops the command with the plugin's message.

The plugin is ``turns`` of ``tests/data/plugins/mizu-turns``, installed apart as a third party's
would be: its ``configure`` parses ``label`` and ``max-turn-bytes``, and each message its
dissector makes carries the label and counts at most that many bytes.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_local import free_port
from tests.support.packets import conversation, write_frames
from tests.support.processes import wait_for_stderr
from tests.support.tcp import answering_server

REFUSED = "plugins.turns: unknown key 'colour' (turns knows label, max-turn-bytes)"


@pytest.fixture
def environment(turns_plugins: Path) -> dict[str, str]:
    """Mizu's with the turns plugins installed apart, and only turns (and tcp) loaded."""
    return dict(os.environ, PYTHONPATH=str(turns_plugins), MIZU_PLUGINS="turns,tcp")


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    """One connection of two turns: 5 bytes asked, 11 answered, twice."""
    frames = conversation(
        ("127.0.0.1", 40001),
        ("127.0.0.2", 7777),
        [(True, b"hello"), (False, b"how are you"), (True, b"fine!"), (False, b"good, thanks")],
    )
    return write_frames(tmp_path / "turns.pcap", frames)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text("plugins:\n  turns:\n    label: from-the-file\n    max-turn-bytes: 8\n")
    return path


def mizu(*args: str) -> list[str]:
    return [sys.executable, "-m", "mizu_cli", *args]


def turns(entries: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (e["request"].get("label"), e["request"]["bytes"], e["response"]["bytes"])
        for e in entries
        if e["protocol"]["name"] == "turns"
    ]


def dissect(environment: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        mizu("dissect", *args), env=environment, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("workers", ["1", "2"])
def test_dissect_takes_settings_from_the_config_file_and_set(
    environment: dict[str, str], capture: Path, config_file: Path, tmp_path: Path, workers: str
) -> None:
    default = ["--config-path", str(tmp_path / "none.yaml"), "--workers", workers]
    plain = dissect(environment, str(capture), *default)
    assert plain.returncode == 0, plain.stderr
    assert turns([json.loads(line) for line in plain.stdout.splitlines()]) == [
        (None, 5, 11),
        (None, 5, 12),
    ]
    from_file = dissect(
        environment, str(capture), "--config-path", str(config_file), "--workers", workers
    )
    assert from_file.returncode == 0, from_file.stderr
    assert turns([json.loads(line) for line in from_file.stdout.splitlines()]) == [
        ("from-the-file", 5, 8),
        ("from-the-file", 5, 8),
    ]
    overridden = dissect(
        environment,
        str(capture),
        "--config-path",
        str(config_file),
        "--set",
        "plugins.turns.label=from-set",
        "--workers",
        workers,
    )
    assert overridden.returncode == 0, overridden.stderr
    assert turns([json.loads(line) for line in overridden.stdout.splitlines()]) == [
        ("from-set", 5, 8),
        ("from-set", 5, 8),
    ]


def test_dissect_stops_on_a_key_the_plugin_refuses(
    environment: dict[str, str], capture: Path, tmp_path: Path
) -> None:
    refused = dissect(
        environment,
        str(capture),
        "--config-path",
        str(tmp_path / "none.yaml"),
        "--set",
        "plugins.turns.colour=red",
    )
    assert refused.returncode == 1
    assert refused.stderr.strip() == f"Error: {REFUSED}"
    assert refused.stdout == ""
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text("plugins:\n  turns:\n    max-turn-bytes: lots\n")
    refused = dissect(environment, str(capture), "--config-path", str(bad_file))
    assert refused.returncode == 1
    assert "plugins.turns: max-turn-bytes: expected a positive integer, got 'lots'" in (
        refused.stderr
    )


def tap(environment: dict[str, str], tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        mizu(
            "tap",
            *args,
            "--no-browser",
            "--db",
            str(tmp_path / "entries.db"),
            "-p",
            str(free_port()),
            "-o",
            "jsonl",
        ),
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stopped(process: subprocess.Popen[str]) -> list[dict[str, Any]]:
    """The entries ``process`` printed, once Ctrl-C has stopped it."""
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    return [json.loads(line) for line in stdout.splitlines()]


def test_tap_pcap_takes_settings_from_the_config_file_and_set(
    environment: dict[str, str], capture: Path, config_file: Path, tmp_path: Path
) -> None:
    process = tap(
        environment,
        tmp_path,
        "--pcap",
        str(capture),
        "--config-path",
        str(config_file),
        "--set",
        "plugins.turns.label=from-set",
    )
    try:
        wait_for_stderr(process, "replayed 1 file(s)")
        assert turns(stopped(process)) == [("from-set", 5, 8), ("from-set", 5, 8)]
    finally:
        process.kill()
        process.wait()


@pytest.mark.parametrize("mode", ["--pcap", "--local"])
def test_tap_stops_on_a_key_the_plugin_refuses(
    environment: dict[str, str], capture: Path, tmp_path: Path, mode: str
) -> None:
    source = ["--pcap", str(capture)] if mode == "--pcap" else ["--local", "-i", "lo"]
    process = tap(
        environment,
        tmp_path,
        *source,
        "--config-path",
        str(tmp_path / "none.yaml"),
        "--set",
        "plugins.turns.colour=red",
    )
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert stderr.strip().endswith(f"Error: {REFUSED}")
    assert "dashboard at" not in stderr and stdout == ""


@pytest.fixture
def talker() -> Iterator[int]:
    """A loopback server that answers each line with its length: no protocol Mizu knows."""
    server, port = answering_server(lambda line: b"%d\n" % len(line))
    yield port
    server.close()


@pytest.mark.live
def test_tap_local_takes_settings_from_the_config_file_and_set(
    environment: dict[str, str], config_file: Path, tmp_path: Path, talker: int
) -> None:
    if os.geteuid() != 0:
        pytest.fail("live capture on lo needs root (run the live tests as root)")
    process = tap(
        environment,
        tmp_path,
        "--local",
        "-i",
        "lo",
        "--config-path",
        str(config_file),
        "--set",
        "plugins.turns.max-turn-bytes=2",
    )
    try:
        wait_for_stderr(process, "dashboard at")
        with socket.create_connection(("127.0.0.1", talker)) as client:
            for line in (b"first line\n", b"second\n"):
                client.sendall(line)
                client.recv(16)
        # the entries are printed as they are made: wait for both before stopping, so that
        # none is still in the capture's buffer when the capture stops
        printed: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=lambda: [printed.put(line) for line in process.stdout])
        reader.start()
        entries: list[dict[str, Any]] = []
        while len(turns(entries)) < 2:
            entry = json.loads(printed.get(timeout=30))
            if talker in (entry["src"]["port"], entry["dst"]["port"]):
                entries.append(entry)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        reader.join()
        assert turns(entries) == [("from-the-file", 2, 2), ("from-the-file", 2, 2)]
    finally:
        process.kill()
        process.wait()
