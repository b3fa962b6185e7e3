"""``mizu dissect -o har`` on the plugin's live recordings (HTTP/1.1 from aiohttp and a raw
pipelining socket, h2c from httpx and curl, gRPC from grpcio) validates against the HAR 1.2
JSON schemas of the npm package har-schema (vendored in ``tests/data/har-schema``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.server.test_har_schema import schema_errors

DATA = Path(__file__).resolve().parents[2] / "data" / "http"


@pytest.mark.parametrize(
    ("capture", "entries"),
    [("mizu-http1.pcap", 17), ("mizu-h2c.pcap", 5), ("mizu-grpc.pcap", 5)],
)
def test_dissect_har_output_validates_against_the_har_schema(capture: str, entries: int) -> None:
    output = subprocess.run(
        [sys.executable, "-m", "mizu_cli", "dissect", str(DATA / capture), "-o", "har"],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout
    document = json.loads(output)
    assert len(document["log"]["entries"]) == entries
    assert schema_errors(document) == []
