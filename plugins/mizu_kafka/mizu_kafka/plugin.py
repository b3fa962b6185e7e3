"""The ``kafka`` Mizu plugin: hook implementations.

Settings (``plugins.kafka.*``): ``max-records`` (records decoded in full per message, 100),
``max-value-bytes`` (bytes shown per key, value or header, 4096), ``max-frame-bytes`` (bytes
buffered per message, 8 MiB; the rest is counted and dropped) and ``max-decompressed-bytes``
(per message, 16 MiB).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mizu_core import (
    NEED_MORE,
    ConnectionContext,
    Direction,
    Dissector,
    Entry,
    Protocol,
    Representation,
    Summary,
    Verdict,
    hookimpl,
    implemented_by,
)
from mizu_kafka.connection import KAFKA
from mizu_kafka.dissector import KafkaDissector
from mizu_kafka.protocol import Settings, find_request_start, plausible_request
from mizu_kafka.views import is_error_entry, represent_entry, summarize_entry

SETTING_NAMES = {
    "max-records": "max_records",
    "max-value-bytes": "max_value_bytes",
    "max-frame-bytes": "max_frame_bytes",
    "max-decompressed-bytes": "max_decompressed_bytes",
}
MID_STREAM_SEARCH = 16 << 10
"""How far into a connection caught mid-stream a request start is looked for: as far as the
core holds a connection's first bytes by default, past the tail of a sizeable produce."""


@hookimpl
def protocols() -> Sequence[Protocol]:
    return [KAFKA]


@hookimpl
def configure(settings: Mapping[str, Any]) -> Settings:
    values = {}
    for key, value in settings.items():
        attribute = SETTING_NAMES.get(key)
        if attribute is None:
            raise ValueError(f"{key}: unknown setting ({', '.join(SETTING_NAMES)})")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{key}: expected a non-negative integer, got {value!r}")
        values[attribute] = value
    return Settings(**values)


@hookimpl
def dissect(
    context: ConnectionContext, client_head: bytes, server_head: bytes
) -> Dissector | Verdict | None:
    if not client_head and server_head and not context.connection.role_guessed:
        return None  # the server spoke first: Kafka clients always do
    verdict = plausible_request(client_head)
    if verdict:
        return KafkaDissector(context, context.settings)
    if not context.connection.role_guessed:
        return NEED_MORE if verdict is None else None
    # Caught mid-connection: the roles are a guess and the first bytes may be the tail of a
    # message. Requests may be what the "server" sends.
    reverse_verdict = plausible_request(server_head)
    if reverse_verdict:
        return KafkaDissector(context, context.settings, requests=Direction.SERVER_TO_CLIENT)
    if verdict is None or reverse_verdict is None:
        return NEED_MORE
    start = find_request_start(client_head[:MID_STREAM_SEARCH])
    if start is not None:
        return KafkaDissector(context, context.settings, skip=start)
    return NEED_MORE if len(client_head) < MID_STREAM_SEARCH else None


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
