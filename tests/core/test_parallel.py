"""Sharding connections over worker processes: routing, merging, failures."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest
from mizu_http import plugin as http_plugin

from mizu_core import hookimpl
from mizu_core.capture import FileSource
from mizu_core.emit import encode_json_line
from mizu_core.engine import Engine, EngineSettings
from mizu_core.parallel import (
    AUTO_MIN_BYTES,
    ShardedDissection,
    ShardSettings,
    WorkerFailed,
    auto_workers,
    merge_stats,
)
from mizu_core.plugins import PluginManager
from mizu_core.routing import ConnectionRouter

DATA = Path(__file__).parents[1] / "data"


def one_process(paths: list[Path]) -> tuple[list[bytes], dict[str, object]]:
    lines: list[bytes] = []
    engine = Engine(
        PluginManager().discover(),
        lambda entry: lines.append(encode_json_line(entry)),
        EngineSettings(tapper_id="file"),
    )
    for path in paths:
        engine.run(FileSource(path))
        engine.finish()
    return lines, engine.stats()


def sharded(paths: list[Path], workers: int) -> tuple[list[bytes], dict[str, object]]:
    lines: list[bytes] = []
    dissection = ShardedDissection(
        PluginManager().discover(),
        ShardSettings(workers=workers, engine=EngineSettings(tapper_id="file")),
        lines.append,
    )
    dissection.start()
    try:
        for path in paths:
            dissection.run(FileSource(path))
        return lines, dissection.finish()
    finally:
        dissection.stop()


def test_ipv4_fragments_follow_their_connection() -> None:
    capture = DATA / "core/http11-keepalive-ipfrag.pcap"
    expected, expected_stats = one_process([capture])
    lines, stats = sharded([capture], 2)
    assert lines == expected
    assert stats["sharding"]["fragments_held"] > 0  # later fragments came before the first
    assert stats["sharding"]["fragments_unrouted"] == 0
    assert stats["decode"] == expected_stats["decode"]
    assert stats["decode"]["fragments_reassembled"] > 0


def test_a_file_read_in_part_by_libpcap_is_routed_the_same(tmp_path: Path) -> None:
    """The workers read a classic pcap file's records in place up to one that libpcap reads
    its own way (longer than the snapshot length, here from the 8th packet on), and route
    libpcap's frames from there on as they routed the records."""
    data = bytearray((DATA / "core/http11-keepalive.pcap").read_bytes())
    data[16:20] = (300).to_bytes(4, "little")  # the file header's snapshot length
    capture = tmp_path / "snapped.pcap"
    capture.write_bytes(data)
    expected, expected_stats = one_process([capture])
    lines, stats = sharded([capture], 2)
    assert expected and lines == expected
    assert stats["packets"] == expected_stats["packets"]
    assert stats["sharding"]["flows"] == 1


def test_lines_written_together_are_those_of_one_process() -> None:
    """A stream's writer takes the merged lines joined, fewer calls than lines."""
    capture = DATA / "core/http11-keepalive.pcap"
    expected, _ = one_process([capture])
    chunks: list[bytes] = []
    dissection = ShardedDissection(
        PluginManager().discover(),
        ShardSettings(workers=2, engine=EngineSettings(tapper_id="file")),
        chunks.append,
        lines_together=True,
    )
    dissection.start()
    try:
        dissection.run(FileSource(capture))
        dissection.finish()
    finally:
        dissection.stop()
    assert len(expected) > 1
    assert b"".join(chunks) == b"".join(expected)
    assert len(chunks) < len(expected)


def test_stats_are_the_sums_over_workers() -> None:
    captures = [DATA / "core/deepflow_http.pcap", DATA / "amqp/deepflow_amqp1.pcap"]
    expected, expected_stats = one_process(captures)
    lines, stats = sharded(captures, 3)
    assert sorted(lines) == sorted(expected)
    for name in ("packets", "tcp_packets", "connections", "entries", "skipped"):
        assert stats[name] == expected_stats[name], name
    assert stats["plugin_errors"] == expected_stats["plugin_errors"]
    assert stats["sharding"]["workers"] == 3


def test_a_killed_worker_is_reported() -> None:
    dissection = ShardedDissection(
        PluginManager().discover(allow=["tcp"]),
        ShardSettings(workers=2, engine=EngineSettings(tapper_id="file")),
        lambda line: None,
    )
    dissection.start()
    try:
        os.kill(dissection.workers[1].pid, signal.SIGKILL)
        with pytest.raises(WorkerFailed, match="worker 1 was killed by signal SIGKILL"):
            dissection.run(FileSource(DATA / "core/http11-keepalive.pcap"))
            dissection.finish()
    finally:
        dissection.stop()
    assert all(worker.status is not None for worker in dissection.workers)  # reaped


def test_routes_are_direction_independent_and_balanced() -> None:
    router = ConnectionRouter(2)
    a = bytes([10, 0, 0, 1, 10, 0, 0, 2]) + (40000).to_bytes(2, "big") + (80).to_bytes(2, "big")
    reverse = a[4:8] + a[:4] + a[10:12] + a[8:10]
    first = router.flow(a)
    router.stats.loads[first].bytes += 1000
    assert router.flow(reverse) == first
    b = a[:8] + (40001).to_bytes(2, "big") + a[10:]
    assert router.flow(b) != first  # the other worker had fewer bytes


def test_auto_uses_one_process_for_small_files_or_one_cpu() -> None:
    assert auto_workers(AUTO_MIN_BYTES - 1, cpus=4) == 1
    assert auto_workers(AUTO_MIN_BYTES * 10, cpus=1) == 1
    assert auto_workers(AUTO_MIN_BYTES * 10, cpus=2) == 2
    assert auto_workers(AUTO_MIN_BYTES * 10, cpus=64) == 8


def test_merge_stats_sums_by_name() -> None:
    merged = merge_stats(
        [
            {"entries": 2, "plugin_errors": {"http": 1}, "flag": False},
            {"entries": 3, "plugin_errors": {"http": 2, "amqp": 1}, "flag": True},
        ]
    )
    assert merged == {"entries": 5, "plugin_errors": {"http": 3, "amqp": 1}, "flag": True}
    assert orjson.dumps(merged)


@hookimpl
def failing_summarize(entry: dict[str, object]) -> None:
    raise ValueError(f"no row for {entry['id']}")


ROWLESS_HTTP = SimpleNamespace(
    protocols=http_plugin.protocols,
    configure=http_plugin.configure,
    dissect=http_plugin.dissect,
    analyze=http_plugin.analyze,
    summarize=failing_summarize,
)
"""The HTTP plugin, except that its summaries raise."""


def test_a_plugin_error_logged_in_workers_is_printed_once_among_the_entries(
    capfd: pytest.CaptureFixture[str],
) -> None:
    plugins = PluginManager().discover(allow=["tcp"])
    plugins.register(ROWLESS_HTTP, "http")
    capture = DATA / "core/http11-keepalive.pcap"
    lines: list[bytes] = []
    dissection = ShardedDissection(
        plugins, ShardSettings(workers=2, engine=EngineSettings(tapper_id="file")), lines.append
    )
    dissection.start()
    try:
        dissection.run(FileSource(capture))
        stats = dissection.finish()
    finally:
        dissection.stop()
    expected, _ = one_process([capture])
    assert lines == expected  # the entries are stored without their rows' fields
    assert stats["plugin_errors"]["http"] == len(expected)
    printed = capfd.readouterr().err
    assert printed.count("plugin http raised in summarize") == 1
    assert "ValueError: no row for file-1-1" in printed
