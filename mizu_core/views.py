"""An entry's list row and detail view, asked of the plugin that owns its protocol."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from mizu_core.entries import base_row
from mizu_core.entry import Representation, Row, json_body
from mizu_core.model import Endpoint
from mizu_core.plugins import PluginManager


def entry_row(plugins: PluginManager, entry: Mapping[str, Any]) -> Row:
    """The live list's row (docs/entries.md): generic fields, then the owner's summary."""
    row = base_row(entry)
    owner = plugins.owner(entry["protocol"]["name"])
    if owner is not None:
        summary = plugins.call(owner, "summarize", entry=entry)
        if summary:
            row.update(summary)
    return row


def entry_representation(plugins: PluginManager, entry: Mapping[str, Any]) -> Representation:
    """The detail view: the owner's sections, or the raw request and response objects."""
    owner = plugins.owner(entry["protocol"]["name"])
    if owner is not None:
        sections = plugins.call(owner, "represent", entry=entry)
        if sections:
            return dict(sections)
    return {
        side: [json_body(side.capitalize(), entry.get(side))]
        for side in ("request", "response")
        if entry.get(side) is not None
    }


def table_line(plugins: PluginManager, entry: Mapping[str, Any]) -> str:
    """The entry as one aligned line, as ``-o table`` prints it (like tshark's default)."""
    row = entry_row(plugins, entry)
    started = time.strftime("%H:%M:%S", time.gmtime(entry["timestamp"] / 1000))
    src, dst = entry["src"], entry["dst"]
    return (
        f"{started}.{entry['timestamp'] % 1000:03d} {row['proto']['abbr']:<6} "
        f"{Endpoint(src['ip'], src['port'])} → {Endpoint(dst['ip'], dst['port'])}  "
        f"{row['method']} {row['summary']} {row['status']} "
        f"{entry['elapsedTime']:.1f}ms\n"
    )
