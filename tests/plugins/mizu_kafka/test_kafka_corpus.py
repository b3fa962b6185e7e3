"""The public Kafka captures: goldens for every hook, and what each must show."""

from __future__ import annotations

from pathlib import Path

import pytest

from mizu_core.testkit import run_capture

DATA = Path(__file__).parents[2] / "data" / "kafka"
CAPTURES = sorted([*DATA.glob("*.pcap"), *DATA.glob("*.pcapng")])


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda path: path.stem)
def test_golden(mizu_golden, capture: Path) -> None:
    outputs = mizu_golden.check(capture, plugin="kafka")
    assert outputs.stats["plugin_errors"] == {}
    assert any(entry["protocol"]["name"] == "kafka" for entry in outputs.entries)


@pytest.mark.parametrize(
    ("capture", "method", "version"),
    [
        ("deepflow_00-produce-v9.pcap", "Produce", 9),
        ("deepflow_01-fetch-v12-ok.pcap", "Fetch", 12),
        ("deepflow_11-join-group-v7.pcap", "JoinGroup", 7),
        ("deepflow_14-sync-group-v5.pcap", "SyncGroup", 5),
        ("deepflow_18-api-versions-v3.pcap", "ApiVersions", 3),
        ("gosniffer_kafka.pcap", "Produce", 1),
    ],
)
def test_mid_connection_slices_pair_and_decode(capture: str, method: str, version: int) -> None:
    """deepflow's slices start mid-connection, some with the roles guessed the wrong way
    round: the requests are still found and their responses decoded."""
    outputs = run_capture(DATA / capture, "kafka")
    pairs = [
        entry
        for entry in outputs.entries
        if entry["request"] and entry["request"]["method"] == method
    ]
    assert pairs and pairs[0]["request"]["apiVersion"] == version
    assert pairs[0]["response"] is not None
    assert "decodeError" not in pairs[0]["response"]
    assert pairs[0]["src"]["port"] != 9092
