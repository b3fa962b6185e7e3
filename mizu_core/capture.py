"""Packet sources: capture files and live interfaces, through libpcap (pypcap); the records of
classic pcap files are read by :class:`mizu_core.pcapfile.PcapRecords`, compiled.

A source yields ``(timestamp, frame)`` pairs and knows its link type. Live sources also yield
``None`` about twice a second when no packet came, so that the engine can close idle
connections and expire unanswered requests on a quiet network.
"""

from __future__ import annotations

import itertools
import mmap
import os
import select
import stat
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import pcap

from mizu_core.pcapfile import PCAP_FILE_HEADER, PCAP_RECORD_HEADER, PcapRecords, classic_layout

PCAP_MAGICS = {b"\xa1\xb2\xc3\xd4", b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\x3c\x4d", b"\x4d\x3c\xb2\xa1"}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
_PCAPNG_LITTLE_ENDIAN = b"\x4d\x3c\x2b\x1a"  # the section header's byte-order magic, as written
_PCAPNG_BIG_ENDIAN = b"\x1a\x2b\x3c\x4d"
_PCAPNG_INTERFACE_BLOCK = 1
_PCAPNG_PACKET_BLOCKS = frozenset({2, 3, 6})  # obsolete, simple, enhanced
_PCAPNG_MIN_BLOCK = 12  # type, length, and the length again
_PCAPNG_SECTION_BLOCK = 0x0A0D0D0A  # its magic reads the same in either byte order
_BLOCK_HEADERS = {order: struct.Struct(order + "II") for order in "<>"}
"""A block's type and length, by the section's byte order: every worker walks every block of
the file once it is read, so the format is compiled once."""


class CaptureError(Exception):
    """A capture could not be opened or read; the message says why and what to do."""


Packet = tuple[float, bytes]


@dataclass(slots=True)
class CaptureStats:
    received: int = 0
    dropped: int = 0
    """Packets the kernel dropped (its capture buffer was full): libpcap's count for a live
    capture, the interface statistics a pcapng file recorded for a file."""
    interface_dropped: int = 0
    """Packets the network interface or its driver dropped, where it tells."""
    truncated_file: bool = False
    live: bool = False

    def as_dict(self) -> dict[str, int | bool]:
        return {
            "received": self.received,
            "dropped": self.dropped,
            "interface_dropped": self.interface_dropped,
            "truncated_file": self.truncated_file,
            "live": self.live,
        }


class PacketSource(Protocol):
    """What the engine reads: files, live interfaces, the packets a parent hands a worker."""

    name: str
    linktype: int
    stats: CaptureStats

    def __iter__(self) -> Iterator[Packet | None]: ...


class FileSource:
    """A pcap or pcapng file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.name = str(path)
        self.stats = CaptureStats()
        try:
            status = self.path.stat()
            if stat.S_ISFIFO(status.st_mode) or stat.S_ISSOCK(status.st_mode):
                # libpcap reopens the file by its name: what was read here is lost to it.
                raise CaptureError(
                    f"{path}: cannot read captures from a pipe; save it to a file first"
                )
            self.size = status.st_size
            with self.path.open("rb") as file:
                head = file.read(PCAP_FILE_HEADER)
                magic = head[:4]
                self.is_pcapng = magic == PCAPNG_MAGIC
                header_problem = (
                    _pcapng_header_problem(file, self.size)
                    if self.is_pcapng
                    else ("cut short" if self.size < PCAP_FILE_HEADER else None)
                )
        except FileNotFoundError:
            raise CaptureError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise CaptureError(f"{path}: is a directory, not a capture file") from None
        except PermissionError:
            raise CaptureError(f"{path}: permission denied (check the file's mode)") from None
        except OSError as error:
            raise CaptureError(f"{path}: cannot be read: {error.strerror or error}") from None
        if not magic:
            raise CaptureError(f"{path}: the file is empty")
        if magic not in PCAP_MAGICS and not self.is_pcapng:
            raise CaptureError(
                f"{path}: not a pcap or pcapng file (it starts with {magic.hex()}); "
                "write captures with tcpdump -w or tshark -w"
            )
        if header_problem is not None:
            raise CaptureError(
                f"{path}: the capture's file header is {header_problem}; "
                "copy or capture the file again"
            )
        try:
            self._handle = pcap.pcap(name=self.name, promisc=False)
        except OSError:
            # pypcap tries a file it cannot open as a live interface, and reports that
            # failure ("No such device exists"), not libpcap's reason.
            raise CaptureError(
                f"{path}: libpcap cannot read the capture's file header (damaged, or a format "
                "version it does not know); open the file in Wireshark to see what is wrong"
            ) from None
        self.linktype: int = self._handle.datalink()
        self._records: PcapRecords | None = None
        self._classic = classic_layout(head)
        """Whether the records are read here (:class:`PcapRecords`), little-endian, and the
        snapshot length; None: libpcap reads them all."""

    def __iter__(self) -> Iterator[Packet]:
        records = self.records()
        if records is None:
            return self._from_libpcap()
        return itertools.chain(records, self.after_records(records))

    def records(self) -> PcapRecords | None:
        """The file's records as :class:`PcapRecords` reads them, or None: libpcap reads them
        all (:meth:`after_records`). Either way the frames go on with :meth:`after_records`."""
        if self._classic is None:
            return None
        little_endian, snaplen = self._classic
        file = self.path.open("rb", buffering=0)  # PcapRecords reads in large blocks
        self._records = PcapRecords(file, little_endian, snaplen)
        return self._records

    def after_records(self, records: PcapRecords | None) -> Iterator[Packet]:
        """The frames libpcap reads once ``records`` ends: those after a record it leaves to
        libpcap; every frame of the file when ``records`` is None."""
        return self._from_libpcap() if records is None else self._libpcap_after(records)

    def _from_libpcap(self) -> Iterator[Packet]:
        # Straight from libpcap: a Python layer per packet would cost a tenth of the budget.
        # Not iter(handle): pypcap's __iter__ installs a C SIGINT handler of its own that only
        # flags the handle and stays after the file is read, from whichever thread read it, so
        # Ctrl-C would never again reach Python.
        return iter(self._handle.__next__, None)

    def _libpcap_after(self, records: PcapRecords) -> Iterator[Packet]:
        """What follows a record :class:`PcapRecords` leaves to libpcap, read by libpcap."""
        if not records.unusual:
            return
        for _ in range(records.records):
            self._handle.__next__()
        self._records = None
        yield from self._from_libpcap()

    @property
    def consumed(self) -> int:
        """Bytes of the file read so far (read ahead by stdio's buffer), for progress bars."""
        if self._records is not None:
            return self._records.consumed
        try:
            return os.lseek(self._handle.fileno(), 0, os.SEEK_CUR)
        except OSError:
            return 0

    def check_complete(self, frames: int, frame_bytes: int) -> None:
        """Called once the file is read: libpcap stops quietly at a record cut short, so compare
        what it returned with the file's size (classic pcap); pcapng blocks vary in size, but
        libpcap leaves its reason for stopping ("truncated pcapng dump file; ...")."""
        self.stats.received = frames
        if self.is_pcapng:
            self.stats.truncated_file = bool(self._handle.geterr())
            self.stats.dropped, self.stats.interface_dropped = _pcapng_drops(self.path)
        elif PCAP_FILE_HEADER + frames * PCAP_RECORD_HEADER + frame_bytes < self.size:
            self.stats.truncated_file = True


def _pcapng_header_problem(file: BinaryIO, size: int) -> str | None:
    """What is wrong with the blocks libpcap reads when it opens a pcapng file (the section
    header up to the first interface description), or None."""
    file.seek(0)
    head = file.read(_PCAPNG_MIN_BLOCK)
    if len(head) < _PCAPNG_MIN_BLOCK:
        return "cut short"
    order = {_PCAPNG_LITTLE_ENDIAN: "<", _PCAPNG_BIG_ENDIAN: ">"}.get(head[8:12])
    if order is None:
        return "damaged (no byte-order magic)"
    block_header = struct.Struct(order + "II")
    offset = 0
    while True:
        file.seek(offset)
        header = file.read(block_header.size)
        if len(header) < block_header.size:
            return "cut short"
        block_type, length = block_header.unpack(header)
        if length < _PCAPNG_MIN_BLOCK or length % 4:
            return f"damaged (a block of length {length})"
        if offset + length > size:
            return "cut short"
        if block_type == _PCAPNG_INTERFACE_BLOCK:
            return None
        if block_type in _PCAPNG_PACKET_BLOCKS:
            return "damaged (a packet comes before any interface description)"
        offset += length


_PCAPNG_STATISTICS_BLOCK = 5
_ISB_IFDROP = 5
"""Packets dropped between the interface and the capturing program (dumpcap writes the
kernel's count, libpcap's ps_drop, here)."""
_ISB_OSDROP = 7
"""Packets the operating system dropped."""
_ISB_FIXED = 12  # interface id, timestamp (high, low)


def _pcapng_drops(path: Path) -> tuple[int, int]:
    """The drops a pcapng file's interface statistics blocks recorded: ``(dropped by the
    capturing host, dropped by the interface)``, each the last count of every interface,
    summed. (0, 0) when the file records none (tcpdump's classic pcap never does)."""
    last: dict[int, tuple[int, int]] = {}
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        size = len(data)
        order = "<"
        block_header = _BLOCK_HEADERS[order].unpack_from
        offset = 0
        while offset + _PCAPNG_MIN_BLOCK <= size:
            block_type, length = block_header(data, offset)
            if block_type == _PCAPNG_SECTION_BLOCK:
                order = "<" if data[offset + 8 : offset + 12] == _PCAPNG_LITTLE_ENDIAN else ">"
                block_header = _BLOCK_HEADERS[order].unpack_from
                length = block_header(data, offset)[1]
            if length < _PCAPNG_MIN_BLOCK or offset + length > size:
                break
            if block_type == _PCAPNG_STATISTICS_BLOCK and length >= 8 + _ISB_FIXED + 4:
                interface = struct.unpack_from(order + "I", data, offset + 8)[0]
                last[interface] = _statistics_drops(
                    data, order, offset + 8 + _ISB_FIXED, offset + length - 4
                )
            offset += length
    return sum(host for host, _ in last.values()), sum(nic for _, nic in last.values())


def _statistics_drops(data: mmap.mmap, order: str, offset: int, end: int) -> tuple[int, int]:
    """The osdrop (else ifdrop) and ifdrop options of one interface statistics block."""
    options: dict[int, int] = {}
    while offset + 4 <= end:
        code, length = struct.unpack_from(order + "HH", data, offset)
        if code == 0:  # opt_endofopt
            break
        if length == 8 and offset + 12 <= end:
            options[code] = struct.unpack_from(order + "Q", data, offset + 4)[0]
        offset += 4 + (length + 3) // 4 * 4
    host = options.get(_ISB_OSDROP, options.get(_ISB_IFDROP, 0))
    return host, options.get(_ISB_IFDROP, 0) if _ISB_OSDROP in options else 0


LIVE_BUFFER_BYTES = 32 << 20
"""The kernel's capture buffer of each live interface, unless told otherwise."""


class LiveSource:
    """One or more live interfaces, read together.

    Not immediate by default: in immediate mode Linux's capture ring has one slot of snap-length
    size per packet (a few dozen slots in 8 MB at 256 KiB), so a moment's stall of the reader
    drops packets; otherwise packets are packed into blocks handed over at least every 50 ms,
    which is the latency a live view needs anyway.
    """

    def __init__(
        self,
        interfaces: Sequence[str],
        bpf_filter: str = "",
        snaplen: int = 262144,
        immediate: bool = False,
        buffer_size: int = LIVE_BUFFER_BYTES,
        promiscuous: bool = False,
    ) -> None:
        if not interfaces:
            raise CaptureError("no interface to capture on")
        self.name = ",".join(interfaces)
        self.stats = CaptureStats(live=True)
        self._handles: list[pcap.pcap] = []
        for interface in interfaces:
            try:
                handle = pcap.pcap(
                    name=interface,
                    snaplen=snaplen,
                    promisc=promiscuous,
                    immediate=immediate,
                    timeout_ms=50,
                    buffer_size=buffer_size,
                )
            except OSError as error:
                self.close()
                hint = (
                    " (live capture needs root or CAP_NET_RAW: run with sudo, or "
                    "setcap cap_net_raw,cap_net_admin=eip on the Python interpreter)"
                    if "ermission" in str(error)
                    else " (list interfaces with `ip link`)"
                )
                raise CaptureError(f"cannot capture on {interface}: {error}{hint}") from None
            if bpf_filter:
                try:
                    handle.setfilter(bpf_filter)
                except OSError as error:
                    self.close()
                    raise CaptureError(f"bad capture filter {bpf_filter!r}: {error}") from None
            handle.setnonblock(True)
            self._handles.append(handle)
        linktypes = {handle.datalink() for handle in self._handles}
        if len(linktypes) > 1:
            self.close()
            raise CaptureError(
                "the interfaces have different link types; capture them separately or use 'any'"
            )
        self.linktype = linktypes.pop()
        self._stopped = False

    def set_filter(self, bpf_filter: str) -> None:
        """Replace the capture filter (a tapper's targets changed)."""
        for handle in self._handles:
            handle.setfilter(bpf_filter)

    def stop(self) -> None:
        self._stopped = True

    def __iter__(self) -> Iterator[Packet | None]:
        by_fd = {handle.fileno(): handle for handle in self._handles}
        stats = self.stats
        while not self._stopped:
            ready, _, _ = select.select(list(by_fd), [], [], 0.5)
            if not ready:
                yield None
                continue
            for fd in ready:
                # One readpkts returns one buffer's worth; the ring may hold many more, and
                # select does not wake again for them: drain the handle.
                handle = by_fd[fd]
                while packets := handle.readpkts():
                    stats.received += len(packets)
                    yield from packets
            self._refresh_drops()
        if self._handles:
            self._refresh_drops()  # the summary's count is the one at the end

    def _refresh_drops(self) -> None:
        dropped = interface_dropped = 0
        for handle in self._handles:
            _received, handle_dropped, handle_if_dropped = handle.stats()
            dropped += handle_dropped
            interface_dropped += handle_if_dropped
        self.stats.dropped = dropped
        self.stats.interface_dropped = interface_dropped

    def close(self) -> None:
        for handle in self._handles:
            handle.close()
        self._handles = []
