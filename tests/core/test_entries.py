"""EntryBuilder: the generic fields of an entry, built from a pair."""

from __future__ import annotations

import math
import random

import pytest

from mizu_core.entries import EntryBuilder, iso_time
from mizu_core.model import ConnectionInfo, Direction, Endpoint, Message, Pair, Protocol

PROTOCOL = Protocol(name="demo", version="1", abbr="D", long_name="Demo", macro="demo")


def _connection() -> ConnectionInfo:
    return ConnectionInfo(1, Endpoint("10.0.0.1", 40000), Endpoint("10.0.0.2", 80), 1.0)


def _message(direction: Direction, first: float, last: float) -> Message:
    return Message(PROTOCOL, direction, first, last, 7, {"method": "GET"})


def test_entries_of_one_run_share_no_mutable_field() -> None:
    builder = EntryBuilder()
    connection = _connection()
    first = builder.build("a-1", Pair(connection, _message(Direction.CLIENT_TO_SERVER, 2, 3), None))
    first["src"]["name"] = "resolved"
    first["protocol"]["abbr"] = "changed"
    second = builder.build(
        "a-2", Pair(connection, _message(Direction.CLIENT_TO_SERVER, 2, 3), None)
    )
    assert second["src"] == {"ip": "10.0.0.1", "port": 40000, "name": "", "namespace": ""}
    assert second["protocol"] == PROTOCOL.to_json()


def test_src_and_dst_follow_direction_and_swapped_roles() -> None:
    builder = EntryBuilder()
    connection = _connection()
    answer = builder.build(
        "a-1", Pair(connection, None, _message(Direction.SERVER_TO_CLIENT, 2, 2))
    )
    assert (answer["src"]["port"], answer["dst"]["port"]) == (80, 40000)
    connection.client, connection.server = connection.server, connection.client
    request = builder.build(
        "a-2", Pair(connection, _message(Direction.CLIENT_TO_SERVER, 2, 2), None)
    )
    assert (request["src"]["port"], request["dst"]["port"]) == (80, 40000)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (1.0, 1.0005),  # the product lands on a half
        (1_700_000_000.25, 1_700_000_000.2500005),
        (0.0, 0.0000015),
        (5.0, 5.0),
        (3.0, 1.0),  # a response older than its request: no negative time
        (0.0, 2e9),  # past where the short way is exact
        (1.0, math.inf),
    ],
)
def test_elapsed_time_is_rounded_to_the_microsecond(start: float, end: float) -> None:
    entry = EntryBuilder().build(
        "a-1", Pair(_connection(), _message(Direction.CLIENT_TO_SERVER, start, end), None)
    )
    assert repr(entry["elapsedTime"]) == repr(round(max(end - start, 0.0) * 1000, 3))


def test_elapsed_time_matches_round_on_capture_like_times() -> None:
    builder = EntryBuilder()
    connection = _connection()
    rng = random.Random(7)
    for _ in range(20_000):
        start = round(1.7e9 + rng.random() * 1e6, rng.choice([3, 6, 9]))
        end = start + rng.choice([rng.random(), rng.randint(0, 10**6) * 1e-6, rng.random() * 1e-3])
        entry = builder.build(
            "a-1", Pair(connection, _message(Direction.CLIENT_TO_SERVER, start, end), None)
        )
        assert repr(entry["elapsedTime"]) == repr(round((end - start) * 1000, 3))


def test_elapsed_time_of_nan_stays_nan() -> None:
    entry = EntryBuilder().build(
        "a-1", Pair(_connection(), _message(Direction.CLIENT_TO_SERVER, 1.0, math.nan), None)
    )
    assert math.isnan(entry["elapsedTime"])


def test_start_time_across_seconds() -> None:
    builder = EntryBuilder()
    connection = _connection()
    for start in (1.999, 2.0, 2.001, 1.5, -0.2):
        entry = builder.build(
            "a-1", Pair(connection, _message(Direction.CLIENT_TO_SERVER, start, start), None)
        )
        assert entry["startTime"] == iso_time(int(start * 1000))
    assert iso_time(-200) == "1969-12-31T23:59:59.800Z"
