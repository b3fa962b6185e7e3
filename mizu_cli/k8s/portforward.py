"""Port-forwarding a pod's port to localhost, behind one small interface.

:class:`PortForwarder` is what the commands use; :class:`KubernetesPortForwarder` opens one
port-forward stream through the API server (the official client's ``portforward``) for each
local connection; tests replace it with a forwarder to a local hub.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
from collections.abc import Callable
from typing import Any, Protocol

from kubernetes import client
from kubernetes.stream import portforward

log = logging.getLogger(__name__)

RemoteSocket = Any
"""A connected stream: a socket, or the client's socket-like port-forward end."""


class Forward(Protocol):
    url: str

    def close(self) -> None: ...


class PortForwarder(Protocol):
    def forward(self, namespace: str, pod: str, remote_port: int, local_port: int) -> Forward:
        """Serve ``localhost:local_port``, each connection relayed to the pod's port."""
        ...


class LocalRelay:
    """Listens on 127.0.0.1 and relays each accepted connection to a stream ``open_remote``
    opens, both ways, on threads of its own."""

    def __init__(self, local_port: int, open_remote: Callable[[], RemoteSocket]) -> None:
        self.open_remote = open_remote
        self._listener = socket.create_server(("127.0.0.1", local_port))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="mizu-forward", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            ready, _, _ = select.select([self._listener], [], [], 0.2)
            if not ready:
                continue
            try:
                local, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(local,), daemon=True).start()

    def _relay(self, local: socket.socket) -> None:
        try:
            remote = self.open_remote()
        except Exception as error:  # the pod went away: drop this connection, keep serving
            log.warning("port-forward: cannot reach the pod: %s", error)
            local.close()
            return
        peers = {local: remote, remote: local}
        try:
            while not self._closed.is_set():
                ready, _, _ = select.select(list(peers), [], [], 0.2)
                for end in ready:
                    data = end.recv(65536)
                    if not data:
                        return
                    peers[end].sendall(data)
        except OSError:
            return
        finally:
            local.close()
            with contextlib.suppress(OSError):
                remote.close()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        self._thread.join(timeout=1.0)


class KubernetesPortForwarder:
    """Port-forwarding through the API server, as ``kubectl port-forward`` does."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api = client.CoreV1Api(api_client)

    def forward(self, namespace: str, pod: str, remote_port: int, local_port: int) -> LocalRelay:
        def open_remote() -> RemoteSocket:
            stream = portforward(
                self.api.connect_get_namespaced_pod_portforward,
                pod,
                namespace,
                ports=str(remote_port),
            )
            return stream.socket(remote_port)

        try:
            return LocalRelay(local_port, open_remote)
        except OSError as error:
            raise OSError(
                f"cannot listen on localhost:{local_port}: {error.strerror or error} "
                "(pick another port with -p/--gui-port)"
            ) from None
