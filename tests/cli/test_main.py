"""`mizu dissect`, `mizu plugins`, `mizu version`: output, bad input, plugins installed apart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import pytest
from click.testing import CliRunner

from mizu_cli.main import cli
from tests.support.capture_edits import start_mid_connection
from tests.support.perturb import read_pcap, write_pcap

DATA = Path(__file__).parent.parent / "data" / "core"
RESPONSE_BEFORE_GET_BIG = 9
"""The packet of http11-keepalive.pcap carrying the answer to its POST, whose request comes
before it."""
ENTRY_FIELDS = {
    "id": str,
    "protocol": dict,
    "src": dict,
    "dst": dict,
    "outgoing": bool,
    "timestamp": int,
    "startTime": str,
    "elapsedTime": float,
    "requestSize": int,
    "responseSize": int,
}


def dissect(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["dissect", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


def test_jsonl_entries_follow_the_entry_format() -> None:
    code, out, err = dissect(str(DATA / "http11-keepalive.pcap"), "--plugins", "tcp")
    assert code == 0
    (entry,) = [json.loads(line) for line in out.splitlines()]
    for name, kind in ENTRY_FIELDS.items():
        assert isinstance(entry[name], kind), name
    assert entry["protocol"]["name"] == "tcp"
    assert set(entry["protocol"]) == {
        "name",
        "version",
        "abbr",
        "longName",
        "macro",
        "backgroundColor",
        "foregroundColor",
        "referenceLink",
        "priority",
    }
    assert set(entry["src"]) == {"ip", "port", "name", "namespace"}
    assert entry["request"]["method"] == "TCP"
    assert entry["response"]["status"] == "FIN"
    assert entry["startTime"].endswith("Z")
    assert err.startswith("mizu: 127 packets, 1 connections, 1 entries, 0 skipped")


def test_the_summary_says_what_each_plugin_left_unpaired(tmp_path: Path) -> None:
    late = tmp_path / "late.pcap"
    start_mid_connection(DATA / "http11-keepalive.pcap", late, RESPONSE_BEFORE_GET_BIG)
    code, out, err = dissect(str(late))
    assert code == 0
    entries = [json.loads(line) for line in out.splitlines()]
    assert entries[0]["request"] is None and entries[0]["unpaired"] == "midstream"
    summary, *pairing = err.splitlines()
    assert summary.startswith("mizu: 118 packets, 1 connections, 4 entries")
    assert pairing == ["mizu: http: 3 paired, 1 unpaired (midstream 1), 2 resyncs"]
    assert "unpaired" not in dissect(str(DATA / "http11-keepalive.pcap"))[2]


def test_ids_are_deterministic_for_a_file() -> None:
    first = dissect(str(DATA / "rst-and-refused.pcap"))[1]
    again = dissect(str(DATA / "rst-and-refused.pcap"))[1]
    assert first == again
    ids = [json.loads(line)["id"] for line in first.splitlines()]
    assert len(set(ids)) == len(ids)


def test_table_output() -> None:
    code, out, _ = dissect(str(DATA / "rst-and-refused.pcap"), "-o", "table", "--plugins", "tcp")
    assert code == 0
    assert "refused" in out and "RST" in out and "TCP" in out


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("empty.pcap", "the file is empty"),
        ("missing.pcap", "no such file"),
        ("../../cli/test_main.py", "not a pcap or pcapng file"),
        (".", "is a directory"),
    ],
)
def test_unreadable_files_are_clear_errors(name: str, message: str) -> None:
    code, _, err = dissect(str(DATA / name))
    assert code in (1, 2)  # 2: click's usage error for a directory
    assert message in err
    assert "Traceback" not in err


def test_unknown_link_type_is_named() -> None:
    code, _, err = dissect(str(DATA / "unknown-linktype.pcap"))
    assert code == 1
    assert "link type 147 is not supported" in err


@pytest.mark.parametrize(
    ("name", "expect"),
    [
        ("garbage.pcap", "skipped"),
        ("truncated.pcap", "file truncated"),
        ("non-tcp.pcap", "skipped"),
        ("snaplen-96.pcap", "gaps"),
    ],
)
def test_bad_packets_are_counted_not_fatal(name: str, expect: str) -> None:
    code, _, err = dissect(str(DATA / name))
    assert code == 0
    assert expect in err
    assert "Traceback" not in err


def test_non_tcp_packets_are_counted() -> None:
    _, out, err = dissect(str(DATA / "non-tcp.pcap"))
    skipped = int(err.split(" entries, ")[1].split(" skipped")[0].replace(",", ""))
    assert skipped > 0
    assert len(out.splitlines()) == 1


def test_plugins_lists_the_builtin_tcp_plugin() -> None:
    result = CliRunner().invoke(cli, ["plugins"])
    assert result.exit_code == 0
    assert "tcp" in result.output and "TCP" in result.output


def test_a_plugin_installed_apart_is_used(turns_plugins: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(turns_plugins))
    listed = subprocess.run(
        [sys.executable, "-m", "mizu_cli", "plugins"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert {"turns", "eager", "faulty", "tcp"} <= set(lines)
    assert "broken not loaded" in listed.stderr
    dissected = subprocess.run(
        [
            sys.executable,
            "-m",
            "mizu_cli",
            "dissect",
            str(DATA / "http11-keepalive.pcap"),
            "--plugins",
            "eager,turns,tcp",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    entries = [json.loads(line) for line in dissected.stdout.splitlines()]
    assert {e["protocol"]["name"] for e in entries} == {"turns"}
    assert len(entries) == 5  # the five request/response turns of the keep-alive connection
    assert "Traceback" not in dissected.stderr


def test_version_lists_plugins() -> None:
    result = CliRunner().invoke(cli, ["version"])
    assert result.exit_code == 0
    assert result.output.startswith("mizu ")
    assert "tcp" in result.output


def test_help_teaches_with_examples() -> None:
    result = CliRunner().invoke(cli, ["dissect", "--help"])
    assert "Examples:" in result.output and "mizu dissect capture.pcap" in result.output


def test_query_filters_and_limits_entries() -> None:
    capture = str(DATA / "rst-and-refused.pcap")
    _, out, _ = dissect(capture, "--plugins", "tcp", "-q", 'response.status == "refused"')
    (entry,) = [json.loads(line) for line in out.splitlines()]
    assert entry["response"]["status"] == "refused"
    _, out, _ = dissect(capture, "--plugins", "tcp", "-q", "tcp and limit(1)")
    assert len(out.splitlines()) == 1


def test_bad_query_shows_where_and_a_hint() -> None:
    code, _, err = dissect(str(DATA / "rst-and-refused.pcap"), "-q", 'response.status = "x"')
    assert code == 2
    assert "position 16" in err and "^" in err and "hint: compare with ==" in err


def test_progress_shows_on_a_terminal_only(tmp_path: Path) -> None:
    import pty

    # The line is redrawn every Progress.interval: a run shorter than that shows none, and the
    # compiled build reads a small capture in less than the default 0.2 s.
    big = tmp_path / "big.pcap"
    frames = [(t, f) for t, f in read_pcap(DATA / "http11-keepalive.pcap").packets]
    write_pcap(big, frames * 40, 1)
    redraw_often = (
        "import mizu_cli.dissect as d, mizu_cli.main as m; d.Progress.interval = 0.001; m.main()"
    )
    controller, terminal = pty.openpty()
    process = subprocess.run(
        [sys.executable, "-c", redraw_often, "dissect", str(big), "--plugins", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=terminal,
        check=True,
    )
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    assert process.returncode == 0
    assert b"%" in shown and b"MB" in shown and b"entries" in shown
    piped = subprocess.run(
        [sys.executable, "-m", "mizu_cli", "dissect", str(big), "--plugins", "tcp"],
        capture_output=True,
        check=True,
    )
    assert piped.stderr.count(b"\n") == 1 and b"%" not in piped.stderr


def test_reading_a_file_leaves_ctrl_c_to_the_program(python_sigint: None) -> None:
    """pypcap swallows SIGINT after reading a file unless the source puts Python's back."""
    import signal
    import time

    from mizu_core.capture import FileSource
    from mizu_core.engine import Engine
    from mizu_core.plugins import PluginManager

    Engine(PluginManager().discover(allow=["tcp"]), lambda entry: None).run(
        FileSource(DATA / "http11-keepalive.pcap")
    )
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(2)


@pytest.fixture(scope="module")
def many_entries(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A capture of 90,000 small entries: several seconds of dissection, megabytes of output."""
    capture = read_pcap(DATA.parent / "http" / "mizu-websocket.pcap")
    path = tmp_path_factory.mktemp("many") / "many.pcap"
    write_pcap(path, capture.packets * 5000, capture.linktype)
    return path


def mizu_dissect(*args: str, stdout: int | IO[bytes], stderr: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "mizu_cli", "dissect", *args], stdout=stdout, stderr=stderr
    )


@pytest.mark.parametrize(
    ("output", "workers"),
    [("table", "1"), ("jsonl", "1"), ("table", "2"), ("jsonl", "2"), ("har", "1"), ("har", "2")],
)
def test_a_reader_gone_stops_the_run_quietly(
    many_entries: Path, tmp_path: Path, output: str, workers: str
) -> None:
    """`mizu dissect | head -1`: the write error was blamed on the plugin of the entry, which
    lost the connection to the next plugin, and the whole file was read."""
    # A HAR is written at the end, all at once: a keep-alive capture's is larger than a pipe.
    capture = many_entries if output != "har" else DATA / "http11-keepalive.pcap"
    with (tmp_path / "stderr").open("w+b") as stderr:
        process = mizu_dissect(
            str(capture), "-o", output, "--workers", workers, stdout=subprocess.PIPE, stderr=stderr
        )
        assert process.stdout is not None
        assert process.stdout.readline()
        process.stdout.close()
        closed = time.monotonic()
        try:
            code = process.wait(timeout=30)
        finally:
            process.kill()  # nothing once it has ended
        stopped_after = time.monotonic() - closed
        stderr.seek(0)
        complaints = stderr.read().decode()
    assert code == 141
    assert complaints == ""  # no traceback, no plugin blamed, no summary, nothing at exit
    assert stopped_after < 3  # reading the whole of many.pcap takes several seconds


@pytest.mark.parametrize(
    ("output", "workers"),
    [
        ("jsonl", "1"),
        ("table", "1"),
        ("har", "1"),
        ("openapi", "1"),
        ("jsonl", "2"),
        ("table", "2"),
        ("har", "2"),
    ],
)
def test_an_output_that_cannot_be_written_is_an_error(
    tmp_path: Path, output: str, workers: str
) -> None:
    with (tmp_path / "stderr").open("w+b") as stderr, open("/dev/full", "wb") as full:
        process = mizu_dissect(
            str(DATA / "http11-keepalive.pcap"),
            "-o",
            output,
            "--workers",
            workers,
            stdout=full,
            stderr=stderr,
        )
        try:
            code = process.wait(timeout=30)
        finally:
            process.kill()  # nothing once it has ended
        stderr.seek(0)
        complaints = stderr.read().decode()
    assert code == 1
    assert complaints == "Error: cannot write the output: No space left on device\n"


def test_a_pipe_is_refused_with_what_to_do() -> None:
    """libpcap opens the file again by its name: the pipe's first bytes, read to check the
    format, would be lost to it (it then tried the name as a network interface)."""
    capture = (DATA / "http11-keepalive.pcap").read_bytes()
    process = subprocess.run(
        [sys.executable, "-m", "mizu_cli", "dissect", "/dev/stdin"],
        input=capture,
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert process.returncode == 1
    assert process.stderr.decode() == (
        "Error: /dev/stdin: cannot read captures from a pipe; save it to a file first\n"
    )


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_pcapng_cut_in_a_block_is_reported_truncated(tmp_path: Path, workers: str) -> None:
    capture = (DATA / "ndpi_http2.pcapng").read_bytes()
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(capture[: len(capture) // 2 + 3])
    code, _, err = dissect(str(cut), "--workers", workers)
    assert code == 0
    assert "file truncated" in err


@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_summary_says_what_the_kernel_dropped_when_the_file_was_recorded(
    workers: str,
) -> None:
    """dumpcap recorded this capture's interface statistics: 757 packets the kernel dropped.
    A classic pcap (tcpdump's) records none, and the summary says nothing of drops."""
    code, _, err = dissect(str(DATA / "ndpi_http2.pcapng"), "--workers", workers)
    assert code == 0
    assert "757 packets dropped by the kernel when the file was recorded" in err
    code, _, err = dissect(str(DATA / "http11-keepalive.pcap"), "--workers", workers)
    assert code == 0 and "dropped" not in err


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "-inf"])
def test_response_timeout_must_be_finite_and_positive(value: str) -> None:
    code, out, err = dissect(str(DATA / "http11-keepalive.pcap"), "--response-timeout", value)
    assert code == 2
    assert "Invalid value for '--response-timeout'" in err
    assert out == ""


@pytest.mark.parametrize("option", ["--plugins", "--no-plugins"])
def test_unknown_plugin_names_are_refused_with_the_installed_ones(option: str) -> None:
    code, out, err = dissect(str(DATA / "http11-keepalive.pcap"), option, "http,nosuch")
    assert code == 2
    assert f"Invalid value for '{option}': nosuch: no such plugin (installed: " in err
    assert "http" in err.split("installed: ")[1] and "tcp" in err.split("installed: ")[1]
    assert out == ""


def test_table_brackets_ipv6_addresses() -> None:
    code, out, _ = dissect(str(DATA / "http11-ipv6.pcap"), "-o", "table", "--plugins", "http")
    assert code == 0
    assert "[::1]:52244 → [::1]:41961" in out.splitlines()[0]
