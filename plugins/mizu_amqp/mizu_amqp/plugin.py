"""The ``amqp`` plugin's hooks: AMQP 0-9-1 (RabbitMQ) connections become entries.

Settings (``plugins.amqp.*``): ``max-body-size`` (octets of a message body kept, default 64 KiB)
``max-unconfirmed`` (publishes per connection held for their publisher confirm, default 1024)
and ``max-frame-size`` (the largest frame believed when no ``frame-max`` was negotiated, default
16 MiB). Counters (frames, heartbeats, resynchronisations …) go to the engine's
``plugin_counters``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mizu_amqp.declarations import AMQP, Settings
from mizu_amqp.frames import FRAME_HEARTBEAT, find_frame
from mizu_amqp.views import is_error_entry, represent_entry, summarize_entry
from mizu_core import (
    NEED_MORE,
    ConnectionContext,
    Dissector,
    Entry,
    Protocol,
    Representation,
    Summary,
    Verdict,
    hookimpl,
    implemented_by,
)

SETTING_NAMES = {
    "max-body-size": "max_body_size",
    "max-unconfirmed": "max_unconfirmed",
    "max-frame-size": "max_frame_size",
}

SHORTEST_PROOF = 12
"""Octets of a head below which the absence of a frame is no evidence (a method frame is 12)."""

UNPROVEN_LIMIT = 1024
"""Octets one side may send without a provable frame before the connection is declined."""


@hookimpl
def protocols() -> Sequence[Protocol]:
    return [AMQP]


@hookimpl
def configure(settings: Mapping[str, Any]) -> Settings:
    values = {}
    for key, value in settings.items():
        attribute = SETTING_NAMES.get(key)
        if attribute is None:
            raise ValueError(f"{key}: unknown setting ({', '.join(SETTING_NAMES)})")
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{key}: expected a positive integer, got {value!r}")
        values[attribute] = value
    return Settings(**values)


def _evidence(head: bytes) -> bool | None:
    """True when ``head`` holds a protocol header, a whole known method frame or a content
    header, None when it may still turn out to, False when it cannot."""
    position = 0
    while True:
        offset, length = find_frame(head, position)
        if offset < 0:
            # A few octets prove nothing either way (a first TCP segment can be that short).
            return None if len(head) - position < SHORTEST_PROOF else False
        if length == 0:
            return None
        if head[offset] != FRAME_HEARTBEAT:
            return True
        position = offset + length


@hookimpl
def dissect(
    context: ConnectionContext, client_head: bytes, server_head: bytes
) -> Dissector | Verdict | None:
    heads = [head for head in (client_head, server_head) if head]
    verdicts = [_evidence(head) for head in heads]
    if True in verdicts:
        # Deferred to the first AMQP connection: captures without one never load pamqp. A
        # failing import raises here, where the core isolates it as this plugin's error.
        from mizu_amqp.dissector import AmqpDissector

        return AmqpDissector(context, context.settings)
    connection = context.connection
    # The core may have guessed the roles of a connection caught mid-way: either port counts.
    on_amqp_port = connection.server.port in AMQP.ports or connection.client.port in AMQP.ports
    if on_amqp_port or None in verdicts:
        return NEED_MORE
    # Mid-connection, one side may start with the rest of a body: hear the other side too.
    if len(heads) == 2 or any(len(head) > UNPROVEN_LIMIT for head in heads):
        return None
    return NEED_MORE


# The per-entry hooks are the compiled functions themselves (``implemented_by``): the core
# calls them without an interpreted frame for each entry.


@hookimpl
@implemented_by(summarize_entry)
def summarize(entry: Entry) -> Summary:
    return summarize_entry(entry)


@hookimpl
@implemented_by(is_error_entry)
def is_error(entry: Entry) -> bool:
    return is_error_entry(entry)


@hookimpl
def represent(entry: Entry) -> Representation:
    return represent_entry(entry)
