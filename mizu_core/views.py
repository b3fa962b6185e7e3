"""An entry's list row and detail view, asked of the plugin that owns its protocol."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mizu_core.entries import base_row
from mizu_core.plugins import PluginManager


def entry_row(plugins: PluginManager, entry: Mapping[str, Any]) -> dict[str, Any]:
    """The live list's row (CONTRACT section 2): generic fields, then the owner's summary."""
    row = base_row(entry)
    owner = plugins.owner(entry["protocol"]["name"])
    if owner is not None:
        summary = plugins.call(owner, "summarize", entry=entry)
        if summary:
            row.update(summary)
    return row


def entry_representation(
    plugins: PluginManager, entry: Mapping[str, Any]
) -> dict[str, list[dict[str, Any]]]:
    """The detail view: the owner's sections, or the raw request and response objects."""
    owner = plugins.owner(entry["protocol"]["name"])
    if owner is not None:
        sections = plugins.call(owner, "represent", entry=entry)
        if sections:
            return sections
    return {
        side: [
            {
                "type": "body",
                "title": side.capitalize(),
                "mimeType": "application/json",
                "data": json.dumps(entry.get(side), indent=2, ensure_ascii=False, default=str),
            }
        ]
        for side in ("request", "response")
        if entry.get(side) is not None
    }
