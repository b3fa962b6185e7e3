"""The service map: nodes by workload, edges by role (client → server, whichever side sent the
message), counts, errors (the plugins' word) and latency percentiles over the filter's entries
in a window; from hand-made entries in a store, and from a real ``mizu tap --local`` watching
the loopback shop."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from mizu_core.query import compile_query
from mizu_server import windowed
from mizu_server.servicemap import percentile
from mizu_server.store import SqliteStore
from mizu_server.windows import WindowReader
from tests.server.hub_support import make_entry
from tests.server.multiservice import (
    Shop,
    TappedHub,
    Traffic,
    drive,
    mizu_tap,
    running_shop,
    shop_query,
)

PROTOCOLS = {"http": {"abbr": "HTTP"}, "ws": {"abbr": "WS"}, "amqp": {"abbr": "AMQP"}}


def call(
    number: int,
    client: tuple[str, int, str],
    server: tuple[str, int, str],
    *,
    status: int = 200,
    elapsed: float = 1.0,
    pushed: bool = False,
    macro: str = "http",
    answered: bool = True,
) -> dict[str, Any]:
    """An entry of a connection from ``client`` to ``server`` (ip, port, name); ``pushed``:
    the server sent the message, so it is the entry's source."""
    entry = make_entry(number, status=status, elapsedTime=elapsed)
    entry["protocol"] = {**entry["protocol"], "macro": macro, "name": macro}
    entry["error"] = status >= 400  # as the HTTP plugin says
    entry["fromServer"] = pushed
    ends = [
        {"ip": client[0], "port": client[1], "name": client[2], "namespace": ""},
        {"ip": server[0], "port": server[1], "name": server[2], "namespace": ""},
    ]
    entry["src"], entry["dst"] = reversed(ends) if pushed else ends
    if not answered:
        entry["response"], entry["responseSize"] = None, 0
    return entry


def drawn(entries: list[dict[str, Any]], query: str = "") -> dict[str, Any]:
    store = SqliteStore(":memory:")
    store.insert(entries)
    answer = windowed.service_map(
        WindowReader(store.db), compile_query(query), 3600, PROTOCOLS, None
    )
    store.close()
    return answer


def test_percentiles_are_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert [percentile(values, rank) for rank in (50, 90, 99)] == [50.0, 90.0, 99.0]
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0, 3.0], 50) == 2.0


def test_edges_go_from_client_to_server_whichever_side_sent_the_message() -> None:
    """A WebSocket connection of 10.0.0.1 to chat (server frames pushed) and an AMQP consumer
    of the broker (basic.deliver pushed): one edge each, no node for an ephemeral port."""
    chat, broker = ("10.0.9.1", 8080, ""), ("10.0.9.2", 5672, "rabbit.shop")
    entries = [
        call(1, ("10.0.0.1", 41001, ""), chat, macro="ws", answered=False),
        call(2, ("10.0.0.1", 41001, ""), chat, macro="ws", pushed=True, answered=False),
        call(3, ("10.0.0.1", 41001, ""), chat, macro="ws", pushed=True, answered=False),
        call(4, ("10.0.0.1", 41002, ""), broker, macro="amqp"),
        call(5, ("10.0.0.1", 41002, ""), broker, macro="amqp", pushed=True, answered=False),
    ]
    answer = drawn(entries)
    assert {node["id"]: node["kind"] for node in answer["nodes"]} == {
        "10.0.0.1": "client",
        "10.0.9.1:8080": "service",
        "rabbit.shop": "service",
    }
    edges = {(e["source"], e["destination"], e["protocol"]["macro"]): e for e in answer["edges"]}
    assert set(edges) == {("10.0.0.1", "10.0.9.1:8080", "ws"), ("10.0.0.1", "rabbit.shop", "amqp")}
    ws = edges[("10.0.0.1", "10.0.9.1:8080", "ws")]
    assert (ws["count"], ws["pushed"], ws["answered"], ws["latency"]) == (3, 2, 0, None)
    assert ws["protocol"]["abbr"] == "WS"
    assert edges[("10.0.0.1", "rabbit.shop", "amqp")]["latency"] == {
        "p50": 1.0,
        "p90": 1.0,
        "p99": 1.0,
    }
    assert answer["complete"] and answer["entries"] == answer["matched"] == 5


def test_each_edge_and_node_query_selects_exactly_its_entries() -> None:
    gateway, orders = ("10.1.0.2", 8080, ""), ("10.1.0.3", 9090, "orders.shop")
    entries = [
        call(1, ("10.1.0.9", 40001, ""), gateway),
        call(2, ("10.1.0.9", 40002, ""), gateway, status=502),
        call(3, ("10.1.0.2", 40003, ""), orders),  # the gateway calling from its own IP
        call(4, ("10.1.0.2", 40004, ""), orders, pushed=True, answered=False),
        call(5, ("10.1.0.7", 40005, "web.shop"), orders),
    ]
    answer = drawn(entries)
    # the gateway's calls leave from its IP, where it is the only server: one node
    assert sorted(node["id"] for node in answer["nodes"]) == [
        "10.1.0.2:8080",
        "10.1.0.9",
        "orders.shop",
        "web.shop",
    ]
    for edge in answer["edges"]:
        selected = compile_query(edge["query"])
        assert sum(1 for entry in entries if selected(entry)) == edge["count"], edge
    counts = {node["id"]: node["entries"] for node in answer["nodes"]}
    assert counts == {"10.1.0.2:8080": 4, "10.1.0.9": 2, "orders.shop": 3, "web.shop": 1}
    for node in answer["nodes"]:
        selected = compile_query(node["query"])
        assert sum(1 for entry in entries if selected(entry)) == node["entries"], node
    failing = next(edge for edge in answer["edges"] if edge["errors"])
    assert (failing["destination"], failing["errors"], failing["errorRate"]) == (
        "10.1.0.2:8080",
        1,
        0.5,
    )
    assert next(n for n in answer["nodes"] if n["id"] == "10.1.0.2:8080")["errors"] == 1


def test_errors_are_the_plugins_word_not_a_status() -> None:
    entries = [call(1, ("10.0.0.1", 40001, ""), ("10.0.0.2", 80, ""), status=500)]
    entries[0]["error"] = False  # the plugin says a 500 is fine here
    assert drawn(entries)["edges"][0]["errors"] == 0


def test_the_filter_and_the_window_apply() -> None:
    base = [call(n, ("10.0.0.1", 40000 + n, ""), ("10.0.0.2", 80 + n % 2, "")) for n in range(10)]
    only_81 = drawn(base, "dst.port == 81")
    assert [(e["destination"], e["count"]) for e in only_81["edges"]] == [("10.0.0.2:81", 5)]
    assert only_81["query"] == "dst.port == 81"
    old = call(99, ("10.0.0.5", 40099, ""), ("10.0.0.6", 80, ""))
    old["timestamp"] -= 2 * 3600 * 1000  # before the window of an hour
    answer = drawn([*base, old])
    assert "10.0.0.6:80" not in {node["id"] for node in answer["nodes"]}
    assert answer["window"]["until"] - answer["window"]["since"] == 3600 * 1000


def test_a_capped_window_says_it_is_sampled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(windowed, "WINDOW_ROWS", 4)
    entries = [call(n, ("10.0.0.1", 40000 + n, ""), ("10.0.0.2", 80, "")) for n in range(10)]
    answer = drawn(entries)
    assert (answer["entries"], answer["matched"], answer["complete"]) == (4, 10, False)
    assert answer["edges"][0]["count"] == 4
    inexact = drawn(entries, 'request.headers["Host"].contains("127")')
    assert (inexact["entries"], inexact["matched"], inexact["complete"]) == (4, None, False)


@pytest.fixture(scope="module")
def watched_shop(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Shop, Traffic, TappedHub]]:
    workdir = tmp_path_factory.mktemp("servicemap")
    arguments = ["--local", "-i", "lo"]
    with running_shop("127.0.1") as (shop, traffic), mizu_tap(arguments, workdir) as hub:
        drive(shop, traffic)
        hub.wait_for(shop_query(shop), sum(traffic.requests.values()), timeout=60)
        yield shop, traffic, hub


@pytest.mark.live
def test_the_map_of_real_traffic(watched_shop: tuple[Shop, Traffic, TappedHub]) -> None:
    shop, traffic, hub = watched_shop
    client = shop.ip("client")
    gateway, orders, catalogue = (shop.address(name) for name in ("gateway", "orders", "catalogue"))
    hops = {
        (client, gateway): "client->gateway",
        (gateway, orders): "gateway->orders",
        (orders, catalogue): "orders->catalogue",
    }
    expected = {key: traffic.requests[hop] for key, hop in hops.items()}
    # under load the capture may still be storing the last hops: wait for them, not a while
    deadline = time.monotonic() + 60
    while True:
        answer = hub.get("/servicemap", query=shop_query(shop))
        edges = {(edge["source"], edge["destination"]): edge for edge in answer["edges"]}
        counts = {key: edge["count"] for key, edge in edges.items()}
        if counts == expected or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert set(edges) == set(hops)
    for key, hop in hops.items():
        edge = edges[key]
        assert (edge["count"], edge["errors"]) == (traffic.requests[hop], traffic.errors[hop])
        assert edge["protocol"]["name"] == "http" and edge["protocol"]["abbr"] == "HTTP"
        latency = edge["latency"]
        assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"]
        assert len(hub.entries(edge["query"])) == edge["count"]
    # the catalogue's slow item: two of its eleven answers took 400 ms
    assert edges[(orders, catalogue)]["latency"]["p99"] >= 400
    assert edges[(orders, catalogue)]["latency"]["p50"] < 100
    nodes = {node["id"]: node["entries"] for node in answer["nodes"]}
    assert set(nodes) == {client, gateway, orders, catalogue}
    assert (
        nodes[gateway] == traffic.requests["client->gateway"] + traffic.requests["gateway->orders"]
    )
    assert nodes[catalogue] == traffic.requests["orders->catalogue"]
    assert nodes[client] == traffic.requests["client->gateway"]
    assert answer["complete"]


def test_a_host_calling_its_own_service_keeps_its_caller_apart() -> None:
    """curl on a machine calling the one service there: a client node and a service node."""
    entries = [call(n, ("127.0.0.1", 40000 + n, ""), ("127.0.0.1", 8080, "")) for n in range(3)]
    answer = drawn(entries)
    assert [(e["source"], e["destination"]) for e in answer["edges"]] == [
        ("127.0.0.1", "127.0.0.1:8080")
    ]
