"""HTTP/1.1 captures as a busy tapper makes them: recorded while aiohttp keep-alive connections
opened before the capture are in use (one of them in the middle of a response body), whole and
without 0.5 %, 2 % and 5 % of their data segments (seeded). Mizu pairs at least as many
requests exactly right as tshark on the same file, and never a request with a response that
did not answer it: every request carries its call's id, the server echoes it, and the clients
say which status each call got. For any set of data segments removed, every complete entry is
one of the whole capture's pairs."""

from __future__ import annotations

import asyncio
import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from http_peers import RECORD_FLUSH, run_client, serving
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mizu_core.testkit import run_capture
from tests.support.capture_edits import data_segments, remove_data_segments, remove_packets
from tests.support.tcpdump import record
from tests.support.tshark import REASSEMBLE_OUT_OF_ORDER

LOSSES = (0.0, 0.005, 0.02, 0.05)
SEED = 17
CONNECTIONS = 3
CALLS = 60
"""Calls each keep-alive connection makes once the capture has begun."""
SLOW_CHUNKS = 40
SLOW_PAUSE = 0.02
"""The slow answer's body: chunks this far apart, so that the capture begins within it."""
CALL_ID = "X-Call"


def call_status(call: int) -> int:
    return (200, 200, 201, 404, 500, 200, 204)[call % 7]


def build_app() -> web.Application:
    """Answers that echo the call's id, in every framing: a small JSON body, a large one
    (several segments), a chunked one, none (204), and a HEAD's."""
    routes = web.RouteTableDef()

    @routes.route("*", "/call/{call}")
    async def call(request: web.Request) -> web.StreamResponse:
        number = int(request.match_info["call"])
        await request.read()
        status = call_status(number)
        headers = {CALL_ID: str(number)}
        if status == 204 or request.method == "HEAD":
            return web.Response(status=status, headers=headers)
        document = {"call": str(number), "pad": "p" * (12_000 if number % 5 == 0 else 40)}
        if number % 3 == 0:
            response = web.StreamResponse(status=status, headers=headers)
            response.enable_chunked_encoding()
            await response.prepare(request)
            text = json.dumps(document).encode()
            for start in range(0, len(text), 5000):
                await response.write(text[start : start + 5000])
            await response.write_eof()
            return response
        return web.json_response(document, status=status, headers=headers)

    @routes.get("/slow/{call}")
    async def slow(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={CALL_ID: request.match_info["call"]})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for index in range(SLOW_CHUNKS):
            await response.write(b"s" * 3000 + b"%d\n" % index)
            await asyncio.sleep(SLOW_PAUSE)
        await response.write_eof()
        return response

    app = web.Application()
    app.add_routes(routes)
    return app


@dataclass(frozen=True)
class Recording:
    capture: Path
    seen: dict[int, int]
    """The status each call made after the capture began got, as its client saw it."""


async def busy_clients(port: int, capture: Path, seen: dict[int, int]) -> None:
    """Keep-alive connections that made calls before the capture, one of them reading a slow
    answer when it begins; then each makes its calls one at a time (GET, POST with a body of
    one or several segments, HEAD, whose answer makes aiohttp's client open a new
    connection)."""
    sessions = [
        aiohttp.ClientSession(f"http://127.0.0.1:{port}", connector=aiohttp.TCPConnector(limit=1))
        for _ in range(CONNECTIONS)
    ]

    async def call(session: aiohttp.ClientSession, number: int) -> None:
        headers = {CALL_ID: str(number)}
        path = f"/call/{number}"
        if number % 11 == 4:
            answer = session.head(path, headers=headers)
        elif number % 4 == 1:
            answer = session.post(path, headers=headers, data=b"b" * (number % 3 * 6000 + 10))
        else:
            answer = session.get(path, headers=headers)
        async with answer as response:
            await response.read()
            if response.headers.get(CALL_ID) == str(number) and number > 0:
                seen[number] = response.status

    capturing = asyncio.Event()

    async def slow_then_calls(session: aiohttp.ClientSession, first: int) -> None:
        async with session.get("/slow/0", headers={CALL_ID: "0"}) as response:
            await response.read()
        # On a busy machine tcpdump may take longer to start than the slow answer lasts: the
        # calls that count must still all be made after the capture began.
        await capturing.wait()
        await calls(session, first)

    async def calls(session: aiohttp.ClientSession, first: int) -> None:
        for number in range(first, first + CALLS):
            await call(session, number)

    try:
        for index, session in enumerate(sessions):  # every connection open and used
            await call(session, -1 - index)
        slow = asyncio.create_task(slow_then_calls(sessions[0], 1))
        await asyncio.sleep(SLOW_PAUSE * SLOW_CHUNKS / 3)
        recording = record(capture, f"tcp port {port}")
        await asyncio.to_thread(recording.__enter__)
        capturing.set()
        try:
            others = [
                calls(session, 1 + CALLS * index) for index, session in enumerate(sessions) if index
            ]
            await asyncio.gather(slow, *others)
            await asyncio.sleep(RECORD_FLUSH)
        finally:
            await asyncio.to_thread(recording.__exit__, None, None, None)
    finally:
        for session in sessions:
            await session.close()


def record_busy(capture: Path) -> Recording:
    seen: dict[int, int] = {}
    with serving(build_app()) as server:
        run_client(lambda: busy_clients(server.port, capture, seen))
    return Recording(capture, seen)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    return record_busy(tmp_path_factory.mktemp("joined") / "joined.pcap")


@dataclass
class Tally:
    exact: int = 0
    """Pairs whose request and response carry the same call, with the status its client got."""
    wrong: int = 0
    """Pairs whose response answered another call, or shows a status its client did not get."""


def judge(
    tally: Tally, seen: dict[int, int], asked: int | None, answered: int | None, status: int
) -> None:
    if asked is None or answered is None:
        return
    if asked == answered and seen.get(asked) == status:
        tally.exact += 1
    elif asked != answered or asked in seen:
        tally.wrong += 1


def header_call(headers: dict[str, Any]) -> int | None:
    value = next((v for name, v in headers.items() if name.lower() == CALL_ID.lower()), None)
    return int(value) if isinstance(value, str) else None


def mizu_tally(entries: list[dict[str, Any]], seen: dict[int, int]) -> Tally:
    tally = Tally()
    for entry in entries:
        request, response = entry["request"], entry["response"]
        if request is None or response is None or entry.get("unpaired"):
            continue
        asked, answered = header_call(request["headers"]), header_call(response["headers"])
        judge(tally, seen, asked, answered, response["status"])
    return tally


def _line_call(lines: list[str] | str) -> int | None:
    for line in [lines] if isinstance(lines, str) else lines:
        name, _, value = line.partition(":")
        if name.strip().lower() == CALL_ID.lower():
            return int(value.strip())
    return None


def tshark_tally(capture: Path, seen: dict[int, int]) -> Tally:
    """tshark's pairs (a response's ``http.request_in``), judged as Mizu's are."""
    output = subprocess.run(
        ["tshark", "-r", str(capture), *REASSEMBLE_OUT_OF_ORDER, "-Y", "http", "-T", "json",
         "--no-duplicate-keys"],
        capture_output=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    requests: dict[str, int | None] = {}
    responses: list[tuple[str, int | None, int]] = []
    for packet in json.loads(output or b"[]"):
        layers = packet["_source"]["layers"]
        frame = layers["frame"]["frame.number"]
        messages = layers["http"] if isinstance(layers["http"], list) else [layers["http"]]
        for message in messages:
            if "http.request.line" in message:
                requests.setdefault(frame, _line_call(message["http.request.line"]))
            if "http.request_in" in message:
                code = next(
                    int(value["http.response.code"])
                    for value in message.values()
                    if isinstance(value, dict) and "http.response.code" in value
                )
                call = _line_call(message.get("http.response.line", []))
                responses.append((message["http.request_in"], call, code))
    tally = Tally()
    for request_frame, answered, code in responses:
        judge(tally, seen, requests.get(request_frame), answered, code)
    return tally


@pytest.mark.parametrize("loss", LOSSES)
def test_mizu_pairs_as_many_requests_right_as_tshark_and_none_wrong(
    recording: Recording, loss: float, tmp_path: Path
) -> None:
    capture = recording.capture
    if loss:
        capture = tmp_path / "lossy.pcap"
        remove_data_segments(recording.capture, capture, loss, SEED)
    outputs = run_capture(capture, "http")
    assert outputs.stats["plugin_errors"] == {}
    ours = mizu_tally(outputs.entries, recording.seen)
    theirs = tshark_tally(capture, recording.seen)
    counters = outputs.stats["plugin_counters"]["http"]
    print(
        f"http/1.1 joined, loss {loss:.1%}: mizu {ours}, tshark {theirs}, "
        f"of {len(recording.seen)} calls; {counters}"
    )
    assert ours.wrong == 0
    assert ours.exact >= theirs.exact
    if not loss:  # whole: every call made after the capture began is paired right
        assert ours.exact == len(recording.seen)
        # the slow answer's body was in flight: shown alone, for what it is
        (in_flight,) = [e for e in outputs.entries if e.get("unpaired") == "midstream"]
        assert in_flight["request"] is None
        assert in_flight["response"]["unrecovered"] == ["headers", "body"]
        assert 0 < in_flight["responseSize"] <= counters["bytes_skipped"]


Pairs = dict[tuple[int, int | None], tuple[int | None, int]]


def complete_pairs(capture: Path) -> Pairs:
    """The complete entries of ``capture``: (client port, call asked) → (call answered,
    status)."""
    pairs = {}
    for entry in run_capture(capture, "http").entries:
        request, response = entry["request"], entry["response"]
        if request and response and not entry.get("unpaired"):
            key = (entry["src"]["port"], header_call(request["headers"]))
            pairs[key] = (header_call(response["headers"]), response["status"])
    return pairs


@pytest.fixture(scope="module")
def whole(recording: Recording) -> tuple[list[int], Pairs]:
    """The positions of the recording's data segments, and its complete pairs."""
    positions = [segment.index for segment in data_segments(recording.capture)]
    return positions, complete_pairs(recording.capture)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_segments_removed_leave_only_pairs_of_the_whole_capture(
    recording: Recording, whole: tuple[list[int], Pairs], data: st.DataObject
) -> None:
    positions, whole_pairs = whole
    removed = data.draw(st.sets(st.sampled_from(positions), min_size=1, max_size=20))
    with tempfile.TemporaryDirectory() as directory:
        edited = Path(directory) / "edited.pcap"
        remove_packets(recording.capture, edited, sorted(removed))
        pairs = complete_pairs(edited)
    assert pairs  # a few segments lost leave most calls whole
    for key, shown in pairs.items():
        assert whole_pairs.get(key) == shown, key
