"""The service map: who talks to whom, with what, how often, how badly and how fast.

Fed every stored entry (:meth:`ServiceMap.observe`); ``GET /servicemap`` draws it. A node is
an endpoint's resolved name, else its ``ip:port`` — except that an unresolved *client* is its
IP alone (its port is ephemeral, one per connection), shown as the server node on that IP
when exactly one is known, so that a service that both serves and calls is one node. State is
bounded: at most :data:`MAX_EDGES` edges, each keeping a reservoir of latencies.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mizu_server.rules import endpoint_address

MAX_EDGES = 10_000
LATENCY_SAMPLES = 1024
"""Latencies kept per edge; percentiles are exact up to this many entries, sampled beyond."""
PERCENTILES = (50, 90, 99)


@dataclass(slots=True)
class Edge:
    protocol: dict[str, Any]
    count: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)

    def add(self, latency: float, error: bool, rng: random.Random) -> None:
        self.count += 1
        self.errors += error
        if len(self.latencies) < LATENCY_SAMPLES:
            self.latencies.append(latency)
        else:  # reservoir sampling: every latency seen has the same chance to be kept
            slot = rng.randrange(self.count)
            if slot < LATENCY_SAMPLES:
                self.latencies[slot] = latency


def is_error(entry: Mapping[str, Any]) -> bool:
    """The plugin's word, kept on the entry when it was made (``summarize``'s ``error``)."""
    return entry.get("error") is True


def percentile(sorted_values: list[float], rank: int) -> float:
    """The nearest-rank percentile of already sorted values."""
    index = max(0, -(-rank * len(sorted_values) // 100) - 1)
    return sorted_values[min(index, len(sorted_values) - 1)]


class ServiceMap:
    def __init__(self) -> None:
        self.edges: dict[tuple[str, str, str, str], Edge] = {}
        self.client_ips: set[str] = set()
        """Source keys that are a bare IP (unresolved clients)."""
        self.server_ips: dict[str, set[str]] = {}
        """IP → unresolved server nodes (``ip:port``) on it."""
        self.dropped = 0
        self._rng = random.Random(0)

    def observe(self, entry: Mapping[str, Any]) -> None:
        src, dst = entry.get("src") or {}, entry.get("dst") or {}
        protocol = entry.get("protocol") or {}
        if src.get("name"):
            source = str(src["name"])
        else:
            source = str(src.get("ip", ""))
            self.client_ips.add(source)
        if dst.get("name"):
            destination = str(dst["name"])
        else:
            destination = endpoint_address(dst)
            self.server_ips.setdefault(str(dst.get("ip", "")), set()).add(destination)
        key = (source, destination, str(protocol.get("name", "")), str(protocol.get("abbr", "")))
        edge = self.edges.get(key)
        if edge is None:
            if len(self.edges) >= MAX_EDGES:
                self.dropped += 1
                return
            edge = self.edges[key] = Edge(
                {
                    name: protocol.get(name, "")
                    for name in ("name", "abbr", "version", "backgroundColor", "foregroundColor")
                }
            )
        edge.add(float(entry.get("elapsedTime") or 0.0), is_error(entry), self._rng)

    def _node_of_client(self, source: str) -> str:
        if source in self.client_ips:
            servers = self.server_ips.get(source, ())
            if len(servers) == 1:
                return next(iter(servers))
        return source

    def as_json(self) -> dict[str, Any]:
        """``{nodes, edges, entries, dropped}``; edges by count, busiest first."""
        nodes: dict[str, int] = {}
        edges: list[dict[str, Any]] = []
        for (source, destination, _, _), edge in self.edges.items():
            source = self._node_of_client(source)
            nodes[source] = nodes.get(source, 0) + edge.count
            if destination != source:
                nodes[destination] = nodes.get(destination, 0) + edge.count
            latencies = sorted(edge.latencies)
            edges.append(
                {
                    "source": source,
                    "destination": destination,
                    "protocol": edge.protocol,
                    "count": edge.count,
                    "errors": edge.errors,
                    "latency": {
                        f"p{rank}": round(percentile(latencies, rank), 3) for rank in PERCENTILES
                    },
                }
            )
        edges.sort(key=lambda edge: (-edge["count"], edge["source"], edge["destination"]))
        return {
            "nodes": [
                {"id": name, "name": name, "entries": count}
                for name, count in sorted(nodes.items(), key=lambda item: (-item[1], item[0]))
            ],
            "edges": edges,
            "entries": sum(edge["count"] for edge in edges),
            "dropped": self.dropped,
        }
