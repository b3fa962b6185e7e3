"""The hooks a Mizu plugin implements.

A plugin is a module (or object) registered under the ``mizu.plugins`` entry-point group whose
functions are marked with :data:`mizu_core.hookimpl`. The core never broadcasts a hook to every
plugin: it calls one plugin's implementation at a time, in Mizu's priority order for
:func:`dissect` and to the plugin that owns an entry's protocol for :func:`analyze`,
:func:`summarize`, :func:`is_error` and :func:`represent`. A plugin that raises is isolated: the
error is counted against its name and the capture goes on.

Hooks are called per connection or per entry, never per packet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mizu_core.markers import hookimpl, hookspec, implemented_by

if TYPE_CHECKING:
    from mizu_core.dissector import ConnectionContext, Dissector, Verdict
    from mizu_core.entry import Entry, Representation, Summary
    from mizu_core.model import Pair, Protocol

__all__ = ["hookimpl", "hookspec", "implemented_by"]
"""The markers, re-exported where the specifications are (as datasette does)."""


# ---------------------------------------------------------------------------------------------
# Start-up
# ---------------------------------------------------------------------------------------------


@hookspec
def protocols() -> Sequence[Protocol]:
    """Declare the protocols this plugin dissects.

    Called once when the plugin is loaded. The lowest ``priority`` among the returned protocols
    is the plugin's rank: connections are offered to plugins from the lowest rank up (HTTP 0,
    AMQP 1, Kafka 2; ties broken by plugin name).

    :returns: one :class:`~mizu_core.Protocol` per protocol (an HTTP plugin declares HTTP/1.1,
        HTTP/2, gRPC and WebSocket, say). At least one.
    """


@hookspec
def configure(settings: Mapping[str, Any]) -> object:
    """Receive this plugin's settings (the ``plugins.<name>.*`` keys of the config file and of
    ``--set``, in every command that runs plugins).

    Called once at start-up, before any connection is offered, also when ``settings`` is empty.
    Validate the keys here: raise :class:`ValueError` naming the key for an unknown key or a bad
    value, and the command stops with that message (``plugins.<name>: <message>``).

    :param settings: the plugin's own keys (without the ``plugins.<name>.`` prefix).
    :returns: the settings parsed (a dataclass, say): the plugin's dissectors read them as
        :attr:`ConnectionContext.settings <mizu_core.ConnectionContext.settings>`, never from
        a module global. ``None`` leaves them the keys as given.
    """


# ---------------------------------------------------------------------------------------------
# Per connection
# ---------------------------------------------------------------------------------------------


@hookspec
def dissect(
    context: ConnectionContext, client_head: bytes, server_head: bytes
) -> Dissector | Verdict | None:
    """Claim a new connection, or decline it.

    Called with the first bytes each side sent (either may be empty: a server-first protocol
    sees ``client_head == b""``), again each time more bytes arrive while the answer is
    :data:`~mizu_core.NEED_MORE`, up to a bound (then the connection goes to the next plugin).
    Ports are in ``context.connection``; treat them as hints. The first bytes may be the middle
    of a message when the capture started mid-connection. A connection inside a layer another
    plugin took off (decrypted TLS) is offered the same way; ``context.layers`` names its
    layers, and a dissector that takes a layer off itself opens the inner connection with
    ``context.unwrap`` (docs/plugins.md, "Layers").

    :param context: the connection, the pairing helpers and the way to emit pairs.
    :param client_head: what the client sent so far (contiguous from the first byte captured).
    :param server_head: what the server sent so far.
    :returns: a :class:`~mizu_core.Dissector` that takes the connection from now on (it is then
        fed the bytes seen so far, in their original order), :data:`~mizu_core.NEED_MORE` to be
        asked again with more bytes, or ``None`` when the connection is not this plugin's.
    """


# ---------------------------------------------------------------------------------------------
# Per entry
# ---------------------------------------------------------------------------------------------


@hookspec
def analyze(pair: Pair, entry: Entry) -> Entry | None:
    """Turn a pair into the entry stored and shown (docs/entries.md).

    The core has filled the generic fields (``id``, ``protocol``, ``src``, ``dst``, times,
    sizes) and copied the messages' ``data`` to ``request`` and ``response``. Change what the
    protocol needs (decode bodies, add fields) and return the entry, or return ``None`` to keep
    it as it is. Called only for pairs of this plugin's protocols.

    :param pair: the messages with their protocol, direction, times and wire sizes.
    :param entry: the entry built so far; may be changed in place.
    :returns: the entry, or ``None`` for "unchanged".
    """


@hookspec
def summarize(entry: Entry) -> Summary | None:
    """The protocol-specific fields of the entry's row in the live list, and whether the entry
    is an error.

    The core fills ``id``, ``proto``, ``timestamp``, ``src``, ``dst``, ``isOutgoing`` and
    ``latency``; this hook adds what only the protocol knows. Errors are the plugin's word:
    nothing else in Mizu guesses them from a status code. The core asks this hook once more
    when it makes the entry (or :func:`is_error`, when the plugin implements it) and keeps
    ``error`` as the entry's own ``error`` field, which the filter language (``error ==
    true``), the list's colours and the error counts of the service map and the statistics
    read; so the answer must depend on the entry alone.

    :returns: a :class:`~mizu_core.Summary`, ``{summary, summaryQuery, method, methodQuery,
        status, statusQuery}`` and optionally ``error`` and ``statusName``, where each
        ``*Query`` is a filter that selects entries like this one, e.g.
        ``{"summary": "/api/users", "summaryQuery": 'request.path == "/api/users"', ...}``:
        build them with :func:`~mizu_core.equals` and :func:`~mizu_core.all_of`, which quote
        what needs quoting. ``error`` (default false) says the exchange failed (an HTTP 4xx or
        5xx, a gRPC status other than ``OK``, a Redis error reply, a Kafka error code, an AMQP
        ``basic.return``), and ``statusName`` is the status as people name it (``Not Found``,
        ``NOT_FOUND``, ``UNKNOWN_TOPIC_OR_PARTITION``, ``WRONGTYPE``, ``42P01``…), shown beside
        or instead of ``status``.
    """


@hookspec
def is_error(entry: Entry) -> bool:
    """Whether the entry is an error: the ``error`` that :func:`summarize` gives it, alone.

    Optional. The core asks it once, when it makes the entry (after ``analyze``), and keeps
    the answer as the entry's own ``error`` field; a plugin without it is asked ``summarize``
    instead, and the core reads that row's ``error``. Implement it when ``summarize`` does more
    than the verdict needs (filter expressions, names): the core makes every entry, while a
    row is asked for only when someone lists the entries. The answer must be the one
    ``summarize`` gives for the same entry (the test kit checks that they agree).

    :returns: ``True`` when the exchange failed in the protocol's own terms; any other answer
        (``False``, ``None``) says it did not.
    """


@hookspec
def represent(entry: Entry) -> Representation | None:
    """The detail view of an entry: sections the dashboard shows for request and response.

    Called when a user opens the entry, never at capture time.

    :returns: ``{"request": [Section], "response": [Section]}``, a
        :class:`~mizu_core.Section` being ``{"type": "table" | "body", "title": str, "data":
        ..., "encoding"?: str, "mimeType"?: str, "selector"?: str}``; a table's data is a list
        of ``{"name", "value", "selector"}`` rows, a body's data a string. Build them with
        :func:`~mizu_core.table`, :func:`~mizu_core.body` and :func:`~mizu_core.json_body`.
    """
