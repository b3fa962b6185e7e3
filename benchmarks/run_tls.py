"""What decrypting TLS costs: `mizu dissect` on the same HTTP/1.1 traffic over TLS (with its key
log) and in clear, beside tshark on both.

  python benchmarks/run_tls.py [--dir DIR] [--repeat N]

The captures come from gen_tls_pcap.py (generated when missing). Each tool runs as a child with
its output streamed back and counted (run.py's measuring, GNU time for CPU and peak RSS):
  mizu dissect   `mizu dissect FILE --workers 1 -q http` (+ `--tls-keylog KEYS` for HTTPS):
                 pairs = entries printed (one per request/response pair)
  tshark         `tshark -r FILE [-o tls.keylog_file:KEYS] -Y http.response -T fields -e
                 http.response.code`: pairs = responses printed
Rates are per wall second and per CPU second (user + system); on a shared machine the CPU
figure is the steadier one. The last lines divide the HTTPS rates by the clear ones.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from gen_http_pcap import count_pcap
from gen_tls_pcap import DEFAULT_DIR
from run import BENCH_DIR, compile_project
from run_broker import Entries, FieldValues, best_of, fmt, mizu_command, rate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="gen_tls_pcap.py's --out")
    parser.add_argument("--repeat", type=int, default=1, help="keep each tool's best run")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    compile_project()
    folder: Path = args.dir.resolve()
    if not (folder / "tls.json").exists():
        print(f"{folder} has no captures: generating them", flush=True)
        subprocess.run(
            [sys.executable, str(BENCH_DIR / "gen_tls_pcap.py"), "--out", str(folder)], check=True
        )
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(BENCH_DIR / "data" / "pycache")
    subprocess.run([*mizu_command(), "plugins"], check=True, stdout=subprocess.DEVNULL)
    keys = folder / "https.keys"
    tshark = shutil.which("tshark") or "tshark"
    rows: dict[str, dict[str, Any]] = {}
    for name in ("https", "http"):
        pcap = folder / f"{name}.pcap"
        packets, data_bytes = count_pcap(pcap)
        keylog = ["--tls-keylog", str(keys)] if name == "https" else []
        tshark_keys = ["-o", f"tls.keylog_file:{keys}"] if name == "https" else []
        tools = (
            (
                f"mizu {name}",
                [*mizu_command(), "dissect", str(pcap), "--workers", "1", "-q", "http", *keylog],
                lambda: Entries(records=False),
            ),
            (
                f"tshark {name}",
                [tshark, "-r", str(pcap), *tshark_keys, "-Y", "http.response", "-T", "fields",
                 "-e", "http.response.code"],
                FieldValues,
            ),
        )  # fmt: skip
        for tool, command, make_sink in tools:
            run = best_of(command, make_sink, args.repeat)
            pairs = run.counts["messages"]
            rows[tool] = {
                "command": command,
                "packets": packets,
                "mb": data_bytes / 1e6,
                "wall_s": run.wall_s,
                "cpu_s": run.cpu_s,
                "peak_rss_mb": run.peak_rss_mb,
                "pairs": pairs,
                "pairs_per_wall_s": rate(pairs, run.wall_s),
                "pairs_per_cpu_s": rate(pairs, run.cpu_s),
                "packets_per_cpu_s": rate(packets, run.cpu_s),
                "mb_per_cpu_s": rate(int(data_bytes / 1e6), run.cpu_s),
            }
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; best of {args.repeat}")
    print(
        f"\n{'tool':<14}{'packets':>9}{'MB':>7}{'pairs':>8}{'wall s':>8}{'cpu s':>8}"
        f"{'pairs/s wall':>13}{'pairs/s cpu':>12}{'pkt/s cpu':>11}{'MB/s cpu':>9}{'RSS MB':>8}"
    )
    for tool, row in rows.items():
        print(
            f"{tool:<14}{row['packets']:>9,}{row['mb']:>7.1f}{row['pairs']:>8,}"
            f"{row['wall_s']:>8.2f}{fmt(row['cpu_s'], '.2f'):>8}"
            f"{fmt(row['pairs_per_wall_s'], ',.0f'):>13}{fmt(row['pairs_per_cpu_s'], ',.0f'):>12}"
            f"{fmt(row['packets_per_cpu_s'], ',.0f'):>11}{fmt(row['mb_per_cpu_s'], '.1f'):>9}"
            f"{fmt(row['peak_rss_mb'], '.1f'):>8}"
        )
    for tool in ("mizu", "tshark"):
        https, clear = rows[f"{tool} https"], rows[f"{tool} http"]
        if https["pairs_per_cpu_s"] and clear["pairs_per_cpu_s"]:
            print(
                f"{tool}: HTTPS pairs/s ÷ clear pairs/s by CPU time: "
                f"{https['pairs_per_cpu_s'] / clear['pairs_per_cpu_s']:.2f}"
            )
    if args.json:
        args.json.write_text(json.dumps({"dir": str(folder), "load": load, "tools": rows}) + "\n")


if __name__ == "__main__":
    main()
