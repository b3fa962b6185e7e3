"""``GET /servicemap`` and ``GET /stats`` through the hub's API: parameters, errors, and a hub
on a file, whose views read through a connection of their own while it stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from mizu_core.plugins import PluginManager
from mizu_server import app
from tests.server.hub_support import make_entry
from tests.server.test_hub_api import hub_client, run, send_frames


def test_views_answer_for_a_filter_and_refuse_bad_parameters(
    plugins: PluginManager, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with hub_client(plugins, db_path=tmp_path / "entries.db") as client:
            frames = [[make_entry(n, status=500 if n % 4 == 0 else 200) for n in range(40)]]
            for frame in frames:
                for entry in frame:
                    entry["error"] = entry["response"]["status"] >= 400
            await send_frames(client, frames)
            drawn = await (await client.get("/servicemap", params={"window": "60"})).json()
            (edge,) = drawn["edges"]
            assert (edge["source"], edge["destination"], edge["count"]) == (
                "127.0.0.1",
                "127.0.0.1:8080",
                40,
            )
            assert edge["errors"] == 10 and edge["protocol"]["abbr"] == "HTTP"
            assert drawn["complete"] and drawn["window"]["seconds"] == 60
            narrowed = await (
                await client.get("/servicemap", params={"query": "error == true"})
            ).json()
            assert narrowed["edges"][0]["count"] == narrowed["edges"][0]["errors"] == 10
            answer = await (
                await client.get("/stats", params={"by": "endpoint", "window": "60"})
            ).json()
            assert answer["all"]["count"] == 40 and answer["all"]["errors"] == 10
            assert answer["by"] == "endpoint" and answer["groups"] == 1
            assert answer["series"][0]["label"] == "GET /items/{itemId} · 127.0.0.1:8080"
            for path, params, message in [
                ("/stats", {"by": "pod"}, "by is one of protocol, service, endpoint"),
                ("/stats", {"window": "0"}, "window is a number of seconds"),
                ("/stats", {"buckets": "x"}, "buckets is a whole number"),
                ("/servicemap", {"window": "-5"}, "window is a number of seconds"),
            ]:
                response = await client.get(path, params=params)
                assert response.status == 400 and message in await response.text(), params
            response = await client.get("/servicemap", params={"query": "request.method =="})
            assert response.status == 400 and (await response.json())["valid"] is False

    run(scenario())


def test_a_capped_har_says_how_many_it_holds_of_how_many(
    plugins: PluginManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app, "HAR_MAX_ENTRIES", 5)

    async def scenario() -> None:
        async with hub_client(plugins) as client:
            await send_frames(client, [[make_entry(n) for n in range(12)]])
            capped = await client.get("/har")
            document = await capped.json()
            assert len(document["log"]["entries"]) == 5
            assert document["log"]["comment"] == (
                "The newest 5 of 12 HTTP entries the filter matches."
            )
            assert (capped.headers["X-Mizu-Entries"], capped.headers["X-Mizu-Matched"]) == (
                "5",
                "12",
            )
            # a filter SQL cannot count alone: "more", never a guess
            uncounted = await client.get(
                "/har", params={"query": 'request.headers["Host"].contains("1")'}
            )
            assert uncounted.headers["X-Mizu-Matched"] == "more"
            assert "of more HTTP entries" in (await uncounted.json())["log"]["comment"]
            whole = await client.get("/har", params={"query": 'request.path == "/items/3"'})
            assert "comment" not in (await whole.json())["log"]
            assert (whole.headers["X-Mizu-Entries"], whole.headers["X-Mizu-Matched"]) == ("1", "1")

    run(scenario())
