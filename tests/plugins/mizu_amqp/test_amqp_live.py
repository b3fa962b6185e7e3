"""A real RabbitMQ driven by pika and aio-pika, recorded on loopback, dissected, and compared
with tshark's AMQP dissector and with what the clients sent and received.

RabbitMQ starts once for the whole module (it takes seconds): Debian's ``rabbitmq-server`` as
root with its data and logs in a temporary folder, a node name and ports of its own.
"""

from __future__ import annotations

import asyncio
import datetime
import decimal
import itertools
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import pika
import pika.exceptions
import pytest
from amqp_oracle import dissected_methods, tshark_methods
from amqp_peers import Broker, rabbitmq_broker

from mizu_core.testkit import HookOutputs, run_capture
from tests.support.perturb import read_pcap, write_pcap
from tests.support.tcpdump import record
from tests.support.tshark import REASSEMBLE_OUT_OF_ORDER

TCPDUMP_SETTLE = 1.5


@pytest.fixture(scope="module")
def rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with rabbitmq_broker(tmp_path_factory.mktemp("rabbitmq")) as broker:
        yield broker


# -- what the clients did ------------------------------------------------------------------------


@dataclass
class ClientLog:
    """What the client libraries say they sent and received."""

    published: list[tuple[str, bytes, dict[str, Any]]] = field(default_factory=list)
    """(routing key, body, properties) of every publish."""
    confirmed: list[tuple[str, bool]] = field(default_factory=list)
    """(routing key, whether the broker acknowledged it) of each publish in confirm mode."""
    received: list[tuple[str, bytes, dict[str, Any]]] = field(default_factory=list)
    get_counts: list[int] = field(default_factory=list)


TIMESTAMP = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)
HEADERS = {
    "retries": 3,
    "tenant": "acme",
    "flag": True,
    "ratio": decimal.Decimal("0.5"),
    "when": TIMESTAMP,
    "tags": ["a", "b"],
    "nested": {"level": 2},
}
HEADERS_SHOWN = HEADERS | {"ratio": "0.5", "when": "2024-05-01T12:00:00Z"}
LARGE_BODY = bytes(range(256)) * 1200  # 300 KiB of binary: several 128 KiB frames


def pika_session(broker: Broker, log: ClientLog) -> None:
    properties = pika.BasicProperties(
        content_type="application/json",
        delivery_mode=2,
        headers=HEADERS,
        correlation_id="corr-1",
        reply_to="replies",
        expiration="60000",
        message_id="msg-1",
        timestamp=int(TIMESTAMP.timestamp()),
        type="order.created",
        app_id="shop",
    )
    connection = pika.BlockingConnection(broker.parameters(heartbeat=1))
    channel = connection.channel()
    channel.exchange_declare("orders", "topic")
    channel.exchange_declare("audit", "fanout")
    channel.exchange_bind("audit", "orders", "order.#")
    channel.queue_declare("work", arguments={"x-queue-mode": "default"})
    channel.queue_declare("bounded", arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    channel.queue_declare("audit-log")
    channel.queue_bind("work", "orders", "order.*")
    channel.queue_bind("audit-log", "audit")
    channel.confirm_delivery()

    def publish(exchange: str, key: str, body: bytes, props: pika.BasicProperties) -> None:
        log.published.append((key, body, props.__dict__))
        try:
            channel.basic_publish(exchange, key, body, props, mandatory=True)
            log.confirmed.append((key, True))
        except pika.exceptions.NackError:
            log.confirmed.append((key, False))
        except pika.exceptions.UnroutableError:
            log.confirmed.append((key, True))  # returned, then acknowledged

    publish("orders", "order.created", b'{"id": 1, "total": 9.5}', properties)
    publish(
        "orders",
        "order.large",
        LARGE_BODY,
        pika.BasicProperties(content_type="application/octet-stream"),
    )
    publish("", "bounded", b"first", pika.BasicProperties())
    publish("", "bounded", b"second, rejected", pika.BasicProperties())
    publish("", "nowhere", b"unroutable", pika.BasicProperties())
    for _ in range(2):
        method, props, body = channel.basic_get("work")
        if method is not None:
            log.get_counts.append(method.message_count)
            log.received.append((method.routing_key, body, props.__dict__))
            channel.basic_ack(method.delivery_tag)
    channel.basic_get("work")  # basic.get-empty
    channel.basic_qos(prefetch_count=10)
    for index in range(3):
        publish(
            "orders", f"order.n{index}", b"n%d" % index, pika.BasicProperties(headers={"n": index})
        )
    deliveries = []
    for method, props, body in channel.consume("work", inactivity_timeout=2):
        if method is None:
            break
        deliveries.append(method)
        log.received.append((method.routing_key, body, props.__dict__))
        if len(deliveries) == 3:
            break
    channel.basic_ack(deliveries[0].delivery_tag)
    channel.basic_nack(deliveries[1].delivery_tag, requeue=False)
    channel.basic_reject(deliveries[2].delivery_tag, requeue=False)
    channel.cancel()
    channel.queue_purge("audit-log")
    connection.sleep(2.5)  # idle: heartbeats both ways
    transactional = connection.channel()
    transactional.tx_select()
    transactional.basic_publish("", "work", b"in a transaction")
    log.published.append(("work", b"in a transaction", pika.BasicProperties().__dict__))
    transactional.tx_commit()
    transactional.basic_publish("", "work", b"rolled back")
    log.published.append(("work", b"rolled back", pika.BasicProperties().__dict__))
    transactional.tx_rollback()
    transactional.close()
    channel.basic_recover(requeue=True)
    channel.queue_unbind("work", "orders", "order.*")
    channel.exchange_unbind("audit", "orders", "order.#")
    for queue in ("work", "bounded", "audit-log"):
        channel.queue_delete(queue)
    channel.exchange_delete("orders")
    channel.exchange_delete("audit")
    connection.close()


CHANNELS = 3
BODY_PER_CHANNEL = 3


def aio_body(channel: int, index: int) -> bytes:
    return (b"channel %d message %d " % (channel, index)) * 20000  # ~400 KiB, text


async def aio_pika_session(broker: Broker, log: ClientLog) -> None:
    connection = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{broker.port}/")
    async with connection:
        setup = await connection.channel()
        queue = await setup.declare_queue("interleaved", auto_delete=False)

        async def producer(number: int) -> None:
            channel = await connection.channel(publisher_confirms=True)
            for index in range(BODY_PER_CHANNEL):
                body = aio_body(number, index)
                key = f"c{number}.m{index}"
                log.published.append((key, body, {}))
                await channel.default_exchange.publish(
                    aio_pika.Message(body, headers={"channel": number}), routing_key="interleaved"
                )
                log.confirmed.append((key, True))

        await asyncio.gather(*(producer(number) for number in range(CHANNELS)))
        async with queue.iterator() as messages:
            async for message in messages:
                async with message.process():
                    log.received.append(("interleaved", message.body, message.headers))
                if len(log.received) == CHANNELS * BODY_PER_CHANNEL:
                    break
        await queue.delete()


@dataclass
class Recording:
    capture: Path
    port: int
    log: ClientLog
    outputs: HookOutputs
    heartbeats: int


def _record(tmp: Path, broker: Broker, name: str, session: Any) -> Recording:
    log = ClientLog()
    capture = tmp / f"{name}.pcap"
    with record(capture, f"tcp port {broker.port}"):
        session(broker, log)
        # tcpdump (without --immediate-mode) loses the packets of its last ring block, up to
        # a second's worth, when stopped: keep it running past them.
        time.sleep(TCPDUMP_SETTLE)
    outputs = run_capture(capture, "amqp")
    assert outputs.stats["plugin_errors"] == {}
    heartbeats = outputs.stats["plugin_counters"]["amqp"].get("heartbeats", 0)
    return Recording(capture, broker.port, log, outputs, heartbeats)


@pytest.fixture(scope="module")
def pika_recording(rabbitmq: Broker, tmp_path_factory: pytest.TempPathFactory) -> Recording:
    return _record(tmp_path_factory.mktemp("pika"), rabbitmq, "pika", pika_session)


@pytest.fixture(scope="module")
def aio_recording(rabbitmq: Broker, tmp_path_factory: pytest.TempPathFactory) -> Recording:
    return _record(
        tmp_path_factory.mktemp("aio"),
        rabbitmq,
        "aio",
        lambda broker, log: asyncio.run(aio_pika_session(broker, log)),
    )


def requests_named(recording: Recording, name: str) -> list[dict[str, Any]]:
    return [
        entry["request"]
        for entry in recording.outputs.entries
        if entry["request"] and entry["request"]["method"] == name
    ]


# -- the tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["pika_recording", "aio_recording"])
def test_every_method_matches_tshark(request: pytest.FixtureRequest, which: str) -> None:
    recording: Recording = request.getfixturevalue(which)
    ours = dissected_methods(recording.outputs.pairs)
    theirs = tshark_methods(recording.capture, recording.port)
    assert sum(theirs.values()) > 20
    assert ours == theirs


def test_pika_synchronous_methods_are_paired(pika_recording: Recording) -> None:
    pairs = {
        (entry["request"]["method"], (entry["response"] or {}).get("method"))
        for entry in pika_recording.outputs.entries
        if entry["request"]
    }
    for method in (
        "exchange.declare", "exchange.bind", "exchange.unbind", "exchange.delete",
        "queue.declare", "queue.bind", "queue.unbind", "queue.purge", "queue.delete",
        "basic.qos", "basic.consume", "basic.cancel", "basic.recover", "confirm.select",
        "tx.select", "tx.commit", "tx.rollback", "channel.open", "channel.close",
        "connection.start", "connection.tune", "connection.open", "connection.close",
    ):  # fmt: skip
        assert (method, f"{method}-ok") in pairs
    assert ("basic.get", "basic.get-ok") in pairs and ("basic.get", "basic.get-empty") in pairs
    unanswered = {name for name, reply in pairs if reply is None}
    assert unanswered == {
        "basic.publish", "basic.deliver", "basic.ack", "basic.nack", "basic.reject",
        "basic.return",
    }  # fmt: skip


def test_pika_publishes_match_what_the_client_sent(pika_recording: Recording) -> None:
    published = requests_named(pika_recording, "basic.publish")
    assert [(p["routingKey"], p["bodySize"]) for p in published] == [
        (key, len(body)) for key, body, _ in pika_recording.log.published
    ]
    created = published[0]
    assert created["body"] == '{"id": 1, "total": 9.5}'
    assert created["properties"] == {
        "contentType": "application/json",
        "deliveryMode": 2,
        "headers": HEADERS_SHOWN,
        "correlationId": "corr-1",
        "replyTo": "replies",
        "expiration": "60000",
        "messageId": "msg-1",
        "timestamp": "2024-05-01T12:00:00Z",
        "type": "order.created",
        "appId": "shop",
    }
    large = published[1]
    assert large["bodyEncoding"] == "base64" and large["bodyTruncated"] is True
    assert large["bodySize"] == len(LARGE_BODY)


def test_pika_confirms_match_the_client(pika_recording: Recording) -> None:
    published = requests_named(pika_recording, "basic.publish")
    in_confirm_mode = [p for p in published if "confirmed" in p]
    assert [(p["routingKey"], p["confirmed"]) for p in in_confirm_mode] == (
        pika_recording.log.confirmed
    )
    assert [p["confirmed"] for p in in_confirm_mode if p["routingKey"] == "bounded"] == [
        True,
        False,
    ]
    assert {p["routingKey"] for p in published if "confirmed" not in p} == {"work"}  # tx channel
    broker_acks = [
        entry["request"]
        for entry in pika_recording.outputs.entries
        if entry["request"]["method"] in ("basic.ack", "basic.nack")
        and entry["src"]["port"] == pika_recording.port
    ]
    assert len(broker_acks) == len(pika_recording.log.confirmed)
    returned = requests_named(pika_recording, "basic.return")
    assert [(r["routingKey"], r["replyCode"], r["body"]) for r in returned] == [
        ("nowhere", 312, "unroutable")
    ]


def test_pika_deliveries_and_gets_match_what_the_client_received(pika_recording: Recording) -> None:
    got = [
        entry["response"]
        for entry in pika_recording.outputs.entries
        if entry["response"] and entry["response"]["method"] == "basic.get-ok"
    ]
    delivered = requests_named(pika_recording, "basic.deliver")
    assert [(m["routingKey"], m["bodySize"]) for m in got + delivered] == [
        (key, len(body)) for key, body, _ in pika_recording.log.received
    ]
    assert [m["messageCount"] for m in got] == pika_recording.log.get_counts
    assert [m["properties"].get("headers") for m in delivered] == [
        props["headers"] for _, _, props in pika_recording.log.received[2:]
    ]
    client_acks = [
        entry["request"]
        for entry in pika_recording.outputs.entries
        if entry["request"]["method"] in ("basic.ack", "basic.nack", "basic.reject")
        and entry["dst"]["port"] == pika_recording.port
    ]
    assert [m["method"] for m in client_acks] == [
        "basic.ack", "basic.ack", "basic.ack", "basic.nack", "basic.reject",
    ]  # fmt: skip


def test_heartbeats_are_counted_not_entries(pika_recording: Recording) -> None:
    assert pika_recording.heartbeats >= 2
    methods = {entry["request"]["method"] for entry in pika_recording.outputs.entries}
    assert not any("heartbeat" in method for method in methods)


def test_interleaved_channels_reassemble_every_large_body(aio_recording: Recording) -> None:
    published = requests_named(aio_recording, "basic.publish")
    sent = {body[: 64 << 10].decode() for _, body, _ in aio_recording.log.published}
    assert {p["body"] for p in published} == sent
    assert all(p["bodySize"] == len(aio_body(0, 0)) for p in published)
    assert all(p["confirmed"] is True for p in published)
    assert len({p["channel"] for p in published}) == CHANNELS
    delivered = requests_named(aio_recording, "basic.deliver")
    assert sorted(d["properties"]["headers"]["channel"] for d in delivered) == sorted(
        number for number in range(CHANNELS) for _ in range(BODY_PER_CHANNEL)
    )
    assert {d["body"] for d in delivered} == sent


def test_interleaving_really_happened(aio_recording: Recording) -> None:
    """The capture has body frames of several channels between one message's frames."""
    output = subprocess.run(
        [
            "tshark", "-r", str(aio_recording.capture), *REASSEMBLE_OUT_OF_ORDER, "-d",
            f"tcp.port=={aio_recording.port},amqp", "-Y", "amqp.type == 3",
            "-T", "fields", "-e", "amqp.channel", "-E", "occurrence=a",
        ],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    channels = [c for line in output.split() for c in line.split(",")]
    switches = sum(1 for a, b in itertools.pairwise(channels) if a != b)
    assert switches >= CHANNELS


def test_capture_cut_mid_connection_resynchronises(
    pika_recording: Recording, tmp_path: Path
) -> None:
    """Drop the first packets (handshake and declarations): the rest is still dissected."""
    cut = tmp_path / "cut.pcap"
    capture = read_pcap(pika_recording.capture)
    write_pcap(cut, capture.packets[len(capture.packets) // 3 :], capture.linktype)
    outputs = run_capture(cut, "amqp")
    assert outputs.stats["plugin_errors"] == {}
    ours = dissected_methods(outputs.pairs)
    theirs = tshark_methods(cut, pika_recording.port)
    # tshark also reads what follows; a message whose method frame was cut away is lost to both.
    assert sum(ours.values()) > 10
    assert ours == theirs
    assert outputs.entries[-1]["request"]["method"] == "connection.close"
