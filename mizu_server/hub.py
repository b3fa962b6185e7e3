"""The hub's state: the store behind one writer, the insertion filter, live subscribers and
connected tappers. The aiohttp routes (:mod:`mizu_server.app`) are thin over this.

Every store call runs on one worker thread, so SQLite sees a single user and the event loop
never blocks on disk. Frames that arrive while a batch is being written are committed together
in the next transaction: batching follows the load without a timer.

Entries travel encoded (:func:`~mizu_server.store.encode_entry`: id, indexed columns, JSON)
from the tapper to the database, named by the tapper from the table the hub sends it
(:meth:`Hub.attach_names`). The hub decodes one only for what needs its content: API rules for
HTTP entries, an insertion filter, and readers (live subscribers, sampled observers) of the
stored entry. Entries that come as maps (:meth:`Hub.submit`) are encoded here, once.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sqlite3
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from mizu_core.emit import encode_json
from mizu_core.entry import Row
from mizu_core.plugins import PluginManager
from mizu_core.query import Query, compile_query
from mizu_core.views import entry_row
from mizu_server.oas import OasInference
from mizu_server.observing import BudgetedObservers
from mizu_server.pushdown import COLUMN_NAMES
from mizu_server.resolver import NameResolver
from mizu_server.rules import Rules, rules_row
from mizu_server.store import (
    EncodedEntry,
    SqliteStore,
    Store,
    StoredEntry,
    decode_data,
    encode_entry,
    has_id,
)
from mizu_server.targets import TargetTracker
from mizu_server.windows import WindowReader, open_reader

log = logging.getLogger(__name__)

T = TypeVar("T")

NAMES_INTERVAL = 1.0
"""Seconds between looks at the name table: tappers get it again when it changed."""
Send = Callable[[dict[str, Any]], Awaitable[None]]
LIVE_BACKLOG_BYTES = 4 << 20
"""Bytes of stored entries one browser's live stream may lag behind (entries committed, not yet
sent): a browser further behind does not read what it is sent, and is disconnected."""

# where an encoded entry holds what the hub looks at without decoding it
_PROTOCOL = 1 + COLUMN_NAMES.index("protocol")


LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
"""The names a browser uses for a hub on this machine, or behind a port-forward."""


@dataclass(slots=True)
class HubSettings:
    db_path: str | Path = ":memory:"
    max_db_bytes: int = 200 * 1000 * 1000
    """``tap.max-entries-db-size``: the oldest entries are evicted beyond it."""
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    """Tappers present it on ``/wsTapper``; generated per deployment."""
    access_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    """What the browser API asks of its users (the dashboard URL's ``?token=``, a cookie, or
    ``Authorization: Bearer``); generated per run."""
    insertion_filter: str = ""
    static_dir: Path | None = None
    allowed_hosts: frozenset[str] | None = None
    """Host header values the browser API answers (None: any); local mode pins 127.0.0.1 and
    localhost so that a web page cannot reach the hub through DNS rebinding."""
    ingest_port: int | None = None
    """The port where tappers send entries: ``/wsTapper`` is served there only, and only it
    (in a cluster, where a NetworkPolicy lets only the tappers reach that port). None: one port
    serves both."""
    rules: Rules | None = None
    pcap_export: bool = False
    """``tap.pcap-export``: tappers send raw packets and ``/pcap`` serves them. Off by
    default: raw packets carry every secret that redaction removes from entries."""
    max_live_clients: int = 100
    """Browsers (``/ws``) served at once; one more is refused."""
    scan_budget: float = 0.5
    """Seconds a listing whose query needs Python re-checks (a header, ``json()``) may scan
    before it answers with what it found (``meta.partial``)."""
    """API rules (``--traffic-validation-file``) every HTTP entry is checked against."""


STORE_FAULTS = (sqlite3.OperationalError, OSError)
"""Errors of the store itself (a full disk, an I/O error, a lock): writes are retried."""
RETRY_FIRST_SECONDS = 0.25
RETRY_MAX_SECONDS = 5.0
DRAIN_SECONDS = 5.0
"""How long a stopping hub waits for a failing store before it gives up the entries held."""


@dataclass(slots=True)
class StoreFault:
    reason: str
    since: float
    failures: int


@dataclass(slots=True)
class TapperState:
    tapper_id: str
    remote: str
    connected_at: float = field(default_factory=time.time)
    frames: int = 0
    entries: int = 0
    reported: dict[str, Any] = field(default_factory=dict)
    connected: bool = True

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.tapper_id,
            "remote": self.remote,
            "connected": self.connected,
            "connectedAt": int(self.connected_at * 1000),
            "frames": self.frames,
            "entries": self.entries,
            "reported": self.reported,
        }


def checked(rules: Rules, entry: Mapping[str, Any]) -> Mapping[str, Any]:
    """``entry`` with the verdict of the API rules, when they apply to it."""
    verdict = rules.check(entry)
    return entry if verdict is None else {**entry, "rules": verdict}


class _EntriesOf(Sequence[Mapping[str, Any]]):
    """The entries of stored items, each decoded when an observer takes it: observers sample
    when they fall behind, and those left out are never decoded."""

    def __init__(self, stored: Sequence[StoredEntry]) -> None:
        self.stored = stored

    def __len__(self) -> int:
        return len(self.stored)

    def __getitem__(self, index: int) -> Mapping[str, Any]:  # type: ignore[override]
        return self.stored[index].entry

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        return (item.entry for item in self.stored)


class LiveRow(NamedTuple):
    """A row as the live stream sends it: the ``{type: "entry"}`` message, and the protocol
    its ``proto`` names by key (sent once per browser, before the first row that names it)."""

    message: str
    protocol_key: str
    protocol: Mapping[str, Any] | None


_UNMADE = object()


class LiveBatch:
    """One commit's entries, shared by every live stream: each entry's message is made once
    per query, by the first stream that gets to it (browsers with the same filter share the
    work), and only if a stream gets to it."""

    __slots__ = ("_made", "size", "stored")

    def __init__(self, stored: Sequence[StoredEntry]) -> None:
        self.stored = stored
        self.size = sum(len(item.data) for item in stored)
        """Bytes of stored data: what a stream that has not sent them lags behind by."""
        self._made: dict[str, list[Any]] = {}

    def row(self, hub: Hub, query: Query, index: int) -> LiveRow | None:
        """The live row of the ``index``-th entry for ``query``; None if it does not match."""
        made = self._made.get(query.text)
        if made is None:
            made = self._made[query.text] = [_UNMADE] * len(self.stored)
        row = made[index]
        if row is _UNMADE:
            row = made[index] = hub.live_row(query, self.stored[index])
        return row  # type: ignore[no-any-return]


class Subscription:
    """One browser's live stream: rows of new entries its query matches.

    Each commit's entries are offered to every subscription as one shared
    :class:`LiveBatch` (the writer does no work per browser); a subscription's stream takes
    rows of it as fast as its browser reads. One that falls :data:`LIVE_BACKLOG_BYTES` behind
    is ``overflowed``: its ``on_overflow`` disconnects it, so a browser that stops reading
    costs neither the ingest's speed nor unbounded memory."""

    def __init__(self, hub: Hub, query: Query, after_seq: int) -> None:
        self.hub = hub
        self.query = query
        self.after_seq = after_seq
        self.backlog: deque[LiveBatch] = deque()
        self.backlog_bytes = 0
        self.overflowed = False
        self.on_overflow: Callable[[], None] | None = None
        self._wake = asyncio.Event()

    def offer(self, batch: LiveBatch) -> None:
        """A commit's entries, shared with the others."""
        if self.overflowed:
            return
        self.backlog.append(batch)
        self.backlog_bytes += batch.size
        self._wake.set()
        if self.backlog_bytes > LIVE_BACKLOG_BYTES:
            self.overflowed = True
            self.backlog.clear()
            if self.on_overflow is not None:
                self.on_overflow()

    async def rows(self) -> AsyncIterator[LiveRow]:
        """The rows of the entries offered from now on, as they come, that the query matches."""
        while not self.overflowed:
            if not self.backlog:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self.backlog.popleft()
            for index, stored in enumerate(batch.stored):
                self.backlog_bytes -= len(stored.data)
                if stored.seq <= self.after_seq:
                    continue
                row = batch.row(self.hub, self.query, index)
                if row is not None:
                    yield row


class Hub:
    def __init__(
        self,
        settings: HubSettings,
        plugins: PluginManager,
        store: Store | None = None,
    ) -> None:
        self.settings = settings
        self.plugins = plugins
        self.macros = plugins.macros
        self.insertion_filter = compile_query(settings.insertion_filter, self.macros)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mizu-store")
        self._decoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mizu-frames")
        self._store_factory = store
        self.store: Store | None = None
        self.subscriptions: set[Subscription] = set()
        self._protocol_keys: dict[tuple[Any, ...], str] = {}
        """The key each protocol (names, colours) goes by in live rows, for every browser."""
        self.tappers: list[TapperState] = []
        self.status_providers: dict[str, Callable[[], dict[str, Any]]] = {}
        self.targets: TargetTracker | None = None
        """In a cluster: the pods to tap, pushed to each node's tapper (``mizu hub``)."""
        self.resolver: NameResolver | None = None
        """In a cluster: names for the entries' IPs, filled before the insertion filter."""
        self.filtered_out = 0
        self.packets_refused = 0
        self._packet_writes: set[asyncio.Task[int]] = set()
        self.started = time.time()
        self.oas = OasInference()
        self.observers = BudgetedObservers([self.oas.observe])
        """Fed newly committed entries on a thread of their own, off the store's path, sampled
        when they fall behind; read what they hold there too (:meth:`run_observers`)."""
        self._observing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mizu-observe")
        self._reader: WindowReader | None = None
        self._reader_apart = False
        self._reading = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mizu-views")
        self._pending: list[tuple[Sequence[EncodedEntry], asyncio.Future[int]]] = []
        self._writing: list[tuple[Sequence[EncodedEntry], asyncio.Future[int]]] = []
        """The frames of the write under way (kept and retried while the store fails)."""
        self._stopped = False
        self.store_fault: StoreFault | None = None
        """Why writes fail, while they do."""
        self.not_stored = 0
        """Entries the store refused (bad data), or still held when the hub stopped while the
        store failed."""
        self.refused_reason = ""
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._names: asyncio.Task[None] | None = None
        self._made: dict[str, dict[str, Any]] = {}
        """The entries :meth:`submit` encoded, by id, until stored: readers of the stored
        entries (live browsers, the observers) take them rather than decode what was made of
        them (local mode: each entry encoded once, never decoded)."""
        self._name_listeners: dict[Send, int] = {}
        """The attached tappers' senders, and the version of the name table each has."""

    async def start(self) -> None:
        settings = self.settings
        if self._store_factory is not None:
            self.store = self._store_factory
        else:
            self.store = await self.run(SqliteStore, settings.db_path, settings.max_db_bytes)
        self._reader, self._reader_apart = await self.run(open_reader, self.store)
        self._writer = asyncio.create_task(self._write_loop(), name="mizu-hub-writer")
        if self.resolver is not None:
            self._names = asyncio.create_task(self._push_names(), name="mizu-names")

    async def stop(self) -> None:
        """Commit what is pending and close the store (once: stopping again does nothing)."""
        if self._stopped:
            return
        self._stopped = True
        if self._names is not None:
            self._names.cancel()
            self._names = None
        if self._writer is not None:
            await self._drain()
            self._writer.cancel()
            self._writer = None
        self._reading.shutdown(wait=True)
        if self._reader is not None and self._reader_apart:
            self._reader.close()
        if self.store is not None:
            await self.run(self.store.close)
        self._executor.shutdown(wait=True)
        self._decoder.shutdown(wait=True)
        self._observing.shutdown(wait=True)

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run a store call on the store's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def decode(self, function: Callable[..., T], *args: Any) -> T:
        """Run a tapper frame's decoding on the decoder's thread, off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._decoder, function, *args)

    async def run_observers(self, function: Callable[..., T], *args: Any) -> T:
        """Run a call that reads the observers (OAS inference) on their thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._observing, function, *args)

    async def run_view(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function(reader, *args)``, a call that reads windows of stored entries (the
        service map, the statistics): on a thread of its own when the reader has its own
        connection (so ingest goes on meanwhile), else on the store's thread."""
        if self._reader is None:
            raise RuntimeError("this hub's store has no window reader")
        if not self._reader_apart:
            return await self.run(function, self._reader, *args)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reading, function, self._reader, *args)

    @property
    def protocols_by_macro(self) -> dict[str, dict[str, Any]]:
        """What the views show of each declared protocol, by its filter macro."""
        shown: dict[str, dict[str, Any]] = {}
        for plugin in self.plugins.plugins:
            for protocol in plugin.protocols:
                described = protocol.to_json()
                shown.setdefault(
                    protocol.macro,
                    {
                        name: described[name]
                        for name in (
                            "name",
                            "abbr",
                            "longName",
                            "backgroundColor",
                            "foregroundColor",
                        )
                    },
                )
        return shown

    @property
    def db(self) -> Store:
        assert self.store is not None, "the hub is not started"
        return self.store

    # -- ingest --------------------------------------------------------------------------------

    def submit(self, entries: Sequence[Mapping[str, Any]]) -> asyncio.Future[int]:
        """Queue entries for the next transaction; the future gives how many were new once
        they are committed. Name resolution, API rules, then the insertion filter and its
        redactions apply here (so the filter may keep only entries that break rules)."""
        kept = []
        for entry in entries:
            if not has_id(entry):
                continue
            if self.resolver is not None:
                entry = self.resolver.fill(dict(entry))
            prepared = self._checked_and_filtered(entry)
            if prepared is not None:
                encoded = encode_entry(prepared)
                kept.append(encoded)
                if isinstance(prepared, dict):
                    self._made[encoded[0]] = prepared
        return self._queue(kept)

    def submit_encoded(self, encoded: Sequence[EncodedEntry]) -> asyncio.Future[int]:
        """:meth:`submit` for entries encoded by :func:`~mizu_server.store.encode_entry` (as
        tappers send them, named already from the table the hub sends them:
        :meth:`attach_names`): decoded, changed and encoded again only where the API rules or
        the insertion filter need their content."""
        if self.settings.rules is None and self.insertion_filter.matches_all:
            return self._queue(encoded)
        kept = []
        for item in encoded:
            if not self._needs_content(item):
                kept.append(item)
                continue
            entry = decode_data(item[-1])
            prepared = self._checked_and_filtered(entry)
            if prepared is not None:
                kept.append(encode_entry(prepared))
        return self._queue(kept)

    def _needs_content(self, item: EncodedEntry) -> bool:
        """Whether rules or the insertion filter must see this entry's content."""
        return not self.insertion_filter.matches_all or (
            self.settings.rules is not None and item[_PROTOCOL] == "http"
        )

    def _checked_and_filtered(self, entry: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """``entry`` with the verdict of the API rules and the insertion filter's redactions;
        None when the filter leaves it out (counted)."""
        rules = self.settings.rules
        if rules is not None:
            entry = checked(rules, entry)
        query = self.insertion_filter
        if query.matches_all:
            return entry
        if not query(entry):
            self.filtered_out += 1
            return None
        return query.redact(entry)

    def _queue(self, encoded: Sequence[EncodedEntry]) -> asyncio.Future[int]:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((encoded, future))
        self._wake.set()
        return future

    def submit_packets(self, batches: list[dict[str, Any]]) -> None:
        """Keep a tapper's raw packets (pcap export); dropped and counted when it is off."""
        if not self.settings.pcap_export:
            if not self.packets_refused:
                log.warning("a tapper sends raw packets but pcap export is off: dropping them")
            self.packets_refused += sum(len(batch["frames"]) for batch in batches)
            return
        task = asyncio.create_task(self.run(self.db.insert_packets, batches))
        self._packet_writes.add(task)
        task.add_done_callback(self._packet_written)

    def _packet_written(self, task: asyncio.Task[int]) -> None:
        self._packet_writes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("storing raw packets failed: %s", task.exception())

    async def _write_loop(self) -> None:
        """Commit what is submitted, frames that arrive meanwhile in the next transaction. A
        write the store fails (a full disk) is retried, with a growing pause, until it
        succeeds: nothing is acknowledged before it is stored, and the hub says it is degraded
        meanwhile."""
        delay = RETRY_FIRST_SECONDS
        while True:
            if not self._writing:
                await self._wake.wait()
                self._wake.clear()
            self._writing += self._pending
            self._pending = []
            batch = self._writing
            if not batch:
                continue
            try:
                stored = await self.run(self._insert_frames, [frame for frame, _ in batch])
            except STORE_FAULTS as error:
                self._store_failed(error, batch)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
                continue
            delay = RETRY_FIRST_SECONDS
            self._writing = []
            if self.store_fault is not None:
                log.warning(
                    "storing entries works again after %.0f s (%d failed writes)",
                    time.time() - self.store_fault.since,
                    self.store_fault.failures,
                )
                self.store_fault = None
            encoded = [entry for frame, _ in batch for entry in frame]
            if self._made:
                for item in stored:
                    made = self._made.get(item.id)
                    if made is not None:
                        item.made_from(made)
                self._forget_made(encoded)
            if stored:
                # queued ahead of any read of the observers that follows this commit
                self._observing.submit(self._observe, stored)
            all_new = len(stored) == len(encoded)
            new_ids = set() if all_new else {item.id for item in stored}
            for frame, future in batch:
                if not future.done():
                    future.set_result(
                        len(frame) if all_new else sum(1 for entry in frame if entry[0] in new_ids)
                    )
            if stored and self.subscriptions:
                live = LiveBatch(stored)
                for subscription in list(self.subscriptions):
                    subscription.offer(live)

    def _forget_made(self, encoded: Sequence[EncodedEntry]) -> None:
        for item in encoded:
            self._made.pop(item[0], None)

    def _insert_frames(self, frames: list[Sequence[EncodedEntry]]) -> list[StoredEntry]:
        """Store the frames' entries (on the store's thread). A fault of the store itself
        (:data:`STORE_FAULTS`) is raised, to be retried; any other error is an entry the store
        refuses: the rest are stored one by one, and those it refuses counted and left out."""
        encoded = [entry for frame in frames for entry in frame]
        try:
            return self.db.insert_encoded(encoded)
        except STORE_FAULTS:
            raise
        except Exception as error:
            log.error(
                "storing %d entries failed (%s): storing them one by one, leaving out those the "
                "store refuses",
                len(encoded),
                error,
            )
        stored: list[StoredEntry] = []
        for entry in encoded:
            try:
                stored += self.db.insert_encoded([entry])
            except STORE_FAULTS:
                raise
            except Exception as error:
                self.not_stored += 1
                self.refused_reason = f"{type(error).__name__}: {error}"
        return stored

    def _store_failed(self, error: BaseException, batch: Sequence[tuple[Any, Any]]) -> None:
        reason = f"{type(error).__name__}: {error}"
        fault = self.store_fault
        if fault is None or fault.reason != reason:
            log.error(
                "storing %d entries failed (%s): retrying until it works; nothing is "
                "acknowledged meanwhile",
                sum(len(frame) for frame, _ in batch),
                reason,
            )
            self.store_fault = StoreFault(
                reason, fault.since if fault is not None else time.time(), 0
            )
        assert self.store_fault is not None
        self.store_fault.failures += 1

    def _observe(self, stored: list[StoredEntry]) -> None:
        try:
            self.observers.feed(_EntriesOf(stored))
        except Exception:  # an entry that does not decode must not stop the observers
            log.exception("observing %d entries failed", len(stored))

    async def _drain(self, seconds: float = DRAIN_SECONDS) -> None:
        """Wait until every submitted entry is committed, at most ``seconds`` while the store
        fails; what is left then is not stored, and not acknowledged (tappers send it again to
        the next hub): counted, said, and its waiters cancelled."""
        deadline = asyncio.get_running_loop().time() + seconds
        while self._pending or self._writing:
            waiting = [future for _, future in (*self._writing, *self._pending)]
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            await asyncio.wait(waiting, timeout=left)
        left_over = [*self._writing, *self._pending]
        if left_over:
            count = sum(len(frame) for frame, _ in left_over)
            self.not_stored += count
            log.error(
                "%d entries not stored: the store still fails (%s) as the hub stops; their "
                "tappers send them again",
                count,
                self.store_fault.reason if self.store_fault is not None else "?",
            )
            for frame, future in left_over:
                self._forget_made(frame)
                future.cancel()
            self._writing, self._pending = [], []

    # -- names for the tappers -----------------------------------------------------------------

    async def attach_names(self, send: Send) -> Callable[[], None]:
        """A tapper connected: send it the IP → name table now (``{"type": "names", "names":
        {ip: ["name.namespace", namespace]}}``), and again whenever it changed; it names its
        entries before it encodes them. Returns what detaches it."""
        if self.resolver is None:
            return lambda: None
        self._name_listeners[send] = -1
        await self._send_names(send)

        def detach() -> None:
            self._name_listeners.pop(send, None)

        return detach

    def names_first(self, send: Send) -> Send:
        """``send`` (an attached tapper's), sending the name table first when it changed since
        the tapper got it: the targets the hub sends never come before the names of their
        pods, which the same watch event brought."""

        async def send_after_names(message: dict[str, Any]) -> None:
            await self._send_names(send)
            await send(message)

        return send_after_names

    async def _send_names(self, send: Send) -> None:
        resolver = self.resolver
        if resolver is None or send not in self._name_listeners:
            return
        version = resolver.version
        if self._name_listeners[send] != version:
            self._name_listeners[send] = version
            await send({"type": "names", "names": resolver.table()})

    async def _push_names(self) -> None:
        while True:
            await asyncio.sleep(NAMES_INTERVAL)
            for send in list(self._name_listeners):
                try:
                    await self._send_names(send)
                except Exception as error:  # a tapper gone: its socket's end detaches it
                    log.debug("sending names to a tapper failed: %s", error)

    # -- reading -------------------------------------------------------------------------------

    def compile(self, text: str) -> Query:
        return compile_query(text, self.macros)

    def row(self, query: Query, entry: Mapping[str, Any]) -> Row:
        row = entry_row(self.plugins, query.redact(entry))
        if isinstance(entry.get("rules"), Mapping):
            row["rules"] = rules_row(entry["rules"])
        return row

    def live_row(self, query: Query, stored: StoredEntry) -> LiveRow | None:
        """``stored`` as the live stream sends it to a browser with ``query``; None when the
        query does not match it (or it does not decode: listings leave it out too)."""
        try:
            entry = stored.entry
        except ValueError:
            return None
        if not query(entry):
            return None
        # ``seq`` is the row's leftOff: the dashboard pages its bounded window from it
        return self.row_message({**self.row(query, entry), "seq": stored.seq})

    def row_message(self, row: dict[str, Any]) -> LiveRow:
        """A row as a live ``{type: "entry"}`` message, its ``proto`` a key of the hub's
        protocol table (the same for every browser)."""
        protocol = row.get("proto")
        key = ""
        if isinstance(protocol, Mapping):
            identity = tuple(protocol.items())
            key = self._protocol_keys.get(identity) or self._protocol_key(identity)
            row = {**row, "proto": key}
        else:
            protocol = None
        return LiveRow(encode_json({"type": "entry", "data": row}).decode(), key, protocol)

    def _protocol_key(self, identity: tuple[Any, ...]) -> str:
        key = self._protocol_keys[identity] = str(len(self._protocol_keys))
        return key

    def subscribe(self, query: Query, after_seq: int) -> Subscription:
        subscription = Subscription(self, query, after_seq)
        self.subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self.subscriptions.discard(subscription)

    def connect_tapper(self, tapper_id: str, remote: str) -> TapperState:
        state = TapperState(tapper_id, remote)
        self.tappers = [t for t in self.tappers if t.connected or t.tapper_id != tapper_id]
        self.tappers.append(state)
        return state

    async def status(self) -> dict[str, Any]:
        fault = self.store_fault
        health: dict[str, Any] = {"status": "ok" if fault is None else "degraded"}
        if fault is not None:
            since = time.strftime("%H:%M:%S", time.localtime(fault.since))
            health["reason"] = (
                f"storing entries fails since {since} ({fault.failures} tries): "
                f"{fault.reason}; retrying, and nothing is lost: "
                f"{sum(len(frame) for frame, _ in (*self._writing, *self._pending)):,} entries "
                "wait to be stored"
            )
        health["notStored"] = self.not_stored
        if self.refused_reason:
            health["refusedBecause"] = self.refused_reason
        return {
            **health,
            "uptimeSeconds": round(time.time() - self.started, 1),
            "store": await self.run(self.db.status),
            "filteredOut": self.filtered_out,
            "observers": self.observers.as_json(),
            "liveClients": len(self.subscriptions),
            "tappers": sum(1 for tapper in self.tappers if tapper.connected),
        }
