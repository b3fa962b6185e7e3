"""HTTP/2 and gRPC captures that begin while their connection is in use (a response in
flight, the HPACK tables already filled), whole and with data segments removed: Mizu pairs at
least as many calls exactly right as tshark, and never a request with another call's answer
(each call's id is echoed by the server, and the clients say what each call got); and, for
any set of data segments removed, every complete entry is one of the whole capture's pairs."""

from __future__ import annotations

import functools
import json
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from http_peers import record_grpc_midstream, record_h2c_midstream, tshark_h2_streams
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mizu_core.testkit import run_capture
from tests.support.capture_edits import data_segments, remove_data_segments, remove_packets

LOSSES = (0.0, 0.005, 0.02, 0.05)
"""Fractions of the data segments removed from each recording (seeded)."""


@dataclass(frozen=True)
class Scenario:
    """How a recording's calls show their id in requests and answers, and their status."""

    record: Callable[[Path], tuple[int, dict[int, int]]]
    call_id: re.Pattern[str]
    """Finds a call's id in the text of a request or of an answer."""
    status_header: str
    """The header (trailer for gRPC) that carries the status a client sees."""


SCENARIOS = {
    "h2c": Scenario(
        record_h2c_midstream, re.compile(r'/(?:call|slow)/(\d+)|"call": "(\d+)"'), ":status"
    ),
    "grpc": Scenario(record_grpc_midstream, re.compile(r"call-(\d+)"), "grpc-status"),
}


@dataclass
class Tally:
    exact: int = 0
    """Pairs whose request and answer carry the same call, with the status its client saw."""
    wrong: int = 0
    """Pairs whose answer belongs to another call, or shows a status its client did not see."""


def _ids(pattern: re.Pattern[str], text: str) -> set[int]:
    return {
        int(next(group for group in found.groups() if group)) for found in pattern.finditer(text)
    }


def _judge(
    tally: Tally, scenario: Scenario, seen: dict[int, int], request: str, answer: str, status: str
) -> None:
    """Count a pair: exact when both sides name the same call (and the status shown, if any,
    is the one its client got), wrong when they name different calls or the status differs;
    a pair that names no call on a side is neither."""
    asked, answered = _ids(scenario.call_id, request), _ids(scenario.call_id, answer)
    if not asked or not answered:
        return
    (call,) = asked if len(asked) == 1 else (None,)
    if asked != answered or call not in seen or (status and int(status) != seen[call]):
        tally.wrong += 1
    else:
        tally.exact += 1


def _message_text(message: dict[str, Any]) -> str:
    """What a Mizu request or response shows: target, headers, body, gRPC messages."""
    body = message.get("postData") or message.get("content") or {}
    return "\n".join(
        [
            message.get("url", ""),
            json.dumps(message.get("headers", {})),
            body.get("text", "") if body.get("encoding") != "base64" else "",
            json.dumps(message.get("messages", [])),
            message.get("grpcMessage", ""),
        ]
    )


def mizu_tally(scenario: Scenario, seen: dict[int, int], entries: list[dict[str, Any]]) -> Tally:
    tally = Tally()
    for entry in entries:
        request, response = entry["request"], entry["response"]
        if not request or not response or entry.get("unpaired"):
            continue
        headers = response.get("headers", {})
        status = str(headers.get(scenario.status_header, ""))
        _judge(tally, scenario, seen, _message_text(request), _message_text(response), status)
    return tally


def _tshark_text(stream: dict[str, Any], side: str) -> str:
    """What tshark shows of one side of a stream: its headers and DATA bytes."""
    return json.dumps(stream[f"{side}_headers"]) + stream[f"{side}_body"].decode("latin-1")


def tshark_tally(scenario: Scenario, seen: dict[int, int], capture: Path, port: int) -> Tally:
    tally = Tally()
    for stream in tshark_h2_streams(capture, port).values():
        statuses = [v for name, v in stream["response_headers"] if name == scenario.status_header]
        status = statuses[0] if statuses else ""
        request, answer = _tshark_text(stream, "request"), _tshark_text(stream, "response")
        _judge(tally, scenario, seen, request, answer, status)
    return tally


@pytest.fixture(scope="module", params=sorted(SCENARIOS))
def recording(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Scenario, Path, int, dict[int, int]]:
    scenario = SCENARIOS[request.param]
    capture = tmp_path_factory.mktemp(request.param) / "midstream.pcap"
    port, seen = scenario.record(capture)
    return scenario, capture, port, seen


@pytest.mark.parametrize("loss", LOSSES)
def test_mizu_pairs_as_many_calls_right_as_tshark_and_none_wrong(
    recording: tuple[Scenario, Path, int, dict[int, int]], loss: float, tmp_path: Path
) -> None:
    scenario, capture, port, seen = recording
    if loss:
        edited = tmp_path / "lossy.pcap"
        remove_data_segments(capture, edited, loss, seed=17)
        capture = edited
    outputs = run_capture(capture, "http")
    ours = mizu_tally(scenario, seen, outputs.entries)
    theirs = tshark_tally(scenario, seen, capture, port)
    print(f"{capture.parent.name} loss {loss}: mizu {ours}, tshark {theirs}, of {len(seen)}")
    assert ours.wrong == 0
    assert ours.exact >= theirs.exact
    if not loss:  # whole: every call made after the capture began is paired right
        assert ours.exact == len(seen)
        # and the answer in flight when it began is shown, alone, for what it is
        (in_flight,) = [e for e in outputs.entries if e.get("unpaired") == "midstream"]
        assert in_flight["request"] is None
        assert in_flight["response"]["unrecovered"] == ["headers", "body"]


def _complete_entries(capture: Path) -> list[dict[str, Any]]:
    entries = run_capture(capture, "http").entries
    return [e for e in entries if e["request"] and e["response"] and not e.get("unpaired")]


def _shown(scenario: Scenario, entry: dict[str, Any]) -> tuple[set[int], set[int], str]:
    """The calls an entry's request and response name, and the status it shows."""
    request, response = entry["request"], entry["response"]
    status = str(response.get("headers", {}).get(scenario.status_header, ""))
    return (
        _ids(scenario.call_id, _message_text(request)),
        _ids(scenario.call_id, _message_text(response)),
        status,
    )


def _stream_key(entry: dict[str, Any]) -> tuple[frozenset[int], int]:
    return frozenset((entry["src"]["port"], entry["dst"]["port"])), entry["request"]["streamId"]


@functools.cache
def _whole_pairs(capture: Path) -> dict[tuple[frozenset[int], int], dict[str, Any]]:
    return {_stream_key(entry): entry for entry in _complete_entries(capture)}


@functools.cache
def _data_segment_positions(capture: Path) -> list[int]:
    return [segment.index for segment in data_segments(capture)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_segments_removed_leave_only_pairs_of_the_whole_capture(
    recording: tuple[Scenario, Path, int, dict[int, int]], data: st.DataObject
) -> None:
    scenario, capture, _, _ = recording
    positions = _data_segment_positions(capture)
    removed = data.draw(st.sets(st.sampled_from(positions), min_size=1, max_size=12))
    whole = _whole_pairs(capture)
    with tempfile.TemporaryDirectory() as directory:
        edited = Path(directory) / "edited.pcap"
        remove_packets(capture, edited, sorted(removed))
        entries = _complete_entries(edited)
    assert entries  # a dozen segments lost leave most calls whole
    for entry in entries:
        original = whole[_stream_key(entry)]  # a stream the whole capture paired too
        asked, answered, status = _shown(scenario, entry)
        whole_asked, whole_answered, whole_status = _shown(scenario, original)
        assert asked <= whole_asked and answered <= whole_answered
        assert status in ("", whole_status)
