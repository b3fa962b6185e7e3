"""What the plugin declares before any TLS connection is seen, and what its detection needs.

Kept apart from the dissector so that discovering the plugin does not import the handshake,
JA4 and certificate modules; they load when the plugin first claims a connection.
"""

from __future__ import annotations

from mizu_core import Protocol
from mizu_tls.records import HEADER, MAX_RECORD

TLS = Protocol(
    name="tls",
    version="",
    abbr="TLS",
    long_name="Transport Layer Security",
    macro="tls",
    background_color="#2e7d32",
    foreground_color="#ffffff",
    reference_link="https://www.rfc-editor.org/rfc/rfc8446",
    priority=0,
    ports=(443, 8443),
)

RESYNC_WINDOW = HEADER + MAX_RECORD
"""Bytes kept of a direction taken up mid-connection while no record boundary is found: one
record's worth, where the next boundary must be."""
