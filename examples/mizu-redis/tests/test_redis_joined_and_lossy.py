"""Captures as a busy tapper makes them: recorded while redis-py connections opened before it
were in use (one of them in the middle of a large reply), and copies of that recording without
0.5 %, 2 % and 5 % of their data segments (seeded), and without any few of them. Every command
the plugin pairs with a reply was answered by that reply, as the clients saw it; pairing
resumes after each loss.

tshark's RESP dissector decodes messages but pairs none, so the clients are the oracle here.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mizu_core.testkit import HookOutputs, run_capture
from redis_peers import redis_server, tcpdump
from tests.support.capture_edits import data_segments, remove_data_segments, remove_packets
from tests.support.joined_recordings import Recording, dissect_without_some_segments
from tests.support.tcp import server_port

LARGE = 40_000
"""Every fourth value: several segments, so replies are often in flight."""
SLOW_READ = 300_000
"""The value a client reads slowly while the capture starts: its reply is in flight then."""
IN_FLIGHT = 10_000
"""What is left of it when the capture starts (less than what the core holds of a
connection's first bytes while plugins decide)."""
LOSSES = (0.005, 0.02, 0.05)
SEED = 17


Replies = dict[tuple[str, str], Any]
"""(command, its first argument, unique in a run) → the reply the client got, as the plugin
shows it (text, integer)."""


def value_of(prefix: str, index: int) -> str:
    return f"{prefix}{index:08d}" + "v" * (LARGE if index % 4 == 0 else 100)


def drive(port: int, protocol: int, prefix: str, replies: Replies, stop: threading.Event) -> None:
    """SET, GET, INCRBY and ECHO with arguments of their own, and a pipeline now and then,
    until ``stop``."""
    client = redis.Redis(port=port, protocol=protocol)
    index = 0
    while not stop.is_set():
        key, value = f"{prefix}k{index}", value_of(prefix, index)
        client.set(key, value)
        replies["SET", key] = "OK"
        replies["GET", key] = client.get(key).decode()
        replies["INCRBY", f"{prefix}c{index}"] = client.incrby(f"{prefix}c{index}", index)
        replies["ECHO", f"{prefix}e{index}"] = client.echo(f"{prefix}e{index}").decode()
        if index % 5 == 0:
            pipeline = client.pipeline(transaction=False)
            pipeline.echo(f"{prefix}p{index}").incrby(f"{prefix}d{index}", index)
            echoed, added = pipeline.execute()
            replies["ECHO", f"{prefix}p{index}"] = echoed.decode()
            replies["INCRBY", f"{prefix}d{index}"] = added
        index += 1
    client.close()


def slow_reader(port: int) -> socket.socket:
    """A connection whose client asked for a large value and reads it slowly: the server's
    reply waits in its socket buffer."""
    redis.Redis(port=port).set("slow", "s" * SLOW_READ)
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", port))
    raw.sendall(b"*2\r\n$3\r\nGET\r\n$4\r\nslow\r\n")
    received = 0
    while received < SLOW_READ - IN_FLIGHT:
        received += len(raw.recv(min(4096, SLOW_READ - IN_FLIGHT - received)))
    return raw


def read_reply(raw: socket.socket, end: bytes) -> None:
    received = b""
    while not received.endswith(end):
        chunk = raw.recv(65536)
        assert chunk, "the server closed the connection"
        received += chunk


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recording[Replies]]:
    with redis_server(server_port()) as server:
        yield record_busy(server.port, tmp_path_factory.mktemp("joined") / "joined.pcap")


def record_busy(redis_port: int, capture: Path) -> Recording[Replies]:
    replies: Replies = {}
    stop = threading.Event()
    raw = slow_reader(redis_port)
    drivers = [
        threading.Thread(target=drive, args=(redis_port, protocol, prefix, replies, stop))
        for protocol, prefix in ((2, "a"), (3, "b"))
    ]
    for driver in drivers:
        driver.start()
    try:
        time.sleep(0.3)  # both connections open and busy
        with tcpdump(capture, redis_port):
            read_reply(raw, b"s\r\n")
            raw.sendall(b"*2\r\n$4\r\nECHO\r\n$5\r\nafter\r\n")
            read_reply(raw, b"after\r\n")
            replies["ECHO", "after"] = "after"
            time.sleep(0.5)
            stop.set()
            for driver in drivers:
                driver.join()
    finally:
        stop.set()
        raw.close()
    return Recording(capture, redis_port, replies, run_capture(capture, "redis"))


def exact_pairs(outputs: HookOutputs, replies: Replies) -> int:
    """The complete entries, each checked against the clients' view: a command paired with
    a reply that did not answer it fails the test."""
    assert outputs.stats["plugin_errors"] == {}
    exact = 0
    for entry in outputs.entries:
        request, response = entry["request"], entry["response"]
        if request is None or response is None:
            continue
        command = (request["method"], request["args"][0])
        assert command in replies, f"{command} was never sent"
        expected, shown = replies[command], response["value"]
        if response.get("truncated"):
            assert isinstance(expected, str) and expected.startswith(shown), command
        else:
            assert shown == expected, (command, shown)
        exact += 1
    return exact


def test_joined_connections_pair_only_what_answered(recording: Recording[Replies]) -> None:
    counters = recording.outputs.stats["plugin_counters"]["redis"]
    exact = exact_pairs(recording.outputs, recording.view)
    lone = [entry for entry in recording.outputs.entries if entry["response"] is None]
    print(f"redis joined: {exact} exact pairs, {len(lone)} commands alone, counters {counters}")
    assert exact > 100
    # The slow reader's reply was in flight when the capture began: skipped, then resumed.
    assert counters["bytes_skipped"] >= IN_FLIGHT // 2
    echoed = [
        entry
        for entry in recording.outputs.entries
        if entry["request"] and entry["request"]["args"] == ["after"]
    ]
    assert [entry["response"]["value"] for entry in echoed] == ["after"]


@pytest.mark.parametrize("loss", LOSSES)
def test_lost_segments_never_pair_a_command_with_another_reply(
    recording: Recording[Replies], tmp_path: Path, loss: float
) -> None:
    lossy = tmp_path / "lossy.pcap"
    removed = remove_data_segments(recording.capture, lossy, loss, SEED)
    outputs = run_capture(lossy, "redis")
    exact = exact_pairs(outputs, recording.view)
    counters = outputs.stats["plugin_counters"]["redis"]
    print(
        f"redis loss {loss:.1%}: {len(removed)} segments removed, {exact} exact pairs "
        f"({exact_pairs(recording.outputs, recording.view)} in the recording), "
        f"resyncs {counters['resyncs']}, bytes skipped {counters['bytes_skipped']}"
    )
    assert counters["resyncs"] > 0
    # Pairing resumes after the losses (replies name no command: what was pending when bytes
    # were found lost, and what was held behind them meanwhile, stays alone).
    assert exact > 0


def test_without_each_servers_first_segment_no_command_gets_the_next_reply(
    recording: Recording[Replies], tmp_path: Path
) -> None:
    """Without the first segment each server sent in the capture (a reply to the command the
    capture saw first), no command is paired with the reply to the next one: the clients'
    acknowledgements say those bytes were lost, though the capture never counted the
    server's bytes before them."""
    first_replies: dict[Any, int] = {}
    for segment in data_segments(recording.capture):
        if segment.flow[1] == recording.port:
            first_replies.setdefault(segment.flow, segment.index)
    assert len(first_replies) >= 2  # the two busy connections at least
    edited = tmp_path / "first-replies-lost.pcap"
    remove_packets(recording.capture, edited, sorted(first_replies.values()))
    outputs = run_capture(edited, "redis")
    assert exact_pairs(outputs, recording.view) > 100
    assert outputs.stats["reassembly"]["bytes_lost"] >= len(first_replies)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_segments_removed_leave_only_pairs_of_the_whole_capture(
    recording: Recording[Replies], data: st.DataObject
) -> None:
    """Every complete entry is checked against what the clients received, the exact record of
    every reply. The whole recording is not the oracle here: it has holes of its own (the
    capture joined busy connections), after which Redis, whose replies carry no id, leaves
    commands alone that an edited copy, resynchronised elsewhere, may pair, rightly."""
    outputs = dissect_without_some_segments(data, recording, "redis")
    exact_pairs(outputs, recording.view)
