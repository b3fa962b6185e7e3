"""The service map, statistics and API views in headless Chromium, on real traffic captured by
``mizu tap --local -i lo``: a shop of three HTTP services calling each other (gateway → orders
→ catalogue, each on an address of its own), a WebSocket server that pushes frames, RabbitMQ
delivering to a consumer (``basic.deliver``), a Kafka broker fetched from, and Redis answering
an error. The numbers each view shows are checked against the entries the hub lists.

Every run takes a screenshot of each view; to refresh the README's:
``MIZU_VIEW_SCREENSHOTS=docs pytest tests/frontend/test_views.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pika
import pytest
from aiohttp import web
from playwright.sync_api import Page, expect

from tests.frontend.conftest import free_port
from tests.plugins.mizu_amqp.amqp_peers import rabbitmq_broker
from tests.plugins.mizu_kafka.kafka_peers import tansu_broker
from tests.server.multiservice import Shop, drive, running_shop, shop_query
from tests.support.processes import Dashboard
from tests.support.web import threaded_server

sys.path.insert(0, str(Path(__file__).parents[2] / "examples" / "mizu-redis" / "tests"))
from redis_peers import redis_server, send_commands

pytestmark = pytest.mark.live

PUSHED_FRAMES = 3
DELIVERIES = 3
RECORDS = 3


@dataclass
class World:
    """The services the views are drawn from, and the filter that selects their entries."""

    shop: Shop
    shop_hops: int
    feed: int
    amqp: int
    kafka: int
    redis: int

    def ports(self) -> dict[str, int]:
        return {"ws": self.feed, "amqp": self.amqp, "kafka": self.kafka, "redis": self.redis}

    @property
    def query(self) -> str:
        others = " or ".join(
            f"src.port == {port} or dst.port == {port}" for port in self.ports().values()
        )
        return f"({shop_query(self.shop)}) or {others}"

    def nodes(self) -> set[str]:
        """One node per service and per client host: the shop's client and the host that
        runs the other clients (127.0.0.1, where four servers listen: none of them)."""
        shop = {
            self.shop.ip("client"),
            *(self.shop.address(name) for name in ("gateway", "orders", "catalogue")),
        }
        return shop | {"127.0.0.1"} | {f"127.0.0.1:{port}" for port in self.ports().values()}


async def feed(request: web.Request) -> web.WebSocketResponse:
    """Pushes frames the client never asked for, then echoes what it sends."""
    socket_ = web.WebSocketResponse()
    await socket_.prepare(request)
    for number in range(PUSHED_FRAMES):
        await socket_.send_str(json.dumps({"tick": number, "price": 100 + number}))
    async for message in socket_:
        await socket_.send_str(json.dumps({"echo": message.data}))
    return socket_


def off_playwrights_loop(function: Callable[..., None], *arguments: Any) -> None:
    """Call ``function`` on a thread of its own: it runs an event loop, and Playwright's may
    be running on this thread."""
    failed: list[BaseException] = []

    def call() -> None:
        try:
            function(*arguments)
        except BaseException as error:
            failed.append(error)

    worker = threading.Thread(target=call)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), f"{function.__name__} did not finish"
    if failed:
        raise failed[0]


def drive_websocket(port: int) -> None:
    async def talk() -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"http://127.0.0.1:{port}/feed") as client,
        ):
            for _ in range(PUSHED_FRAMES):
                await client.receive(timeout=5)
            await client.send_str(json.dumps({"subscribe": "prices"}))
            await client.receive(timeout=5)

    asyncio.run(talk())


def drive_amqp(port: int) -> None:
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    channel = connection.channel()
    channel.queue_declare("shipments")
    for number in range(DELIVERIES):
        channel.basic_publish("", "shipments", json.dumps({"shipment": number}).encode())
    deliveries = channel.consume("shipments", auto_ack=True, inactivity_timeout=10)
    for received, (method, _, _) in enumerate(deliveries, start=1):
        assert method is not None, "RabbitMQ delivered too few messages"
        if received == DELIVERIES:
            break
    channel.cancel()
    connection.close()


def drive_kafka(bootstrap: str) -> None:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic("invoices", 1, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for number in range(RECORDS):
        producer.send("invoices", json.dumps({"invoice": number}).encode()).get(timeout=10)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=1500)
    consumer.assign([TopicPartition("invoices", 0)])
    consumer.seek_to_beginning()
    assert len(list(consumer)) == RECORDS
    consumer.close()


def drive_redis(port: int) -> None:
    """A few commands, one of which Redis refuses: INCR of a value that is not a number."""
    send_commands(
        port,
        [["SET", "cart:7", "two items"], ["GET", "cart:7"], ["INCR", "cart:7"], ["DEL", "cart:7"]],
    )


def rows(hub: Dashboard, query: str) -> list[dict[str, Any]]:
    return list(hub.get_json("/entries", query=query, limit=10_000)["data"])


def settle(hub: Dashboard, world: World) -> None:
    """Until each kind of traffic is stored and no more of it arrives (closing handshakes
    come last): the views and the list are then compared on the same entries."""
    deadline = time.monotonic() + 60
    wanted = {
        shop_query(world.shop): world.shop_hops,
        f"src.port == {world.feed} and fromServer == true": PUSHED_FRAMES,
        f'src.port == {world.amqp} and request.method == "basic.deliver"': DELIVERIES,
        f"redis and dst.port == {world.redis} and error == true": 1,
        f"kafka and dst.port == {world.kafka}": 4,
    }
    previous = -1
    while True:
        counts = {query: len(rows(hub, query)) for query in wanted}
        total = len(rows(hub, world.query))
        if all(counts[query] >= count for query, count in wanted.items()) and total == previous:
            assert counts[shop_query(world.shop)] == world.shop_hops
            return
        assert time.monotonic() < deadline, f"the traffic was not all stored: {counts}"
        previous = total
        time.sleep(1.0)


@pytest.fixture(scope="module")
def world(hub: Dashboard, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    def routes(app: web.Application) -> None:
        app.router.add_get("/feed", feed)

    directory = tmp_path_factory.mktemp("rabbitmq")
    with (
        running_shop("127.0.3") as (shop, traffic),
        threaded_server(routes, free_port()) as feed_port,
        rabbitmq_broker(directory) as broker,
        tansu_broker() as kafka,
        redis_server() as redis,
    ):
        off_playwrights_loop(drive, shop, traffic)
        off_playwrights_loop(drive_websocket, feed_port)
        drive_amqp(broker.port)
        drive_kafka(kafka)
        drive_redis(redis.port)
        made = World(
            shop,
            sum(traffic.requests.values()),
            feed_port,
            broker.port,
            int(kafka.rsplit(":", 1)[1]),
            redis.port,
        )
        settle(hub, made)
        yield made


@pytest.fixture
def outside(page: Page, hub: Dashboard) -> Iterator[list[str]]:
    """What the page asked of anything but the hub: nothing, whatever view it shows."""
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    yield asked
    assert [url for url in asked if not url.startswith((hub.base, "data:", "blob:"))] == []


def screenshot(page: Page, name: str, tmp_path: Path) -> None:
    shot = tmp_path / name
    page.screenshot(path=shot)
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    target = os.environ.get("MIZU_VIEW_SCREENSHOTS")
    if target:
        shutil.copyfile(shot, Path(target) / name)


def open_view(page: Page, hub: Dashboard, query: str, view: str) -> None:
    page.goto(hub.page_url(q=query))
    page.wait_for_function("() => window.mizu && !window.mizu.list.loadingHistory")
    page.click(f"[data-view={view}]")


def drawn_map(page: Page) -> dict[str, Any]:
    page.wait_for_function(
        "() => window.mizu.views.map.cy && window.mizu.views.map.cy.nodes().length"
    )
    return dict(
        page.evaluate(
            """() => { const cy = window.mizu.views.map.cy;
            const box = (node) => node.boundingBox({ includeLabels: true });
            return { nodes: cy.nodes().map((node) => node.id()),
                     boxes: cy.nodes().map((node) => {
                       const b = box(node); return [b.x1, b.y1, b.x2, b.y2]; }),
                     edges: cy.edges().map((edge) =>
                       [edge.source().id(), edge.target().id(), edge.id()]) }; }"""
        )
    )


def overlapping(boxes: list[list[float]]) -> list[tuple[int, int]]:
    return [
        (i, j)
        for i, a in enumerate(boxes)
        for j, b in enumerate(boxes)
        if i < j and min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])
    ]


def test_the_map_has_a_node_per_service_and_client_host(
    page: Page, hub: Dashboard, world: World, outside: list[str], tmp_path: Path
) -> None:
    open_view(page, hub, world.query, "map")
    drawn = drawn_map(page)
    assert sorted(drawn["nodes"]) == sorted(world.nodes())  # no ephemeral port among them
    assert overlapping(drawn["boxes"]) == []  # no two nodes, labels included, overlap
    shop = world.shop
    edges = {(source, target) for source, target, _ in drawn["edges"]}
    assert (shop.address("gateway"), shop.address("orders")) in edges
    for port in world.ports().values():  # pushed frames and deliveries: the client's edge
        assert ("127.0.0.1", f"127.0.0.1:{port}") in edges
    expect(page.locator(".map-view .coverage")).to_have_text(re.compile(r"^[\d,]+ entries$"))
    # the status bar's entries per protocol add up to the total it shows beside them
    expect(page.locator(".proto-total")).to_be_visible()
    parts = page.locator(".proto-stat").all_inner_texts()
    total = sum(int(text.split()[-1].replace(",", "")) for text in parts)
    expect(page.locator(".proto-total")).to_contain_text(f"= {total:,} at ")
    screenshot(page, "map.png", tmp_path)


def test_clicking_an_edge_lists_its_entries(page: Page, hub: Dashboard, world: World) -> None:
    open_view(page, hub, world.query, "map")
    drawn_map(page)
    source, target = world.shop.address("orders"), world.shop.address("catalogue")
    edge = next(
        edge
        for edge in hub.get_json("/servicemap", query=world.query)["edges"]
        if (edge["source"], edge["destination"]) == (source, target)
    )
    x, y = page.evaluate(
        """([source, target]) => { const cy = window.mizu.views.map.cy;
        const edge = cy.edges().filter(
          (e) => e.source().id() === source && e.target().id() === target)[0];
        const at = edge.renderedMidpoint(); const frame = cy.container().getBoundingClientRect();
        return [frame.left + at.x, frame.top + at.y]; }""",
        [source, target],
    )
    page.mouse.click(x, y)
    expect(page.locator("#traffic")).to_be_visible()
    expect(page.locator("#filter")).to_have_value(edge["query"])
    page.wait_for_function(
        "(count) => window.mizu.list.rows.length === count && !window.mizu.list.loadingHistory",
        arg=edge["count"],
    )
    assert edge["count"] == len(rows(hub, edge["query"])) > 0
    listed = page.evaluate(
        "window.mizu.list.rows.map((row) => [row.src.ip, row.dst.ip, row.dst.port])"
    )
    assert {(src, f"{dst}:{port}") for src, dst, port in listed} == {
        (world.shop.ip("orders"), target)
    }


def test_the_filter_changes_the_map_and_the_statistics(
    page: Page, hub: Dashboard, world: World
) -> None:
    open_view(page, hub, world.query, "map")
    assert len(drawn_map(page)["nodes"]) == len(world.nodes())
    narrower = f"redis and dst.port == {world.redis}"
    page.fill("#filter", narrower)
    page.press("#filter", "Enter")
    page.wait_for_function(
        "() => window.mizu.views.map.cy && window.mizu.views.map.cy.nodes().length === 2"
    )
    assert sorted(drawn_map(page)["nodes"]) == ["127.0.0.1", f"127.0.0.1:{world.redis}"]
    page.click("[data-view=stats]")
    redis_count = len(rows(hub, narrower))
    row = page.locator('.stats-table tr[data-group="all"]')
    expect(row.locator("td.count")).to_have_text(str(redis_count))
    # INCR of a value that is not a number, and what redis-py's probe asks of an older server
    errors = len(rows(hub, f"{narrower} and error == true"))
    assert errors >= 1
    expect(row.locator("td.errors")).to_have_text(str(errors))


def nearest_rank(values: list[float], rank: int) -> float:
    ordered = sorted(values)
    return ordered[max(0, -(-rank * len(ordered) // 100) - 1)]


def test_statistics_show_the_rates_and_percentiles_of_the_entries(
    page: Page, hub: Dashboard, world: World, outside: list[str], tmp_path: Path
) -> None:
    open_view(page, hub, world.query, "stats")
    page.wait_for_function("() => window.mizu.views.stats.charts.length === 3")
    listed = rows(hub, world.query)
    answered = [row["latency"] for row in rows(hub, f"({world.query}) and responseSize > 0")]
    errors = len(rows(hub, f"({world.query}) and error == true"))
    duration = "(ms) => import('/js/format.js').then((format) => format.duration(ms))"
    every = page.locator('.stats-table tr[data-group="all"]')
    expect(every.locator("td.count")).to_have_text(f"{len(listed):,}")
    expect(every.locator("td.errors")).to_have_text(str(errors))
    for rank in (50, 90, 99):
        shown = page.evaluate(duration, nearest_rank(answered, rank))
        expect(every.locator(f"td.p{rank}")).to_have_text(shown)
    # requests/s per bucket, summed over the protocols' series: the entries of each bucket
    answer = page.evaluate("window.mizu.views.stats.answer")
    width = answer["bucketMs"]
    drawn = page.evaluate("window.mizu.views.stats.charts[0].data")
    per_bucket = [
        round(sum(series[i] for series in drawn[1:]) * width / 1000) for i in range(len(drawn[0]))
    ]
    expected = [0] * len(drawn[0])
    for row in listed:
        expected[(row["timestamp"] - answer["buckets"][0]) // width] += 1
    assert per_bucket == expected
    assert {series["label"] for series in answer["series"]} >= {
        "HTTP",
        "WS",
        "AMQP",
        "KAFKA",
        "REDIS",
    }
    page.select_option(".stats-view select.window", "60")  # the traffic fills a minute
    page.wait_for_function("() => window.mizu.views.stats.answer.window.seconds === 60")
    screenshot(page, "stats.png", tmp_path)


def test_statistics_per_endpoint_group_paths_by_their_template(
    page: Page, hub: Dashboard, world: World
) -> None:
    orders = world.shop.address("orders")
    ip, port = orders.split(":")
    query = f'http and dst.ip == "{ip}" and dst.port == {port}'
    open_view(page, hub, query, "stats")
    page.select_option(".stats-view select.by", "endpoint")
    page.wait_for_function("() => window.mizu.views.stats.answer.by === 'endpoint'")
    templates = {
        "POST /orders": 'request.method == "POST"',
        "GET /orders/{orderId}": 'request.path == r"^/orders/[0-9]+$"',
        "GET /orders/{orderId}/payments/{paymentId}": 'request.path.contains("/payments/")',
    }
    for template, selects in templates.items():
        row = page.locator(f'.stats-table tr[data-group="{template} · {orders}"]')
        expect(row.locator("td.count")).to_have_text(str(len(rows(hub, f"{query} and {selects}"))))
    groups = page.evaluate("window.mizu.views.stats.answer.groups")
    assert groups == len(templates)


def test_a_sampled_answer_says_so(page: Page, hub: Dashboard) -> None:
    page.goto(hub.page_url())
    notes = page.evaluate(
        """async () => {
          const views = await import("/js/viewparts.js");
          const note = (answer) => views.coverageNote(answer).textContent;
          return [
            note({complete: true, entries: 1204, matched: 1204, partial: false}),
            note({complete: false, entries: 100000, matched: 412300, partial: false}),
            note({complete: false, entries: 3100, matched: 3100, partial: true}),
            note({complete: false, entries: 100000, matched: null, partial: false}),
          ];
        }"""
    )
    assert notes == [
        "1,204 entries",
        "sampled: the newest 100,000 of 412,300 entries",
        "partial: 3,100 entries, found before the filter's scan ran out of time",
        "sampled: the newest 100,000 entries of more",
    ]


def test_the_api_view_documents_an_operation(
    page: Page, hub: Dashboard, world: World, outside: list[str], tmp_path: Path
) -> None:
    open_view(page, hub, world.query, "api")
    orders = world.shop.address("orders")
    page.locator(".oas-services .service", has_text=orders).click()
    expect(page.locator(".spec-head h2")).to_contain_text(orders)
    operation = page.locator('.operation[data-operation="POST /orders"]')
    operation.locator("summary").click()
    request_schema = operation.locator(".media").first.locator(".schema-box")
    sku = request_schema.locator('li.property[data-property="sku"]')
    expect(sku.locator(".type").first).to_have_text("integer")
    expect(sku.locator(".required")).to_have_count(1)
    expect(
        request_schema.locator('li.property[data-property="email"] .type').first
    ).to_contain_text("string")
    expect(operation.locator(".example-box pre").first).to_contain_text('"sku"')
    expect(operation.locator("summary .code", has_text="201")).to_have_count(1)
    expect(operation.locator("summary .code", has_text="422")).to_have_class("code client-error")
    expect(
        page.locator(".path-group h3", has_text="/orders/{orderId}/payments/{paymentId}")
    ).to_have_count(1)
    screenshot(page, "api.png", tmp_path)
    with page.expect_download() as download:
        page.click(".spec-head .download")
    saved = tmp_path / "orders.json"
    download.value.save_as(saved)
    assert json.loads(saved.read_text()) == hub.get_json(f"/oas/{orders}")


def test_a_redis_error_row_is_an_error(page: Page, hub: Dashboard, world: World) -> None:
    query = f"redis and dst.port == {world.redis} and error == true"
    page.goto(hub.page_url(q=query))
    page.wait_for_function(
        "(count) => window.mizu && window.mizu.list.rows.length === count",
        arg=len(rows(hub, query)),
    )
    row = page.locator(
        "#viewport .row:not([hidden])", has=page.locator(".cell.method", has_text="INCR")
    )
    expect(row).to_have_class(re.compile(r"\berror\b"))
    expect(row.locator(".cell.status .snippet")).to_have_class("snippet status-error")
    expect(row.locator(".cell.status .snippet")).to_have_text("ERR")
