"""The dissector fed bytes marshalled by pamqp: content assembly, pairing, confirms, resync."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mizu_amqp import plugin
from mizu_amqp.frames import find_frame
from pamqp import commands, frame, header, heartbeat
from pamqp.body import ContentBody

from mizu_core import Direction
from mizu_core.testkit import HookOutputs, run_bytes

C, S = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT
Chunks = list[tuple[Direction, bytes]]


def method(channel: int, value: Any) -> bytes:
    return frame.marshal(value, channel)


def content(
    channel: int,
    value: Any,
    body: bytes,
    properties: commands.Basic.Properties | None = None,
    frame_max: int = 4096,
) -> list[bytes]:
    """A content method, its header and its body cut into frames of at most ``frame_max``."""
    frames = [
        method(channel, value),
        frame.marshal(header.ContentHeader(0, len(body), properties), channel),
    ]
    step = frame_max - 8
    frames += [
        frame.marshal(ContentBody(body[start : start + step]), channel)
        for start in range(0, len(body), step)
    ]
    return frames


HANDSHAKE: Chunks = [
    (C, b"AMQP\x00\x00\x09\x01"),
    (S, method(0, commands.Connection.Start(server_properties={"product": "RabbitMQ"}))),
    (C, method(0, commands.Connection.StartOk(response="\x00guest\x00secret"))),
    (S, method(0, commands.Connection.Tune(2047, 4096, 60))),
    (C, method(0, commands.Connection.TuneOk(2047, 4096, 60))),
    (C, method(0, commands.Connection.Open("/"))),
    (S, method(0, commands.Connection.OpenOk())),
    (C, method(1, commands.Channel.Open())),
    (S, method(1, commands.Channel.OpenOk())),
]


def run(chunks: Chunks, **settings: Any) -> HookOutputs:
    outputs = run_bytes(chunks, plugin, settings=settings)
    assert outputs.stats["plugin_errors"] == {}
    return outputs


def counters(outputs: HookOutputs) -> dict[str, int]:
    """The plugin's counters (it is registered as ``plugin``, its module's name)."""
    return dict(outputs.stats["plugin_counters"].get("plugin", {}))


def requests(outputs: HookOutputs, name: str) -> list[dict[str, Any]]:
    return [e for e in outputs.entries if (e["request"] or {}).get("method") == name]


def test_handshake_pairs_each_method_with_its_ok() -> None:
    outputs = run(HANDSHAKE)
    pairs = [(e["request"]["method"], e["response"]["method"]) for e in outputs.entries]
    assert pairs == [
        ("connection.start", "connection.start-ok"),
        ("connection.tune", "connection.tune-ok"),
        ("connection.open", "connection.open-ok"),
        ("channel.open", "channel.open-ok"),
    ]
    start_ok = outputs.entries[0]["response"]
    assert start_ok["response"] == "[REDACTED]" and start_ok["user"] == "guest"
    assert "secret" not in json.dumps(outputs.entries)
    assert outputs.entries[0]["request"]["serverProperties"] == {"product": "RabbitMQ"}


def test_multi_frame_bodies_on_interleaved_channels() -> None:
    first = content(1, commands.Basic.Publish(exchange="x", routing_key="a"), b"a" * 10000)
    second = content(2, commands.Basic.Publish(exchange="x", routing_key="b"), b"b" * 9000)
    interleaved = [part for pair in zip(first, second, strict=False) for part in pair]
    interleaved += first[len(second) :]
    chunks = [
        *HANDSHAKE,
        (C, method(2, commands.Channel.Open())),
        (S, method(2, commands.Channel.OpenOk())),
    ]
    chunks += [(C, part) for part in interleaved]
    outputs = run(chunks)
    published = [e["request"] for e in requests(outputs, "basic.publish")]
    assert [(p["routingKey"], p["bodySize"], p["body"][:1]) for p in published] == [
        ("a", 10000, "a"),
        ("b", 9000, "b"),
    ]
    assert all(p["body"] == p["body"][0] * p["bodySize"] for p in published)
    sizes = [e["requestSize"] for e in outputs.entries if e["request"]["method"] == "basic.publish"]
    assert sizes == [sum(map(len, first)), sum(map(len, second))]


def test_properties_and_headers_are_decoded() -> None:
    properties = commands.Basic.Properties(
        content_type="application/json",
        delivery_mode=2,
        headers={"retries": 3, "nested": {"ok": True}, "tags": ["a", 1]},
        correlation_id="c-1",
        reply_to="answers",
        expiration="60000",
        message_id="m-1",
        message_type="order",
        app_id="shop",
    )
    chunks = [
        *HANDSHAKE,
        *(
            (C, part)
            for part in content(
                1, commands.Basic.Publish(routing_key="q"), b'{"a": [1]}', properties
            )
        ),
    ]
    entry = requests(run(chunks), "basic.publish")[0]["request"]
    assert entry["properties"] == {
        "contentType": "application/json",
        "deliveryMode": 2,
        "headers": {"retries": 3, "nested": {"ok": True}, "tags": ["a", 1]},
        "correlationId": "c-1",
        "replyTo": "answers",
        "expiration": "60000",
        "messageId": "m-1",
        "type": "order",
        "appId": "shop",
    }
    assert entry["body"] == '{"a": [1]}'
    view = plugin.represent(entry={"request": entry, "response": None})
    titles = [section["title"] for section in view["request"]]
    assert titles == ["Method", "Properties", "Headers", "Body"]
    assert view["request"][3]["data"] == '{\n  "a": [\n    1\n  ]\n}'


def test_binary_body_is_base64_and_capped() -> None:
    body = bytes(range(256)) * 8
    chunks = [
        *HANDSHAKE,
        *(
            (S, part)
            for part in content(1, commands.Basic.Deliver("ctag", 1, False, "x", "k"), body)
        ),
    ]
    outputs = run(chunks, **{"max-body-size": 1000})
    entry = requests(outputs, "basic.deliver")[0]["request"]
    assert entry["bodyEncoding"] == "base64" and entry["bodyTruncated"] is True
    assert entry["bodySize"] == 2048
    assert counters(outputs)["body_bytes_dropped"] == 1048
    plugin.configure(settings={})


def test_get_ok_carries_its_content_and_answers_get() -> None:
    chunks = [
        *HANDSHAKE,
        (C, method(1, commands.Basic.Get(queue="jobs"))),
        *((S, part) for part in content(1, commands.Basic.GetOk(7, False, "", "jobs", 2), b"job")),
        (C, method(1, commands.Basic.Get(queue="jobs"))),
        (S, method(1, commands.Basic.GetEmpty())),
    ]
    gets = requests(run(chunks), "basic.get")
    assert gets[0]["response"]["method"] == "basic.get-ok"
    assert gets[0]["response"]["body"] == "job" and gets[0]["response"]["messageCount"] == 2
    assert gets[1]["response"]["method"] == "basic.get-empty"


def publish(channel: int, key: str) -> list[tuple[Direction, bytes]]:
    return [(C, part) for part in content(channel, commands.Basic.Publish(routing_key=key), b"m")]


def test_publisher_confirms_mark_the_publishes() -> None:
    chunks = [
        *HANDSHAKE,
        (C, method(1, commands.Confirm.Select())),
        (S, method(1, commands.Confirm.SelectOk())),
        *publish(1, "p1"),
        *publish(1, "p2"),
        *publish(1, "p3"),
        *publish(1, "p4"),
        *publish(1, "p5"),
        (S, method(1, commands.Basic.Ack(delivery_tag=2, multiple=True))),
        (S, method(1, commands.Basic.Nack(delivery_tag=3))),
        (S, method(1, commands.Basic.Ack(delivery_tag=5))),
    ]
    outputs = run(chunks)
    order = [
        (e["request"]["method"], e["request"].get("routingKey"), e["request"].get("confirmed"))
        for e in outputs.entries[5:]
    ]
    assert order == [
        ("basic.publish", "p1", True),
        ("basic.publish", "p2", True),
        ("basic.ack", None, None),
        ("basic.publish", "p3", False),
        ("basic.nack", None, None),
        ("basic.publish", "p5", True),
        ("basic.ack", None, None),
        ("basic.publish", "p4", None),
    ]
    assert all(e["response"] is None for e in outputs.entries[5:])
    rows = [plugin.summarize(entry=e) for e in outputs.entries[5:8]]
    assert [row["status"] for row in rows] == ["confirmed", "confirmed", ""]
    assert rows[0]["statusQuery"] == "amqp and request.confirmed == true"
    # the broker's nack fails the publish it covers, and is an error itself
    assert [e["error"] for e in outputs.entries[5:]] == [
        *(False, False, False),
        *(True, True),
        *(False, False, False),
    ]
    assert plugin.summarize(entry=outputs.entries[8])["statusName"] == "NACK"


def test_multiple_ack_with_tag_zero_covers_everything() -> None:
    chunks = [
        *HANDSHAKE,
        (C, method(1, commands.Confirm.Select(nowait=True))),
        *publish(1, "p1"),
        *publish(1, "p2"),
        (S, method(1, commands.Basic.Ack(delivery_tag=0, multiple=True))),
    ]
    published = requests(run(chunks), "basic.publish")
    assert [p["request"]["confirmed"] for p in published] == [True, True]


def test_unconfirmed_publishes_are_bounded() -> None:
    chunks = [*HANDSHAKE, (C, method(1, commands.Confirm.Select(nowait=True)))]
    for index in range(5):
        chunks += publish(1, f"p{index}")
    chunks.append((S, method(1, commands.Basic.Ack(delivery_tag=5, multiple=True))))
    published = requests(run(chunks, **{"max-unconfirmed": 2}), "basic.publish")
    assert [(p["request"]["routingKey"], p["request"].get("confirmed")) for p in published] == [
        ("p0", None),
        ("p1", None),
        ("p2", None),
        ("p3", True),
        ("p4", True),
    ]
    plugin.configure(settings={})


def test_methods_without_reply_and_rabbitmq_extensions() -> None:
    chunks = [
        *HANDSHAKE,
        (S, method(0, commands.Connection.Blocked(reason="low on memory"))),
        (S, method(0, commands.Connection.Unblocked())),
        (C, method(1, commands.Exchange.Bind(destination="d", source="s", routing_key="k"))),
        (S, method(1, commands.Exchange.BindOk())),
        (C, method(1, commands.Queue.Declare(queue="q", nowait=True))),
        (C, method(1, commands.Basic.Reject(delivery_tag=4))),
        (C, method(1, commands.Basic.Nack(delivery_tag=5, multiple=True, requeue=False))),
        (C, method(0, commands.Connection.UpdateSecret(new_secret="token", reason="refresh"))),
        (S, method(0, commands.Connection.UpdateSecretOk())),
    ]
    chunks.insert(3, (S, heartbeat.Heartbeat.marshal()))
    outputs = run(chunks)
    assert counters(outputs)["heartbeats"] == 1
    shown = [
        (e["request"]["method"], (e["response"] or {}).get("method")) for e in outputs.entries[4:]
    ]
    assert shown == [
        ("connection.blocked", None),
        ("connection.unblocked", None),
        ("exchange.bind", "exchange.bind-ok"),
        ("queue.declare", None),
        ("basic.reject", None),
        ("basic.nack", None),
        ("connection.update-secret", "connection.update-secret-ok"),
    ]
    assert outputs.entries[4]["request"]["reason"] == "low on memory"
    assert outputs.entries[-1]["request"]["newSecret"] == "[REDACTED]"
    # a consumer's nack or reject is its own choice, not a failed exchange
    assert not any(entry["error"] for entry in outputs.entries)


def test_channel_close_ends_what_the_channel_waited_for() -> None:
    chunks = [
        *HANDSHAKE,
        (C, method(1, commands.Queue.Declare(queue="missing", passive=True))),
        (S, method(1, commands.Channel.Close(404, "NOT_FOUND", 50, 10))),
        (C, method(1, commands.Channel.CloseOk())),
        (C, method(1, commands.Channel.Open())),
        (S, method(1, commands.Channel.OpenOk())),
    ]
    outputs = run(chunks)
    shown = [
        (e["request"]["method"], (e["response"] or {}).get("method")) for e in outputs.entries[4:]
    ]
    assert shown == [
        ("queue.declare", None),
        ("channel.close", "channel.close-ok"),
        ("channel.open", "channel.open-ok"),
    ]
    row = plugin.summarize(entry=outputs.entries[5])
    assert (row["status"], row["summary"]) == ("404", "")
    assert (row["error"], row["statusName"]) == (True, "NOT_FOUND")
    assert [entry["error"] for entry in outputs.entries[4:]] == [False, True, False]
    assert (
        plugin.summarize(entry=outputs.entries[4])["summaryQuery"]
        == 'amqp and request.queue == "missing"'
    )


def test_returned_messages_and_clean_closes() -> None:
    returned = commands.Basic.Return(312, "NO_ROUTE", "orders", "nowhere")
    chunks = [
        *HANDSHAKE,
        *publish(1, "nowhere"),
        *[(S, part) for part in content(1, returned, b"m")],
        (C, method(1, commands.Channel.Close(200, "bye", 0, 0))),
        (S, method(1, commands.Channel.CloseOk())),
    ]
    outputs = run(chunks)
    rows = {e["request"]["method"]: plugin.summarize(entry=e) for e in outputs.entries[4:]}
    assert (rows["basic.return"]["error"], rows["basic.return"]["statusName"]) == (
        True,
        "NO_ROUTE",
    )
    assert (rows["channel.close"]["error"], rows["channel.close"]["statusName"]) == (
        False,
        "REPLY_SUCCESS",
    )
    assert (rows["basic.publish"]["error"], rows["basic.publish"]["status"]) == (False, "")


def test_mid_connection_start_and_garbage_resynchronise() -> None:
    stream = b"".join(
        part for part in content(1, commands.Basic.Publish(routing_key="a"), b"x" * 100)
    )
    second = b"".join(content(1, commands.Basic.Publish(routing_key="b"), b"y" * 100))
    third = b"".join(content(1, commands.Basic.Publish(routing_key="c"), b"z" * 100))
    chunks: Chunks = [(C, stream[5:]), (C, second), (C, b"\x01\x00\x01garbage\xce" * 3), (C, third)]
    outputs = run(chunks)
    assert [e["request"]["routingKey"] for e in outputs.entries] == ["b", "c"]
    assert outputs.entries[0]["request"]["body"] == "y" * 100


def test_gap_inside_a_body_flags_the_message_and_goes_on() -> None:
    parts = content(1, commands.Basic.Publish(routing_key="cut"), b"x" * 10000)
    chunks = [
        *HANDSHAKE,
        (C, parts[0]),
        (C, parts[1]),
        (C, parts[2][:100]),
        (C, b""),
        (C, parts[3][50:]),
    ]
    chunks += publish(1, "after")
    outputs = run(chunks)
    published = requests(outputs, "basic.publish")
    assert published[0]["request"]["routingKey"] == "cut" and published[0]["request"]["incomplete"]
    assert (
        published[1]["request"]["routingKey"] == "after"
        and "incomplete" not in published[1]["request"]
    )


def test_a_reply_lost_in_a_gap_is_not_taken_from_a_later_one() -> None:
    chunks = [
        *HANDSHAKE,
        (C, method(1, commands.Queue.Declare(queue="a"))),
        (S, b""),  # queue.declare-ok for "a" is lost
        (C, b""),  # so is the client's next queue.declare, for "b"
        (S, method(1, commands.Queue.DeclareOk("b", 0, 0))),
    ]
    outputs = run(chunks)
    pairs = [
        ((e["request"] or {}).get("queue"), (e["response"] or {}).get("queue"))
        for e in outputs.entries[len(HANDSHAKE) // 2 :]
    ]
    assert sorted(pairs, key=str) == [("a", None), (None, "b")]
    assert counters(outputs)["resyncs"] == 1


def test_pipelined_methods_take_their_replies_in_order() -> None:
    chunks = [
        *HANDSHAKE,
        (C, method(1, commands.Queue.Declare(queue="a"))),
        (C, method(1, commands.Queue.Declare(queue="b"))),
        (S, method(1, commands.Queue.DeclareOk("a", 0, 0))),
        (S, b""),  # lost: the reply to b
        (C, method(1, commands.Queue.Declare(queue="c"))),
        (S, method(1, commands.Queue.DeclareOk("c", 0, 0))),
    ]
    outputs = run(chunks)
    pairs = [
        ((e["request"] or {}).get("queue"), (e["response"] or {}).get("queue"), e.get("unpaired"))
        for e in outputs.entries[len(HANDSHAKE) // 2 :]
    ]
    assert pairs == [("a", "a", None), ("b", None, "gap"), ("c", "c", None)]


def test_a_channel_closed_by_the_client_still_gets_its_replies() -> None:
    chunks = [
        *HANDSHAKE,
        (C, method(1, commands.Queue.Declare(queue="a"))),
        (C, method(1, commands.Channel.Close(200, "bye", 0, 0))),  # the reply to "a" was held
        (S, method(1, commands.Queue.DeclareOk("a", 0, 0))),
        (S, method(1, commands.Channel.CloseOk())),
    ]
    pairs = [
        (e["request"]["method"], e["response"]["method"], e["response"].get("queue"))
        for e in run(chunks).entries[len(HANDSHAKE) // 2 :]
    ]
    assert pairs == [
        ("queue.declare", "queue.declare-ok", "a"),
        ("channel.close", "channel.close-ok", None),
    ]


def test_confirms_after_a_lost_publish_prove_nothing() -> None:
    chunks = [
        *HANDSHAKE,
        (C, method(1, commands.Confirm.Select())),
        (S, method(1, commands.Confirm.SelectOk())),
        *publish(1, "p1"),
        (C, b""),  # p2 is lost: the broker's delivery tags count it
        *publish(1, "p3"),
        (S, method(1, commands.Basic.Ack(delivery_tag=1))),
        (S, method(1, commands.Basic.Nack(delivery_tag=2))),
        (S, method(1, commands.Basic.Ack(delivery_tag=3))),
    ]
    published = requests(run(chunks), "basic.publish")
    assert [(p["request"]["routingKey"], p["request"].get("confirmed")) for p in published] == [
        ("p3", None),
        ("p1", True),
    ]


def test_confirms_after_lost_broker_bytes_prove_nothing_before_them() -> None:
    chunks = [
        *HANDSHAKE,
        (C, method(1, commands.Confirm.Select())),
        (S, method(1, commands.Confirm.SelectOk())),
        *publish(1, "p1"),
        *publish(1, "p2"),
        (S, b""),  # a basic.nack of p1, say
        (S, method(1, commands.Basic.Ack(delivery_tag=2, multiple=True))),
        *publish(1, "p3"),
        (S, method(1, commands.Basic.Ack(delivery_tag=3))),
    ]
    published = requests(run(chunks), "basic.publish")
    assert [(p["request"]["routingKey"], p["request"].get("confirmed")) for p in published] == [
        ("p1", None),
        ("p2", None),
        ("p3", True),
    ]


def test_dissect_claims_only_amqp() -> None:
    start = method(0, commands.Connection.Start())
    assert find_frame(start) == (0, len(start))
    assert find_frame(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") == (-1, 0)
    assert find_frame(start[:10]) == (0, 0)


def test_configure_rejects_unknown_and_bad_values() -> None:
    # The key alone: the core puts "plugins.amqp: " before the message.
    with pytest.raises(ValueError, match=r"^max-bodies: unknown setting"):
        plugin.configure(settings={"max-bodies": 1})
    with pytest.raises(ValueError, match=r"^max-body-size: expected a positive integer"):
        plugin.configure(settings={"max-body-size": -1})


STREAM = b"".join(part for _, part in HANDSHAKE[1:]) + b"".join(
    b"".join(content(1, commands.Basic.Deliver("t", tag, False, "x", "k"), b"%d" % tag * 3000))
    for tag in range(1, 4)
)


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_chunking_gives_the_same_entries(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(STREAM)]
    chunks: Chunks = [(S, STREAM[a:b]) for a, b in itertools.pairwise(bounds) if b > a]
    delivered = requests(run(chunks), "basic.deliver")
    assert [d["request"]["deliveryTag"] for d in delivered] == [1, 2, 3]
    assert all(len(d["request"]["body"]) == d["request"]["bodySize"] for d in delivered)


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(max_size=600),
    position=st.integers(min_value=0, max_value=len(STREAM)),
)
def test_garbage_never_breaks_the_dissector(data: bytes, position: int) -> None:
    chunks: Chunks = [(S, STREAM[:position]), (S, data), (S, STREAM[position:])]
    delivered = [d["request"] for d in requests(run(chunks), "basic.deliver")]
    for message in delivered:
        if "incomplete" not in message:
            assert message["body"] == str(message["deliveryTag"]) * 3000
    if position == len(STREAM):
        assert [message["deliveryTag"] for message in delivered] == [1, 2, 3]


def test_a_route_row_is_the_same_however_often_it_is_asked() -> None:
    """Rows of routes are remembered by side, exchange and routing key: each side keeps its
    own selectors, quoting holds, and a stored entry with a number for a name still has its
    row."""
    published = {"method": "basic.publish", "channel": 1, "exchange": "", "routingKey": 'q"1'}
    delivered = {**published, "method": "basic.deliver", "consumerTag": "c"}
    for _ in range(2):
        row = plugin.summarize(entry={"request": published, "response": None})
        assert (row["summary"], row["summaryQuery"], row["methodQuery"]) == (
            '(default) → q"1',
            'amqp and request.exchange == "" and request.routingKey == "q\\"1"',
            'amqp and request.method == "basic.publish"',
        )
        row = plugin.summarize(entry={"request": None, "response": delivered})
        assert (row["summary"], row["summaryQuery"], row["methodQuery"]) == (
            '(default) → q"1',
            'amqp and response.exchange == "" and response.routingKey == "q\\"1"',
            'amqp and response.method == "basic.deliver"',
        )
        row = plugin.summarize(entry={"request": {**published, "exchange": 7}, "response": None})
        assert (row["summary"], row["summaryQuery"]) == (
            '7 → q"1',
            'amqp and request.exchange == 7 and request.routingKey == "q\\"1"',
        )


VERDICT_CASES = [
    # (request, response, from the server, error, status)
    ({"method": "basic.publish", "confirmed": True}, None, False, False, "confirmed"),
    ({"method": "basic.publish", "confirmed": False}, None, False, True, "nacked"),
    ({"method": "basic.nack", "deliveryTag": 3}, None, True, True, ""),
    ({"method": "basic.nack", "deliveryTag": 3}, None, False, False, ""),
    ({"method": "basic.return", "replyCode": 312}, None, True, True, "312"),
    (
        {"method": "channel.close", "replyCode": 200},
        {"method": "channel.close-ok"},
        False,
        False,
        "200",
    ),
    (
        {"method": "channel.close", "replyCode": 404},
        {"method": "channel.close-ok"},
        True,
        True,
        "404",
    ),
    (
        {"method": "queue.declare"},
        {"method": "channel.close", "replyCode": 406},
        False,
        True,
        "406",
    ),
    ({"method": "queue.declare"}, {"method": "queue.declare-ok"}, False, False, ""),
    (None, {"method": "basic.deliver", "deliveryTag": 1}, True, False, ""),
]


@pytest.mark.parametrize(("request_", "response", "from_server", "error", "status"), VERDICT_CASES)
def test_is_error_says_what_the_row_says(
    request_: dict[str, Any] | None,
    response: dict[str, Any] | None,
    from_server: bool,
    error: bool,
    status: str,
) -> None:
    """The core keeps ``is_error``'s answer as the entry's ``error``: it is the row's, for
    every way an exchange fails (a refused publish, a broker's nack, a returned message, a
    channel closed with an error code, on either side)."""
    entry: Any = {"request": request_, "response": response, "fromServer": from_server}
    row = plugin.summarize(entry=entry)
    assert (row["error"], row["status"]) == (error, status)
    assert plugin.is_error(entry=entry) is error
