"""A small shop of real services on loopback, and ``mizu tap`` watching them.

gateway (127.0.0.2) → orders (127.0.0.3) → catalogue (127.0.0.4), each an aiohttp app that
calls the next from its own address, driven by a client on 127.0.0.5 so that every hop is a
distinct edge. Paths carry ids (numbers, UUIDs) and bodies are JSON. :func:`drive` sends a
fixed script of calls and returns what each service must have seen.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.support.processes import Dashboard

NETWORK = "127.0.0"
"""The shop's default addresses; a test module may pick another 127.x.y to keep its capture
apart from the connections an earlier module's shop may still be closing."""
HOSTS = {"gateway": 2, "orders": 3, "catalogue": 4, "client": 5}
GATEWAY_IP, CATALOGUE_IP = f"{NETWORK}.{HOSTS['gateway']}", f"{NETWORK}.{HOSTS['catalogue']}"
SLOW_SKU = 1003
"""The catalogue answers this item after :data:`SLOW_SECONDS`, past the rules' SLO."""
SLOW_SECONDS = 0.4
ODD_ORDER = 13
"""The orders service gives this order a non-numeric id, which a rule catches."""
RULES_YAML = """\
rules:
  - name: orders-must-have-id
    type: json
    key: "$.id"
    value: "^[0-9]+$"
    service: "^127\\\\.0\\\\.0\\\\.2:"
    path: "^/api/orders(/[0-9]+)?$"
  - name: fast-catalogue
    type: slo
    service: "^127\\\\.0\\\\.0\\\\.4:"
    response-time: 300
  - name: catalogue-version-header
    type: header
    key: "^x-catalogue-version$"
    value: "^2$"
    service: "^127\\\\.0\\\\.0\\\\.4:"
"""

CLIENT_KEY = web.AppKey("client", aiohttp.ClientSession)

ITEMS = {
    1001: {"name": "kettle", "price": 24.5, "category": "kitchen"},
    1002: {"name": "teapot", "price": 31, "category": "kitchen"},
    SLOW_SKU: {"name": "samovar", "price": 240.0, "category": "kitchen"},
    2001: {"name": "atlas", "price": 18.25, "category": "books"},
}


@dataclass
class Shop:
    network: str
    gateway: int = 0
    orders: int = 0
    catalogue: int = 0

    def ip(self, name: str) -> str:
        """The address of a service, or of the ``client`` driving them."""
        return f"{self.network}.{HOSTS[name]}"

    @property
    def gateway_url(self) -> str:
        return f"http://{self.address('gateway')}"

    def address(self, service: str) -> str:
        return f"{self.ip(service)}:{getattr(self, service)}"


@dataclass
class Traffic:
    """What the script did: requests per hop, and how many answers were errors."""

    requests: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    order_ids: list[int] = field(default_factory=list)

    def count(self, hop: str, status: int) -> None:
        self.requests[hop] += 1
        if status >= 400:
            self.errors[hop] += 1


def _client(ip: str) -> aiohttp.ClientSession:
    """A session whose connections leave from ``ip``, so each caller is its own node."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(ip, 0)))


def catalogue_app(traffic: Traffic) -> web.Application:
    async def item(request: web.Request) -> web.Response:
        sku = int(request.match_info["sku"])
        headers = {"X-Catalogue-Version": "2"}
        if sku == SLOW_SKU:
            await asyncio.sleep(SLOW_SECONDS)
        if sku not in ITEMS:
            traffic.count("orders->catalogue", 404)
            return web.json_response({"error": "no such item"}, status=404, headers=headers)
        traffic.count("orders->catalogue", 200)
        return web.json_response({"sku": sku, **ITEMS[sku], "stock": sku % 7}, headers=headers)

    app = web.Application()
    app.router.add_get("/items/{sku:\\d+}", item)
    return app


def orders_app(traffic: Traffic, own_ip: str, catalogue: str) -> web.Application:
    orders: dict[int, dict[str, Any]] = {}

    async def session(app: web.Application) -> Any:
        app[CLIENT_KEY] = _client(own_ip)
        yield
        await app[CLIENT_KEY].close()

    async def create(request: web.Request) -> web.Response:
        body = await request.json()
        async with request.app[CLIENT_KEY].get(f"{catalogue}/items/{body['sku']}") as answer:
            item = await answer.json()
        if answer.status != 200:
            traffic.count("gateway->orders", 422)
            return web.json_response({"error": "unknown sku", "sku": body["sku"]}, status=422)
        order_id = len(orders) + 10
        orders[order_id] = {
            "id": order_id if order_id != ODD_ORDER else f"ORD-{order_id}",
            "status": "pending",
            "customer": {"email": body["email"], "note": body.get("note")},
            "lines": [{"sku": body["sku"], "qty": body["qty"], "price": item["price"]}],
        }
        traffic.count("gateway->orders", 201)
        return web.json_response(orders[order_id], status=201)

    async def show(request: web.Request) -> web.Response:
        order = orders.get(int(request.match_info["order_id"]))
        if order is None:
            traffic.count("gateway->orders", 404)
            return web.json_response({"error": "no such order"}, status=404)
        sku = order["lines"][0]["sku"]
        async with request.app[CLIENT_KEY].get(f"{catalogue}/items/{sku}") as answer:
            item = await answer.json()
        traffic.count("gateway->orders", 200)
        return web.json_response({**order, "status": "paid", "item": item})

    async def payment(request: web.Request) -> web.Response:
        traffic.count("gateway->orders", 200)
        return web.json_response(
            {"payment": request.match_info["payment_id"], "state": "settled", "amount": 10.5}
        )

    app = web.Application()
    app.cleanup_ctx.append(session)
    app.router.add_post("/orders", create)
    app.router.add_get("/orders/{order_id:\\d+}", show)
    app.router.add_get("/orders/{order_id:\\d+}/payments/{payment_id}", payment)
    return app


def gateway_app(traffic: Traffic, own_ip: str, orders: str) -> web.Application:
    async def session(app: web.Application) -> Any:
        app[CLIENT_KEY] = _client(own_ip)
        yield
        await app[CLIENT_KEY].close()

    async def forward(request: web.Request) -> web.Response:
        path = request.path.removeprefix("/api")
        body = await request.read() if request.can_read_body else None
        async with request.app[CLIENT_KEY].request(
            request.method,
            f"{orders}{path}",
            data=body,
            headers={"Content-Type": "application/json"} if body else None,
        ) as answer:
            payload = await answer.read()
        traffic.count("client->gateway", answer.status)
        return web.Response(body=payload, status=answer.status, content_type="application/json")

    async def asset(request: web.Request) -> web.Response:
        traffic.count("client->gateway", 200)
        return web.Response(text="console.log('shop')", content_type="application/javascript")

    app = web.Application()
    app.cleanup_ctx.append(session)
    app.router.add_route("*", "/api/orders{rest:.*}", forward)
    app.router.add_get("/static/app.js", asset)
    return app


@contextmanager
def running_shop(network: str = NETWORK) -> Iterator[tuple[Shop, Traffic]]:
    """The three services on ``network``.2-4, on a thread of their own, on free ports."""
    traffic = Traffic()
    loop = asyncio.new_event_loop()
    started: list[Any] = []
    ready = threading.Event()

    async def serve(app: web.Application, ip: str) -> int:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, ip, 0)
        await site.start()
        started.append(runner)
        assert runner.addresses, "the service did not bind"
        return int(runner.addresses[0][1])

    async def start() -> Shop:
        shop = Shop(network)
        shop.catalogue = await serve(catalogue_app(traffic), shop.ip("catalogue"))
        shop.orders = await serve(
            orders_app(traffic, shop.ip("orders"), f"http://{shop.address('catalogue')}"),
            shop.ip("orders"),
        )
        shop.gateway = await serve(
            gateway_app(traffic, shop.ip("gateway"), f"http://{shop.address('orders')}"),
            shop.ip("gateway"),
        )
        return shop

    shops: list[Shop] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        shops.append(loop.run_until_complete(start()))
        ready.set()
        loop.run_forever()
        for runner in reversed(started):
            loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=run, name="shop", daemon=True)
    thread.start()
    assert ready.wait(10), "the shop did not start"
    try:
        yield shops[0], traffic
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def drive(shop: Shop, traffic: Traffic) -> None:
    """The script: orders created, read (ids vary), a payment each, an unknown order and an
    unknown item (errors), a slow item, and a static asset."""

    async def script() -> None:
        async with _client(shop.ip("client")) as client:
            base = shop.gateway_url
            skus = [1001, 1002, SLOW_SKU, 2001, 1001, 9999]
            for number, sku in enumerate(skus):
                body = {"sku": sku, "qty": number + 1, "email": f"buyer{number}@example.com"}
                if number % 2:
                    body["note"] = "leave at the door"
                async with client.post(f"{base}/api/orders", json=body) as answer:
                    created = await answer.json()
                    if answer.status == 201:
                        traffic.order_ids.append(int(str(created["id"]).removeprefix("ORD-")))
            for order_id in [*traffic.order_ids, 404]:
                async with client.get(f"{base}/api/orders/{order_id}") as answer:
                    await answer.read()
            for order_id in traffic.order_ids[:3]:
                async with client.get(
                    f"{base}/api/orders/{order_id}/payments/{uuid.uuid4()}"
                ) as answer:
                    await answer.read()
            async with client.get(f"{base}/static/app.js") as answer:
                await answer.read()

    asyncio.run(asyncio.wait_for(script(), timeout=30))


def expected_hops(traffic: Traffic) -> int:
    return sum(traffic.requests.values())


# -- mizu tap ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class TappedHub:
    """A running ``mizu tap`` process and its hub's API."""

    def __init__(self, dashboard: Dashboard, process: subprocess.Popen[bytes], log: Path) -> None:
        self.dashboard = dashboard
        self.port = dashboard.port
        self.process = process
        self.log = log

    def get(self, path: str, **params: str) -> Any:
        return self.dashboard.get_json(path, **params)

    def entries(self, query: str) -> list[dict[str, Any]]:
        return list(self.get("/entries", query=query, limit="10000")["data"])

    def wait_for(self, query: str, count: int, timeout: float = 20) -> list[dict[str, Any]]:
        """The rows ``query`` matches once there are ``count`` of them (bounded wait)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.entries(query)
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            time.sleep(0.2)


@contextmanager
def mizu_tap(arguments: Sequence[str], workdir: Path) -> Iterator[TappedHub]:
    """``mizu tap ARGUMENTS`` on a free port with its own database, stopped with SIGINT."""
    if os.geteuid() != 0 and "--local" in arguments:
        raise RuntimeError("live capture on lo needs root (run the live tests as root)")
    port = free_port()
    log = workdir / "tap.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mizu_cli",
                "tap",
                *arguments,
                "--no-browser",
                "--db",
                str(workdir / "entries.db"),
                "-p",
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 30
        while "dashboard at" not in log.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mizu tap did not start: {log.read_text()}")
            time.sleep(0.05)
        yield TappedHub(Dashboard.parse(log.read_text()), process, log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def shop_query(shop: Shop) -> str:
    """Entries of the shop's own hops (the capture also sees whatever else runs on lo)."""
    ports = " or ".join(
        f'(dst.ip == "{shop.ip(name)}" and dst.port == {getattr(shop, name)})'
        for name in ("gateway", "orders", "catalogue")
    )
    return f"http and ({ports})"
