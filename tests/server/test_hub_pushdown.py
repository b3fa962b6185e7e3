"""SQL push-down answers like the Python evaluator on the same entries."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from mizu_core.query import Query, QueryError, compile_query, parse, to_text
from mizu_core.query.syntax import Call, Compare, Literal, Logic, Member, Name, Node, Not, Regex
from mizu_server import store as store_module
from mizu_server.pushdown import COLUMNS, column_value, column_values, prefix_successor, translate
from mizu_server.store import BACKWARD, FORWARD, SqliteStore
from tests.server.hub_support import listed_seqs

MACROS = {"http": 'protocol.macro == "http"', "tcp": 'protocol.macro == "tcp"'}
_values = st.one_of(
    st.sampled_from(["GET", "POST", "/api/x", "/", "500", "FIN", "", "é/ü", "get", "\U0010ffffé"]),
    st.integers(-3, 600),
    st.sampled_from([200, 404, 503, 1.5, 2**62]),
    st.booleans(),
    st.none(),
    st.just(["GET", "x"]),
    st.just({"a": 1}),
)
_entries = st.lists(
    st.fixed_dictionaries(
        {
            "protocol": st.fixed_dictionaries(
                {
                    "name": st.sampled_from(["http", "tcp"]),
                    "macro": st.sampled_from(["http", "tcp"]),
                }
            ),
            "request": st.fixed_dictionaries({"method": _values, "path": _values}),
            "response": st.one_of(st.none(), st.fixed_dictionaries({"status": _values})),
            "timestamp": st.integers(0, 10),
            "src": st.fixed_dictionaries(
                {"ip": st.sampled_from(["10.0.0.1", "::1"]), "port": _values}
            ),
            "error": _values,
            "fromServer": st.booleans(),
            "elapsedTime": _values,
        }
    ),
    max_size=25,
)
_columns = st.sampled_from(
    [
        ("request", "method"),
        ("request", "path"),
        ("response", "status"),
        ("timestamp",),
        ("src", "ip"),
        ("src", "port"),
        ("protocol", "macro"),
        ("request", "headers"),
        ("error",),
        ("fromServer",),
        ("elapsedTime",),
    ]
)


def _selector(path: tuple[str, ...]) -> Node:
    node: Node = Name(path[0])
    for name in path[1:]:
        node = Member(node, name)
    return node


_literal_values = st.one_of(
    st.sampled_from(["GET", "/api", "/", "500", "", "x", "é"]),
    st.integers(-1, 600),
    st.sampled_from([1.5, 503.0, 2**70]),
    st.booleans(),
    st.none(),
)
_atoms = st.one_of(
    st.builds(
        lambda op, path, value: Compare(op, _selector(path), Literal(value)),
        st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
        _columns,
        _literal_values,
    ),
    st.builds(
        lambda op, path, value: Compare(op, Literal(value), _selector(path)),
        st.sampled_from(["==", "<", ">="]),
        _columns,
        _literal_values,
    ),
    st.builds(
        lambda op, path, pattern: Compare(op, _selector(path), Regex(pattern)),
        st.sampled_from(["==", "!="]),
        _columns,
        st.sampled_from(["^5", "GET", "^/$", "0"]),
    ),
    st.builds(
        lambda name, path, part: Call(_selector(path), name, (Literal(part),)),
        st.sampled_from(["startsWith", "endsWith", "contains"]),
        _columns,
        st.sampled_from(["", "/", "GE", "x", "0", "é", "\U0010ffff"]),
    ),
    st.sampled_from(["http", "tcp", "limit(1000)"]).map(lambda word: parse(word, MACROS)),
    st.sampled_from([("error",), ("fromServer",)]).map(_selector),  # a boolean as a condition
)
_trees = st.recursive(
    _atoms,
    lambda inner: st.one_of(
        st.builds(Not, inner), st.builds(Logic, st.sampled_from(["and", "or"]), inner, inner)
    ),
    max_leaves=5,
)


def _store(entries: list[dict[str, Any]]) -> SqliteStore:
    store = SqliteStore(":memory:")
    store.insert([{**entry, "id": f"e{number}"} for number, entry in enumerate(entries)])
    return store


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_entries, _trees)
def test_store_pages_match_python_evaluation(entries: list[dict[str, Any]], tree: Node) -> None:
    try:
        query = compile_query(to_text(tree), MACROS)
    except QueryError:  # limit() under not / or: refused, as it should be
        reject()
    store = _store(entries)
    expected = [f"e{n}" for n, entry in enumerate(entries) if query({**entry, "id": ""})]
    for direction in (BACKWARD, FORWARD):
        page = store.page(query, 1000, None, direction)
        assert [item.entry["id"] for item in page.entries] == expected
    sql = translate(query)
    if sql.exact:  # SQL alone, without the Python re-check, gives the same entries
        rows = store.db.execute(
            f"SELECT id FROM entries WHERE {sql.where} ORDER BY seq", sql.params
        )
        assert [row[0] for row in rows] == expected
    store.close()


_column_values = st.one_of(
    _values,
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**80]),
)
_nested = st.dictionaries(
    st.sampled_from(["ip", "port", "name", "method", "status"]), _column_values
)


class _Entry(Mapping[str, Any]):
    """A mapping that is not a dict, as a decoded entry may be."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from([path[0] for path in COLUMNS]),
        st.one_of(_column_values, _nested, _nested.map(_Entry)),
    ),
    st.booleans(),
)
def test_column_values_are_each_columns_value(fields: dict[str, Any], as_mapping: bool) -> None:
    """The per-entry short paths store what the language finds at each column's path."""
    entry: Mapping[str, Any] = _Entry(fields) if as_mapping else fields
    expected = [column_value(entry, path) for path in COLUMNS]
    assert [repr(value) for value in column_values(entry)] == [repr(value) for value in expected]


def test_common_filters_are_pushed_down_exactly() -> None:
    for text in (
        'http and request.method == "GET" and response.status >= 400',
        'request.path.startsWith("/api") and not (src.ip == "::1")',
        'response.status == r"^5" or tcp',
        "timestamp >= minutes(-5) and limit(10)",
        "error == true and elapsedTime > 100",
        "http and not (fromServer == true) and error != false",
    ):
        assert translate(compile_query(text, MACROS)).exact, text
    for text in ('request.headers["Host"] == "x"', "response.content.text.json().id == 1"):
        assert not translate(compile_query(text, MACROS)).exact, text


def test_paging_continues_where_it_left_off() -> None:
    store = _store([{"protocol": {"macro": "http"}, "timestamp": n} for n in range(50)])
    everything = Query("", None)
    newest = store.page(everything, 20, None, BACKWARD)
    assert [item.seq for item in newest.entries] == list(range(31, 51))
    older = store.page(everything, 20, newest.left_off, BACKWARD)
    assert [item.seq for item in older.entries] == list(range(11, 31))
    last = store.page(everything, 20, older.left_off, BACKWARD)
    assert [item.seq for item in last.entries] == list(range(1, 11)) and last.exhausted
    forward = store.page(everything, 15, 40, FORWARD)
    assert [item.seq for item in forward.entries] == list(range(41, 51)) and forward.exhausted
    odd = compile_query('timestamp == r"[13579]$" and limit(3)')
    assert [item.entry["timestamp"] for item in store.page(odd, 100, None, BACKWARD).entries] == [
        45,
        47,
        49,
    ]


def test_prefix_successor_bounds_exactly_the_strings_with_the_prefix() -> None:
    assert prefix_successor("/api") == "/apj"
    assert prefix_successor("a\ud7ff") == "a\ue000"
    assert prefix_successor("a\U0010ffff") == "b"
    assert prefix_successor("\U0010ffff") is None


def test_a_path_prefix_is_answered_from_the_path_index() -> None:
    store = _store([{"request": {"path": f"/api/{n}"}} for n in range(20)])
    sql = translate(compile_query('request.path.startsWith("/api/1")'))
    plan = store.db.execute(
        "EXPLAIN QUERY PLAN SELECT seq FROM entries "
        f"WHERE seq < ? AND {sql.where} AND epoch = ? ORDER BY +seq DESC",
        (10**9, *sql.params, 0),
    ).fetchall()
    assert any("entries_epoch_path (epoch=? AND path>? AND path<?)" in str(row) for row in plan), (
        plan
    )
    page = store.page(compile_query('request.path.startsWith("/api/1")'), 100, None, FORWARD)
    assert [item.entry["request"]["path"] for item in page.entries] == ["/api/1"] + [
        f"/api/{n}" for n in range(10, 20)
    ]


@pytest.mark.parametrize("direction", [BACKWARD, FORWARD])
def test_slow_plans_give_the_same_pages(monkeypatch: pytest.MonkeyPatch, direction: int) -> None:
    """When walking the table takes too long, the index plan and then the windowed walk
    (here forced: no walk time, a time check at every SQLite step) list the same entries,
    and a listing out of budget continues from ``left_off`` to the end."""
    monkeypatch.setattr(store_module, "_WALK_PROBE", 0.0)
    monkeypatch.setattr(store_module, "_PROGRESS_STEPS", 1)
    monkeypatch.setattr(store_module, "_WINDOW", 7)
    monkeypatch.setattr(store_module, "EPOCH_BITS", 3)
    store = _store(
        [{"request": {"path": f"/api/{n % 5}"}, "response": {"status": n}} for n in range(60)]
    )
    for text in ('request.path.startsWith("/api/3")', 'request.path.contains("3")'):
        query = compile_query(text)
        expected = [n + 1 for n in range(60) if query({"request": {"path": f"/api/{n % 5}"}})]
        if direction == BACKWARD:
            expected.reverse()
        whole = store.page(query, 100, None, direction)
        assert whole.exhausted and not whole.partial
        assert sorted(item.seq for item in whole.entries) == sorted(expected)
        assert listed_seqs(store, query, 5, direction, budget=0.0) == expected
