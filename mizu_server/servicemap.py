"""The service map: who calls whom, over which protocol, how often, how badly and how fast.

Computed when asked (``GET /servicemap``) from the stored entries the filter matches within a
time window (:meth:`~mizu_server.store.SqliteStore.window`), so the filter bar applies to it.

Edges go by role, from the connection's client to its server, whichever of them sent the
message: a WebSocket frame the server pushed, an AMQP ``basic.deliver`` or a Redis push is the
client's edge to the server like its own requests (entries say ``fromServer``). A node is a
workload: an end's resolved name; else a server's ``ip:port``; else a client's IP, never its
port, which is ephemeral (one per connection) — shown as the server node on that IP when
exactly one is known, so that a service that both serves and calls is one node (unless the IP
calls that very server: then the caller is another process of the host, as a browser or curl
calling a service on the same machine is).

Each node and edge carries a filter (``query``) that selects its entries, for the list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mizu_core.entry import query_literal
from mizu_core.model import Endpoint

COLUMNS = (
    "from_server",
    "src_name",
    "src_ip",
    "src_port",
    "dst_name",
    "dst_ip",
    "dst_port",
    "macro",
    "protocol",
    "error",
    "elapsed",
    "response_size",
)
"""The store columns the map is made of, in the order :func:`build` reads them."""
PERCENTILES = (50, 90, 99)


def percentile(sorted_values: Sequence[float], rank: int) -> float:
    """The nearest-rank percentile of already sorted values."""
    index = max(0, -(-rank * len(sorted_values) // 100) - 1)
    return sorted_values[min(index, len(sorted_values) - 1)]


def latency_percentiles(values: list[float]) -> dict[str, float] | None:
    """p50/p90/p99 (ms) of latencies (sorted in place); None when there are none."""
    if not values:
        return None
    values.sort()
    return {f"p{rank}": round(percentile(values, rank), 3) for rank in PERCENTILES}


@dataclass(frozen=True, slots=True)
class Workload:
    """A node, and the filter condition that selects it as one end of an entry: a template
    with ``{end}`` for ``src`` or ``dst``."""

    id: str
    term: str
    ip: str = ""
    """The IP it stands for when it is not resolved to a name."""

    def on(self, end: str) -> str:
        return self.term.replace("{end}", end)


def server_workload(name: Any, ip: Any, port: Any) -> Workload:
    """A server: its resolved name, else its ``ip:port``."""
    if name:
        return Workload(str(name), "{end}.name == " + query_literal(str(name)))
    port = port if isinstance(port, int) else 0
    address = str(Endpoint(str(ip or ""), port))
    term = f"{{end}}.ip == {query_literal(str(ip or ''))} and {{end}}.port == {port}"
    return Workload(address, term, str(ip or ""))


def client_workload(name: Any, ip: Any) -> Workload:
    """A client: its resolved name, else its IP (never its ephemeral port)."""
    if name:
        return Workload(str(name), "{end}.name == " + query_literal(str(name)))
    return Workload(str(ip or ""), f"{{end}}.ip == {query_literal(str(ip or ''))}", str(ip or ""))


def role_query(client: Workload | None, server: Workload | None) -> str:
    """A filter selecting entries whose connection's client is ``client`` and server is
    ``server`` (None: any), whichever of them sent the message."""
    sides = []
    for pushed, client_end, server_end in (("!=", "src", "dst"), ("==", "dst", "src")):
        terms = [f"fromServer {pushed} true"]
        if client is not None:
            terms.append(client.on(client_end))
        if server is not None:
            terms.append(server.on(server_end))
        sides.append(f"({' and '.join(terms)})")
    return f"({sides[0]} or {sides[1]})"


@dataclass(slots=True)
class _Edge:
    client: Workload
    server: Workload
    macro: str
    protocol: str
    count: int = 0
    pushed: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)

    def absorb(self, other: _Edge) -> None:
        self.count += other.count
        self.pushed += other.pushed
        self.errors += other.errors
        self.latencies += other.latencies


@dataclass(slots=True)
class _Node:
    id: str
    calls_as: Workload | None = None
    serves_as: Workload | None = None
    entries: int = 0
    errors: int = 0

    def as_json(self) -> dict[str, Any]:
        queries = []
        if self.calls_as is not None:
            queries.append(role_query(self.calls_as, None))
        if self.serves_as is not None:
            queries.append(role_query(None, self.serves_as))
        return {
            "id": self.id,
            "name": self.id,
            "kind": "service" if self.serves_as is not None else "client",
            "entries": self.entries,
            "errors": self.errors,
            "query": " or ".join(queries),
        }


def _edges(rows: Iterable[Sequence[Any]]) -> dict[tuple[str, str, str], _Edge]:
    """Edges by (client, server, macro)."""
    edges: dict[tuple[str, str, str], _Edge] = {}
    by_ends: dict[tuple[Any, ...], _Edge] = {}
    for row in rows:
        pushed, src_name, src_ip, src_port, dst_name, dst_ip, dst_port, macro = row[:8]
        if pushed == 1:
            ends = (dst_name, dst_ip, src_name, src_ip, src_port, macro)
        else:
            ends = (src_name, src_ip, dst_name, dst_ip, dst_port, macro)
        edge = by_ends.get(ends)
        if edge is None:  # the workloads of a pair of ends are worked out once
            client = client_workload(ends[0], ends[1])
            server = server_workload(ends[2], ends[3], ends[4])
            key = (client.id, server.id, str(macro or ""))
            edge = edges.get(key)
            if edge is None:
                edge = edges[key] = _Edge(client, server, key[2], str(row[8] or ""))
            by_ends[ends] = edge
        edge.count += 1
        edge.pushed += pushed == 1
        edge.errors += row[9] == 1
        if isinstance(row[11], int) and row[11] > 0 and isinstance(row[10], int | float):
            edge.latencies.append(float(row[10]))  # answered: a latency to count
    return edges


def build(
    rows: Iterable[Sequence[Any]], protocols: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """``{nodes, edges}`` of store ``rows`` of :data:`COLUMNS`; ``protocols`` describes each
    protocol by its macro (``abbr``, colours…). Busiest first."""
    edges = _edges(rows)
    # an unresolved client's IP on which exactly one unresolved server listens is that server
    servers_on: dict[str, set[Workload]] = {}
    for edge in edges.values():
        if edge.server.ip:
            servers_on.setdefault(edge.server.ip, set()).add(edge.server)
    merged = {
        edge.client.id: next(iter(servers))
        for edge in edges.values()
        if edge.client.ip and len(servers := servers_on.get(edge.client.ip, set())) == 1
    }
    for edge in edges.values():  # a host that calls its own one server keeps its caller apart
        if merged.get(edge.client.id) == edge.server:
            del merged[edge.client.id]
    drawn: dict[tuple[str, str, str], _Edge] = {}
    nodes: dict[str, _Node] = {}
    for edge in edges.values():
        client = edge.client
        if client.id in merged:
            client = Workload(merged[client.id].id, client.term, client.ip)
        key = (client.id, edge.server.id, edge.macro)
        if key in drawn:
            drawn[key].absorb(edge)
        else:
            drawn[key] = _Edge(client, edge.server, edge.macro, edge.protocol)
            drawn[key].absorb(edge)
        calling = nodes.setdefault(client.id, _Node(client.id))
        calling.calls_as = calling.calls_as or client
        calling.entries += edge.count
        serving = nodes.setdefault(edge.server.id, _Node(edge.server.id))
        serving.serves_as = edge.server
        serving.errors += edge.errors
        if serving is not calling:
            serving.entries += edge.count
    edge_list: list[dict[str, Any]] = [
        {
            "id": f"{edge.client.id} → {edge.server.id} ({edge.macro})",
            "source": edge.client.id,
            "destination": edge.server.id,
            "protocol": {
                "name": edge.protocol,
                "macro": edge.macro,
                **protocols.get(edge.macro, {}),
            },
            "count": edge.count,
            "pushed": edge.pushed,
            "errors": edge.errors,
            "errorRate": round(edge.errors / edge.count, 4),
            "answered": len(edge.latencies),
            "latency": latency_percentiles(edge.latencies),
            "query": f"protocol.macro == {query_literal(edge.macro)} and "
            + role_query(edge.client, edge.server),
        }
        for edge in drawn.values()
    ]
    edge_list.sort(key=lambda edge: (-int(edge["count"]), edge["source"], edge["destination"]))
    return {
        "nodes": [
            node.as_json()
            for node in sorted(nodes.values(), key=lambda node: (-node.entries, node.id))
        ],
        "edges": edge_list,
    }
