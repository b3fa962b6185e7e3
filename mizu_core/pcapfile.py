"""Capture files written: classic pcap, the one writer of ``-w``, ``GET /pcap`` and tests;
classic pcap files read (the common case of ``mizu dissect``); and the names of TCP
connections by which the hub finds the packets of entries."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any, Final

from mizu_core.decode import LINKTYPE_RAW, network_offset

Frame = tuple[float, bytes]
PCAP_SNAPLEN = 262144
_PCAP_HEADER = struct.Struct("<IHHiIII")
"""A classic pcap file's header: magic, version (major, minor), time zone, timestamp accuracy,
snapshot length, link type."""
_PCAP_HEADER_BIG_ENDIAN = struct.Struct(">" + _PCAP_HEADER.format[1:])
PCAP_FILE_HEADER: Final = _PCAP_HEADER.size
_PCAP_RECORD = struct.Struct("<IIII")
"""A record's header: seconds, microseconds, captured length, original length."""
PCAP_RECORD_HEADER: Final = _PCAP_RECORD.size
_PCAP_MAGIC = 0xA1B2C3D4
_MICROSECONDS_MAGICS: Final = {b"\xd4\xc3\xb2\xa1": True, b"\xa1\xb2\xc3\xd4": False}
"""The magics of classic pcap with microsecond timestamps, and whether the file is
little-endian."""
_READ_SIZE: Final = 1 << 20


def connection_key(ip_a: str, port_a: int, ip_b: str, port_b: int) -> str:
    """The same text for both directions of one TCP connection."""
    first, second = sorted(((ip_a, int(port_a)), (ip_b, int(port_b))))
    return f"{first[0]}|{first[1]}|{second[0]}|{second[1]}"


def entry_connection_key(entry: Mapping[str, Any]) -> str | None:
    """The connection an entry came from, or None when its endpoints are incomplete."""
    src, dst = entry.get("src"), entry.get("dst")
    if not isinstance(src, Mapping) or not isinstance(dst, Mapping):
        return None
    try:
        return connection_key(str(src["ip"]), int(src["port"]), str(dst["ip"]), int(dst["port"]))
    except (KeyError, TypeError, ValueError):
        return None


@dataclass(slots=True)
class ConnectionPackets:
    """Frames of one connection, ready to ship."""

    key: str
    linktype: int
    frames: list[Frame]

    def to_json(self) -> dict[str, Any]:
        return {"connection": self.key, "linktype": self.linktype, "frames": self.frames}


class PcapWriter:
    """A classic pcap file (microsecond timestamps) written packet by packet."""

    def __init__(self, stream: IO[bytes], linktype: int, snaplen: int = PCAP_SNAPLEN) -> None:
        self.stream = stream
        self.count = 0
        stream.write(_PCAP_HEADER.pack(_PCAP_MAGIC, 2, 4, 0, 0, snaplen, linktype))

    def write(self, timestamp: float, frame: bytes) -> None:
        seconds = int(timestamp)
        micros = min(round((timestamp - seconds) * 1_000_000), 999_999)
        self.stream.write(_PCAP_RECORD.pack(seconds, micros, len(frame), len(frame)))
        self.stream.write(frame)
        self.count += 1


def write_pcap(stream: IO[bytes], linktype: int, frames: Iterable[Frame]) -> int:
    """A classic pcap file of ``frames``; returns how many."""
    writer = PcapWriter(stream, linktype)
    for timestamp, frame in frames:
        writer.write(timestamp, frame)
    return writer.count


def write_capture(stream: IO[bytes], packets: Iterable[tuple[int, float, bytes]]) -> int:
    """``(linktype, timestamp, frame)`` packets as one classic pcap file; returns how many.
    Packets of one link type are written as they are. Of several (captures of an Ethernet
    device and of loopback, say), the frames are cut to their IP packets under link type RAW:
    a file holds one link type, and libpcap reads pcapng only when all its interfaces share
    theirs. Frames that carry no IP are left out then."""
    packets = list(packets)
    linktypes = {linktype for linktype, _, _ in packets}
    if len(linktypes) == 1:
        return write_pcap(stream, linktypes.pop(), ((time, frame) for _, time, frame in packets))
    return write_pcap(stream, LINKTYPE_RAW, _ip_packets(packets))


def _ip_packets(packets: Iterable[tuple[int, float, bytes]]) -> Iterator[Frame]:
    for linktype, time, frame in packets:
        try:
            offset = network_offset(linktype, frame)
        except (IndexError, struct.error):
            continue
        if offset >= 0:
            yield time, frame[offset:]


def classic_layout(head: bytes) -> tuple[bool, int] | None:
    """Of a classic pcap file's header: whether :class:`PcapRecords` reads its records (version
    2.4, microsecond timestamps), little-endian, and its snapshot length; None when not."""
    little_endian = _MICROSECONDS_MAGICS.get(head[:4])
    if little_endian is None or len(head) < PCAP_FILE_HEADER:
        return None
    header = _PCAP_HEADER if little_endian else _PCAP_HEADER_BIG_ENDIAN
    _, major, minor, _, _, snaplen, _ = header.unpack_from(head)
    return (little_endian, snaplen) if (major, minor) == (2, 4) else None


class PcapRecords:
    """The frames of a classic pcap file (version 2.4, microsecond timestamps) as libpcap
    returns them, ``(timestamp, frame)``, read here: compiled, about 1,000 instructions a
    packet where libpcap's reading through pypcap's iterator took about 1,450.

    It stops at a record cut short (the file ends), as libpcap does, and at the first record
    libpcap would read its own way (one longer than the snapshot length): :attr:`unusual`
    then says so, and the caller leaves the rest of the file to libpcap.

    Iterated, it yields every frame as ``bytes``. A reader that needs only some of the frames
    steps through the records with :meth:`next_record` and reads the others where they lie, in
    :attr:`buffer` (a worker process routes every packet by a few header bytes, and makes
    ``bytes`` of its own packets only)."""

    def __init__(self, file: IO[bytes], little_endian: bool, snaplen: int) -> None:
        self.file = file
        self.little_endian = little_endian
        # libpcap takes a snapshot length beyond its maximum as its maximum, and reads
        # frames beyond the snapshot length cut to it
        self.longest = snaplen if 0 < snaplen < PCAP_SNAPLEN else PCAP_SNAPLEN
        self.records = 0
        self.consumed = PCAP_FILE_HEADER
        """Bytes of the file read as records so far."""
        self.unusual = False
        self.buffer = b""
        """Read from the file: the current record's frame is ``buffer[start:end]``."""
        self.header = 0
        """Where the current record's header starts in :attr:`buffer`."""
        self.start = 0
        self.end = 0

    def __iter__(self) -> Iterator[Frame]:
        try:
            while self.next_record():
                yield self.timestamp(), self.buffer[self.start : self.end]
        finally:
            self.file.close()

    def next_record(self) -> bool:
        """Step to the next record; False at the end of what is read here (the file closes
        when the records are iterated, or by :meth:`close`)."""
        buffer = self.buffer
        at = self.end
        little = self.little_endian
        if at + PCAP_RECORD_HEADER > len(buffer):
            buffer = self.buffer = self._read_from(self.consumed, PCAP_RECORD_HEADER)
            at = 0
            if len(buffer) < PCAP_RECORD_HEADER:
                return False
        captured = _u32(buffer, at + 8, little)
        if captured > self.longest:
            self.unusual = True
            return False
        start = at + PCAP_RECORD_HEADER
        end = start + captured
        if end > len(buffer):
            buffer = self.buffer = self._read_from(self.consumed, PCAP_RECORD_HEADER + captured)
            at = 0
            start = PCAP_RECORD_HEADER
            end = start + captured
            if end > len(buffer):
                return False
        self.header = at
        self.start = start
        self.end = end
        self.records += 1
        self.consumed += end - at
        return True

    def timestamp(self) -> float:
        """The current record's time: the float pypcap makes of libpcap's timeval, to the bit.
        Read when asked: a worker process needs the time of its own packets only."""
        buffer = self.buffer
        at = self.header
        little = self.little_endian
        return _u32(buffer, at, little) + _u32(buffer, at + 4, little) / 1_000_000

    def close(self) -> None:
        self.file.close()

    def _read_from(self, position: int, needed: int) -> bytes:
        """The file's bytes from ``position``, at least ``needed`` of them unless the file ends
        before. The bytes of the record cut by the previous read are read again, not joined to
        the next read's: that would copy every read once more."""
        self.file.seek(position)
        data = self.file.read(max(needed, _READ_SIZE))
        while len(data) < needed:  # a short read, or the end of the file
            more = self.file.read(needed - len(data))
            if not more:
                break
            data += more
        return data


def _u32(data: bytes, at: int, little_endian: bool) -> int:
    """An unsigned 32-bit field, read by indexing: in the compiled build that is machine
    integers, where struct makes a tuple of Python objects."""
    if little_endian:
        return data[at] | data[at + 1] << 8 | data[at + 2] << 16 | data[at + 3] << 24
    return data[at] << 24 | data[at + 1] << 16 | data[at + 2] << 8 | data[at + 3]
