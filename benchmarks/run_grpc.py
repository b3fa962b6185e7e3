"""Benchmark `mizu dissect` against tshark and the bare pypcap loop on a gRPC capture.

The same runner as run.py (its measuring code, table and ratios), with tshark decoding gRPC:
  tshark   `tshark -r FILE -d tcp.port==PORT,http2 -Y grpc -T fields -e tcp.dstport
           -e grpc.message_length`: one line per packet holding gRPC messages, their lengths
           comma-separated; the decode-as rule is needed because tshark knows HTTP/2 without
           TLS only on port 80 or after an Upgrade (prior knowledge, as gRPC speaks, it cannot
           guess). It counts messages, not calls: compare wall and CPU time, not pairs/s.
  mizu     `mizu dissect FILE -o jsonl`: pairs = entries = calls.
Make the capture with gen_grpc_pcap.py (about 20,000 calls by default).
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from pathlib import Path

from gen_grpc_pcap import DEFAULT_OUT
from gen_http_pcap import count_pcap
from run import TSHARK, Tool, compile_project, measure, print_report, ratios, row, tools


class TsharkGrpcMessages:
    """tshark's `dstport<TAB>len,len,...` lines: messages sent to the server and back."""

    def __init__(self, server_port: int) -> None:
        self.server_port = str(server_port).encode()
        self.partial = b""
        self.requests = self.responses = 0

    def feed(self, data: bytes) -> None:
        *lines, self.partial = (self.partial + data).split(b"\n")
        for line in lines:
            port, _tab, lengths = line.partition(b"\t")
            messages = lengths.count(b",") + 1 if lengths else 0
            if port == self.server_port:
                self.requests += messages
            else:
                self.responses += messages

    def counts(self) -> dict[str, int]:
        return {"request_messages": self.requests, "response_messages": self.responses}


def grpc_tshark(pcap: Path, server_port: int) -> Tool:
    tshark = shutil.which("tshark")
    return Tool(
        TSHARK,
        [
            tshark or "tshark",
            "-r",
            str(pcap),
            "-d",
            f"tcp.port=={server_port},http2",
            "-Y",
            "grpc",
            "-T",
            "fields",
            "-e",
            "tcp.dstport",
            "-e",
            "grpc.message_length",
        ],
        lambda: TsharkGrpcMessages(server_port),
        missing="" if tshark else "not installed: no `tshark` on PATH",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pcap", type=Path, default=DEFAULT_OUT, help="default: %(default)s")
    parser.add_argument("--port", type=int, default=50051, help="the gRPC server's port")
    parser.add_argument("--repeat", type=int, default=1, help="best of N runs of each tool")
    parser.add_argument("--mizu-args", default="", help="extra arguments for mizu dissect")
    args = parser.parse_args(argv)
    compile_project()
    pcap: Path = args.pcap.resolve()
    if not pcap.exists():
        sys.exit(f"{pcap}: missing (make it with benchmarks/gen_grpc_pcap.py --out {pcap})")
    packets, data_bytes = count_pcap(pcap)
    header = (
        f"{pcap}: {packets:,} packets, {data_bytes / 1e6:,.1f} MB of packet data; "
        f"best of {args.repeat}"
    )
    print(header, flush=True)
    *mizus, _http_tshark, bare = tools(pcap, shlex.split(args.mizu_args))
    measurements = [
        measure(tool, args.repeat, sys.stdout)
        for tool in (*mizus, grpc_tshark(pcap, args.port), bare)
    ]
    rows = {m.tool.name: row(m, packets, data_bytes) for m in measurements}
    print_report(header, rows, ratios(rows), sys.stdout)
    tshark_row = rows[TSHARK]
    if tshark_row["ok"]:
        counts = tshark_row["counts"]
        print(
            f"\ntshark gRPC messages: {counts['request_messages']:,} requests, "
            f"{counts['response_messages']:,} responses (mizu pairs are calls)"
        )


if __name__ == "__main__":
    main()
