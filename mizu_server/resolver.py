"""IP → name, from the Pods, Services and EndpointSlices the hub watches.

An entry's ``src`` and ``dst`` get ``name`` ("name.namespace", as Mizu showed it) and
``namespace``: the Service's when the IP is a Service's cluster IP, else the Pod's; an
EndpointSlice names the addresses that no Pod owns (a Service without a selector, endpoints
outside the cluster) after its Service. Fed by watch events from any thread.

The hub sends its tappers the whole table (:meth:`NameResolver.table`) when they connect and
when it changed: tappers name entries before they encode them, so the hub stores what it
receives without decoding it to name it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

Name = tuple[str, str]
"""(name, namespace)"""

KINDS = ("Pod", "Service", "EndpointSlice")


def _key(obj: Mapping[str, Any]) -> Name:
    metadata = obj.get("metadata") or {}
    return metadata.get("name", ""), metadata.get("namespace") or ""


def _pod_ips(pod: Mapping[str, Any]) -> list[str]:
    if (pod.get("spec") or {}).get("hostNetwork"):
        return []  # the node's own IP: naming it after one pod would mislead
    status = pod.get("status") or {}
    ips = [item.get("ip", "") for item in status.get("podIPs") or []]
    return [ip for ip in {status.get("podIP", ""), *ips} if ip]


def _service_ips(service: Mapping[str, Any]) -> list[str]:
    spec = service.get("spec") or {}
    ips = {spec.get("clusterIP", ""), *(spec.get("clusterIPs") or [])}
    return [ip for ip in ips if ip and ip != "None"]


def _slice_ips(endpoint_slice: Mapping[str, Any]) -> tuple[Name | None, list[str]]:
    labels = (endpoint_slice.get("metadata") or {}).get("labels") or {}
    service = labels.get("kubernetes.io/service-name")
    if not service:
        return None, []
    ips = [
        address
        for endpoint in endpoint_slice.get("endpoints") or []
        if not endpoint.get("targetRef")  # a Pod's address: the Pod names it
        for address in endpoint.get("addresses") or []
    ]
    return (service, _key(endpoint_slice)[1]), ips


class NameResolver:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owned: dict[str, dict[Name, tuple[Name, list[str]]]] = {k: {} for k in KINDS}
        self._by_kind: dict[str, dict[str, Name]] = {k: {} for k in KINDS}
        self.version = 0
        """Counts the changes: the table is sent again when it moved."""

    def _ips(self, kind: str, obj: Mapping[str, Any]) -> tuple[Name, list[str]]:
        if kind == "Pod":
            return _key(obj), _pod_ips(obj)
        if kind == "Service":
            return _key(obj), _service_ips(obj)
        name, ips = _slice_ips(obj)
        return name or _key(obj), ips

    def apply(self, kind: str, event: str, obj: Mapping[str, Any]) -> None:
        """One watch event for a Pod, Service or EndpointSlice."""
        key = _key(obj)
        with self._lock:
            self.version += 1
            self._forget(kind, key)
            if event != "DELETED":
                name, ips = self._ips(kind, obj)
                self._owned[kind][key] = (name, ips)
                for ip in ips:
                    self._by_kind[kind][ip] = name

    def replace(self, kind: str, objects: Iterable[Mapping[str, Any]]) -> None:
        with self._lock:
            self.version += 1
            self._owned[kind] = {}
            self._by_kind[kind] = {}
        for obj in objects:
            self.apply(kind, "ADDED", obj)

    def _forget(self, kind: str, key: Name) -> None:
        previous = self._owned[kind].pop(key, None)
        if previous is None:
            return
        name, ips = previous
        for ip in ips:
            if self._by_kind[kind].get(ip) == name:
                del self._by_kind[kind][ip]

    def lookup(self, ip: str) -> Name | None:
        with self._lock:
            for kind in ("Service", "Pod", "EndpointSlice"):
                name = self._by_kind[kind].get(ip)
                if name is not None:
                    return name
        return None

    def fill(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Name the entry's ends that are not named yet."""
        return fill_names(entry, self.shown)

    def shown(self, ip: str) -> tuple[str, str] | None:
        """``("name.namespace", namespace)`` of ``ip``, as entries show it."""
        found = self.lookup(ip)
        return None if found is None else (f"{found[0]}.{found[1]}", found[1])

    def table(self) -> dict[str, list[str]]:
        """Every IP's ``["name.namespace", namespace]``, as :func:`fill_names` of a tapper
        takes it (``{"type": "names", "names": table}`` on ``/wsTapper``)."""
        with self._lock:
            named: dict[str, Name] = {}
            for kind in ("EndpointSlice", "Pod", "Service"):  # the later ones win
                named.update(self._by_kind[kind])
        return {ip: [f"{name}.{namespace}", namespace] for ip, (name, namespace) in named.items()}


def fill_names(
    entry: dict[str, Any], shown: Callable[[str], Sequence[str] | None]
) -> dict[str, Any]:
    """Name the entry's ``src`` and ``dst`` that are not named yet: ``shown(ip)`` is
    ``("name.namespace", namespace)`` or None (a resolver's :meth:`~NameResolver.shown`, the
    ``get`` of a :meth:`~NameResolver.table` a tapper was sent)."""
    for side in ("src", "dst"):
        end = entry.get(side)
        if not isinstance(end, dict) or end.get("name"):
            continue
        found = shown(str(end.get("ip", "")))
        if found is not None:
            end["name"], end["namespace"] = found
    return entry
