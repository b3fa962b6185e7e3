"""Real clients against a real broker (Tansu), captured with tcpdump and dissected by Mizu.

kafka-python pinned to Kafka 2.0's versions is compared with tshark (whose decoder stops at
Produce v8 / Fetch v11 / Metadata v9); the newest versions kafka-python and aiokafka speak
(flexible encodings) are compared with what the clients themselves sent and received.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kafka_oracle import api_versions_used, mizu_messages, tshark_messages, wire_bytes
from kafka_peers import ClientView, drive_aiokafka, drive_kafka_python, tansu_broker

from mizu_core.testkit import run_capture
from tests.support.tcpdump import record

pytestmark = pytest.mark.slow

TSHARK_MISREADS = {11, 14}
"""tshark 4.0 flags JoinGroup and SyncGroup wrongly."""
TSHARK_UNNAMED_TOPICS = {(20, "response")}
"""Messages whose topic names tshark 4.0 decodes without labelling them ``kafka.topic_name``."""
ALL_CODECS = [None, "gzip", "snappy", "lz4", "zstd"]


def capture_session(tmp_path: Path, drive: Any) -> tuple[Path, int, ClientView]:
    capture = tmp_path / "kafka.pcap"
    with tansu_broker() as bootstrap:
        port = int(bootstrap.rsplit(":", 1)[1])
        with record(capture, f"tcp port {port}"):
            view = drive(bootstrap)
    return capture, port, view


def kafka_entries(capture: Path) -> list[dict[str, Any]]:
    outputs = run_capture(capture, "kafka")
    assert outputs.stats["plugin_errors"] == {}
    assert {entry["protocol"]["name"] for entry in outputs.entries} == {"kafka"}
    for entry in outputs.entries:
        assert entry["request"] is not None, entry["response"]
        assert "decodeError" not in entry["request"], entry["request"]
        if entry["response"] is not None:
            assert "decodeError" not in entry["response"], entry["response"]
    return outputs.entries


def assert_matches_client_view(entries: list[dict[str, Any]], view: ClientView) -> None:
    produced = []
    acknowledged = []
    fetched = {}
    for entry in entries:
        request, response = entry["request"], entry["response"]
        if request["method"] == "Produce":
            for topic in request["payload"]["topicData"]:
                for partition in topic["partitionData"]:
                    produced += [
                        (
                            topic["name"],
                            partition["index"],
                            wire_bytes(r, "key"),
                            wire_bytes(r, "value"),
                        )
                        for r in partition["records"]
                    ]
            for topic in response["payload"]["responses"]:
                for partition in topic["partitionResponses"]:
                    acknowledged.append(
                        (topic["name"], partition["index"], partition["baseOffset"])
                    )
        if request["method"] == "Fetch" and response is not None:
            for topic in response["payload"]["responses"]:
                for partition in topic["partitions"]:
                    for r in partition["records"]:
                        location = (topic["topic"], partition["partitionIndex"], r["offset"])
                        fetched[location] = (wire_bytes(r, "key"), wire_bytes(r, "value"))
    assert produced == view.sent
    assert acknowledged == view.offsets  # one record per produce request
    assert view.consumed
    for topic, partition, offset, key, value in view.consumed:
        assert fetched[(topic, partition, offset)] == (key, value)


def produced_codecs(entries: list[dict[str, Any]]) -> set[str]:
    return {
        batch["compression"]
        for entry in entries
        if entry["request"]["method"] == "Produce"
        for topic in entry["request"]["payload"]["topicData"]
        for partition in topic["partitionData"]
        for batch in partition["recordBatches"]
    }


def test_kafka_python_2_0_matches_tshark(tmp_path: Path) -> None:
    codecs = [None, "gzip", "snappy", "lz4"]  # kafka-python refuses zstd below Kafka 2.1
    capture, port, view = capture_session(
        tmp_path, lambda bootstrap: drive_kafka_python(bootstrap, codecs, (2, 0, 0))
    )
    entries = kafka_entries(capture)
    mine = mizu_messages(entries)
    theirs = tshark_messages(capture, port)
    assert {key for key in mine if key[2] == "request"} == {
        key for key in theirs if key[2] == "request"
    }
    assert {key for key in mine if key[2] == "response"} == {
        key for key in theirs if key[2] == "response"
    }
    compared = 0
    for key, oracle in theirs.items():
        decoded = mine[key]
        api_key = mine[(key[0], key[1], "request")]["apiKey"]
        if key[2] == "request":
            assert (decoded["apiKey"], decoded["apiVersion"]) == (
                oracle["apiKey"],
                oracle["apiVersion"],
            )
        if api_key in TSHARK_MISREADS or not oracle["single"]:
            continue
        if (api_key, key[2]) not in TSHARK_UNNAMED_TOPICS:
            assert decoded["topics"] == oracle["topics"], (api_key, key)
        assert decoded["errors"] == oracle["errors"], key
        assert decoded["keys"] == oracle["keys"], key
        assert decoded["values"] == oracle["values"], key
        compared += 1
    assert compared > 50
    apis = {api for api, _ in api_versions_used(mine)}
    assert apis >= {0, 1, 2, 3, 8, 9, 10, 11, 13, 14, 18, 19, 20, 32}, sorted(apis)
    assert_matches_client_view(entries, view)
    assert produced_codecs(entries) == {"none", "gzip", "snappy", "lz4"}


def test_kafka_python_newest_versions_match_the_client(tmp_path: Path) -> None:
    capture, _, view = capture_session(
        tmp_path, lambda bootstrap: drive_kafka_python(bootstrap, ALL_CODECS)
    )
    entries = kafka_entries(capture)
    used = api_versions_used(mizu_messages(entries))
    # Flexible versions: compact strings and arrays, tagged fields, request header v2.
    assert any(api == 0 and version >= 9 for api, version in used)
    assert any(api == 1 and version >= 12 for api, version in used)
    assert any(api == 3 and version >= 9 for api, version in used)
    assert any(api == 18 and version >= 3 for api, version in used)
    assert_matches_client_view(entries, view)
    assert produced_codecs(entries) == {"none", "gzip", "snappy", "lz4", "zstd"}


def test_aiokafka_matches_the_client(tmp_path: Path) -> None:
    capture, _, view = capture_session(tmp_path, drive_aiokafka)
    entries = kafka_entries(capture)
    assert_matches_client_view(entries, view)
    assert produced_codecs(entries) == {"none", "gzip", "lz4", "zstd"}
    headers = [
        record["headers"]
        for entry in entries
        if entry["request"]["method"] == "Produce"
        for topic in entry["request"]["payload"]["topicData"]
        for partition in topic["partitionData"]
        for record in partition["records"]
    ]
    assert headers == [{"n": str(index)} for index in range(len(view.sent))]
