"""Captures as a busy tapper makes them: recorded while a producer and a consumer connected
before it were producing and fetching large records, and copies of that recording without
0.5 %, 2 % and 5 % of their data segments (seeded), and without any few of them.

For each, Mizu pairs at least as many requests exactly right as tshark on the same file
(kafka-python speaks Kafka 2.0's versions, which tshark decodes), and every pair agrees with
what the clients saw: a produce is answered with the offset the producer was given, a fetch
with the records stored at the offsets it asked for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka_oracle import mizu_messages, tshark_messages, wire_bytes
from kafka_peers import tansu_broker

from mizu_core.testkit import run_capture
from tests.support.capture_edits import remove_data_segments
from tests.support.joined_recordings import Recording, dissect_without_some_segments
from tests.support.tcp import server_port
from tests.support.tcpdump import record

pytestmark = pytest.mark.slow

KAFKA_2_0 = (2, 0, 0)
LOSSES = (0.005, 0.02, 0.05)
SEED = 17
TOPIC = "busy"


@dataclass
class ClientView:
    produced: dict[bytes, tuple[int, int]] = field(default_factory=dict)
    """Key → (partition, offset) the broker gave the producer."""
    stored: dict[tuple[int, int], tuple[bytes, bytes]] = field(default_factory=dict)
    """(partition, offset) → (key, value) of every record produced."""


def value_of(index: int) -> bytes:
    """Large enough that fetch responses span many segments."""
    return f"{index:08d}".encode() + bytes(range(256)) * (40 if index % 3 else 400)


def produce(bootstrap: str, view: ClientView, stop: threading.Event) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap, api_version=KAFKA_2_0, enable_idempotence=False
    )
    index = 0
    while not stop.is_set():
        key, value = f"key-{index}".encode(), value_of(index)
        metadata = producer.send(TOPIC, key=key, value=value, partition=index % 2).get(10)
        view.produced[key] = (metadata.partition, metadata.offset)
        view.stored[metadata.partition, metadata.offset] = (key, value)
        index += 1
    producer.close()


def consume(bootstrap: str, stop: threading.Event) -> None:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, api_version=KAFKA_2_0, fetch_max_wait_ms=50
    )
    consumer.assign([TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)])
    consumer.seek_to_beginning()
    while not stop.is_set():
        consumer.poll(timeout_ms=100)
    consumer.close()


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recording[ClientView]]:
    from kafka.admin import KafkaAdminClient, NewTopic

    capture = tmp_path_factory.mktemp("joined") / "joined.pcap"
    view = ClientView()
    stop = threading.Event()
    with tansu_broker(server_port()) as bootstrap:
        port = int(bootstrap.rsplit(":", 1)[1])
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, api_version=KAFKA_2_0)
        admin.create_topics([NewTopic(TOPIC, 2, 1)])
        admin.close()
        clients = [
            threading.Thread(target=produce, args=(bootstrap, view, stop)),
            threading.Thread(target=consume, args=(bootstrap, stop)),
        ]
        for client in clients:
            client.start()
        try:
            while len(view.produced) < 20:  # both clients connected and busy
                time.sleep(0.05)
            with record(capture, f"tcp port {port}"):
                time.sleep(2.0)
                stop.set()
                for client in clients:
                    client.join()
        finally:
            stop.set()
    yield Recording(capture, port, view, run_capture(capture, "kafka"))


def check_with_the_clients(entries: list[dict[str, Any]], view: ClientView) -> None:
    """Fail on a pair the clients did not see: a produce answered with another record's
    offset, a fetch answered with records from elsewhere than the offsets it asked for."""
    for entry in entries:
        request, response = entry["request"], entry["response"]
        if request is None or response is None:
            continue
        assert response["correlationId"] == request["correlationId"]
        assert "decodeError" not in response, response
        if request["method"] == "Produce":
            offsets = {
                (topic["name"], partition["index"]): partition["baseOffset"]
                for topic in response["payload"]["responses"]
                for partition in topic["partitionResponses"]
            }
            for topic in request["payload"]["topicData"]:
                for partition in topic["partitionData"]:
                    key = wire_bytes(partition["records"][0], "key")
                    assert view.produced[key] == (
                        partition["index"],
                        offsets[topic["name"], partition["index"]],
                    )
        elif request["method"] == "Fetch":
            asked = {
                (topic["topic"], partition["partition"]): partition["fetchOffset"]
                for topic in request["payload"]["topics"]
                for partition in topic["partitions"]
            }
            for topic in response["payload"]["responses"]:
                for partition in topic["partitions"]:
                    index = partition["partitionIndex"]
                    for stored in partition["records"]:
                        assert stored["offset"] >= asked[topic["topic"], index]
                        key, value = view.stored[index, stored["offset"]]
                        assert wire_bytes(stored, "key") == key
                        assert value.startswith(wire_bytes(stored, "value") or b"")


Facts = dict[tuple[int, int, str], dict[str, Any]]
SHOWN = 4096
"""Bytes of a value Mizu shows (``max-value-bytes``): values are compared up to there."""


def starts(values: list[str]) -> list[str]:
    """Hex values cut where Mizu cuts them."""
    return [value[: 2 * SHOWN] for value in values]


def exact_pairs(decoded: Facts, reference: Facts) -> int:
    """Requests whose request and response were both decoded as in ``reference`` (the API,
    and the records' keys and values where one message filled its segment)."""

    def same(key: tuple[int, int, str]) -> bool:
        mine, right = decoded.get(key), reference.get(key)
        if mine is None or right is None:
            return False
        if key[2] == "request" and (mine["apiKey"], mine["apiVersion"]) != (
            right["apiKey"],
            right["apiVersion"],
        ):
            return False
        if not mine.get("single", True):
            return True  # tshark merges the fields of several messages of one segment
        return (mine["keys"], starts(mine["values"])) == (right["keys"], starts(right["values"]))

    return sum(
        1
        for port, correlation_id, side in decoded
        if side == "request"
        and same((port, correlation_id, "request"))
        and same((port, correlation_id, "response"))
    )


def figures(capture: Path, recording: Recording[ClientView]) -> tuple[int, int]:
    outputs = run_capture(capture, "kafka") if capture != recording.capture else recording.outputs
    assert outputs.stats["plugin_errors"] == {}
    check_with_the_clients(outputs.entries, recording.view)
    reference = mizu_messages(recording.outputs.entries)
    ours = exact_pairs(mizu_messages(outputs.entries), reference)
    theirs = exact_pairs(tshark_messages(capture, recording.port), reference)
    return ours, theirs


def test_joined_connections_pair_as_the_clients_saw(recording: Recording[ClientView]) -> None:
    check_with_the_clients(recording.outputs.entries, recording.view)
    ours, theirs = figures(recording.capture, recording)
    print(f"kafka joined: mizu {ours} exact pairs, tshark {theirs}")
    assert ours >= theirs
    assert ours > 20


@pytest.mark.parametrize("loss", LOSSES)
def test_lost_segments_pair_at_least_what_tshark_pairs(
    recording: Recording[ClientView], tmp_path: Path, loss: float
) -> None:
    lossy = tmp_path / "lossy.pcap"
    removed = remove_data_segments(recording.capture, lossy, loss, SEED)
    ours, theirs = figures(lossy, recording)
    print(
        f"kafka loss {loss:.1%}: {len(removed)} segments removed, mizu {ours} exact pairs, "
        f"tshark {theirs}"
    )
    assert ours >= theirs


def pair_keys(entries: list[dict[str, Any]]) -> set[tuple[int, int, int]]:
    """(client port, correlation id, API key) of every complete entry."""
    return {
        (entry["src"]["port"], entry["request"]["correlationId"], entry["request"]["apiKey"])
        for entry in entries
        if entry["request"] is not None and entry["response"] is not None
    }


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_segments_removed_leave_only_pairs_of_the_whole_capture(
    recording: Recording[ClientView], data: st.DataObject
) -> None:
    entries = dissect_without_some_segments(data, recording, "kafka").entries
    check_with_the_clients(entries, recording.view)
    assert pair_keys(entries) <= pair_keys(recording.outputs.entries)
