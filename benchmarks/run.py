"""Benchmark `mizu dissect` against tshark and a bare pypcap loop on one capture file.

Each tool runs as a child process of its own, reading the same file (already in the page cache
after a counting pass), with its standard output streamed back through a pipe and counted:
  mizu dissect   `mizu dissect FILE -o jsonl [--mizu-args]`; pairs = output lines (entries)
  tshark         `tshark -r FILE -Y http -T fields -e http.request.uri -e http.response.code`;
                 one line per HTTP message: a request line has a URI, a response line a code;
                 pairs = min(requests, responses)
  bare pypcap    benchmarks/bare_pcap_loop.py: pypcap read loop + struct unpack of
                 Ethernet/IP/TCP headers, the floor for any Python pipeline; no pairs
Wall time is from spawn to exit. CPU time (user + system, all the tool's processes) and peak
RSS (the maximum resident set size of its largest process, not a sum) are GNU time's
(/usr/bin/time; Debian package `time`); without it those columns stay empty. CPU time is the
steadier figure on a busy machine. MB = 10^6 bytes of packet data (captured lengths).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

from gen_http_pcap import DEFAULT_OUT, count_pcap

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
GNU_TIME = Path("/usr/bin/time")
MIZU, TSHARK, BARE = "mizu dissect", "tshark", "bare pypcap"
MIZU_ONE, GO = "mizu 1 worker", "go anchor"
GO_SOURCE = BENCH_DIR / "go_anchor"
GO_BINARY = BENCH_DIR / "data" / "go_anchor"
GOPATH = Path("/usr/share/gocode")
GO_PACKAGES = (
    "golang-go golang-github-google-gopacket-dev golang-golang-x-net-dev golang-golang-x-sys-dev"
)


# --------------------------------------------------------------------------- output sinks


class Sink(Protocol):
    """Consumes a tool's standard output as it streams, then reports what it counted."""

    def feed(self, data: bytes) -> None: ...

    def counts(self) -> dict[str, int]: ...


class LineCounter:
    """mizu's JSONL: one line is one entry."""

    def __init__(self) -> None:
        self.lines = 0

    def feed(self, data: bytes) -> None:
        self.lines += data.count(b"\n")

    def counts(self) -> dict[str, int]:
        return {"pairs": self.lines}


class TsharkPairs:
    """tshark's `uri<TAB>code` lines: a request fills the first field, a response the second."""

    def __init__(self) -> None:
        self.partial = b""
        self.requests = self.responses = 0

    def feed(self, data: bytes) -> None:
        *lines, self.partial = (self.partial + data).split(b"\n")
        for line in lines:
            uri, _tab, code = line.partition(b"\t")
            self.requests += bool(uri)
            self.responses += bool(code)

    def counts(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "responses": self.responses,
            "pairs": min(self.requests, self.responses),
        }


class JsonDocument:
    """bare_pcap_loop.py prints one JSON object of counts."""

    def __init__(self) -> None:
        self.text = b""

    def feed(self, data: bytes) -> None:
        self.text += data

    def counts(self) -> dict[str, int]:
        return dict(json.loads(self.text))


# --------------------------------------------------------------------------- running


@dataclass
class Run:
    wall_s: float
    cpu_s: float | None
    peak_rss_mb: float | None
    exit_code: int
    stderr: str
    counts: dict[str, int]


@dataclass
class Tool:
    name: str
    command: list[str]
    make_sink: Callable[[], Sink]
    missing: str = ""  # why the tool cannot run at all, when it cannot

    def explain(self, run: Run) -> str:
        """One line on a failed run."""
        if self.name == MIZU and "No module named mizu_cli" in run.stderr:
            return "not installed: no `mizu` on PATH and no runnable mizu_cli module"
        last = run.stderr.strip().splitlines()[-1:] or ["no error output"]
        return f"failed (exit {run.exit_code}): {last[0]}"


def run_once(command: list[str], sink: Sink) -> Run:
    """Run one child to completion, streaming its stdout into `sink`; time it.

    CPU time and peak RSS come from GNU time, which forks the tool from its own small process:
    Linux starts a child's ru_maxrss at its forking parent's RSS, so rusage read here (wait4 or
    RUSAGE_CHILDREN) would report this runner's memory for every small tool.
    """
    with tempfile.TemporaryFile() as errors, tempfile.NamedTemporaryFile("r") as gnu_time:
        if GNU_TIME.exists():
            command = [str(GNU_TIME), "--format=%U %S %M", f"--output={gnu_time.name}", *command]
        start = time.perf_counter()
        proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors, cwd=REPO_ROOT
        )
        assert proc.stdout is not None
        with proc.stdout:
            while chunk := os.read(proc.stdout.fileno(), 1 << 20):
                sink.feed(chunk)
        proc.wait()
        wall = time.perf_counter() - start
        errors.seek(0)
        stderr = errors.read().decode(errors="replace")
        usage = gnu_time.read().split()[-3:]  # GNU time puts any "exited with" line first
    return Run(
        wall_s=wall,
        cpu_s=float(usage[0]) + float(usage[1]) if usage else None,
        peak_rss_mb=int(usage[2]) * 1024 / 1e6 if usage else None,
        exit_code=proc.returncode,
        stderr=stderr,
        counts=sink.counts() if proc.returncode == 0 else {},
    )


@dataclass
class Measurement:
    tool: Tool
    runs: list[Run] = field(default_factory=list)
    note: str = ""

    @property
    def best(self) -> Run | None:
        return min(self.runs, key=lambda run: run.wall_s) if self.runs and not self.note else None


def add_mizu_option(parser: argparse.ArgumentParser) -> None:
    """``--mizu-option WORD`` (repeatable): one more word for the ``mizu tap`` a benchmark runs,
    in ``arguments.mizu_option``."""
    parser.add_argument(
        "--mizu-option",
        action="append",
        default=[],
        metavar="OPTION",
        help="one more word for mizu tap (repeatable): --mizu-option=--no-redact",
    )


def compile_project() -> None:
    """Compile Mizu's modules to bytecode first, as installing a package does: with
    PYTHONDONTWRITEBYTECODE set (as on our CI machines) a source checkout would otherwise be
    compiled again by every run, about a quarter of a second of start-up."""
    packages = [REPO_ROOT / name for name in ("mizu_core", "mizu_server", "mizu_cli", "plugins")]
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", *map(str, packages)],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def measure(tool: Tool, repeat: int, log: TextIO) -> Measurement:
    """Best of `repeat` runs; stops at the first failure, which becomes the row's note."""
    result = Measurement(tool, note=tool.missing)
    if tool.missing:
        return result
    for i in range(repeat):
        print(f"  {tool.name}: run {i + 1}/{repeat} ...", file=log, flush=True)
        run = run_once(tool.command, tool.make_sink())
        result.runs.append(run)
        if run.exit_code:
            result.note = tool.explain(run)
            break
    return result


def mizu_build() -> str:
    """`mizu version`'s first line: which build (compiled or pure Python) is measured."""
    version = subprocess.run(
        [sys.executable, "-m", "mizu_cli", "version"], capture_output=True, text=True, cwd=REPO_ROOT
    )
    return (version.stdout.splitlines() or ["mizu version failed: " + version.stderr])[0]


def build_go_anchor() -> str:
    """Build benchmarks/go_anchor (Debian's Go and gopacket, no module download); the reason
    when it cannot be."""
    go = shutil.which("go")
    if go is None or not (GOPATH / "src/github.com/google/gopacket/tcpassembly").is_dir():
        return f"not built: apt-get install {GO_PACKAGES}"
    GO_BINARY.parent.mkdir(exist_ok=True)
    built = subprocess.run(
        [go, "build", "-o", str(GO_BINARY), "."],
        cwd=GO_SOURCE,
        env={**os.environ, "GOPATH": str(GOPATH), "GO111MODULE": "off"},
        capture_output=True,
        text=True,
    )
    return "" if built.returncode == 0 else f"build failed: {built.stderr.strip()[-200:]}"


def tools(pcap: Path, mizu_args: list[str], go_anchor: bool = False) -> list[Tool]:
    mizu = shutil.which("mizu")
    mizu_base = [mizu] if mizu else [sys.executable, "-m", "mizu_cli"]
    tshark = shutil.which("tshark")
    dissect = [*mizu_base, "dissect", str(pcap), "-o", "jsonl"]
    extra = []
    if "--workers" not in mizu_args:
        extra.append(Tool(MIZU_ONE, [*dissect, "--workers", "1", *mizu_args], LineCounter))
    if go_anchor:
        extra.append(Tool(GO, [str(GO_BINARY), str(pcap)], LineCounter, missing=build_go_anchor()))
    return [
        Tool(MIZU, [*dissect, *mizu_args], LineCounter),
        *extra,
        Tool(
            TSHARK,
            [
                tshark or "tshark",
                "-r",
                str(pcap),
                "-Y",
                "http",
                "-T",
                "fields",
                "-e",
                "http.request.uri",
                "-e",
                "http.response.code",
            ],
            TsharkPairs,
            missing="" if tshark else "not installed: no `tshark` on PATH",
        ),
        Tool(BARE, [sys.executable, str(BENCH_DIR / "bare_pcap_loop.py"), str(pcap)], JsonDocument),
    ]


# --------------------------------------------------------------------------- report


def row(m: Measurement, packets: int, data_bytes: int) -> dict[str, Any]:
    """A tool's figures from its best run, or its note when it did not run."""
    best = m.best
    figures: dict[str, Any] = {
        "name": m.tool.name,
        "command": shlex.join(m.tool.command),
        "ok": best is not None,
        "note": m.note,
    }
    if best is not None:
        pairs = best.counts.get("pairs")
        figures |= {
            "wall_s": best.wall_s,
            "cpu_s": best.cpu_s,
            "cpu_us_per_pair": (
                best.cpu_s / pairs * 1e6 if best.cpu_s is not None and pairs else None
            ),
            "walls_s": [run.wall_s for run in m.runs],
            "packets_per_s": packets / best.wall_s,
            "mb_per_s": data_bytes / 1e6 / best.wall_s,
            "pairs_per_s": None if pairs is None else pairs / best.wall_s,
            "peak_rss_mb": best.peak_rss_mb,
            "counts": best.counts,
        }
    return figures


RATIO_KEYS = ("wall_s", "cpu_s", "packets_per_s", "pairs_per_s", "peak_rss_mb")


def ratios(rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """mizu's figures divided by tshark's, the Go anchor's and the bare loop's, where both
    ran."""
    mizu = rows[MIZU]
    result = {}
    for other in (TSHARK, GO, BARE):
        if other not in rows:
            continue
        if mizu["ok"] and rows[other]["ok"]:
            result[f"mizu/{other}"] = {
                key: (
                    mizu[key] / rows[other][key]
                    if mizu[key] is not None and rows[other][key] is not None
                    else None
                )
                for key in RATIO_KEYS
            }
    return result


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def print_report(
    header: str,
    rows: dict[str, dict[str, Any]],
    rel: dict[str, dict[str, float | None]],
    out: TextIO,
) -> None:
    print(f"\n{header}\n", file=out)
    print(
        f"{'tool':<14}{'wall s':>9}{'cpu s':>9}{'cpu µs/pair':>12}{'packets/s':>12}{'MB/s':>9}"
        f"{'pairs/s':>11}{'peak RSS MB':>13}",
        file=out,
    )
    for r in rows.values():
        if not r["ok"]:
            print(f"{r['name']:<14}  {r['note']}", file=out)
            continue
        print(
            f"{r['name']:<14}{r['wall_s']:>9.2f}{fmt(r['cpu_s'], '.2f'):>9}"
            f"{fmt(r['cpu_us_per_pair'], '.1f'):>12}{r['packets_per_s']:>12,.0f}"
            f"{r['mb_per_s']:>9.1f}{fmt(r['pairs_per_s'], ',.0f'):>11}"
            f"{fmt(r['peak_rss_mb'], '.1f'):>13}",
            file=out,
        )
    tshark = rows[TSHARK]
    if tshark["ok"] and "requests" in tshark["counts"]:  # the HTTP fields (see TsharkPairs)
        c = tshark["counts"]
        print(
            f"\ntshark pairs: min({c['requests']:,} request lines, "
            f"{c['responses']:,} response lines)",
            file=out,
        )
    if not rel:
        print("ratios: none (mizu dissect did not run)", file=out)
        return
    print(
        f"\n{'ratio':<20}{'wall':>8}{'cpu':>8}{'packets/s':>12}{'pairs/s':>10}{'peak RSS':>10}",
        file=out,
    )
    for name, r in rel.items():
        print(
            f"{name:<20}"
            + "".join(
                f"{times(r[key]):>{width}}"
                for key, width in zip(RATIO_KEYS, (8, 8, 12, 10, 10), strict=True)
            ),
            file=out,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--pcap",
        type=Path,
        metavar="PATH",
        default=DEFAULT_OUT,
        help="capture to read (default: %(default)s, generated with gen_http_pcap.py when missing)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="run each tool N times and keep its fastest run (default: 1)",
    )
    parser.add_argument(
        "--mizu-args",
        default="",
        metavar="ARGS",
        help="extra arguments for mizu dissect, one shell-quoted string, e.g. "
        "--mizu-args='--plugins tcp'",
    )
    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="FILE",
        help="also write the results as JSON to FILE; without FILE, JSON goes "
        "to stdout and the table to stderr",
    )
    args = parser.parse_args(argv)
    compile_project()
    log = sys.stderr if args.json == "-" else sys.stdout
    pcap: Path = args.pcap.resolve()

    if not pcap.exists():
        if pcap != DEFAULT_OUT:
            sys.exit(f"{pcap}: no such file (make one with benchmarks/gen_http_pcap.py --out)")
        print(f"{pcap} is missing: generating it", file=log, flush=True)
        subprocess.run(
            [sys.executable, str(BENCH_DIR / "gen_http_pcap.py"), "--out", str(pcap)],
            check=True,
            stdout=log,
        )
    packets, data_bytes = count_pcap(pcap)
    header = (
        f"{pcap}: {packets:,} packets, {data_bytes / 1e6:,.1f} MB of packet data "
        f"({pcap.stat().st_size / 1e6:,.1f} MB file); best of {args.repeat}"
    )
    if not GNU_TIME.exists():
        header += f"; no CPU time or peak RSS: {GNU_TIME} is missing (apt-get install time)"
    header += f"\n{mizu_build()}"
    print(header, file=log, flush=True)

    measurements = [
        measure(tool, args.repeat, log)
        for tool in tools(pcap, shlex.split(args.mizu_args), go_anchor=True)
    ]
    rows = {m.tool.name: row(m, packets, data_bytes) for m in measurements}
    rel = ratios(rows)
    print_report(header, rows, rel, log)

    if args.json:
        document = {
            "pcap": {
                "path": str(pcap),
                "packets": packets,
                "packet_bytes": data_bytes,
                "file_bytes": pcap.stat().st_size,
            },
            "repeat": args.repeat,
            "tools": list(rows.values()),
            "ratios": rel,
        }
        text = json.dumps(document, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
