"""The helpers plugins build rows and detail views with: the filters they write select what
they say, whatever the value holds."""

from __future__ import annotations

import pytest

from mizu_core import all_of, body, equals, json_body, key_selector, query_literal, row, table
from mizu_core.query import compile_query

AWKWARD = 'a "quoted" back\\slash, a\nnewline and a\ttab'


def test_literals() -> None:
    assert query_literal("plain") == '"plain"'
    assert query_literal(7) == "7" and query_literal(2.5) == "2.5"
    assert query_literal(True) == "true" and query_literal(False) == "false"
    assert query_literal(None) == "nil"
    assert query_literal(float("inf")) == '"inf"'


@pytest.mark.parametrize("value", [AWKWARD, "", "ünïcödé ✓", 404, True, None])
def test_an_equality_selects_the_entries_with_that_value(value: object) -> None:
    query = compile_query(equals("request.path", value))
    assert query({"request": {"path": value}})
    assert not query({"request": {"path": "something else"}})


def test_a_key_selector_reads_the_key_it_names() -> None:
    query = compile_query(equals(key_selector("request.headers", AWKWARD), "yes"))
    assert query({"request": {"headers": {AWKWARD: "yes"}}})


def test_all_of_skips_empty_filters() -> None:
    assert all_of("http", "", equals("request.method", "GET")) == 'http and request.method == "GET"'
    assert all_of("kv") == "kv"


def test_sections() -> None:
    assert table("T", [("n", 1, "request.n"), row("m", "v", "request.m")]) == {
        "type": "table",
        "title": "T",
        "data": [
            {"name": "n", "value": 1, "selector": "request.n"},
            {"name": "m", "value": "v", "selector": "request.m"},
        ],
    }
    assert body("B", "aGk=", "request.body", "image/png", "base64") == {
        "type": "body",
        "title": "B",
        "data": "aGk=",
        "mimeType": "image/png",
        "encoding": "base64",
        "selector": "request.body",
    }
    assert json_body("J", {"é": [1]})["data"] == '{\n  "é": [\n    1\n  ]\n}'
