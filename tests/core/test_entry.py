"""The helpers plugins build rows and detail views with: the filters they write select what
they say, whatever the value holds."""

from __future__ import annotations

import pytest

from mizu_core import (
    NOT_JSON,
    all_of,
    body,
    equals,
    json_body,
    key_selector,
    parse_json,
    query_literal,
    row,
    row_query,
    table,
)
from mizu_core.entry import MAX_REMEMBERED_QUERIES, SHARED_CHARS
from mizu_core.query import compile_query
from mizu_core.redact import DEFAULT_PATTERNS, Redactor

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


def test_a_row_query_is_the_protocol_and_its_conditions() -> None:
    assert row_query("kv", "request.key", AWKWARD) == all_of("kv", equals("request.key", AWKWARD))
    assert row_query(row_query("amqp", "request.exchange", ""), "request.routingKey", "k") == (
        'amqp and request.exchange == "" and request.routingKey == "k"'
    )
    macros = {"amqp": 'protocol.name == "amqp"'}
    query = compile_query(
        row_query(row_query("amqp", "request.exchange", "x"), "request.routingKey", 7), macros
    )
    assert query({"protocol": {"name": "amqp"}, "request": {"exchange": "x", "routingKey": 7}})
    assert not query({"protocol": {"name": "amqp"}, "request": {"exchange": "x"}})
    assert not query({"protocol": {"name": "kv"}, "request": {"exchange": "x", "routingKey": 7}})


def test_remembered_row_queries_are_each_rows_own() -> None:
    # More values than are remembered, and values that are equal keys of a dict but other
    # filters (True and 1, 1 and 1.0): the remembered ones are forgotten, never mixed up.
    for value in (1, True, 1.0, "1", None, 0, False):
        assert row_query("kv", "response.status", value) == (
            f"kv and response.status == {query_literal(value)}"
        )
    values = MAX_REMEMBERED_QUERIES + 7
    for index in range(2 * values):
        macro = "kv" if index % 2 else "db"
        value = index % values
        assert (
            row_query(macro, "request.key", f"k{value}") == f'{macro} and request.key == "k{value}"'
        )
        assert row_query(row_query(macro, "response.status", value), "request.method", "GET") == (
            f'{macro} and response.status == {value} and request.method == "GET"'
        )


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


def test_a_body_is_parsed_once_and_the_document_shared() -> None:
    text = '{"user": {"id": 7, "tags": ["a"]}}'
    first = parse_json(text)
    assert first == {"user": {"id": 7, "tags": ["a"]}}
    assert parse_json("".join([text])) is first  # an equal text, another object
    assert parse_json(b'{"a": 1}') == {"a": 1}
    assert parse_json("not json") is NOT_JSON and parse_json("") is NOT_JSON
    assert parse_json("123456789012345678901234567890") == 123456789012345678901234567890


def test_what_redaction_writes_is_not_parsed_again() -> None:
    redacted = Redactor(DEFAULT_PATTERNS).document('{"password": "hunter2", "user": "ann"}')
    assert redacted is not None
    document = parse_json(redacted)
    assert document == {"password": "[REDACTED]", "user": "ann"}
    assert parse_json(redacted) is document
    assert compile_query('request.postData.text.json().user == "ann"')(
        {"request": {"postData": {"text": redacted}}}
    )


def test_long_texts_are_not_kept() -> None:
    text = "[" + ",".join(["1"] * (SHARED_CHARS // 2 + 1)) + "]"
    assert parse_json(text) == parse_json(text) and parse_json(text) is not parse_json(text)
