"""The service map: nodes, edges, counts, errors and latency percentiles, from hand-made
entries and from a real ``mizu tap --local`` watching the loopback shop."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mizu_server import servicemap
from mizu_server.servicemap import ServiceMap, is_error, percentile
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


def call(
    number: int,
    source: tuple[str, str],
    destination: tuple[str, int, str],
    status: int = 200,
    elapsed: float = 1.0,
) -> dict[str, Any]:
    entry = make_entry(number, status=status, elapsedTime=elapsed)
    entry["error"] = status >= 400  # as the HTTP plugin says
    entry["src"] = {"ip": source[0], "port": 40000 + number, "name": source[1], "namespace": ""}
    entry["dst"] = {
        "ip": destination[0],
        "port": destination[1],
        "name": destination[2],
        "namespace": "",
    }
    return entry


def test_percentiles_are_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert [percentile(values, rank) for rank in (50, 90, 99)] == [50.0, 90.0, 99.0]
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0, 3.0], 50) == 2.0


def test_edges_count_errors_and_latencies() -> None:
    graph = ServiceMap()
    for number in range(10):
        graph.observe(
            call(
                number,
                ("10.1.0.5", "web.shop"),
                ("10.2.0.9", 80, "orders.shop"),
                status=500 if number < 2 else 200,
                elapsed=float(number + 1),
            )
        )
    graph.observe(call(99, ("10.2.0.9", "orders.shop"), ("10.3.0.1", 5432, "")))
    drawn = graph.as_json()
    assert drawn["nodes"] == [
        {"id": "orders.shop", "name": "orders.shop", "entries": 11},
        {"id": "web.shop", "name": "web.shop", "entries": 10},
        {"id": "10.3.0.1:5432", "name": "10.3.0.1:5432", "entries": 1},
    ]
    first, second = drawn["edges"]
    assert (first["source"], first["destination"], first["count"], first["errors"]) == (
        "web.shop",
        "orders.shop",
        10,
        2,
    )
    assert first["latency"] == {"p50": 5.0, "p90": 9.0, "p99": 10.0}
    assert first["protocol"]["name"] == "http" and first["protocol"]["abbr"] == "HTTP"
    assert (second["source"], second["destination"]) == ("orders.shop", "10.3.0.1:5432")
    assert drawn["entries"] == 11


def test_an_unresolved_client_is_the_server_on_its_ip_when_there_is_one() -> None:
    graph = ServiceMap()
    graph.observe(call(1, ("127.0.0.9", ""), ("127.0.0.2", 8081, "")))  # client → gateway
    graph.observe(call(2, ("127.0.0.2", ""), ("127.0.0.3", 8082, "")))  # gateway → orders
    edges = {(edge["source"], edge["destination"]) for edge in graph.as_json()["edges"]}
    assert edges == {("127.0.0.9", "127.0.0.2:8081"), ("127.0.0.2:8081", "127.0.0.3:8082")}
    graph.observe(call(3, ("127.0.0.9", ""), ("127.0.0.2", 9000, "")))  # a second server there
    sources = {edge["source"] for edge in graph.as_json()["edges"]}
    assert "127.0.0.2" in sources  # ambiguous: the bare IP stays


def test_errors_are_the_plugins_word_not_a_status_code() -> None:
    assert is_error({"response": {"status": "ERR"}, "error": True})
    assert not is_error({"response": {"status": 500}, "error": False})
    assert not is_error({"response": {"status": 500}})  # no word from a plugin: no guess


def test_state_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servicemap, "MAX_EDGES", 3)
    monkeypatch.setattr(servicemap, "LATENCY_SAMPLES", 16)
    graph = ServiceMap()
    for number in range(5):
        graph.observe(call(number, ("10.0.0.1", "a"), ("10.0.0.2", 1000 + number, "")))
    for number in range(1000):
        graph.observe(call(number, ("10.0.0.1", "a"), ("10.0.0.2", 1000, ""), elapsed=number))
    drawn = graph.as_json()
    assert len(drawn["edges"]) == 3 and drawn["dropped"] == 2
    busiest = graph.edges[("a", "10.0.0.2:1000", "http", "HTTP")]
    assert busiest.count == 1001 and len(busiest.latencies) == 16
    assert 300 < drawn["edges"][0]["latency"]["p50"] < 700  # a uniform sample of 0..999


@pytest.fixture(scope="module")
def watched_shop(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Shop, Traffic, TappedHub]]:
    workdir = tmp_path_factory.mktemp("servicemap")
    arguments = ["--local", "-i", "lo"]
    with running_shop("127.0.1") as (shop, traffic), mizu_tap(arguments, workdir) as hub:
        drive(shop, traffic)
        hub.wait_for(shop_query(shop), sum(traffic.requests.values()))
        yield shop, traffic, hub


@pytest.mark.live
def test_the_map_of_real_traffic(watched_shop: tuple[Shop, Traffic, TappedHub]) -> None:
    shop, traffic, hub = watched_shop
    client = shop.ip("client")
    drawn = hub.get("/servicemap")
    gateway, orders, catalogue = (shop.address(name) for name in ("gateway", "orders", "catalogue"))
    edges = {
        (edge["source"], edge["destination"]): edge
        for edge in drawn["edges"]
        if edge["destination"] in (gateway, orders, catalogue)
    }
    hops = {
        (client, gateway): "client->gateway",
        (gateway, orders): "gateway->orders",
        (orders, catalogue): "orders->catalogue",
    }
    assert set(edges) == set(hops)
    for key, hop in hops.items():
        edge = edges[key]
        assert (edge["count"], edge["errors"]) == (traffic.requests[hop], traffic.errors[hop])
        assert edge["protocol"]["name"] == "http"
        latency = edge["latency"]
        assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"]
    # the catalogue's slow item: two of its eleven answers took 400 ms
    assert edges[(orders, catalogue)]["latency"]["p99"] >= 400
    assert edges[(orders, catalogue)]["latency"]["p50"] < 100
    nodes = {node["id"]: node["entries"] for node in drawn["nodes"]}
    assert (
        nodes[gateway] == traffic.requests["client->gateway"] + traffic.requests["gateway->orders"]
    )
    assert nodes[catalogue] == traffic.requests["orders->catalogue"]
    assert nodes[client] == traffic.requests["client->gateway"]
