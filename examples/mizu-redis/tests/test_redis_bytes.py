"""The dissector on bytes: every RESP type, any chunking, gaps, garbage, caps and settings."""

from __future__ import annotations

import signal
from typing import Any

import pytest
from mizu_core import Direction
from mizu_core.testkit import run_bytes

from mizu_redis import plugin
from mizu_redis.resp import Limits, RespReader

C, S = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT


def command(*words: str) -> bytes:
    encoded = [word.encode() for word in words]
    return b"*%d\r\n" % len(encoded) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in encoded)


REPLIES: list[tuple[bytes, str, Any]] = [
    (b"+OK\r\n", "simple-string", "OK"),
    (b"-ERR unknown command\r\n", "error", "ERR unknown command"),
    (b":-42\r\n", "integer", -42),
    (b"$5\r\nhello\r\n", "bulk-string", "hello"),
    (b"$0\r\n\r\n", "bulk-string", ""),
    (b"$-1\r\n", "null", None),
    (b"*-1\r\n", "null", None),
    (b"*2\r\n:1\r\n*1\r\n+a\r\n", "array", [1, ["a"]]),
    (b"_\r\n", "null", None),
    (b"%2\r\n+a\r\n:1\r\n:2\r\n#t\r\n", "map", {"a": 1, "2": True}),
    (b"~2\r\n+x\r\n+y\r\n", "set", ["x", "y"]),
    (b",3.25\r\n", "double", 3.25),
    (b",-inf\r\n", "double", "-inf"),
    (b"#f\r\n", "boolean", False),
    (
        b"(3492890328409238509324850943850943825024385\r\n",
        "big-number",
        "3492890328409238509324850943850943825024385",
    ),
    (b"=15\r\ntxt:Some string\r\n", "verbatim-string", "Some string"),
    (b"!21\r\nSYNTAX invalid syntax\r\n", "error", "SYNTAX invalid syntax"),
    (b"$3\r\n\xff\xfeA\r\n", "bulk-string", "\\xff\\xfeA"),
]


def exchange(*chunks: tuple[Direction, bytes], **settings: Any) -> list[dict[str, Any]]:
    outputs = run_bytes(list(chunks), plugin, settings=settings, server=plugin_server())
    assert outputs.stats["plugin_errors"] == {}
    return outputs.entries


def plugin_server() -> Any:
    from mizu_core import Endpoint

    return Endpoint("10.0.0.2", 6379)


@pytest.mark.parametrize(("wire", "type_", "value"), REPLIES, ids=[r[1] for r in REPLIES])
def test_reply_types_whole_and_byte_by_byte(wire: bytes, type_: str, value: Any) -> None:
    whole = exchange((C, command("GET", "k")), (S, wire))
    split = exchange((C, command("GET", "k")), *[(S, wire[i : i + 1]) for i in range(len(wire))])
    for entries in (whole, split):
        [entry] = entries
        assert entry["request"] == {"method": "GET", "key": "k", "args": ["k"]}
        assert (entry["response"]["type"], entry["response"]["value"]) == (type_, value)
        assert entry["responseSize"] == len(wire)
        # error replies, and only they, are errors: the plugin says so, on the row and entry
        assert entry["error"] is plugin.summarize(entry=entry)["error"] is (type_ == "error")


def test_an_error_reply_is_named_by_its_prefix() -> None:
    [entry] = exchange((C, command("LPUSH", "k", "v")), (S, b"-WRONGTYPE not a list\r\n"))
    row = plugin.summarize(entry=entry)
    assert (row["status"], row["statusName"], row["error"]) == ("WRONGTYPE", "WRONGTYPE", True)


def test_attribute_annotates_the_reply() -> None:
    [entry] = exchange((C, command("GET", "k")), (S, b"|1\r\n+ttl\r\n:3600\r\n*2\r\n:1\r\n:2\r\n"))
    assert entry["response"]["value"] == [1, 2]
    assert entry["response"]["attributes"] == {"ttl": 3600}


def test_push_between_replies_is_an_entry_of_its_own() -> None:
    entries = exchange(
        (C, command("GET", "a") + command("GET", "b")),
        (S, b"$1\r\n1\r\n>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n$1\r\n2\r\n"),
    )
    methods = [(e["request"]["method"], e["response"] and e["response"]["value"]) for e in entries]
    assert methods == [("GET", "1"), ("message", None), ("GET", "2")]


def test_gap_in_the_client_direction_pairs_nothing_wrongly() -> None:
    entries = exchange(
        (C, command("SET", "a", "1")),
        (C, b""),  # a byte of the next command was lost
        (C, b"$1\r\nb\r\n"),
        (S, b"+OK\r\n+OK\r\n"),
        (C, command("GET", "c")),
        (S, b"$1\r\n3\r\n"),
    )
    pairs = [
        (e["request"] and e["request"]["method"], e["response"] and e["response"]["value"])
        for e in entries
    ]
    assert pairs == [("SET", None), (None, "OK"), (None, "OK"), ("GET", "3")]


def test_gap_in_the_server_direction_waits_for_the_next_command() -> None:
    entries = exchange(
        (C, command("GET", "a")),
        (S, b"$100\r\nabc"),
        (S, b""),
        (S, b"def\r\n+OK\r\n"),  # the rest of a value that lost its start: not a reply
        (C, command("PING")),
        (S, b"+PONG\r\n"),
    )
    pairs = [
        (e["request"] and e["request"]["method"], e["response"] and e["response"]["value"])
        for e in entries
    ]
    assert pairs == [("GET", None), ("PING", "PONG")]


def test_a_reply_begun_before_a_command_was_sent_is_not_its_reply() -> None:
    """After a gap, the bytes that follow may begin a reply to a command given up on; a
    command pipelined while that reply comes must wait for the next one."""
    entries = exchange(
        (C, command("GET", "a")),
        (S, b""),
        (S, b"$10\r\nabc"),  # the reply to GET a, or to a command before it
        (C, command("PING")),
        (S, b"defghij\r\n"),
        (S, b"+PONG\r\n"),
    )
    pairs = [
        (e["request"] and e["request"]["method"], e["response"] and e["response"]["value"])
        for e in entries
    ]
    assert pairs == [("GET", None), (None, "abcdefghij"), ("PING", "PONG")]


def test_garbage_is_skipped_until_a_command_starts() -> None:
    entries = exchange(
        (C, command("PING")),
        (S, b"+PONG\r\n"),
        (C, b"*2\r\n$zz\r\n\x00\x01garbage\r\n" + command("GET", "k")),
        (S, b"-ERR Protocol error\r\n"),
        (C, command("GET", "k")),
        (S, b"$1\r\nv\r\n"),
    )
    pairs = [(e["request"] and e["request"]["method"], e["response"]["value"]) for e in entries]
    assert pairs == [("PING", "PONG"), ("GET", "ERR Protocol error"), ("GET", "v")]


def test_a_command_cut_after_garbage_ends_the_search_for_the_next_one() -> None:
    """A chunk that holds a command start not at a line's start, and no line feed after it,
    once spun the resynchronisation forever (a fuzzed capture found it)."""

    def interrupt(_signum: int, _frame: object) -> None:
        raise TimeoutError("the dissector did not finish within 1 s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
        entries = exchange(
            (C, b"*1\r\n$4\r\nPING\r\n"),
            (S, b"+PONG\r\n"),
            (C, b"*0x\r\nx*1\r\n$4\r\nPIN"),
            (C, command("GET", "k")),
        )
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    pairs = [(e["request"]["method"], e["response"] and e["response"]["value"]) for e in entries]
    assert pairs == [("PING", "PONG"), ("GET", None)]


def test_non_redis_is_declined() -> None:
    outputs = run_bytes(
        [(C, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), (S, b"HTTP/1.1 200 OK\r\n\r\n")], plugin
    )
    assert outputs.entries == [] and outputs.stats["dispatch"]["connections_unclaimed"] == 1


def test_settings_cap_values_and_elements() -> None:
    [entry] = exchange(
        (C, command("RPUSH", "k", *("v" * 40 for _ in range(5)))),
        (S, b":5\r\n"),
        **{"max-value-bytes": 16, "max-elements": 3},
    )
    assert entry["request"]["args"] == ["k", "v" * 16]  # three items: the name counts
    assert entry["request"]["truncated"] is True


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"max-values": 1}, "unknown key 'max-values'"), ({"max-elements": 0}, "positive integer")],
)
def test_bad_settings_name_the_key(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plugin.configure(settings)
    plugin.configure({})


def test_a_huge_value_is_never_buffered() -> None:
    reader = RespReader(Limits(max_value_bytes=8), inline=False)
    chunk = b"x" * 65536
    header = b"$%d\r\n" % (len(chunk) * 160)
    assert reader.feed(header, 0.0) == []
    for _ in range(160):
        assert reader.feed(chunk, 0.0) == []
        assert len(reader._buffer) == 0
    [frame] = reader.feed(b"\r\n", 1.0)
    assert (frame.value, frame.truncated, frame.size) == (
        "x" * 8,
        True,
        len(header) + len(chunk) * 160 + 2,
    )
