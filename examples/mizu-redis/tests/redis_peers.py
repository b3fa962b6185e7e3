"""Real peers for the tests and for recording the committed captures: redis-server, tcpdump and
the traffic scenarios (redis-py with RESP2 and RESP3, redis-cli, inline commands)."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import redis

START_TIMEOUT = 10.0


@dataclass(frozen=True)
class RedisServer:
    port: int


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def redis_server(port: int | None = None) -> Iterator[RedisServer]:
    """A throwaway redis-server on 127.0.0.1, on ``port`` or a free one (no persistence, DEBUG
    allowed for its types)."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    port = port or free_port()
    process = subprocess.Popen(
        [
            executable,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--enable-debug-command",
            "yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with redis.Redis(port=port, socket_timeout=1) as probe:
                    probe.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on port {port}") from None
                time.sleep(0.05)
        yield RedisServer(port)
    finally:
        process.terminate()
        process.wait(timeout=START_TIMEOUT)


def send_commands(port: int, commands: Sequence[Sequence[str]], pause: float = 0.0) -> None:
    """``commands`` in RESP on one connection, as a client library writes them, each reply read
    before the next is sent; ``pause`` seconds after each send, so that every reply comes in a
    segment of its own."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        for command in commands:
            parts = [part.encode() for part in command]
            connection.sendall(
                b"*%d\r\n" % len(parts)
                + b"".join(b"$%d\r\n%s\r\n" % (len(part), part) for part in parts)
            )
            time.sleep(pause)
            connection.recv(65536)


@contextmanager
def tcpdump(path: Path, port: int) -> Iterator[Path]:
    """Record loopback traffic to or from ``port`` into ``path`` while the block runs."""
    command = [
        "tcpdump",
        "-i",
        "lo",
        "-s",
        "0",
        "-U",
        "--immediate-mode",
        "-B",
        "131072",
        "-Z",
        "root",
        "-w",
    ]
    process = subprocess.Popen(
        [*command, str(path), f"tcp port {port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    if "listening" not in process.stderr.readline():  # tcpdump says so once it captures
        process.kill()
        raise RuntimeError("tcpdump did not start")
    try:
        yield path
    finally:
        time.sleep(0.2)  # the block's last packets reach the capture buffer
        process.send_signal(signal.SIGINT)
        process.wait(timeout=START_TIMEOUT)


# -- scenarios: what each committed capture holds --------------------------------------------


def resp2_commands(port: int) -> None:
    """redis-py, RESP2: every reply type of RESP2, errors, a large value, pipelines, MULTI."""
    client = redis.Redis(port=port, protocol=2)
    client.set("greeting", "hello")
    client.get("greeting")
    client.get("missing")
    client.incr("counter")
    client.rpush("list", "a", "b", "c")
    client.lrange("list", 0, -1)
    with suppress(redis.ResponseError):
        client.incr("list")
    client.set("large", "x" * 5000)
    client.get("large")
    pipeline = client.pipeline(transaction=False)
    pipeline.set("one", 1).incr("one").get("one")
    pipeline.execute()
    transaction = client.pipeline(transaction=True)
    transaction.set("account", 100).decrby("account", 30).get("account")
    transaction.execute()
    client.delete("greeting", "counter", "list", "large", "one", "account")
    client.close()


def resp3_types(port: int) -> None:
    """redis-py, RESP3 (HELLO 3): maps, sets, doubles, nulls, and every type DEBUG PROTOCOL
    makes (big numbers, booleans, verbatim strings, attributes, pushes)."""
    client = redis.Redis(port=port, protocol=3)
    client.hset("user:1", mapping={"name": "ada", "age": "36"})
    client.hgetall("user:1")
    client.sadd("tags", "redis")
    client.smembers("tags")
    client.zadd("scores", {"ada": 1.5})
    client.zscore("scores", "ada")
    client.get("missing")
    for kind in ("bignum", "true", "false", "verbatim", "double", "map", "set"):
        client.execute_command("DEBUG", "PROTOCOL", kind)
    client.delete("user:1", "tags", "scores")
    client.close()
    # redis-py refuses attributes: ask for them, and for a push, on a socket of our own.
    exchange(
        port,
        b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n"
        b"*3\r\n$5\r\nDEBUG\r\n$8\r\nPROTOCOL\r\n$6\r\nattrib\r\n"
        b"*3\r\n$5\r\nDEBUG\r\n$8\r\nPROTOCOL\r\n$4\r\npush\r\n",
        until=b"following the push reply\r\n",
    )


def exchange(port: int, commands: bytes, until: bytes) -> bytes:
    """Send raw ``commands`` on a new connection; read until the replies end with ``until``."""
    with socket.create_connection(("127.0.0.1", port), timeout=START_TIMEOUT) as raw:
        raw.sendall(commands)
        received = b""
        while not received.endswith(until):
            chunk = raw.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed after {received!r}")
            received += chunk
        return received


def pubsub(protocol: int) -> Callable[[int], None]:
    def scenario(port: int) -> None:
        subscriber = redis.Redis(port=port, protocol=protocol).pubsub()
        subscriber.subscribe("news", "sport")
        subscriber.psubscribe("weather.*")
        for _ in range(3):
            subscriber.get_message(timeout=1)
        publisher = redis.Redis(port=port, protocol=protocol)
        publisher.publish("news", "hello")
        publisher.publish("weather.paris", "rain")
        for _ in range(3):
            subscriber.get_message(timeout=1)
        subscriber.unsubscribe()
        subscriber.punsubscribe("weather.*")
        for _ in range(3):
            subscriber.get_message(timeout=1)
        subscriber.close()
        publisher.close()

    scenario.__doc__ = f"redis-py pub/sub, RESP{protocol}: SUBSCRIBE two channels, PSUBSCRIBE, "
    "two PUBLISH, UNSUBSCRIBE all, PUNSUBSCRIBE."
    return scenario


def redis_cli(port: int) -> None:
    """redis-cli: one command per connection, then inline commands typed on a raw socket."""
    for command in (["SET", "cli:key", "from redis-cli"], ["GET", "cli:key"], ["DEL", "cli:key"]):
        subprocess.run(
            ["redis-cli", "-p", str(port), *command], check=True, stdout=subprocess.DEVNULL
        )
    exchange(port, b"PING\r\nSET inline value\r\nGET inline\r\nDEL inline\r\n", until=b":1\r\n")


SCENARIOS: dict[str, Callable[[int], None]] = {
    "resp2-commands": resp2_commands,
    "resp3-types": resp3_types,
    "pubsub-resp2": pubsub(2),
    "pubsub-resp3": pubsub(3),
    "redis-cli": redis_cli,
}
"""Capture name (``tests/data/<name>.pcap``) to the traffic it records."""
