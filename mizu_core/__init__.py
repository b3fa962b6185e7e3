"""Mizu's core: capture, TCP reassembly, the plugin API and entries.

Plugin authors use what this module exports and nothing else.
"""

import pluggy

hookimpl = pluggy.HookimplMarker("mizu")
"""Marks a plugin's hook implementations: ``@hookimpl def dissect(...)``."""

from mizu_core.dissector import (  # noqa: E402  (hookimpl first: plugins import it from here)
    NEED_MORE,
    CloseReason,
    ConnectionContext,
    ConnectionStats,
    Dissector,
    InnerConnection,
    Layer,
    Verdict,
)
from mizu_core.entries import escape_query_string  # noqa: E402
from mizu_core.model import (  # noqa: E402
    ConnectionInfo,
    Direction,
    Endpoint,
    Message,
    Pair,
    Protocol,
)
from mizu_core.pairing import InOrderMatcher, KeyedMatcher  # noqa: E402
from mizu_core.plugins import PluginError  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "NEED_MORE",
    "CloseReason",
    "ConnectionContext",
    "ConnectionInfo",
    "ConnectionStats",
    "Direction",
    "Dissector",
    "Endpoint",
    "InOrderMatcher",
    "InnerConnection",
    "KeyedMatcher",
    "Layer",
    "Message",
    "Pair",
    "PluginError",
    "Protocol",
    "Verdict",
    "__version__",
    "escape_query_string",
    "hookimpl",
]
