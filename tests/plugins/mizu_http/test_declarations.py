"""The filter-language words the HTTP plugin declares."""

from __future__ import annotations

import pytest
from mizu_http.declarations import ALL

from mizu_core.plugins import PluginManager
from mizu_core.query import compile_query


@pytest.mark.parametrize(
    ("word", "selected"),
    [
        ("http", {"HTTP 1.0", "HTTP 1.1", "HTTP/2 2.0", "gRPC 2.0"}),
        ("http2", {"HTTP/2 2.0"}),
        ("grpc", {"gRPC 2.0"}),
        ("ws", {"WS 13"}),
    ],
)
def test_each_word_selects_its_entries(word: str, selected: set[str]) -> None:
    query = compile_query(word, PluginManager().discover(allow=["http", "tcp"]).macros)
    entries = {f"{p.abbr} {p.version}": {"protocol": p.to_json()} for p in ALL}
    assert {name for name, entry in entries.items() if query(entry)} == selected
