"""Dissecting capture files on several cores: whole TCP connections sharded over workers.

Every worker reads the whole file itself (from the page cache) and runs the same
:class:`ConnectionRouter` over every packet: it finds each packet's connection (its 4-tuple,
either direction) and the worker that owns it. A classic pcap file's records are read in place
and a plain IPv4 TCP packet is routed by its key's octets in the read buffer, so a packet of
another worker costs about 1,300 instructions; only a worker's own frames become ``bytes``. A new
connection goes to the worker that was given the fewest bytes so far: deterministic for a file,
and balanced for a handful of big connections where a hash is not. Packets that are not TCP, or
cannot be decoded, go to worker 0 so that they are counted once. Since every worker routes the
same packets with the same code, all agree on every route without telling each other, and each
knows every packet's global index (its position among all the files' packets, plus one index
per file end). A worker keeps its own packets and runs them through the normal :class:`Engine`.

No packet crosses a pipe. Every :data:`ROUND_PACKETS` packets a worker sends the parent what it
emitted meanwhile, each item tagged with the index of the packet being read, and the index it
has read up to. The parent merges the workers' streams by index (each stream is sorted) only up
to the smallest index every worker has reached, so the merged output does not depend on timing:
it is the same for every run with the same worker count.

Entry ids are those of the one-process path: the reassembler numbers connections in the order
of the packets that open them, and the parent, which sees every worker's openings in index
order, numbers them again the same way before writing each entry.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import pickle
import select
import signal
import socket
import struct
import sys
import traceback
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from time import monotonic, sleep
from typing import IO, TYPE_CHECKING, Any, Final, NoReturn

import orjson

from mizu_core.capture import FileSource
from mizu_core.decode import Decoder
from mizu_core.emit import encode_json_line
from mizu_core.engine import Engine, EngineSettings
from mizu_core.pcapfile import PcapRecords
from mizu_core.plugins import PluginManager
from mizu_core.redact import Redactor, redacting
from mizu_core.routing import ConnectionRouter
from mizu_core.views import table_line
from mizu_core.watchdog import BUSY_SECONDS

if TYPE_CHECKING:
    from mizu_core.query import Query

AUTO_MIN_BYTES = 40 << 20
"""Below this much capture, one process. Every worker reads and routes every packet, and the
parent merges the workers' lines, so a second core pays only where the dissecting is large.
CPU seconds of each process on 2 cores, one process against each of two workers and their
parent (whose 0.13 s of start-up is the one process's too): 219 MB of HTTP 1.86 against
1.04-1.19 and 0.38, 69 MB of AMQP 1.42 against 0.77-0.85 and 0.4, 45 MB of Kafka 0.66
against 0.36-0.39 and 0.3, a 31 MB Kafka capture of few, large batches 0.21 against 0.04-0.08
and 0.16, 14 MB of gRPC 0.52 against 0.2 and 0.19. Start-up, the slower worker and half the
parent's merging make about 1.3-1.45 s against 1.86 for HTTP, 1.13 against 1.42 for AMQP,
0.6 against 0.66 for Kafka, 0.37 against 0.52 for gRPC on two idle cores, while the bulk
Kafka capture would lose a little: the bytes of a capture cannot tell these apart, and these
are estimates, so the bound stays where every capture above it gains. (Measured with other
work on the machine, load average 4 to 5: there two workers, one scheduling group's share
between three processes, are slower by wall time everywhere.)"""
AUTO_MAX_WORKERS = 8
"""Beyond this, every worker spends more time routing the others' packets than its own."""

ROUND_PACKETS = 4096
"""Every this many packets a worker sends what it emitted and the parent merges what all sent."""
MAX_LEAD_ROUNDS = 16
"""The parent stops reading a worker this many rounds ahead of the slowest (its pipe fills and
it waits): the merge holds the faster workers' output until the slowest catches up."""
PIPE_BYTES = 1 << 20
_JOINED_BYTES: Final = 1 << 20
"""Merged lines written together are written once this many bytes are joined."""
STOP_SECONDS = 2.0
"""How long a worker told to stop gets to end before it is killed."""
PR_SET_PDEATHSIG = 1

_NAME = struct.Struct("<I")  # the length of a file name the parent sends
_REPLY = struct.Struct("<Bqqqqq")
"""A worker's reply: what follows it (``_ITEMS``: marks and payloads; ``_PICKLED``: a tuple),
the index it has read up to, the files it has done, the bytes of the file it has read, and the
lengths of the marks and of the payloads (or pickle)."""
_ITEMS = 0
_PICKLED = 1
_MARK_FIELDS: Final = 5
"""An item as a worker sends it: the index of the packet being read, an order among items of
one index, its kind, its connection and the length of its payload, as 64-bit integers; the
payloads follow, one after another."""

# What an item is: its payload and what the parent does with it.
_OPENED = 0  # the worker's next connection opened; no payload
_ID_TAIL = 1  # an entry line after its id's connection number ("-7",...}): renumbered
_ID_REWRITE = 2  # an entry line whose id the parent rewrites through JSON (escapes in the id)
_LINE = 3  # a line written as it is (no connection; a table's line)
_LOG = 4  # a log record's text (str)


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


# -- the workers -------------------------------------------------------------------------------


class ShardSource:
    """One capture file as a worker reads it, for :meth:`Engine.run`: every packet goes through
    the router, and the worker's own go on to the engine.

    Notes which connections the reassembler opened at which packet, and sends the worker's
    output to the parent every :data:`ROUND_PACKETS` packets."""

    def __init__(self, worker: WorkerOutput, name: str, start: int) -> None:
        self.worker = worker
        self.file = FileSource(name)
        self.name = name
        self.linktype = self.file.linktype
        self.stats = self.file.stats
        self.start = start
        self.end = start
        """The index of the file's end, once it is read."""

    def __iter__(self) -> Iterator[tuple[float, bytes]]:
        worker = self.worker
        own = worker.number
        opened = worker.reassembly.stats
        router = worker.router
        router.read_link_type(self.linktype)
        route_other = router.route
        linktype = self.linktype
        # A classic pcap file's records are read in place (only this worker's frames are made
        # bytes); libpcap's frames follow (all of a pcapng file's).
        records: PcapRecords | None = self.file.records()
        frames: Iterator[tuple[float, bytes]] = (
            self.file.after_records(None) if records is None else iter(())
        )
        frame_bytes = 0
        index = self.start - 1
        round_end = self.start + ROUND_PACKETS - 1
        data = b""
        at = 0
        time = 0.0
        try:
            while True:
                if records is not None:
                    if not records.next_record():
                        records.close()
                        frames = self.file.after_records(records)
                        records = None
                        continue
                    data = records.buffer
                    at = records.start
                    size = records.end - at
                else:
                    packet = next(frames, None)
                    if packet is None:
                        break
                    time, data = packet
                    at = 0
                    size = len(data)
                index += 1
                frame_bytes += size
                owner = router.plain_route(data, at, size)
                if owner == own or owner < 0:
                    if records is not None:
                        time = records.timestamp()
                        data = data[at : at + size]
                    if owner == own:
                        if opened.connections != worker.connections_seen:
                            worker.note_openings()
                        worker.index = index
                        yield time, data
                    else:
                        for owner, tagged, when, routed in route_other(linktype, index, time, data):
                            if owner == own:
                                if opened.connections != worker.connections_seen:
                                    worker.note_openings()
                                worker.index = tagged
                                yield when, routed
                if index >= round_end:
                    round_end = index + ROUND_PACKETS
                    router.rotate_if_due(time if records is None else records.timestamp())
                    worker.note_openings()
                    worker.send_items(index + 1, self.file.consumed)
        finally:
            if records is not None:
                records.close()
        self.end = index + 1
        if own == 0:  # the capture's stats are worker 0's; a pcapng file's drops take a walk
            self.file.check_complete(self.end - self.start, frame_bytes)
        for owner, tagged, when, routed in router.release_held(self.end):
            if owner == own:
                worker.note_openings()
                worker.index = tagged
                yield when, routed


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
        self.router = ConnectionRouter(settings.workers)
        self.marks: list[int] = []
        """:data:`_MARK_FIELDS` integers per item."""
        self.payloads: list[bytes] = []
        self.index = 0
        """The global index of the packet being read (or of the file's end)."""
        self.files_done = 0
        self.finishing = False
        self.opened_at = array("q")
        """Per connection number (from 1): the index of the packet that opened it."""
        self.id_prefixes: list[bytes] = []
        """Per connection number (from 1): how its entry lines start, up to the sequence."""
        self.connections_seen = 0
        write = self.write
        query = settings.query
        if query is not None:

            def write_matching(entry: dict[str, Any]) -> None:
                if query(entry):
                    self.write(dict(query.redact(entry)))

            write = write_matching
        self.engine = Engine(
            plugins,
            redacting(write, Redactor(protocols=plugins.declared_protocols()))
            if settings.redact
            else write,
            settings.engine,
        )
        self.reassembly = self.engine.reassembler
        self.tapper_id = self.engine.dispatcher.tapper_id
        self._table = settings.output == "table"

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
            self.id_prefixes.append(id_prefix(self.tapper_id, self.connections_seen))
            self.add(0, _OPENED, self.connections_seen, b"")

    def write(self, entry: dict[str, Any]) -> None:
        self.note_openings()
        connection = _connection_of(entry.get("id"))
        # At a file's end, connections end in the order they were opened: so do their entries.
        order = self.opened_at[connection - 1] if self.finishing and connection else 0
        if self._table:
            self.add(order, _LINE, 0, table_line(self.plugins, entry).encode())
            return
        line = encode_json_line(entry)
        if not connection:
            self.add(order, _LINE, 0, line)
            return
        prefix = self.id_prefixes[connection - 1]
        if line.startswith(prefix):
            self.add(order, _ID_TAIL, connection, line[len(prefix) :])
        else:
            self.add(order, _ID_REWRITE, connection, line)

    def add(self, order: int, kind: int, connection: int, payload: bytes) -> None:
        marks = self.marks
        marks.append(self.index)
        marks.append(order)
        marks.append(kind)
        marks.append(connection)
        marks.append(len(payload))
        self.payloads.append(payload)

    def send_items(self, read_up_to: int, consumed: int) -> None:
        """Send what was emitted: every item of an index below ``read_up_to`` is in it (or in
        an earlier reply); ``consumed``: the bytes of the file read so far."""
        marks = array("q", self.marks).tobytes()
        self.marks.clear()
        payloads = b"".join(self.payloads)
        self.payloads.clear()
        outbox = self.outbox
        outbox.write(
            _REPLY.pack(_ITEMS, read_up_to, self.files_done, consumed, len(marks), len(payloads))
        )
        outbox.write(marks)
        outbox.write(payloads)
        outbox.flush()


def id_prefix(tapper_id: str, connection: int) -> bytes:
    """How the JSON line of an entry of ``connection`` starts, up to its id's sequence: JSON
    escapes character by character, so the line is this followed by the rest of the id."""
    return b'{"id":' + orjson.dumps(f"{tapper_id}-{connection}-")[:-1]


class _ItemLogHandler(logging.Handler):
    def __init__(self, output: WorkerOutput) -> None:
        super().__init__()
        self.output = output

    def emit(self, record: logging.LogRecord) -> None:
        self.output.add(0, _LOG, 0, self.format(record).encode(errors="backslashreplace"))


def _connection_of(entry_id: object) -> int:
    """The connection number in an id ``tapper-connection-sequence`` (0: none)."""
    if not isinstance(entry_id, str):
        return 0
    parts = entry_id.rsplit("-", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return 0
    return int(parts[1])


def _worker_main(
    number: int, plugins: PluginManager, settings: ShardSettings, inbox_fd: int, outbox_fd: int
) -> None:
    """A forked worker's life: never returns. The parent sends each file's name and closes
    the inbox after the last."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent()
    code = 0
    outbox = os.fdopen(outbox_fd, "wb", buffering=1 << 16)
    try:
        worker = WorkerOutput(number, plugins, settings, outbox)
        worker.forward_logs()
        engine = worker.engine

        def stopped(signum: int, frame: object) -> None:
            """The parent stops us (Ctrl-C): say which plugin was busy, if one was."""
            stuck = engine.watchdog.current()
            if stuck is not None and stuck.seconds >= BUSY_SECONDS:
                os.write(2, f"mizu: worker {number} stopped: {stuck.busy()}\n".encode())
            os._exit(128 + signum)

        signal.signal(signal.SIGTERM, stopped)
        start = 0
        with os.fdopen(inbox_fd, "rb") as inbox:
            while header := inbox.read(_NAME.size):
                name = os.fsdecode(_read_exactly(inbox, _NAME.unpack(header)[0]))
                source = ShardSource(worker, name, start)
                engine.run(source)
                worker.note_openings()
                worker.index, worker.finishing = source.end, True
                engine.finish()
                worker.finishing = False
                worker.files_done += 1
                start = source.end + 1
                worker.send_items(start, source.file.size)
        _send_pickled(outbox, ("stats", engine.stats(), worker.router.stats.as_dict()))
    except BaseException as error:  # everything, Ctrl-C included, is the parent's to report
        code = 1
        with contextlib.suppress(OSError):
            described = "".join(traceback.format_exception_only(error)).strip()
            _send_pickled(outbox, ("error", described, traceback.format_exc()))
    finally:
        with contextlib.suppress(OSError):
            outbox.flush()
        os._exit(code)


def _die_with_parent() -> None:
    """Have the kernel kill this worker when its parent dies, however it dies (Linux): a
    worker whose plugin is stuck would otherwise spin on, orphaned."""
    with contextlib.suppress(AttributeError, OSError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _read_exactly(stream: IO[bytes], length: int) -> bytes:
    data = stream.read(length)
    if len(data) != length:
        raise WorkerFailed("the parent's stream ended inside a message")
    return data


def _read_into(fd: int, buffer: bytearray, length: int) -> memoryview | None:
    """The first ``length`` bytes of ``buffer``, read from ``fd``; None at the stream's end."""
    view = memoryview(buffer)[:length]
    done = 0
    with contextlib.suppress(OSError):  # a worker gone: as the stream's end
        while done < length and (count := os.readv(fd, [view[done:]])):
            done += count
    if done < length:
        view.release()
        return None
    return view


def _send_pickled(outbox: IO[bytes], reply: tuple[Any, ...]) -> None:
    """A worker's last reply: its stats, or why it failed."""
    body = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
    outbox.write(_REPLY.pack(_PICKLED, 0, 0, 0, 0, len(body)))
    outbox.write(body)
    outbox.flush()


# -- the parent --------------------------------------------------------------------------------


class _Batch:
    """The items of one reply, as the parent merges them: :data:`_MARK_FIELDS` integers each
    in ``marks``, their payloads one after another in ``payloads``."""

    def __init__(self, marks: list[int], payloads: bytes) -> None:
        self.marks = marks
        self.payloads = payloads
        self.view = memoryview(payloads)
        self.at = 0
        """Where the next item's integers start in ``marks``."""
        self.offset = 0
        """Where its payload starts in ``payloads``."""


class _Worker:
    """The parent's side of one worker process."""

    def __init__(self, number: int, pid: int, inbox: int, outbox: int) -> None:
        self.number = number
        self.pid = pid
        self.inbox: int | None = inbox
        self.outbox = outbox
        self.read_up_to = 0
        """Every item of a smaller index has come back."""
        self.files_done = 0
        self.consumed = 0
        """Bytes of the file being read that the worker has read."""
        self.unread = bytearray(1 << 16)
        """Where each reply is read, grown to the largest (what is kept is copied out of it)."""
        self.batch: _Batch | None = None
        """The batch whose items are merged next; None: none came back yet."""
        self.later: deque[_Batch] = deque()
        """The batches that came back after it."""
        self.numbers = array("q")
        """Per connection number in the worker (from 1): its number in the whole capture."""
        self.id_prefixes: list[bytes] = []
        """Per connection number in the worker (from 1): how its lines start in the output."""
        self.stats: dict[str, Any] | None = None
        self.router_stats: dict[str, Any] = {}
        self.error: tuple[str, str] | None = None
        self.ended = False
        self.status: int | None = None


class ShardedDissection:
    """Has worker processes dissect capture files and merges what they emit."""

    def __init__(
        self,
        plugins: PluginManager,
        settings: ShardSettings,
        write_line: Callable[[bytes], None],
        lines_together: bool = False,
    ) -> None:
        self.plugins = plugins
        self.settings = settings
        self.write_line = write_line
        self.lines_together = lines_together
        """Whether ``write_line`` takes many lines in one call (it writes to a stream): the
        merged lines are then joined once, not each made anew to be written on its own."""
        # The workers' engines name the tapper this way too (forked: the same host name).
        self.tapper_id = settings.engine.tapper_id or socket.gethostname()
        self.workers: list[_Worker] = []
        self.sources: list[FileSource] = []
        self.connections = 0
        self.entries_written = 0
        self.limit = settings.query.limit if settings.query is not None else None
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
                    fcntl.fcntl(outbox_write, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
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

    def stop(self) -> None:
        """End every worker still running and reap them all (Ctrl-C, a failure)."""
        for worker in self.workers:
            self._close_inbox(worker)
            if worker.status is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGTERM)
        for worker in self.workers:
            self._reap(worker, STOP_SECONDS)
            if not worker.ended:
                worker.ended = True
                with contextlib.suppress(OSError):
                    os.close(worker.outbox)

    def _reap(self, worker: _Worker, seconds: float | None = None) -> None:
        """Wait for the worker's end; after ``seconds`` (None: as long as it takes), kill it."""
        if worker.status is not None:
            return
        if seconds is not None:
            deadline = monotonic() + seconds
            while monotonic() < deadline:
                pid, status = os.waitpid(worker.pid, os.WNOHANG)
                if pid:
                    worker.status = status
                    return
                sleep(0.02)
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGKILL)
        _, worker.status = os.waitpid(worker.pid, 0)

    def _close_inbox(self, worker: _Worker) -> None:
        if worker.inbox is not None:
            with contextlib.suppress(OSError):
                os.close(worker.inbox)
            worker.inbox = None

    def _wait_for(self, done: Callable[[], bool]) -> None:
        """Read the workers' replies and merge them until ``done()``: from the slowest worker
        always, from the others while they are not too far ahead."""
        by_outbox = {worker.outbox: worker for worker in self.workers}
        lead = MAX_LEAD_ROUNDS * ROUND_PACKETS
        while not done():
            slowest = self._bound()
            waiting = [
                worker.outbox
                for worker in self.workers
                if not worker.ended and worker.read_up_to - slowest <= lead
            ]
            if not waiting:
                return
            readable, _, _ = select.select(waiting, [], [])
            for outbox in readable:
                self._read(by_outbox[outbox])
            self._merge(self._bound())

    def _read(self, worker: _Worker) -> None:
        """Read the worker's next reply (a worker writes each whole, without waiting)."""
        header = _read_into(worker.outbox, worker.unread, _REPLY.size)
        if header is None:
            worker.ended = True
            os.close(worker.outbox)
            if worker.error is None and worker.stats is None:
                self._reap(worker)
                self._fail(worker)
            return
        kind, read_up_to, files_done, consumed, marks_length, payloads_length = _REPLY.unpack(
            header
        )
        header.release()
        length = marks_length + payloads_length
        if len(worker.unread) < length:
            worker.unread = bytearray(length)
        body = _read_into(worker.outbox, worker.unread, length)
        if body is None:
            self._cut_short(worker)
        with body:
            if kind == _PICKLED:
                self._take(worker, pickle.loads(body))
                return
            marks = array("q")
            marks.frombytes(body[:marks_length])
            payloads = bytes(body[marks_length:])
        worker.read_up_to = read_up_to
        worker.files_done = files_done
        worker.consumed = consumed
        if marks:
            batch = _Batch(marks.tolist(), payloads)
            if worker.batch is None:
                worker.batch = batch
            else:
                worker.later.append(batch)

    def _cut_short(self, worker: _Worker) -> NoReturn:
        worker.ended = True
        os.close(worker.outbox)
        self._reap(worker)
        self._fail(worker)

    def _take(self, worker: _Worker, reply: tuple[Any, ...]) -> None:
        if reply[0] == "stats":
            _, worker.stats, worker.router_stats = reply
        else:
            worker.error = (reply[1], reply[2])
            self._fail(worker)

    def _fail(self, worker: _Worker) -> NoReturn:
        self.stop()
        if worker.error is not None:
            reason, details = worker.error
            raise WorkerFailed(f"worker {worker.number} failed: {reason}\n{details.rstrip()}")
        raise WorkerFailed(f"worker {worker.number} {_describe_status(worker.status)}")

    # -- reading files -------------------------------------------------------------------------

    def run(self, source: FileSource) -> None:
        """Have the workers read one file (each opens it itself) and merge what they emit; its
        connections end with it, as in one process."""
        Decoder(source.linktype)  # raises UnsupportedLinkType, as the engine would
        self.sources.append(source)
        files = len(self.sources)
        for worker in self.workers:
            name = os.fsencode(source.name)
            self._send(worker, _NAME.pack(len(name)) + name)
        self._wait_for(lambda: all(worker.files_done >= files for worker in self.workers))

    def _send(self, worker: _Worker, data: bytes) -> None:
        try:
            assert worker.inbox is not None
            view = memoryview(data)
            while view:
                # A local: mypyc evaluates a memoryview slice's bound twice.
                written = os.write(worker.inbox, view)
                view = view[written:]
        except OSError:
            self._reap(worker)
            self._wait_for(lambda: worker.ended)  # its last words, if it had time to say them
            self._fail(worker)

    # -- merging -------------------------------------------------------------------------------

    def _bound(self) -> int:
        """Every item with a smaller index has come back from every worker."""
        return min(worker.read_up_to for worker in self.workers)

    def _merge(self, bound: int) -> None:
        """Write the items of an index below ``bound`` in the order of their indices, then of
        their orders; among equals, a lower-numbered worker's first. Each worker's items come
        in that order, so the smallest of the workers' next items is the one to write."""
        workers = self.workers
        write_line = self.write_line
        limit = self.limit
        # The lines to write, with their lengths summed, when they are written together
        lines: list[bytes | memoryview] | None = [] if self.lines_together else None
        length = 0
        while True:
            chosen: _Worker | None = None
            lowest = bound
            lowest_order = 0
            for worker in workers:
                batch = worker.batch
                if batch is None:
                    continue
                marks = batch.marks
                at = batch.at
                index = marks[at]
                if index < lowest or (
                    index == lowest and chosen is not None and marks[at + 1] < lowest_order
                ):
                    chosen = worker
                    lowest = index
                    lowest_order = marks[at + 1]
            if lines and (chosen is None or length >= _JOINED_BYTES):
                write_line(b"".join(lines))
                lines = []
                length = 0
            if chosen is None:
                return
            batch = chosen.batch
            assert batch is not None
            marks = batch.marks
            at = batch.at
            kind = marks[at + 2]
            connection = marks[at + 3]
            start = batch.offset
            end = start + marks[at + 4]
            payloads = batch.payloads
            batch.offset = end
            batch.at = at + _MARK_FIELDS
            if batch.at == len(marks):
                chosen.batch = chosen.later.popleft() if chosen.later else None
            if kind == _ID_TAIL:
                if limit is None or self.entries_written < limit:
                    self.entries_written += 1
                    prefix = chosen.id_prefixes[connection - 1]
                    if lines is None:
                        write_line(prefix + payloads[start:end])
                    else:
                        lines.append(prefix)
                        lines.append(batch.view[start:end])
                        length += len(prefix) + end - start
            elif kind == _OPENED:
                self.connections += 1
                chosen.numbers.append(self.connections)
                chosen.id_prefixes.append(id_prefix(self.tapper_id, self.connections))
            elif kind == _LOG:
                self._log(payloads[start:end].decode())
            elif limit is None or self.entries_written < limit:
                self.entries_written += 1
                line = payloads[start:end]
                if kind == _ID_REWRITE:
                    line = self._renumbered(chosen, connection, line)
                if lines is None:
                    write_line(line)
                else:
                    lines.append(line)
                    length += len(line)

    def _renumbered(self, worker: _Worker, connection: int, line: bytes) -> bytes:
        entry = orjson.loads(line)
        _, _, sequence = entry["id"].rpartition("-")
        entry["id"] = f"{self.tapper_id}-{worker.numbers[connection - 1]}-{sequence}"
        return encode_json_line(entry)

    def _log(self, text: str) -> None:
        first_line = text.partition("\n")[0]
        if first_line not in self._logged:
            self._logged.add(first_line)
            sys.stderr.write(text + "\n")

    def finish(self) -> dict[str, Any]:
        """After the last file: let the workers end, merge what is left; the stats summed."""
        for worker in self.workers:
            self._close_inbox(worker)
        self._wait_for(lambda: all(worker.ended for worker in self.workers))
        for worker in self.workers:
            self._reap(worker)
            if worker.status != 0 or worker.stats is None:
                self._fail(worker)
        self._merge(max(worker.read_up_to for worker in self.workers))  # every item
        stats = merge_stats([worker.stats or {} for worker in self.workers])
        stats["sharding"] = {"workers": len(self.workers)} | self.workers[0].router_stats
        return stats

    @property
    def consumed(self) -> int:
        """Bytes of the files read so far, for progress bars."""
        done = sum(source.size for source in self.sources[:-1])
        return done + min((worker.consumed for worker in self.workers), default=0)


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
