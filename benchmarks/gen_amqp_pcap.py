"""Record real AMQP 0-9-1 traffic on loopback: a RabbitMQ, a publisher and a consumer.

Starts Debian's rabbitmq-server on a free port (its files in a temporary folder), records
``tcp port PORT`` on ``lo`` with tcpdump, and drives it with aio-pika (pika's blocking channel
waits for each confirm in turn; aio-pika keeps a batch of publishes in flight): a publisher in
confirm mode sends ``--messages`` JSON messages with properties and headers in concurrent
batches of ``--batch`` to a durable queue, while a consumer (prefetch ``--prefetch``) receives
each as a ``basic.deliver`` and acknowledges it. The file holds ``basic.publish`` + broker
``basic.ack`` + ``basic.deliver`` + client ``basic.ack`` for every message. A summary (with
the broker's port, which tshark needs) goes to stdout and beside the capture as FILE.json.
Needs root.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import aio_pika

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tests" / "plugins" / "mizu_amqp")]

from amqp_peers import Broker, rabbitmq_broker  # noqa: E402
from run_broker import write_summary  # noqa: E402

from tests.support.tcpdump import record  # noqa: E402

DEFAULT_OUT = BENCH_DIR / "data" / "amqp-50k.pcap"
QUEUE = "bench.orders"


def body(rng: random.Random, index: int) -> bytes:
    """A JSON order of 100 to ~1,000 octets."""
    lines = [{"sku": f"SKU-{rng.randrange(10**6)}", "qty": rng.randrange(1, 9)}]
    lines *= rng.randrange(1, 20)
    return json.dumps({"id": index, "customer": rng.randrange(10**4), "lines": lines}).encode()


async def drive(broker: Broker, messages: int, batch: int, prefetch: int, seed: int) -> int:
    """Publish ``messages`` in confirm mode and consume them all; returns how many arrived."""
    url = f"amqp://guest:guest@127.0.0.1:{broker.port}/"
    rng = random.Random(seed)
    received = 0
    all_received = asyncio.Event()
    consumer_connection = await aio_pika.connect(url)
    publisher_connection = await aio_pika.connect(url)
    async with consumer_connection, publisher_connection:
        consumer_channel = await consumer_connection.channel()
        await consumer_channel.set_qos(prefetch_count=prefetch)
        queue = await consumer_channel.declare_queue(QUEUE, durable=True)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal received
            await message.ack()
            received += 1
            if received >= messages:
                all_received.set()

        tag = await queue.consume(on_message)
        channel = await publisher_connection.channel(publisher_confirms=True)
        for start in range(0, messages, batch):
            await asyncio.gather(
                *(
                    channel.default_exchange.publish(
                        aio_pika.Message(
                            body(rng, index),
                            content_type="application/json",
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            message_id=f"order-{index}",
                            timestamp=int(time.time()),
                            headers={"tenant": f"t{index % 7}", "attempt": 1},
                        ),
                        routing_key=QUEUE,
                    )
                    for index in range(start, min(start + batch, messages))
                )
            )
        try:
            await asyncio.wait_for(all_received.wait(), timeout=120)
        finally:
            await queue.cancel(tag)
            await queue.delete(if_unused=False, if_empty=False)
    return received


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=200, help="publishes in flight at once")
    parser.add_argument("--prefetch", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="mizu-rabbitmq-") as folder,
        rabbitmq_broker(Path(folder)) as broker,
    ):
        started = time.monotonic()
        with record(args.out, f"tcp port {broker.port}"):
            received = asyncio.run(
                drive(broker, args.messages, args.batch, args.prefetch, args.seed)
            )
        elapsed = time.monotonic() - started
    write_summary(
        args.out,
        port=broker.port,
        published=args.messages,
        delivered=received,
        seconds=round(elapsed, 1),
    )


if __name__ == "__main__":
    main()
