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
    implemented_by,
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


# The per-entry hooks are the compiled functions themselves (``implemented_by``): the core
# calls them without an interpreted frame for each entry.


@hookimpl
@implemented_by(analysis.analyze)
def analyze(pair: Pair, entry: Entry) -> Entry | None:
    return analysis.analyze(pair, entry)


@hookimpl
@implemented_by(analysis.summarize)
def summarize(entry: Entry) -> Summary:
    return analysis.summarize(entry)


@hookimpl
@implemented_by(analysis.is_error)
def is_error(entry: Entry) -> bool:
    return analysis.is_error(entry)


@hookimpl
def represent(entry: Entry) -> Representation:
    return analysis.represent(entry)
