"""The hook implementations: the module registered as the ``http`` plugin."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mizu_core import (
    ConnectionContext,
    Dissector,
    Entry,
    Pair,
    Protocol,
    Representation,
    Summary,
    Verdict,
    hookimpl,
)
from mizu_http import analysis, declarations
from mizu_http import settings as plugin_settings
from mizu_http.dissector import HttpDissector, offer


@hookimpl
def protocols() -> Sequence[Protocol]:
    return declarations.ALL


@hookimpl
def configure(settings: Mapping[str, Any]) -> plugin_settings.Settings:
    return plugin_settings.parse(settings)


@hookimpl
def dissect(
    context: ConnectionContext, client_head: bytes, server_head: bytes
) -> Dissector | Verdict | None:
    answer = offer(client_head, server_head, context.connection.role_guessed)
    if answer is None or isinstance(answer, Verdict):
        return answer
    start, flipped = answer
    return HttpDissector(context, context.settings, start, flipped)


@hookimpl
def analyze(pair: Pair, entry: Entry) -> Entry | None:
    # Pair.protocol, inline: a property is one more interpreted call for every entry.
    message = pair.request or pair.response
    if message is not None and message.protocol.name == "http":
        return analysis.analyze_http(entry)
    return None


@hookimpl
def summarize(entry: Entry) -> Summary:
    return analysis.summarize(entry)


@hookimpl
def is_error(entry: Entry) -> bool:
    return analysis.is_error(entry)


@hookimpl
def represent(entry: Entry) -> Representation:
    return analysis.represent(entry)
