"""HTTP/1.1 between a real aiohttp client and server, recorded on loopback, checked against
tshark field by field."""

from __future__ import annotations

import base64
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from http_peers import (
    ASSET,
    JSON_DOCUMENT,
    header_count,
    record_http1,
    tshark_http,
    tshark_summary,
)

from mizu_core.testkit import HookOutputs, run_capture


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, HookOutputs]:
    capture = record_http1(tmp_path_factory.mktemp("http1") / "http1.pcap")
    return capture, run_capture(capture, "http")


def _as_text(body: dict[str, Any]) -> str:
    """A body as tshark prints it: binary bytes as replacement characters."""
    if body.get("encoding") == "base64":
        return base64.b64decode(body["text"]).decode("utf-8", "replace")
    return str(body["text"])


def _ours(outputs: HookOutputs) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    requests, responses = [], []
    pipelined_answers = 0
    for entry in outputs.entries:
        request, response = entry["request"], entry["response"]
        body = request.get("postData", {})
        requests.append(
            (
                request["method"],
                request["url"].split(request["headers"]["Host"], 1)[1],
                header_count(request["headers"]),
                _as_text(body) if body else None,
            )
        )
        if request["headers"]["Host"] == "pipelined":
            pipelined_answers += 1
            if pipelined_answers > 1:
                continue  # tshark pairs only the first answer of pipelined requests
        content = response["content"]
        responses.append(
            (
                response["status"],
                header_count(response["headers"]),
                _as_text(content) if content["size"] else None,
            )
        )
    return requests, responses


def _tshark(capture: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    requests, responses = [], []
    messages = tshark_http(capture)
    pipelined = {stream for stream, message in messages if message.get("http.host") == "pipelined"}
    answered: Counter[int] = Counter()
    for stream, message in messages:
        summary = tshark_summary(message)
        if "method" in summary:
            requests.append(
                (
                    summary["method"],
                    summary["uri"],
                    summary["header_lines"],
                    summary.get("file_data"),
                )
            )
        elif summary.get("status", 0) >= 200:  # we fold interim (1xx) answers into the final one
            answered[stream] += 1
            if stream in pipelined and answered[stream] > 1:
                continue
            responses.append((summary["status"], summary["header_lines"], summary.get("file_data")))
    return requests, responses


def _comparable(messages: list[tuple[Any, ...]]) -> Counter[tuple[Any, ...]]:
    """Bodies only where tshark decoded them too (``None`` from tshark matches anything)."""
    return Counter(_printable(message) for message in messages)


def test_every_message_matches_tshark(recorded: tuple[Path, HookOutputs]) -> None:
    capture, outputs = recorded
    (our_requests, our_responses), (their_requests, their_responses) = (
        _ours(outputs),
        _tshark(capture),
    )
    assert len(our_requests) == len(their_requests) == 17
    assert _comparable(our_requests) == _comparable(their_requests)
    assert len(our_responses) == len(their_responses) == 14
    undecoded_by_tshark = [response for response in their_responses if response[-1] is None]
    decoded_by_tshark = Counter(_printable(r) for r in their_responses if r[-1] is not None)
    ours = Counter(_printable(r) for r in our_responses)
    assert not decoded_by_tshark - ours
    assert Counter(r[:-1] for r in undecoded_by_tshark) == Counter(
        r[:-1] for r in (ours - decoded_by_tshark).elements()
    )


def _printable(message: tuple[Any, ...]) -> tuple[Any, ...]:
    """tshark shows binary bodies as text of its own: compare bodies both show as text."""
    body = message[-1]
    if body is not None and not body.replace("\n", "").replace("\r", "").isprintable():
        body = "<binary>"
    return (*message[:-1], body)


def test_pairs_keep_alive_pipelining_and_bodyless_answers(
    recorded: tuple[Path, HookOutputs],
) -> None:
    _, outputs = recorded
    pairs = [
        (entry["request"]["method"], entry["request"]["path"], entry["response"]["status"])
        for entry in outputs.entries
    ]
    assert pairs[-4:] == [
        ("GET", "/json", 200),
        ("GET", "/empty", 204),
        ("HEAD", "/json", 200),
        ("GET", "/chunked", 200),
    ]
    assert ("GET", "/cached", 304) in pairs
    assert outputs.stats["dispatch"]["unanswered"] == 0
    assert outputs.stats["plugin_errors"] == {}


def test_content_encodings_are_decoded_and_wire_size_kept(
    recorded: tuple[Path, HookOutputs],
) -> None:
    _, outputs = recorded
    coded = {
        entry["request"]["path"]: entry["response"]
        for entry in outputs.entries
        if entry["request"]["path"].startswith("/coded/")
    }
    assert set(coded) == {"/coded/gzip", "/coded/br", "/coded/zstd", "/coded/stacked"}
    for response in coded.values():
        assert response["content"]["text"] == ASSET.decode()
        assert response["content"]["size"] == len(ASSET)
        assert 0 < response["bodySize"] < len(ASSET)


def test_forms_cookies_query_and_continue(recorded: tuple[Path, HookOutputs]) -> None:
    _, outputs = recorded
    posts = [entry for entry in outputs.entries if entry["request"]["method"] == "POST"]
    urlencoded, multipart, echoed = posts
    assert urlencoded["request"]["postData"]["params"] == [
        {"name": "a", "value": "1"},
        {"name": "b", "value": "two words"},
    ]
    upload, note = multipart["request"]["postData"]["params"]
    assert upload["fileName"] == "x.bin" and upload["encoding"] == "base64"
    assert note == {"name": "note", "value": "text value"}
    assert echoed["request"]["headers"]["Expect"] == "100-continue"
    assert echoed["request"]["bodySize"] == 3000
    assert echoed["response"]["content"]["size"] == 3000
    with_query = next(e for e in outputs.entries if e["request"]["queryString"])
    assert with_query["request"]["queryString"] == {"q": "1", "r": "x y"}
    assert with_query["request"]["cookies"] == {"c1": "v1", "c2": "v2"}
    first = outputs.entries[0]
    assert first["response"]["cookies"] == {"session": "abc123"}
    assert first["response"]["content"]["text"].replace(" ", "") == str(JSON_DOCUMENT).replace(
        "'", '"'
    ).replace(" ", "")
