"""A TCP server on loopback for the live capture tests: no protocol Mizu knows."""

from __future__ import annotations

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
