"""Public captures and recorded ones (tests/data/http, see its README): goldens for every hook,
and the dissected fields against tshark's on the same capture."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from http_peers import check_h2_against_tshark, header_count, tshark_http, tshark_summary

from mizu_core.testkit import Golden, run_capture

DATA = Path(__file__).resolve().parents[2] / "data" / "http"
CAPTURES = sorted(path for path in DATA.iterdir() if path.suffix in (".pcap", ".pcapng"))

HTTP1_CAPTURES = [
    "zeek_pipelined-requests.pcap",
    "zeek_100-continue_chunked.pcap",
    "sv_http-brotli-ce_chunked.pcap",
    "sv_response_gzip_multi_encoding.pcap",
    "zeek_get-gzip.pcap",
    "deepflow_sw8_chunked_keepalive.pcap",
    "sv_http-event-chunk.pcap",
    "sv_http-multipart-post_chunked_ipv6.pcap",
    "zeek_docker-http-upgrade.pcap",
    # mizu-http1.pcap is compared in test_http1_live: tshark misreads its pipelined HEAD.
]
HTTP2_CAPTURES = [
    "packt_grpc_Server_Streaming.pcapng",
    "packt_grpc_Bidi_Streaming.pcapng",
    "deepflow_grpc-unary.pcap",
    "sv_http2-continuation.pcap",
    "sv_http2_deflate.pcap",
    "sv_http2-keywords2_upgrade.pcap",
    "sv_dns_over_http2.pcap",
    "sv_http2_multiple_headers.pcap",
    "mizu-grpc.pcap",
    "mizu-h2c.pcap",
]


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda path: path.name)
def test_goldens(capture: Path, mizu_golden: Golden) -> None:
    outputs = mizu_golden.check(capture, plugin="http")
    assert outputs.entries
    assert outputs.stats["plugin_errors"] == {}


def _http1_ours(capture: Path) -> tuple[Counter[tuple[Any, ...]], Counter[tuple[Any, ...]]]:
    requests: Counter[tuple[Any, ...]] = Counter()
    responses: Counter[tuple[Any, ...]] = Counter()
    for entry in run_capture(capture, "http").entries:
        request, response = entry["request"], entry["response"]
        if request is not None and request.get("httpVersion", "").startswith("HTTP/1"):
            target = request["url"].split("://", 1)[-1]
            target = target[target.find("/") :] if "/" in target else target
            requests[(request["method"], target, header_count(request["headers"]))] += 1
        if response is not None and response.get("httpVersion", "").startswith("HTTP/1"):
            responses[(response["status"], header_count(response["headers"]))] += 1
    return requests, responses


@pytest.mark.parametrize("name", HTTP1_CAPTURES)
def test_http1_fields_match_tshark(name: str) -> None:
    capture = DATA / name
    requests, responses = _http1_ours(capture)
    theirs_requests: Counter[tuple[Any, ...]] = Counter()
    theirs_responses: Counter[tuple[Any, ...]] = Counter()
    for _, message in tshark_http(capture):
        summary = tshark_summary(message)
        if "method" in summary:
            theirs_requests[(summary["method"], summary["uri"], summary["header_lines"])] += 1
        elif summary.get("status", 0) >= 200 or summary.get("status") == 101:
            theirs_responses[(summary["status"], summary["header_lines"])] += 1
    assert requests == theirs_requests
    assert responses == theirs_responses


@pytest.mark.parametrize("name", HTTP2_CAPTURES)
def test_http2_streams_match_tshark(name: str) -> None:
    capture = DATA / name
    assert check_h2_against_tshark(capture, run_capture(capture, "http").entries)
