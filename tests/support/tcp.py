"""TCP on loopback for the live capture tests: a server that speaks no protocol Mizu knows,
and ports for servers of their own."""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Callable


def answering_server(answer: Callable[[bytes], bytes]) -> tuple[socket.socket, int]:
    """A server on 127.0.0.1 (a free port) that sends ``answer(chunk)`` for each chunk it
    receives, on a daemon thread; close the socket returned to stop it."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            with connection:
                while data := connection.recv(65536):
                    connection.sendall(answer(data))

    threading.Thread(target=serve, daemon=True).start()
    return server, port


def server_port() -> int:
    """A free loopback port below Linux's ephemeral range (32768 on), as servers listen on:
    for a connection whose handshake a capture missed, the port is what tells the server from
    the client (whose port is ephemeral)."""
    rng = random.Random()
    while True:
        port = rng.randrange(20000, 32768)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
