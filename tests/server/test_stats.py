"""Traffic over time (``GET /stats``): rates, errors and nearest-rank latency percentiles per
bucket, grouped by protocol, service or endpoint, over the filter's entries in a window;
checked against the same figures worked out from the entries themselves."""

from __future__ import annotations

import math
from typing import Any

import pytest

from mizu_core.query import compile_query
from mizu_server import stats, windowed
from mizu_server.stats import bucket_width, path_pattern
from mizu_server.store import SqliteStore
from mizu_server.windows import WindowReader
from tests.server.test_servicemap import PROTOCOLS, call

START = 1_700_000_040_000  # a multiple of a minute: buckets of 10 s start on it


def nearest_rank(values: list[float], rank: int) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[math.ceil(rank * len(ordered) / 100) - 1]


def traffic() -> list[dict[str, Any]]:
    """Two minutes of calls, every 250 ms: orders (errors on every seventh), catalogue, and
    WebSocket frames with no latency of their own."""
    entries = []
    for number in range(480):
        at = START + number * 250
        if number % 3 == 2:
            entry = call(
                number,
                ("10.0.0.1", 40000 + number, ""),
                ("10.0.0.3", 8080, ""),
                macro="ws",
                answered=False,
            )
        elif number % 3 == 1:
            entry = call(
                number,
                ("10.0.0.1", 40000 + number, ""),
                ("10.0.0.4", 80, "catalogue"),
                elapsed=float(number % 11),
            )
        else:
            entry = call(
                number,
                ("10.0.0.1", 40000 + number, ""),
                ("10.0.0.2", 80, "orders"),
                status=500 if number % 7 == 0 else 200,
                elapsed=float(number % 23) + 0.5,
            )
        entry["timestamp"] = at
        entry["request"]["path"] = f"/orders/{number}" if number % 3 == 0 else "/items"
        entries.append(entry)
    return entries


def computed(
    entries: list[dict[str, Any]], query: str = "", by: str = "protocol", span: int = 120
) -> dict[str, Any]:
    store = SqliteStore(":memory:")
    store.insert(entries)
    answer = windowed.statistics(
        WindowReader(store.db), compile_query(query), span, by, 12, PROTOCOLS, None
    )
    store.close()
    return answer


def test_bucket_widths_are_round() -> None:
    assert bucket_width(120_000, 12) == 10_000
    assert bucket_width(900_000, 60) == 15_000
    assert bucket_width(3_600_000, 60) == 60_000
    assert bucket_width(30 * 86_400_000, 60) == 43_200_000
    assert bucket_width(30 * 86_400_000, 20) == 2 * 86_400_000  # whole days beyond


def test_rates_errors_and_percentiles_match_the_entries() -> None:
    entries = traffic()
    answer = computed(entries)
    width = answer["bucketMs"]
    assert width == 10_000 and answer["complete"]
    newest = entries[-1]["timestamp"]
    assert answer["window"] == {"seconds": 120, "since": newest - 120_000, "until": newest}
    for series in [answer["all"], *answer["series"]]:
        mine = [e for e in entries if not series["query"] or compile_query(series["query"])(e)]
        if series is answer["all"]:
            mine = [e for e in entries if e["timestamp"] >= newest - 120_000]
        for index, start in enumerate(answer["buckets"]):
            inside = [e for e in mine if start <= e["timestamp"] < start + width]
            latencies = [e["elapsedTime"] for e in inside if e["responseSize"]]
            assert series["counts"][index] == len(inside)
            assert series["rates"][index] == round(len(inside) * 1000 / width, 4)
            assert series["errorCounts"][index] == sum(e["error"] for e in inside)
            for rank in (50, 90, 99):
                assert series[f"p{rank}"][index] == nearest_rank(latencies, rank), (series, rank)
        answered = [e["elapsedTime"] for e in mine if e["responseSize"]]
        assert series["count"] == len(mine)
        if answered:
            assert series["latency"] == {f"p{r}": nearest_rank(answered, r) for r in (50, 90, 99)}
        else:
            assert series["latency"] is None  # WebSocket frames have no latency
    by_label = {series["label"]: series for series in answer["series"]}
    assert set(by_label) == {"HTTP", "WS"}
    http = by_label["HTTP"]
    assert http["errors"] == sum(
        1 for e in entries if e["error"] and e["timestamp"] >= newest - 120_000
    )


def test_services_and_endpoints_with_their_filters() -> None:
    entries = traffic()
    services = computed(entries, by="service")
    assert sorted(series["label"] for series in services["series"]) == [
        "HTTP · catalogue",
        "HTTP · orders",
        "WS · 10.0.0.3:8080",
    ]
    endpoints = computed(entries, by="endpoint")
    labels = {series["label"]: series for series in endpoints["series"]}
    assert set(labels) == {
        "GET /orders/{orderId} · orders",
        "GET /items · catalogue",
        "GET /items · 10.0.0.3:8080",
    }
    for series in endpoints["series"]:
        selected = compile_query(series["query"])
        window = [e for e in entries if e["timestamp"] >= endpoints["window"]["since"]]
        assert sum(1 for e in window if selected(e)) == series["count"], series["query"]
    assert path_pattern("/orders/{orderId}/payments/{paymentId}") == (
        "^/orders/[^/]+/payments/[^/]+$"
    )


def test_the_filter_applies_and_many_groups_become_other(monkeypatch: pytest.MonkeyPatch) -> None:
    entries = traffic()
    errors_only = computed(entries, "error == true")
    assert errors_only["all"]["count"] == errors_only["all"]["errors"] > 0
    monkeypatch.setattr(stats, "MAX_SERIES", 1)
    answer = computed(entries, by="service")
    assert [series["key"] for series in answer["series"]][-1] == "(other)"
    assert sum(series["count"] for series in answer["series"]) == answer["all"]["count"]


def test_a_capped_window_starts_where_its_entries_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(windowed, "WINDOW_ROWS", 40)
    entries = traffic()
    answer = computed(entries)
    assert (answer["entries"], answer["complete"]) == (40, False)
    assert answer["buckets"][0] <= entries[-40]["timestamp"] < answer["buckets"][0] + 10_000
    assert answer["all"]["count"] == 40
