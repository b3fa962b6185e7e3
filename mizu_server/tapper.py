"""The tapper runtime: capture on a thread, entries filtered and redacted, shipped to a hub.

One runtime for every way Mizu captures, shipping over the hub's ``/wsTapper``: a node's tapper
in a cluster (``mizu tapper``), and the tapper process of ``mizu tap --local`` and ``mizu tap
--pcap`` (over a Unix socket to the hub, its parent). Entries of ignored user agents are
dropped and secrets redacted here, before anything leaves the tapper; with pcap export the raw
packets are kept per connection and shipped too.

The hub never imports this module: it runs without capture privileges.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any

from mizu_core.capture import (
    LIVE_BUFFER_BYTES,
    CaptureError,
    FileSource,
    LiveSource,
    Packet,
    PacketSource,
)
from mizu_core.engine import Engine, EngineSettings
from mizu_core.pcap_export import KeeperStats, PacketKeeper
from mizu_core.pcapfile import PcapWriter
from mizu_core.plugins import PluginManager
from mizu_core.redact import DEFAULT_PATTERNS, Redactor, UserAgentFilter
from mizu_core.watchdog import BUSY_SECONDS, EngineStopped
from mizu_server.resolver import fill_names
from mizu_server.store import encode_entry
from mizu_server.tapper_client import Shipper, run_id_prefix

log = logging.getLogger(__name__)

PACKET_SHIPPING_INTERVAL = 0.5
"""Seconds between shipments of kept raw packets to the hub (pcap export)."""
FLUSH_SECONDS = 5.0
"""How long a stopping tapper waits for the hub to acknowledge what it still holds."""
STOP_GRACE = 1.0
"""Seconds a stopping capture thread gets to end by itself before it is interrupted."""
STOP_INTERRUPTED = 2.0
"""Seconds it then gets to end: a plugin that swallows the interruption is left behind."""
CAPTURE_NOTHING = "less 1"
"""A capture filter that no packet passes (libpcap refuses contradictions such as
``ip and not ip``): a targeted tapper's filter before the hub has named any target."""

EntryWriter = Callable[[dict[str, Any], bytes], None]


class Tapper:
    """Capture (a thread) → engine → user agents dropped, secrets redacted → ``shipper``.

    ``also`` sees every entry shipped, with the data it was stored as (its JSON, or msgpack
    when JSON cannot hold it), on the capture thread (local mode prints them); it handles its
    own errors."""

    def __init__(
        self,
        plugins: PluginManager,
        shipper: Shipper,
        tapper_id: str,
        redactor: Redactor | None = None,
        ignored: UserAgentFilter | None = None,
        also: EntryWriter | None = None,
        pcap_export: bool = False,
    ) -> None:
        self.plugins = plugins
        self.shipper = shipper
        self.redactor = redactor
        self.ignored = ignored or UserAgentFilter(())
        self.also = also
        self.pcap_export = pcap_export
        self.ignored_entries = 0
        self.keepers: list[PacketKeeper] = []
        """Packet keepers of the sources read so far (pcap export)."""
        self.engine = Engine(plugins, self.emit, EngineSettings(tapper_id=run_id_prefix(tapper_id)))
        self.capture_error: str | None = None
        self._stopping = False
        self._sources: Sequence[PacketSource] = ()
        self.names: dict[str, list[str]] = {}
        """IP → ``["name.namespace", namespace]``, as the hub last sent it (in a cluster)."""
        self._targeted: LiveSource | None = None
        shipper.capture_stats = self.capture_counts
        shipper.plugin_counters = self.plugin_counters
        shipper.runtime_report = self.runtime_report
        self._base_filter = ""
        self._target_ips: list[str] = []
        shipper.on_message = self._hub_message

    def emit(self, entry: dict[str, Any]) -> None:
        """The engine's sink, on the capture thread."""
        if self.ignored.ignores(entry):
            self.ignored_entries += 1
            return
        names = self.names
        if names:
            fill_names(entry, names.get)
        if self.redactor is not None:
            entry = self.redactor(entry)
        encoded = encode_entry(entry)
        self.shipper.submit_encoded(encoded)
        if self.also is not None:
            self.also(entry, encoded[-1])

    # -- capturing -----------------------------------------------------------------------------

    def capture(self, sources: Sequence[PacketSource]) -> bool:
        """Read the sources one after the other, each a capture of its own (a live source
        until it is stopped); True once every one was read to its end."""
        try:
            for source in sources:
                if self._stopping:
                    return False
                keeper = getattr(source, "keeper", None)
                if isinstance(keeper, PacketKeeper):
                    self.keepers.append(keeper)
                self.engine.run(source)
                self.engine.finish()
        except EngineStopped:
            return False
        except (CaptureError, OSError) as error:
            self.capture_error = str(error)
            log.error("capture stopped: %s", error)
            return False
        return not any(isinstance(source, LiveSource) for source in sources)

    def stop_capture(self, sources: Sequence[PacketSource], thread: threading.Thread) -> None:
        """End the capture thread: live sources stop; a thread still busy after
        :data:`STOP_GRACE` (a replay, a plugin stuck on its input) is interrupted, and the
        plugin it was in named; one that does not end even then is left behind."""
        self._stopping = True
        for source in sources:
            if isinstance(source, LiveSource):
                source.stop()
        thread.join(STOP_GRACE)
        if not thread.is_alive():
            return
        stuck = self.engine.watchdog.stop()
        if stuck is not None and stuck.seconds >= BUSY_SECONDS:
            log.warning("stopping: %s; interrupted", stuck.busy())
        thread.join(STOP_INTERRUPTED)
        if thread.is_alive():
            culprit = f"plugin {stuck.plugin}" if stuck is not None else "the capture"
            log.error("stopping: %s does not let go; leaving it behind", culprit)

    def follow_targets(self, source: LiveSource, base_filter: str) -> None:
        """Capture only the target IPs the hub sends (in a cluster: the pods on this node),
        within ``base_filter``; nothing until the hub has named them."""
        self._base_filter = base_filter
        self._targeted = source
        source.set_filter(target_filter(base_filter, []))

    def _hub_message(self, message: dict[str, Any]) -> None:
        """What the hub sends on the event loop: the name table, the targets."""
        kind = message.get("type")
        if kind == "names" and isinstance(message.get("names"), dict):
            # replaced whole: the capture thread reads one table or the other, never a mix
            self.names = {
                str(ip): [str(part) for part in shown]
                for ip, shown in message["names"].items()
                if isinstance(shown, list) and len(shown) == 2
            }
        elif kind == "targets" and self._targeted is not None:
            ips = sorted(str(ip) for ip in message.get("ips") or [])
            if ips != self._target_ips:
                self._target_ips = ips
                self._targeted.set_filter(target_filter(self._base_filter, ips))
                log.info("capturing %d target IPs", len(ips))

    # -- shipping ------------------------------------------------------------------------------

    def ship_packets(self) -> None:
        for keeper in self.keepers:
            self.shipper.submit_packets(keeper.take())

    async def run(
        self,
        sources: Sequence[PacketSource],
        stop: asyncio.Event,
        when_read: Callable[[], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        """Capture from ``sources`` on a thread and ship until ``stop`` is set (live sources
        are stopped then); ``when_read`` runs on the loop once every source was read whole.
        What the hub has not acknowledged when it stops gets :data:`FLUSH_SECONDS` more."""
        loop = asyncio.get_running_loop()
        self.shipper.start()

        def capture() -> None:
            with contextlib.suppress(EngineStopped):  # a stop that came as it ended
                if self.capture(sources) and when_read is not None:
                    asyncio.run_coroutine_threadsafe(when_read(), loop)

        thread = threading.Thread(target=capture, name="mizu-capture", daemon=True)
        thread.start()
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), PACKET_SHIPPING_INTERVAL)
                self.ship_packets()
        finally:
            await asyncio.to_thread(self.stop_capture, sources, thread)
            self.ship_packets()
            await self.shipper.flush(timeout=FLUSH_SECONDS)
            await self.shipper.stop()
            if self.ignored_entries:
                log.info("dropped %d entries of ignored user agents", self.ignored_entries)

    def capture_counts(self) -> dict[str, int]:
        """Packets captured and dropped before Mizu saw them (the kernel's capture buffer was
        full, or the interface dropped them), and what was captured (interfaces, files): what a
        hub's status shows of every tapper."""
        sources = self.engine.stats()["capture"]
        return {
            "sources": [source["source"] for source in sources],
            "packets": sum(source["received"] for source in sources),
            "kernelDropped": sum(source["dropped"] for source in sources),
            "interfaceDropped": sum(source["interface_dropped"] for source in sources),
        }

    def plugin_counters(self) -> dict[str, dict[str, int]]:
        """Each plugin's counters: entries paired, left unpaired by reason (``unpaired.gap``
        ...), resyncs, bytes skipped and the plugin's own."""
        return {
            name: dict(counters)
            for name, counters in self.engine.dispatcher.plugin_counters.items()
        }

    def runtime_report(self) -> dict[str, Any]:
        """What the hub's status shows of this tapper beside its capture and plugin counts."""
        return {
            "ignoredUserAgents": self.ignored_entries,
            "redaction": self.redactor is not None,
            "pcapExport": {
                "enabled": self.pcap_export,
                **{
                    name: sum(keeper.stats.as_dict()[name] for keeper in self.keepers)
                    for name in KeeperStats().as_dict()
                },
            },
        }


def target_filter(base: str, ips: Sequence[str]) -> str:
    """The capture filter of a targeted tapper: ``base`` narrowed to the targets' traffic."""
    if not ips:
        return CAPTURE_NOTHING
    hosts = " or ".join(f"host {ip}" for ip in ips)
    return f"({base}) and ({hosts})" if base else hosts


def redactor_for(setting: bool | Sequence[str], plugins: PluginManager) -> Redactor | None:
    """``tap.redact``: false is no redaction; true or a list, the default names and those
    (and the fields the plugins declared secret)."""
    if setting is False:
        return None
    return Redactor(
        (*DEFAULT_PATTERNS, *([] if setting is True else setting)), plugins.declared_protocols()
    )


class RecordingLiveSource(LiveSource):
    """A live source that also writes every packet it reads to a pcap file (``-w``) and/or
    keeps them per connection for ``/pcap`` (``--pcap-export``)."""

    def __init__(
        self,
        interfaces: Sequence[str],
        bpf_filter: str,
        path: Path | None,
        keep_packets: bool = False,
        buffer_size: int = LIVE_BUFFER_BYTES,
    ) -> None:
        super().__init__(interfaces, bpf_filter, buffer_size=buffer_size)
        try:
            self._file = path.open("wb") if path is not None else None
        except OSError as error:
            super().close()
            raise CaptureError(
                f"cannot write -w {path}: {error.strerror or error}; pick another file with -w"
            ) from None
        self.keeper = PacketKeeper(self.linktype) if keep_packets else None
        self._writer = PcapWriter(self._file, self.linktype) if self._file is not None else None
        if self._file is not None:
            # the file's header out of the buffer now: local mode's tapper process is a fork
            # of this one, and a buffer both processes hold would be written twice
            self._file.flush()

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
