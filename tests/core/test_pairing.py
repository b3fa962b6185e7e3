"""Matchers pair requests with responses; what stays unanswered becomes an entry."""

from __future__ import annotations

from pathlib import Path

from mizu_core import Direction, Message, Protocol
from mizu_core.pairing import InOrderMatcher, KeyedMatcher
from mizu_core.testkit import run_bytes

PROTOCOL = Protocol(name="p", version="1", abbr="P", long_name="P", macro="p")


def message(name: str, time: float, direction: Direction = Direction.CLIENT_TO_SERVER) -> Message:
    return Message(PROTOCOL, direction, time, time, len(name), {"method": name})


def names(pairs: list) -> list[tuple[str | None, str | None]]:
    return [
        (request and request.data["method"], response and response.data["method"])
        for request, response in pairs
    ]


def test_in_order_pairs_pipelined_requests() -> None:
    pairs: list = []
    matcher = InOrderMatcher(lambda request, response: pairs.append((request, response)))
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
    matcher = InOrderMatcher(lambda request, response: pairs.append((request, response)), 2)
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
    matcher = KeyedMatcher(lambda request, response: pairs.append((request, response)))
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


def test_a_request_whose_answer_has_begun_is_not_expired() -> None:
    """A long poll or a slow download: the answer's head came at once, its end much later."""
    pairs: list = []
    in_order = InOrderMatcher(lambda request, response: pairs.append((request, response)))
    in_order.request(message("wait", 1.0))
    in_order.request(message("next", 2.0))
    in_order.answering()
    assert in_order.expire(older_than=100.0) == 0
    in_order.response(message("WAIT", 40.0))
    assert names(pairs) == [("wait", "WAIT")]
    assert in_order.expire(older_than=100.0) == 1  # the next one's answer has not begun
    assert names(pairs)[-1] == ("next", None)

    pairs.clear()
    keyed = KeyedMatcher(lambda request, response: pairs.append((request, response)))
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
    keyed = KeyedMatcher(lambda request, response: pairs.append((request, response)))
    keyed.request(1, message("stream", 1.0))
    keyed.answering(1)
    in_order = InOrderMatcher(lambda request, response: pairs.append((request, response)))
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
