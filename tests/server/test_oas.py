"""OpenAPI inference: path templates, schemas from samples, bounds, and the documents of the
loopback shop's real traffic, recorded with tcpdump and replayed through ``mizu tap --pcap``
and ``mizu dissect -o openapi``; every document validates against the OpenAPI 3.1 schema."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate

from mizu_core.engine import Engine, EngineSettings
from mizu_core.plugins import PluginManager
from mizu_server import oas
from mizu_server.app import create_app
from mizu_server.hub import Hub, HubSettings
from mizu_server.oas import OasInference, SchemaSketch, path_template, segment_kind, template_text
from tests.server.hub_support import ACCESS_TOKEN, BEARER, make_entry
from tests.server.multiservice import (
    Shop,
    Traffic,
    drive,
    running_shop,
)
from tests.support.tcpdump import record


@pytest.mark.parametrize(
    ("segment", "kind"),
    [
        ("42", "integer"),
        ("0b7f3c9e-1d2a-4c5b-8e6f-9a0b1c2d3e4f", "uuid"),
        ("d41d8cd98f00b204e9800998ecf8427e", "hash"),
        ("ann@example.com", "email"),
        ("2024-05-01", "date"),
        ("aZ3kQ9xP2mT7", "token"),
        ("orders", None),
        ("v2", None),
        ("user-profile-settings", None),
        ("healthz", None),
    ],
)
def test_segment_kinds(segment: str, kind: str | None) -> None:
    assert segment_kind(segment) == kind


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/api/orders/17", "/api/orders/{orderId}"),
        ("/categories/3/items/9", "/categories/{categoryId}/items/{itemId}"),
        ("/users/ann@example.com/addresses", "/users/{userId}/addresses"),
        ("/17/18", "/{param}/{param2}"),
        ("/boxes/1/2", "/boxes/{boxId}/{param}"),
        ("/", "/"),
    ],
)
def test_path_templates(path: str, template: str) -> None:
    shape = path_template(path)
    assert shape is not None and template_text(shape) == template


@pytest.mark.parametrize("path", ["/static/app.js", "/img/logo.PNG", "/x/{y}", "relative"])
def test_paths_left_out(path: str) -> None:
    assert path_template(path) is None


def test_schemas_merge_samples() -> None:
    sketch = SchemaSketch()
    statuses = ["paid", "pending", "paid", "shipped", "paid", "pending"]
    for number, status in enumerate(statuses):
        sample: dict[str, Any] = {
            "id": number,
            "status": status,
            "total": 1.5 if number % 2 else 2,
            "placed": "2024-05-01T10:00:00Z",
            "lines": [{"sku": "k1", "qty": 1}],
        }
        if number % 2:
            sample["note"] = None if number == 1 else "door"
        sketch.add(sample)
    sketch.add(None)
    assert sketch.schema() == {
        "type": ["object", "null"],
        "properties": {
            "id": {"type": "integer"},
            "status": {"type": "string", "enum": ["paid", "pending", "shipped"]},
            "total": {"type": "number"},
            "placed": {"type": "string", "format": "date-time"},
            "lines": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "sku": {"type": "string"},
                        "qty": {"type": "integer"},
                    },
                    "required": ["qty", "sku"],
                },
            },
            "note": {"type": ["string", "null"]},
        },
        "required": ["id", "lines", "placed", "status", "total"],
    }


def test_many_distinct_strings_are_no_enum_and_secrets_never_are() -> None:
    sketch = SchemaSketch()
    for number in range(20):
        sketch.add({"name": f"n{number}", "password": "hunter2"})
    properties = sketch.schema()["properties"]
    assert properties == {"name": {"type": "string"}, "password": {"type": "string"}}


def http_entry(number: int, method: str, path: str, body: Any, status: int = 200) -> dict:
    entry = make_entry(number, method=method, status=status)
    entry["request"]["path"] = path
    entry["response"]["content"]["text"] = json.dumps(body)
    return entry


def test_examples_are_redacted_and_size_capped() -> None:
    inference = OasInference()
    inference.observe(
        http_entry(1, "POST", "/login", {"user": "ann", "token": "s3cr3t", "list": list(range(9))})
    )
    inference.observe(http_entry(2, "GET", "/big", {"blob": "x" * 5000}))
    document = inference.document("127.0.0.1:8080")
    assert document is not None
    validate(document)
    login = document["paths"]["/login"]["post"]["responses"]["200"]["content"]["application/json"]
    assert login["example"] == {"user": "ann", "token": "[REDACTED]", "list": [0, 1, 2]}
    big = document["paths"]["/big"]["get"]["responses"]["200"]["content"]["application/json"]
    assert "example" not in big and big["schema"] == {
        "type": "object",
        "properties": {"blob": {"type": "string"}},
        "required": ["blob"],
    }
    query = document["paths"]["/big"]["get"]["parameters"]
    assert query == [
        {"name": "q", "in": "query", "required": True, "schema": {"type": "integer"}, "example": 1}
    ]


def test_inference_state_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oas, "MAX_PATHS", 5)
    monkeypatch.setattr(oas, "MAX_SERVICES", 2)
    inference = OasInference()
    for number in range(20):
        inference.observe(http_entry(number, "GET", f"/page{number}/x", {"n": number}))
    service = inference.services["127.0.0.1:8080"]
    assert len(service.paths) == 5 and service.dropped == 15
    document = inference.document("127.0.0.1:8080")
    assert document is not None and document["info"]["x-mizu-dropped"] == 15
    for port in (1, 2, 3):
        entry = http_entry(100 + port, "GET", "/a", {})
        entry["dst"]["port"] = port
        inference.observe(entry)
    assert len(inference.services) == 2 and inference.dropped_services == 2


def test_grpc_and_static_responses_are_left_out() -> None:
    inference = OasInference()
    grpc = http_entry(1, "POST", "/pkg.Greeter/Hello", {})
    grpc["request"]["headers"]["content-type"] = "application/grpc"
    image = http_entry(2, "GET", "/avatar/5", {})
    image["response"]["content"]["mimeType"] = "image/png"
    for entry in (grpc, image):
        inference.observe(entry)
    assert inference.listing() == []
    assert inference.document("127.0.0.1:8080") is None


# -- real traffic -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Shop, Traffic, Path]]:
    pcap = tmp_path_factory.mktemp("oas") / "shop.pcap"
    with running_shop("127.0.2") as (shop, traffic):
        hosts = " or ".join(f"host {shop.ip(name)}" for name in ("gateway", "orders", "catalogue"))
        with record(pcap, f"tcp and ({hosts})"):
            drive(shop, traffic)
        yield shop, traffic, pcap


def check_shop_documents(documents: dict[str, dict[str, Any]], shop: Shop) -> None:
    for document in documents.values():
        validate(document)
    gateway = documents[shop.address("gateway")]
    assert set(gateway["paths"]) == {
        "/api/orders",
        "/api/orders/{orderId}",
        "/api/orders/{orderId}/payments/{paymentId}",
    }  # /static/app.js is left out
    item = gateway["paths"]["/api/orders/{orderId}"]
    assert item["parameters"] == [
        {"name": "orderId", "in": "path", "required": True, "schema": {"type": "integer"}}
    ]
    assert set(item["get"]["responses"]) == {"200", "404"}
    payment = gateway["paths"]["/api/orders/{orderId}/payments/{paymentId}"]["parameters"][1]
    assert payment["schema"] == {"type": "string", "format": "uuid"}
    create = gateway["paths"]["/api/orders"]["post"]
    request_schema = create["requestBody"]["content"]["application/json"]["schema"]
    assert request_schema["required"] == ["email", "qty", "sku"]  # note: only on some orders
    assert request_schema["properties"]["email"] == {"type": "string", "format": "email"}
    assert set(create["responses"]) == {"201", "422"}
    created = create["responses"]["201"]["content"]["application/json"]
    assert created["schema"]["properties"]["id"]["type"] == ["string", "integer"]  # "ORD-13"
    assert created["schema"]["properties"]["status"] == {"type": "string"}
    assert created["example"]["customer"]["email"].endswith("@example.com")
    orders = documents[shop.address("orders")]
    assert set(orders["paths"]) == {
        "/orders",
        "/orders/{orderId}",
        "/orders/{orderId}/payments/{paymentId}",
    }
    catalogue = documents[shop.address("catalogue")]
    assert set(catalogue["paths"]) == {"/items/{itemId}"}
    answer = catalogue["paths"]["/items/{itemId}"]["get"]["responses"]["200"]
    schema = answer["content"]["application/json"]["schema"]
    assert schema["properties"]["category"] == {"type": "string", "enum": ["books", "kitchen"]}
    assert schema["properties"]["price"] == {"type": "number"}


@pytest.mark.live
def test_the_hub_infers_the_shop_replayed_from_a_recording(
    recorded_shop: tuple[Shop, Traffic, Path], plugins: PluginManager
) -> None:
    shop, traffic, pcap = recorded_shop
    entries: list[dict[str, Any]] = []
    Engine(plugins, entries.append, EngineSettings(tapper_id="replay")).run_files([str(pcap)])
    addresses = [shop.address(name) for name in ("gateway", "orders", "catalogue")]

    async def scenario() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        hub = Hub(HubSettings(token="t", access_token=ACCESS_TOKEN), plugins)
        async with TestClient(TestServer(create_app(hub)), headers=BEARER) as client:
            await hub.submit(entries)
            listing = await (await client.get("/oas")).json()
            documents = {
                name: await (await client.get(f"/oas/{name}")).json() for name in addresses
            }
            assert (await client.get("/oas/nowhere:1")).status == 404
            return listing, documents

    listing, documents = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert [service["name"] for service in listing] == sorted(addresses)
    counts = {service["name"]: service["entries"] for service in listing}
    assert counts[shop.address("gateway")] == traffic.requests["client->gateway"] - 1  # no asset
    assert counts[shop.address("catalogue")] == traffic.requests["orders->catalogue"]
    check_shop_documents(documents, shop)


@pytest.mark.live
def test_dissect_writes_the_documents_offline(recorded_shop: tuple[Shop, Traffic, Path]) -> None:
    shop, _, pcap = recorded_shop
    result = subprocess.run(
        [sys.executable, "-m", "mizu_cli", "dissect", str(pcap), "-o", "openapi"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    documents = [json.loads(line) for line in result.stdout.splitlines()]
    check_shop_documents({document["info"]["title"]: document for document in documents}, shop)


def test_a_document_inferred_from_a_sample_says_so(plugins: PluginManager) -> None:
    """Observers that fall behind the ingest skip entries (given no time at all here, every
    entry after the first batch): the document says how many it was inferred from."""

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        hub = Hub(HubSettings(token="t", access_token=ACCESS_TOKEN), plugins)
        hub.observers.burst = hub.observers.share = 0.0
        async with TestClient(TestServer(create_app(hub)), headers=BEARER) as client:
            await hub.submit([make_entry(n) for n in range(10)])
            whole = await (await client.get("/oas/127.0.0.1:8080")).json()
            await hub.submit([make_entry(n) for n in range(10, 30)])
            sampled = await (await client.get("/oas/127.0.0.1:8080")).json()
            return whole, sampled

    whole, sampled = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert "x-mizu-sampled" not in whole["info"]
    assert sampled["info"]["x-mizu-sampled"] == {"observed": 10, "skipped": 20}
