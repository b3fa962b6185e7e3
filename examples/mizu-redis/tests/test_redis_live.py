"""Real peers now: each scenario recorded again dissects like its committed capture, and tshark's
RESP dissector reads the same commands as the plugin from the committed RESP2 captures."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from mizu_core.testkit import run_capture
from redis_peers import SCENARIOS, tcpdump

from mizu_redis.commands import CONTAINERS

DATA = Path(__file__).parent / "data"


def shape(entries: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What must not change from one recording to the next (not ports, times nor ids)."""
    rows = []
    for entry in entries:
        request, response = entry["request"] or {}, entry["response"] or {}
        rows.append(
            (
                entry["protocol"]["name"],
                entry["protocol"]["version"],
                request.get("method"),
                request.get("key"),
                response.get("type"),
                response.get("status"),
            )
        )
    return sorted(rows, key=repr)


@pytest.mark.parametrize("name", SCENARIOS)
def test_recording_again_dissects_the_same(redis_port: int, tmp_path: Path, name: str) -> None:
    capture = tmp_path / f"{name}.pcap"
    with tcpdump(capture, redis_port):
        SCENARIOS[name](redis_port)
    committed = json.loads((DATA / "expect" / name / "analyze.json").read_text())
    assert shape(run_capture(capture, "redis").entries) == shape(committed)


def tshark_commands(capture: Path, port: int) -> dict[int, list[list[str]]]:
    """Each client port's commands as tshark's RESP dissector reads them."""
    tshark = shutil.which("tshark")
    assert tshark, "tshark is the oracle of these tests (apt-get install tshark)"
    output = subprocess.run(
        [
            tshark,
            "-r",
            str(capture),
            "-d",
            f"tcp.port=={port},resp",
            "-T",
            "json",
            "--no-duplicate-keys",
            "-Y",
            f"resp && tcp.dstport == {port}",
        ],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    commands: dict[int, list[list[str]]] = {}
    for packet in json.loads(output or "[]"):
        layers = packet["_source"]["layers"]
        for array in as_list(layers["resp"].get("resp.array")):
            words = [
                bytes.fromhex(bulk["resp.bulk_string.value"].replace(":", "")).decode()
                for bulk in as_list(array.get("resp.bulk_string"))
            ]
            commands.setdefault(int(layers["tcp"]["tcp.srcport"]), []).append(words)
    return commands


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


ORACLE_CAPTURES = [
    "resp2-commands.pcap",
    "pubsub-resp2.pcap",
    "redis-cli.pcap",
    "zeek_redis_set.pcap",
    "zeek_redis_auth.pcap",
    "zeek_redis_stream.pcap",
    "zeek_redis-50-pings_redis-py.pcap",
    "deepflow_redis-debug.pcap",
]


@pytest.mark.parametrize("name", ORACLE_CAPTURES)
def test_commands_agree_with_tshark(name: str) -> None:
    requests = [
        e["request"] | {"client": e["src"]["port"], "server": e["dst"]["port"]}
        for e in run_capture(DATA / name, "redis").entries
        if e["request"] and e["request"]["method"].isupper() and not e["request"].get("inline")
    ]
    theirs = tshark_commands(DATA / name, requests[0]["server"])
    ours: dict[int, list[list[str]]] = {}
    capped: list[tuple[int, int]] = []
    for request in requests:  # in order within a connection
        commands = ours.setdefault(request["client"], [])
        if request.get("truncated"):
            capped.append((request["client"], len(commands)))
        password = [request["password"]] if "password" in request else []
        commands.append(request["method"].split() + request["args"] + password)  # AUTH's last
    expected = {port: [upper_name(words) for words in cmds] for port, cmds in theirs.items()}
    for client, index in capped:  # tshark's words cut as the plugin cut them
        kept, full = ours[client][index], expected[client][index]
        expected[client][index] = [word[: len(k)] for k, word in zip(kept, full, strict=False)]
    assert ours == expected


def upper_name(words: list[str]) -> list[str]:
    """Command names as the plugin spells them: ``GET``, ``CLIENT SETINFO``."""
    count = 2 if words[0].upper() in CONTAINERS and len(words) > 1 else 1
    return [word.upper() for word in words[:count]] + words[count:]
