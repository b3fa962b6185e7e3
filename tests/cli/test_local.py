"""``mizu tap --local`` end to end: capture on lo, real HTTP traffic, the hub's API."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from mizu_cli.config import parse_size
from tests.support.processes import Dashboard, wait_for_stderr
from tests.support.web import threaded_server

pytestmark = pytest.mark.live


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def web_server() -> Iterator[int]:
    """A local aiohttp server answering /hello/{name}, on a thread of its own."""

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hello": request.match_info["name"]})

    with threaded_server(
        lambda app: app.router.add_get("/hello/{name}", hello), free_port()
    ) as port:
        yield port


@pytest.fixture
def local_tap(tmp_path: Path) -> Iterator[tuple[Dashboard, subprocess.Popen[str], Path]]:
    if os.geteuid() != 0:
        pytest.fail("live capture on lo needs root (run the live tests as root)")
    port = free_port()
    pcap = tmp_path / "written.pcap"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mizu_cli",
            "tap",
            "--local",
            "-i",
            "lo",
            "--no-browser",
            "--db",
            str(tmp_path / "entries.db"),
            "-p",
            str(port),
            "-o",
            "jsonl",
            "-w",
            str(pcap),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    dashboard = Dashboard.parse(wait_for_stderr(process, "dashboard at"))
    assert dashboard.base == f"http://127.0.0.1:{port}"
    yield dashboard, process, pcap
    if process.poll() is None:
        process.kill()
        process.wait()


def test_local_mode_shows_real_traffic(
    local_tap: tuple[Dashboard, subprocess.Popen[str], Path], web_server: int
) -> None:
    hub, process, pcap = local_tap
    query = f"dst.port == {web_server}"

    async def watch_live() -> list[dict[str, Any]]:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{hub.base}/ws", headers=hub.headers) as browser,
        ):
            await browser.send_json({"query": query})
            assert (await browser.receive_json(timeout=10))["type"] == "meta"
            for name in ("ann", "bob"):
                async with session.get(f"http://127.0.0.1:{web_server}/hello/{name}") as reply:
                    assert (await reply.json()) == {"hello": name}
            live = []
            while len(live) < 2:
                message = await browser.receive_json(timeout=15)
                if message["type"] == "entry":
                    live.append(message["data"])
            return live

    live = asyncio.run(watch_live())
    assert all(row["dst"]["port"] == web_server for row in live)
    deadline = time.monotonic() + 15
    while True:
        listing = hub.get_json("/entries", query=query)
        if len(listing["data"]) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(listing["data"]) >= 2
    detail = hub.get_json(f"/entries/{listing['data'][0]['id']}")
    protocol = detail["data"]["protocol"]["name"]
    if protocol == "http":  # the HTTP plugin is installed: paths and statuses are there
        assert detail["data"]["request"]["path"] in {"/hello/ann", "/hello/bob"}
        assert hub.get_json("/entries", query=f"{query} and response.status == 200")["data"]
    else:
        assert protocol == "tcp"
    deadline = time.monotonic() + 5  # the tapper process reports every second
    while (tapper := hub.get_json("/status/tap")["local"])["ackedEntries"] < 2:
        assert time.monotonic() < deadline, tapper
        time.sleep(0.2)
    assert tapper["running"] and tapper["redaction"] and tapper["ignoredUserAgents"] == 0
    packets = tapper["capture"]
    assert packets["packets"] > 0 and packets["kernelDropped"] == 0, packets
    assert packets["sources"] == ["lo"]  # what the dashboard's status bar names as tapped
    assert tapper["cpuSeconds"] > 0
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "entries" in stderr and "sent to the hub" in stderr
    assert "0 packets dropped by the kernel" in stderr  # the closing summary always says it
    printed = [json.loads(line) for line in stdout.splitlines()]
    assert sum(1 for entry in printed if entry["dst"]["port"] == web_server) >= 2
    assert pcap.stat().st_size > 24
    # the hub's own port never shows up: the capture filter leaves it out
    assert not any(hub.port in (entry["src"]["port"], entry["dst"]["port"]) for entry in printed)


def test_printed_entries_come_out_while_capturing(
    local_tap: tuple[Dashboard, subprocess.Popen[str], Path], web_server: int
) -> None:
    """``-o jsonl`` writes its buffer out every few tens of milliseconds, not per entry: an
    entry still reaches standard output promptly when no other follows it."""
    _, process, _ = local_tap
    assert process.stdout is not None
    lines: list[str] = []
    mine = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if json.loads(line)["dst"]["port"] == web_server:
                mine.set()

    threading.Thread(target=read, daemon=True).start()
    with urllib.request.urlopen(f"http://127.0.0.1:{web_server}/hello/ann", timeout=10) as reply:
        assert json.loads(reply.read()) == {"hello": "ann"}
    assert mine.wait(10), f"no entry of port {web_server} printed: {lines}"
    assert process.poll() is None


def test_tap_without_local_says_what_to_do() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mizu_cli", "tap"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "--local" in result.stderr and "cluster" in result.stderr


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (("--local", "-B", "10k"), "10k is too small a capture buffer"),
        (("--local", "-B", "lots"), "'lots' is not a size"),
        (("--pcap", str(Path(__file__)), "-B", "64MB"), "-i, -f, -w and -B apply to live capture"),
        (("-B", "64MB"), "-B sizes this machine's capture: use it with --local"),
    ],
)
def test_capture_buffer_is_a_size_of_live_capture(arguments: tuple[str, ...], said: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mizu_cli", "tap", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert said in " ".join(result.stderr.split())


@pytest.mark.parametrize(
    ("text", "size"),
    [("200MB", 200_000_000), ("1.5GiB", 1_610_612_736), ("500k", 500_000), ("4096", 4096)],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_pcap_replay_ends_on_sigint_and_reads_rules_from_config(tmp_path: Path) -> None:
    """Replaying left libpcap's SIGINT handler installed, so Ctrl-C was ignored; and
    ``tap.traffic-validation-file`` in the config stands in for the flag."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n  - name: answers-in-a-minute\n    type: slo\n    response-time: 60000\n"
    )
    config = tmp_path / "config.yaml"
    config.write_text(f"tap:\n  traffic-validation-file: {rules}\n")
    port = free_port()
    capture = Path(__file__).resolve().parent.parent / "data" / "http" / "mizu-http1.pcap"
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "mizu_cli", "tap", "--pcap", str(capture), "--no-browser"),
            *("--db", str(tmp_path / "entries.db"), "-p", str(port), "--config-path", str(config)),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        hub = Dashboard.parse(wait_for_stderr(process, "dashboard at"))
        wait_for_stderr(process, "still serving")
        rows = hub.get_json("/entries", query="http")["data"]
        assert rows and all(row["rules"] == {"passed": 1, "failed": 0} for row in rows)
        process.send_signal(signal.SIGINT)
        started = time.monotonic()
        remaining = process.stderr.read()
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - started < 3
        assert "entries" in remaining and "sent to the hub" in remaining
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_second_run_on_the_same_database_keeps_its_entries(tmp_path: Path) -> None:
    """Connections are numbered from 1 again in every run: the second run's entries must not
    be taken for the first run's (the hub drops entries whose id it has) and lost."""
    capture = Path(__file__).resolve().parent.parent / "data" / "http" / "mizu-http1.pcap"
    counts = []
    for _ in range(2):
        port = free_port()
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "mizu_cli", "tap", "--pcap", str(capture)),
                *("--no-browser", "--db", str(tmp_path / "entries.db"), "-p", str(port)),
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            hub = Dashboard.parse(wait_for_stderr(process, "dashboard at"))
            wait_for_stderr(process, "still serving")
            rows = hub.get_json("/entries", query="http", limit="10000")["data"]
            counts.append(len(rows))
            assert len({row["id"] for row in rows}) == len(rows)
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert counts[0] > 0
    assert counts[1] == 2 * counts[0]


HTTP_CAPTURE = Path(__file__).resolve().parent.parent / "data" / "http" / "mizu-http1.pcap"


def start_tap(*arguments: str, stdout: int | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mizu_cli", "tap", "--no-browser", *arguments],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
    )


def refused_tap(*arguments: str) -> str:
    """The standard error of a ``mizu tap`` that must refuse to start (exit 1 or 2)."""
    result = subprocess.run(
        [sys.executable, "-m", "mizu_cli", "tap", "--no-browser", *arguments],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode in (1, 2), result.stderr
    assert "Traceback" not in result.stderr and "dashboard at" not in result.stderr
    return result.stderr


def stop(process: subprocess.Popen[str]) -> str:
    """Ctrl-C: the rest of its standard error, once it has exited 0."""
    process.send_signal(signal.SIGINT)
    _, remaining = process.communicate(timeout=30)
    assert process.returncode == 0, remaining
    return remaining


def stderr_until(process: subprocess.Popen[str], marker: str, seconds: float = 30) -> list[str]:
    """The lines of standard error up to the one that holds ``marker``; fails the test when
    none does within ``seconds``, even when the process says nothing more."""
    said: list[str] = []

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            said.append(line)
            if marker in line:
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(seconds)
    assert said and marker in said[-1], f"no {marker!r} in {seconds} s; it said {''.join(said)}"
    return said


def test_closed_standard_output_stops_the_printing_not_the_capture(tmp_path: Path) -> None:
    """``mizu tap ... -o jsonl | head``: the broken pipe was raised inside the plugin's call, so
    the plugin was marked failed and its entries stopped reaching the hub."""
    dissected = subprocess.run(
        [sys.executable, "-m", "mizu_cli", "dissect", str(HTTP_CAPTURE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    per_file = len(dissected.stdout.splitlines())
    port = free_port()
    replays = ("--pcap", str(HTTP_CAPTURE)) * 3
    process = start_tap(
        *replays, "-o", "jsonl", "--db", str(tmp_path / "e.db"), "-p", str(port),
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()  # the reader goes away before the first entry
        said = stderr_until(process, "still serving")
        hub = Dashboard.parse("".join(said))
        assert [line for line in said if "entries are no longer printed" in line] == [
            "mizu: standard output closed; entries are no longer printed "
            "(the dashboard still gets them)\n"
        ]
        rows = hub.get_json("/entries", limit="10000")["data"]
        assert len(rows) == 3 * per_file
        remaining = stop(process)
        assert f"{3 * per_file} sent to the hub" in remaining
        assert "plugin errors: none" in remaining
        assert "Traceback" not in "".join(said) + remaining
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_second_tap_on_the_same_database_is_refused(tmp_path: Path) -> None:
    """It started, and then every insert failed on the first run's sequences, unsaid."""
    db = tmp_path / "entries.db"
    first = start_tap("--pcap", str(HTTP_CAPTURE), "--db", str(db), "-p", str(free_port()))
    try:
        wait_for_stderr(first, "still serving")
        said = refused_tap("--pcap", str(HTTP_CAPTURE), "--db", str(db), "-p", str(free_port()))
        assert said == (
            f"Error: {db} is in use by another mizu (pid {first.pid}): "
            "stop it or pick another --db\n"
        )
        stop(first)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()


def test_a_database_that_cannot_be_opened_is_named(tmp_path: Path) -> None:
    not_a_database = tmp_path / "notes.txt"
    not_a_database.write_text("not a database\n")
    said = refused_tap("--pcap", str(HTTP_CAPTURE), "--db", str(not_a_database))
    assert said == (
        f"Error: cannot open --db {not_a_database}: file is not a database; "
        "pick another with --db\n"
    )
    # the directory cannot be made: not a port to change, as it was reported
    said = refused_tap("--pcap", str(HTTP_CAPTURE), "--db", "/proc/nope/x.db")
    assert said == (
        "Error: cannot open --db /proc/nope/x.db: No such file or directory; "
        "pick another with --db\n"
    )


def test_a_busy_port_is_reported_as_such(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        said = refused_tap(
            "--pcap", str(HTTP_CAPTURE), "--db", str(tmp_path / "e.db"), "-p", str(port)
        )
    assert f"Error: cannot serve on 127.0.0.1:{port}: " in said
    assert "(pick another port with --gui-port)" in said


def test_a_bad_insertion_filter_is_a_usage_error() -> None:
    said = refused_tap("--pcap", str(HTTP_CAPTURE), "--insertion-filter", "http and")
    assert said.endswith(
        "Error: Invalid value for '--insertion-filter': expected a value, found the end of "
        "the query at position 8\n  http and\n          ^\nhint: a selector (request.path), "
        "a string, a number, true, false, nil or a helper\n"
    )


def test_an_unwritable_capture_file_is_named(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("live capture on lo needs root (run the live tests as root)")
    said = refused_tap(
        *("--local", "-i", "lo", "-w", "/proc/nope/x.pcap", "--db", str(tmp_path / "e.db"))
    )
    assert said == (
        "Error: cannot write -w /proc/nope/x.pcap: No such file or directory; "
        "pick another file with -w\n"
    )


def test_every_replayed_file_is_checked_before_the_replay(tmp_path: Path) -> None:
    """A bad file in the middle stopped the replay there, the files after it never read,
    while the dashboard went on serving."""
    garbage = tmp_path / "garbage.pcap"
    garbage.write_bytes(b"GET / HTTP/1.1\r\n\r\n")
    said = refused_tap(
        *("--pcap", str(HTTP_CAPTURE), "--pcap", str(garbage), "--pcap", str(HTTP_CAPTURE)),
        *("--db", str(tmp_path / "e.db")),
    )
    assert said == (
        f"Error: {garbage}: not a pcap or pcapng file (it starts with 47455420); "
        "write captures with tcpdump -w or tshark -w\n"
    )


@pytest.mark.parametrize(
    ("size", "problem"),
    [
        ("0", "0 leaves no room for entries (write 1MB or more)"),
        ("1KB", "1KB leaves no room for entries (write 1MB or more)"),
        ("abc", "'abc' is not a size (write e.g. 200MB)"),
    ],
)
def test_the_database_size_cap_must_leave_room_for_entries(
    tmp_path: Path, size: str, problem: str
) -> None:
    said = refused_tap(
        "--pcap", str(HTTP_CAPTURE), "--db", str(tmp_path / "e.db"), "--max-entries-db-size", size
    )
    assert said.endswith(f"Error: Invalid value for '--max-entries-db-size': {problem}\n")


def test_a_capture_filter_keeps_what_it_matches_and_never_the_dashboard(
    tmp_path: Path, web_server: int
) -> None:
    """``-f`` as tcpdump's: a filter that lets every TCP packet through but another server's
    still leaves the dashboard's own port out."""
    if os.geteuid() != 0:
        pytest.fail("live capture on lo needs root (run the live tests as root)")

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hello": "left out"})

    with threaded_server(lambda app: app.router.add_get("/", hello), free_port()) as other:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "mizu_cli", "tap", "--local", "-i", "lo"),
                *("-f", f"tcp and not port {other}", "--no-browser", "-p", str(free_port())),
                *("--db", str(tmp_path / "entries.db")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            hub = Dashboard.parse(wait_for_stderr(process, "dashboard at"))
            for port, path in ((other, "/"), (web_server, "/hello/ann")):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5):
                    pass
            deadline = time.monotonic() + 20
            while not hub.get_json("/entries", query=f"dst.port == {web_server}")["data"]:
                assert time.monotonic() < deadline, "the filtered capture stored nothing"
                time.sleep(0.2)
            for port in (other, hub.port):
                query = f"src.port == {port} or dst.port == {port}"
                assert hub.get_json("/entries", query=query)["data"] == [], port
            stop(process)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_a_bad_capture_filter_is_named_and_only_live_capture_takes_one() -> None:
    if os.geteuid() != 0:
        pytest.fail("live capture on lo needs root (run the live tests as root)")
    said = refused_tap("--local", "-i", "lo", "-f", "tcp port nope")
    assert "Error: bad capture filter '(tcp port nope) and not (tcp port 8899" in said
    said = refused_tap("--pcap", str(HTTP_CAPTURE), "-f", "tcp")
    assert "-i, -f, -w and -B apply to live capture only" in said
    assert "use it with --local" in refused_tap("-f", "tcp")


def test_ctrl_c_at_the_terminal_stops_both_processes_with_one_summary(tmp_path: Path) -> None:
    """A terminal's Ctrl-C reaches the hub and its tapper process alike (one process group):
    the tapper hands over what it holds and says the closing summary once; the hub's private
    folder for the tapper's socket (this user's alone) is gone with it."""
    channels = tmp_path / "tmp"
    channels.mkdir()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "mizu_cli", "tap", "--pcap", str(HTTP_CAPTURE)),
            *("--no-browser", "--db", str(tmp_path / "e.db"), "-p", str(free_port())),
        ],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "TMPDIR": str(channels)},
    )
    try:
        said = "".join(stderr_until(process, "still serving"))
        (channel,) = channels.iterdir()
        assert channel.stat().st_mode & 0o777 == 0o700
        assert (channel / "hub.sock").is_socket()
        os.killpg(process.pid, signal.SIGINT)
        _, remaining = process.communicate(timeout=30)
        assert process.returncode == 0, remaining
        said += remaining
        assert said.count("sent to the hub") == 1, said
        assert "17 entries" in said and "17 sent to the hub, 0 shed; tapper CPU" in said
        assert "Traceback" not in said and "hub is gone" not in said
        assert list(channels.iterdir()) == []
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_a_tapper_process_that_dies_is_said_and_the_hub_keeps_serving(tmp_path: Path) -> None:
    process = start_tap(
        "--pcap", str(HTTP_CAPTURE), "--db", str(tmp_path / "e.db"), "-p", str(free_port())
    )
    try:
        hub = Dashboard.parse("".join(stderr_until(process, "still serving")))
        stored = hub.get_json("/entries", limit="1000")["data"]
        assert len(stored) == 17
        deadline = time.monotonic() + 5  # the tapper process reports every second
        while (tapper := hub.get_json("/status/tap")["local"])["capture"]["packets"] < 75:
            assert time.monotonic() < deadline, tapper
            time.sleep(0.2)
        assert tapper["running"]
        os.kill(tapper["pid"], signal.SIGKILL)
        (death,) = stderr_until(process, "keeps serving")
        assert death == (
            f"mizu: the tapper process (pid {tapper['pid']}) was killed by SIGKILL (exit code "
            "137) (its last report: 75 packets, 0 dropped by the kernel); nothing more is "
            "captured, the dashboard keeps serving what it stored (Ctrl-C to stop)\n"
        )
        assert hub.get_json("/entries", limit="1000")["data"] == stored
        status = hub.get_json("/status/tap")["local"]
        assert not status["running"] and status["ended"] == "was killed by SIGKILL (exit code 137)"
        process.send_signal(signal.SIGINT)
        _, remaining = process.communicate(timeout=30)
        assert process.returncode == 1
        assert remaining == (
            "Error: the tapper process was killed by SIGKILL (exit code 137): the capture ended "
            "early (its last report: 75 packets, 0 dropped by the kernel)\n"
        )
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_killed_hub_stops_its_tapper_which_leaves_nothing_behind(tmp_path: Path) -> None:
    channels = tmp_path / "tmp"
    channels.mkdir()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "mizu_cli", "tap", "--pcap", str(HTTP_CAPTURE)),
            *("--no-browser", "--db", str(tmp_path / "e.db"), "-p", str(free_port())),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(channels)},
    )
    try:
        hub = Dashboard.parse("".join(stderr_until(process, "still serving")))
        assert hub.get_json("/status/tap")["local"]["running"]
        assert len(list(channels.iterdir())) == 1
        process.kill()
        # standard error ends when the tapper process, which holds it too, has ended
        _, said = process.communicate(timeout=30)
        assert "mizu: the hub is gone; stopping the capture" in said
        assert "17 entries" in said and "Traceback" not in said
        assert list(channels.iterdir()) == []
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
