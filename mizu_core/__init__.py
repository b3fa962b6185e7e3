"""Mizu's core: capture, TCP reassembly, the plugin API and entries.

Plugin authors use what this module exports and nothing else.
"""

import mizu_core.compiled  # noqa: F401  (first: it chooses the build of the modules below)
from mizu_core.dissector import (
    NEED_MORE,
    CloseReason,
    ConnectionContext,
    ConnectionStats,
    Dissector,
    InnerConnection,
    Layer,
    Verdict,
)
from mizu_core.entry import (
    NOT_JSON,
    EndpointJson,
    Entry,
    ProtocolJson,
    Representation,
    Row,
    Section,
    Summary,
    TableRow,
    all_of,
    body,
    equals,
    escape_query_string,
    json_body,
    key_selector,
    parse_json,
    query_literal,
    row,
    row_query,
    table,
)
from mizu_core.markers import hookimpl, hookspec, implemented_by
from mizu_core.model import (
    ConnectionInfo,
    Direction,
    Endpoint,
    Message,
    Pair,
    Protocol,
)
from mizu_core.pairing import (
    UNPAIRED_CLOSED,
    UNPAIRED_GAP,
    UNPAIRED_MIDSTREAM,
    UNPAIRED_REASONS,
    UNPAIRED_TIMEOUT,
    InOrderMatcher,
    KeyedMatcher,
)
from mizu_core.plugins import PluginError

__version__ = "0.1.0"

__all__ = [
    "NEED_MORE",
    "NOT_JSON",
    "UNPAIRED_CLOSED",
    "UNPAIRED_GAP",
    "UNPAIRED_MIDSTREAM",
    "UNPAIRED_REASONS",
    "UNPAIRED_TIMEOUT",
    "CloseReason",
    "ConnectionContext",
    "ConnectionInfo",
    "ConnectionStats",
    "Direction",
    "Dissector",
    "Endpoint",
    "EndpointJson",
    "Entry",
    "InOrderMatcher",
    "InnerConnection",
    "KeyedMatcher",
    "Layer",
    "Message",
    "Pair",
    "PluginError",
    "Protocol",
    "ProtocolJson",
    "Representation",
    "Row",
    "Section",
    "Summary",
    "TableRow",
    "Verdict",
    "__version__",
    "all_of",
    "body",
    "equals",
    "escape_query_string",
    "hookimpl",
    "hookspec",
    "implemented_by",
    "json_body",
    "key_selector",
    "parse_json",
    "query_literal",
    "row",
    "row_query",
    "table",
]
