"""How a tapper's entries reach a hub: over ``/wsTapper`` (:class:`TapperClient`), from a
node's tapper over TCP, or from local mode's tapper process over a Unix socket.

It takes entries from the capture thread (:meth:`Shipper.submit`, thread-safe), encoded as the
hub stores them (:func:`~mizu_server.store.encode_entry`: the hub need not decode them; the
tapper encodes each once, on the capture thread), into a bounded buffer, which a task on the
event loop hands over in frames (:func:`~mizu_server.frames.pack_within`), keeping the frames
the hub has not acknowledged (committed). :class:`TapperClient` sends them and on a lost
connection puts the unacknowledged ones back in front of the buffer to resend after
reconnecting; the hub drops what it already has by entry id. When an outage outlasts the
buffer, the oldest entries are shed and counted, so memory stays bounded. Raw packets (pcap
export) go in frames of their own, ``{"packets": [...]}``, best effort: the hub does not
acknowledge them and a lost connection loses those in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from mizu_core.pcapfile import ConnectionPackets
from mizu_server.frames import MAX_FRAME_BYTES, pack_packets, pack_within
from mizu_server.store import EncodedEntry, encode_entry

log = logging.getLogger(__name__)

REPORT_SECONDS = 1.0
"""Seconds between a tapper's reports to the hub (its counters, the kernel's drops, its CPU)."""


def run_id_prefix(tapper_id: str) -> str:
    """What a tapper run's entry ids start with: its name and, in hex, the millisecond the run
    began. Connections are numbered from 1 again in every run and the hub drops entries whose
    id it has stored, so ids made of the name alone would have a restarted tapper's entries
    taken for its previous run's and dropped."""
    return f"{tapper_id}.{time.time_ns() // 1_000_000:x}"


@dataclass(slots=True)
class ClientStats:
    submitted: int = 0
    sent_frames: int = 0
    acked_entries: int = 0
    resent_entries: int = 0
    shed: int = 0
    """Entries dropped, oldest first, because the buffer was full."""
    connects: int = 0
    buffered: int = 0
    sent_packets: int = 0
    shed_packets: int = 0
    """Raw frames (pcap export) dropped: over their buffer, or lost with a connection."""
    too_big: int = 0
    """Entries dropped because alone they are over the hub's frame limit."""

    def as_dict(self) -> dict[str, int]:
        return {
            "submitted": self.submitted,
            "sentFrames": self.sent_frames,
            "ackedEntries": self.acked_entries,
            "resentEntries": self.resent_entries,
            "shed": self.shed,
            "connects": self.connects,
            "buffered": self.buffered,
            "sentPackets": self.sent_packets,
            "shedPackets": self.shed_packets,
            "tooBig": self.too_big,
        }


class Shipper:
    """Hands a tapper's entries to one hub; subclasses say how (:meth:`_run`).

    ``max_buffered`` bounds the entries held (waiting plus sent but unacknowledged): at a few
    hundred entries a second, the default covers minutes of hub outage. ``window`` frames may
    await their ack: the hub commits the frames that arrive while it writes in one transaction,
    and the fewer, larger transactions a wider window allows rewrite fewer index pages per
    entry.
    """

    def __init__(
        self,
        tapper_id: str,
        max_buffered: int = 100_000,
        frame_entries: int = 500,
        window: int = 16,
        retry_delay: float = 0.2,
        max_retry_delay: float = 5.0,
        max_packet_bytes: int = 32 << 20,
    ) -> None:
        self.tapper_id = tapper_id
        self.max_buffered = max_buffered
        self.frame_entries = frame_entries
        self.window = window
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.max_packet_bytes = max_packet_bytes
        self.stats = ClientStats()
        self.connected = False
        self._lock = threading.Lock()
        self._waiting: deque[EncodedEntry] = deque()
        self._unacked: deque[list[EncodedEntry]] = deque()
        self._packets: deque[ConnectionPackets] = deque()
        self._packet_bytes = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.capture_stats: Callable[[], dict[str, int]] | None = None
        """What the capture counted (the kernel's drops...), sent with each report."""
        self.plugin_counters: Callable[[], dict[str, dict[str, int]]] | None = None
        """What each plugin counted (pairs, unpaired messages by reason, resyncs...), sent
        with each report."""
        self.runtime_report: Callable[[], dict[str, Any]] | None = None
        """What the tapper runtime says of itself (redaction, entries of ignored user agents,
        pcap export), sent with each report."""
        self.on_message: Callable[[dict[str, Any]], None] | None = None
        """Called on the event loop with each message of the hub that is not an ack (in a
        cluster: ``{"type": "targets", "ips": [...]}``)."""

    # -- any thread ----------------------------------------------------------------------------

    def submit(self, entry: Mapping[str, Any]) -> None:
        """Queue one entry to send (from any thread)."""
        self.submit_encoded(encode_entry(entry))

    def submit_encoded(self, encoded: EncodedEntry) -> None:
        """Queue one entry encoded for the store (:func:`~mizu_server.store.encode_entry`), as
        it is sent (from any thread)."""
        with self._lock:
            self.stats.submitted += 1
            self._waiting.append(encoded)
            # frames in flight hold window * frame_entries entries at most: below that, no
            # entry is in excess and their sizes need not be added up for every entry
            if len(self._waiting) + self.window * self.frame_entries > self.max_buffered:
                self._shed_excess()
            first = len(self._waiting) == 1
        if first and self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def submit_packets(self, batches: list[ConnectionPackets]) -> None:
        """Queue raw packets to send (pcap export; from any thread). Best effort: beyond
        ``max_packet_bytes`` waiting, the oldest are dropped and counted."""
        if not batches:
            return
        with self._lock:
            for batch in batches:
                self._packets.append(batch)
                self._packet_bytes += sum(len(frame) for _, frame in batch.frames)
            while self._packet_bytes > self.max_packet_bytes and self._packets:
                dropped = self._packets.popleft()
                self._packet_bytes -= sum(len(frame) for _, frame in dropped.frames)
                self.stats.shed_packets += len(dropped.frames)
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def _take_packets(self) -> list[ConnectionPackets]:
        with self._lock:
            taken = list(self._packets)
            self._packets.clear()
            self._packet_bytes = 0
        return taken

    def buffered(self) -> int:
        with self._lock:
            return len(self._waiting) + sum(len(frame) for frame in self._unacked)

    def _shed_excess(self) -> None:
        excess = len(self._waiting) + sum(len(f) for f in self._unacked) - self.max_buffered
        if excess <= 0:
            return
        if not self.stats.shed:
            log.warning("the hub is not keeping up or unreachable: shedding the oldest entries")
        while excess > 0 and self._waiting:
            self._waiting.popleft()
            self.stats.shed += 1
            excess -= 1

    # -- event loop ----------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._wake.set()
        self._task = asyncio.create_task(self._run(), name=f"mizu-tapper-{self.tapper_id}")
        return self._task

    async def flush(self, timeout: float) -> bool:
        """Wait until everything submitted is acknowledged; False if ``timeout`` ran out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.buffered():
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _requeue_unacked(self) -> None:
        """Put sent-but-unacknowledged entries back in front, oldest first."""
        with self._lock:
            resent = 0
            while self._unacked:
                frame = self._unacked.pop()
                self._waiting.extendleft(reversed(frame))
                resent += len(frame)
            self.stats.resent_entries += resent
            self._shed_excess()

    def _frame_ready(self) -> bool:
        """Whether a frame may go now (called holding the lock)."""
        return bool(self._waiting) and len(self._unacked) < self.window

    def _packed(self, frame: list[EncodedEntry]) -> list[bytes]:
        """``frame`` (the last one taken) packed within the hub's frame limit: one frame as a
        rule, several when its entries are large (they then await their acks as frames of their
        own); an entry too large for any frame is dropped and counted."""
        parts, too_big = pack_within(frame)
        if len(parts) != 1 or too_big:
            with self._lock:
                assert self._unacked and self._unacked[-1] is frame
                self._unacked.pop()
                self._unacked.extend(list(entries) for entries, _ in parts)
                self.stats.too_big += len(too_big)
            if too_big:
                log.warning(
                    "%d entries over the hub's %d MiB frame limit were dropped",
                    len(too_big),
                    MAX_FRAME_BYTES >> 20,
                )
        return [packed for _, packed in parts]

    def _next_frame(self) -> list[EncodedEntry] | None:
        with self._lock:
            if not self._frame_ready():
                return None
            count = min(self.frame_entries, len(self._waiting))
            frame = [self._waiting.popleft() for _ in range(count)]
            self._unacked.append(frame)
            self.stats.buffered = len(self._waiting)
            return frame

    async def _wait_for_work(
        self, receiver: asyncio.Task[None] | None = None, timeout: float | None = None
    ) -> None:
        """Until there is something to hand over (or ``receiver`` ends, or ``timeout``)."""
        assert self._wake is not None
        self._wake.clear()
        if self._next_ready():
            return
        waiter = asyncio.create_task(self._wake.wait())
        waited = {waiter} if receiver is None else {waiter, receiver}
        await asyncio.wait(waited, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()

    def _next_ready(self) -> bool:
        with self._lock:
            return bool(self._packets) or self._frame_ready()

    def _acknowledged(self, frames: int) -> None:
        """The hub committed the ``frames`` oldest frames in flight."""
        with self._lock:
            for _ in range(frames):
                if not self._unacked:
                    break
                self.stats.acked_entries += len(self._unacked.popleft())
        if self._wake is not None:
            self._wake.set()

    async def _run(self) -> None:
        raise NotImplementedError


class TapperClient(Shipper):
    """Sends entries to a hub over its ``/wsTapper``: a node's tapper, or local mode's tapper
    process (over ``unix_socket``, a private channel the capture does not see)."""

    def __init__(
        self, url: str, token: str, tapper_id: str, unix_socket: str | None = None, **limits: Any
    ) -> None:
        super().__init__(tapper_id, **limits)
        self.url = url
        self.token = token
        self.unix_socket = unix_socket
        self._socket: aiohttp.ClientWebSocketResponse | None = None

    async def stop(self) -> None:
        """Stop, with a last report first: the hub's status keeps this tapper's final figures
        (the kernel's drops above all) once it is gone."""
        socket = self._socket
        if socket is not None and not socket.closed:
            with contextlib.suppress(aiohttp.ClientError, OSError, ConnectionError):
                await self._report(socket)
        await super().stop()

    async def _run(self) -> None:
        delay = self.retry_delay
        headers = {"Authorization": f"Bearer {self.token}"}
        connector = aiohttp.UnixConnector(self.unix_socket) if self.unix_socket else None
        async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
            while not self._stopping:
                try:
                    async with session.ws_connect(
                        self.url, params={"tapper": self.tapper_id}, heartbeat=30
                    ) as socket:
                        self.connected = True
                        self.stats.connects += 1
                        delay = self.retry_delay
                        await self._session(socket)
                except aiohttp.WSServerHandshakeError as error:
                    if error.status == 401:
                        log.error("the hub refused this tapper's token")
                    else:
                        log.warning("hub handshake failed: %s", error)
                except (TimeoutError, aiohttp.ClientError, OSError) as error:
                    log.debug("hub connection lost: %s", error)
                finally:
                    self.connected = False
                    self._requeue_unacked()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry_delay)

    async def _session(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        receiver = asyncio.create_task(self._receive_acks(socket))
        self._socket = socket
        await self._report(socket)
        reported = time.monotonic()
        try:
            while not socket.closed and not receiver.done():
                if time.monotonic() - reported >= REPORT_SECONDS:
                    await self._report(socket)
                    reported = time.monotonic()
                packets = self._take_packets()
                if packets:
                    for message in pack_packets(batch.to_json() for batch in packets):
                        await socket.send_bytes(message)
                    self.stats.sent_packets += sum(len(batch.frames) for batch in packets)
                frame = self._next_frame()
                if frame is None:
                    await self._wait_for_work(receiver, timeout=REPORT_SECONDS)
                    continue
                for packed in self._packed(frame):
                    await socket.send_bytes(packed)
                    self.stats.sent_frames += 1
        finally:
            self._socket = None
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receiver

    async def _receive_acks(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        acked_frames = 0
        async for message in socket:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            body = json.loads(message.data)
            ack = body.get("ack")
            if not isinstance(ack, int):
                if self.on_message is not None:
                    self.on_message(body)
                continue
            if ack > acked_frames:
                self._acknowledged(ack - acked_frames)
                acked_frames = ack

    async def _report(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.stats.buffered = self.buffered()
        report: dict[str, Any] = {"type": "stats", **self.stats.as_dict()}
        if self.capture_stats is not None:
            report["capture"] = self.capture_stats()
        if self.plugin_counters is not None:
            report["plugins"] = self.plugin_counters()
        if self.runtime_report is not None:
            report.update(self.runtime_report())
        # what the tapper costs its node: the CPU of its whole process, every thread
        report["cpuSeconds"] = round(time.process_time(), 3)
        await socket.send_str(json.dumps(report))
