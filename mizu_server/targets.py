"""Which pods are tapped: the hub decides, from the pod events it is fed.

A pod is a target when its name matches the configured regex, its namespace is one of the
configured ones (none configured: every namespace) and it has an IP. Each tapper is known by
its node's name (its tapper id); whenever the targets on a node change, that node's tapper is
sent ``{"type": "targets", "ips": [...]}`` over ``/wsTapper`` and rebuilds its capture filter.
Pods on the host network share their node's IP and are left out: tapping them would tap the
whole node.

The tracker is fed from a watch (``mizu hub`` in a cluster) through :meth:`apply`, which is
thread-safe: sends are scheduled on the hub's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    namespace: str
    ip: str
    node: str

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "namespace": self.namespace, "ip": self.ip, "node": self.node}


class TargetTracker:
    def __init__(self, regex: str = ".*", namespaces: Sequence[str] = ()) -> None:
        self.regex = re.compile(regex)
        self.namespaces = frozenset(namespaces)
        self._targets: dict[tuple[str, str], Target] = {}
        self._tappers: dict[str, list[Send]] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def selects(self, pod: Mapping[str, Any]) -> Target | None:
        metadata = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        status = pod.get("status") or {}
        name = metadata.get("name", "")
        namespace = metadata.get("namespace") or ""
        ip = status.get("podIP") or ""
        if (
            not ip
            or spec.get("hostNetwork")
            or metadata.get("deletionTimestamp")
            or status.get("phase") in ("Succeeded", "Failed")
            or (self.namespaces and namespace not in self.namespaces)
            or not self.regex.search(name)
        ):
            return None
        return Target(name, namespace, ip, spec.get("nodeName") or "")

    # -- feeding (any thread) ------------------------------------------------------------------

    def apply(self, event: str, pod: Mapping[str, Any]) -> None:
        """One watch event: ``ADDED``, ``MODIFIED`` or ``DELETED``."""
        metadata = pod.get("metadata") or {}
        key = (metadata.get("namespace") or "", metadata.get("name", ""))
        target = None if event == "DELETED" else self.selects(pod)
        with self._lock:
            before = self._targets.get(key)
            if target is None:
                self._targets.pop(key, None)
            else:
                self._targets[key] = target
        if before != target:
            self._changed({t.node for t in (before, target) if t is not None})

    def replace(self, pods: Iterable[Mapping[str, Any]]) -> None:
        """A full listing (a watch's start or restart): targets become exactly these."""
        fresh = {}
        for pod in pods:
            target = self.selects(pod)
            if target is not None:
                fresh[(target.namespace, target.name)] = target
        with self._lock:
            before = set(self._targets.values())
            self._targets = fresh
        self._changed({t.node for t in before.symmetric_difference(fresh.values())})

    # -- reading -------------------------------------------------------------------------------

    def targets(self) -> list[Target]:
        with self._lock:
            return sorted(self._targets.values(), key=lambda t: (t.namespace, t.name))

    def ips_on(self, node: str) -> list[str]:
        with self._lock:
            return sorted({t.ip for t in self._targets.values() if t.node == node})

    def message_for(self, node: str) -> dict[str, Any]:
        return {"type": "targets", "ips": self.ips_on(node)}

    def status(self) -> dict[str, Any]:
        """For ``/status/tap``: what ``mizu tap`` prints as ``+pod`` / ``-pod``."""
        return {
            "regex": self.regex.pattern,
            "namespaces": sorted(self.namespaces),
            "pods": [target.as_json() for target in self.targets()],
        }

    # -- tappers (event loop) ------------------------------------------------------------------

    async def attach(self, node: str, send: Send) -> Callable[[], None]:
        """A tapper connected: send it its node's targets now and on every change. Returns
        the function that detaches it."""
        self._loop = asyncio.get_running_loop()
        self._tappers.setdefault(node, []).append(send)
        await send(self.message_for(node))

        def detach() -> None:
            sends = self._tappers.get(node, [])
            if send in sends:
                sends.remove(send)

        return detach

    def _changed(self, nodes: set[str]) -> None:
        loop = self._loop
        if loop is None or not nodes:
            return
        for node in nodes:
            loop.call_soon_threadsafe(self._push, node)

    def _push(self, node: str) -> None:
        message = self.message_for(node)
        for send in list(self._tappers.get(node, [])):
            task = asyncio.ensure_future(send(message))
            task.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("sending targets to a tapper failed: %s", task.exception())
