"""The tapper runtime: what captures on a node (or on this machine) and ships to a hub.

The hub never imports this module: it runs without capture privileges.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from mizu_core.capture import CaptureError, FileSource, LiveSource, Packet
from mizu_core.pcap_export import PacketKeeper
from mizu_core.pcapfile import PcapWriter
from mizu_core.redact import DEFAULT_PATTERNS, Redactor

PACKET_SHIPPING_INTERVAL = 0.5
"""Seconds between shipments of kept raw packets to the hub (pcap export)."""


def redactor_for(setting: bool | Sequence[str]) -> Redactor | None:
    """``tap.redact``: false is no redaction; true or a list, the default names and those."""
    if setting is False:
        return None
    return Redactor((*DEFAULT_PATTERNS, *([] if setting is True else setting)))


class RecordingLiveSource(LiveSource):
    """A live source that also writes every packet it reads to a pcap file (``-w``) and/or
    keeps them per connection for ``/pcap`` (``--pcap-export``)."""

    def __init__(
        self,
        interfaces: Sequence[str],
        bpf_filter: str,
        path: Path | None,
        keep_packets: bool = False,
    ) -> None:
        super().__init__(interfaces, bpf_filter)
        try:
            self._file = path.open("wb") if path is not None else None
        except OSError as error:
            super().close()
            raise CaptureError(
                f"cannot write -w {path}: {error.strerror or error}; pick another file with -w"
            ) from None
        self.keeper = PacketKeeper(self.linktype) if keep_packets else None
        self._writer = PcapWriter(self._file, self.linktype) if self._file is not None else None

    def __iter__(self) -> Iterator[Packet | None]:
        write = self._writer.write if self._writer is not None else None
        keep = self.keeper.record if self.keeper is not None else None
        for packet in super().__iter__():
            if packet is not None:
                if write is not None:
                    write(packet[0], packet[1])
                if keep is not None:
                    keep(packet[0], packet[1])
            yield packet

    def close(self) -> None:
        super().close()
        if self._file is not None and not self._file.closed:
            self._file.close()


class KeepingFileSource(FileSource):
    """A capture file replayed with its packets kept per connection (``--pcap-export``)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.keeper = PacketKeeper(self.linktype)

    def __iter__(self) -> Iterator[Packet]:
        return self.keeper.wrap(super().__iter__())
