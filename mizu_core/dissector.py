"""The per-connection side of the plugin API: what a plugin's ``dissect`` hook gets and returns.

A :class:`Dissector` is a small, stateful, sans-IO object: the core feeds it the reassembled
bytes of both directions of one connection, chunk by chunk and in capture order, tells it about
gaps (bytes the capture lost) and about the end of the connection. It decodes messages and hands
pairs to its :class:`ConnectionContext`, usually through one of the context's matchers.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from mizu_core.model import ConnectionInfo, ConnectionStats, Direction, Message, Pair
from mizu_core.pairing import UNPAIRED_CLOSED, Emitter, InOrderMatcher, KeyedMatcher, Matcher


class Verdict(enum.Enum):
    """A ``dissect`` answer other than a dissector or ``None``."""

    NEED_MORE = "need-more"


NEED_MORE = Verdict.NEED_MORE
"""Returned by ``dissect`` when the bytes so far neither prove nor rule out the protocol."""


class CloseReason(enum.StrEnum):
    """How a connection ended, as the ``tcp`` entries report it."""

    FIN = "FIN"
    RST = "RST"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    OPEN = "open"
    """Still open when the capture ended (or when the core dropped it to save memory)."""


@dataclass(frozen=True, slots=True)
class Layer:
    """A layer a dissector took off its connection (TLS, say): the inner connection runs
    under it.

    Every entry of the inner connection carries ``fields`` under the key ``name`` (``"tls":
    {"version": ..., "sni": ..., "decrypted": true}``), so the filter language can select it.
    ``application_protocol`` is what the layer says runs inside, in ALPN's words (``h2``,
    ``http/1.1``), or "" when it does not say; inner plugins may read it as a hint.
    """

    name: str
    fields: Mapping[str, Any]
    application_protocol: str = ""


class InnerConnection:
    """The connection inside a layer, as :meth:`ConnectionContext.unwrap` returns it.

    The unwrapping dissector feeds it the inner bytes of each direction (decrypted, say) as
    the core feeds a plain connection; the core offers them to the plugins and feeds the
    dissector that claims them. Its methods never raise: a failing inner dissector is
    isolated as any other."""

    __slots__ = ()

    def feed(self, direction: Direction, data: bytes, timestamp: float) -> None:
        """Inner bytes that follow, without loss, the last ones fed for ``direction``."""
        raise NotImplementedError

    def gap(self, direction: Direction, length: int, timestamp: float) -> None:
        """``length`` inner bytes of ``direction`` are lost (0 when their number is unknown)."""
        raise NotImplementedError

    def close(self, timestamp: float, reason: CloseReason) -> None:
        """The inner connection ended; further calls are ignored."""
        raise NotImplementedError


_NO_SETTINGS: Mapping[str, Any] = MappingProxyType({})


class ConnectionContext:
    """What the core gives a dissector: its connection, pairing helpers and the pair sink."""

    __slots__ = (
        "_emitter",
        "_matchers",
        "_settings",
        "_swap",
        "_unwrap",
        "connection",
        "layers",
        "owner",
        "stats",
    )

    def __init__(
        self,
        connection: ConnectionInfo,
        stats: ConnectionStats,
        sink: Callable[[Pair], None],
        counters: dict[str, Counter[str]] | None = None,
        swap: Callable[[], None] | None = None,
        unwrap: Callable[[Layer], InnerConnection] | None = None,
        layers: tuple[Layer, ...] = (),
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.connection = connection
        self.stats = stats
        self.owner = ""
        """The name of the plugin whose dissector has the connection, or which is being asked
        for one ("" before the first offer)."""
        self.layers = layers
        """The layers this connection runs under, outermost first (empty for a connection
        seen on the wire as it is)."""
        self._emitter = Emitter(self, connection, sink, counters if counters is not None else {})
        self._matchers: list[Matcher] = []
        self._swap = swap
        self._unwrap = unwrap
        self._settings = settings if settings is not None else {}

    @property
    def settings(self) -> Any:
        """The settings of the plugin that has the connection (or is asked for it): what its
        ``configure`` hook returned, or, when that returned None, its ``plugins.<name>.*``
        keys as given (a mapping, empty when there were none). They come from the config
        file and ``--set``, in every command that runs plugins."""
        return self._settings.get(self.owner, _NO_SETTINGS)

    def unwrap(self, layer: Layer) -> InnerConnection:
        """Open the connection that runs inside ``layer`` (the decrypted streams of a TLS
        connection, say). The core offers its bytes to the plugins as it offers a plain
        connection's, in their ranking, less the unwrapping plugin and the ``tcp`` plugin
        (the unwrapping plugin's own entry stands for the connection), and every entry made
        of them carries ``layer.fields`` under ``layer.name``. Close it when the outer
        connection ends; the core closes what is left open when the dissector fails."""
        if self._unwrap is None:
            raise RuntimeError("this context cannot open inner connections (no dispatcher)")
        return self._unwrap(layer)

    def swap_roles(self) -> bool:
        """Say that the core guessed client and server the wrong way round (a capture that
        started mid-connection on ports that did not tell): ``connection.client`` and
        ``.server`` swap, and every byte fed from now on carries the corrected direction.
        Returns False, changing nothing, when the roles were seen in the handshake."""
        if not self.connection.role_guessed or self._swap is None:
            return False
        self._swap()
        return True

    def count(self, name: str, amount: int = 1) -> None:
        """Add to one of the plugin's counters (heartbeats...): they appear under the plugin's
        name in the capture's stats (the hub's status). ``resyncs`` (the times the dissector
        found its framing again after a gap or a start mid-connection) and ``bytes_skipped``
        (what it passed over meanwhile) are shown in ``mizu dissect``'s summary too, beside the
        ``paired`` and ``unpaired.<reason>`` counts the core keeps of what is emitted."""
        self.counters[name] += amount

    @property
    def counters(self) -> Counter[str]:
        """The plugin's counters themselves, for a dissector that counts on every feed:
        ``counters["frames"] += n`` spares :meth:`count`'s call. The owner is known from the
        ``dissect`` hook on, so a dissector may keep them from its constructor."""
        return self._emitter.counters()

    def emit(
        self, request: Message | None, response: Message | None, unpaired: str | None = None
    ) -> None:
        """Hand a finished pair, or a lone message, to the core. A lone message whose protocol
        has a partner for it says why it is alone: ``unpaired`` is ``gap`` (the capture lost
        the partner), ``midstream`` (the partner came before the capture joined), ``timeout``
        or ``closed``; None for a pair and for a one-way message (a pushed message). The core
        counts ``paired`` and ``unpaired.<reason>`` under the plugin's name."""
        self._emitter.emit(request, response, unpaired)

    @property
    def emitter(self) -> Callable[[Message | None, Message | None, str | None], None]:
        """What :meth:`emit` calls: the same function without this method's interpreted call
        around it (about 2,000 instructions), for a compiled dissector that emits a lone
        message for nearly every frame; keep it from the constructor on, as ``counters``."""
        return self._emitter.emit

    def in_order_matcher(self, max_pending: int = 1024) -> InOrderMatcher:
        """A matcher pairing responses with requests in order (HTTP/1.x pipelining)."""
        matcher = InOrderMatcher(self._emitter.emit, max_pending, self.connection.role_guessed)
        self._matchers.append(matcher)
        return matcher

    def keyed_matcher(self, max_pending: int = 4096) -> KeyedMatcher:
        """A matcher pairing responses with requests by a key the protocol carries."""
        matcher = KeyedMatcher(self._emitter.emit, max_pending, self.connection.role_guessed)
        self._matchers.append(matcher)
        return matcher

    @property
    def pending(self) -> int:
        return sum(matcher.pending for matcher in self._matchers)

    def expire(self, older_than: float) -> int:
        """Emit, unanswered (``timeout``), the requests of every matcher older than
        ``older_than``."""
        return sum(matcher.expire(older_than) for matcher in self._matchers)

    def flush(self, reason: str = UNPAIRED_CLOSED) -> int:
        """Emit every pending request unanswered, marked ``reason``. The core does this when
        the connection ends (``closed``); a dissector does it too when a gap means the answers
        to come cannot be told apart (``flush(reason="gap")``)."""
        return sum(matcher.flush(reason) for matcher in self._matchers)


class Dissector:
    """Base class of a connection's dissector. Subclasses implement :meth:`feed`."""

    def __init__(self, context: ConnectionContext) -> None:
        self.context = context

    def feed(self, direction: Direction, data: bytes, timestamp: float) -> None:
        """Bytes that follow, without loss, the last ones fed for ``direction``."""
        raise NotImplementedError

    def gap(self, direction: Direction, length: int, timestamp: float) -> None:
        """``length`` bytes of ``direction`` were lost by the capture; the next :meth:`feed`
        for it starts after them. Drop any partial message and resynchronise."""

    def close(self, timestamp: float, reason: CloseReason) -> None:
        """The connection ended. Emit whatever is complete; pending requests are flushed
        unanswered by the core after this returns."""
