"""Captures as a busy tapper makes them: recorded while pika connections opened before it were
declaring, publishing (with confirms), getting and consuming large messages, and copies of that
recording without 0.5 %, 2 % and 5 % of their data segments (seeded), and without any few of them.

Every synchronous method Mizu pairs was answered by that reply, as the client saw it, and every
publish it marks confirmed was; Mizu decodes at least as many methods exactly as tshark (which
pairs none) on the same file.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika
import pytest
from amqp_oracle import dissected_methods, tshark_methods
from amqp_peers import Broker, rabbitmq_broker
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mizu_core.testkit import HookOutputs, run_capture
from tests.support.capture_edits import remove_data_segments
from tests.support.joined_recordings import Recording, dissect_without_some_segments
from tests.support.tcp import server_port
from tests.support.tcpdump import record

pytestmark = pytest.mark.slow

LOSSES = (0.005, 0.02, 0.05)
SEED = 17
FEED = "feed"


def body_of(index: int) -> bytes:
    """Every third body spans several frames (RabbitMQ's frame-max is 128 KiB)."""
    return f"{index:08d}".encode() + bytes(range(256)) * (600 if index % 3 == 0 else 2)


@dataclass
class ClientView:
    got: dict[str, int] = field(default_factory=dict)
    """Queue → size of the body basic.get returned from it."""
    deleted: dict[str, int] = field(default_factory=dict)
    """Queue → messages deleted with it, as queue.delete-ok said."""


def work(broker: Broker, view: ClientView, stop: threading.Event) -> None:
    """Per round a queue of its own: declare, publish to it and to the feed (confirmed),
    get from it, delete it."""
    connection = pika.BlockingConnection(broker.parameters())
    channel = connection.channel()
    channel.confirm_delivery()
    channel.queue_declare(FEED)
    index = 0
    while not stop.is_set():
        queue, body = f"q{index}", body_of(index)
        channel.queue_declare(queue)
        channel.basic_publish("", queue, body)
        channel.basic_publish("", FEED, body)
        method, _, received = channel.basic_get(queue, auto_ack=True)
        assert method is not None and received == body
        view.got[queue] = len(received)
        view.deleted[queue] = channel.queue_delete(queue).method.message_count
        index += 1
    connection.close()


def consume(broker: Broker, ready: threading.Event, stop: threading.Event) -> None:
    connection = pika.BlockingConnection(broker.parameters())
    channel = connection.channel()
    channel.queue_declare(FEED)
    ready.set()
    for _delivery in channel.consume(FEED, auto_ack=True, inactivity_timeout=0.1):
        if stop.is_set():
            break
    channel.cancel()
    connection.close()


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recording[ClientView]]:
    folder = tmp_path_factory.mktemp("joined")
    capture = folder / "joined.pcap"
    view = ClientView()
    stop, ready = threading.Event(), threading.Event()
    with rabbitmq_broker(folder, server_port()) as broker:
        consumer = threading.Thread(target=consume, args=(broker, ready, stop))
        consumer.start()
        ready.wait(30)
        worker = threading.Thread(target=work, args=(broker, view, stop))
        worker.start()
        try:
            while len(view.got) < 10:  # both connections open and busy
                time.sleep(0.05)
            with record(capture, f"tcp port {broker.port}"):
                time.sleep(2.0)
                stop.set()
                worker.join()
                consumer.join()
        finally:
            stop.set()
    yield Recording(capture, broker.port, view, run_capture(capture, "amqp"))


def exact_pairs(outputs: HookOutputs, view: ClientView) -> int:
    """The request-reply entries, each checked against the client's view: a method paired with
    a reply that did not answer it fails the test."""
    assert outputs.stats["plugin_errors"] == {}
    exact = 0
    for entry in outputs.entries:
        request, response = entry["request"], entry["response"]
        if request is not None and request.get("confirmed") is False:
            raise AssertionError(f"RabbitMQ confirmed every publish: {request}")
        if request is None or response is None:
            continue
        assert response["channel"] == request["channel"]
        name = request["method"]
        if name == "queue.declare":
            assert response["queue"] == request["queue"]
        elif name == "basic.get" and request["queue"] in view.got:
            assert response["method"] == "basic.get-ok"
            assert response["routingKey"] == request["queue"]
            if not response.get("incomplete"):
                assert response["bodySize"] == view.got[request["queue"]]
        elif name == "queue.delete" and request["queue"] in view.deleted:
            assert response["messageCount"] == view.deleted[request["queue"]]
        else:
            assert response["method"] in (f"{name}-ok", "basic.get-empty"), (request, response)
        exact += 1
    return exact


@functools.cache
def tshark_reading(capture: Path, port: int) -> Counter[Any]:
    """tshark's methods of the whole recording, read once for the tests that compare with it."""
    return tshark_methods(capture, port)


def methods_right(methods: Counter[Any], reference: Counter[Any]) -> int:
    """Methods decoded as in ``reference`` (tshark on the whole recording)."""
    return sum((methods & reference).values())


def test_joined_connections_pair_as_the_client_saw(recording: Recording[ClientView]) -> None:
    exact = exact_pairs(recording.outputs, recording.view)
    theirs = tshark_reading(recording.capture, recording.port)
    ours = dissected_methods(recording.outputs.pairs)
    print(
        f"amqp joined: {exact} exact pairs, methods mizu {sum(ours.values())} "
        f"tshark {sum(theirs.values())}"
    )
    assert exact > 3 * 10  # three synchronous pairs a round, many rounds
    assert ours == theirs


@pytest.mark.parametrize("loss", LOSSES)
def test_lost_segments_never_pair_a_method_with_another_reply(
    recording: Recording[ClientView], tmp_path: Path, loss: float
) -> None:
    lossy = tmp_path / "lossy.pcap"
    removed = remove_data_segments(recording.capture, lossy, loss, SEED)
    outputs = run_capture(lossy, "amqp")
    exact = exact_pairs(outputs, recording.view)
    reference = tshark_reading(recording.capture, recording.port)
    ours = methods_right(dissected_methods(outputs.pairs), reference)
    theirs = methods_right(tshark_methods(lossy, recording.port), reference)
    counters = outputs.stats["plugin_counters"]["amqp"]
    print(
        f"amqp loss {loss:.1%}: {len(removed)} segments removed, {exact} exact pairs "
        f"({exact_pairs(recording.outputs, recording.view)} whole), methods right mizu {ours} "
        f"tshark {theirs}, resyncs {counters.get('resyncs', 0)}, "
        f"bytes skipped {counters.get('bytes_skipped', 0)}"
    )
    assert ours >= theirs
    # Pairing goes on across the losses: what waited for a reply that may have been lost, and
    # what was held behind lost bytes while its reply went by, stay alone; the rest pairs.
    assert exact >= exact_pairs(recording.outputs, recording.view) // 8


def pairs_shown(outputs: HookOutputs) -> set[tuple[Any, ...]]:
    """What identifies each request-reply entry: the client's port, the channel, both methods
    and what they name."""
    return {
        (
            entry["src"]["port"],
            request["channel"],
            request["method"],
            request.get("queue"),
            response["method"],
            response.get("queue"),
            response.get("routingKey"),
            response.get("messageCount"),
        )
        for entry in outputs.entries
        if (request := entry["request"]) is not None and (response := entry["response"])
    }


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_segments_removed_leave_only_pairs_of_the_whole_capture(
    recording: Recording[ClientView], data: st.DataObject
) -> None:
    outputs = dissect_without_some_segments(data, recording, "amqp")
    exact_pairs(outputs, recording.view)
    assert pairs_shown(outputs) <= pairs_shown(recording.outputs)
