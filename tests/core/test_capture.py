"""Live capture on loopback with libpcap, and the engine's idle handling on a quiet network."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from mizu_core.capture import CaptureError, FileSource, LiveSource
from mizu_core.engine import Engine, EngineSettings
from mizu_core.plugins import PluginManager

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="live capture needs root")


def echo_server() -> tuple[socket.socket, int]:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            with connection:
                while data := connection.recv(65536):
                    connection.sendall(data.upper())

    threading.Thread(target=serve, daemon=True).start()
    return server, port


def test_live_capture_on_loopback_with_a_filter() -> None:
    server, port = echo_server()
    source = LiveSource(["lo"], bpf_filter=f"tcp port {port}")
    entries: list[dict] = []
    engine = Engine(
        PluginManager().discover(allow=["tcp"]), entries.append, EngineSettings(tapper_id="live")
    )
    runner = threading.Thread(target=engine.run, args=(source,))
    runner.start()
    try:
        time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", port)) as client:
            for size in (10, 100_000, 3):
                client.sendall(b"x" * size)
                received = 0
                while received < size:
                    received += len(client.recv(65536))
        # Noise the filter must keep out.
        other, other_port = echo_server()
        with socket.create_connection(("127.0.0.1", other_port)) as client:
            client.sendall(b"ignored")
            client.recv(100)
        other.close()
        deadline = time.monotonic() + 10
        while not entries and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        source.stop()
        runner.join(timeout=10)
        server.close()
    engine.finish()
    source.close()
    (entry,) = entries
    assert entry["dst"]["port"] == port
    assert entry["request"]["bytes"] == entry["response"]["bytes"] == 100_013
    assert entry["response"]["status"] == "FIN"
    stats = engine.stats()
    assert stats["capture"][0]["received"] >= stats["tcp_packets"] > 0
    assert stats["capture"][0]["dropped"] == 0


def test_unknown_interface_and_bad_filter_are_clear_errors() -> None:
    with pytest.raises(CaptureError, match="cannot capture on nosuch0"):
        LiveSource(["nosuch0"])
    with pytest.raises(CaptureError, match="bad capture filter"):
        LiveSource(["lo"], bpf_filter="tcp port banana")
    with pytest.raises(CaptureError, match="different link types"):
        LiveSource(["lo", "any"])


def test_reading_a_file_in_a_thread_leaves_ctrl_c_to_python(python_sigint: None) -> None:
    """Local mode replays files in a thread; pypcap's own SIGINT handler, installed by its
    iterator from any thread and never removed, swallowed every later Ctrl-C."""
    capture = Path(__file__).resolve().parent.parent / "data" / "core" / "http11-keepalive.pcap"
    read = []
    reader = threading.Thread(target=lambda: read.extend(FileSource(capture)))
    reader.start()
    reader.join()
    assert read
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(2)
