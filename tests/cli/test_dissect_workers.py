"""`mizu dissect --workers N`: the same entries as one process, in an order fixed per N."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from mizu_cli.main import cli
from mizu_core.engine import Engine

DATA = Path(__file__).parents[1] / "data"
CAPTURES = [
    "core/http11-keepalive.pcap",
    "core/http11-keepalive-ipfrag.pcap",
    "core/http11-ipv6-exthdrs.pcap",
    "core/http11-keepalive-vlan.pcap",
    "core/linux-sll2.pcap",
    "core/ndpi_http2.pcapng",
    "core/deepflow_http.pcap",
    "core/non-tcp.pcap",
    "amqp/deepflow_amqp1.pcap",
    "kafka/ndpi_kafka.pcapng",
]


def dissect(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["dissect", *args])
    return result.exit_code, result.stdout, result.stderr


def entries(out: str) -> list[dict[str, object]]:
    return sorted((json.loads(line) for line in out.splitlines()), key=lambda e: str(e["id"]))


@pytest.mark.parametrize("capture", CAPTURES)
def test_workers_give_the_entries_and_ids_of_one_process(capture: str) -> None:
    code, single, single_err = dissect(str(DATA / capture), "--workers", "1")
    assert code == 0 and single
    for workers in ("2", "3"):
        code, sharded, sharded_err = dissect(str(DATA / capture), "--workers", workers)
        assert code == 0
        assert entries(sharded) == entries(single)
        assert sharded_err.splitlines()[-1] == single_err.splitlines()[-1]  # the summary


@pytest.mark.parametrize("capture", ["core/http11-keepalive.pcap", "kafka/ndpi_kafka.pcapng"])
def test_output_is_byte_identical_across_runs(capture: str) -> None:
    first = dissect(str(DATA / capture), "--workers", "3")[1]
    assert first and dissect(str(DATA / capture), "--workers", "3")[1] == first


def test_a_file_cut_in_a_packet_is_reported_once_with_workers(tmp_path: Path) -> None:
    """The capture's own state (cut short, drops) is read by worker 0 alone."""
    capture = (DATA / "core/http11-keepalive.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(capture[: len(capture) // 2 + 3])
    code, _, single = dissect(str(cut), "--workers", "1")
    code_sharded, _, sharded = dissect(str(cut), "--workers", "2")
    assert code == code_sharded == 0
    assert "file truncated" in single
    assert sharded == single


def test_several_files_number_connections_across_files() -> None:
    files = [str(DATA / "core/http11-keepalive.pcap"), str(DATA / "core/deepflow_http.pcap")]
    code, single, _ = dissect(*files, "--workers", "1")
    code_sharded, sharded, err = dissect(*files, "--workers", "2")
    assert code == code_sharded == 0
    assert sharded == single
    assert "mizu: " in err


def test_query_and_limit_apply_to_the_merged_output() -> None:
    capture = str(DATA / "core/deepflow_http.pcap")
    query = 'http and request.method == "GET"'
    single = dissect(capture, "--workers", "1", "-q", query)[1]
    sharded = dissect(capture, "--workers", "2", "-q", query)[1]
    assert single and entries(sharded) == entries(single)
    capture = str(DATA / "core/http11-keepalive.pcap")
    limited = dissect(capture, "--workers", "2", "-q", "http and limit(2)")[1]
    assert len(limited.splitlines()) == 2
    assert limited == dissect(capture, "--workers", "1", "-q", "http and limit(2)")[1]


def test_har_and_table_outputs_with_workers() -> None:
    capture = str(DATA / "core/http11-ipv6-exthdrs.pcap")
    single = json.loads(dissect(capture, "-o", "har", "--workers", "1")[1])
    sharded = json.loads(dissect(capture, "-o", "har", "--workers", "2")[1])
    assert single["log"]["entries"] and sharded == single
    table = dissect(capture, "-o", "table", "--workers", "2")[1]
    assert table == dissect(capture, "-o", "table", "--workers", "1")[1]


def test_redaction_applies_in_workers() -> None:
    capture = str(DATA / "core/deepflow_http.pcap")
    single = dissect(capture, "--redact", "--workers", "1")[1]
    assert entries(dissect(capture, "--redact", "--workers", "2")[1]) == entries(single)


def test_a_failing_worker_is_named_and_fails_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_finish(self: Engine) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Engine, "finish", broken_finish)  # the forked workers inherit it
    code, _, err = dissect(str(DATA / "core/http11-keepalive.pcap"), "--workers", "2")
    assert code == 1
    assert re.search(r"worker [01] failed: RuntimeError: disk on fire", err)
    assert "Traceback" in err  # the worker's, to find the cause; the command ends cleanly


def test_bad_workers_value_is_refused() -> None:
    code, _, err = dissect(str(DATA / "core/http11-keepalive.pcap"), "--workers", "0")
    assert code == 2 and "--workers" in err


def test_help_explains_workers() -> None:
    result = CliRunner().invoke(cli, ["dissect", "--help"])
    assert (
        "--workers" in result.output and "--workers 1 is the single-process path" in result.output
    )
