"""The relay behind ``localhost:8899``: each local connection is relayed, both ways, to a
stream of its own (in a cluster, a port-forward stream; here, an echo server on loopback)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
from kubernetes import client

from mizu_cli.k8s.portforward import KubernetesPortForwarder, LocalRelay


class EchoServer:
    """Echoes what each connection sends until the peer closes; counts ended connections."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = self.listener.getsockname()
        self.ended = threading.Semaphore(0)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(connection,), daemon=True).start()

    def _echo(self, connection: socket.socket) -> None:
        with connection:
            while data := connection.recv(65536):
                connection.sendall(data)
        self.ended.release()

    def connect(self) -> socket.socket:
        return socket.create_connection(self.address, timeout=5)


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.listener.close()


def relay_port(relay: LocalRelay) -> int:
    port = urlsplit(relay.url).port
    assert port is not None
    return port


def round_trip(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as local:
        sender = threading.Thread(target=local.sendall, args=(payload,))
        sender.start()
        received = bytearray()
        while len(received) < len(payload):
            chunk = local.recv(65536)
            if not chunk:
                break
            received += chunk
        sender.join()
    return bytes(received)


def test_concurrent_connections_are_relayed_both_ways_and_closed(echo: EchoServer) -> None:
    relay = LocalRelay(0, echo.connect)
    try:
        port = relay_port(relay)
        payloads = [bytes([n]) * (1 << 20) + b"end" for n in range(4)]
        with ThreadPoolExecutor(4) as pool:
            echoed = list(pool.map(lambda payload: round_trip(port, payload), payloads))
        assert echoed == payloads
        for _ in payloads:  # each local close reached the remote end
            assert echo.ended.acquire(timeout=5)
    finally:
        relay.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)


def test_an_unreachable_pod_drops_that_connection_only(echo: EchoServer) -> None:
    attempts: list[int] = []

    def open_remote() -> socket.socket:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionRefusedError("the pod is gone")
        return echo.connect()

    relay = LocalRelay(0, open_remote)
    try:
        port = relay_port(relay)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as first:
            assert first.recv(1) == b""  # closed at once
        assert round_trip(port, b"still serving") == b"still serving"
    finally:
        relay.close()


def test_a_busy_local_port_is_a_clear_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        forwarder = KubernetesPortForwarder(client.ApiClient())
        with pytest.raises(OSError, match=f"localhost:{port}.*-p/--gui-port"):
            forwarder.forward("mizu", "mizu-hub", 8899, port)
