"""A real RabbitMQ on loopback, for the live tests and the benchmark's capture generator.

Debian's ``rabbitmq-server`` runs as root with its data and logs in a folder of the caller's, a
node name and ports of its own; it takes seconds to accept its first connection.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pika
import pika.exceptions

RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
READY_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def epmd_pids() -> set[int]:
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "epmd":
                    pids.add(int(entry.name))
            except OSError:
                continue
    return pids


@dataclass
class Broker:
    port: int

    def parameters(self, **options: Any) -> pika.ConnectionParameters:
        return pika.ConnectionParameters("127.0.0.1", self.port, **options)


@contextmanager
def rabbitmq_broker(directory: Path, port: int | None = None) -> Iterator[Broker]:
    """A RabbitMQ node keeping its files under ``directory``, listening on ``port`` (or a free
    one), stopped (with the epmd daemon it started) when the block ends."""
    if not RABBITMQ_SERVER.exists():
        raise RuntimeError("Debian's rabbitmq-server is needed (apt-get install it)")
    port = port or free_port()
    epmd_before = epmd_pids()
    environment = os.environ | {
        "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"),
        "RABBITMQ_LOG_BASE": str(directory / "log"),
        "RABBITMQ_NODENAME": f"mizu-amqp-{os.getpid()}@localhost",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(free_port()),
    }
    with open(directory / "server.out", "wb") as output:
        server = subprocess.Popen(
            [str(RABBITMQ_SERVER)],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    broker = Broker(port)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                pika.BlockingConnection(broker.parameters(connection_attempts=1)).close()
                break
            except pika.exceptions.AMQPConnectionError:
                if server.poll() is not None:
                    raise RuntimeError((directory / "server.out").read_text()) from None
                if time.monotonic() > deadline:
                    raise RuntimeError("RabbitMQ did not accept connections") from None
                time.sleep(0.5)
        yield broker
    finally:
        # The server script and its beam.smp share the session we gave them.
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        for pid in epmd_pids() - epmd_before:
            os.kill(pid, signal.SIGTERM)  # the epmd daemon this broker started
