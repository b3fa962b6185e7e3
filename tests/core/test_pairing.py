"""Matchers pair requests with responses; what stays unanswered becomes an entry."""

from __future__ import annotations

from pathlib import Path

from mizu_core import (
    ConnectionContext,
    ConnectionInfo,
    ConnectionStats,
    Direction,
    Endpoint,
    Message,
    Pair,
    Protocol,
    make_message,
)
from mizu_core.pairing import InOrderMatcher, KeyedMatcher, PairSink
from mizu_core.testkit import run_bytes

PROTOCOL = Protocol(name="p", version="1", abbr="P", long_name="P", macro="p")


def message(name: str, time: float, direction: Direction = Direction.CLIENT_TO_SERVER) -> Message:
    return Message(PROTOCOL, direction, time, time, len(name), {"method": name})


def collecting(pairs: list) -> PairSink:
    return lambda request, response, unpaired: pairs.append((request, response, unpaired))


def names(pairs: list) -> list[tuple[str | None, str | None]]:
    return [
        (request and request.data["method"], response and response.data["method"])
        for request, response, _ in pairs
    ]


def reasons(pairs: list) -> list[str]:
    return [unpaired for _, _, unpaired in pairs]


def test_in_order_pairs_pipelined_requests() -> None:
    pairs: list = []
    matcher = InOrderMatcher(collecting(pairs))
    for name in ("a", "b", "c"):
        matcher.request(message(name, 1.0))
    assert matcher.peek().data["method"] == "a"
    matcher.response(message("A", 2.0))
    matcher.response(message("B", 2.0))
    assert names(pairs) == [("a", "A"), ("b", "B")]
    assert matcher.pending == 1
    matcher.response(message("C", 3.0))
    matcher.response(message("orphan", 3.0))
    assert names(pairs)[2:] == [("c", "C"), (None, "orphan")]


def test_in_order_expiry_and_bound() -> None:
    pairs: list = []
    matcher = InOrderMatcher(collecting(pairs), 2)
    matcher.request(message("old", 1.0))
    matcher.request(message("new", 5.0))
    assert matcher.expire(older_than=3.0) == 1
    assert names(pairs) == [("old", None)]
    matcher.request(message("newer", 6.0))
    matcher.request(message("newest", 7.0))  # over the bound: the oldest goes unanswered
    assert names(pairs)[-1] == ("new", None)
    assert matcher.flush() == 2


def test_keyed_matcher_pairs_by_key_in_any_order() -> None:
    pairs: list = []
    matcher = KeyedMatcher(collecting(pairs))
    matcher.request(1, message("one", 1.0))
    matcher.request(3, message("three", 1.0))
    assert matcher.get(3).data["method"] == "three"
    matcher.response(3, message("THREE", 2.0))
    matcher.response(1, message("ONE", 2.0))
    matcher.response(9, message("NINE", 2.0))
    matcher.request(5, message("five", 2.0))
    matcher.request(5, message("five again", 2.5))  # a key reused: the first went unanswered
    assert names(pairs) == [("three", "THREE"), ("one", "ONE"), (None, "NINE"), ("five", None)]
    assert matcher.take(5).data["method"] == "five again"
    assert matcher.pending == 0


def test_keyed_matcher_bound_ends_the_oldest_and_expiry_keeps_arrival_order() -> None:
    pairs: list = []
    matcher = KeyedMatcher(collecting(pairs), max_pending=2)
    matcher.request("b", message("first", 1.0))
    matcher.request("a", message("second", 2.0))
    matcher.response("b", message("FIRST", 3.0))
    matcher.request("b", message("third", 4.0))  # the key again: after "a" now
    matcher.request("c", message("fourth", 5.0))  # over the bound: the oldest, "a", goes
    assert names(pairs) == [("first", "FIRST"), ("second", None)]
    assert reasons(pairs)[-1] == "timeout"
    assert matcher.flush() == 2
    assert names(pairs)[2:] == [("third", None), ("fourth", None)]


def test_make_message_makes_the_message_the_class_makes() -> None:
    made = make_message(PROTOCOL, Direction.SERVER_TO_CLIENT, 1.0, 2.5, 9, {"status": 200})
    assert type(made) is Message
    assert made == Message(PROTOCOL, Direction.SERVER_TO_CLIENT, 1.0, 2.5, 9, {"status": 200})


def test_a_request_whose_answer_has_begun_is_not_expired() -> None:
    """A long poll or a slow download: the answer's head came at once, its end much later."""
    pairs: list = []
    in_order = InOrderMatcher(collecting(pairs))
    in_order.request(message("wait", 1.0))
    in_order.request(message("next", 2.0))
    in_order.answering()
    assert in_order.expire(older_than=100.0) == 0
    in_order.response(message("WAIT", 40.0))
    assert names(pairs) == [("wait", "WAIT")]
    assert in_order.expire(older_than=100.0) == 1  # the next one's answer has not begun
    assert names(pairs)[-1] == ("next", None)

    pairs.clear()
    keyed = KeyedMatcher(collecting(pairs))
    keyed.request(1, message("stream", 1.0))
    keyed.request(3, message("quiet", 1.0))
    keyed.answering(1)
    keyed.answering(7)  # no such request: nothing to keep
    assert keyed.expire(older_than=100.0) == 1
    assert names(pairs) == [("quiet", None)]
    keyed.response(1, message("STREAM", 60.0))
    assert names(pairs)[-1] == ("stream", "STREAM")
    keyed.request(1, message("again", 61.0))  # the key reused: not answering any more
    assert keyed.expire(older_than=100.0) == 1


def test_flush_ends_requests_even_while_answered() -> None:
    pairs: list = []
    keyed = KeyedMatcher(collecting(pairs))
    keyed.request(1, message("stream", 1.0))
    keyed.answering(1)
    in_order = InOrderMatcher(collecting(pairs))
    in_order.request(message("download", 1.0))
    in_order.answering()
    assert keyed.flush() == 1 and in_order.flush() == 1
    assert names(pairs) == [("stream", None), ("download", None)]


def test_unanswered_requests_become_entries_without_response(turns_on_path: Path) -> None:
    outputs = run_bytes(
        [
            (Direction.CLIENT_TO_SERVER, b"question"),
            (Direction.SERVER_TO_CLIENT, b"answer"),
            (Direction.CLIENT_TO_SERVER, b"no answer to this"),
        ],
        "turns",
    )
    assert [
        (e["request"]["bytes"], e["response"] and e["response"]["bytes"]) for e in outputs.entries
    ] == [(8, 6), (17, None)]
    assert outputs.entries[1]["responseSize"] == 0
    assert outputs.stats["dispatch"]["unanswered"] == 1
    assert [entry.get("unpaired") for entry in outputs.entries] == [None, "closed"]
    assert outputs.stats["plugin_counters"]["turns"] == {"paired": 1, "unpaired.closed": 1}


def test_every_lone_message_says_why_it_is_alone() -> None:
    pairs: list = []
    in_order = InOrderMatcher(collecting(pairs), 2)
    in_order.request(message("a", 1.0))
    in_order.request(message("b", 2.0))
    in_order.request(message("c", 3.0))  # over the bound: the matcher stops waiting for a
    in_order.response(message("B", 4.0))
    in_order.expire(older_than=4.0)
    in_order.response(message("lost", 6.0))
    in_order.response(message("told", 6.0), unpaired="midstream")
    in_order.request(message("d", 7.0))
    in_order.flush()
    assert list(zip(names(pairs), reasons(pairs), strict=True)) == [
        (("a", None), "timeout"),
        (("b", "B"), ""),
        (("c", None), "timeout"),
        ((None, "lost"), "gap"),
        ((None, "told"), "midstream"),
        (("d", None), "closed"),
    ]

    pairs.clear()
    keyed = KeyedMatcher(collecting(pairs))
    keyed.request(1, message("one", 1.0))
    keyed.request(1, message("one again", 2.0))
    keyed.request(2, message("two", 2.0))
    keyed.response(9, message("NINE", 3.0))
    keyed.response(8, message("EIGHT", 3.0), unpaired="midstream")
    keyed.flush("gap")
    assert list(zip(names(pairs), reasons(pairs), strict=True)) == [
        (("one", None), "timeout"),
        ((None, "NINE"), "gap"),
        ((None, "EIGHT"), "midstream"),
        (("one again", None), "gap"),
        (("two", None), "gap"),
    ]


def test_a_connection_joined_midway_blames_its_start_until_the_first_request() -> None:
    pairs: list = []
    in_order = InOrderMatcher(collecting(pairs), joined_midway=True)
    in_order.response(message("before", 1.0))
    in_order.request(message("question", 2.0))
    in_order.response(message("ANSWER", 3.0))
    in_order.response(message("after", 4.0))
    assert reasons(pairs) == ["midstream", "", "gap"]

    pairs.clear()
    keyed = KeyedMatcher(collecting(pairs), joined_midway=True)
    keyed.response(1, message("before", 1.0))
    keyed.request(2, message("question", 2.0))
    keyed.response(2, message("ANSWER", 3.0))
    keyed.response(3, message("after", 4.0))
    assert reasons(pairs) == ["midstream", "", "gap"]


def test_the_context_emitter_counts_and_hands_over_as_emit_does() -> None:
    pairs: list[Pair] = []
    connection = ConnectionInfo(1, Endpoint("10.0.0.1", 5000), Endpoint("10.0.0.2", 7000), 1.0)
    counters: dict = {}
    context = ConnectionContext(connection, ConnectionStats.empty(1.0), pairs.append, counters)
    context.owner = "p"
    for emit in (context.emit, context.emitter):
        emit(message("push", 1.0), None, None)
        emit(message("ask", 1.0), message("answer", 2.0), None)
        emit(None, message("late", 3.0), "gap")
    assert [
        (
            pair.request and pair.request.data["method"],
            pair.response and pair.response.data["method"],
        )
        for pair in pairs
    ] == [("push", None), ("ask", "answer"), (None, "late")] * 2
    assert [pair.unpaired for pair in pairs] == ["", "", "gap"] * 2
    assert all(pair.connection is connection for pair in pairs)
    assert counters["p"] == {"paired": 2, "unpaired.gap": 2}
