"""Dissecting capture files on several cores: whole TCP connections sharded over workers.

The parent reads the files, finds each packet's connection (its 4-tuple, either direction) and
hands whole connections to forked worker processes, each running the normal :class:`Engine`.
A new connection goes to the worker that was given the fewest bytes so far: deterministic for a
file, and balanced for a handful of big connections where a hash is not. Packets that are not
TCP, or cannot be decoded, go to worker 0 so that they are counted once.

Workers get batches of ``(global index, timestamp, frame)`` records. The timestamps travel as
the very floats the file source made, so entries are byte-identical to the one-process path;
the global index tells the parent where each output belongs. A worker answers each batch with
what it emitted while reading it, each item tagged with the index of the packet being read, and
with the connections it opened. The parent merges those streams by index (each stream is
sorted) only once every worker has answered up to that index, so the merged output does not
depend on timing: it is the same for every run with the same worker count.

Entry ids are those of the one-process path: the reassembler numbers connections in the order
of the packets that open them, and the parent, which sees every worker's openings in index
order, numbers them again the same way before writing each entry.
"""

from __future__ import annotations

import contextlib
import fcntl
import heapq
import logging
import operator
import os
import pickle
import signal
import struct
import sys
import threading
import traceback
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from io import StringIO
from typing import IO, Any

import orjson

from mizu_core.capture import CaptureStats, FileSource
from mizu_core.decode import (
    IPPROTO_TCP,
    IPV6_FRAGMENT,
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_RAW,
    LINKTYPE_RAW_DLT,
    Decoder,
    ipv4_fragment_key,
    ipv6_fragment_key,
    network_offset,
    skip_ipv6_options,
)
from mizu_core.emit import encode_json_line
from mizu_core.engine import Engine, EngineSettings
from mizu_core.plugins import PluginManager
from mizu_core.query import Query
from mizu_core.redact import Redactor, redacting

AUTO_MIN_BYTES = 16 << 20
"""Below this much capture, one process: forking and merging cost more than a second core
gives back (measured: a 5 MB capture takes about as long either way)."""
AUTO_MAX_WORKERS = 8
"""Beyond this, the parent (which reads, routes and merges alone) is the bottleneck."""

ROUND_PACKETS = 4096
"""Every this many packets each worker gets what is waiting for it and the parent merges what
came back: the merge waits for the slowest worker, so this bounds what it holds."""
BATCH_BYTES = 256 << 10
PIPE_BYTES = 1 << 20
FLOW_GENERATION = 600.0
"""Seconds of capture time a connection's route is kept after its last packet (two
generations of this long): longer than the reassembler keeps an idle connection (300 s)."""
MAX_HELD_DATAGRAMS = 1024
MAX_HELD_BYTES = 16 << 20
MAX_FRAGMENT_ROUTES = 4096

_RECORDS = "P"
_FILE_START = "F"
_FILE_END = "E"
_MESSAGE = struct.Struct("<cIQ")  # kind, payload length, argument (packets; link type; index)
_REPLY = struct.Struct("<I")

# Where the IPv4 header starts and where the link layer says "IPv4" (-1: nowhere to check), for
# the link types whose common packets the router reads without the general decoder.
_FAST_LAYOUTS = {
    LINKTYPE_ETHERNET: (14, 12),
    LINKTYPE_LINUX_SLL: (16, 14),
    LINKTYPE_LINUX_SLL2: (20, 0),
    LINKTYPE_RAW: (0, -1),
    LINKTYPE_RAW_DLT: (0, -1),
    LINKTYPE_IPV4: (0, -1),
}


Item = tuple[int, int, int, int, str | None, bytes | str | None]
"""``(index, order, worker, connection, sequence, payload)``: a connection opened (no payload),
an output line (bytes; ``sequence`` set: the line after the entry's id) or a log record (str)."""


class WorkerFailed(Exception):
    """A worker process died or raised; the message says which and why."""


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0))


def auto_workers(total_bytes: int, cpus: int | None = None) -> int:
    """How many workers ``--workers auto`` means for ``total_bytes`` of capture."""
    cpus = usable_cpus() if cpus is None else cpus
    if cpus <= 1 or total_bytes < AUTO_MIN_BYTES:
        return 1
    return min(cpus, AUTO_MAX_WORKERS)


@dataclass(slots=True)
class ShardSettings:
    workers: int
    engine: EngineSettings
    output: str = "jsonl"
    """``jsonl``: entry lines; ``table``: the table's lines, rendered in the workers."""
    query: Query | None = None
    redact: bool = False


@dataclass(slots=True)
class RouterStats:
    flows: int = 0
    fragments_held: int = 0
    fragments_unrouted: int = 0
    """Fragments whose connection was not known in time (the hold was full): sent to worker 0,
    where the decoder counts them as dropped."""
    worker_bytes: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "flows": self.flows,
            "fragments_held": self.fragments_held,
            "fragments_unrouted": self.fragments_unrouted,
            "worker_bytes": list(self.worker_bytes),
        }


# -- the parent: routing -----------------------------------------------------------------------


class ConnectionRouter:
    """Which worker each packet goes to: every packet of a TCP connection to the same one."""

    def __init__(self, workers: int) -> None:
        self.stats = RouterStats(worker_bytes=[0] * workers)
        self.flows: dict[bytes, int] = {}
        self.old_flows: dict[bytes, int] = {}
        self.generation_end = -1.0
        self.fragment_routes: dict[tuple[bytes, ...], int] = {}
        self.held: dict[tuple[bytes, ...], list[tuple[int, float, bytes]]] = {}
        self.held_bytes = 0

    def flow(self, key: bytes, time: float) -> int:
        """The worker of the connection whose packet has ``key`` (addresses, then ports, of
        the sender first); a new connection goes to the least loaded worker."""
        worker = self.flows.get(key)
        if worker is not None:
            return worker
        worker = self.old_flows.get(key)
        if worker is None:
            loads = self.stats.worker_bytes
            worker = loads.index(min(loads))
            self.stats.flows += 1
        half = len(key) // 2 - 2
        reverse = key[half : 2 * half] + key[:half] + key[-2:] + key[-4:-2]
        self.flows[key] = self.flows[reverse] = worker
        return worker

    def rotate_if_due(self, time: float) -> None:
        """Forget the routes not used for a whole generation: the reassembler has ended those
        connections, and a later packet of the same 4-tuple makes a new one."""
        if self.generation_end < 0:
            self.generation_end = time + FLOW_GENERATION
        elif time >= self.generation_end:
            self.old_flows, self.flows = self.flows, {}
            self.generation_end = time + FLOW_GENERATION

    def route(
        self, linktype: int, index: int, time: float, frame: bytes
    ) -> list[tuple[int, int, float, bytes]]:
        """Where a packet the short path of :func:`_route_file` did not take goes:
        ``(worker, index, time, frame)`` for it and for the fragments it releases (none while
        it is a fragment held until its datagram's first fragment tells the connection)."""
        try:
            ip = network_offset(linktype, frame)
            if ip < 0:
                return [(0, index, time, frame)]
            version = frame[ip] >> 4
            if version == 4:
                return self._ipv4(frame, ip, index, time)
            if version == 6:
                return self._ipv6(frame, ip, index, time)
        except (IndexError, struct.error):
            pass
        return [(0, index, time, frame)]

    def _ipv4(
        self, frame: bytes, ip: int, index: int, time: float
    ) -> list[tuple[int, int, float, bytes]]:
        header_len = (frame[ip] & 0x0F) * 4
        if frame[ip + 9] != IPPROTO_TCP or header_len < 20:
            return [(0, index, time, frame)]
        flags_fragment = frame[ip + 6] << 8 | frame[ip + 7]
        tcp = ip + header_len
        if not flags_fragment & 0x3FFF:
            return [(self._flow_at(frame, ip + 12, 4, tcp, time), index, time, frame)]
        key = ipv4_fragment_key(frame, ip)
        if flags_fragment & 0x1FFF:
            return self._later_fragment(key, index, time, frame)
        return self._first_fragment(
            key, self._flow_at(frame, ip + 12, 4, tcp, time), index, time, frame
        )

    def _ipv6(
        self, frame: bytes, ip: int, index: int, time: float
    ) -> list[tuple[int, int, float, bytes]]:
        next_header, offset = skip_ipv6_options(frame, frame[ip + 6], ip + 40)
        if next_header == IPPROTO_TCP:
            return [(self._flow_at(frame, ip + 8, 16, offset, time), index, time, frame)]
        if next_header != IPV6_FRAGMENT:
            return [(0, index, time, frame)]
        key = ipv6_fragment_key(frame[ip + 8 : ip + 24], frame[ip + 24 : ip + 40], frame, offset)
        if (frame[offset + 2] << 8 | frame[offset + 3]) & 0xFFF8:
            return self._later_fragment(key, index, time, frame)
        next_header, tcp = skip_ipv6_options(frame, frame[offset], offset + 8)
        if next_header != IPPROTO_TCP:
            return [(0, index, time, frame)]
        return self._first_fragment(
            key, self._flow_at(frame, ip + 8, 16, tcp, time), index, time, frame
        )

    def _flow_at(self, frame: bytes, addresses: int, size: int, tcp: int, time: float) -> int:
        ports = frame[tcp : tcp + 4]
        if len(ports) < 4:
            raise IndexError("TCP header cut short")
        return self.flow(frame[addresses : addresses + 2 * size] + ports, time)

    def _first_fragment(
        self, key: tuple[bytes, ...], worker: int, index: int, time: float, frame: bytes
    ) -> list[tuple[int, int, float, bytes]]:
        if len(self.fragment_routes) >= MAX_FRAGMENT_ROUTES:
            del self.fragment_routes[next(iter(self.fragment_routes))]
        self.fragment_routes[key] = worker
        held = self.held.pop(key, [])
        self.held_bytes -= sum(len(held_frame) for _, _, held_frame in held)
        # Held fragments go now, in their capture order and before this one; they are tagged
        # with this packet's index so that each worker's indices stay in order.
        return [(worker, index, held_time, held_frame) for _, held_time, held_frame in held] + [
            (worker, index, time, frame)
        ]

    def _later_fragment(
        self, key: tuple[bytes, ...], index: int, time: float, frame: bytes
    ) -> list[tuple[int, int, float, bytes]]:
        worker = self.fragment_routes.get(key)
        if worker is not None:
            return [(worker, index, time, frame)]
        held = self.held.get(key)
        if held is None and len(self.held) >= MAX_HELD_DATAGRAMS:
            self.stats.fragments_unrouted += 1
            return [(0, index, time, frame)]
        if self.held_bytes + len(frame) > MAX_HELD_BYTES:
            self.stats.fragments_unrouted += 1
            return [(0, index, time, frame)]
        if held is None:
            held = self.held[key] = []
        held.append((index, time, frame))
        self.held_bytes += len(frame)
        self.stats.fragments_held += 1
        return []

    def release_held(self, index: int) -> list[tuple[int, int, float, bytes]]:
        """At the end of a file: fragments whose first fragment never came go to worker 0 (its
        decoder counts them), in capture order, tagged with ``index``."""
        released = sorted(
            (held_index, held_time, held_frame)
            for held in self.held.values()
            for held_index, held_time, held_frame in held
        )
        self.stats.fragments_unrouted += len(released)
        self.held.clear()
        self.held_bytes = 0
        self.fragment_routes.clear()
        return [(0, index, held_time, held_frame) for _, held_time, held_frame in released]


# -- the workers -------------------------------------------------------------------------------


_RECORD = struct.Struct("<qdI")  # global index, timestamp, frame length


class StreamSource:
    """One file's packets as the parent sends them to a worker, for :meth:`Engine.run`.

    Notes which connections the reassembler opened at which packet, and sends the worker's
    output back after each batch, once all its packets are through the engine."""

    def __init__(self, worker: WorkerOutput, inbox: IO[bytes], name: str, linktype: int) -> None:
        self.worker = worker
        self.inbox = inbox
        self.name = name
        self.linktype = linktype
        self.stats = CaptureStats()
        self.file_end = -1

    def __iter__(self) -> Iterator[tuple[float, bytes]]:
        worker = self.worker
        opened = worker.reassembly.stats
        while True:
            kind, length, argument = _read_message(self.inbox)
            if kind == _FILE_END:
                self.file_end = argument
                return
            if kind != _RECORDS:
                raise WorkerFailed(f"unexpected message {kind!r} in a file's packets")
            payload = _read_exactly(self.inbox, length)
            frames_at = argument * _RECORD.size
            offset = frames_at
            for index, time, size in _RECORD.iter_unpack(payload[:frames_at]):
                if opened.connections != worker.connections_seen:
                    worker.note_openings()
                worker.index = index
                yield time, payload[offset : offset + size]
                offset += size
            self.stats.received += argument
            worker.note_openings()
            worker.send_items()


class WorkerOutput:
    """A worker's entries (filtered, redacted, rendered) and connection openings, each tagged
    with where it belongs in the merged output."""

    def __init__(
        self,
        number: int,
        plugins: PluginManager,
        settings: ShardSettings,
        outbox: IO[bytes],
    ) -> None:
        self.number = number
        self.outbox = outbox
        self.output = settings.output
        self.plugins = plugins
        self.items: list[Item] = []
        self.index = 0
        """The global index of the packet being read (or of the file's end)."""
        self.finishing = False
        self.opened_at = array("q")
        """Per connection number (from 1): the index of the packet that opened it."""
        self.connections_seen = 0
        write = self.write
        query = settings.query
        if query is not None:

            def write_matching(entry: dict[str, Any]) -> None:
                if query(entry):
                    self.write(dict(query.redact(entry)))

            write = write_matching
        self.engine = Engine(
            plugins, redacting(write, Redactor()) if settings.redact else write, settings.engine
        )
        self.reassembly = self.engine.reassembler
        self._table: TableRenderer | None = (
            TableRenderer(plugins) if settings.output == "table" else None
        )

    def forward_logs(self) -> None:
        """Log records go to the parent with the entries, which prints each kind once (every
        worker logs a plugin's first error of a kind) and in a fixed order."""
        root = logging.getLogger()
        handler = _ItemLogHandler(self)
        if root.handlers:
            handler.setFormatter(root.handlers[0].formatter)
        root.handlers = [handler]

    def note_openings(self) -> None:
        opened = self.reassembly.stats.connections
        while self.connections_seen < opened:
            self.connections_seen += 1
            self.opened_at.append(self.index)
            self.items.append((self.index, 0, self.number, self.connections_seen, None, None))

    def write(self, entry: dict[str, Any]) -> None:
        self.note_openings()
        entry_id = entry.get("id")
        connection, sequence = _connection_and_sequence(entry_id)
        # At a file's end, connections end in the order they were opened: so do their entries.
        order = self.opened_at[connection - 1] if self.finishing and connection else 0
        if self._table is not None:
            line = self._table.render(entry)
            self.items.append((self.index, order, self.number, 0, None, line))
            return
        line = encode_json_line(entry)
        if not connection:
            self.items.append((self.index, order, self.number, 0, None, line))
            return
        prefix = b'{"id":' + orjson.dumps(entry_id)
        if line.startswith(prefix):
            self.items.append(
                (self.index, order, self.number, connection, sequence, line[len(prefix) :])
            )
        else:
            self.items.append((self.index, order, self.number, connection, None, line))

    def send_items(self) -> None:
        items, self.items = self.items, []
        _send_reply(self.outbox, ("items", items))


class _ItemLogHandler(logging.Handler):
    def __init__(self, output: WorkerOutput) -> None:
        super().__init__()
        self.output = output

    def emit(self, record: logging.LogRecord) -> None:
        output = self.output
        output.items.append((output.index, 0, output.number, 0, None, self.format(record)))


class TableRenderer:
    """The table's line of an entry, as ``-o table`` prints it."""

    def __init__(self, plugins: PluginManager) -> None:
        from mizu_cli.common import TableSink  # the table's format lives with the CLI

        self._buffer = StringIO()
        self._sink = TableSink(plugins, self._buffer)

    def render(self, entry: dict[str, Any]) -> bytes:
        self._sink.write(entry)
        line = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return line.encode()


def _connection_and_sequence(entry_id: object) -> tuple[int, str | None]:
    """The connection number and sequence in an id ``tapper-connection-sequence``."""
    if not isinstance(entry_id, str):
        return 0, None
    parts = entry_id.rsplit("-", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return 0, None
    return int(parts[1]), parts[2]


def _worker_main(
    number: int, plugins: PluginManager, settings: ShardSettings, inbox_fd: int, outbox_fd: int
) -> None:
    """A forked worker's life: never returns."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    code = 0
    outbox = os.fdopen(outbox_fd, "wb", buffering=1 << 16)
    try:
        inbox = os.fdopen(inbox_fd, "rb", buffering=1 << 20)
        worker = WorkerOutput(number, plugins, settings, outbox)
        worker.forward_logs()
        engine = worker.engine
        while True:
            kind, length, argument = _read_message(inbox)
            if not kind:
                break
            if kind != _FILE_START:
                raise WorkerFailed(f"unexpected message {kind!r} between files")
            name = _read_exactly(inbox, length).decode()
            source = StreamSource(worker, inbox, name, argument)
            engine.run(source)
            worker.note_openings()
            worker.index, worker.finishing = source.file_end, True
            engine.finish()
            worker.finishing = False
            worker.send_items()
        _send_reply(outbox, ("stats", engine.stats()))
    except BaseException as error:  # everything, Ctrl-C included, is the parent's to report
        code = 1
        with contextlib.suppress(OSError):
            described = "".join(traceback.format_exception_only(error)).strip()
            _send_reply(outbox, ("error", described, traceback.format_exc()))
    finally:
        with contextlib.suppress(OSError):
            outbox.flush()
        os._exit(code)


def _read_message(inbox: IO[bytes]) -> tuple[str, int, int]:
    """The next message's kind ("" at the end), payload length and argument."""
    header = inbox.read(_MESSAGE.size)
    if not header:
        return "", 0, 0
    if len(header) < _MESSAGE.size:
        raise WorkerFailed("the parent's stream ended inside a message")
    kind, length, argument = _MESSAGE.unpack(header)
    return kind.decode(), length, argument


def _read_exactly(stream: IO[bytes], length: int) -> bytes:
    data = stream.read(length)
    if len(data) != length:
        raise WorkerFailed("the stream ended inside a message")
    return data


def _send_reply(outbox: IO[bytes], reply: tuple[Any, ...]) -> None:
    body = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
    outbox.write(_REPLY.pack(len(body)) + body)
    outbox.flush()


# -- the parent --------------------------------------------------------------------------------


class _Worker:
    """The parent's side of one worker process."""

    def __init__(self, number: int, pid: int, inbox: int, outbox: int) -> None:
        self.number = number
        self.pid = pid
        self.inbox: int | None = inbox
        self.outbox = outbox
        self.heads: list[bytes] = []
        self.frames: list[bytes] = []
        self.unsent_from = -1
        self.outstanding: deque[int] = deque()
        """The first index of each message sent and not answered yet."""
        self.received: deque[Item] = deque()
        self.numbers = array("q")
        """Per connection number in the worker (from 1): its number in the whole capture."""
        self.stats: dict[str, Any] | None = None
        self.error: tuple[str, str] | None = None
        self.ended = False
        self.status: int | None = None
        self.reader: threading.Thread | None = None


class ShardedDissection:
    """Routes the packets of capture files to worker processes and merges what they emit."""

    def __init__(
        self,
        plugins: PluginManager,
        settings: ShardSettings,
        write_line: Callable[[bytes], None],
    ) -> None:
        self.plugins = plugins
        self.settings = settings
        self.write_line = write_line
        self.tapper_id = settings.engine.tapper_id
        self.router = ConnectionRouter(settings.workers)
        self.workers: list[_Worker] = []
        self.sources: list[FileSource] = []
        self.cursor = 0
        """The global index of the next packet (or file end) to route."""
        self.connections = 0
        self.entries_written = 0
        self.limit = settings.query.limit if settings.query is not None else None
        self._lock = threading.Lock()
        self._replied = threading.Condition(self._lock)
        self._replies = 0
        self._logged: set[str] = set()

    # -- workers' life -------------------------------------------------------------------------

    def start(self) -> None:
        """Fork the workers (with the plugins loaded, so they start at once)."""
        sys.stdout.flush()
        sys.stderr.flush()
        parent_ends: list[int] = []
        try:
            for number in range(self.settings.workers):
                inbox_read, inbox_write = os.pipe()
                outbox_read, outbox_write = os.pipe()
                with contextlib.suppress(OSError):  # a bigger pipe: fewer wake-ups
                    fcntl.fcntl(inbox_write, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
                pid = os.fork()
                if pid == 0:
                    for fd in (*parent_ends, inbox_write, outbox_read):
                        os.close(fd)
                    _worker_main(number, self.plugins, self.settings, inbox_read, outbox_write)
                os.close(inbox_read)
                os.close(outbox_write)
                parent_ends += [inbox_write, outbox_read]
                self.workers.append(_Worker(number, pid, inbox_write, outbox_read))
        except BaseException:
            self.stop()
            raise
        for worker in self.workers:
            worker.reader = threading.Thread(
                target=self._read_replies, args=(worker,), name=f"mizu-worker-{worker.number}"
            )
            worker.reader.daemon = True
            worker.reader.start()

    def stop(self) -> None:
        """End every worker still running and reap them all (Ctrl-C, a failure)."""
        for worker in self.workers:
            self._close_inbox(worker)
            if worker.status is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGTERM)
        for worker in self.workers:
            self._reap(worker)
            if worker.reader is not None:
                worker.reader.join(timeout=5)

    def _reap(self, worker: _Worker) -> None:
        if worker.status is None:
            _, worker.status = os.waitpid(worker.pid, 0)

    def _close_inbox(self, worker: _Worker) -> None:
        if worker.inbox is not None:
            with contextlib.suppress(OSError):
                os.close(worker.inbox)
            worker.inbox = None

    def _read_replies(self, worker: _Worker) -> None:
        try:
            with os.fdopen(worker.outbox, "rb", buffering=1 << 20) as stream:
                while header := stream.read(_REPLY.size):
                    (length,) = _REPLY.unpack(header)
                    reply = pickle.loads(_read_exactly(stream, length))
                    with self._replied:
                        if reply[0] == "items":
                            worker.outstanding.popleft()
                            worker.received.extend(reply[1])
                        elif reply[0] == "stats":
                            worker.stats = reply[1]
                        else:
                            worker.error = (reply[1], reply[2])
                        self._replies += 1
                        self._replied.notify_all()
        except (OSError, WorkerFailed, pickle.UnpicklingError, IndexError):
            pass  # the worker died mid-reply: the parent says so from its exit status
        finally:
            with self._replied:
                worker.ended = True
                self._replied.notify_all()

    def _check_workers(self) -> None:
        for worker in self.workers:
            if worker.error is not None or (worker.ended and worker.stats is None):
                self._fail(worker)

    def _fail(self, worker: _Worker) -> None:
        self.stop()
        if worker.error is not None:
            reason, details = worker.error
            raise WorkerFailed(f"worker {worker.number} failed: {reason}\n{details.rstrip()}")
        raise WorkerFailed(f"worker {worker.number} {_describe_status(worker.status)}")

    # -- routing -------------------------------------------------------------------------------

    def run(self, source: FileSource) -> None:
        """Route one file's packets; its connections end with it, as in one process."""
        Decoder(source.linktype)  # raises UnsupportedLinkType, as the engine would
        self.sources.append(source)
        name = source.name.encode()
        for worker in self.workers:
            self._send(worker, _FILE_START, name, source.linktype, None)
        router = self.router
        loads = router.stats.worker_bytes
        workers = self.workers
        route_other = router.route
        pack_record = _RECORD.pack
        unpack_ip = _IPV4_START.unpack_from
        linktype = source.linktype
        ip, ethertype_at = _FAST_LAYOUTS.get(linktype, (-1, -1))
        minimum = ip + 40 if ip >= 0 else 1 << 62  # no short path for other link types
        flows_get = router.flows.get
        round_packets = round_bytes = frames = frame_bytes = 0
        start = self.cursor
        for index, (time, frame) in enumerate(source, start):
            size = len(frame)
            frames += 1
            frame_bytes += size
            if size >= minimum and (
                ethertype_at < 0 or (frame[ethertype_at] == 8 and frame[ethertype_at + 1] == 0)
            ):
                version_ihl, fragment, protocol = unpack_ip(frame, ip)
                if version_ihl == 0x45 and protocol == IPPROTO_TCP and not fragment & 0x3FFF:
                    key = frame[ip + 12 : ip + 24]
                    number = flows_get(key)
                    if number is None:
                        number = router.flow(key, time)
                    worker = workers[number]
                    if not worker.heads:
                        worker.unsent_from = index
                    worker.heads.append(pack_record(index, time, size))
                    worker.frames.append(frame)
                    loads[number] += size
                    round_bytes += size
                    round_packets += 1
                    if round_packets >= ROUND_PACKETS or round_bytes >= BATCH_BYTES * len(workers):
                        self._end_round(index + 1, time)
                        flows_get = router.flows.get
                        round_packets = round_bytes = 0
                    continue
            for number, tagged, at, routed in route_other(linktype, index, time, frame):
                self._add(workers[number], tagged, at, routed)
                loads[number] += len(routed)
            round_bytes += size
            round_packets += 1
            if round_packets >= ROUND_PACKETS or round_bytes >= BATCH_BYTES * len(workers):
                self._end_round(index + 1, time)
                flows_get = router.flows.get
                round_packets = round_bytes = 0
        source.check_complete(frames, frame_bytes)
        self.cursor = start + frames
        for number, tagged, at, routed in router.release_held(self.cursor):
            self._add(workers[number], tagged, at, routed)
        self._flush_all()
        file_end = self.cursor
        self.cursor += 1
        for worker in self.workers:
            self._send(worker, _FILE_END, b"", file_end, file_end)
        self._merge(self._bound())

    def _add(self, worker: _Worker, index: int, time: float, frame: bytes) -> None:
        if not worker.heads:
            worker.unsent_from = index
        worker.heads.append(_RECORD.pack(index, time, len(frame)))
        worker.frames.append(frame)

    def _end_round(self, next_index: int, time: float) -> None:
        self.cursor = next_index
        self.router.rotate_if_due(time)
        self._flush_all()
        self._check_workers()
        self._merge(self._bound())

    def _flush_all(self) -> None:
        for worker in self.workers:
            if worker.heads:
                payload = b"".join(worker.heads) + b"".join(worker.frames)
                count, first = len(worker.heads), worker.unsent_from
                worker.heads, worker.frames = [], []
                self._send(worker, _RECORDS, payload, count, first)

    def _send(
        self, worker: _Worker, kind: str, payload: bytes, argument: int, first: int | None
    ) -> None:
        """Write a message to ``worker``; ``first``: the index its answer starts at (None: no
        answer expected)."""
        if first is not None:
            with self._lock:
                worker.outstanding.append(first)
        data = memoryview(_MESSAGE.pack(kind.encode(), len(payload), argument) + payload)
        try:
            assert worker.inbox is not None
            while data:
                data = data[os.write(worker.inbox, data) :]
        except OSError:
            self._reap(worker)
            with self._replied:  # its last words, if it had time to say them
                self._replied.wait_for(lambda: worker.ended, timeout=5)
            self._fail(worker)

    # -- merging -------------------------------------------------------------------------------

    def _bound(self) -> int:
        """Every item with a smaller index has come back from every worker."""
        with self._lock:
            bound = self.cursor
            for worker in self.workers:
                if worker.outstanding:
                    bound = min(bound, worker.outstanding[0])
                elif worker.heads:
                    bound = min(bound, worker.unsent_from)
            return bound

    def _merge(self, bound: float) -> None:
        ready: list[list[Item]] = []
        with self._lock:
            for worker in self.workers:
                received = worker.received
                taken = []
                while received and received[0][0] < bound:
                    taken.append(received.popleft())
                if taken:
                    ready.append(taken)
        if not ready:
            return
        merged = ready[0] if len(ready) == 1 else heapq.merge(*ready, key=_ORDER)
        workers = self.workers
        write_line = self.write_line
        tapper = self.tapper_id
        for _index, _order, number, connection, sequence, payload in merged:
            if payload is None:
                self.connections += 1
                workers[number].numbers.append(self.connections)
                continue
            if isinstance(payload, str):
                self._log(payload)
                continue
            if self.limit is not None and self.entries_written >= self.limit:
                continue
            if connection:
                entry_id = f"{tapper}-{workers[number].numbers[connection - 1]}-"
                if sequence is not None:
                    payload = b'{"id":' + orjson.dumps(entry_id + sequence) + payload
                else:
                    entry = orjson.loads(payload)
                    _, _, sequence = entry["id"].rpartition("-")
                    entry["id"] = entry_id + sequence
                    payload = encode_json_line(entry)
            self.entries_written += 1
            write_line(payload)

    def _log(self, text: str) -> None:
        first_line = text.partition("\n")[0]
        if first_line not in self._logged:
            self._logged.add(first_line)
            sys.stderr.write(text + "\n")

    def finish(self) -> dict[str, Any]:
        """After the last file: let the workers end, merge what is left; the stats summed."""
        for worker in self.workers:
            self._close_inbox(worker)
        seen = -1
        while True:
            with self._replied:
                self._replied.wait_for(
                    lambda seen=seen: self._replies != seen or self._all_ended(),
                    timeout=1.0,
                )
                seen = self._replies
                done = self._all_ended()
            self._check_workers()
            self._merge(self._bound())
            if done:
                break
        for worker in self.workers:
            self._reap(worker)
            if worker.status != 0:
                self._fail(worker)
        self._merge(float("inf"))
        stats = merge_stats([worker.stats or {} for worker in self.workers])
        stats["capture"] = [
            source.stats.as_dict() | {"source": source.name} for source in self.sources
        ]
        stats["sharding"] = {"workers": len(self.workers)} | self.router.stats.as_dict()
        return stats

    def _all_ended(self) -> bool:
        return all(worker.ended for worker in self.workers)

    @property
    def consumed(self) -> int:
        """Bytes of the files read so far, for progress bars."""
        done = sum(source.size for source in self.sources[:-1])
        return done + (self.sources[-1].consumed if self.sources else 0)


_ORDER = operator.itemgetter(0, 1)
_IPV4_START = struct.Struct("!B5xHxB")  # version and header length, fragment field, protocol


def merge_stats(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The workers' engine stats as one: counts summed (plugin errors and counters by name),
    flags or-ed, lists kept from the first."""
    merged: dict[str, Any] = {}
    for part in parts:
        for name, value in part.items():
            if name not in merged:
                merged[name] = merge_stats([value]) if isinstance(value, dict) else value
            elif isinstance(value, dict):
                merged[name] = merge_stats([merged[name], value])
            elif isinstance(value, bool):
                merged[name] = merged[name] or value
            elif isinstance(value, int | float):
                merged[name] += value
    return merged


def _describe_status(status: int | None) -> str:
    if status is None:
        return "stopped answering"
    if os.WIFSIGNALED(status):
        signal_number = os.WTERMSIG(status)
        return f"was killed by signal {signal.Signals(signal_number).name}" + (
            " (out of memory?)" if signal_number == signal.SIGKILL else ""
        )
    return f"exited with status {os.waitstatus_to_exitcode(status)} without its results"
