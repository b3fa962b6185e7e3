"""Offering connections to plugins and feeding the dissector that claims each one.

A new connection's first bytes are kept (in capture order, both directions) while the plugins
are asked, lowest priority number first, whether it is theirs. The first plugin to return a
dissector gets the connection and is fed what was kept, then everything that follows. A plugin
that is "not sure yet" holds the offer until it has seen :attr:`Dispatcher.offer_limit` bytes;
then it counts as a refusal. The built-in ``tcp`` plugin ranks last and takes what no one else
does.

A dissector may take a layer off its connection (TLS with a key log) and open the inner
connection (:meth:`ConnectionContext.unwrap`): its bytes are offered to the plugins the same
way, and entries made of them carry the layer's fields.

Pairs that dissectors emit are collected while they run and become entries here once the
dissector's call has returned (the owner plugin's ``analyze`` hook, then its verdict on
whether the entry is an error, from its ``is_error`` or else its ``summarize``, kept as
``entry["error"]``), then go to the sink:
the sink runs outside the isolation of plugins, so an error of the output (a closed pipe, a
full disk) is the caller's, never blamed on a plugin. Requests left unanswered longer than
:attr:`Dispatcher.response_timeout` become entries without a response.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from mizu_core.dissector import (
    NEED_MORE,
    CloseReason,
    ConnectionContext,
    Dissector,
    InnerConnection,
    Layer,
)
from mizu_core.entries import EntryBuilder
from mizu_core.model import ConnectionInfo, Direction, Endpoint, Pair
from mizu_core.pairing import UNPAIRED_TIMEOUT
from mizu_core.plugins import LoadedPlugin, PluginManager, PluginStalled
from mizu_core.reassembly import Connection
from mizu_core.tcp_plugin import TCP

EntrySink = Callable[[dict[str, Any]], None]
MAX_PENDING = 50_000
"""Requests waiting for their answer across every connection, at most (checked once a second
of capture): with the connections themselves, what keeps a tapper within 1 GiB however many
connections are left waiting."""
_Analyzer = tuple[LoadedPlugin | None, Callable[..., Any] | None, Callable[..., Any] | None, bool]
"""The plugin that makes a protocol's entries, its ``analyze``, and the hook that says whether
an entry is an error: its ``is_error`` (the last item true), else its ``summarize``."""


class PluginCall(NamedTuple):
    """A call of the dispatcher into a plugin, under way (:meth:`Dispatcher.plugin_call`)."""

    serial: int
    """Another for every call (and for every return to an outer one): the same serial seen
    a while later is the same call, still running."""
    plugin: str
    connection: ConnectionInfo | None
    """The connection it is dissecting, if any."""


@dataclass(slots=True)
class DispatchStats:
    entries: int = 0
    unanswered: int = 0
    connections_claimed: dict[str, int] = field(default_factory=dict)
    connections_unclaimed: int = 0
    inner_connections: int = 0
    """Connections opened inside a layer (claimed or not, they count above too)."""
    shed_pending: int = 0
    """Requests ended unanswered before their time: more were pending, across connections,
    than :attr:`Dispatcher.max_pending` allows."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "entries": self.entries,
            "unanswered": self.unanswered,
            "shed_pending": self.shed_pending,
            "connections_claimed": dict(self.connections_claimed),
            "connections_unclaimed": self.connections_unclaimed,
            "inner_connections": self.inner_connections,
        }


class _State:
    """What the dispatcher keeps per connection."""

    __slots__ = (
        "candidates",
        "chunks",
        "context",
        "dissector",
        "entry_count",
        "entry_prefix",
        "heads",
        "inner",
        "layers",
        "owner",
        "ranking",
        "root",
    )

    def __init__(
        self,
        ranking: list[LoadedPlugin],
        entry_prefix: str,
        root: _State | None = None,
        layers: tuple[Layer, ...] = (),
    ) -> None:
        self.ranking = ranking
        """The plugins this connection may go to, in their order."""
        self.candidates = list(ranking)
        self.entry_prefix = entry_prefix
        """What the ids of the connection's entries start with (tapper, connection number)."""
        self.root: _State = root or self
        """The state of the connection on the wire, which numbers the entries of its layers."""
        self.layers = layers
        self.inner: list[_Inner] = []
        """The connections opened inside this one's layers."""
        self.chunks: list[tuple[Direction, bytes, int, float]] = []
        self.heads = [bytearray(), bytearray()]
        self.context: ConnectionContext | None = None
        self.dissector: Dissector | None = None
        self.owner: LoadedPlugin | None = None
        self.entry_count = 0


class _Inner(InnerConnection):
    """A connection inside a layer: fed by the outer dissector, dispatched as a plain one."""

    __slots__ = ("closed", "dispatcher", "info", "state")

    def __init__(self, dispatcher: Dispatcher, info: ConnectionInfo, state: _State) -> None:
        self.dispatcher = dispatcher
        self.info = info
        self.state: object = state
        self.closed = False

    def feed(self, direction: Direction, data: bytes, timestamp: float) -> None:
        if not self.closed and data:
            self.dispatcher.feed(self, direction, data, timestamp)

    def gap(self, direction: Direction, length: int, timestamp: float) -> None:
        if not self.closed:
            self.dispatcher.lost(self, direction, length, timestamp)

    def close(self, timestamp: float, reason: CloseReason) -> None:
        if not self.closed:
            self.closed = True
            self.dispatcher.end(self, reason, timestamp)


Stream = Connection | _Inner
"""What the dispatcher feeds: a TCP connection, or a connection inside a layer (the compiled
build checks the type of every argument: a duck-typed stand-in would be refused)."""


class Dispatcher:
    """The reassembler's consumer: plugins in, entries out."""

    def __init__(
        self,
        plugins: PluginManager,
        sink: EntrySink,
        tapper_id: str = "local",
        offer_limit: int = 16 << 10,
        response_timeout: float = 30.0,
        on_pair: Callable[[Pair], None] | None = None,
    ) -> None:
        self.plugins = plugins
        if not plugins.configured:
            plugins.configure({})  # every plugin is configured before its first connection
        self.on_pair = on_pair
        self.sink = sink
        self.tapper_id = tapper_id
        self.offer_limit = offer_limit
        self.response_timeout = response_timeout
        self.max_pending = MAX_PENDING
        self.stats = DispatchStats()
        self.builder = EntryBuilder()
        self.plugin_counters: dict[str, Counter[str]] = {}
        self.swap_roles: Callable[[Connection], None] | None = None
        """Set by the engine to the reassembler's, for ConnectionContext.swap_roles."""
        self._live: dict[_State, None] = {}
        """The states of the claimed connections still open, in the order they were claimed."""
        self._analyzers: dict[str, _Analyzer] = {}
        """The plugin and ``analyze`` hook of each declared protocol seen in a pair."""
        self._emitted: list[tuple[_State, Pair]] = []
        """Pairs the dissectors emitted during the current call, made entries after it."""
        self._busy_plugin: LoadedPlugin | None = None
        """The plugin the dispatcher is calling (a dissector's method, a hook), None between
        calls; with the connection's state and the call's serial, what the watchdog sees of
        the call (:mod:`mizu_core.watchdog`: the dispatcher is compiled, it has no frames to
        look at). Three stores around each call cost next to nothing."""
        self._busy_state: _State | None = None
        self._busy_serial = 0

    def plugin_call(self) -> PluginCall | None:
        """The innermost call into a plugin under way, None when there is none."""
        plugin = self._busy_plugin
        if plugin is None:
            return None
        state = self._busy_state
        context = state.context if state is not None else None
        info = context.connection if context is not None else None
        return PluginCall(self._busy_serial, plugin.name, info)

    def _calling(self, plugin: LoadedPlugin | None, state: _State | None) -> None:
        """Note the call that starts (or, after one, the outer one that goes on, if any)."""
        self._busy_plugin = plugin
        self._busy_state = state
        self._busy_serial += 1

    # -- the reassembler's callbacks -----------------------------------------------------------

    def opened(self, connection: Connection) -> None:
        state = _State(self.plugins.plugins, f"{self.tapper_id}-{connection.info.number}-")
        connection.state = state
        swap_roles = self.swap_roles
        state.context = ConnectionContext(
            connection.info,
            connection.stats,
            functools.partial(self._collect, state),
            self.plugin_counters,
            (lambda: swap_roles(connection)) if swap_roles is not None else None,
            functools.partial(self._unwrap, state),
            settings=self.plugins.settings,
        )

    def _unwrap(self, outer: _State, layer: Layer) -> InnerConnection:
        context = outer.context
        assert context is not None
        unwrapper = outer.owner
        ranking = [
            plugin
            for plugin in self.plugins.plugins
            if plugin is not unwrapper and plugin.name != TCP.name
        ]
        state = _State(ranking, outer.entry_prefix, outer.root, (*outer.layers, layer))
        inner = _Inner(self, context.connection, state)
        state.context = ConnectionContext(
            context.connection,
            context.stats,
            functools.partial(self._collect, state),
            self.plugin_counters,
            None,
            functools.partial(self._unwrap, state),
            state.layers,
            settings=self.plugins.settings,
        )
        outer.inner.append(inner)
        self.stats.inner_connections += 1
        if not ranking:
            self.stats.connections_unclaimed += 1
        return inner

    def data(self, connection: Connection, direction: Direction, data: bytes, time: float) -> None:
        self.feed(connection, direction, data, time)
        if self._emitted:
            self._drain()

    def gap(self, connection: Connection, direction: Direction, length: int, time: float) -> None:
        self.lost(connection, direction, length, time)
        if self._emitted:
            self._drain()

    def closed(self, connection: Connection, reason: CloseReason, time: float) -> None:
        self.end(connection, reason, time)
        if self._emitted:
            self._drain()

    # -- feeding, without making entries yet (a layer's inner connection is fed from within its
    # outer dissector's call) ---------------------------------------------------------------

    def feed(self, connection: Stream, direction: Direction, data: bytes, time: float) -> None:
        state: _State = connection.state  # type: ignore[assignment]
        dissector = state.dissector
        if dissector is not None:
            outer_plugin, outer_state = self._busy_plugin, self._busy_state
            self._calling(state.owner, state)
            try:
                dissector.feed(direction, data, time)
            except (Exception, PluginStalled) as error:
                self._dissector_failed(state, "feed", error)
            finally:
                self._calling(outer_plugin, outer_state)
            return
        if not state.candidates:
            return
        state.chunks.append((direction, data, 0, time))
        state.heads[direction] += data
        self._offer(connection, state, final=False)

    def lost(self, connection: Stream, direction: Direction, length: int, time: float) -> None:
        state: _State = connection.state  # type: ignore[assignment]
        dissector = state.dissector
        if dissector is not None:
            outer_plugin, outer_state = self._busy_plugin, self._busy_state
            self._calling(state.owner, state)
            try:
                dissector.gap(direction, length, time)
            except (Exception, PluginStalled) as error:
                self._dissector_failed(state, "gap", error)
            finally:
                self._calling(outer_plugin, outer_state)
            return
        if state.candidates:
            # The offer goes on with what follows the gap; a claimer is told of it on replay.
            state.chunks.append((direction, b"", length, time))
            state.heads[direction].clear()

    def end(self, connection: Stream, reason: CloseReason, time: float) -> None:
        state: _State = connection.state  # type: ignore[assignment]
        if state.dissector is None and state.candidates:
            self._offer(connection, state, final=True)
        dissector = state.dissector
        if dissector is not None:
            outer_plugin, outer_state = self._busy_plugin, self._busy_state
            self._calling(state.owner, state)
            try:
                dissector.close(time, reason)
            except (Exception, PluginStalled) as error:
                self._dissector_failed(state, "close", error)
            finally:
                self._calling(outer_plugin, outer_state)
        for inner in state.inner:
            inner.close(time, reason)  # those the dissector left open (it failed, say)
        if state.context is not None:
            self.stats.unanswered += state.context.flush()
        self._live.pop(state, None)
        state.chunks.clear()

    # -- offering ------------------------------------------------------------------------------

    def _offer(self, connection: Stream, state: _State, final: bool) -> None:
        context = state.context
        assert context is not None
        client_head = bytes(state.heads[Direction.CLIENT_TO_SERVER])
        server_head = bytes(state.heads[Direction.SERVER_TO_CLIENT])
        over_limit = final or len(client_head) + len(server_head) >= self.offer_limit
        client = connection.info.client  # the chunks kept were recorded with these roles
        for plugin in list(state.candidates):
            context.owner = plugin.name  # what the plugin counts while asked is its own
            outer_plugin, outer_state = self._busy_plugin, self._busy_state
            self._calling(plugin, state)
            try:
                answer = self.plugins.call(
                    plugin,
                    "dissect",
                    context=context,
                    client_head=client_head,
                    server_head=server_head,
                )
            finally:
                self._calling(outer_plugin, outer_state)
            if isinstance(answer, Dissector):
                self._claim(connection, state, plugin, answer, client)
                return
            if answer is NEED_MORE and not over_limit:
                return  # a plugin ranked higher is not sure yet: the others wait
            state.candidates.remove(plugin)
        context.owner = ""
        self.stats.connections_unclaimed += 1
        state.chunks.clear()
        state.heads = [bytearray(), bytearray()]

    def _claim(
        self,
        connection: Stream,
        state: _State,
        plugin: LoadedPlugin,
        dissector: Dissector,
        client: Endpoint,
    ) -> None:
        state.owner = plugin
        state.dissector = dissector
        assert state.context is not None
        state.context.owner = plugin.name
        state.candidates = []
        state.heads = [bytearray(), bytearray()]
        claimed = self.stats.connections_claimed
        claimed[plugin.name] = claimed.get(plugin.name, 0) + 1
        self._live[state] = None
        outer_plugin, outer_state = self._busy_plugin, self._busy_state
        self._calling(plugin, state)
        try:
            self._replay(connection, state, dissector, client)
        finally:
            self._calling(outer_plugin, outer_state)

    def _replay(
        self, connection: Stream, state: _State, dissector: Dissector, client: Endpoint
    ) -> None:
        """Feed a dissector that just claimed the connection what was kept while offering."""
        chunks, state.chunks = state.chunks, []
        for index, (recorded, data, lost, time) in enumerate(chunks):
            # The dissector may have swapped the roles: the chunks kept follow suit.
            direction = recorded if connection.info.client == client else recorded.reverse
            if state.dissector is not dissector:
                # It failed during the replay: the rest goes to the plugins ranked after it.
                swapped = connection.info.client != client
                for recorded, data, lost, time in chunks[index:]:
                    direction = recorded.reverse if swapped else recorded
                    if lost:
                        self.lost(connection, direction, lost, time)
                    else:
                        self.feed(connection, direction, data, time)
                return
            try:
                if lost:
                    dissector.gap(direction, lost, time)
                else:
                    dissector.feed(direction, data, time)
            except (Exception, PluginStalled) as error:
                self._dissector_failed(state, "feed", error)

    def _dissector_failed(self, state: _State, where: str, error: BaseException) -> None:
        """Isolate a dissector that raised: it gets no more bytes of this connection, which is
        offered again, from its next bytes, to the plugins ranked after the failed one (the
        ``tcp`` plugin at least), so that it stays visible."""
        failed = state.owner
        assert failed is not None
        self.plugins.failed(failed, f"dissector.{where}", error)
        ranking = state.ranking
        state.dissector = None
        state.owner = None
        state.candidates = ranking[ranking.index(failed) + 1 :] if failed in ranking else []

    # -- pairs and entries ---------------------------------------------------------------------

    def _collect(self, state: _State, pair: Pair) -> None:
        """A dissector's pair (the context's sink): kept until the dissector's call returns."""
        self._emitted.append((state, pair))

    def _drain(self) -> None:
        """Make entries of the pairs emitted, in their order, and hand them to the sink."""
        emitted, self._emitted = self._emitted, []
        for state, pair in emitted:
            self._pair(state, pair)

    def _pair(self, state: _State, pair: Pair) -> None:
        on_pair = self.on_pair
        if on_pair is not None:
            on_pair(pair)
        root = state.root
        count = root.entry_count = root.entry_count + 1
        entry = self.builder.build(f"{state.entry_prefix}{count}", pair)
        for layer in state.layers:
            entry[layer.name] = dict(layer.fields)
        analyzed = self._analyzed(state, pair, entry)
        if analyzed is not None:
            self.stats.entries += 1
            self.sink(analyzed)

    def _analyzed(self, state: _State, pair: Pair, entry: dict[str, Any]) -> dict[str, Any] | None:
        """``entry`` as its protocol's plugin makes it (``analyze``, then its error verdict);
        None when ``analyze`` fails.

        The verdict is the plugin's ``is_error``, or the ``error`` of its ``summarize`` when it
        has no ``is_error``, asked once, when the entry is made, and kept as the entry's
        ``error``: filters, the hub's store, the service map and the statistics read the
        plugin's word from there, and never guess it from a status code. A verdict hook that
        raises is counted against its plugin, and says no error."""
        name = (pair.request or pair.response).protocol.name  # type: ignore[union-attr]
        owner, analyze, verdict, verdict_only = self._analyzers.get(name) or self._analyzer(
            name, state
        )
        outer_plugin, outer_state = self._busy_plugin, self._busy_state
        self._calling(owner, state)
        try:
            if analyze is not None:
                try:
                    analyzed = analyze(pair=pair, entry=entry)
                except (Exception, PluginStalled) as failure:
                    assert owner is not None
                    self.plugins.failed(owner, "analyze", failure)
                    return None
                if analyzed is not None:
                    entry = analyzed
            error = False
            if verdict is not None:
                try:
                    answer = verdict(entry=entry)
                except (Exception, PluginStalled) as failure:
                    assert owner is not None
                    self.plugins.failed(owner, "is_error" if verdict_only else "summarize", failure)
                else:
                    if verdict_only:
                        error = answer is True
                    else:
                        error = bool(answer and answer.get("error") is True)
            entry["error"] = error
        finally:
            self._calling(outer_plugin, outer_state)
        return entry

    def _analyzer(self, protocol_name: str, state: _State) -> _Analyzer:
        """Who analyzes a pair of ``protocol_name``: the plugin that declared the protocol
        (remembered: declarations do not change), else the connection's owner."""
        declarer = self.plugins.owner(protocol_name)
        if declarer is not None:
            analyzer = self._analyzers[protocol_name] = _hooks_of(declarer)
            return analyzer
        return _hooks_of(state.owner)

    def expire(self, now: float) -> None:
        """Turn requests unanswered for longer than the response timeout into entries; and,
        when more than :attr:`max_pending` wait across connections, those of the connections
        claimed first, until a tenth fewer wait (the memory of a tapper stays bounded whatever
        the number of connections left waiting)."""
        older_than = now - self.response_timeout
        pending = 0
        for state in list(self._live):
            if state.context is not None:
                self.stats.unanswered += state.context.expire(older_than)
                pending += state.context.pending
        if pending > self.max_pending:
            excess = pending - int(self.max_pending * 0.9)
            for state in self._live:
                if excess <= 0:
                    break
                if state.context is not None:
                    shed = state.context.flush(UNPAIRED_TIMEOUT)  # a timeout, only sooner
                    self.stats.unanswered += shed
                    self.stats.shed_pending += shed
                    excess -= shed
        if self._emitted:
            self._drain()


def _hooks_of(plugin: LoadedPlugin | None) -> _Analyzer:
    if plugin is None:
        return None, None, None, False
    is_error = plugin.hooks.get("is_error")
    if is_error is not None:
        return plugin, plugin.hooks.get("analyze"), is_error, True
    return plugin, plugin.hooks.get("analyze"), plugin.hooks.get("summarize"), False
