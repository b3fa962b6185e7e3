"""Capture files, damaged ones included, and live capture on loopback with libpcap."""

from __future__ import annotations

import os
import signal
import socket
import struct
import threading
import time
from pathlib import Path

import pcap
import pytest

from mizu_core.capture import CaptureError, FileSource, LiveSource
from mizu_core.engine import Engine, EngineSettings
from mizu_core.plugins import PluginManager
from tests.support.tcp import answering_server

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="live capture needs root")
DATA = Path(__file__).resolve().parent.parent / "data" / "core"


def echo_server() -> tuple[socket.socket, int]:
    return answering_server(bytes.upper)


@needs_root
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


@needs_root
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
    capture = DATA / "http11-keepalive.pcap"
    read = []
    reader = threading.Thread(target=lambda: read.extend(FileSource(capture)))
    reader.start()
    reader.join()
    assert read
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(2)


@pytest.mark.parametrize(
    ("original", "kept"),
    [
        ("http11-keepalive.pcap", 20),  # in the file header
        ("http11-keepalive.pcap", 4),  # the magic alone
        ("ndpi_http2.pcapng", 16),  # in the section header block
        ("ndpi_http2.pcapng", 4),
        ("ndpi_http2.pcapng", 100),  # in the interface description block
    ],
)
def test_a_file_header_cut_short_is_named(tmp_path: Path, original: str, kept: int) -> None:
    """pypcap tries a file libpcap cannot open as a network interface, and its message was
    "No such device exists"."""
    cut = tmp_path / original
    cut.write_bytes((DATA / original).read_bytes()[:kept])
    with pytest.raises(CaptureError) as raised:
        FileSource(cut)
    assert str(raised.value) == (
        f"{cut}: the capture's file header is cut short; copy or capture the file again"
    )


def test_a_file_header_libpcap_refuses_is_not_blamed_on_an_interface(tmp_path: Path) -> None:
    capture = bytearray((DATA / "http11-keepalive.pcap").read_bytes())
    capture[4:6] = (9).to_bytes(2, "little")  # format version 9.4
    damaged = tmp_path / "version-9.pcap"
    damaged.write_bytes(capture)
    with pytest.raises(CaptureError, match="libpcap cannot read the capture's file header"):
        FileSource(damaged)


@pytest.mark.parametrize("original", ["ndpi_http2.pcapng", "http11-keepalive.pcap"])
def test_a_file_cut_in_a_packet_is_flagged(tmp_path: Path, original: str) -> None:
    capture = (DATA / original).read_bytes()
    cut = tmp_path / original
    cut.write_bytes(capture[: len(capture) // 2 + 3])
    flags = []
    for path in (DATA / original, cut):
        engine = Engine(PluginManager().discover(allow=["tcp"]), lambda entry: None)
        engine.run(FileSource(path))
        flags.append(engine.stats()["capture"][0]["truncated_file"])
    assert flags == [False, True]


def _block(kind: int, body: bytes, order: str = "<") -> bytes:
    length = 12 + len(body)
    return struct.pack(order + "II", kind, length) + body + struct.pack(order + "I", length)


def _statistics(interface: int, order: str = "<", **drops: int) -> bytes:
    """An interface statistics block with the ``ifdrop`` (5) and ``osdrop`` (7) options."""
    options = b"".join(
        struct.pack(order + "HHQ", code, 8, drops[name])
        for name, code in (("ifdrop", 5), ("osdrop", 7))
        if name in drops
    )
    return _block(5, struct.pack(order + "III", interface, 0, 0) + options + b"\0\0\0\0", order)


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcapng_statistics_give_the_drops_when_the_file_was_recorded(
    tmp_path: Path, order: str
) -> None:
    """The last statistics of each interface count (they are cumulative); ``osdrop`` is the
    host's drops where a writer gives it, else ``ifdrop`` is (older dumpcap put the
    kernel's count there). Either byte order (the writer's)."""
    section = _block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1), order)
    interface = _block(1, struct.pack(order + "HHI", 1, 0, 65535), order)
    capture = tmp_path / "drops.pcapng"
    capture.write_bytes(
        section
        + interface
        + interface
        + _statistics(0, order, ifdrop=3)
        + _statistics(0, order, ifdrop=10)
        + _statistics(1, order, ifdrop=2, osdrop=40)
    )
    source = FileSource(capture)
    assert list(source) == []
    source.check_complete(0, 0)
    assert (source.stats.dropped, source.stats.interface_dropped) == (50, 2)


def _libpcap_frames(path: Path) -> list[tuple[float, bytes]]:
    handle = pcap.pcap(name=str(path), promisc=False)
    return [(stamp, bytes(frame)) for stamp, frame in iter(handle.__next__, None)]


def _rewrite_pcap(
    source: Path, target: Path, *, byte_order: str = "<", snaplen: int | None = None
) -> None:
    """``source`` (a little-endian classic pcap) written again in ``byte_order``, with another
    snapshot length in its header when given."""
    data = source.read_bytes()
    magic, major, minor, zone, figures, snap, linktype = struct.unpack_from("<IHHiIII", data)
    out = [
        struct.pack(
            byte_order + "IHHiIII",
            magic,
            major,
            minor,
            zone,
            figures,
            snap if snaplen is None else snaplen,
            linktype,
        )
    ]
    offset = 24
    while offset + 16 <= len(data):
        header = struct.unpack_from("<IIII", data, offset)
        out.append(struct.pack(byte_order + "IIII", *header))
        out.append(data[offset + 16 : offset + 16 + header[2]])
        offset += 16 + header[2]
    target.write_bytes(b"".join(out))


@pytest.mark.parametrize(
    "case", ["as written", "big-endian", "cut in a packet", "frames longer than the snaplen"]
)
def test_classic_pcap_records_are_libpcaps(tmp_path: Path, case: str) -> None:
    """Classic pcap records are read by the core's own reader: the same timestamps (to the bit)
    and frames as libpcap's, whatever the byte order; at a record libpcap reads its own way
    (cut to the snapshot length), libpcap reads the rest of the file."""
    original = DATA / "http11-keepalive.pcap"
    path = tmp_path / "capture.pcap"
    if case == "as written":
        path = original
    elif case == "big-endian":
        _rewrite_pcap(original, path, byte_order=">")
    elif case == "cut in a packet":
        path.write_bytes(original.read_bytes()[:-7])
    else:
        _rewrite_pcap(original, path, snaplen=80)
    source = FileSource(path)
    frames = [(stamp, bytes(frame)) for stamp, frame in source]
    assert frames == _libpcap_frames(path)
    assert len(frames) > 10
    if case == "frames longer than the snaplen":
        assert max(len(frame) for _, frame in frames) == 80
    if case == "as written":
        assert source.consumed == path.stat().st_size
