"""tshark's reading of a Kafka capture, and the same facts taken from Mizu's entries."""

from __future__ import annotations

import base64
import subprocess
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mizu_kafka.protocol import error_codes
from mizu_kafka.views import topics

from tests.support.tshark import REASSEMBLE_OUT_OF_ORDER

FIELDS = (
    "tcp.srcport",
    "tcp.dstport",
    "kafka.request_key",
    "kafka.api_version",
    "kafka.correlation_id",
    "kafka.topic_name",
    "kafka.partition_id",
    "kafka.error",
    "kafka.message_key",
    "kafka.message_value",
)


def unique(values: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


def tshark_messages(capture: Path, port: int) -> dict[tuple[int, int, str], dict[str, Any]]:
    """``(client port, correlation id, "request"|"response")`` → what tshark decoded."""
    command = [
        "tshark",
        "-r",
        str(capture),
        *REASSEMBLE_OUT_OF_ORDER,
        "-d",
        f"tcp.port=={port},kafka",
        "-Y",
        "kafka",
    ]
    command += ["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|"]
    for name in FIELDS:
        command += ["-e", name]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    messages: dict[tuple[int, int, str], dict[str, Any]] = {}
    for line in output.splitlines():
        columns = dict(zip(FIELDS, line.split("\t"), strict=True))
        split = {name: value.split("|") if value else [] for name, value in columns.items()}
        is_request = int(columns["tcp.dstport"]) == port
        client_port = int(columns["tcp.srcport"] if is_request else columns["tcp.dstport"])
        side = "request" if is_request else "response"
        # A segment may carry several Kafka messages; tshark aggregates their fields.
        for position, correlation_id in enumerate(split["kafka.correlation_id"]):
            keys = split["kafka.request_key"]
            messages[(client_port, int(correlation_id), side)] = {
                "apiKey": int(keys[position]) if keys else None,
                "apiVersion": int(split["kafka.api_version"][position]) if keys else None,
                "topics": unique(split["kafka.topic_name"]),
                "errors": sorted(int(code) for code in split["kafka.error"] if int(code)),
                "keys": split["kafka.message_key"],
                "values": split["kafka.message_value"],
                "single": len(split["kafka.correlation_id"]) == 1,
            }
    return messages


def wire_bytes(record: Mapping[str, Any], name: str) -> bytes | None:
    shown = record[name]
    if shown is None:
        return None
    if record.get(f"{name}Encoding") == "base64":
        return base64.b64decode(shown)
    return str(shown).encode("utf-8")


def entry_records(payload: Any) -> list[dict[str, Any]]:
    found = []
    for _, name, item in topics(payload):
        for partition in (item or {}).get("partitions") or (item or {}).get("partitionData") or []:
            for record in partition.get("records") or []:
                found.append({"topic": name, **record})
    return found


def mizu_messages(entries: list[dict[str, Any]]) -> dict[tuple[int, int, str], dict[str, Any]]:
    """The same facts as :func:`tshark_messages`, from Mizu's entries."""
    messages: dict[tuple[int, int, str], dict[str, Any]] = {}
    for entry in entries:
        request, response = entry["request"], entry["response"]
        client_port = entry["src"]["port"]
        for side, message in (("request", request), ("response", response)):
            if message is None:
                continue
            payload = message.get("payload")
            records = entry_records(payload)
            messages[(client_port, message["correlationId"], side)] = {
                "apiKey": message.get("apiKey"),
                "apiVersion": message.get("apiVersion"),
                "topics": unique(name for _, name, _ in topics(payload)),
                "errors": sorted(code for _, code in error_codes(payload) if code),
                "keys": [(wire_bytes(r, "key") or b"").hex() for r in records],
                "values": [(wire_bytes(r, "value") or b"").hex() for r in records],
                "records": records,
            }
    return messages


def api_versions_used(messages: Mapping[tuple[int, int, str], Mapping[str, Any]]) -> set:
    by_api: dict[int, set[int]] = defaultdict(set)
    for (_, _, side), message in messages.items():
        if side == "request":
            by_api[message["apiKey"]].add(message["apiVersion"])
    return {(key, version) for key, versions in by_api.items() for version in versions}
