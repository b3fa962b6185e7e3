"""API rules: the file's validation, the verdicts, the hub's rows and detail view, and a real
``mizu tap --local`` checking the loopback shop's traffic."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from mizu_cli.main import cli
from mizu_core.plugins import PluginManager
from mizu_core.query import compile_query
from mizu_server.app import create_app
from mizu_server.hub import Hub, HubSettings
from mizu_server.rules import JsonPath, RulesError, load_rules
from tests.server.hub_support import ACCESS_TOKEN, BEARER, make_entry
from tests.server.multiservice import (
    CATALOGUE_IP,
    GATEWAY_IP,
    ODD_ORDER,
    RULES_YAML,
    SLOW_SKU,
    Shop,
    TappedHub,
    Traffic,
    drive,
    mizu_tap,
    running_shop,
    shop_query,
)

RULES = """
rules:
  - name: has-n
    type: json
    key: "$.n"
    value: "^[0-9]+$"
    path: "^/items/"
  - name: json-content
    type: header
    key: "content-type"
    value: "json"
    service: ":8080$"
  - name: quick
    type: slo
    response-time: 10
"""


def entry_with(number: int, body: Any = None, elapsed: float = 1.5, **extra: Any) -> dict:
    entry = make_entry(number, elapsedTime=elapsed, **extra)
    if body is not None:
        entry["response"]["content"]["text"] = json.dumps(body)
    return entry


# -- the file ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: [", "not valid YAML"),
        ("- name: a", "top-level 'rules:' list"),
        ("rules: []\nextra: 1", "unknown top-level key 'extra'"),
        ("rules:\n  - type: json\n    key: $.a", "rule 1, field 'name'"),
        ("rules:\n  - name: a\n    type: xml", "rule 1 ('a'), field 'type': 'xml' is not one"),
        ("rules:\n  - name: a\n    type: json", "rule 1 ('a'), field 'key': a JSONPath"),
        ("rules:\n  - name: a\n    type: json\n    key: id", "field 'key': a JSONPath starts"),
        ("rules:\n  - name: a\n    type: json\n    key: $.a..b", "cannot read '..b' at offset 3"),
        (
            "rules:\n  - name: ok\n    type: slo\n    response-time: 5\n"
            "  - name: b\n    type: header\n    key: x\n    value: '(['",
            "rule 2 ('b'), field 'value': bad regular expression",
        ),
        ("rules:\n  - name: a\n    type: slo", "field 'response-time': a positive number"),
        ("rules:\n  - name: a\n    type: slo\n    response-time: -3", "field 'response-time'"),
        (
            "rules:\n  - name: a\n    type: slo\n    response-time: 3\n    key: x",
            "rule 1 ('a'), field 'key': not a field of slo rules",
        ),
        (
            "rules:\n  - name: a\n    type: slo\n    response-time: 3\n"
            "  - name: a\n    type: slo\n    response-time: 4",
            "rule 2 ('a'), field 'name': repeated",
        ),
        ("rules:\n  - name: a\n    type: json\n    key: $.a\n    service: [1]", "'service'"),
    ],
)
def test_a_bad_rules_file_names_the_rule_and_the_field(text: str, message: str) -> None:
    with pytest.raises(RulesError, match=None) as caught:
        load_rules(text, "rules.yaml")
    assert message in str(caught.value)
    assert str(caught.value).startswith("rules.yaml")


def test_the_issue_example_loads() -> None:
    rules = load_rules(RULES_YAML)
    assert [rule.name for rule in rules.rules] == [
        "orders-must-have-id",
        "fast-catalogue",
        "catalogue-version-header",
    ]
    assert rules.rules[1].response_time == 300


@pytest.mark.parametrize(
    ("path", "found"),
    [
        ("$", [{"a": [{"b": 1}, {"b": 2}], "c d": 3}]),
        ("$.a[0].b", [1]),
        ("$.a[-1].b", [2]),
        ("$.a[*].b", [1, 2]),
        ("$.a.*.b", [1, 2]),
        ("$['c d']", [3]),
        ('$["a"][1]["b"]', [2]),
        ("$.a[5]", []),
        ("$.missing.b", []),
    ],
)
def test_json_paths(path: str, found: list[Any]) -> None:
    assert JsonPath.parse(path).find({"a": [{"b": 1}, {"b": 2}], "c d": 3}) == found


# -- verdicts ---------------------------------------------------------------------------------


def test_verdicts_of_each_rule_type() -> None:
    rules = load_rules(RULES)
    assert rules.check(entry_with(1, {"n": 7})) == {
        "passed": ["has-n", "json-content", "quick"],
        "failed": [],
    }
    verdict = rules.check(entry_with(2, {"n": "seven"}, elapsed=25.0))
    assert verdict is not None
    assert verdict["passed"] == ["json-content"]
    assert verdict["failed"] == [
        {"name": "has-n", "reason": "$.n is 'seven', not matching '^[0-9]+$'"},
        {"name": "quick", "reason": "took 25.0 ms, over 10 ms"},
    ]
    no_n = rules.check(entry_with(3, {"m": 1}))
    assert no_n is not None and no_n["failed"][0]["reason"] == "$.n is not in the response body"
    not_json = entry_with(4)
    not_json["response"]["content"]["text"] = "<html>"
    verdict = rules.check(not_json)
    assert verdict is not None
    assert verdict["failed"][0]["reason"] == "the response body is not JSON"


def test_rules_apply_only_where_service_and_path_match() -> None:
    rules = load_rules(RULES)
    elsewhere = entry_with(5, {"n": 1})
    elsewhere["dst"]["port"] = 9090
    elsewhere["request"]["headers"]["Host"] = "127.0.0.1:9090"
    elsewhere["request"]["path"] = "/other"
    assert rules.check(elsewhere) == {"passed": ["quick"], "failed": []}


def test_header_rules_and_unanswered_requests() -> None:
    rules = load_rules(RULES)
    wrong_type = entry_with(6, {"n": 1})
    wrong_type["response"]["headers"]["Content-Type"] = "text/plain"
    verdict = rules.check(wrong_type)
    assert verdict is not None
    assert verdict["failed"] == [
        {
            "name": "json-content",
            "reason": "header Content-Type is 'text/plain', not matching 'json'",
        }
    ]
    unanswered = entry_with(7, response=None)
    verdict = rules.check(unanswered)
    assert verdict is not None and verdict["passed"] == []
    assert {failure["reason"] for failure in verdict["failed"]} == {"no response was seen"}


def test_base64_bodies_are_decoded_and_other_protocols_are_not_checked() -> None:
    rules = load_rules(RULES)
    entry = entry_with(8)
    entry["response"]["content"] = {
        "mimeType": "application/json",
        "text": "eyJuIjogNDJ9",  # {"n": 42}
        "encoding": "base64",
    }
    verdict = rules.check(entry)
    assert verdict is not None and "has-n" in verdict["passed"]
    tcp = entry_with(9)
    tcp["protocol"] = {**tcp["protocol"], "name": "tcp"}
    assert rules.check(tcp) is None


def test_the_filter_language_selects_failures() -> None:
    rules = load_rules(RULES)
    good = {**entry_with(1, {"n": 1}), "rules": rules.check(entry_with(1, {"n": 1}))}
    bad_entry = entry_with(2, {"n": "x"})
    bad = {**bad_entry, "rules": rules.check(bad_entry)}
    failing = compile_query("rules.failed.length > 0")
    assert [failing(good), failing(bad)] == [False, True]
    named = compile_query('rules.failed[0].name == "has-n"')
    assert named(bad) and not named(good)


# -- the hub ----------------------------------------------------------------------------------


def test_the_hub_records_verdicts_in_entries_rows_and_the_detail_view(
    plugins: PluginManager,
) -> None:
    async def scenario() -> None:
        hub = Hub(
            HubSettings(token="t", access_token=ACCESS_TOKEN, rules=load_rules(RULES)), plugins
        )
        async with TestClient(TestServer(create_app(hub)), headers=BEARER) as client:
            await hub.submit([entry_with(1, {"n": 1}), entry_with(2, {"n": "x"}, elapsed=50)])
            failing = await (
                await client.get("/entries", params={"query": "rules.failed.length > 0"})
            ).json()
            assert [row["id"] for row in failing["data"]] == ["tapper-1-2"]
            assert failing["data"][0]["rules"] == {"passed": 1, "failed": 2}
            detail = await (await client.get("/entries/tapper-1-2")).json()
            assert detail["data"]["rules"]["failed"][0]["name"] == "has-n"
            section = detail["representation"]["response"][-1]
            assert section["title"] == "Rules" and section["type"] == "table"
            assert [row["name"] for row in section["data"]] == ["has-n", "quick", "json-content"]
            assert section["data"][0]["value"].startswith("failed: $.n is 'x'")
            selector = compile_query(section["data"][0]["selector"])
            assert selector(detail["data"])

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_the_insertion_filter_can_keep_only_rule_breakers(plugins: PluginManager) -> None:
    async def scenario() -> None:
        settings = HubSettings(
            token="t",
            access_token=ACCESS_TOKEN,
            rules=load_rules(RULES),
            insertion_filter="rules.failed.length > 0",
        )
        hub = Hub(settings, plugins)
        async with TestClient(TestServer(create_app(hub)), headers=BEARER) as client:
            await hub.submit([entry_with(1, {"n": 1}), entry_with(2, {"n": "x"})])
            body = await (await client.get("/entries")).json()
            assert [row["id"] for row in body["data"]] == ["tapper-1-2"]

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_tap_refuses_to_start_with_a_bad_rules_file(tmp_path: Path) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text("rules:\n  - name: fast\n    type: slo\n    response-time: soon\n")
    result = CliRunner().invoke(
        cli,
        ["tap", "--local", "--no-browser", "--db", str(tmp_path / "e.db"),
         "--traffic-validation-file", str(bad)],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "rule 1 ('fast'), field 'response-time'" in result.output
    assert "dashboard at" not in result.output
    assert not (tmp_path / "e.db").exists()


# -- real traffic -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shop_under_rules(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Shop, Traffic, TappedHub, list[dict[str, Any]]]]:
    workdir = tmp_path_factory.mktemp("rules")
    rules_file = workdir / "rules.yaml"
    rules_file.write_text(RULES_YAML)
    arguments = ["--local", "-i", "lo", "--traffic-validation-file", str(rules_file)]
    with running_shop() as (shop, traffic), mizu_tap(arguments, workdir) as hub:
        drive(shop, traffic)
        rows = hub.wait_for(shop_query(shop), sum(traffic.requests.values()))
        yield shop, traffic, hub, rows


@pytest.mark.live
def test_rules_pass_and_fail_on_real_traffic(
    shop_under_rules: tuple[Shop, Traffic, TappedHub, list[dict[str, Any]]],
) -> None:
    shop, traffic, hub, rows = shop_under_rules
    assert len(rows) == sum(traffic.requests.values())
    query = shop_query(shop)
    failing = hub.entries(f"({query}) and rules.failed.length > 0")
    verdicts = {}
    for row in failing:
        entry = hub.get(f"/entries/{row['id']}")["data"]
        request = entry["request"]
        verdicts[(request["method"], request["path"], entry["dst"]["ip"])] = [
            failure["name"] for failure in entry["rules"]["failed"]
        ]
    assert verdicts == {
        # 9999 is no item: the 422 has no id; order 13 gets "ORD-13"; order 404 does not exist
        ("POST", "/api/orders", GATEWAY_IP): ["orders-must-have-id"],
        ("GET", f"/api/orders/{ODD_ORDER}", GATEWAY_IP): ["orders-must-have-id"],
        ("GET", "/api/orders/404", GATEWAY_IP): ["orders-must-have-id"],
        ("GET", f"/items/{SLOW_SKU}", CATALOGUE_IP): ["fast-catalogue"],
    }
    assert sum(row["rules"]["failed"] for row in failing) == 4 + 2  # two POSTs, two slow GETs
    passing = hub.entries(f'({query}) and dst.ip == "{GATEWAY_IP}" and rules.failed.length == 0')
    ids = {row["id"] for row in passing}
    orders = [hub.get(f"/entries/{entry_id}")["data"] for entry_id in ids]
    checked = [entry for entry in orders if entry["rules"]["passed"]]
    assert len(checked) == 8  # 4 good POSTs and 4 good GETs (10, 11, 12, 14)
    assert all(entry["rules"]["passed"] == ["orders-must-have-id"] for entry in checked)
    catalogue = hub.entries(f'({query}) and dst.ip == "{CATALOGUE_IP}"')
    assert len(catalogue) == traffic.requests["orders->catalogue"]
    assert all(row["rules"]["passed"] + row["rules"]["failed"] == 2 for row in catalogue)
