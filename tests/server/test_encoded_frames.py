"""Entries the tapper encodes for the store (``pack_encoded_entries``): checked on arrival,
stored as sent, and named, checked and filtered exactly as entries sent as maps."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from typing import Any

import msgpack
import orjson
import pytest

from mizu_core.plugins import PluginManager
from mizu_server import store as store_module
from mizu_server.frames import pack_encoded_entries, read_tapper_frame
from mizu_server.hub import Hub, HubSettings, Subscription
from mizu_server.pushdown import COLUMN_NAMES, column_values
from mizu_server.resolver import NameResolver, fill_names
from mizu_server.rules import load_rules
from mizu_server.store import decode_data, encode_entry
from tests.server.hub_support import make_entry

RULES = """
rules:
  - name: json-answers
    type: header
    key: "content-type"
    value: "application/json"
"""


def test_a_frame_round_trips_as_id_columns_and_json() -> None:
    entries = [make_entry(1), make_entry(2, status=404, tags=("a", "b"))]
    kind, encoded = read_tapper_frame(pack_encoded_entries(entries))
    assert kind == "encoded"
    assert [item[0] for item in encoded] == ["tapper-1-1", "tapper-1-2"]
    assert [list(item[1:-1]) for item in encoded] == [column_values(e) for e in entries]
    # tuples become lists, as they did when the hub encoded entries itself
    assert decode_data(encoded[1][-1]) == {**entries[1], "tags": ["a", "b"]}


def bad(index: int, value: Any) -> bytes:
    item: list[Any] = list(encode_entry(make_entry(1)))
    item[index] = value
    return msgpack.packb({"columns": COLUMN_NAMES, "encoded": [item]}, use_bin_type=True)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (bad(0, ""), "non-empty string"),
        (bad(0, 7), "non-empty string"),
        (bad(-1, b"[1]"), "JSON object or a msgpack map"),
        (bad(-1, "{}"), "JSON object or a msgpack map"),
        (bad(1, True), "bool"),
        (bad(1, {"a": 1}), "dict"),
        (bad(1, 1 << 63), "beyond 64 bits"),
        (msgpack.packb({"columns": COLUMN_NAMES, "encoded": [["id", b"{}"]]}), "a list of"),
    ],
)
def test_frames_that_could_fail_the_insert_are_refused(frame: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        read_tapper_frame(frame)


def test_columns_of_another_layout_are_worked_out_from_the_data() -> None:
    entry = make_entry(3, status=500)
    other = ["status", "path"]
    data = orjson.dumps(entry)
    frame = msgpack.packb(
        {"columns": other, "encoded": [[entry["id"], *([0] * (len(COLUMN_NAMES))), data]]},
        use_bin_type=True,
    )
    _, encoded = read_tapper_frame(frame)
    assert list(encoded[0]) == [entry["id"], *column_values(entry), data]


Submit = Callable[[Hub, Sequence[dict[str, Any]]], "asyncio.Future[int]"]


def as_maps(hub: Hub, entries: Sequence[dict[str, Any]]) -> asyncio.Future[int]:
    return hub.submit(entries)


def as_encoded(hub: Hub, entries: Sequence[dict[str, Any]]) -> asyncio.Future[int]:
    """As a tapper sends them: named from the table the hub sent it, then encoded."""
    assert hub.resolver is not None
    table = hub.resolver.table()
    return hub.submit_encoded([encode_entry(fill_names(entry, table.get)) for entry in entries])


def stored_after(
    plugins: PluginManager, submit: Submit, query: str = "", **settings: Any
) -> tuple[list[dict[str, Any]], int]:
    """What a hub named, checked and filtered for a batch: the stored entries and how many the
    insertion filter left out, with ``query`` answered in SQL alone."""

    async def scenario() -> tuple[list[dict[str, Any]], int]:
        hub = Hub(HubSettings(**settings), plugins)
        resolver = NameResolver()
        resolver.apply(
            "Service",
            "ADDED",
            {"metadata": {"name": "api", "namespace": "shop"}, "spec": {"clusterIP": "10.9.0.1"}},
        )
        hub.resolver = resolver
        await hub.start()
        try:
            named = make_entry(1)
            named["dst"] = {"ip": "10.9.0.1", "port": 80, "name": "", "namespace": ""}
            unknown = make_entry(2, status=404)
            text = {**make_entry(3), "response": {**make_entry(3)["response"], "headers": {}}}
            tcp = {**make_entry(4), "protocol": {**make_entry(4)["protocol"], "name": "tcp"}}
            await submit(hub, [named, unknown, text, tcp])
            page = await hub.run(hub.db.page, hub.compile(query), 100, None, -1)
            assert page.exact
            return [item.entry for item in page.entries], hub.filtered_out
        finally:
            await hub.stop()

    return asyncio.run(asyncio.wait_for(scenario(), 30))


@pytest.mark.parametrize(
    ("query", "settings"),
    [
        ('dst.name == "api.shop"', {}),
        ("", {"rules": load_rules(RULES)}),
        (
            "",
            {
                "rules": load_rules(RULES),
                "insertion_filter": 'response.status != 404 and redact("request.headers")',
            },
        ),
    ],
)
def test_encoded_entries_are_named_checked_and_filtered_as_maps_are(
    plugins: PluginManager, query: str, settings: dict[str, Any]
) -> None:
    encoded, encoded_left_out = stored_after(plugins, as_encoded, query, **settings)
    maps, maps_left_out = stored_after(plugins, as_maps, query, **settings)
    assert encoded == maps and encoded_left_out == maps_left_out
    if query:  # the resolver named the destination, and its column says so
        assert [entry["id"] for entry in encoded] == ["tapper-1-1"]
    if "rules" in settings:
        verdicts = {entry["id"]: entry.get("rules") for entry in encoded}
        assert verdicts["tapper-1-4"] is None  # not HTTP: not checked
        assert verdicts["tapper-1-3"]["failed"][0]["name"] == "json-answers"
    if "insertion_filter" in settings:
        assert encoded_left_out == 1 and "tapper-1-2" not in {e["id"] for e in encoded}
        assert {e["request"]["headers"] for e in encoded} == {"[REDACTED]"}


def test_an_entry_sent_broken_is_left_out_of_what_reads_it(plugins: PluginManager) -> None:
    """The hub stores encoded entries without decoding them: one whose data does not decode
    is left out of listings, lookups and live streams, which go on with the rest."""

    async def scenario() -> None:
        hub = Hub(HubSettings(), plugins)
        await hub.start()
        try:
            subscription = hub.subscribe(hub.compile(""), 0)
            broken = (*encode_entry(make_entry(1))[:-1], b"{broken")
            assert await hub.submit_encoded([broken, encode_entry(make_entry(2))]) == 2
            page = await hub.run(hub.db.page, hub.compile(""), 10, None, -1)
            assert [item.entry["id"] for item in page.entries] == ["tapper-1-2"]
            assert await hub.run(hub.db.get, "tapper-1-1") is None
            assert [row["id"] for row in await live_rows(subscription, 1)] == ["tapper-1-2"]
            assert await hub.submit_encoded([encode_entry(make_entry(3))]) == 1
            assert [row["id"] for row in await live_rows(subscription, 1)] == ["tapper-1-3"]
        finally:
            await hub.stop()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_the_hub_names_nothing_it_receives_encoded(plugins: PluginManager) -> None:
    """Names are the tappers' to fill (from the table the hub sends them): an encoded entry
    is stored as it came, never decoded and encoded again to be named."""

    async def scenario() -> None:
        hub = Hub(HubSettings(), plugins)
        hub.resolver = NameResolver()
        hub.resolver.apply("Pod", "ADDED", POD)
        await hub.start()
        try:
            entry = make_entry(1)
            entry["dst"] = {"ip": "10.1.0.9", "port": 80, "name": "", "namespace": ""}
            encoded = encode_entry(entry)
            await hub.submit_encoded([encoded])
            page = await hub.run(hub.db.page, hub.compile(""), 10, None, -1)
            assert page.entries[0].data == encoded[-1]
            assert page.entries[0].entry["dst"]["name"] == ""
        finally:
            await hub.stop()

    asyncio.run(asyncio.wait_for(scenario(), 30))


POD = {"metadata": {"name": "api-1", "namespace": "shop"}, "status": {"podIP": "10.1.0.9"}}


def test_entries_handed_over_as_maps_are_encoded_once_and_never_decoded(
    plugins: PluginManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Local mode's tapper hands the hub its entries as they are: the hub encodes each once,
    for the store, and its live browsers read the entry it had, not a decoding of it."""
    decoded: list[bytes] = []
    real_decode = store_module.decode_data

    def counting_decode(data: bytes) -> dict[str, Any]:
        decoded.append(data)
        return real_decode(data)

    monkeypatch.setattr(store_module, "decode_data", counting_decode)

    async def scenario() -> None:
        hub = Hub(HubSettings(), plugins)
        await hub.start()
        try:
            subscription = hub.subscribe(hub.compile(""), 0)
            await hub.submit([make_entry(1), make_entry(2)])
            rows = await live_rows(subscription, 2)
            assert [row["id"] for row in rows] == ["tapper-1-1", "tapper-1-2"]
            assert not hub._made  # forgotten once stored
        finally:
            await hub.stop()

    asyncio.run(asyncio.wait_for(scenario(), 30))
    assert decoded == []


async def live_rows(subscription: Subscription, count: int) -> list[dict[str, Any]]:
    """The next ``count`` rows of a live stream, as the browser gets them."""
    rows: list[dict[str, Any]] = []
    async for live in subscription.rows():
        rows.append(json.loads(live.message)["data"])
        if len(rows) == count:
            break
    return rows
