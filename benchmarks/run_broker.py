"""Benchmark `mizu dissect` on a message-broker capture (AMQP or Kafka) against tshark.

  python benchmarks/run_broker.py amqp [--pcap FILE] [--repeat N]
  python benchmarks/run_broker.py kafka [--pcap FILE] [--repeat N]

The capture comes from gen_amqp_pcap.py / gen_kafka_pcap.py (generated when the default one is
missing); the broker's port is read from the summary they leave beside it (FILE.json), since
tshark only decodes the protocol there when told (`-d tcp.port==PORT,PROTO`). Each tool runs
as a child with its output streamed back and counted (see run.py, whose measuring this reuses):
  mizu dissect   `mizu dissect FILE -o jsonl --plugins PROTO,tcp`; entries = output lines; for
                 Kafka also the records its Produce requests and Fetch responses hold
  tshark amqp    `tshark -r FILE -d ... -Y amqp -T fields -e amqp.method.method`: methods =
                 values printed (one per method frame; a packet's are comma-separated)
  tshark kafka   `tshark -r FILE -d ... -Y kafka -T fields -e kafka.request_key`: messages =
                 values printed (tshark 4.0 prints the field on requests only: one per request)
Rates are per wall second and per CPU second (user + system, GNU time): on a shared machine
the CPU figure is the steadier one. The ratio line divides mizu's rates by tshark's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gen_http_pcap import count_pcap
from run import BENCH_DIR, Run, compile_project, run_once


def write_summary(pcap: Path, **fields: Any) -> None:
    """A generator's summary of ``pcap``, to stdout and beside it as FILE.json, where
    :func:`main` reads the broker's port (``port``: tshark needs it, ``-d``)."""
    summary = json.dumps({"pcap": str(pcap), **fields, "bytes": pcap.stat().st_size})
    pcap.with_suffix(".json").write_text(summary + "\n")
    print(summary)


RECORD_HOLDERS = {"Produce": "request", "Fetch": "response"}
"""Kafka messages whose payload carries records, and which side of the entry they are on."""


class FieldValues:
    """tshark `-T fields` with one field: every printed value (comma-separated) counts."""

    def __init__(self) -> None:
        self.partial = b""
        self.values = 0

    def feed(self, data: bytes) -> None:
        *lines, self.partial = (self.partial + data).split(b"\n")
        self.values += sum(line.count(b",") + 1 for line in lines if line.strip())

    def counts(self) -> dict[str, int]:
        return {"messages": self.values}


def count_records(value: Any) -> int:
    """Records in a Kafka payload: every ``recordCount`` (records decoded in full or only
    counted), wherever the schema nests it."""
    if isinstance(value, dict):
        own = value.get("recordCount")
        return (own if isinstance(own, int) else 0) + sum(
            count_records(item) for item in value.values()
        )
    if isinstance(value, list):
        return sum(count_records(item) for item in value)
    return 0


class Entries:
    """mizu's JSONL: one line is one entry; Kafka's records are counted too, once the run is
    over: parsing the lines as they stream in would put this runner's JSON decoding on the
    cores mizu's workers use (97 MB of JSON for the 50k-record capture)."""

    def __init__(self, records: bool) -> None:
        self.entries = 0
        self.count_records = records
        self.kept: list[bytes] = []

    def feed(self, data: bytes) -> None:
        self.entries += data.count(b"\n")
        if self.count_records:
            self.kept.append(data)

    def counts(self) -> dict[str, int]:
        counts = {"messages": self.entries}
        if self.count_records:
            counts["records"] = sum(map(records_of, b"".join(self.kept).splitlines()))
            self.kept = []
        return counts


def records_of(line: bytes) -> int:
    """The records a Kafka entry's Produce request or Fetch response holds."""
    entry = json.loads(line)
    records = 0
    for method, side in RECORD_HOLDERS.items():
        message = entry.get(side) or {}
        if message.get("method") == method:
            records += count_records(message.get("payload"))
    return records


def mizu_command() -> list[str]:
    """The `mizu` on PATH, else the module form."""
    mizu = shutil.which("mizu")
    return [mizu] if mizu else [sys.executable, "-m", "mizu_cli"]


MIZU = "mizu dissect"
MIZU_ONE = "mizu, 1 worker"
"""The default run (``--workers auto``: a worker per CPU on a capture over 8 MB), and one
worker: its CPU time is the cost of the work itself, without the workers' shared reading."""


@dataclass
class Benchmark:
    protocol: str
    default_pcap: Path
    generator: str
    tshark_field: str

    def tools(self, pcap: Path, port: int) -> list[tuple[str, list[str], Callable[[], Any]]]:
        tshark = shutil.which("tshark") or "tshark"
        plugins = f"{self.protocol},tcp"
        decode_as = f"tcp.port=={port},{self.protocol}"
        tshark_fields = ["-Y", self.protocol, "-T", "fields", "-e", self.tshark_field]
        dissect = [*mizu_command(), "dissect", str(pcap), "-o", "jsonl", "--plugins", plugins]
        return [
            (MIZU, dissect, lambda: Entries(records=self.protocol == "kafka")),
            (
                MIZU_ONE,
                [*dissect, "--workers", "1"],
                lambda: Entries(records=self.protocol == "kafka"),
            ),
            (
                "tshark",
                [tshark, "-r", str(pcap), "-d", decode_as, *tshark_fields],
                FieldValues,
            ),
        ]


BENCHMARKS = {
    "amqp": Benchmark(
        "amqp", BENCH_DIR / "data" / "amqp-50k.pcap", "gen_amqp_pcap.py", "amqp.method.method"
    ),
    "kafka": Benchmark(
        "kafka", BENCH_DIR / "data" / "kafka-50k.pcap", "gen_kafka_pcap.py", "kafka.request_key"
    ),
}


def best_of(command: list[str], make_sink: Callable[[], Any], repeat: int) -> Run:
    runs = []
    for _ in range(repeat):
        run = run_once(command, make_sink())
        if run.exit_code:
            sys.exit(f"{command[0]} failed (exit {run.exit_code}): {run.stderr.strip()[-500:]}")
        runs.append(run)
    return min(runs, key=lambda run: run.cpu_s if run.cpu_s is not None else run.wall_s)


PCAP_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")


def empty_capture(pcap: Path, directory: Path) -> Path | None:
    """A capture of no packets with ``pcap``'s file header (its link type): running a tool on
    it measures the tool's start-up. None for a pcapng file."""
    with pcap.open("rb") as file:
        header = file.read(24)
    if header[:4] not in PCAP_MAGICS:
        return None
    empty = directory / f"empty-{pcap.stem}.pcap"
    empty.write_bytes(header)
    return empty


def beyond(run: float | None, start_up: float | None) -> float | None:
    return run - start_up if run is not None and start_up is not None else None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator is not None and denominator else None


def rate(count: int, seconds: float | None) -> float | None:
    return count / seconds if seconds else None


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("protocol", choices=sorted(BENCHMARKS))
    parser.add_argument("--pcap", type=Path, help="capture (default: the generator's)")
    parser.add_argument("--repeat", type=int, default=1, help="keep each tool's best run")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    compile_project()
    bench = BENCHMARKS[args.protocol]
    pcap: Path = (args.pcap or bench.default_pcap).resolve()
    if not pcap.exists():
        if args.pcap:
            sys.exit(f"{pcap}: no such file (make one with benchmarks/{bench.generator} --out)")
        print(f"{pcap} is missing: generating it", flush=True)
        subprocess.run([sys.executable, str(BENCH_DIR / bench.generator)], check=True)
    summary = json.loads(pcap.with_suffix(".json").read_text())
    packets, data_bytes = count_pcap(pcap)
    load = os.getloadavg()
    print(
        f"{pcap}: {packets:,} packets, {data_bytes / 1e6:,.1f} MB; best of {args.repeat} by "
        f"CPU; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; generator: {summary}"
    )
    # This environment sets PYTHONDONTWRITEBYTECODE: every mizu run would compile its sources
    # again (~0.4 s CPU, the Kafka tables mostly). Keep bytecode in a cache of our own, filled
    # by one warm-up run, as an installed mizu would have it.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(BENCH_DIR / "data" / "pycache")
    tools = bench.tools(pcap, int(summary["port"]))
    empty = empty_capture(pcap, BENCH_DIR / "data")
    start_ups: dict[str, Run | None] = {name: None for name, _, _ in tools}
    if empty is not None:
        for name, command, make_sink in bench.tools(empty, int(summary["port"])):
            start_ups[name] = best_of(command, make_sink, args.repeat)
    subprocess.run([*mizu_command(), "plugins"], check=True, stdout=subprocess.DEVNULL)
    rows: dict[str, dict[str, Any]] = {}
    for name, command, make_sink in tools:
        run = best_of(command, make_sink, args.repeat)
        counts = run.counts
        start_up = start_ups[name]
        rows[name] = {
            "start_up_wall_s": start_up.wall_s if start_up else None,
            "start_up_cpu_s": start_up.cpu_s if start_up else None,
            "command": command,
            "wall_s": run.wall_s,
            "cpu_s": run.cpu_s,
            "peak_rss_mb": run.peak_rss_mb,
            "counts": counts,
            "per_wall_s": {key: rate(value, run.wall_s) for key, value in counts.items()},
            "per_cpu_s": {key: rate(value, run.cpu_s) for key, value in counts.items()},
            "mb_per_cpu_s": rate(data_bytes // 10**6, run.cpu_s),
        }
    print(
        f"\n{'tool':<14}{'start-up':>9}{'wall s':>8}{'cpu s':>8}{'messages':>10}{'msg/s wall':>12}"
        f"{'msg/s cpu':>11}{'MB/s cpu':>10}{'records':>9}{'rec/s cpu':>11}{'RSS MB':>8}"
    )
    for name, row in rows.items():
        counts = row["counts"]
        print(
            f"{name:<14}{fmt(row['start_up_cpu_s'], '.2f'):>9}"
            f"{row['wall_s']:>8.2f}{fmt(row['cpu_s'], '.2f'):>8}"
            f"{counts['messages']:>10,}{row['per_wall_s']['messages']:>12,.0f}"
            f"{fmt(row['per_cpu_s']['messages'], ',.0f'):>11}"
            f"{fmt(row['mb_per_cpu_s'], '.1f'):>10}"
            f"{counts.get('records', ''):>9}"
            f"{fmt(row['per_cpu_s'].get('records'), ',.0f'):>11}"
            f"{fmt(row['peak_rss_mb'], '.1f'):>8}"
        )
    tshark = rows["tshark"]
    for name in (MIZU, MIZU_ONE):
        mizu = rows[name]
        by_wall = ratio(tshark["wall_s"], mizu["wall_s"])
        by_cpu = ratio(tshark["cpu_s"], mizu["cpu_s"])
        line = (
            f"\n{name}: tshark's time ÷ mizu's: {fmt(by_wall, '.2f')}x by wall time, "
            f"{fmt(by_cpu, '.2f')}x by CPU time"
        )
        if empty is not None:
            wall_beyond = ratio(
                beyond(tshark["wall_s"], tshark["start_up_wall_s"]),
                beyond(mizu["wall_s"], mizu["start_up_wall_s"]),
            )
            cpu_beyond = ratio(
                beyond(tshark["cpu_s"], tshark["start_up_cpu_s"]),
                beyond(mizu["cpu_s"], mizu["start_up_cpu_s"]),
            )
            line += (
                f"; beyond start-up {fmt(wall_beyond, '.2f')}x by wall time, "
                f"{fmt(cpu_beyond, '.2f')}x by CPU"
            )
        print(line, end="")
    if empty is not None:
        mizu = rows[MIZU_ONE]
        print(
            f"\nstart-up (the capture's header and no packet): mizu "
            f"{fmt(mizu['start_up_wall_s'], '.2f')} s wall, {fmt(mizu['start_up_cpu_s'], '.2f')} "
            f"s CPU; tshark {fmt(tshark['start_up_wall_s'], '.2f')} s wall, "
            f"{fmt(tshark['start_up_cpu_s'], '.2f')} s CPU"
        )
    else:
        print()
    if args.json:
        args.json.write_text(json.dumps({"pcap": str(pcap), "load": load, "tools": rows}) + "\n")


if __name__ == "__main__":
    main()
