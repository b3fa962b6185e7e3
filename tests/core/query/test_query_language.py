"""The filter language: parsing, every operator and helper of docs/filter.md, errors."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mizu_core.query import QueryError, compile_query, parse, to_text
from mizu_core.query.syntax import (
    Call,
    Compare,
    Index,
    Literal,
    Logic,
    Member,
    Name,
    Node,
    Not,
    Regex,
)

MACROS = {
    "http": 'protocol.macro == "http"',
    "kafka": 'protocol.macro == "kafka"',
    "amqp": 'protocol.macro == "amqp"',
    "tcp": 'protocol.macro == "tcp"',
    "slow": "elapsedTime > 1000",
}


def http_entry(**changes: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": "t-1-1",
        "protocol": {"name": "http", "version": "1.1", "macro": "http", "abbr": "HTTP"},
        "src": {"ip": "10.0.0.1", "port": 50000, "name": "", "namespace": ""},
        "dst": {"ip": "10.0.0.2", "port": 80, "name": "carts.sock-shop", "namespace": "sock-shop"},
        "outgoing": False,
        # A minute old when the test runs (a module-level "now" goes stale in a long run).
        "timestamp": int(time.time() * 1000) - 60_000,
        "elapsedTime": 12.5,
        "request": {
            "method": "GET",
            "path": "/api/users",
            "headers": {"user-agent": "curl/8.0", "Accept": ["a/b", "c/d"]},
        },
        "response": {
            "status": 503,
            "content": {"text": '{"user": {"id": 7, "name": "ann"}}'},
        },
        "rules": {"passed": [], "failed": [{"name": "latency", "reason": "slow"}]},
    }
    entry.update(changes)
    return entry


def kafka_entry() -> dict[str, Any]:
    return {
        "id": "t-2-1",
        "protocol": {"name": "kafka", "macro": "kafka"},
        "timestamp": int(time.time() * 1000),
        "request": {"method": "Produce", "payload": {"topics": [{"name": "t"}]}},
        "response": None,
        "rules": {"passed": [], "failed": []},
    }


def matches(text: str, entry: dict[str, Any] | None = None) -> bool:
    return compile_query(text, MACROS)(http_entry() if entry is None else entry)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('http and request.method == "GET" and response.status >= 400', True),
        ('http and request.method == "POST"', False),
        ('request.path.startsWith("/api")', True),
        ('request.path.startsWith("/web")', False),
        ('request.path.endsWith("users")', True),
        ('request.path.contains("pi/u")', True),
        ('response.status == r"5.*"', True),
        ('response.status == r"^4"', False),
        ('response.status != r"^4"', True),
        ('r"^GE" == request.method', True),
        ('request.headers["User-Agent"].contains("curl")', True),
        ('request.headers["USER-AGENT"] == "curl/8.0"', True),
        ('request.headers.accept.contains("c/d")', True),
        ('request.headers.Accept[1] == "c/d"', True),
        ("request.headers.Accept[2] == nil", True),
        ('dst.name == "carts.sock-shop"', True),
        ("response.content.text.json().user.id == 7", True),
        ('response.content.text.json().user.name == "ann"', True),
        ("request.path.json() == nil", True),
        ("timestamp >= minutes(-5)", True),
        ("timestamp >= seconds(-30)", False),
        ("timestamp >= hours(-1) and timestamp <= now()", True),
        ("timestamp >= days(-1)", True),
        ('timestamp > datetime("2020-01-01T00:00:00Z")', True),
        ('timestamp < datetime("1/2/2020, 3:04:05 PM")', False),
        ('amqp and not (request.method == "basic.deliver")', False),
        ('not (request.method == "basic.deliver")', True),
        ('!(request.method == "GET")', False),
        ("limit(100)", True),
        ("rules.failed.length > 0", True),
        ("rules.passed.length > 0", False),
        ("request.path.length == 10", True),
        ("elapsedTime < 13 and elapsedTime > 12", True),
        ("elapsedTime <= 12.5 and elapsedTime >= 12.5", True),
        ("outgoing == false and not outgoing", True),
        ("outgoing == true or slow", False),
        ("response.missing == nil and response.missing != 0", True),
        ('response.status == "503"', False),
        ('response.status < "600"', False),
        ('request.method > "FOO" or request.method < "GEZ"', True),
        ("1 == 1.0", True),
        ("true == 1", False),
        ("kafka or http", True),
        ("tcp", False),
        ("http and (tcp or kafka)", False),
        ("http and tcp or kafka", False),
        ("http or tcp and kafka", True),
        ('request.headers.contains("USER-agent")', True),
        ("request.headers", True),
        ("response.missing", False),
        ('"" == ""', True),
        ('"a\\"b\\\\c\\n\\u00e9" == "a\\"b\\\\c\\n\u00e9"', True),
        ("'single' == \"single\"", True),
    ],
)
def test_operators_and_helpers(text: str, expected: bool) -> None:
    assert matches(text) is expected


def test_kafka_payload_selector() -> None:
    assert matches('kafka and request.payload.topics[0].name == "t"', kafka_entry())
    assert not matches('kafka and request.payload.topics[1].name == "t"', kafka_entry())
    assert not matches("rules.failed.length > 0", kafka_entry())


def test_tls_is_a_protocol_word_and_the_field_decrypted_entries_carry() -> None:
    macros = {**MACROS, "tls": 'protocol.macro == "tls"'}
    tls_entry = {"protocol": {"name": "tls", "macro": "tls"}, "tls": {"sni": "api.example.com"}}
    decrypted = http_entry(tls={"sni": "api.example.com", "alpn": "h2", "decrypted": True})
    query = 'tls and tls.sni == "api.example.com"'
    assert compile_query(query, macros)(tls_entry)
    assert not compile_query(query, macros)(decrypted)
    assert compile_query('http and tls.decrypted == true and tls["alpn"] == "h2"', macros)(
        decrypted
    )
    assert not compile_query("tls.decrypted == true", macros)(http_entry())


def test_unpaired_selects_the_messages_that_lack_their_partner() -> None:
    lost = http_entry(response=None, unpaired="gap")
    assert compile_query('unpaired == "gap"', MACROS)(lost)
    assert compile_query("http and unpaired", MACROS)(lost)
    assert not compile_query("unpaired", MACROS)(http_entry())


def test_limit_and_redact_are_directives() -> None:
    query = compile_query(
        "http and limit(50) and limit(20) and "
        'redact("request.headers.User-Agent", "response.content")',
        MACROS,
    )
    assert query.limit == 20
    entry = http_entry()
    redacted = query.redact(entry)
    assert redacted["request"]["headers"]["user-agent"] == "[REDACTED]"
    assert redacted["response"]["content"] == "[REDACTED]"
    assert entry["request"]["headers"]["user-agent"] == "curl/8.0", "the original is untouched"
    assert compile_query("http", MACROS).limit is None
    assert compile_query("", MACROS)(entry) and compile_query("  ", MACROS).matches_all


def test_combined_queries_keep_both_sets_of_directives() -> None:
    combined = compile_query("http", MACROS) & compile_query("tcp and limit(3)", MACROS)
    assert combined.limit == 3
    assert not combined(http_entry())
    assert parse(combined.text, MACROS) == combined.tree


@pytest.mark.parametrize(
    ("text", "position", "hint"),
    [
        ("htp", 0, "http"),
        ('request.method = "GET"', 15, "=="),
        ("http && tcp", 5, "and"),
        ("http || tcp", 5, "or"),
        ('request.path == "abc', 16, "close"),
        ("http and", 8, "selector"),
        ("(http", 5, ")"),
        ("request.headers[0", 17, "]"),
        ("foo(1)", 0, "helpers"),
        ("request.path.nope()", 13, "startsWith"),
        ('minutes("x")', 8, "minutes(-5)"),
        ("minutes()", 0, "minutes(x)"),
        ("limit(1) or http", 0, "and"),
        ("not limit(5)", 4, "and"),
        ("limit(-1)", 6, "limit(100)"),
        ("limit(1.5)", 6, "limit(100)"),
        ('response.status == r"("', 21, "pattern"),
        ('response.status >= r"5"', 16, "=="),
        ('datetime("yesterday") < timestamp', 9, "datetime"),
        ("1 == 1 == 1", 7, "and"),
        ("request.", 8, '["..."]'),
        ("12abc", 2, "space"),
        ('"\\q"', 1, "escape"),
        ("- x", 2, "minutes(-5)"),
        ("request.path ~ 1", 13, "reference"),
        ('redact("nothing.here")', 7, "entry"),
        ("json()", 0, "x.json()"),
        ('http and request.method == "GET" tcp', 33, "and / or"),
    ],
)
def test_errors_carry_position_and_hint(text: str, position: int, hint: str) -> None:
    with pytest.raises(QueryError) as caught:
        compile_query(text, MACROS)
    error = caught.value
    assert error.position == position, error.describe(text)
    assert hint in error.hint, error.describe(text)
    assert error.describe(text).splitlines()[2].index("^") == position + 2


def test_broken_macro_is_reported_at_its_word() -> None:
    with pytest.raises(QueryError) as caught:
        compile_query("x or bad", {"bad": "request.method ="})
    assert caught.value.position == 0  # 'x' is unknown first
    with pytest.raises(QueryError) as caught:
        compile_query("http or bad", {"http": "true", "bad": "request.method ="})
    assert caught.value.position == 8 and "bad" in caught.value.message
    with pytest.raises(QueryError, match="itself"):
        compile_query("loop", {"loop": "loop"})


def test_macros_stay_words_when_printed() -> None:
    tree = parse("http and not slow", MACROS)
    assert to_text(tree) == "http and not slow"


# -- round trips ---------------------------------------------------------------------------

_names = st.sampled_from(["request", "response", "src", "dst", "timestamp", "protocol"])
_fields = st.text(alphabet="abcxyzAB_", min_size=1, max_size=6).filter(
    lambda word: word not in {"and", "or", "not", "true", "false", "nil"}
)
_literals = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
).map(Literal)


def _selectors() -> st.SearchStrategy[Node]:
    return st.recursive(
        _names.map(Name),
        lambda inner: st.one_of(
            st.builds(Member, inner, _fields),
            st.builds(Index, inner, st.one_of(st.integers(0, 9), st.text(max_size=5)).map(Literal)),
            st.builds(
                lambda target, name, arg: Call(target, name, (arg,)),
                inner,
                st.sampled_from(["startsWith", "endsWith", "contains"]),
                st.text(max_size=4).map(Literal),
            ),
            st.builds(lambda target: Call(target, "json", ()), inner),
        ),
        max_leaves=4,
    )


_regexes = st.sampled_from(["5.*", "^/api/v[0-9]+", "a|b", 'say "hi"', "x\\d+"]).map(Regex)
_comparisons = st.one_of(
    st.builds(
        Compare, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), _selectors(), _literals
    ),
    st.builds(Compare, st.sampled_from(["==", "!="]), _selectors(), _regexes),
    _selectors(),
)
_trees = st.recursive(
    _comparisons,
    lambda inner: st.one_of(
        st.builds(Not, inner),
        st.builds(Logic, st.sampled_from(["and", "or"]), inner, inner),
    ),
    max_leaves=8,
)


@settings(max_examples=120, deadline=None)
@given(_trees)
def test_printed_trees_parse_back_to_themselves(tree: Node) -> None:
    text = to_text(tree)
    assert parse(text) == tree
    assert to_text(parse(text)) == text


@settings(max_examples=60, deadline=None)
@given(_trees)
def test_printed_trees_evaluate_the_same(tree: Node) -> None:
    first = compile_query(to_text(tree))
    second = compile_query(to_text(parse(to_text(tree))))
    for entry in (http_entry(), kafka_entry(), {}):
        assert first(entry) == second(entry)


def test_a_backtracking_regex_runs_in_linear_time() -> None:
    """With a backtracking engine this pattern doubles its time with every character of the
    path (hours for a UUID-long segment); the hub runs filters on its store thread."""
    query = compile_query('request.path == r"([^/]+)+#"')
    entry = {"request": {"path": "/" + "a1b2c3d4" * 8}}
    started = time.perf_counter()
    assert not query(entry)
    assert time.perf_counter() - started < 0.5


def test_regexes_outside_re2_syntax_are_query_errors() -> None:
    with pytest.raises(QueryError) as caught:
        compile_query('request.path == r"(?=/api)"')
    assert "bad regex" in str(caught.value)
    assert "RE2" in caught.value.hint


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("(" * 101 + "response.status == 200" + ")" * 101, "nests too deeply"),
        ("not " * 101 + "response.status == 200", "nests too deeply"),
        (" and ".join(["response.status == 200"] * 1000), "too deep to evaluate"),
        ("request" + ".a" * 400 + " == 1", "too deep to evaluate"),
    ],
)
def test_queries_too_deep_to_evaluate_are_query_errors(text: str, message: str) -> None:
    """Parsing and evaluating recurse: past Python's stack these were RecursionErrors (500s in
    the hub) instead of errors the user can act on."""
    with pytest.raises(QueryError) as caught:
        compile_query(text)
    assert message in str(caught.value)


def test_long_chains_within_the_limits_still_work() -> None:
    query = compile_query(" or ".join(f"response.status == {n}" for n in range(250)))
    assert query({"response": {"status": 249}}) and not query({"response": {"status": 250}})
    nested = compile_query("(" * 100 + "response.status == 200" + ")" * 100)
    assert nested({"response": {"status": 200}})
