"""`mizu dissect`, `mizu plugins`, `mizu version`: output, bad input, plugins installed apart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mizu_cli.main import cli
from tests.support.perturb import read_pcap, write_pcap

DATA = Path(__file__).parent.parent / "data" / "core"
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


def test_jsonl_entries_follow_the_contract() -> None:
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

    # The bundled captures are small: a progress line needs a run of more than 0.2 s.
    big = tmp_path / "big.pcap"
    frames = [(t, f) for t, f in read_pcap(DATA / "http11-keepalive.pcap").packets]
    write_pcap(big, frames * 400, 1)
    controller, terminal = pty.openpty()
    process = subprocess.run(
        [sys.executable, "-m", "mizu_cli", "dissect", str(big), "--plugins", "tcp"],
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
